// Conformance of the window functions with a real Prometheus server.
//
// The test generates 15 minutes of deterministic samples at a 5 s scrape
// interval with millisecond jitter and writes them as OpenMetrics text. It
// backfills them with `promtool tsdb create-blocks-from openmetrics` and
// starts `prometheus` on 127.0.0.1 over that TSDB. Then it compares PromQL
// instant queries with the functions in src/metrics, applied to the samples
// that Prometheus selects. It needs `prometheus` and `promtool` on PATH and
// registers as ignored without them.
//
// Set PROMETHEUS_CONFORMANCE_REPORT to a file path to get a JSON summary with
// the Prometheus version and the maximum relative difference per query.

import assert from "node:assert/strict";

import {
  avgOverTime,
  counterIncrease,
  counterRate,
  lastOverTime,
  maxOverTime,
  minOverTime,
  type RangeSelectionOptions,
  selectRangeSamples,
  type WindowSample,
} from "../../src/metrics/window_math.ts";
import {
  prometheusExtrapolatedRate,
  type PrometheusRateOptions,
} from "../../src/metrics/prometheus_rate.ts";
import {
  type BucketCount,
  estimateHistogramQuantile,
  histogramQuantile,
  parseBucketBound,
} from "../../src/metrics/histogram_quantile.ts";
import { histogramWindow } from "../../src/metrics/histogram_window.ts";

/**
 * Maximum relative difference between Prometheus and our result. Prometheus
 * prints floats in their shortest round-trip form, so differences only come
 * from the order of float operations, such as the incremental mean of
 * avg_over_time in Prometheus 2.x. Against Prometheus 2.42 they were at most
 * 3.1e-15.
 */
const RELATIVE_TOLERANCE = 1e-6;

const SCRAPE_INTERVAL_MS = 5_000;
/** 181 scrapes at 5 s: 15 minutes. */
const SCRAPE_COUNT = 181;
/** Scrape index of the counter reset in `conformance_requests_total`. */
const COUNTER_RESET_INDEX = 90;
/** Scrape index of the first sample of `conformance_late_requests_total`. */
const LATE_SERIES_START_INDEX = 100;
/** Scrape index of the reset of the histogram. */
const HISTOGRAM_RESET_INDEX = 120;
/**
 * Quantiles compared. About 0.5 % of the observations fall into the `+Inf`
 * bucket, so 0.999 lands there.
 */
const QUANTILES = [0.5, 0.95, 0.99, 0.999];
const BUCKET_BOUNDS = [
  "0.005",
  "0.01",
  "0.025",
  "0.05",
  "0.1",
  "0.25",
  "0.5",
  "1",
  "2.5",
  "5",
  "+Inf",
];

// ---------------------------------------------------------------------------
// Tool discovery

