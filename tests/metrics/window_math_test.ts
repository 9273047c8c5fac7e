import assert from "node:assert/strict";

import {
  avgOverTime,
  counterIncrease,
  counterRate,
  intervalRates,
  lastOverTime,
  maxOverTime,
  minOverTime,
  selectRangeSamples,
  type WindowSample,
} from "../../src/metrics/window_math.ts";
import { prometheusExtrapolatedRate } from "../../src/metrics/prometheus_rate.ts";
import {
  type BucketCount,
  estimateHistogramQuantile,
  histogramQuantile,
  parseBucketBound,
  sumBucketsByBound,
} from "../../src/metrics/histogram_quantile.ts";
import {
  type HistogramWindow,
  histogramWindow,
  sumHistogramWindows,
} from "../../src/metrics/histogram_window.ts";

// ---------------------------------------------------------------------------
// Helpers

/** Relative tolerance for float comparisons. */
const RELATIVE_TOLERANCE = 1e-9;

/**
 * Asserts that `actual` equals `expected` within `relativeTolerance`, or
 * within `absoluteTolerance` when given. `NaN` must match `NaN`, and
 * infinities must match exactly.
 */
function assertNumber(
  actual: number,
  expected: number,
  label: string,
  options: { relativeTolerance?: number; absoluteTolerance?: number } = {},
): void {
  if (Number.isNaN(expected)) {
    assert.ok(Number.isNaN(actual), `${label}: expected NaN, got ${actual}`);
    return;
  }
  if (!Number.isFinite(expected)) {
    assert.equal(actual, expected, `${label}: expected ${expected}`);
    return;
  }
  const allowed = options.absoluteTolerance ??
    (options.relativeTolerance ?? RELATIVE_TOLERANCE) * Math.abs(expected);
  assert.ok(
    Math.abs(actual - expected) <= allowed,
    `${label}: expected ${expected} (within ${allowed}), got ${actual}`,
  );
}

/** Builds samples one second apart from a list of values. */
function series(values: readonly number[], stepMs = 1000): WindowSample[] {
  return values.map((value, i) => ({ timestampMs: i * stepMs, value }));
}

/** Builds samples from `[seconds, value]` pairs. */
function at(points: readonly [number, number][]): WindowSample[] {
  return points.map(([seconds, value]) => ({
    timestampMs: seconds * 1000,
    value,
  }));
}

// Minimal reader for the Prometheus text files under tests/testdata/vllm.
// It handles only what those files contain: `name{labels} value` lines with
// no timestamps and no escaped quotes inside label values.

