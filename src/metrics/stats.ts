/**
 * The figures of `metrics stats`: per container and per `model_name`, over a
 * window, with Prometheus semantics (reset-aware counter increases, bucket
 * increases interpolated like `histogram_quantile`).
 *
 * How figures of several engines (label `engine`) of one model combine:
 * fractions such as KV-cache usage are averaged across engines at each
 * scrape; request counts, token rates and histogram buckets are summed.
 *
 * Several API-server processes can each expose their own copy of a gauge,
 * told apart by a `pid` label (prometheus_client's multiprocess mode `all`).
 * The copies of one gauge that differ only in `pid` describe the same
 * engine, so they are not averaged or added: at each scrape the figure
 * takes the copy whose value changed most recently, the copy a live process
 * keeps updating, and on a tie the largest value. A stale copy (a process
 * that exited or never saw the engine, often stuck at 0) therefore never
 * dilutes a live one. The `pid` values seen are listed in `pids`. Counters
 * and histograms of several processes count different events and are
 * summed like those of several engines.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { TimeWindow } from "../cli/time_window.ts";
import {
  type HistogramWindow,
  histogramWindow,
  sumHistogramWindows,
} from "./histogram_window.ts";
import {
  loadScrapeHealth,
  loadSeriesWindows,
  resolveMetricNames,
  type ScrapeHealthSummary,
  type SeriesWindow,
} from "./query.ts";
import {
  avgOverTime,
  counterIncrease,
  counterRate,
  intervalRates,
  lastOverTime,
  maxOverTime,
  minOverTime,
  type WindowSample,
} from "./window_math.ts";

/** avg/max/min/last of a gauge over the window. */
export interface GaugeStats {
  avg: number;
  max: number;
  min: number;
  last: number;
}

/** A quantile estimate; `atLeast` when the rank fell into the `+Inf` bucket. */
export interface QuantileFigure {
  value: number;
  atLeast: boolean;
}

/** Window figures of one latency histogram, in seconds. */
export interface LatencyStats {
  /** Observations in the window (requests, or tokens for inter-token latency). */
  count: number;
  avg: number;
  p50: QuantileFigure;
  p95: QuantileFigure;
  p99: QuantileFigure;
}

/** Rate of a counter: over the whole window, and max/min over scrape intervals. */
export interface RateStats {
  avg: number;
  max: number;
  min: number;
}

/** Figures of one model (one `model_name` label value). */
export interface ModelStats {
  model: string;
  /** Values of the `engine` label seen, sorted. */
  engines: string[];
  /**
   * Values of the `pid` label seen, sorted: API-server processes that each
   * expose their own series. Empty for a single process.
   */
  // NOTE: optional only so that ModelStats values built by hand elsewhere
  // (test fixtures) still type-check; containerStats always sets it.
  pids?: string[];
  kvCacheUsagePercent: GaugeStats;
  /**
   * KV-cache usage of each engine, keyed by the `engine` label, when the
   * model has more than one: the combined figure is an average, so one
   * saturated engine would not show in it.
   */
  kvCacheUsagePercentByEngine?: Record<string, GaugeStats>;
  runningRequests: GaugeStats;
  waitingRequests: GaugeStats;
  queueTimeSeconds: LatencyStats;
  timeToFirstTokenSeconds: LatencyStats;
  e2eLatencySeconds: LatencyStats;
  interTokenLatencySeconds: LatencyStats;
  generationTokensPerSecond: RateStats;
  promptTokensPerSecond: RateStats;
  preemptions: number;
  finishedRequestsByReason: Record<string, number>;
}

/**
 * The LoRA adapter state from `vllm:lora_requests_info`: the series with the
 * largest value (vLLM sets it to the Unix time of the update) at its last
 * sample in the window. Label values are comma lists, possibly empty.
 */
export interface LoraAdapters {
  /** Time of the update, Unix milliseconds. */
  updatedMs: number;
  /** The `max_lora` label: adapters the server can hold at once. */
  maxLora: string;
  running: string[];
  waiting: string[];
}

/** Everything `metrics stats` shows for one container. */
export interface ContainerStats {
  container: string;
  window: TimeWindow;
  scrapeHealth: ScrapeHealthSummary;
  models: ModelStats[];
  /** LoRA adapters, or null when the window has no `vllm:lora_requests_info`. */
  // NOTE: optional for the same reason as `ModelStats.pids`.
  loraAdapters?: LoraAdapters | null;
}

