/**
 * Time series of one container over a window, per model, for charts and
 * sparklines: KV-cache usage, running and waiting requests, token rates,
 * latency quantiles, and scrape health.
 *
 * Engines of one model combine as in `metrics stats`: KV-cache usage is the
 * mean across engines at each scrape, request counts and token rates are
 * summed, and histogram bucket increases are summed per bound before a
 * quantile is estimated.
 *
 * Every column is aligned to the container's scrape times, sorted by
 * timestamp. `NaN` means "no value at this time": a failed scrape, a series
 * that did not exist yet, or a latency window without observations.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { TimeWindow } from "../cli/time_window.ts";
import {
  type BucketCount,
  estimateHistogramQuantile,
  parseBucketBound,
} from "../metrics/histogram_quantile.ts";
import { loadSeriesWindows, resolveMetricNames } from "../metrics/query.ts";
import { NO_MODEL } from "../metrics/stats.ts";
import {
  type IntervalRate,
  intervalRates,
  type WindowSample,
} from "../metrics/window_math.ts";

/** Reduction applied to a column when several points fall into one time bucket. */
export type Reduction = "mean" | "max";

/** Time series of one model, aligned to {@linkcode ContainerTimeline.timestampsMs}. */
export interface ModelTimeline {
  /** `model_name` label value, or {@linkcode NO_MODEL}. */
  model: string;
  /** Values of the `engine` label seen, sorted. */
  engines: string[];
  /** Mean across engines, in percent (vLLM reports a 0-1 fraction). */
  kvCacheUsagePercent: number[];
  runningRequests: number[];
  waitingRequests: number[];
  /** Rate of `vllm:generation_tokens_total` over each scrape interval. */
  generationTokensPerSecond: number[];
  /** Rate of `vllm:prompt_tokens_total` over each scrape interval. */
  promptTokensPerSecond: number[];
  /** Latency quantiles in seconds, absent when latencies were not requested. */
  latency?: LatencyTimeline;
}

/**
 * Latency quantiles in seconds over a rolling window ending at each scrape
 * (see {@linkcode TimelineOptions.latencyWindowMs}).
 */
export interface LatencyTimeline {
  queueTimeP50: number[];
  queueTimeP95: number[];
  queueTimeP99: number[];
  timeToFirstTokenP95: number[];
  e2eLatencyP95: number[];
  interTokenLatencyP95: number[];
}

/** Time series of one container. */
export interface ContainerTimeline {
  container: string;
  /** Point times in Unix milliseconds, ascending. */
  timestampsMs: number[];
  /** Scrape success, 1 or 0 per scrape, or after downsampling the fraction of successful scrapes. */
  scrapeUp: number[];
  /** Scrape duration in seconds, or after downsampling the maximum per bucket. */
  scrapeDurationSeconds: number[];
  models: ModelTimeline[];
  /** Number of scrapes in the window, before downsampling. */
  scrapeCount: number;
  /** Width of a downsampling bucket in milliseconds, or null when every scrape is a point. */
  bucketWidthMs: number | null;
}

/** Options of {@linkcode loadContainerTimeline}. */
export interface TimelineOptions {
  /**
   * Maximum number of time buckets. Longer series are downsampled: gauges,
   * rates and `up` are averaged per bucket, latency quantiles and scrape
   * durations take the bucket's maximum, so short spikes stay visible. A gap
   * marker (one `NaN` point) is added where no scrape happened for more than
   * three times the usual spacing, so the returned arrays can be a little
   * longer than this. Unlimited when omitted.
   */
  maxPoints?: number;
  /** Length of the rolling window of latency quantiles. @default 60_000 */
  latencyWindowMs?: number;
  /** Whether to compute latency quantiles, the slowest part. @default true */
  latencies?: boolean;
}

/** Default length of the rolling window of latency quantiles: one minute. */
export const DEFAULT_LATENCY_WINDOW_MS = 60_000;

const QUANTITIES = {
  kv: "kv_cache_usage_perc",
  running: "num_requests_running",
  waiting: "num_requests_waiting",
  generation: "generation_tokens_total",
  prompt: "prompt_tokens_total",
  queue: "request_queue_time_seconds",
  ttft: "time_to_first_token_seconds",
  e2e: "e2e_request_latency_seconds",
  itl: "inter_token_latency_seconds",
} as const;

