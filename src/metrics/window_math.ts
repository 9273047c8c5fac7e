/**
 * Window statistics over the stored samples of one series: counter increase
 * and rate, per-scrape-interval rates, and the `*_over_time` aggregations.
 *
 * Every function takes the samples of one series inside the window, in scrape
 * order. The array order is authoritative: timestamps normally increase, but a
 * wall clock that was stepped back can make them non-monotonic, so no function
 * here sorts by timestamp.
 *
 * The semantics follow PromQL where PromQL defines them. Differences are
 * stated on each function.
 *
 * @module
 */

/** One stored sample of a series. */
export interface WindowSample {
  /** Scrape time in Unix milliseconds. */
  timestampMs: number;
  /** Sample value, possibly `NaN`. */
  value: number;
}

/** Increase and rate of a counter between two consecutive usable scrapes. */
export interface IntervalRate {
  /** Timestamp of the earlier sample, in Unix milliseconds. */
  startMs: number;
  /** Timestamp of the later sample, in Unix milliseconds. */
  endMs: number;
  /** Reset-aware increase over the interval, never negative. */
  increase: number;
  /** `increase` divided by the interval length in seconds. */
  ratePerSecond: number;
}

/** Options of {@link selectRangeSamples}. */
export interface RangeSelectionOptions {
  /**
   * Whether a sample exactly at `rangeStartMs` is excluded. Prometheus 3.x
   * selects `(start, end]` (left-open), Prometheus 2.x selects `[start, end]`.
   * Defaults to `true`.
   */
  leftOpen?: boolean;
}

/**
 * Returns the samples that a PromQL range selector `[W]` evaluated at
 * `rangeEndMs` selects, where `rangeStartMs = rangeEndMs - W`. The range is
 * `(start, end]` by default, as in Prometheus 3.x. Input order is kept.
 */
export function selectRangeSamples(
  samples: readonly WindowSample[],
  rangeStartMs: number,
  rangeEndMs: number,
  options: RangeSelectionOptions = {},
): WindowSample[] {
  const leftOpen = options.leftOpen ?? true;
  return samples.filter((sample) => {
    const afterStart = leftOpen
      ? sample.timestampMs > rangeStartMs
      : sample.timestampMs >= rangeStartMs;
    return afterStart && sample.timestampMs <= rangeEndMs;
  });
}

/** Increase between two consecutive counter values, treating any decrease as a reset. */
function stepIncrease(previous: number, current: number): number {
  if (current >= previous) {
    return current - previous;
  }
  // After a reset the counter restarted from zero, so the whole current value
  // is new. The clamp keeps the step non-negative for a negative value, which
  // a counter never exposes.
  return Math.max(current, 0);
}

function withoutNaN(samples: readonly WindowSample[]): WindowSample[] {
  return samples.filter((sample) => !Number.isNaN(sample.value));
}

/**
 * Computes the reset-aware increase of a counter over the samples.
 *
 * Any decrease counts as a counter reset, with no tolerance, and the value
 * after the reset is added in full because the counter restarted from zero.
 * For non-negative counters without `NaN` samples, the result is the number
 * that PromQL `increase()` computes before it extrapolates: `last - first`
 * plus the value before each reset. The result is never negative.
 *
 * `NaN` samples are skipped, as if that scrape had failed, so a `NaN` neither
 * hides a reset nor makes the result `NaN`. Prometheus differs here: its
 * `increase()` returns `NaN` when the first or last sample is `NaN`.
 *
 * Returns `NaN` when fewer than 2 samples are not `NaN`.
 */
export function counterIncrease(samples: readonly WindowSample[]): number {
  const usable = withoutNaN(samples);
  const first = usable[0];
  const last = usable[usable.length - 1];
  if (first === undefined || last === undefined || usable.length < 2) {
    return NaN;
  }
  // Adding the pre-reset values to `last - first`, rather than summing the
  // step increases, rounds the same way as Prometheus does.
  let increase = last.value - first.value;
  for (let i = 1; i < usable.length; i++) {
    const previous = usable[i - 1]!.value;
    const current = usable[i]!.value;
    if (current < previous) {
      increase += previous;
      if (current < 0) {
        // Counts a negative post-reset value as 0, as stepIncrease does.
        increase -= current;
      }
    }
  }
  return Math.max(increase, 0);
}

/**
 * Computes the per-second rate of a counter: {@link counterIncrease} divided
 * by the time between the first and the last sample that are not `NaN`.
 *
 * Up to floating-point rounding, this equals PromQL `rate()` evaluated at the
 * last sample's timestamp over a range whose start lies less than 1.1 average
 * sample intervals before the first sample. Prometheus then extrapolates the
 * increase to the range start, multiplying it by `range / sampledInterval`,
 * and divides by the range, which cancels. The exception is a counter whose
 * first value is small against its increase
 * (`first / increase < durationToStart / sampledInterval`): Prometheus then
 * stops the extrapolation at the counter's zero point and returns a lower
 * rate.
 *
 * Returns `NaN` when fewer than 2 samples are not `NaN`, or when the last
 * usable timestamp is not after the first (a wall clock stepped back across
 * the whole window). A clock stepped back inside the window shortens the
 * measured duration and so inflates the rate.
 */