interface ExpositionLine {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const VLLM_TESTDATA = new URL("../testdata/vllm/", import.meta.url);

function readExposition(fileName: string): ExpositionLine[] {
  const text = Deno.readTextFileSync(new URL(fileName, VLLM_TESTDATA));
  const lines: ExpositionLine[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) {
      continue;
    }
    const match = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    assert.ok(match !== null, `${fileName}: unexpected line ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    lines.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return lines;
}

function matchesLabels(
  line: ExpositionLine,
  labels: Record<string, string>,
): boolean {
  return Object.entries(labels).every(([key, value]) =>
    line.labels[key] === value
  );
}

/** Returns the value of the single series `name` with the given labels. */
function valueOf(
  lines: readonly ExpositionLine[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = lines.filter((line) =>
    line.name === name && matchesLabels(line, labels)
  );
  assert.equal(found.length, 1, `expected one series ${name}`);
  return found[0]!.value;
}

/** Returns the `le` label value to bucket count of one histogram label set. */
function bucketsOf(
  lines: readonly ExpositionLine[],
  family: string,
  labels: Record<string, string> = {},
): Map<string, number> {
  const buckets = new Map<string, number>();
  for (const line of lines) {
    if (line.name === `${family}_bucket` && matchesLabels(line, labels)) {
      buckets.set(line.labels["le"]!, line.value);
    }
  }
  assert.ok(buckets.size > 0, `no buckets for ${family}`);
  return buckets;
}

/**
 * Builds the window of one histogram label set from two scrapes of it, taken
 * `dtMs` apart.
 */
function windowFromScrapes(
  before: readonly ExpositionLine[],
  after: readonly ExpositionLine[],
  family: string,
  labels: Record<string, string> = {},
  dtMs = 5000,
): HistogramWindow {
  const beforeBuckets = bucketsOf(before, family, labels);
  const afterBuckets = bucketsOf(after, family, labels);
  const bucketSeries = new Map<string, WindowSample[]>();
  for (const [le, count] of afterBuckets) {
    const previous = beforeBuckets.get(le);
    assert.ok(previous !== undefined, `${family}: le=${le} missing before`);
    bucketSeries.set(le, [
      { timestampMs: 0, value: previous },
      { timestampMs: dtMs, value: count },
    ]);
  }
  const twoScrapes = (name: string): WindowSample[] => [
    { timestampMs: 0, value: valueOf(before, name, labels) },
    { timestampMs: dtMs, value: valueOf(after, name, labels) },
  ];
  return histogramWindow(
    bucketSeries,
    twoScrapes(`${family}_sum`),
    twoScrapes(`${family}_count`),
  );
}

/**
 * Builds the since-start window of one label set from a single payload, by
 * pairing it with an all-zero scrape at process start.
 */
function windowSinceStart(
  lines: readonly ExpositionLine[],
  family: string,
  labels: Record<string, string>,
): HistogramWindow {
  const zero = (value: number): WindowSample[] => [
    { timestampMs: 0, value: 0 },
    { timestampMs: 1000, value },
  ];
  const bucketSeries = new Map<string, WindowSample[]>();
  for (const [le, count] of bucketsOf(lines, family, labels)) {
    bucketSeries.set(le, zero(count));
  }
  return histogramWindow(
    bucketSeries,
    zero(valueOf(lines, `${family}_sum`, labels)),
    zero(valueOf(lines, `${family}_count`, labels)),
  );
}

// ---------------------------------------------------------------------------
// Counters

Deno.test("counterIncrease table", async (t) => {
  const rows: { name: string; samples: WindowSample[]; expected: number }[] = [
    { name: "no samples", samples: [], expected: NaN },
    { name: "single sample", samples: series([5]), expected: NaN },
    { name: "steady growth", samples: series([1, 4, 10]), expected: 9 },
    {
      name: "reset to a lower value",
      samples: series([10, 15, 3, 8]),
      expected: 13,
    },
    { name: "reset to zero", samples: series([10, 0, 4]), expected: 4 },
    { name: "two resets", samples: series([5, 9, 2, 7, 1]), expected: 12 },
    {
      name: "tiny decrease is a reset",
      samples: series([100, 99.5]),
      expected: 99.5,
    },
    {
      name: "NaN between hides no reset",
      samples: series([10, NaN, 3]),
      expected: 3,
    },
    {
      name: "NaN at both ends skipped",
      samples: series([NaN, 10, 15, NaN]),
      expected: 5,
    },
    {
      name: "one usable sample",
      samples: series([NaN, 4, NaN]),
      expected: NaN,
    },
    { name: "all NaN", samples: series([NaN, NaN]), expected: NaN },
    {
      name: "array order wins over timestamps",
      samples: [
        { timestampMs: 3000, value: 1 },
        { timestampMs: 1000, value: 5 },
        { timestampMs: 2000, value: 6 },
      ],
      expected: 5,
    },
    {
      name: "negative value after reset counts as 0",
      samples: series([5, -2, 3]),
      expected: 5,
    },
    {
      // vllm:generation_tokens_total, metrics-v1-idle.prom -> metrics-v1-busy.prom
      name: "vLLM idle to busy",
      samples: series([432060, 432806], 5000),
      expected: 746,
    },
    {
      // vllm:generation_tokens_total, metrics-v1-busy.prom -> metrics-v1-restarted.prom
      name: "vLLM container restart",
      samples: series([432806, 1003], 5000),
      expected: 1003,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertNumber(counterIncrease(row.samples), row.expected, row.name);
    });
  }
});

Deno.test("counterIncrease never negative", () => {
  const samples = series([0.3, 0.1, 0.2, 0.05, 0.4]);
  const increase = counterIncrease(samples);
  assert.ok(increase >= 0, `increase ${increase} is negative`);
  assertNumber(increase, 0.1 + 0.1 + 0.05 + 0.35, "sum of steps");
});

Deno.test("counterRate table", async (t) => {
  const rows: { name: string; samples: WindowSample[]; expected: number }[] = [
    {
      name: "vLLM generation tokens per second",
      samples: series([432060, 432806], 5000),
      expected: 149.2,
    },
    {
      name: "vLLM prompt tokens per second",
      samples: series([5061731, 5221789], 5000),
      expected: 32011.6,
    },
    {
      name: "reset inside the window",
      samples: at([[0, 100], [10, 20]]),
      expected: 2,
    },
    {
      name: "duration between usable samples",
      samples: at([[0, NaN], [5, 10], [10, 20], [15, NaN]]),
      expected: 2,
    },
    {
      name: "clock stepped back over the window",
      samples: at([[10, 1], [5, 2]]),
      expected: NaN,
    },
    { name: "equal timestamps", samples: at([[5, 1], [5, 2]]), expected: NaN },
    { name: "single sample", samples: at([[5, 1]]), expected: NaN },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertNumber(counterRate(row.samples), row.expected, row.name);
    });
  }
});

Deno.test("counterRate equals Prometheus rate at last sample", async (t) => {
  // Scrapes about 5 s apart with jitter, a reset in the middle and a first
  // value large enough that the zero-point limit does not apply.
  const samples = at([
    [100.2, 5000],
    [105.1, 5040],
    [110.4, 5090],
    [114.9, 12],
    [120.0, 70],
    [125.3, 111],
  ]);
  const endMs = samples[samples.length - 1]!.timestampMs;
  const firstMs = samples[0]!.timestampMs;
  const averageIntervalMs = (endMs - firstMs) / (samples.length - 1);
  const rows = [
    { name: "range starts at first sample", startMs: firstMs },
    { name: "range starts 1 interval earlier", startMs: firstMs - 5000 },
    {
      name: "range starts 1.05 intervals earlier",
      startMs: firstMs - 1.05 * averageIntervalMs,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertNumber(
        prometheusExtrapolatedRate(samples, row.startMs, endMs, true, true),
        counterRate(samples),
        row.name,
      );
    });
  }
});

Deno.test("intervalRates splits scrape intervals", () => {
  const samples = at([
    [0, 10],
    [5, 20],
    [10, 5],
    [10, 7],
    [20, NaN],
    [25, 17],
  ]);
  const intervals = intervalRates(samples);
  assert.deepEqual(
    intervals.map((interval) => [interval.startMs, interval.endMs]),
    [[0, 5000], [5000, 10000], [10000, 25000]],
    "zero-length interval is dropped and NaN is spanned",
  );
  const expected = [
    { increase: 10, ratePerSecond: 2 },
    { increase: 5, ratePerSecond: 1 },
    { increase: 10, ratePerSecond: 10 / 15 },
  ];
  expected.forEach((row, i) => {
    assertNumber(intervals[i]!.increase, row.increase, `increase ${i}`);
    assertNumber(
      intervals[i]!.ratePerSecond,
      row.ratePerSecond,
      `rate ${i}`,
    );
  });
});

Deno.test("intervalRates of vLLM scrapes", () => {
  const intervals = intervalRates(series([432060, 432806, 1003], 5000));
  assert.equal(intervals.length, 2);
  assertNumber(intervals[0]!.ratePerSecond, 149.2, "busy interval");
  assertNumber(intervals[1]!.increase, 1003, "restart interval");
  assertNumber(intervals[1]!.ratePerSecond, 200.6, "restart rate");
});

// ---------------------------------------------------------------------------
// Prometheus extrapolation

Deno.test("prometheusExtrapolatedRate table", async (t) => {
  const rows: {
    name: string;
    samples: WindowSample[];
    startSeconds: number;
    endSeconds: number;
    isCounter: boolean;
    isRate: boolean;
    zeroPointBeforeThreshold?: boolean;
    expected: number;
  }[] = [
    {
      // Gaps of 5 s at both ends are below 1.1 x 10 s, so the increase of 50
      // over 50 s is extrapolated to the full 60 s.
      name: "extrapolates to both ends",
      samples: at([[5, 10], [15, 20], [25, 30], [35, 40], [45, 50], [55, 60]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: false,
      expected: 60,
    },
    {
      name: "rate divides by the range",
      samples: at([[5, 10], [15, 20], [25, 30], [35, 40], [45, 50], [55, 60]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: true,
      expected: 1,
    },
    {
      // The 30 s gap at the start exceeds 1.1 x 10 s, so only 5 s are added.
      name: "series start inside range adds half interval",
      samples: at([[30, 100], [40, 110], [50, 120], [60, 130]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: false,
      expected: 35,
    },
    {
      // A gap of 1.09 average intervals is extrapolated in full.
      name: "gap just below 1.1 intervals",
      samples: at([[10.9, 100], [20.9, 110], [30.9, 120], [40.9, 130]]),
      startSeconds: 0,
      endSeconds: 40.9,
      isCounter: true,
      isRate: false,
      expected: 40.9,
    },
    {
      // A gap of 1.15 average intervals adds only half an interval (5 s).
      name: "gap just above 1.1 intervals",
      samples: at([[11.5, 100], [21.5, 110], [31.5, 120], [41.5, 130]]),
      startSeconds: 0,
      endSeconds: 41.5,
      isCounter: true,
      isRate: false,
      expected: 35,
    },
    {
      // Same at the end of the range.
      name: "end gap just above 1.1 intervals",
      samples: at([[0, 100], [10, 110], [20, 120], [30, 130]]),
      startSeconds: 0,
      endSeconds: 41.5,
      isCounter: true,
      isRate: false,
      expected: 35,
    },
    {
      // The counter reaches 0 two seconds before the first sample.
      name: "zero point shortens half interval",
      samples: at([[30, 2], [40, 12], [50, 22], [60, 32]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: false,
      expected: 32,
    },
    {
      // Zero point 8 s before the first sample: after the threshold test it
      // does not shorten the 5 s half interval.
      name: "zero point after threshold test",
      samples: at([[30, 8], [40, 18], [50, 28], [60, 38]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: false,
      expected: 35,
    },
    {
      // Before Prometheus 2.51 the 8 s to the zero point replaced the 30 s
      // gap first, passed the threshold test and was added in full.
      name: "zero point before threshold test",
      samples: at([[30, 8], [40, 18], [50, 28], [60, 38]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: false,
      zeroPointBeforeThreshold: true,
      expected: 38,
    },
    {
      name: "counter reset adds value before it",
      samples: at([[10, 50], [20, 60], [30, 5], [40, 15]]),
      startSeconds: 10,
      endSeconds: 40,
      isCounter: true,
      isRate: false,
      expected: 25,
    },
    {
      name: "delta has no reset handling",
      samples: at([[10, 50], [20, 60], [30, 5], [40, 15]]),
      startSeconds: 10,
      endSeconds: 40,
      isCounter: false,
      isRate: false,
      expected: -35,
    },
    {
      name: "delta has no zero point limit",
      samples: at([[30, 2], [40, 12], [50, 22], [60, 32]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: false,
      isRate: false,
      expected: 35,
    },
    {
      name: "fewer than 2 samples",
      samples: at([[30, 2]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: true,
      expected: NaN,
    },
    {
      name: "NaN last value",
      samples: at([[30, 2], [40, NaN]]),
      startSeconds: 0,
      endSeconds: 60,
      isCounter: true,
      isRate: true,
      expected: NaN,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const options = row.zeroPointBeforeThreshold === undefined
        ? {}
        : { zeroPointBeforeThreshold: row.zeroPointBeforeThreshold };
      const actual = prometheusExtrapolatedRate(
        row.samples,
        row.startSeconds * 1000,
        row.endSeconds * 1000,
        row.isCounter,
        row.isRate,
        options,
      );
      assertNumber(actual, row.expected, row.name);
    });
  }
});

Deno.test("prometheusExtrapolatedRate rejects invalid input", async (t) => {
  await t.step("sample outside range", () => {
    assert.throws(
      () =>
        prometheusExtrapolatedRate(at([[5, 1], [70, 2]]), 0, 60000, true, true),
      RangeError,
    );
  });
  await t.step("timestamps not increasing", () => {
    assert.throws(
      () =>
        prometheusExtrapolatedRate(
          at([[20, 1], [10, 2]]),
          0,
          60000,
          true,
          true,
        ),
      RangeError,
    );
  });
  await t.step("empty range", () => {
    assert.throws(
      () => prometheusExtrapolatedRate([], 60000, 60000, true, true),
      RangeError,
    );
  });
});

Deno.test("selectRangeSamples boundaries", async (t) => {
  const samples = at([[0, 1], [5, 2], [10, 3], [15, 4]]);
  await t.step("left-open by default", () => {
    assert.deepEqual(
      selectRangeSamples(samples, 5000, 15000).map((s) => s.value),
      [3, 4],
    );
  });
  await t.step("closed when leftOpen is false", () => {
    assert.deepEqual(
      selectRangeSamples(samples, 5000, 15000, { leftOpen: false }).map((s) =>
        s.value
      ),
      [2, 3, 4],
    );
  });
});

// ---------------------------------------------------------------------------
// *_over_time

Deno.test("avgOverTime table", async (t) => {
  const max = Number.MAX_VALUE;
  const rows: { name: string; values: number[]; expected: number }[] = [
    { name: "no samples", values: [], expected: NaN },
    { name: "single value", values: [7], expected: 7 },
    { name: "plain mean", values: [1, 2, 3, 4], expected: 2.5 },
    { name: "NaN makes NaN", values: [1, NaN, 3], expected: NaN },
    { name: "infinity wins", values: [1, Infinity, 2], expected: Infinity },
    {
      name: "opposite infinities",
      values: [Infinity, -Infinity],
      expected: NaN,
    },
    {
      // A plain running sum returns 0 here because 1 + 1e100 rounds to 1e100.
      name: "compensated sum keeps small terms",
      values: [1, 1e100, 1, -1e100],
      expected: 0.5,
    },
    {
      // A plain running sum overflows to Infinity.
      name: "incremental mean after overflow",
      values: [max, max],
      expected: max,
    },
    {
      name: "incremental mean of four large values",
      values: [1e308, 1e308, 1e308, 1e308],
      expected: 1e308,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertNumber(avgOverTime(series(row.values)), row.expected, row.name);
    });
  }
  await t.step("compensated sum is exact for 0.1 0.2 0.3", () => {
    // A plain sum gives 0.20000000000000004.
    assert.equal(avgOverTime(series([0.1, 0.2, 0.3])), 0.2);
  });
});

Deno.test("min, max and last over time table", async (t) => {
  const rows: {
    name: string;
    values: number[];
    min: number;
    max: number;
    last: number;
  }[] = [
    { name: "no samples", values: [], min: NaN, max: NaN, last: NaN },
    { name: "plain values", values: [3, 1, 2], min: 1, max: 3, last: 2 },
    {
      name: "NaN ignored",
      values: [NaN, 2, NaN, 5, NaN],
      min: 2,
      max: 5,
      last: NaN,
    },
    { name: "all NaN", values: [NaN, NaN], min: NaN, max: NaN, last: NaN },
    {
      name: "infinities",
      values: [-Infinity, 1, Infinity],
      min: -Infinity,
      max: Infinity,
      last: Infinity,
    },
    {
      // metrics-v1-idle.prom -> metrics-v1-busy.prom, vllm:kv_cache_usage_perc
      name: "vLLM KV cache usage",
      values: [0.0, 0.28748629385964913],
      min: 0,
      max: 0.28748629385964913,
      last: 0.28748629385964913,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const samples = series(row.values);
      assertNumber(minOverTime(samples), row.min, "min");
      assertNumber(maxOverTime(samples), row.max, "max");
      assertNumber(lastOverTime(samples), row.last, "last");
    });
  }
  await t.step("vLLM KV cache average", () => {
    assertNumber(
      avgOverTime(series([0.0, 0.28748629385964913])),
      0.14374314692982457,
      "avg",
    );
  });
});

// ---------------------------------------------------------------------------
// histogram_quantile

Deno.test("histogramQuantile table", async (t) => {
  const simple: BucketCount[] = [
    { le: 1, count: 5 },
    { le: 2, count: 8 },
    { le: Infinity, count: 10 },
  ];
  const rows: {
    name: string;
    q: number;
    buckets: BucketCount[];
    expected: number;
    inInfBucket?: boolean;
    forcedMonotonic?: boolean;
    ignoredSmallDeltas?: boolean;
  }[] = [
    { name: "q below 0", q: -0.1, buckets: simple, expected: -Infinity },
    { name: "q above 1", q: 1.1, buckets: simple, expected: Infinity },
    { name: "q NaN", q: NaN, buckets: simple, expected: NaN },
    {
      name: "missing +Inf bucket",
      q: 0.5,
      buckets: [{ le: 1, count: 5 }, { le: 2, count: 8 }],
      expected: NaN,
    },
    {
      name: "only +Inf bucket",
      q: 0.5,
      buckets: [{ le: Infinity, count: 8 }],
      expected: NaN,
    },
    { name: "no buckets", q: 0.5, buckets: [], expected: NaN },
    {
      name: "no observations",
      q: 0.5,
      buckets: [{ le: 1, count: 0 }, { le: Infinity, count: 0 }],
      expected: NaN,
    },
    {
      name: "first bucket interpolates from 0",
      q: 0.4,
      buckets: simple,
      expected: 0.8,
    },
    {
      name: "unsorted input",
      q: 0.65,
      buckets: [
        { le: Infinity, count: 10 },
        { le: 2, count: 8 },
        { le: 1, count: 5 },
      ],
      expected: 1.5,
    },
    {
      name: "rank in +Inf bucket",
      q: 0.9,
      buckets: simple,
      expected: 2,
      inInfBucket: true,
    },
    {
      name: "q 1 with no overflow",
      q: 1,
      buckets: [{ le: 1, count: 5 }, { le: 2, count: 10 }, {
        le: Infinity,
        count: 10,
      }],
      expected: 2,
      inInfBucket: false,
    },
    {
      // 0 + 1 x (0 / 0), as in Prometheus.
      name: "q 0 with empty first bucket",
      q: 0,
      buckets: [{ le: 1, count: 0 }, { le: 2, count: 5 }, {
        le: Infinity,
        count: 5,
      }],
      expected: NaN,
    },
    {
      name: "same bound merged",
      q: 0.5,
      buckets: [{ le: 1, count: 2 }, { le: 1, count: 3 }, {
        le: Infinity,
        count: 10,
      }],
      expected: 1,
    },
    {
      name: "decrease forced monotonic",
      q: 0.75,
      buckets: [
        { le: 1, count: 10 },
        { le: 2, count: 5 },
        { le: 4, count: 20 },
        { le: Infinity, count: 20 },
      ],
      expected: 3,
      forcedMonotonic: true,
      ignoredSmallDeltas: false,
    },
    {
      name: "float error ignored",
      q: 0.5,
      buckets: [
        { le: 1, count: 1e13 },
        { le: 2, count: 1e13 - 1 },
        { le: Infinity, count: 1e13 - 1 },
      ],
      expected: 0.5,
      forcedMonotonic: false,
      ignoredSmallDeltas: true,
    },
    {
      name: "first bound at or below 0",
      q: 0.1,
      buckets: [
        { le: -1, count: 2 },
        { le: 0, count: 4 },
        { le: 1, count: 10 },
        { le: Infinity, count: 10 },
      ],
      expected: -1,
    },
    {
      name: "negative bounds interpolate",
      q: 0.3,
      buckets: [
        { le: -1, count: 2 },
        { le: 0, count: 4 },
        { le: 1, count: 10 },
        { le: Infinity, count: 10 },
      ],
      expected: -0.5,
    },
    {
      name: "NaN bound ignored",
      q: 0.4,
      buckets: [...simple, { le: NaN, count: 1000 }],
      expected: 0.8,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const result = estimateHistogramQuantile(row.q, row.buckets);
      assertNumber(result.value, row.expected, "value");
      assertNumber(
        histogramQuantile(row.q, row.buckets),
        row.expected,
        "histogramQuantile",
      );
      if (row.inInfBucket !== undefined) {
        assert.equal(result.inInfBucket, row.inInfBucket, "inInfBucket");
      }
      if (row.forcedMonotonic !== undefined) {
        assert.equal(
          result.forcedMonotonic,
          row.forcedMonotonic,
          "forcedMonotonic",
        );
      }
      if (row.ignoredSmallDeltas !== undefined) {
        assert.equal(
          result.ignoredSmallDeltas,
          row.ignoredSmallDeltas,
          "ignoredSmallDeltas",
        );
      }
    });
  }
});

Deno.test("histogramQuantile leaves input unchanged", () => {
  const buckets: BucketCount[] = [
    { le: Infinity, count: 20 },
    { le: 2, count: 5 },
    { le: 1, count: 10 },
  ];
  const copy = structuredClone(buckets);
  histogramQuantile(0.5, buckets);
  assert.deepEqual(buckets, copy);
});

Deno.test("parseBucketBound table", async (t) => {
  const rows: { le: string; expected: number }[] = [
    { le: "0.3", expected: 0.3 },
    { le: "1.0", expected: 1 },
    { le: "1e-3", expected: 0.001 },
    { le: "2.5E+2", expected: 250 },
    { le: ".5", expected: 0.5 },
    { le: "-1", expected: -1 },
    { le: "+Inf", expected: Infinity },
    { le: "inf", expected: Infinity },
    { le: "-Inf", expected: -Infinity },
    { le: "Infinity", expected: Infinity },
    { le: "NaN", expected: NaN },
  ];
  for (const row of rows) {
    await t.step(`valid ${row.le}`, () => {
      assertNumber(parseBucketBound(row.le), row.expected, row.le);
    });
  }
  for (const le of ["", "abc", " 1", "0x10", "1.0.0"]) {
    await t.step(`invalid "${le}"`, () => {
      assert.throws(() => parseBucketBound(le), RangeError);
    });
  }
});

Deno.test("sumBucketsByBound merges equal bounds", () => {
  const summed = sumBucketsByBound([
    [{ le: parseBucketBound("1"), count: 3 }, { le: Infinity, count: 4 }],
    [{ le: parseBucketBound("1.0"), count: 5 }, { le: Infinity, count: 9 }],
    [{ le: 0.5, count: 1 }, { le: Infinity, count: 1 }],
  ]);
  assert.deepEqual(summed, [
    { le: 0.5, count: 1 },
    { le: 1, count: 8 },
    { le: Infinity, count: 14 },
  ]);
});

// ---------------------------------------------------------------------------
// Histogram windows from the vLLM fixtures
//
// metrics-v1-idle.prom and metrics-v1-busy.prom are two scrapes of one vLLM
// process 5.000 s apart; metrics-v1-restarted.prom is the same container
// after a restart. The expected figures are plain per-bucket increases
// between two scrapes followed by histogram_quantile. Figures given to 6
// decimals are compared with an absolute tolerance of 5e-7.

const ROUNDED = { absoluteTolerance: 5e-7 };

Deno.test("histogramWindow vLLM idle to busy", async (t) => {
  const idle = readExposition("metrics-v1-idle.prom");
  const busy = readExposition("metrics-v1-busy.prom");
  const labels = { engine: "0", model_name: "org/model-7b" };
  const rows: {
    family: string;
    count: number;
    sum: number;
    mean: number;
    quantiles: [number, number, { absoluteTolerance?: number }][];
  }[] = [
    {
      family: "vllm:request_queue_time_seconds",
      count: 22,
      sum: 2.8867889874057937,
      mean: 0.131218,
      quantiles: [
        // Rank 11 of 19 in the first bucket, le=0.3.
        [0.5, 0.3 * 11 / 19, {}],
        // 0.3 + 0.2 x (20.9 - 19) / (21 - 19); 0.4899999999999999 in float64.
        [0.95, 0.49, {}],
        [0.99, 0.734, {}],
      ],
    },
    {
      family: "vllm:time_to_first_token_seconds",
      count: 64,
      sum: 36.164729254736585,
      mean: 0.565074,
      quantiles: [
        [0.5, 0.386364, ROUNDED],
        // 1.0 + 1.5 x 11.8 / 15.
        [0.95, 2.18, {}],
        [0.99, 2.436, {}],
      ],
    },
    {
      family: "vllm:e2e_request_latency_seconds",
      count: 22,
      sum: 46.9263796665,
      mean: 2.133017,
      quantiles: [
        [0.5, 2.2, {}],
        [0.95, 4.65625, {}],
        [0.99, 4.93125, {}],
      ],
    },
    {
      family: "vllm:inter_token_latency_seconds",
      count: 682,
      sum: 129.79874126033792,
      mean: 0.190321,
      quantiles: [
        [0.5, 0.224724, ROUNDED],
        [0.95, 0.292472, ROUNDED],
        [0.99, 0.298494, ROUNDED],
      ],
    },
  ];
  for (const row of rows) {
    await t.step(row.family, () => {
      const window = windowFromScrapes(idle, busy, row.family, labels);
      assertNumber(window.count, row.count, "count");
      assertNumber(window.sum, row.sum, "sum");
      assertNumber(window.mean, row.mean, "mean", ROUNDED);
      for (const [q, expected, tolerance] of row.quantiles) {
        const result = window.quantile(q);
        assertNumber(result.value, expected, `p${q * 100}`, tolerance);
        assert.equal(result.inInfBucket, false, `p${q * 100} in +Inf`);
      }
    });
  }
  await t.step("queue time buckets", () => {
    const window = windowFromScrapes(
      idle,
      busy,
      "vllm:request_queue_time_seconds",
      labels,
    );
    const byBound = new Map(window.buckets.map((b) => [b.le, b.count]));
    assert.equal(byBound.get(0.3), 19);
    assert.equal(byBound.get(0.5), 21);
    assert.equal(byBound.get(0.8), 22);
    assert.equal(byBound.get(Infinity), 22);
  });
});

Deno.test("histogramWindow vLLM restart resets", () => {
  const busy = readExposition("metrics-v1-busy.prom");
  const restarted = readExposition("metrics-v1-restarted.prom");
  const labels = { engine: "0", model_name: "org/model-7b" };
  const window = windowFromScrapes(
    busy,
    restarted,
    "vllm:request_queue_time_seconds",
    labels,
  );
  // Every series restarted from zero, so the window contains the new values.
  assertNumber(
    window.count,
    valueOf(restarted, "vllm:request_queue_time_seconds_count", labels),
    "count after restart",
  );
  const successAfterRestart = series([
    valueOf(busy, "vllm:request_success_total", {
      ...labels,
      finished_reason: "stop",
    }),
    valueOf(restarted, "vllm:request_success_total", {
      ...labels,
      finished_reason: "stop",
    }),
  ]);
  assertNumber(counterIncrease(successAfterRestart), 3, "requests stopped");
  const promptTokens = series([
    valueOf(busy, "vllm:prompt_tokens_total", labels),
    valueOf(restarted, "vllm:prompt_tokens_total", labels),
  ]);
  assertNumber(counterIncrease(promptTokens), 4785, "prompt tokens");
});

Deno.test("histogramWindow count and bucket fallbacks", async (t) => {
  const grow = (from: number, to: number): WindowSample[] => series([from, to]);
  await t.step("count from +Inf bucket", () => {
    const window = histogramWindow(
      new Map([["1", grow(1, 4)], ["+Inf", grow(2, 7)]]),
      grow(1, 3),
      [],
    );
    assert.equal(window.count, 5);
    assertNumber(window.mean, 2 / 5, "mean");
  });
  await t.step("bucket with one sample dropped", () => {
    const window = histogramWindow(
      new Map([["1", grow(1, 4)], ["2", series([3])], ["+Inf", grow(2, 7)]]),
      grow(1, 3),
      grow(2, 7),
    );
    assert.deepEqual(window.buckets, [
      { le: 1, count: 3 },
      { le: Infinity, count: 5 },
    ]);
  });
  await t.step("no observations", () => {
    const window = histogramWindow(
      new Map([["1", grow(4, 4)], ["+Inf", grow(7, 7)]]),
      grow(3, 3),
      grow(7, 7),
    );
    assert.equal(window.count, 0);
    assertNumber(window.mean, NaN, "mean");
    assertNumber(window.quantile(0.95).value, NaN, "p95");
  });
  await t.step("invalid le", () => {
    assert.throws(
      () => histogramWindow(new Map([["x", grow(1, 2)]]), [], []),
      RangeError,
    );
  });
});

Deno.test("sumHistogramWindows vLLM engines of one model", async (t) => {
  // metrics-v1-two-models.prom: org/model-7b runs engines 0 and 1.
  const lines = readExposition("metrics-v1-two-models.prom");
  const family = "vllm:request_queue_time_seconds";
  const engine0 = windowSinceStart(lines, family, {
    engine: "0",
    model_name: "org/model-7b",
  });
  const engine1 = windowSinceStart(lines, family, {
    engine: "1",
    model_name: "org/model-7b",
  });
  const other = windowSinceStart(lines, family, {
    engine: "0",
    model_name: "org/other-model-14b",
  });
  await t.step("per engine", () => {
    assert.equal(engine0.count, 310);
    assert.equal(engine1.count, 296);
    assert.equal(other.count, 122);
    assertNumber(engine0.quantile(0.95).value, 0.966667, "engine 0", ROUNDED);
    assertNumber(engine1.quantile(0.95).value, 0.91, "engine 1");
    assertNumber(other.quantile(0.95).value, 1.3625, "other model");
  });
  await t.step("summed per le", () => {
    const model = sumHistogramWindows([engine0, engine1]);
    assert.equal(model.count, 606);
    assertNumber(model.quantile(0.95).value, 0.949231, "p95", ROUNDED);
    assertNumber(model.quantile(0.99).value, 4.978571, "p99", ROUNDED);
    assertNumber(
      histogramQuantile(
        0.95,
        sumBucketsByBound([engine0.buckets, engine1.buckets]),
      ),
      model.quantile(0.95).value,
      "sumBucketsByBound",
    );
  });
  await t.step("NaN window left out", () => {
    const empty = histogramWindow(new Map(), [], []);
    assertNumber(empty.count, NaN, "empty count");
    const model = sumHistogramWindows([engine0, empty]);
    assert.equal(model.count, 310);
    assert.equal(model.sum, engine0.sum);
  });
});

Deno.test("histogramWindow since-start trap", () => {
  // metrics-v1-idle.prom alone: since-start p95 is far from the window p95.
  const idle = readExposition("metrics-v1-idle.prom");
  const sinceStart = windowSinceStart(idle, "vllm:request_queue_time_seconds", {
    engine: "0",
    model_name: "org/model-7b",
  });
  assertNumber(sinceStart.quantile(0.95).value, 0.991778, "p95", ROUNDED);
  assertNumber(sinceStart.quantile(0.99).value, 5.165789, "p99", ROUNDED);
  assertNumber(sinceStart.mean, 0.217308, "mean", ROUNDED);
});