type Quantity = keyof typeof QUANTITIES;

const LATENCY_QUANTITIES: readonly Quantity[] = ["queue", "ttft", "e2e", "itl"];

const NAMES_BY_QUANTITY = new Map<Quantity, string[]>(
  (Object.keys(QUANTITIES) as Quantity[]).map((
    quantity,
  ) => [quantity, resolveMetricNames(QUANTITIES[quantity])]),
);

interface ScrapeRow {
  timestampMs: number;
  durationSeconds: number;
  up: number;
}

function loadScrapeRows(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
): ScrapeRow[] {
  const rows = db.prepare(
    `SELECT timestamp, duration_seconds, up FROM scrapes
     WHERE container = ? AND timestamp BETWEEN ? AND ? ORDER BY id`,
  ).all(container, window.startMs, window.endMs) as Record<string, number>[];
  return rows.map((row) => ({
    timestampMs: Number(row.timestamp),
    durationSeconds: Number(row.duration_seconds),
    up: Number(row.up),
  }));
}

/**
 * Scrape times sorted ascending, without repeats. A wall clock stepped back
 * between scrapes interleaves the samples from before and after the step;
 * scrapes with the same timestamp become one point.
 */
class TimeAxis {
  readonly timestampsMs: number[];
  readonly #indexByTime = new Map<number, number>();

  constructor(timestamps: Iterable<number>) {
    this.timestampsMs = [...new Set(timestamps)].sort((a, b) => a - b);
    this.timestampsMs.forEach((time, index) =>
      this.#indexByTime.set(time, index)
    );
  }

  get length(): number {
    return this.timestampsMs.length;
  }

  indexOf(timestampMs: number): number | undefined {
    return this.#indexByTime.get(timestampMs);
  }

  column(): number[] {
    return new Array<number>(this.length).fill(NaN);
  }
}

/** One stored series, without its samples. */
interface SeriesInfo {
  metricName: string;
  labels: Record<string, string>;
}

/** Calls its argument for each sample of a set of series, series by series. */
type SampleStream = (
  visit: (series: SeriesInfo, sample: WindowSample) => void,
) => void;

/**
 * Streams the samples of the container's series whose name or family is one
 * of `names`, inside the window, in scrape order within each series. A
 * stored NULL (the endpoint reported NaN) comes back as `NaN`.
 */
function sampleStream(
  db: DatabaseSync,
  container: string,
  names: readonly string[],
  window: TimeWindow,
): SampleStream {
  return (visit) => {
    // NOTE: loadSeriesWindows keeps every sample of the quantity in memory,
    // so memory grows with buckets times scrapes in the window. A reader in
    // query.ts that yields rows one by one would bound it by the columns.
    for (const series of loadSeriesWindows(db, container, names, window)) {
      for (const sample of series.samples) visit(series, sample);
    }
  };
}

function modelOf(series: SeriesInfo): string {
  return series.labels.model_name ?? NO_MODEL;
}

/**
 * Mean (fractions) or sum (counts) per model of several series at each
 * scrape. A `NaN` sample makes that point `NaN`.
 */
function gaugeColumns(
  axis: TimeAxis,
  stream: SampleStream,
  combine: "mean" | "sum",
  scale: number,
): Map<string, number[]> {
  const totals = new Map<string, { sum: Float64Array; count: Uint32Array }>();
  stream((series, sample) => {
    const index = axis.indexOf(sample.timestampMs);
    if (index === undefined) return;
    const model = modelOf(series);
    let entry = totals.get(model);
    if (entry === undefined) {
      entry = {
        sum: new Float64Array(axis.length),
        count: new Uint32Array(axis.length),
      };
      totals.set(model, entry);
    }
    entry.sum[index]! += sample.value;
    entry.count[index]!++;
  });
  const columns = new Map<string, number[]>();
  for (const [model, { sum, count }] of totals) {
    columns.set(
      model,
      Array.from(sum, (total, i) => {
        if (count[i] === 0) return NaN;
        return (combine === "mean" ? total / count[i]! : total) * scale;
      }),
    );
  }
  return columns;
}

