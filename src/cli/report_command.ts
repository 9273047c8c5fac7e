/**
 * `metrics report`: writes one self-contained HTML file with charts of the
 * metrics database over a window, for reading in a browser without network.
 *
 * @module
 */
import type { Command } from "commander";
import { loadConfigFile } from "../config/config.ts";
import { listContainers } from "../metrics/query.ts";
import { type MetricsStore, openStore } from "../metrics/store.ts";
import {
  type AlertLog,
  buildReportData,
  DEFAULT_MAX_POINTS,
  readAlertsLog,
} from "../report/report_data.ts";
import { renderReportHtml } from "../report/render_html.ts";
import { parsePositiveInteger, UsageError } from "./options.ts";
import { writeStdout } from "./output.ts";
import {
  parseDurationMs,
  resolveWindow,
  type TimeWindow,
  type WindowFlags,
} from "./time_window.ts";

interface ReportFlags extends WindowFlags {
  output: string;
  container?: string;
  db?: string;
  config?: string;
  alertsLog?: string;
  latencyWindow: string;
  maxPoints: number;
  title: string;
}

const EXAMPLE =
  "horos_vllm_logger metrics report --last 24h --db /data/vllm_metrics.db --output report.html";

/** The database and the `output_dir` of the configuration, when one was read. */
interface ReportSource {
  store: MetricsStore;
  outputDir: string | null;
}

/** Opens the database named by `--db`, or by `metrics_scraper.db_path` of `--config`. */
async function openSource(flags: ReportFlags): Promise<ReportSource> {
  if (flags.db !== undefined && flags.config !== undefined) {
    throw new UsageError("--db conflicts with --config; pass one of them");
  }
  let path = flags.db;
  let outputDir: string | null = null;
  if (flags.config !== undefined) {
    const config = await loadConfigFile(flags.config);
    path = config.dbPath ?? undefined;
    outputDir = config.outputDir;
    if (path === undefined) {
      throw new UsageError(
        `configuration ${flags.config} has no metrics_scraper.db_path; pass --db FILE`,
        EXAMPLE,
      );
    }
  }
  if (path === undefined) {
    throw new UsageError(
      "no database given: pass --db FILE or --config FILE",
      EXAMPLE,
    );
  }
  return { store: openStore(path, { readOnly: true }), outputDir };
}

/**
 * Reads `--alerts-log`, which must exist, or else `<output_dir>/alerts.log`
 * of the configuration when that file exists. Returns null when neither
 * applies.
 */
async function loadAlerts(
  flags: ReportFlags,
  outputDir: string | null,
  window: TimeWindow,
  containers: readonly string[],
): Promise<AlertLog | null> {
  if (flags.alertsLog !== undefined) {
    try {
      return await readAlertsLog(flags.alertsLog, window, containers);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new UsageError(
          `alerts log "${flags.alertsLog}" not found; pass the alerts.log in the logger's output_dir, or leave out --alerts-log`,
        );
      }
      throw error;
    }
  }
  if (outputDir === null) return null;
  try {
    return await readAlertsLog(`${outputDir}/alerts.log`, window, containers);
  } catch (error) {
    // The logger writes alerts.log only once an alert fires.
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function selectContainers(store: MetricsStore, container?: string): string[] {
  const known = listContainers(store.db);
  if (container === undefined) return known;
  if (!known.includes(container)) {
    const list = known.length === 0 ? "none" : known.join(", ");
    throw new UsageError(
      `container "${container}" not found in the database (containers with scrapes: ${list})`,
    );
  }
  return [container];
}

/** Writes the file through a temporary name, so a reader never sees half a report. */
async function writeReport(path: string, html: string): Promise<void> {
  const temporary = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(temporary, html);
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/** Adds `report` to the `metrics` command. */
export function addReportCommand(metrics: Command): void {
  metrics
    .command("report")
    .description(
      "write a self-contained HTML report: charts of KV-cache usage, requests, tokens/s, latency percentiles, scrape health and alerts",
    )
    .requiredOption(
      "-o, --output <file>",
      'HTML file to write, replaced if it exists; "-" writes to stdout',
    )
    .option(
      "--container <name>",
      "only this container (default: every container in the database)",
    )
    .option(
      "--last <duration>",
      "window ending now (or at --until), e.g. 1h, 24h, 7d (default: 24h)",
    )
    .option(
      "--since <time>",
      "window start: RFC 3339, a date, Unix seconds, or a duration ago (conflicts with --last)",
    )
    .option(
      "--until <time>",
      "window end, same forms as --since (default: now)",
    )
    .option("--db <file>", "SQLite file written by the logger")
    .option(
      "--config <file>",
      "read the database path, and output_dir for alerts.log, from this configuration instead of --db",
    )
    .option(
      "--alerts-log <file>",
      "alert events (JSON lines) to mark on the charts (default: <output_dir>/alerts.log of --config when it exists)",
    )
    .option(
      "--latency-window <duration>",
      "rolling window over which each latency percentile point is computed, e.g. 30s, 1m, 5m",
      "1m",
    )
    .option(
      "--max-points <count>",
      "maximum points per chart line; longer windows are grouped into equal time buckets",
      parsePositiveInteger,
      DEFAULT_MAX_POINTS,
    )
    .option("--title <text>", "report title", "vLLM metrics report")
    .addHelpText(
      "after",
      `
The report is one HTML file with everything inline (chart library, styles, data as JSON):
it makes no network request and opens offline. Charts per container and model:
  KV-cache usage (%, mean across engines; vLLM reports a 0-1 fraction)
  running and waiting requests (sum across engines)
  generation and prompt tokens/s (counter rate per scrape interval, restarts handled)
  queue time p50/p95/p99, time to first token, end-to-end and inter-token latency p95
    (seconds, from histogram bucket increases over --latency-window ending at each scrape)
  scrape duration (s) and share of successful scrapes (%)
Above --max-points scrapes, each point is a time bucket: gauges, rates and success are
averaged, latencies and scrape durations take the bucket's maximum. Alert events are
dashed vertical lines (firing, resolved) and a table. Times are UTC.

Examples:
  horos_vllm_logger metrics report --last 24h --db /data/vllm_metrics.db --output report.html
  horos_vllm_logger metrics report --container vllm-vision --since 2026-11-17T09:00:00Z --until 2026-11-17T12:00:00Z --config configs/vllm_logger.yaml --output vision.html
  horos_vllm_logger metrics report --last 7d --db /data/vllm_metrics.db --alerts-log /data/vllm_logs/alerts.log --latency-window 5m -o week.html`,
    )
    .action(async (flags: ReportFlags) => {
      const window = resolveWindow(flags, Date.now(), "24h");
      const latencyWindowMs = parseDurationMs(flags.latencyWindow);
      const { store, outputDir } = await openSource(flags);
      let html: string;
      let containerCount: number;
      try {
        const containers = selectContainers(store, flags.container);
        const alerts = await loadAlerts(flags, outputDir, window, containers);
        const data = buildReportData(store.db, {
          containers,
          window,
          maxPoints: flags.maxPoints,
          latencyWindowMs,
          alerts,
          title: flags.title,
        });
        html = renderReportHtml(data);
        containerCount = containers.length;
      } finally {
        store.close();
      }
      if (flags.output === "-") {
        await writeStdout(html);
        return;
      }
      await writeReport(flags.output, html);
      const bytes = new TextEncoder().encode(html).length;
      await writeStdout(
        `wrote ${flags.output} (${bytes} bytes, ${containerCount} container(s))\n`,
      );
    });
}
