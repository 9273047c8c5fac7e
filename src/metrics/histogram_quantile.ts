/**
 * PromQL `histogram_quantile()` on classic histogram buckets (cumulative
 * counts per `le` upper bound), following Prometheus's `BucketQuantile`.
 *
 * @module
 */

/** One cumulative bucket of a classic histogram. */
export interface BucketCount {
  /** Upper bound from the `le` label, with `Infinity` for `le="+Inf"`. */
  le: number;
  /** Cumulative count of observations less than or equal to `le`. */
  count: number;
}

/** Result of {@link estimateHistogramQuantile}. */
export interface HistogramQuantileEstimate {
  /** The estimated quantile, as `histogram_quantile()` returns it. */
  value: number;
  /**
   * Whether the rank fell into the `+Inf` bucket. `value` is then the
   * highest finite bound, and the true quantile is greater than or equal to
   * it.
   */
  inInfBucket: boolean;
  /**
   * Whether a bucket count lower than the count of a smaller bound was raised
   * to keep the cumulative counts non-decreasing. Prometheus reports this as
   * an info annotation.
   */
  forcedMonotonic: boolean;
  /**
   * Whether differences between adjacent buckets smaller than a relative
   * 1e-12 were treated as float rounding errors and removed.
   */
  ignoredSmallDeltas: boolean;
}

/**
 * Relative tolerance under which adjacent bucket counts count as equal, as in
 * Prometheus. A difference of one real observation is only ignored in
 * buckets with 1e12 or more observations.
 */
const SMALL_DELTA_TOLERANCE = 1e-12;

/** Smallest positive normal float64. */
const MIN_NORMAL = 2.2250738585072014e-308;

/**
 * Returns whether `a` and `b` differ by less than `epsilon` relative to their
 * magnitude. Two `NaN` values count as equal. Near zero the comparison is
 * absolute, scaled by the smallest normal float.
 */
function almostEqual(a: number, b: number, epsilon: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) {
    return true;
  }
  if (a === b) {
    return true;
  }
  const absoluteSum = Math.abs(a) + Math.abs(b);
  const difference = Math.abs(a - b);
  if (a === 0 || b === 0 || absoluteSum < MIN_NORMAL) {
    return difference < epsilon * MIN_NORMAL;
  }
  return difference / Math.min(absoluteSum, Number.MAX_VALUE) < epsilon;
}

/** Merges adjacent buckets with the same bound. The input must be sorted. */
function coalesceBuckets(sorted: readonly BucketCount[]): BucketCount[] {
  const merged: BucketCount[] = [];
  for (const bucket of sorted) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && previous.le === bucket.le) {
      previous.count += bucket.count;
    } else {
      merged.push({ le: bucket.le, count: bucket.count });
    }
  }
  return merged;
}

/**
 * Repairs cumulative counts in place so that they never decrease with the
 * bound. First, a difference within the relative tolerance from the last kept
 * count, in either direction, is set to that count, because it is float
 * rounding. Then any decrease is raised to the last kept count.
 */
function repairCumulativeCounts(
  buckets: BucketCount[],
): { forcedMonotonic: boolean; ignoredSmallDeltas: boolean } {
  let forcedMonotonic = false;
  let ignoredSmallDeltas = false;
  const first = buckets[0];
  if (first === undefined) {
    return { forcedMonotonic, ignoredSmallDeltas };
  }
  let keptCount = first.count;
  for (let i = 1; i < buckets.length; i++) {
    const bucket = buckets[i]!;
    if (bucket.count === keptCount) {
      continue;
    }
    if (almostEqual(keptCount, bucket.count, SMALL_DELTA_TOLERANCE)) {
      bucket.count = keptCount;
      ignoredSmallDeltas = true;
      continue;
    }
    if (bucket.count < keptCount) {
      bucket.count = keptCount;
      forcedMonotonic = true;
      continue;
    }
    keptCount = bucket.count;
  }
  return { forcedMonotonic, ignoredSmallDeltas };
}

/**
 * Returns the smallest index in `[0, length)` for which `predicate` is true,
 * or `length` if there is none, by binary search. The predicate must be false
 * up to some index and true from there on. The search visits indexes in the
 * same order as Go's `sort.Search`, so even unordered input (such as `NaN`
 * counts) selects the same bucket as Prometheus.
 */
function searchFirst(
  length: number,
  predicate: (index: number) => boolean,
): number {
  let low = 0;
  let high = length;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (predicate(middle)) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return low;
}

function estimate(
  value: number,
  inInfBucket = false,
  forcedMonotonic = false,
  ignoredSmallDeltas = false,
): HistogramQuantileEstimate {
  return { value, inInfBucket, forcedMonotonic, ignoredSmallDeltas };
}