/**
 * Calls `visit` with each scrape interval of each counter in the stream,
 * following `intervalRates`. Any decrease is a reset, and `NaN` samples are
 * skipped so the interval spans them. An interval whose end is not after its
 * start is left out.
 */
function forEachInterval(
  stream: SampleStream,
  visit: (series: SeriesInfo, interval: IntervalRate) => void,
): void {
  const previousBySeries = new Map<SeriesInfo, WindowSample>();
  stream((series, sample) => {
    if (Number.isNaN(sample.value)) return;
    const previous = previousBySeries.get(series);
    previousBySeries.set(series, sample);
    if (previous === undefined) return;
    for (const interval of intervalRates([previous, sample])) {
      visit(series, interval);
    }
  });
}

/**
 * Sum per model over series of each counter's rate over the scrape interval
 * that ends at each point.
 */
function rateColumns(
  axis: TimeAxis,
  stream: SampleStream,
): Map<string, number[]> {
  const columns = new Map<string, number[]>();
  forEachInterval(stream, (series, interval) => {
    const index = axis.indexOf(interval.endMs);
    if (index === undefined) return;
    const model = modelOf(series);
    let rates = columns.get(model);
    if (rates === undefined) {
      rates = axis.column();
      columns.set(model, rates);
    }
    const previous = rates[index]!;
    rates[index] = Number.isNaN(previous)
      ? interval.ratePerSecond
      : previous + interval.ratePerSecond;
  });
  return columns;
}

function bucketBound(series: SeriesInfo): number | null {
  const le = series.labels.le;
  if (!series.metricName.endsWith("_bucket") || le === undefined) return null;
  try {
    const bound = parseBucketBound(le);
    return Number.isNaN(bound) ? null : bound;
  } catch {
    // A bound that is not a float cannot be placed, and the other buckets
    // still give an estimate.
    return null;
  }
}

/**
 * Bucket increases per model and scrape interval, summed per numeric bound
 * across the label sets (engines) of one histogram.
 * `increments.get(model).get(le)[i]` contains the observations of the
 * interval ending at point `i`.
 */
function bucketIncrements(
  axis: TimeAxis,
  stream: SampleStream,
): Map<string, Map<number, Float64Array>> {
  const increments = new Map<string, Map<number, Float64Array>>();
  const bounds = new Map<SeriesInfo, number | null>();
  forEachInterval(stream, (series, interval) => {
    let bound = bounds.get(series);
    if (bound === undefined) {
      bound = bucketBound(series);
      bounds.set(series, bound);
    }
    const index = axis.indexOf(interval.endMs);
    if (bound === null || index === undefined) return;
    const model = modelOf(series);
    let byBound = increments.get(model);
    if (byBound === undefined) {
      byBound = new Map();
      increments.set(model, byBound);
    }
    let column = byBound.get(bound);
    if (column === undefined) {
      column = new Float64Array(axis.length);
      byBound.set(bound, column);
    }
    column[index]! += interval.increase;
  });
  return increments;
}

/**
 * Quantiles over a rolling window: at each point, the bucket increases of
 * the scrape intervals that end inside `(t - windowMs, t]`, interpolated
 * like PromQL `histogram_quantile()`. This is
 * `histogram_quantile(q, sum by (le) (increase(x_bucket[window])))` without
 * Prometheus's extrapolation to the window edges, which scales every bucket
 * alike and so does not move a quantile. A window shorter than the scrape
 * interval degrades to the single interval ending at the point.
 */
function rollingQuantiles(
  axis: TimeAxis,
  increments: ReadonlyMap<number, Float64Array>,
  quantiles: readonly number[],
  windowMs: number,
): number[][] {
  const results = quantiles.map(() => axis.column());
  const bounds = [...increments.keys()].sort((a, b) => a - b);
  // Prefix sums per bound make each window's increase one subtraction.
  const prefixes = bounds.map((bound) => {
    const column = increments.get(bound)!;
    const prefix = new Float64Array(axis.length + 1);
    for (let i = 0; i < axis.length; i++) {
      prefix[i + 1] = prefix[i]! + column[i]!;
    }
    return prefix;
  });
  const times = axis.timestampsMs;
  let first = 0;
  for (let i = 0; i < axis.length; i++) {
    while (times[first]! <= times[i]! - windowMs) first++;
    const buckets: BucketCount[] = bounds.map((le, b) => ({
      le,
      count: prefixes[b]![i + 1]! - prefixes[b]![first]!,
    }));
    quantiles.forEach((q, k) => {
      results[k]![i] = estimateHistogramQuantile(q, buckets).value;
    });
  }
  return results;
}

