/**
 * `metrics stats`, `metrics export` and `metrics list`: read-only commands
 * over the SQLite file the logger writes.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { loadConfigFile } from "../config/config.ts";
import { type ExportFormat, exportSamples } from "../metrics/export.ts";
import { listContainers, resolveMetricNames } from "../metrics/query.ts";
import { containerStats } from "../metrics/stats.ts";
import { type MetricsStore, openStore } from "../metrics/store.ts";
import { UsageError } from "./options.ts";
import { writeStdout } from "./output.ts";
import { addReportCommand } from "./report_command.ts";
import {
  colorEnabled,
  loadStatsSparklines,
  statsToTerminalTable,
} from "./sparkline.ts";
import { statsToJson, statsToTable } from "./stats_format.ts";
import { resolveWindow, type WindowFlags } from "./time_window.ts";

interface DatabaseFlags {
  db?: string;
  config?: string;
}

/** Finds the database from `--db`, or from `metrics_scraper.db_path` of `--config`. */
async function openDatabase(flags: DatabaseFlags): Promise<MetricsStore> {
  if (flags.db !== undefined && flags.config !== undefined) {
    throw new UsageError("--db conflicts with --config; pass one of them");
  }
  let path = flags.db;
  if (path === undefined && flags.config !== undefined) {
    const config = await loadConfigFile(flags.config);
    path = config.dbPath ?? undefined;
  }
  if (path === undefined) {
    throw new UsageError(
      "no database given: pass --db FILE or --config FILE",
      "horos_vllm_logger metrics stats --db /data/vllm_metrics.db --last 1h",
    );
  }
  return openStore(path, { readOnly: true });
}

/**
 * Returns `container` when the database has scrapes of it.
 *
 * @throws {UsageError} listing the containers it has, so a typo is not read as "no data"
 */
function requireContainer(store: MetricsStore, container: string): string {
  const known = listContainers(store.db);
  if (known.includes(container)) return container;
  const list = known.length === 0 ? "none" : known.join(", ");
  throw new UsageError(
    `container "${container}" not found in the database (containers with scrapes: ${list})`,
  );
}

/**
 * Checks that some stored series has one of `names` as its name or family.
 *
 * @throws {UsageError} naming the metric and how to list the stored names
 */
function requireMetric(
  store: MetricsStore,
  names: readonly string[],
  metric: string,
): void {
  const placeholders = names.map(() => "?").join(", ");
  const found = store.db.prepare(
    `SELECT 1 AS found FROM series
     WHERE metric_name IN (${placeholders}) OR family IN (${placeholders}) LIMIT 1`,
  ).get(...names, ...names);
  if (found === undefined) {
    throw new UsageError(
      `no stored series is named "${metric}" (looked for ${
        names.join(", ")
      }); list the stored names with metrics list`,
    );
  }
}

function addDatabaseOptions(command: Command): Command {
  return command
    .option("--db <file>", "SQLite file written by the logger")
    .option(
      "--config <file>",
      "read the database path from this configuration instead of --db",
    );
}

function addWindowOptions(
  command: Command,
  defaultLast: string | null,
): Command {
  const lastHelp = defaultLast === null
    ? "window ending now (or at --until), e.g. 15m, 1h, 7d (default: all time)"
    : `window ending now (or at --until), e.g. 15m, 1h, 7d (default: ${defaultLast})`;
  return command
    .option("--last <duration>", lastHelp)
    .option(
      "--since <time>",
      "window start: RFC 3339, a date, Unix seconds, or a duration ago (conflicts with --last)",
    )
    .option(
      "--until <time>",
      "window end, same forms as --since (default: now)",
    );
}

interface StatsFlags extends DatabaseFlags, WindowFlags {
  container?: string;
  format: "table" | "json";
  color: boolean;
}

interface ExportFlags extends DatabaseFlags, WindowFlags {
  metric: string;
  container?: string;
  format: ExportFormat;
}

