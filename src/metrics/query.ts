/**
 * Read queries over the metrics database: metric-name resolution (short
 * names and vLLM's renames) and loading the samples of a window per series.
 * Every value reaches SQL as a bound parameter.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { WindowSample } from "./window_math.ts";
import type { TimeWindow } from "../cli/time_window.ts";

/**
 * Names that denote the same quantity across vLLM versions, newest first.
 * A window across an upgrade sees the samples of both names.
 */
const RENAMED_METRICS: readonly (readonly string[])[] = [
  ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
  ["vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"],
  ["vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"],
  ["vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"],
  ["vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"],
  ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
];

/**
 * Returns the stored names a user's metric name may mean: the name itself,
 * with the `vllm:` prefix when it has none, and the other names of the same
 * quantity (`kv_cache_usage_perc` → `vllm:kv_cache_usage_perc` and
 * `vllm:gpu_cache_usage_perc`).
 */
export function resolveMetricNames(name: string): string[] {
  const names = new Set<string>([name]);
  if (!name.includes(":")) names.add(`vllm:${name}`);
  for (const candidate of [...names]) {
    for (const group of RENAMED_METRICS) {
      if (group.includes(candidate)) {
        for (const alias of group) names.add(alias);
      }
    }
  }
  return [...names];
}

/** The samples of one series inside a window, in scrape order. */
export interface SeriesWindow {
  seriesId: number;
  container: string;
  metricName: string;
  family: string;
  metricType: string;
  labels: Record<string, string>;
  samples: WindowSample[];
}

function placeholders(count: number): string {
  return new Array(count).fill("?").join(", ");
}

/**
 * Loads every series of `container` whose name or family is one of `names`,
 * with its samples whose scrape started inside the window. A stored NULL
 * (the endpoint reported NaN) comes back as `NaN`.
 */
export function loadSeriesWindows(
  db: DatabaseSync,
  container: string,
  names: readonly string[],
  window: TimeWindow,
): SeriesWindow[] {
  if (names.length === 0) return [];
  const statement = db.prepare(
    `SELECT se.id AS series_id, se.metric_name, se.family, se.metric_type, se.labels,
            sc.timestamp, sa.value
     FROM series se
     JOIN samples sa ON sa.series_id = se.id
     JOIN scrapes sc ON sc.id = sa.scrape_id
     WHERE se.container = ?
       AND (se.metric_name IN (${
      placeholders(names.length)
    }) OR se.family IN (${placeholders(names.length)}))
       AND sc.timestamp BETWEEN ? AND ?
     ORDER BY se.id, sa.scrape_id`,
  );
  const bySeries = new Map<number, SeriesWindow>();
  const rows = statement.iterate(
    container,
    ...names,
    ...names,
    window.startMs,
    window.endMs,
  );
  for (const row of rows as Iterable<Record<string, unknown>>) {
    const id = Number(row.series_id);
    let series = bySeries.get(id);
    if (series === undefined) {
      series = {
        seriesId: id,
        container,
        metricName: String(row.metric_name),
        family: String(row.family),
        metricType: String(row.metric_type),
        labels: JSON.parse(String(row.labels)),
        samples: [],
      };
      bySeries.set(id, series);
    }
    const value = row.value === null ? NaN : Number(row.value);
    series.samples.push({ timestampMs: Number(row.timestamp), value });
  }
  return [...bySeries.values()];
}

/** Scrape health of a container over a window. */
export interface ScrapeHealthSummary {
  scrapes: number;
  up: number;
  down: number;
  avgDurationSeconds: number;
  maxDurationSeconds: number;
  parseErrors: number;
  lastScrapeMs: number | null;
  lastError: string | null;
}

/** Summarises the `scrapes` rows of a container inside the window. */
export function loadScrapeHealth(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
): ScrapeHealthSummary {
  const row = db.prepare(
    `SELECT count(*) AS scrapes, coalesce(sum(up), 0) AS up,
            avg(duration_seconds) AS avg_duration, max(duration_seconds) AS max_duration,
            coalesce(sum(parse_errors), 0) AS parse_errors, max(timestamp) AS last_scrape
     FROM scrapes WHERE container = ? AND timestamp BETWEEN ? AND ?`,
  ).get(container, window.startMs, window.endMs) as Record<
    string,
    number | null
  >;
  const lastError = db.prepare(
    `SELECT error FROM scrapes WHERE container = ? AND timestamp BETWEEN ? AND ? AND up = 0
     ORDER BY id DESC LIMIT 1`,
  ).get(container, window.startMs, window.endMs) as
    | { error: string | null }
    | undefined;
  const scrapes = Number(row.scrapes ?? 0);
  const up = Number(row.up ?? 0);
  return {
    scrapes,
    up,
    down: scrapes - up,
    avgDurationSeconds: row.avg_duration === null
      ? NaN
      : Number(row.avg_duration),
    maxDurationSeconds: row.max_duration === null
      ? NaN
      : Number(row.max_duration),
    parseErrors: Number(row.parse_errors ?? 0),
    lastScrapeMs: row.last_scrape === null ? null : Number(row.last_scrape),
    lastError: lastError?.error ?? null,
  };
}

/** Lists the containers that have scrapes stored. */
export function listContainers(db: DatabaseSync): string[] {
  const rows = db.prepare(
    "SELECT DISTINCT container FROM scrapes ORDER BY container",
  ).all();
  return rows.map((row) => String((row as { container: string }).container));
}