function emptyModelTimeline(
  axis: TimeAxis,
  model: string,
  latencies: boolean,
): ModelTimeline {
  const timeline: ModelTimeline = {
    model,
    engines: [],
    kvCacheUsagePercent: axis.column(),
    runningRequests: axis.column(),
    waitingRequests: axis.column(),
    generationTokensPerSecond: axis.column(),
    promptTokensPerSecond: axis.column(),
  };
  if (latencies) {
    timeline.latency = {
      queueTimeP50: axis.column(),
      queueTimeP95: axis.column(),
      queueTimeP99: axis.column(),
      timeToFirstTokenP95: axis.column(),
      e2eLatencyP95: axis.column(),
      interTokenLatencyP95: axis.column(),
    };
  }
  return timeline;
}

/**
 * Computes one quantity for every model from its stream, and stores the
 * columns in the timelines of the models, which `timelineOf` creates.
 */
function fillQuantity(
  quantity: Quantity,
  axis: TimeAxis,
  stream: SampleStream,
  timelineOf: (model: string) => ModelTimeline,
  latencyWindowMs: number,
): void {
  const gauges = (combine: "mean" | "sum", scale: number) =>
    gaugeColumns(axis, stream, combine, scale);
  switch (quantity) {
    case "kv":
      for (const [model, column] of gauges("mean", 100)) {
        timelineOf(model).kvCacheUsagePercent = column;
      }
      return;
    case "running":
      for (const [model, column] of gauges("sum", 1)) {
        timelineOf(model).runningRequests = column;
      }
      return;
    case "waiting":
      for (const [model, column] of gauges("sum", 1)) {
        timelineOf(model).waitingRequests = column;
      }
      return;
    case "generation":
      for (const [model, column] of rateColumns(axis, stream)) {
        timelineOf(model).generationTokensPerSecond = column;
      }
      return;
    case "prompt":
      for (const [model, column] of rateColumns(axis, stream)) {
        timelineOf(model).promptTokensPerSecond = column;
      }
      return;
  }
  const quantiles = quantity === "queue" ? [0.5, 0.95, 0.99] : [0.95];
  for (const [model, increments] of bucketIncrements(axis, stream)) {
    const latency = timelineOf(model).latency;
    if (latency === undefined) continue;
    const [first, second, third] = rollingQuantiles(
      axis,
      increments,
      quantiles,
      latencyWindowMs,
    );
    if (quantity === "queue") {
      latency.queueTimeP50 = first!;
      latency.queueTimeP95 = second!;
      latency.queueTimeP99 = third!;
    } else if (quantity === "ttft") {
      latency.timeToFirstTokenP95 = first!;
    } else if (quantity === "e2e") {
      latency.e2eLatencyP95 = first!;
    } else {
      latency.interTokenLatencyP95 = first!;
    }
  }
}

/**
 * Builds the timeline of every model, reading one quantity at a time. A
 * model appears when any of its series has a sample in the window, and its
 * other quantities are then `NaN` throughout.
 */
