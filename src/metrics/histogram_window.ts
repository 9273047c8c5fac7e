/**
 * Statistics of a classic histogram over a window: observation count, sum,
 * mean and quantiles of the observations made inside the window.
 *
 * @module
 */

import {
  type BucketCount,
  estimateHistogramQuantile,
  type HistogramQuantileEstimate,
  parseBucketBound,
  sumBucketsByBound,
} from "./histogram_quantile.ts";
import { counterIncrease, type WindowSample } from "./window_math.ts";

/** Observations of a histogram inside a window. */
export interface HistogramWindow {
  /** Reset-aware increase of each bucket, sorted by bound. */
  buckets: BucketCount[];
  /** Number of observations in the window. */
  count: number;
  /** Sum of the observed values in the window. */
  sum: number;
  /** `sum / count`, or `NaN` when the window has no observations. */
  mean: number;
  /** Estimates the `q`-quantile from `buckets` like `histogram_quantile()`. */
  quantile(q: number): HistogramQuantileEstimate;
}

function buildWindow(
  buckets: BucketCount[],
  count: number,
  sum: number,
): HistogramWindow {
  return {
    buckets,
    count,
    sum,
    mean: sum / count,
    quantile: (q) => estimateHistogramQuantile(q, buckets),
  };
}

/**
 * Computes what one histogram label set observed inside a window.
 *
 * `bucketSeries` maps each `le` label value (such as `"0.3"` or `"+Inf"`) to
 * that bucket's samples in the window. Each bucket, `_sum` and `_count` gets
 * the reset-aware {@link counterIncrease}. The quantiles are then
 * `histogram_quantile()` over the bucket increases, which matches PromQL
 * `histogram_quantile(q, increase(x_bucket[W]))` whenever Prometheus
 * extrapolates every bucket by the same factor, because scaling all buckets
 * alike does not move a quantile.
 *
 * A bucket with fewer than 2 usable samples is left out, as PromQL
 * `increase()` returns no result for it. When `_count` has fewer than 2
 * usable samples, the `+Inf` bucket's increase is the count.
 *
 * @throws {RangeError} if an `le` value is not a float.
 */
export function histogramWindow(
  bucketSeries: ReadonlyMap<string, readonly WindowSample[]>,
  sumSamples: readonly WindowSample[],
  countSamples: readonly WindowSample[],
): HistogramWindow {
  const increases: BucketCount[] = [];
  for (const [le, samples] of bucketSeries) {
    const increase = counterIncrease(samples);
    if (!Number.isNaN(increase)) {
      increases.push({ le: parseBucketBound(le), count: increase });
    }
  }
  const buckets = sumBucketsByBound([increases]);
  let count = counterIncrease(countSamples);
  if (Number.isNaN(count)) {
    count = buckets.find((bucket) => bucket.le === Infinity)?.count ?? NaN;
  }
  return buildWindow(buckets, count, counterIncrease(sumSamples));
}

/**
 * Adds the windows of several label sets of one histogram, for example the
 * engines of one model, like PromQL `sum by (le)` before
 * `histogram_quantile()`. Buckets are added per numeric bound. A `NaN` count
 * or sum means the label set had too few samples, so it is left out of that
 * total, as `sum()` skips a series that `increase()` dropped. The result is
 * `NaN` when every window has a `NaN` count or sum.
 */
export function sumHistogramWindows(
  windows: readonly HistogramWindow[],
): HistogramWindow {
  const buckets = sumBucketsByBound(windows.map((window) => window.buckets));
  return buildWindow(
    buckets,
    sumIgnoringNaN(windows.map((window) => window.count)),
    sumIgnoringNaN(windows.map((window) => window.sum)),
  );
}

function sumIgnoringNaN(values: readonly number[]): number {
  let total = NaN;
  for (const value of values) {
    if (!Number.isNaN(value)) {
      total = Number.isNaN(total) ? value : total + value;
    }
  }
  return total;
}