/**
 * Estimates the `q`-quantile from classic histogram buckets the way PromQL
 * `histogram_quantile(q, ...)` does, and reports whether the rank fell into
 * the `+Inf` bucket.
 *
 * Buckets may come in any order and are not modified. The rules:
 *
 * - `q` is `NaN`: `NaN`. `q < 0`: `-Infinity`. `q > 1`: `+Infinity`.
 * - No `+Inf` bucket, fewer than 2 distinct bounds, or 0 observations: `NaN`.
 * - Buckets with the same bound are merged by adding their counts.
 * - Cumulative counts that decrease are repaired: differences below a
 *   relative 1e-12 are float rounding and removed, and any other decrease is
 *   raised to the previous count.
 * - The rank is `q` times the `+Inf` count. The result lies in the first
 *   bucket whose cumulative count is at least the rank, interpolated linearly
 *   between the bucket's lower and upper bound. The first bucket's lower
 *   bound is 0, unless its upper bound is 0 or less; then that upper bound is
 *   returned.
 * - A rank in the `+Inf` bucket returns the highest finite bound, with
 *   `inInfBucket` set.
 *
 * Buckets whose `le` is `NaN` are ignored, because Prometheus does not
 * define an order for them.
 *
 * NOTE: Prometheus releases before 2.49 skip the 1e-12 tolerance step and
 * only raise decreases, so they can differ on counts with float rounding
 * errors.
 */
export function estimateHistogramQuantile(
  q: number,
  buckets: readonly BucketCount[],
): HistogramQuantileEstimate {
  if (Number.isNaN(q)) {
    return estimate(NaN);
  }
  if (q < 0) {
    return estimate(-Infinity);
  }
  if (q > 1) {
    return estimate(Infinity);
  }

  const sorted = buckets
    .filter((bucket) => !Number.isNaN(bucket.le))
    .sort((a, b) => a.le - b.le);
  if (sorted[sorted.length - 1]?.le !== Infinity) {
    return estimate(NaN);
  }
  const merged = coalesceBuckets(sorted);
  const { forcedMonotonic, ignoredSmallDeltas } = repairCumulativeCounts(
    merged,
  );
  if (merged.length < 2) {
    return estimate(NaN);
  }
  const observations = merged[merged.length - 1]!.count;
  if (observations === 0) {
    return estimate(NaN);
  }

  let rank = q * observations;
  const index = searchFirst(
    merged.length - 1,
    (i) => merged[i]!.count >= rank,
  );
  if (index === merged.length - 1) {
    const highestFinite = merged[merged.length - 2]!.le;
    return estimate(highestFinite, true, forcedMonotonic, ignoredSmallDeltas);
  }
  const bucket = merged[index]!;
  if (index === 0 && bucket.le <= 0) {
    return estimate(bucket.le, false, forcedMonotonic, ignoredSmallDeltas);
  }
  let bucketStart = 0;
  let countInBucket = bucket.count;
  const below = merged[index - 1];
  if (below !== undefined) {
    bucketStart = below.le;
    countInBucket -= below.count;
    rank -= below.count;
  }
  const value = bucketStart +
    (bucket.le - bucketStart) * (rank / countInBucket);
  return estimate(value, false, forcedMonotonic, ignoredSmallDeltas);
}

/**
 * Returns `histogram_quantile(q, ...)` for classic histogram buckets; see
 * {@link estimateHistogramQuantile} for the rules.
 */
export function histogramQuantile(
  q: number,
  buckets: readonly BucketCount[],
): number {
  return estimateHistogramQuantile(q, buckets).value;
}

/**
 * Adds bucket counts with the same numeric bound across several label sets,
 * for example the engines of one model, like PromQL `sum by (le)`. Bounds
 * are compared as numbers, so `le="1"` and `le="1.0"` are merged. Returns the
 * buckets sorted by bound.
 */
export function sumBucketsByBound(
  bucketSets: readonly (readonly BucketCount[])[],
): BucketCount[] {
  const countsByBound = new Map<number, number>();
  for (const buckets of bucketSets) {
    for (const bucket of buckets) {
      countsByBound.set(
        bucket.le,
        (countsByBound.get(bucket.le) ?? 0) + bucket.count,
      );
    }
  }
  return [...countsByBound]
    .map(([le, count]) => ({ le, count }))
    .sort((a, b) => a.le - b.le);
}

const DECIMAL_FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY_LITERAL = /^([+-]?)inf(?:inity)?$/i;

/**
 * Parses a bucket's `le` label value, such as `0.3`, `1.0`, `1e-3` or
 * `+Inf`. Accepts decimal floats, `Inf`/`Infinity` with an optional sign in
 * any letter case, and `NaN`.
 *
 * @throws {RangeError} if the value is not a float.
 */
export function parseBucketBound(le: string): number {
  if (DECIMAL_FLOAT.test(le)) {
    return Number(le);
  }
  const infinity = INFINITY_LITERAL.exec(le);
  if (infinity !== null) {
    return infinity[1] === "-" ? -Infinity : Infinity;
  }
  if (/^nan$/i.test(le)) {
    return NaN;
  }
  throw new RangeError(
    `invalid bucket bound le="${le}": expected a float such as 0.5 or +Inf`,
  );
}