function loadModelTimelines(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
  axis: TimeAxis,
  options: Required<Pick<TimelineOptions, "latencyWindowMs" | "latencies">>,
): ModelTimeline[] {
  const timelines = new Map<string, ModelTimeline>();
  const engines = new Map<string, Set<string>>();
  const timelineOf = (model: string): ModelTimeline => {
    let timeline = timelines.get(model);
    if (timeline === undefined) {
      timeline = emptyModelTimeline(axis, model, options.latencies);
      timelines.set(model, timeline);
    }
    return timeline;
  };
  const quantities = (Object.keys(QUANTITIES) as Quantity[]).filter(
    (quantity) => options.latencies || !LATENCY_QUANTITIES.includes(quantity),
  );
  for (const quantity of quantities) {
    const names = NAMES_BY_QUANTITY.get(quantity)!;
    const stream = sampleStream(db, container, names, window);
    // Records the engine label of every series the quantity reads.
    const withEngines: SampleStream = (visit) =>
      stream((series, sample) => {
        const engine = series.labels.engine;
        if (engine !== undefined) {
          const model = modelOf(series);
          const seen = engines.get(model) ?? new Set<string>();
          seen.add(engine);
          engines.set(model, seen);
        }
        visit(series, sample);
      });
    fillQuantity(
      quantity,
      axis,
      withEngines,
      timelineOf,
      options.latencyWindowMs,
    );
  }
  return [...timelines.keys()].sort().map((model) => ({
    ...timelines.get(model)!,
    engines: [...(engines.get(model) ?? [])].sort(),
  }));
}

/**
 * Loads the time series of one container over a window.
 *
 * @throws {RangeError} when `maxPoints` or `latencyWindowMs` is not positive
 */
export function loadContainerTimeline(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
  options: TimelineOptions = {},
): ContainerTimeline {
  const latencyWindowMs = options.latencyWindowMs ?? DEFAULT_LATENCY_WINDOW_MS;
  const latencies = options.latencies ?? true;
  if (options.maxPoints !== undefined && !(options.maxPoints >= 1)) {
    throw new RangeError(
      `maxPoints must be at least 1, got ${options.maxPoints}`,
    );
  }
  if (!(latencyWindowMs > 0)) {
    throw new RangeError(
      `latencyWindowMs must be positive, got ${latencyWindowMs}`,
    );
  }
  const scrapes = loadScrapeRows(db, container, window);
  const axis = new TimeAxis(scrapes.map((scrape) => scrape.timestampMs));
  const models = loadModelTimelines(db, container, window, axis, {
    latencyWindowMs,
    latencies,
  });

  const up = axis.column();
  const duration = axis.column();
  const healthCounts = new Array<number>(axis.length).fill(0);
  for (const scrape of scrapes) {
    const index = axis.indexOf(scrape.timestampMs)!;
    const count = healthCounts[index]!;
    // Scrapes with equal timestamps share a point: mean up, max duration.
    up[index] = count === 0
      ? scrape.up
      : (up[index]! * count + scrape.up) / (count + 1);
    duration[index] = count === 0
      ? scrape.durationSeconds
      : Math.max(duration[index]!, scrape.durationSeconds);
    healthCounts[index] = count + 1;
  }

  const timeline: ContainerTimeline = {
    container,
    timestampsMs: axis.timestampsMs,
    scrapeUp: up,
    scrapeDurationSeconds: duration,
    models,
    scrapeCount: scrapes.length,
    bucketWidthMs: null,
  };
  return options.maxPoints === undefined
    ? withGapMarkers(timeline, null)
    : downsampleTimeline(timeline, options.maxPoints);
}

/** A column together with the reduction used to downsample it. */
interface ReducibleColumn {
  values: number[];
  reduction: Reduction;
  assign(values: number[]): void;
}

/** Lists every column of a timeline, with setters that write new arrays back. */
function timelineColumns(timeline: ContainerTimeline): ReducibleColumn[] {
  const columns: ReducibleColumn[] = [
    {
      values: timeline.scrapeUp,
      reduction: "mean",
      assign: (values) => timeline.scrapeUp = values,
    },
    {
      values: timeline.scrapeDurationSeconds,
      reduction: "max",
      assign: (values) => timeline.scrapeDurationSeconds = values,
    },
  ];
  for (const model of timeline.models) {
    for (
      const key of [
        "kvCacheUsagePercent",
        "runningRequests",
        "waitingRequests",
        "generationTokensPerSecond",
        "promptTokensPerSecond",
      ] as const
    ) {
      columns.push({
        values: model[key],
        reduction: "mean",
        assign: (values) => model[key] = values,
      });
    }
    const latency = model.latency;
    if (latency === undefined) continue;
    for (const key of Object.keys(latency) as (keyof LatencyTimeline)[]) {
      columns.push({
        values: latency[key],
        reduction: "max",
        assign: (values) => latency[key] = values,
      });
    }
  }
  return columns;
}