/** Label value used for series without a `model_name` label. */
export const NO_MODEL = "";

const QUANTITIES = {
  kv: "kv_cache_usage_perc",
  running: "num_requests_running",
  waiting: "num_requests_waiting",
  queue: "request_queue_time_seconds",
  ttft: "time_to_first_token_seconds",
  e2e: "e2e_request_latency_seconds",
  itl: "inter_token_latency_seconds",
  generation: "generation_tokens_total",
  prompt: "prompt_tokens_total",
  preemptions: "num_preemptions_total",
  finished: "request_success_total",
  lora: "lora_requests_info",
} as const;

type Quantity = keyof typeof QUANTITIES;

/**
 * Quantities whose figures come from `counterIncrease` alone, so loading
 * only the samples it depends on gives the same figures.
 */
const INCREASE_ONLY: ReadonlySet<Quantity> = new Set<Quantity>([
  "queue",
  "ttft",
  "e2e",
  "itl",
  "preemptions",
  "finished",
]);

const NAMES_BY_QUANTITY = new Map<Quantity, string[]>(
  (Object.keys(QUANTITIES) as Quantity[]).map((
    q,
  ) => [q, resolveMetricNames(QUANTITIES[q])]),
);

function quantityOf(
  series: Pick<SeriesWindow, "metricName" | "family">,
): Quantity | null {
  for (const [quantity, names] of NAMES_BY_QUANTITY) {
    if (names.includes(series.metricName) || names.includes(series.family)) {
      return quantity;
    }
  }
  return null;
}

/** Combines the series of several engines scrape by scrape (same scrape, same timestamp). */
function combineByScrape(
  seriesList: readonly SeriesWindow[],
  combine: "mean" | "sum",
): WindowSample[] {
  const byTime = new Map<number, { total: number; count: number }>();
  for (const series of seriesList) {
    for (const sample of series.samples) {
      const entry = byTime.get(sample.timestampMs) ?? { total: 0, count: 0 };
      entry.total += sample.value;
      entry.count++;
      byTime.set(sample.timestampMs, entry);
    }
  }
  // Map iteration keeps first-insertion order, which is scrape order of the first series.
  return [...byTime].map(([timestampMs, { total, count }]) => ({
    timestampMs,
    value: combine === "mean" ? total / count : total,
  }));
}

