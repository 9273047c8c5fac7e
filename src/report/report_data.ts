/**
 * The content of `metrics report`: per container the summary figures of
 * `metrics stats`, chart series per model (see `timeline.ts` for how each
 * series is computed and downsampled), scrape health, and the alert events
 * of the window read from `alerts.log`.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { TimeWindow } from "../cli/time_window.ts";
import { type ContainerStats, containerStats } from "../metrics/stats.ts";
import {
  type ContainerTimeline,
  DEFAULT_LATENCY_WINDOW_MS,
  loadContainerTimeline,
  type ModelTimeline,
} from "./timeline.ts";

/** Default maximum number of points per chart series. */
export const DEFAULT_MAX_POINTS = 2000;

/** Unit of a chart series, which the page uses to format values and axes. */
export type ChartUnit = "%" | "requests" | "tokens/s" | "s";

/** One line of a chart. `null` is a gap: no value at that time. */
export interface ChartSeries {
  label: string;
  unit: ChartUnit;
  values: (number | null)[];
}

/** One chart. Its series share the time axis of its container. */
export interface ChartData {
  /** Identifier, unique in the report, used as the HTML element id. */
  id: string;
  title: string;
  /** Explanation of how the values were computed, shown under the title. */
  note: string;
  series: ChartSeries[];
}

/** Charts of one model. */
export interface ModelReport {
  /** `model_name` label value, empty for series without that label. */
  model: string;
  engines: string[];
  charts: ChartData[];
}

/** Everything the report shows for one container. */
export interface ContainerReport {
  container: string;
  stats: ContainerStats;
  /** Time axis of every chart of this container, Unix milliseconds. */
  timestampsMs: number[];
  /** Scrapes in the window before downsampling. */
  scrapeCount: number;
  /** Width of a downsampling bucket, or null when each scrape is a point. */
  bucketWidthMs: number | null;
  healthChart: ChartData;
  models: ModelReport[];
}

/**
 * One line of `alerts.log`: an alert started firing or resolved. Fields the
 * line lacks are null (or empty labels), so older or hand-written lines
 * still show.
 */
export interface ReportAlertEvent {
  timestampMs: number;
  /** Container the alert is about, or null when the line names none. */
  container: string | null;
  /** Name of the rule. */
  alert: string;
  /** `firing` or `resolved` as written by the logger. Other values are kept. */
  state: string;
  value: number | null;
  threshold: number | null;
  /** The rule's condition as written. */
  condition: string | null;
  /** Label set of the alert instance, such as `model_name`. */
  labels: Record<string, string>;
}

/** The alert events of a window, read from one `alerts.log` file. */
export interface AlertLog {
  path: string;
  events: ReportAlertEvent[];
  /** Lines that were not JSON objects with a valid `timestamp` and `alert`. */
  invalidLines: number;
}

/** Content of one report. */
export interface ReportData {
  title: string;
  generatedAtMs: number;
  window: TimeWindow;
  maxPoints: number;
  latencyWindowMs: number;
  containers: ContainerReport[];
  /** Alert events, or null when no `alerts.log` was read. */
  alerts: AlertLog | null;
}

/** Options of {@linkcode buildReportData}. */
export interface ReportOptions {
  containers: readonly string[];
  window: TimeWindow;
  /** @default DEFAULT_MAX_POINTS */
  maxPoints?: number;
  /** @default DEFAULT_LATENCY_WINDOW_MS */
  latencyWindowMs?: number;
  alerts?: AlertLog | null;
  /** @default "vLLM metrics report" */
  title?: string;
  /** Generation time shown in the report. @default Date.now() */
  nowMs?: number;
}

/** Rounds to 6 significant digits, which keeps the embedded JSON small. */
function chartValues(values: readonly number[]): (number | null)[] {
  return values.map((value) =>
    Number.isFinite(value) ? Number(value.toPrecision(6)) : null
  );
}