/** Copies the objects of a timeline but not its arrays, which callers replace. */
function copyTimeline(timeline: ContainerTimeline): ContainerTimeline {
  return {
    ...timeline,
    models: timeline.models.map((model) => ({
      ...model,
      ...(model.latency === undefined ? {} : { latency: { ...model.latency } }),
    })),
  };
}

function reduce(values: readonly number[], reduction: Reduction): number {
  let result = NaN;
  let count = 0;
  for (const value of values) {
    if (Number.isNaN(value)) continue;
    if (count === 0) result = value;
    else if (reduction === "max") result = Math.max(result, value);
    else result += value;
    count++;
  }
  return reduction === "mean" && count > 0 ? result / count : result;
}

/**
 * Downsamples a timeline to at most `maxPoints` time buckets of equal width
 * between the first and last point. Each non-empty bucket becomes one point
 * at the mean time of its scrapes; each column is reduced by its
 * {@linkcode Reduction}, ignoring `NaN`. A timeline with at most `maxPoints`
 * points is returned with gap markers only.
 */
export function downsampleTimeline(
  timeline: ContainerTimeline,
  maxPoints: number,
): ContainerTimeline {
  const times = timeline.timestampsMs;
  const first = times[0];
  const last = times[times.length - 1];
  if (
    times.length <= maxPoints || first === undefined || last === undefined ||
    last === first
  ) {
    return withGapMarkers(timeline, null);
  }
  const bucketCount = Math.floor(maxPoints);
  const widthMs = (last - first) / bucketCount;

  // Bucket ranges as [start, end) indices into the sorted times.
  const ranges: [number, number][] = [];
  let start = 0;
  for (let bucket = 0; bucket < bucketCount && start < times.length; bucket++) {
    const bucketEndMs = bucket === bucketCount - 1
      ? Infinity
      : first + (bucket + 1) * widthMs;
    let end = start;
    while (end < times.length && times[end]! < bucketEndMs) end++;
    if (end > start) ranges.push([start, end]);
    start = end;
  }

  const result = copyTimeline(timeline);
  result.timestampsMs = ranges.map(([from, to]) =>
    Math.round(reduce(times.slice(from, to), "mean"))
  );
  for (const column of timelineColumns(result)) {
    column.assign(
      ranges.map(([from, to]) =>
        reduce(column.values.slice(from, to), column.reduction)
      ),
    );
  }
  result.bucketWidthMs = widthMs;
  return withGapMarkers(result, widthMs);
}

function medianSpacing(times: readonly number[]): number {
  const spacings: number[] = [];
  for (let i = 1; i < times.length; i++) {
    spacings.push(times[i]! - times[i - 1]!);
  }
  spacings.sort((a, b) => a - b);
  return spacings[Math.floor(spacings.length / 2)] ?? NaN;
}

/**
 * Inserts one `NaN` point in the middle of every stretch without scrapes
 * longer than three times the usual spacing, which is the median scrape
 * interval or, when downsampled, the bucket width. Charts then break the
 * line there instead of drawing across the gap.
 */
function withGapMarkers(
  timeline: ContainerTimeline,
  bucketWidthMs: number | null,
): ContainerTimeline {
  const times = timeline.timestampsMs;
  const spacing = Math.max(medianSpacing(times), bucketWidthMs ?? 0);
  if (!(spacing > 0)) return timeline;
  const gapAfter: number[] = [];
  for (let i = 1; i < times.length; i++) {
    if (times[i]! - times[i - 1]! > 3 * spacing) gapAfter.push(i - 1);
  }
  if (gapAfter.length === 0) return timeline;
  const withGaps = <T>(values: readonly T[], marker: (i: number) => T): T[] => {
    const output: T[] = [];
    let next = 0;
    values.forEach((value, i) => {
      output.push(value);
      if (gapAfter[next] === i) {
        output.push(marker(i));
        next++;
      }
    });
    return output;
  };
  const result = copyTimeline(timeline);
  result.timestampsMs = withGaps(
    times,
    (i) => Math.round((times[i]! + times[i + 1]!) / 2),
  );
  for (const column of timelineColumns(result)) {
    column.assign(withGaps(column.values, () => NaN));
  }
  return result;
}
