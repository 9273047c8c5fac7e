/**
 * PromQL `rate()`, `increase()` and `delta()` on float samples, including
 * Prometheus's extrapolation to the range boundaries. The functions in
 * `window_math.ts` do not extrapolate. This module reproduces Prometheus's
 * numbers so that the two can be compared.
 *
 * @module
 */

import type { WindowSample } from "./window_math.ts";

/** Options of {@link prometheusExtrapolatedRate}. */
export interface PrometheusRateOptions {
  /**
   * Applies the counter zero-point limit before the 1.1-interval threshold
   * test, as Prometheus did before 2.51. Since 2.51 the threshold test runs
   * first, so the zero point only shortens the extrapolation that the
   * threshold test chose. The two orders differ when a counter series starts
   * inside the range with a small first value. Defaults to `false`.
   */
  zeroPointBeforeThreshold?: boolean;
}

/**
 * Computes PromQL `rate()` (`isCounter` and `isRate`), `increase()`
 * (`isCounter` only) or `delta()` (neither) over the samples that a range
 * selector returned for the range from `rangeStartMs` to `rangeEndMs`.
 *
 * The caller selects the samples, for example with `selectRangeSamples`. The
 * steps follow Prometheus's `extrapolatedRate`:
 *
 * 1. The raw result is `last - first`. For counters, each decrease between
 *    consecutive samples is a reset and adds the value before it.
 * 2. Gaps from the range boundaries to the first and last sample are
 *    measured. A gap of 1.1 average sample intervals or more means the series
 *    starts or ends inside the range, so the extrapolation on that side is
 *    only half an average interval. A shorter gap is extrapolated in full.
 * 3. For counters with a positive raw result and a non-negative first value,
 *    the extrapolation to the left stops where the counter would reach zero.
 * 4. The raw result is scaled by `(sampled + left + right) / sampled`, and
 *    for `rate()` divided by the range in seconds.
 *
 * Sample values are used as given, so a `NaN` first or last value gives
 * `NaN`, as in Prometheus. Returns `NaN` for fewer than 2 samples, where
 * Prometheus returns no result.
 *
 * @throws {RangeError} if the range is empty, a sample lies outside it, or
 * the timestamps do not increase.
 */
export function prometheusExtrapolatedRate(
  samples: readonly WindowSample[],
  rangeStartMs: number,
  rangeEndMs: number,
  isCounter: boolean,
  isRate: boolean,
  options: PrometheusRateOptions = {},
): number {
  if (!(rangeEndMs > rangeStartMs)) {
    throw new RangeError(
      `invalid range: end ${rangeEndMs} ms must be after start ${rangeStartMs} ms`,
    );
  }
  let previousMs = -Infinity;
  for (const sample of samples) {
    if (
      sample.timestampMs < rangeStartMs || sample.timestampMs > rangeEndMs
    ) {
      throw new RangeError(
        `sample at ${sample.timestampMs} ms is outside the range ` +
          `[${rangeStartMs}, ${rangeEndMs}] ms; select the range's samples first`,
      );
    }
    if (!(sample.timestampMs > previousMs)) {
      throw new RangeError(
        `sample timestamps must increase, as in Prometheus storage, ` +
          `but ${sample.timestampMs} ms follows ${previousMs} ms`,
      );
    }
    previousMs = sample.timestampMs;
  }
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || samples.length < 2) {
    return NaN;
  }

  let result = last.value - first.value;
  if (isCounter) {
    for (let i = 1; i < samples.length; i++) {
      const previous = samples[i - 1]!.value;
      if (samples[i]!.value < previous) {
        result += previous;
      }
    }
  }

  let durationToStart = (first.timestampMs - rangeStartMs) / 1000;
  let durationToEnd = (rangeEndMs - last.timestampMs) / 1000;
  const sampledInterval = (last.timestampMs - first.timestampMs) / 1000;
  const averageInterval = sampledInterval / (samples.length - 1);
  const extrapolationThreshold = averageInterval * 1.1;

  // Counters cannot be negative, so the extrapolation to the left stops at
  // the time where the line through the samples reaches zero.
  const limitAtZeroPoint = (): void => {
    if (isCounter && result > 0 && first.value >= 0) {
      const durationToZero = sampledInterval * (first.value / result);
      if (durationToZero < durationToStart) {
        durationToStart = durationToZero;
      }
    }
  };

  if (options.zeroPointBeforeThreshold === true) {
    limitAtZeroPoint();
    if (durationToStart >= extrapolationThreshold) {
      durationToStart = averageInterval / 2;
    }
  } else {
    if (durationToStart >= extrapolationThreshold) {
      durationToStart = averageInterval / 2;
    }
    limitAtZeroPoint();
  }
  if (durationToEnd >= extrapolationThreshold) {
    durationToEnd = averageInterval / 2;
  }

  let factor = (sampledInterval + durationToStart + durationToEnd) /
    sampledInterval;
  if (isRate) {
    factor /= (rangeEndMs - rangeStartMs) / 1000;
  }
  return result * factor;
}