/** Orders text by UTF-16 code units, as `Array.prototype.sort` does. */
function compareText(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** Returns a key of the series' name and its labels without `pid`. */
function processCopyKey(series: SeriesWindow): string {
  const { pid: _pid, ...labels } = series.labels;
  return JSON.stringify([
    series.metricName,
    Object.entries(labels).sort(([a], [b]) => compareText(a, b)),
  ]);
}

function sameValue(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/**
 * Merges copies of one gauge that differ only in `pid`: at each scrape the
 * value of the present copy whose value changed most recently, on a tie the
 * largest (NaN lowest). Scrapes are matched by timestamp, as in
 * {@linkcode combineByScrape}.
 */
function mergeProcessCopies(copies: readonly SeriesWindow[]): WindowSample[] {
  const byTime = new Map<number, (number | undefined)[]>();
  copies.forEach((copy, index) => {
    for (const sample of copy.samples) {
      let values = byTime.get(sample.timestampMs);
      if (values === undefined) {
        values = new Array(copies.length);
        byTime.set(sample.timestampMs, values);
      }
      values[index] = sample.value;
    }
  });
  const last: (number | undefined)[] = new Array(copies.length);
  const changedAt: number[] = new Array(copies.length).fill(-1);
  const merged: WindowSample[] = [];
  let step = 0;
  for (const [timestampMs, values] of byTime) {
    let chosen = -1;
    for (let index = 0; index < copies.length; index++) {
      const value = values[index];
      if (value === undefined) continue;
      const previous = last[index];
      if (previous === undefined || !sameValue(previous, value)) {
        changedAt[index] = step;
      }
      last[index] = value;
      if (chosen === -1) {
        chosen = index;
        continue;
      }
      const best = values[chosen]!;
      if (
        changedAt[index]! > changedAt[chosen]! ||
        (changedAt[index] === changedAt[chosen] &&
          (Number.isNaN(best) ? !Number.isNaN(value) : value > best))
      ) {
        chosen = index;
      }
    }
    merged.push({ timestampMs, value: values[chosen]! });
    step++;
  }
  return merged;
}

/** Replaces the `pid` copies of each gauge by one merged series. */
function collapseProcessCopies(
  seriesList: readonly SeriesWindow[],
): SeriesWindow[] {
  const groups = new Map<string, SeriesWindow[]>();
  for (const series of seriesList) {
    const key = processCopyKey(series);
    const group = groups.get(key) ?? [];
    group.push(series);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => {
    const first = group[0]!;
    if (group.length === 1) return first;
    const { pid: _pid, ...labels } = first.labels;
    return { ...first, labels, samples: mergeProcessCopies(group) };
  });
}

function gaugeStats(
  samples: readonly WindowSample[],
  scale: number,
): GaugeStats {
  return {
    avg: avgOverTime(samples) * scale,
    max: maxOverTime(samples) * scale,
    min: minOverTime(samples) * scale,
    last: lastOverTime(samples) * scale,
  };
}

function rateStats(seriesList: readonly SeriesWindow[]): RateStats {
  if (seriesList.length === 0) return { avg: NaN, max: NaN, min: NaN };
  let avg = 0;
  const byInterval = new Map<number, number>();
  for (const series of seriesList) {
    avg += counterRate(series.samples);
    for (const interval of intervalRates(series.samples)) {
      byInterval.set(
        interval.endMs,
        (byInterval.get(interval.endMs) ?? 0) + interval.ratePerSecond,
      );
    }
  }
  const rates = [...byInterval.values()];
  return {
    avg,
    max: rates.length === 0 ? NaN : Math.max(...rates),
    min: rates.length === 0 ? NaN : Math.min(...rates),
  };
}

/** Strips `le` from labels, so the buckets of one label set group together. */
function labelSetKey(labels: Record<string, string>): string {
  const { le: _le, ...rest } = labels;
  return JSON.stringify(
    Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)),
  );
}

function latencyStats(seriesList: readonly SeriesWindow[]): LatencyStats {
  const byLabelSet = new Map<
    string,
    {
      buckets: Map<string, WindowSample[]>;
      sum: WindowSample[];
      count: WindowSample[];
    }
  >();
  for (const series of seriesList) {
    const key = labelSetKey(series.labels);
    let entry = byLabelSet.get(key);
    if (entry === undefined) {
      byLabelSet.set(key, entry = { buckets: new Map(), sum: [], count: [] });
    }
    if (
      series.metricName.endsWith("_bucket") && series.labels.le !== undefined
    ) {
      entry.buckets.set(series.labels.le, series.samples);
    } else if (series.metricName.endsWith("_sum")) {
      entry.sum = series.samples;
    } else if (series.metricName.endsWith("_count")) {
      entry.count = series.samples;
    }
  }
  const windows: HistogramWindow[] = [];
  for (const entry of byLabelSet.values()) {
    if (entry.buckets.size > 0) {
      windows.push(histogramWindow(entry.buckets, entry.sum, entry.count));
    }
  }
  if (windows.length === 0) {
    const none = { value: NaN, atLeast: false };
    return { count: NaN, avg: NaN, p50: none, p95: none, p99: none };
  }
  const combined = sumHistogramWindows(windows);
  const figure = (q: number): QuantileFigure => {
    const estimate = combined.quantile(q);
    return { value: estimate.value, atLeast: estimate.inInfBucket };
  };
  return {
    count: combined.count,
    avg: combined.mean,
    p50: figure(0.5),
    p95: figure(0.95),
    p99: figure(0.99),
  };
}

function increaseSum(seriesList: readonly SeriesWindow[]): number {
  let total = 0;
  for (const series of seriesList) {
    const increase = counterIncrease(series.samples);
    if (!Number.isNaN(increase)) total += increase;
  }
  return total;
}

/** Orders `pid` values numerically, other text after them. */
function comparePids(a: string, b: string): number {
  const difference = Number(a) - Number(b);
  if (!Number.isNaN(difference) && difference !== 0) return difference;
  return compareText(a, b);
}