function series(
  label: string,
  unit: ChartUnit,
  values: readonly number[],
): ChartSeries {
  return { label, unit, values: chartValues(values) };
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Number((ms / 1000).toPrecision(3))} s`;
}

function modelCharts(
  idPrefix: string,
  model: ModelTimeline,
  latencyWindowMs: number,
  downsampled: boolean,
): ChartData[] {
  const gaugeNote = downsampled
    ? "mean per time bucket"
    : "value at each scrape";
  const rateNote = downsampled
    ? "rate of the counter per scrape interval, mean per time bucket"
    : "rate of the counter per scrape interval";
  const latencyNote =
    `from histogram bucket increases over a rolling ${
      formatDuration(latencyWindowMs)
    } window${downsampled ? ", max per time bucket" : ""}; ` +
    "a quantile in the +Inf bucket shows as the highest finite bound";
  const charts: ChartData[] = [
    {
      id: `${idPrefix}-kv`,
      title: "KV-cache usage",
      note: `mean across engines, ${gaugeNote}`,
      series: [series("KV-cache usage", "%", model.kvCacheUsagePercent)],
    },
    {
      id: `${idPrefix}-requests`,
      title: "Requests",
      note: `sum across engines, ${gaugeNote}`,
      series: [
        series("running", "requests", model.runningRequests),
        series("waiting", "requests", model.waitingRequests),
      ],
    },
    {
      id: `${idPrefix}-generation`,
      title: "Generation tokens/s",
      note: rateNote,
      series: [
        series("generation", "tokens/s", model.generationTokensPerSecond),
      ],
    },
    {
      id: `${idPrefix}-prompt`,
      title: "Prompt tokens/s",
      note: `${rateNote}; includes prefix-cache hits`,
      series: [series("prompt", "tokens/s", model.promptTokensPerSecond)],
    },
  ];
  const latency = model.latency;
  if (latency !== undefined) {
    charts.push(
      {
        id: `${idPrefix}-queue`,
        title: "Queue time",
        note: latencyNote,
        series: [
          series("p50", "s", latency.queueTimeP50),
          series("p95", "s", latency.queueTimeP95),
          series("p99", "s", latency.queueTimeP99),
        ],
      },
      {
        id: `${idPrefix}-ttft`,
        title: "Time to first token p95",
        note: latencyNote,
        series: [series("p95", "s", latency.timeToFirstTokenP95)],
      },
      {
        id: `${idPrefix}-e2e`,
        title: "End-to-end latency p95",
        note: latencyNote,
        series: [series("p95", "s", latency.e2eLatencyP95)],
      },
      {
        id: `${idPrefix}-itl`,
        title: "Inter-token latency p95",
        note: latencyNote,
        series: [series("p95", "s", latency.interTokenLatencyP95)],
      },
    );
  }
  return charts;
}

function healthChart(id: string, timeline: ContainerTimeline): ChartData {
  const downsampled = timeline.bucketWidthMs !== null;
  return {
    id,
    title: "Scrape health",
    note: downsampled
      ? "duration: max per time bucket; successful: share of scrapes per time bucket"
      : "duration and success of each scrape",
    series: [
      series("duration", "s", timeline.scrapeDurationSeconds),
      series(
        "successful",
        "%",
        timeline.scrapeUp.map((up) => up * 100),
      ),
    ],
  };
}

/**
 * Builds the report of the given containers over a window: one query per
 * container for the charts and the queries of `containerStats` for the
 * summary figures.
 */
export function buildReportData(
  db: DatabaseSync,
  options: ReportOptions,
): ReportData {
  const maxPoints = options.maxPoints ?? DEFAULT_MAX_POINTS;
  const latencyWindowMs = options.latencyWindowMs ??
    DEFAULT_LATENCY_WINDOW_MS;
  const containers = options.containers.map(
    (container, containerIndex): ContainerReport => {
      const timeline = loadContainerTimeline(db, container, options.window, {
        maxPoints,
        latencyWindowMs,
      });
      const downsampled = timeline.bucketWidthMs !== null;
      return {
        container,
        stats: containerStats(db, container, options.window),
        timestampsMs: timeline.timestampsMs,
        scrapeCount: timeline.scrapeCount,
        bucketWidthMs: timeline.bucketWidthMs,
        healthChart: healthChart(`c${containerIndex}-health`, timeline),
        models: timeline.models.map((model, modelIndex) => ({
          model: model.model,
          engines: model.engines,
          charts: modelCharts(
            `c${containerIndex}-m${modelIndex}`,
            model,
            latencyWindowMs,
            downsampled,
          ),
        })),
      };
    },
  );
  return {
    title: options.title ?? "vLLM metrics report",
    generatedAtMs: options.nowMs ?? Date.now(),
    window: options.window,
    maxPoints,
    latencyWindowMs,
    containers,
    alerts: options.alerts ?? null,
  };
}

/**
 * Reads a `timestamp` field: an RFC 3339 string, or a number of Unix
 * seconds (below 1e11, which is the year 5138 in seconds) or milliseconds.
 * Returns NaN for anything else.
 */
function parseAlertTimestamp(value: unknown): number {
  if (typeof value === "string") return Date.parse(value);
  if (typeof value === "number" && Number.isFinite(value)) {
    return value < 1e11 ? value * 1000 : value;
  }
  return NaN;
}

/** Reads a number written as a JSON number or a numeric string, else null. */
function numberField(value: unknown): number | null {
  let number = NaN;
  if (typeof value === "number") number = value;
  else if (typeof value === "string" && value.trim() !== "") {
    number = Number(value);
  }
  return Number.isNaN(number) ? null : number;
}

/** Parses one line of `alerts.log`, or returns null when it is not valid. */
export function parseAlertLine(line: string): ReportAlertEvent | null {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof record !== "object" || record === null) return null;
  const fields = record as Record<string, unknown>;
  const timestampMs = parseAlertTimestamp(fields.timestamp);
  if (Number.isNaN(timestampMs) || typeof fields.alert !== "string") {
    return null;
  }
  const labels: Record<string, string> = {};
  if (typeof fields.labels === "object" && fields.labels !== null) {
    for (const [name, value] of Object.entries(fields.labels)) {
      if (typeof value === "string") labels[name] = value;
    }
  }
  return {
    timestampMs,
    container: typeof fields.container === "string" ? fields.container : null,
    alert: fields.alert,
    state: typeof fields.state === "string" ? fields.state : "unknown",
    value: numberField(fields.value),
    threshold: numberField(fields.threshold),
    condition: typeof fields.condition === "string" ? fields.condition : null,
    labels,
  };
}

/**
 * Reads the events of `alerts.log` inside the window, line by line, keeping
 * those of the given containers and those that name no container. Events
 * come back sorted by time. Blank lines are skipped, other lines that do not
 * parse are counted in `invalidLines`.
 *
 * @throws {Deno.errors.NotFound} when the file does not exist
 */
export async function readAlertsLog(
  path: string,
  window: TimeWindow,
  containers: readonly string[],
): Promise<AlertLog> {
  const wanted = new Set(containers);
  const events: ReportAlertEvent[] = [];
  let invalidLines = 0;
  // Reading `file.readable` to its end, or failing inside it, closes the file.
  const file = await Deno.open(path, { read: true });
  let pending = "";
  const handleLine = (line: string): void => {
    if (line.trim() === "") return;
    const event = parseAlertLine(line);
    if (event === null) {
      invalidLines++;
      return;
    }
    if (
      event.timestampMs < window.startMs || event.timestampMs > window.endMs
    ) {
      return;
    }
    if (event.container !== null && !wanted.has(event.container)) return;
    events.push(event);
  };
  for await (
    const chunk of file.readable.pipeThrough(new TextDecoderStream())
  ) {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) handleLine(line);
  }
  handleLine(pending);
  events.sort((a, b) => a.timestampMs - b.timestampMs);
  return { path, events, invalidLines };
}