export function counterRate(samples: readonly WindowSample[]): number {
  const usable = withoutNaN(samples);
  const first = usable[0];
  const last = usable[usable.length - 1];
  if (first === undefined || last === undefined || usable.length < 2) {
    return NaN;
  }
  const durationSeconds = (last.timestampMs - first.timestampMs) / 1000;
  if (!(durationSeconds > 0)) {
    return NaN;
  }
  return counterIncrease(usable) / durationSeconds;
}

/**
 * Splits a counter into consecutive scrape intervals and returns the
 * reset-aware increase and per-second rate of each, for statistics such as
 * the max tokens/s over scrape intervals.
 *
 * `NaN` samples are skipped, so an interval spans a failed scrape. An interval
 * whose end timestamp is not after its start (a stepped-back clock) has no
 * usable duration and is left out, so the increases of the returned intervals
 * can sum to less than {@link counterIncrease}.
 */
export function intervalRates(
  samples: readonly WindowSample[],
): IntervalRate[] {
  const usable = withoutNaN(samples);
  const intervals: IntervalRate[] = [];
  for (let i = 1; i < usable.length; i++) {
    const start = usable[i - 1]!;
    const end = usable[i]!;
    const durationSeconds = (end.timestampMs - start.timestampMs) / 1000;
    if (!(durationSeconds > 0)) {
      continue;
    }
    const increase = stepIncrease(start.value, end.value);
    intervals.push({
      startMs: start.timestampMs,
      endMs: end.timestampMs,
      increase,
      ratePerSecond: increase / durationSeconds,
    });
  }
  return intervals;
}

function isInfinite(value: number): boolean {
  return value === Infinity || value === -Infinity;
}

/**
 * Adds `increment` to a running sum with the Kahan-Babuska-Neumaier
 * compensation. Returns the new sum and compensation. The compensation is
 * reset to 0 once the sum is infinite, because it is meaningless there.
 */
function compensatedAdd(
  increment: number,
  sum: number,
  compensation: number,
): [number, number] {
  const total = sum + increment;
  if (isInfinite(total)) {
    return [total, 0];
  }
  if (Math.abs(sum) >= Math.abs(increment)) {
    return [total, compensation + ((sum - total) + increment)];
  }
  return [total, compensation + ((increment - total) + sum)];
}

/**
 * Computes the mean of the sample values as PromQL `avg_over_time()` does in
 * current Prometheus 3.x releases: a compensated (Kahan-Babuska-Neumaier) sum
 * divided by the count. When the running sum would overflow to ±Infinity, the computation
 * switches to an incremental mean, which stays finite.
 *
 * Any `NaN` value makes the result `NaN`. Infinite values give ±Infinity, or
 * `NaN` when both signs occur. Returns `NaN` for no samples, where Prometheus
 * returns no result.
 *
 * NOTE: Earlier releases, all of 2.x included, use the incremental mean
 * throughout, so their results can differ from this one in the last bits.
 */
export function avgOverTime(samples: readonly WindowSample[]): number {
  const first = samples[0];
  if (first === undefined) {
    return NaN;
  }
  let sum = first.value;
  let compensation = 0;
  let mean = 0;
  let incremental = false;
  let count = 1;
  for (let i = 1; i < samples.length; i++) {
    const value = samples[i]!.value;
    count = i + 1;
    if (!incremental) {
      const [newSum, newCompensation] = compensatedAdd(
        value,
        sum,
        compensation,
      );
      if (!isInfinite(newSum)) {
        sum = newSum;
        compensation = newCompensation;
        continue;
      }
      // The direct sum overflowed, so continue with the mean of the values
      // seen so far and update it incrementally from here on.
      incremental = true;
      mean = sum / (count - 1);
      compensation /= count - 1;
    }
    const keptFraction = (count - 1) / count;
    [mean, compensation] = compensatedAdd(
      value / count,
      keptFraction * mean,
      keptFraction * compensation,
    );
  }
  if (incremental) {
    return mean + compensation;
  }
  return sum / count + compensation / count;
}

/**
 * Returns the smallest sample value, like PromQL `min_over_time()`: `NaN`
 * values are ignored unless every value is `NaN`. Returns `NaN` for no
 * samples.
 */
export function minOverTime(samples: readonly WindowSample[]): number {
  let minimum = NaN;
  for (const sample of samples) {
    if (sample.value < minimum || Number.isNaN(minimum)) {
      minimum = sample.value;
    }
  }
  return minimum;
}

/**
 * Returns the largest sample value, like PromQL `max_over_time()`: `NaN`
 * values are ignored unless every value is `NaN`. Returns `NaN` for no
 * samples.
 */
export function maxOverTime(samples: readonly WindowSample[]): number {
  let maximum = NaN;
  for (const sample of samples) {
    if (sample.value > maximum || Number.isNaN(maximum)) {
      maximum = sample.value;
    }
  }
  return maximum;
}

/**
 * Returns the value of the last sample in scrape order, like PromQL
 * `last_over_time()`. The value may be `NaN`. Returns `NaN` for no samples.
 */
export function lastOverTime(samples: readonly WindowSample[]): number {
  const last = samples[samples.length - 1];
  return last === undefined ? NaN : last.value;
}