function modelStats(
  model: string,
  seriesList: readonly SeriesWindow[],
): ModelStats {
  const byQuantity = new Map<Quantity, SeriesWindow[]>();
  const engines = new Set<string>();
  const pids = new Set<string>();
  for (const series of seriesList) {
    const quantity = quantityOf(series);
    if (quantity === null || quantity === "lora") continue;
    if (series.labels.engine !== undefined) engines.add(series.labels.engine);
    if (series.labels.pid !== undefined) pids.add(series.labels.pid);
    const list = byQuantity.get(quantity) ?? [];
    list.push(series);
    byQuantity.set(quantity, list);
  }
  const of = (quantity: Quantity): SeriesWindow[] =>
    byQuantity.get(quantity) ?? [];

  const finished: Record<string, number> = {};
  for (const series of of("finished")) {
    const reason = series.labels.finished_reason ?? "unknown";
    const increase = counterIncrease(series.samples);
    finished[reason] = (finished[reason] ?? 0) +
      (Number.isNaN(increase) ? 0 : increase);
  }
  const kvByEngine: Record<string, GaugeStats> = {};
  if (engines.size > 1) {
    for (const engine of [...engines].sort()) {
      const engineSeries = of("kv").filter((series) =>
        series.labels.engine === engine
      );
      kvByEngine[engine] = gaugeStats(
        combineByScrape(collapseProcessCopies(engineSeries), "mean"),
        100,
      );
    }
  }
  return {
    model,
    engines: [...engines].sort(),
    pids: [...pids].sort(comparePids),
    ...(engines.size > 1 ? { kvCacheUsagePercentByEngine: kvByEngine } : {}),
    kvCacheUsagePercent: gaugeStats(
      combineByScrape(collapseProcessCopies(of("kv")), "mean"),
      100,
    ),
    runningRequests: gaugeStats(
      combineByScrape(collapseProcessCopies(of("running")), "sum"),
      1,
    ),
    waitingRequests: gaugeStats(
      combineByScrape(collapseProcessCopies(of("waiting")), "sum"),
      1,
    ),
    queueTimeSeconds: latencyStats(of("queue")),
    timeToFirstTokenSeconds: latencyStats(of("ttft")),
    e2eLatencySeconds: latencyStats(of("e2e")),
    interTokenLatencySeconds: latencyStats(of("itl")),
    generationTokensPerSecond: rateStats(of("generation")),
    promptTokensPerSecond: rateStats(of("prompt")),
    preemptions: increaseSum(of("preemptions")),
    finishedRequestsByReason: finished,
  };
}

/** Computes the stats of one container over a window. */
export function containerStats(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
): ContainerStats {
  const names = [...NAMES_BY_QUANTITY.values()].flat();
  const seriesList = loadSeriesWindows(db, container, names, window, {
    increaseOnly: (series) => {
      const quantity = quantityOf(series);
      return quantity !== null && INCREASE_ONLY.has(quantity);
    },
  });
  const byModel = new Map<string, SeriesWindow[]>();
  const lora: SeriesWindow[] = [];
  for (const series of seriesList) {
    if (quantityOf(series) === "lora") {
      lora.push(series);
      continue;
    }
    const model = series.labels.model_name ?? NO_MODEL;
    const list = byModel.get(model) ?? [];
    list.push(series);
    byModel.set(model, list);
  }
  const models = [...byModel.keys()].sort().map((model) =>
    modelStats(model, byModel.get(model)!)
  );
  return {
    container,
    window,
    scrapeHealth: loadScrapeHealth(db, container, window),
    models,
    loraAdapters: loraAdapters(lora),
  };
}

function commaList(value: string | undefined): string[] {
  return value === undefined || value === "" ? [] : value.split(",");
}

/** Picks the `vllm:lora_requests_info` series with the largest last value. */
function loraAdapters(
  seriesList: readonly SeriesWindow[],
): LoraAdapters | null {
  let best: { series: SeriesWindow; value: number } | null = null;
  for (const series of seriesList) {
    const value = series.samples[series.samples.length - 1]?.value;
    if (value === undefined || Number.isNaN(value)) continue;
    if (best === null || value > best.value) best = { series, value };
  }
  if (best === null) return null;
  const labels = best.series.labels;
  return {
    updatedMs: best.value * 1000,
    maxLora: labels.max_lora ?? "",
    running: commaList(labels.running_lora_adapters),
    waiting: commaList(labels.waiting_lora_adapters),
  };
}