/** Adds `metrics` and its subcommands to the program. */
export function addMetricsCommands(
  program: Command,
  _exitCode: { value: number },
): void {
  const metrics = program.command("metrics").description(
    "read the metrics database: stats, export, list, report",
  );

  const stats = metrics
    .command("stats")
    .description(
      "KV-cache usage, queue time, latency percentiles and tokens/s per container and model",
    )
    .option(
      "--container <name>",
      "only this container (default: every container in the database)",
    );
  addWindowOptions(stats, "1h");
  addDatabaseOptions(stats);
  stats
    .addOption(
      new Option("--format <format>", "output format").choices([
        "table",
        "json",
      ]).default("table"),
    )
    .option(
      "--no-color",
      "write no ANSI colours (also off when NO_COLOR is set or stdout is not a terminal)",
    )
    .addHelpText(
      "after",
      `
Percentiles come from histogram bucket increases over the window, interpolated like
Prometheus's histogram_quantile; tokens/s is the reset-aware rate of vLLM's token
counters. KV-cache usage is shown in percent (vLLM reports a 0-1 fraction).
On a terminal, the KV-cache, request and tokens/s rows end with a sparkline of
the window (KV-cache on a 0-100 % scale, the others from 0 to their maximum).

Examples:
  horos_vllm_logger metrics stats --container vllm-vision --last 1h --db /data/vllm_metrics.db
  horos_vllm_logger metrics stats --since 2026-11-17T09:00:00Z --until 2026-11-17T10:00:00Z --config configs/vllm_logger.yaml
  horos_vllm_logger metrics stats --last 24h --format json --db /data/vllm_metrics.db | jq '.[0].models'`,
    )
    .action(async (flags: StatsFlags) => {
      const window = resolveWindow(flags, Date.now(), "1h");
      const store = await openDatabase(flags);
      try {
        const containers = flags.container === undefined
          ? listContainers(store.db)
          : [requireContainer(store, flags.container)];
        const results = containers.map((container) =>
          containerStats(store.db, container, window)
        );
        let text: string;
        if (flags.format === "json") {
          text = statsToJson(results) + "\n";
        } else if (Deno.stdout.isTerminal()) {
          const color = colorEnabled(Deno.stdout, flags);
          const sparklines = loadStatsSparklines(store.db, results);
          text = statsToTerminalTable(results, sparklines, { color });
        } else {
          text = statsToTable(results);
        }
        await writeStdout(
          text === "" ? "no containers in the database\n" : text,
        );
      } finally {
        store.close();
      }
    });

  const exportCommand = metrics
    .command("export")
    .description(
      "stream stored samples of one metric as CSV, JSON lines or OpenMetrics text",
    )
    .requiredOption(
      "--metric <name>",
      "metric or family name; short names work (kv_cache_usage_perc)",
    )
    .option(
      "--container <name>",
      "only this container (default: every container)",
    );
  addWindowOptions(exportCommand, null);
  addDatabaseOptions(exportCommand);
  exportCommand
    .addOption(
      new Option("--format <format>", "output format").choices([
        "csv",
        "jsonl",
        "openmetrics",
      ]).default("csv"),
    )
    .addHelpText(
      "after",
      `
CSV and JSON lines carry timestamp (Unix milliseconds), container, metric_name, value
(NaN, +Inf, -Inf as text) and labels (JSON). OpenMetrics output can be backfilled into
Prometheus with promtool tsdb create-blocks-from openmetrics.

Examples:
  horos_vllm_logger metrics export --metric kv_cache_usage_perc --format csv --db /data/vllm_metrics.db > kv.csv
  horos_vllm_logger metrics export --metric vllm:request_queue_time_seconds --last 24h --format jsonl --db /data/vllm_metrics.db
  horos_vllm_logger metrics export --metric generation_tokens_total --format openmetrics --db /data/vllm_metrics.db > tokens.om`,
    )
    .action(async (flags: ExportFlags) => {
      const window = resolveWindow(flags, Date.now(), null);
      const store = await openDatabase(flags);
      try {
        if (flags.container !== undefined) {
          requireContainer(store, flags.container);
        }
        const names = resolveMetricNames(flags.metric);
        requireMetric(store, names, flags.metric);
        await exportSamples(
          store.db,
          {
            names,
            container: flags.container ?? null,
            window,
          },
          flags.format,
          writeStdout,
        );
      } finally {
        store.close();
      }
    });

  const list = metrics
    .command("list")
    .description("list the stored series: container, metric name, type, labels")
    .option("--container <name>", "only this container");
  addDatabaseOptions(list);
  list.action(async (flags: DatabaseFlags & { container?: string }) => {
    const store = await openDatabase(flags);
    try {
      const statement = store.db.prepare(
        `SELECT container, metric_name, metric_type, labels FROM series
         WHERE ? IS NULL OR container = ? ORDER BY container, metric_name, labels`,
      );
      const container = flags.container ?? null;
      if (container !== null) requireContainer(store, container);
      let text = "";
      for (const row of statement.iterate(container, container)) {
        const { container: name, metric_name, metric_type, labels } =
          row as Record<string, string>;
        text += `${name}\t${metric_name}\t${metric_type}\t${labels}\n`;
        if (text.length > 64 * 1024) {
          if (!await writeStdout(text)) return;
          text = "";
        }
      }
      await writeStdout(text);
    } finally {
      store.close();
    }
  });
  addReportCommand(metrics);
}