function findOnPath(name: string): string | undefined {
  for (const directory of (Deno.env.get("PATH") ?? "").split(":")) {
    if (directory === "") {
      continue;
    }
    const candidate = `${directory}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return candidate;
      }
    } catch (error) {
      if (
        !(error instanceof Deno.errors.NotFound ||
          error instanceof Deno.errors.PermissionDenied)
      ) {
        throw error;
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Deterministic data

interface Dataset {
  requests: WindowSample[];
  lateRequests: WindowSample[];
  temperature: WindowSample[];
  gaugeWithNaN: WindowSample[];
  latencyBuckets: Map<string, WindowSample[]>;
  latencySum: WindowSample[];
  latencyCount: WindowSample[];
  /** Timestamp in milliseconds of each scrape, as Prometheus stores it. */
  scrapeTimesMs: number[];
  openMetrics: string;
}

/**
 * Jitter of scrape `index` in milliseconds, within ±200 ms. Every fourth
 * scrape has none, so evaluation times and range starts can land exactly on
 * a sample.
 */
function jitterMs(index: number): number {
  return index % 4 === 0 ? 0 : ((index * 7919) % 401) - 200;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) {
    return "NaN";
  }
  if (value === Infinity) {
    return "+Inf";
  }
  if (value === -Infinity) {
    return "-Inf";
  }
  return String(value);
}

/**
 * Generates all series. `firstScrapeMs` must be a multiple of the scrape
 * interval so that jitter-free scrapes sit on the 5 s grid.
 */
function generateDataset(firstScrapeMs: number): Dataset {
  const writtenTimes: string[] = [];
  const scrapeTimesMs: number[] = [];
  for (let i = 0; i < SCRAPE_COUNT; i++) {
    const seconds = (
      (firstScrapeMs + i * SCRAPE_INTERVAL_MS + jitterMs(i)) / 1000
    ).toFixed(3);
    writtenTimes.push(seconds);
    // promtool converts the seconds to milliseconds with int64(ts * 1000),
    // which truncates, so the stored time can be 1 ms below the written one.
    scrapeTimesMs.push(Math.trunc(Number(seconds) * 1000));
  }
  const sample = (i: number, value: number): WindowSample => ({
    timestampMs: scrapeTimesMs[i]!,
    value,
  });

  // A counter with a reset, growing by multiples of 1.25 per scrape.
  const requests: WindowSample[] = [];
  let requestCount = 5000;
  for (let i = 0; i < SCRAPE_COUNT; i++) {
    const step = (2 + ((i * 13) % 7)) * 1.25;
    requestCount = i === COUNTER_RESET_INDEX ? step : requestCount + step;
    requests.push(sample(i, requestCount));
  }

  // A counter series that appears inside the window with a small first
  // value, so that Prometheus's zero-point limit applies.
  const lateRequests: WindowSample[] = [];
  for (let i = LATE_SERIES_START_INDEX; i < SCRAPE_COUNT; i++) {
    lateRequests.push(sample(i, 8 + 10 * (i - LATE_SERIES_START_INDEX)));
  }

  // Gauges: one with negative and positive values, one with NaN values.
  const temperature: WindowSample[] = [];
  const gaugeWithNaN: WindowSample[] = [];
  for (let i = 0; i < SCRAPE_COUNT; i++) {
    temperature.push(sample(i, 10 * Math.sin(i / 9) + 0.1 * i));
    gaugeWithNaN.push(sample(i, i % 17 === 5 ? NaN : (i % 11) * 0.7));
  }

  // A histogram with history before the first scrape and a reset. Each
  // scrape adds a deterministic number of observations to each bucket, each
  // observation at the middle of its bucket (7.5 for the +Inf bucket).
  const maximumNewPerBucket = [1, 2, 4, 6, 8, 6, 4, 2, 1, 1, 1];
  const history = BUCKET_BOUNDS.map((_, k) => 500 + 100 * k);
  const bounds = BUCKET_BOUNDS.map(parseBucketBound);
  const midpoints = bounds.map((bound, k) => {
    const lower = k === 0 ? 0 : bounds[k - 1]!;
    return bound === Infinity ? 7.5 : (lower + bound) / 2;
  });
  let perBucket = [...history];
  let observedSum = history.reduce(
    (total, count, k) => total + count * midpoints[k]!,
    0,
  );
  const latencyBuckets = new Map<string, WindowSample[]>(
    BUCKET_BOUNDS.map((le) => [le, []]),
  );
  const latencySum: WindowSample[] = [];
  const latencyCount: WindowSample[] = [];
  for (let i = 0; i < SCRAPE_COUNT; i++) {
    if (i === HISTOGRAM_RESET_INDEX) {
      perBucket = perBucket.map(() => 0);
      observedSum = 0;
    }
    perBucket = perBucket.map((count, k) => {
      const added = k === BUCKET_BOUNDS.length - 1
        ? (i % 9 === 0 ? 1 : 0)
        : (i * (k + 3) + k * k) % (maximumNewPerBucket[k]! + 1);
      observedSum += added * midpoints[k]!;
      return count + added;
    });
    let cumulative = 0;
    BUCKET_BOUNDS.forEach((le, k) => {
      cumulative += perBucket[k]!;
      latencyBuckets.get(le)!.push(sample(i, cumulative));
    });
    latencySum.push(sample(i, observedSum));
    latencyCount.push(sample(i, cumulative));
  }

  const lines: string[] = [];
  const writeSeries = (
    name: string,
    samples: readonly WindowSample[],
    firstIndex = 0,
  ): void => {
    samples.forEach((point, offset) => {
      lines.push(
        `${name} ${formatValue(point.value)} ${
          writtenTimes[firstIndex + offset]
        }`,
      );
    });
  };
  lines.push("# TYPE conformance_requests counter");
  writeSeries("conformance_requests_total", requests);
  lines.push("# TYPE conformance_late_requests counter");
  writeSeries(
    "conformance_late_requests_total",
    lateRequests,
    LATE_SERIES_START_INDEX,
  );
  lines.push("# TYPE conformance_temperature gauge");
  writeSeries("conformance_temperature", temperature);
  lines.push("# TYPE conformance_gauge_with_nan gauge");
  writeSeries("conformance_gauge_with_nan", gaugeWithNaN);
  // OpenMetrics groups a histogram's samples by timestamp.
  lines.push("# TYPE conformance_latency_seconds histogram");
  for (let i = 0; i < SCRAPE_COUNT; i++) {
    for (const le of BUCKET_BOUNDS) {
      const value = latencyBuckets.get(le)![i]!.value;
      lines.push(
        `conformance_latency_seconds_bucket{le="${le}"} ${formatValue(value)} ${
          writtenTimes[i]
        }`,
      );
    }
    lines.push(
      `conformance_latency_seconds_sum ${formatValue(latencySum[i]!.value)} ${
        writtenTimes[i]
      }`,
    );
    lines.push(
      `conformance_latency_seconds_count ${
        formatValue(latencyCount[i]!.value)
      } ${writtenTimes[i]}`,
    );
  }
  lines.push("# EOF");

  return {
    requests,
    lateRequests,
    temperature,
    gaugeWithNaN,
    latencyBuckets,
    latencySum,
    latencyCount,
    scrapeTimesMs,
    openMetrics: lines.join("\n") + "\n",
  };
}

// ---------------------------------------------------------------------------
// Prometheus process and HTTP API

interface QueryResponse {
  status: string;
  error?: string;
  data?: {
    resultType: string;
    result: {
      metric: Record<string, string>;
      value?: [number, string];
      values?: [number, string][];
    }[];
  };
}

function parsePrometheusFloat(text: string): number {
  switch (text) {
    case "NaN":
      return NaN;
    case "+Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    default:
      return Number(text);
  }
}

function findFreePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

class PrometheusServer {
  readonly baseUrl: string;
  readonly #child: Deno.ChildProcess;
  readonly #log: Promise<string>;
  #exited = false;

  constructor(binary: string, tsdbPath: string, configPath: string) {
    const port = findFreePort();
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.#child = new Deno.Command(binary, {
      args: [
        `--storage.tsdb.path=${tsdbPath}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--config.file=${configPath}`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#log = readAll(this.#child.stderr);
    this.#child.status.then(() => {
      this.#exited = true;
    });
  }

  /** Polls `/-/ready` until the server responds with 200, or throws. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#exited) {
        throw new Error(
          `prometheus exited before it was ready; log:\n${await this.#log}`,
        );
      }
      try {
        const response = await fetch(`${this.baseUrl}/-/ready`, {
          signal: AbortSignal.timeout(2_000),
        });
        await response.body?.cancel();
        if (response.ok) {
          return;
        }
      } catch (error) {
        if (!(error instanceof TypeError || error instanceof DOMException)) {
          throw error;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
      `prometheus was not ready after ${timeoutMs} ms at ${this.baseUrl}`,
    );
  }

  async query(promql: string, timeMs: number): Promise<QueryResponse> {
    const url = new URL("/api/v1/query", this.baseUrl);
    url.searchParams.set("query", promql);
    url.searchParams.set("time", (timeMs / 1000).toFixed(3));
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = (await response.json()) as QueryResponse;
    assert.equal(
      body.status,
      "success",
      `query ${promql} failed: ${body.error ?? response.status}`,
    );
    return body;
  }

  /** Returns the single result of an instant vector query, or undefined. */
  async queryValue(
    promql: string,
    timeMs: number,
  ): Promise<number | undefined> {
    const body = await this.query(promql, timeMs);
    const result = body.data?.result ?? [];
    if (result.length === 0) {
      return undefined;
    }
    assert.equal(result.length, 1, `${promql}: expected one series`);
    const value = result[0]!.value;
    assert.ok(value !== undefined, `${promql}: expected an instant vector`);
    return parsePrometheusFloat(value[1]);
  }

  /** Returns the raw samples that the range selector `promql` selects. */
  async querySamples(promql: string, timeMs: number): Promise<WindowSample[]> {
    const body = await this.query(promql, timeMs);
    const result = body.data?.result ?? [];
    if (result.length === 0) {
      return [];
    }
    assert.equal(result.length, 1, `${promql}: expected one series`);
    return (result[0]!.values ?? []).map(([seconds, text]) => ({
      timestampMs: Math.round(seconds * 1000),
      value: parsePrometheusFloat(text),
    }));
  }

  async version(): Promise<string> {
    const response = await fetch(`${this.baseUrl}/api/v1/status/buildinfo`, {
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { data?: { version?: string } };
    const version = body.data?.version;
    assert.ok(version !== undefined, "buildinfo has no version");
    return version;
  }

  /** Stops the server with SIGTERM, or SIGKILL after 10 s, and waits. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      this.#child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!this.#exited) {
          this.#child.kill("SIGKILL");
        }
      }, 10_000);
      await this.#child.status;
      clearTimeout(timer);
    }
    await this.#log;
  }
}

// ---------------------------------------------------------------------------
// Comparison

/** `|a - b| / max(|a|, |b|)`, or 0 when both are equal or both `NaN`. */
function relativeDifference(a: number, b: number): number {
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) {
    return 0;
  }
  if (Number.isNaN(a) || Number.isNaN(b)) {
    return Infinity;
  }
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
}

interface EvaluationCase {
  name: string;
  timeMs: number;
  rangeSeconds: number;
  /**
   * Whether the evaluation time is a scrape time and the range starts on or
   * within one scrape interval before a scrape, so that `counterRate` equals
   * `rate()`.
   */
  atScrape: boolean;
}

interface EvaluationContext {
  startMs: number;
  endMs: number;
  select: (samples: readonly WindowSample[]) => WindowSample[];
  rateOptions: PrometheusRateOptions;
}

interface ConformanceQuery {
  /** Short name for the summary, with `W` for the range. */
  label: string;
  promql: (range: string) => string;
  /**
   * Our value, computed as Prometheus computes it, or `undefined` where
   * Prometheus returns no result.
   */
  expected: (context: EvaluationContext) => number | undefined;
}

function extrapolated(
  context: EvaluationContext,
  samples: readonly WindowSample[],
  isCounter: boolean,
  isRate: boolean,
): number | undefined {
  const selected = context.select(samples);
  if (selected.length < 2) {
    return undefined;
  }
  return prometheusExtrapolatedRate(
    selected,
    context.startMs,
    context.endMs,
    isCounter,
    isRate,
    context.rateOptions,
  );
}

function overTime(
  context: EvaluationContext,
  samples: readonly WindowSample[],
  aggregate: (selected: readonly WindowSample[]) => number,
): number | undefined {
  const selected = context.select(samples);
  return selected.length === 0 ? undefined : aggregate(selected);
}

/**
 * Returns the bucket increases that
 * `histogram_quantile(q, increase(x_bucket[W]))` receives.
 */
function extrapolatedBuckets(
  context: EvaluationContext,
  dataset: Dataset,
): BucketCount[] {
  const buckets: BucketCount[] = [];
  for (const [le, samples] of dataset.latencyBuckets) {
    const increase = extrapolated(context, samples, true, false);
    if (increase !== undefined) {
      buckets.push({ le: parseBucketBound(le), count: increase });
    }
  }
  return buckets;
}

function buildQueries(dataset: Dataset): ConformanceQuery[] {
  const queries: ConformanceQuery[] = [];
  const counters: [string, WindowSample[]][] = [
    ["conformance_requests_total", dataset.requests],
    ["conformance_late_requests_total", dataset.lateRequests],
  ];
  for (const [name, samples] of counters) {
    queries.push(
      {
        label: `rate(${name}[W])`,
        promql: (range) => `rate(${name}[${range}])`,
        expected: (context) => extrapolated(context, samples, true, true),
      },
      {
        label: `increase(${name}[W])`,
        promql: (range) => `increase(${name}[${range}])`,
        expected: (context) => extrapolated(context, samples, true, false),
      },
    );
  }
  queries.push({
    label: "delta(conformance_temperature[W])",
    promql: (range) => `delta(conformance_temperature[${range}])`,
    expected: (context) =>
      extrapolated(context, dataset.temperature, false, false),
  });
  const gauges: [string, WindowSample[]][] = [
    ["conformance_temperature", dataset.temperature],
    ["conformance_gauge_with_nan", dataset.gaugeWithNaN],
  ];
  const aggregations: [
    string,
    (selected: readonly WindowSample[]) => number,
  ][] = [
    ["avg_over_time", avgOverTime],
    ["max_over_time", maxOverTime],
    ["min_over_time", minOverTime],
    ["last_over_time", lastOverTime],
  ];
  for (const [name, samples] of gauges) {
    for (const [functionName, aggregate] of aggregations) {
      queries.push({
        label: `${functionName}(${name}[W])`,
        promql: (range) => `${functionName}(${name}[${range}])`,
        expected: (context) => overTime(context, samples, aggregate),
      });
    }
  }
  for (const q of QUANTILES) {
    queries.push({
      label:
        `histogram_quantile(${q}, increase(conformance_latency_seconds_bucket[W]))`,
      promql: (range) =>
        `histogram_quantile(${q}, increase(conformance_latency_seconds_bucket[${range}]))`,
      expected: (context) => {
        const buckets = extrapolatedBuckets(context, dataset);
        return buckets.length === 0 ? undefined : histogramQuantile(q, buckets);
      },
    });
  }
  queries.push({
    label:
      "increase(conformance_latency_seconds_sum[W]) / increase(conformance_latency_seconds_count[W])",
    promql: (range) =>
      `increase(conformance_latency_seconds_sum[${range}]) / increase(conformance_latency_seconds_count[${range}])`,
    expected: (context) => {
      const sum = extrapolated(context, dataset.latencySum, true, false);
      const count = extrapolated(context, dataset.latencyCount, true, false);
      return sum === undefined || count === undefined ? undefined : sum / count;
    },
  });
  return queries;
}

function buildCases(scrapeTimesMs: readonly number[]): EvaluationCase[] {
  const at = (index: number): number => scrapeTimesMs[index]!;
  return [
    {
      // The range starts exactly on scrape 88, which Prometheus 2.x selects
      // and 3.x does not. The range contains both resets and the start of the
      // late series.
      name: "5m at scrape 148",
      timeMs: at(148),
      rangeSeconds: 300,
      atScrape: true,
    },
    {
      name: "5m between scrapes",
      timeMs: at(150) + 2_500,
      rangeSeconds: 300,
      atScrape: false,
    },
    {
      name: "15m over all scrapes",
      timeMs: at(180),
      rangeSeconds: 900,
      atScrape: true,
    },
    {
      // The series end 30 s before the range does, so the extrapolation to
      // the right adds only half an interval.
      name: "10m ending after last scrape",
      timeMs: at(180) + 30_000,
      rangeSeconds: 600,
      atScrape: false,
    },
    {
      name: "1m at late series start",
      timeMs: at(104) + 1_000,
      rangeSeconds: 60,
      atScrape: false,
    },
    {
      // The late series has no samples yet, so its queries return nothing.
      name: "2m without resets",
      timeMs: at(60) + 1_234,
      rangeSeconds: 120,
      atScrape: false,
    },
    {
      name: "30s after histogram reset",
      timeMs: at(130) + 4_000,
      rangeSeconds: 30,
      atScrape: false,
    },
  ];
}

/** Parses the leading `major.minor` of a Prometheus version string. */
function parseVersion(version: string): [number, number] {
  const match = /^v?(\d+)\.(\d+)/.exec(version);
  assert.ok(match !== null, `unexpected Prometheus version ${version}`);
  return [Number(match[1]), Number(match[2])];
}

// ---------------------------------------------------------------------------
// Test

const prometheusBinary = findOnPath("prometheus");
const promtoolBinary = findOnPath("promtool");
const missingTools = [
  prometheusBinary === undefined ? "prometheus" : undefined,
  promtoolBinary === undefined ? "promtool" : undefined,
].filter((name) => name !== undefined);

if (prometheusBinary === undefined || promtoolBinary === undefined) {
  Deno.test({
    name: `prometheus conformance (ignored: ${
      missingTools.join(" and ")
    } not on PATH)`,
    ignore: true,
    fn: () => {},
  });
} else {
  const prometheus = prometheusBinary;
  const promtool = promtoolBinary;
  Deno.test("prometheus conformance", async (t) => {
    // The first scrape lies 20 minutes before now and the last 5 minutes
    // before, so the data is well inside the default 15-day retention and
    // every evaluation time is in the past.
    const firstScrapeMs =
      Math.floor(Date.now() / SCRAPE_INTERVAL_MS) * SCRAPE_INTERVAL_MS -
      20 * 60_000;
    const dataset = generateDataset(firstScrapeMs);
    const workDirectory = await Deno.makeTempDir({
      prefix: "horos-prometheus-conformance-",
    });
    let server: PrometheusServer | undefined;
    try {
      const inputPath = `${workDirectory}/input.om.txt`;
      const tsdbPath = `${workDirectory}/tsdb`;
      const configPath = `${workDirectory}/prometheus.yml`;
      await Deno.writeTextFile(inputPath, dataset.openMetrics);
      await Deno.writeTextFile(
        configPath,
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
      );
      const backfill = await new Deno.Command(promtool, {
        args: [
          "tsdb",
          "create-blocks-from",
          "openmetrics",
          inputPath,
          tsdbPath,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assert.ok(
        backfill.success,
        `promtool backfill failed:\n${decoder.decode(backfill.stderr)}`,
      );

      server = new PrometheusServer(prometheus, tsdbPath, configPath);
      await server.waitUntilReady(30_000);
      const version = await server.version();
      const [major, minor] = parseVersion(version);
      // Prometheus 3.0 made range selectors left-open. Prometheus 2.51 moved
      // the counter zero-point limit after the extrapolation threshold test.
      const selection: RangeSelectionOptions = { leftOpen: major >= 3 };
      const rateOptions: PrometheusRateOptions = {
        zeroPointBeforeThreshold: major < 2 || (major === 2 && minor < 51),
      };

      const cases = buildCases(dataset.scrapeTimesMs);
      const queries = buildQueries(dataset);
      const maximumDifferences = new Map<string, number>();
      const record = (label: string, difference: number): void => {
        maximumDifferences.set(
          label,
          Math.max(maximumDifferences.get(label) ?? 0, difference),
        );
      };
      const running = server;

      for (const evaluation of cases) {
        const endMs = evaluation.timeMs;
        const startMs = endMs - evaluation.rangeSeconds * 1000;
        const range = `${evaluation.rangeSeconds}s`;
        const context: EvaluationContext = {
          startMs,
          endMs,
          select: (samples) =>
            selectRangeSamples(samples, startMs, endMs, selection),
          rateOptions,
        };

        await t.step(`${evaluation.name}: raw range selection`, async () => {
          const rawSeries: [string, WindowSample[]][] = [
            ["conformance_requests_total", dataset.requests],
            ["conformance_gauge_with_nan", dataset.gaugeWithNaN],
          ];
          for (const [name, samples] of rawSeries) {
            const fromPrometheus = await running.querySamples(
              `${name}[${range}]`,
              endMs,
            );
            const ours = context.select(samples);
            assert.deepEqual(
              fromPrometheus.map((s) => s.timestampMs),
              ours.map((s) => s.timestampMs),
              `${name}: selected timestamps`,
            );
            fromPrometheus.forEach((s, i) => {
              assert.equal(
                relativeDifference(s.value, ours[i]!.value),
                0,
                `${name}: value at ${s.timestampMs}`,
              );
            });
          }
        });

        for (const query of queries) {
          const promql = query.promql(range);
          await t.step(`${evaluation.name}: ${promql}`, async () => {
            const actual = await running.queryValue(promql, endMs);
            const expected = query.expected(context);
            if (expected === undefined || actual === undefined) {
              assert.equal(actual, expected, "result presence");
              return;
            }
            const difference = relativeDifference(actual, expected);
            record(query.label, difference);
            assert.ok(
              difference <= RELATIVE_TOLERANCE,
              `Prometheus ${actual}, ours ${expected}, relative difference ${difference}`,
            );
          });
        }

        // The forms without extrapolation: plain increases and counterRate.
        await t.step(
          `${evaluation.name}: histogramWindow quantiles`,
          async () => {
            const bucketSeries = new Map(
              [...dataset.latencyBuckets].map((
                [le, samples],
              ) => [le, context.select(samples)]),
            );
            // Scaling all buckets alike leaves quantiles unchanged, so the
            // plain increases give Prometheus's quantiles when every bucket
            // is extrapolated by one factor. The history before the first
            // scrape keeps every first value far from the zero point.
            const factors: number[] = [];
            for (const samples of bucketSeries.values()) {
              const plain = counterIncrease(samples);
              if (plain > 0) {
                const extrapolatedIncrease = extrapolated(
                  context,
                  samples,
                  true,
                  false,
                )!;
                factors.push(extrapolatedIncrease / plain);
              }
            }
            for (const factor of factors) {
              assert.ok(
                relativeDifference(factor, factors[0]!) < 1e-12,
                `bucket extrapolation factors differ: ${factors.join(", ")}`,
              );
            }
            const window = histogramWindow(
              bucketSeries,
              context.select(dataset.latencySum),
              context.select(dataset.latencyCount),
            );
            const exactBuckets = extrapolatedBuckets(context, dataset);
            for (const q of QUANTILES) {
              const actual = await running.queryValue(
                `histogram_quantile(${q}, increase(conformance_latency_seconds_bucket[${range}]))`,
                endMs,
              );
              assert.ok(actual !== undefined, `p${q * 100} missing`);
              const estimate = window.quantile(q);
              const difference = relativeDifference(actual, estimate.value);
              record(`histogramWindow(...).quantile(${q})`, difference);
              assert.ok(
                difference <= RELATIVE_TOLERANCE,
                `p${
                  q * 100
                }: Prometheus ${actual}, histogramWindow ${estimate.value}`,
              );
              assert.equal(
                estimate.inInfBucket,
                estimateHistogramQuantile(q, exactBuckets).inInfBucket,
                `p${q * 100}: inInfBucket`,
              );
            }
          },
        );

        if (evaluation.atScrape) {
          await t.step(`${evaluation.name}: counterRate`, async () => {
            const actual = await running.queryValue(
              `rate(conformance_requests_total[${range}])`,
              endMs,
            );
            assert.ok(actual !== undefined, "rate missing");
            const ours = counterRate(context.select(dataset.requests));
            const difference = relativeDifference(actual, ours);
            record("counterRate(conformance_requests_total)", difference);
            assert.ok(
              difference <= RELATIVE_TOLERANCE,
              `Prometheus ${actual}, counterRate ${ours}`,
            );
          });
        }
      }

      await t.step("data reaches +Inf bucket", () => {
        const inInfBucket = cases.filter((evaluation) => {
          const startMs = evaluation.timeMs - evaluation.rangeSeconds * 1000;
          const buckets = extrapolatedBuckets({
            startMs,
            endMs: evaluation.timeMs,
            select: (samples) =>
              selectRangeSamples(
                samples,
                startMs,
                evaluation.timeMs,
                selection,
              ),
            rateOptions,
          }, dataset);
          return estimateHistogramQuantile(0.999, buckets).inInfBucket;
        });
        assert.ok(inInfBucket.length > 0, "no p99.9 falls into +Inf");
      });

      await t.step("data exercises zero-point order", () => {
        // In the first case the two orders give different increases for the
        // late series, so the comparison above checks the version rule.
        const evaluation = cases[0]!;
        const startMs = evaluation.timeMs - evaluation.rangeSeconds * 1000;
        const selected = selectRangeSamples(
          dataset.lateRequests,
          startMs,
          evaluation.timeMs,
          selection,
        );
        const compute = (zeroPointBeforeThreshold: boolean): number =>
          prometheusExtrapolatedRate(
            selected,
            startMs,
            evaluation.timeMs,
            true,
            false,
            { zeroPointBeforeThreshold },
          );
        assert.ok(
          relativeDifference(compute(true), compute(false)) > 1e-3,
          "zero-point orders agree, so the data does not test them",
        );
      });

      const reportPath = Deno.env.get("PROMETHEUS_CONFORMANCE_REPORT");
      if (reportPath !== undefined && reportPath !== "") {
        await Deno.writeTextFile(
          reportPath,
          JSON.stringify(
            {
              prometheusVersion: version,
              rangeSelection: selection.leftOpen === true
                ? "(start, end]"
                : "[start, end]",
              zeroPointBeforeThreshold: rateOptions.zeroPointBeforeThreshold,
              maximumRelativeDifference: Object.fromEntries(
                maximumDifferences,
              ),
            },
            null,
            2,
          ) + "\n",
        );
      }
    } finally {
      await server?.stop();
      await Deno.remove(workDirectory, { recursive: true });
    }
  });
}
