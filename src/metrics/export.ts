/**
 * `metrics export`: streams stored samples as CSV, JSON lines or OpenMetrics
 * text, row by row from SQLite, so memory stays flat on millions of rows.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { TimeWindow } from "../cli/time_window.ts";

/** Output formats of `metrics export`. */
export type ExportFormat = "csv" | "jsonl" | "openmetrics";

/** What to export. */
export interface ExportQuery {
  /** Stored names to match against series names and families. */
  names: string[];
  /** Only this container, or every container when null. */
  container: string | null;
  window: TimeWindow;
}

/** Receives output text; returns false to stop early (a closed pipe). */
export type ExportSink = (text: string) => Promise<boolean>;

interface ExportRow {
  timestamp: number;
  container: string;
  metric_name: string;
  family: string;
  metric_type: string;
  labels: string;
  value: number | null;
}

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function formatValue(value: number | null): string {
  if (value === null || Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
    "\n",
    "\\n",
  );
}

/** OpenMetrics family type for a stored type; `untyped` is `unknown` there. */
function openMetricsType(type: string): string {
  return type === "untyped" ? "unknown" : type;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function openMetricsName(name: string): string {
  return METRIC_NAME.test(name) ? name : `"${escapeLabelValue(name)}"`;
}

/**
 * Writes every matching sample to `sink` and returns the number of rows.
 * OpenMetrics output groups each family's samples together (with the
 * container as a `container` label) and ends with `# EOF`, so
 * `promtool tsdb create-blocks-from openmetrics` can backfill it.
 */
export async function exportSamples(
  db: DatabaseSync,
  query: ExportQuery,
  format: ExportFormat,
  sink: ExportSink,
): Promise<number> {
  const placeholders = query.names.map(() => "?").join(", ");
  const containerFilter = query.container === null
    ? ""
    : "AND se.container = ?";
  const order = format === "openmetrics"
    ? "se.family, se.container, se.id, sa.scrape_id"
    : "sa.scrape_id, se.id";
  const statement = db.prepare(
    `SELECT sc.timestamp, se.container, se.metric_name, se.family, se.metric_type, se.labels, sa.value
     FROM series se
     JOIN samples sa ON sa.series_id = se.id
     JOIN scrapes sc ON sc.id = sa.scrape_id
     WHERE (se.metric_name IN (${placeholders}) OR se.family IN (${placeholders}))
       ${containerFilter}
       AND sc.timestamp BETWEEN ? AND ?
     ORDER BY ${order}`,
  );
  const parameters: (string | number)[] = [...query.names, ...query.names];
  if (query.container !== null) parameters.push(query.container);
  parameters.push(query.window.startMs, query.window.endMs);

  let buffer = "";
  let rows = 0;
  let open = true;
  const emit = async (text: string): Promise<void> => {
    buffer += text;
    if (buffer.length >= 64 * 1024) {
      open = await sink(buffer);
      buffer = "";
    }
  };

  if (format === "csv") {
    await emit("timestamp,time,container,metric_name,value,labels\n");
  }
  let family: string | null = null;
  for (const raw of statement.iterate(...parameters)) {
    const row = raw as unknown as ExportRow;
    rows++;
    if (format === "csv") {
      const time = new Date(row.timestamp).toISOString();
      await emit(
        `${row.timestamp},${time},${csvField(row.container)},${
          csvField(row.metric_name)
        },${formatValue(row.value)},${csvField(row.labels)}\n`,
      );
    } else if (format === "jsonl") {
      const value = row.value === null
        ? "NaN"
        : Number.isFinite(row.value)
        ? row.value
        : formatValue(row.value);
      await emit(
        `{"timestamp":${row.timestamp},"container":${
          JSON.stringify(row.container)
        },"metric_name":${JSON.stringify(row.metric_name)},"value":${
          typeof value === "number" ? value : JSON.stringify(value)
        },"labels":${row.labels}}\n`,
      );
    } else {
      if (row.family !== family) {
        family = row.family;
        await emit(
          `# TYPE ${openMetricsName(family)} ${
            openMetricsType(row.metric_type)
          }\n`,
        );
      }
      const labels = Object.entries({
        container: row.container,
        ...JSON.parse(row.labels) as Record<string, string>,
      })
        .map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
        .join(",");
      await emit(
        `${openMetricsName(row.metric_name)}{${labels}} ${
          formatValue(row.value)
        } ${row.timestamp / 1000}\n`,
      );
    }
    if (!open) return rows;
  }
  if (format === "openmetrics") await emit("# EOF\n");
  if (buffer !== "") await sink(buffer);
  return rows;
}
