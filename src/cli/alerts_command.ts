/**
 * `alerts check` (validate a rules file and explain each rule) and
 * `alerts status` (the pending and firing alerts stored in the database).
 *
 * @module
 */
import { type Command, Option } from "commander";
import {
  type AlertStateRow,
  hasAlertStateTable,
  loadAlertStates,
} from "../alerts/alert_state.ts";
import { type AlertRules, describeRule, loadRules } from "../alerts/rules.ts";
import { loadConfigFile } from "../config/config.ts";
import { resolveMetricNames } from "../metrics/query.ts";
import { type MetricsStore, openStore } from "../metrics/store.ts";
import { EXIT_FAILURE } from "../exit_codes.ts";
import { UsageError } from "./options.ts";
import { writeStderr, writeStdout } from "./output.ts";

/** Rules file that `alerts check` reads without `--rules`. */
export const DEFAULT_RULES_FILE = "configs/vllm_alerts.yaml";

/** Lists the metrics named in rules that have no stored series under any of their names. */
function metricsWithoutSeries(
  store: MetricsStore,
  rules: AlertRules,
): { rule: string; metric: string }[] {
  const missing: { rule: string; metric: string }[] = [];
  for (const rule of rules.rules) {
    for (const comparison of rule.condition.comparisons) {
      if (comparison.operand.kind === "up") continue;
      const names = resolveMetricNames(comparison.operand.metric);
      const placeholders = names.map(() => "?").join(", ");
      const found = store.db.prepare(
        `SELECT 1 AS found FROM series WHERE metric_name IN (${placeholders}) OR family IN (${placeholders}) LIMIT 1`,
      ).get(...names, ...names);
      if (found === undefined) {
        missing.push({ rule: rule.name, metric: comparison.operand.metric });
      }
    }
  }
  return missing;
}

/** Formats the output of `alerts check`: each rule and what it means. */
export function formatRulesCheck(rules: AlertRules): string {
  if (rules.rules.length === 0) return `${rules.file}: no rules\n`;
  const blocks = rules.rules.map((rule) =>
    `${rule.name}: ${rule.condition.text} for ${rule.duration} (${rule.action})\n` +
    `  ${describeRule(rule)}\n`
  );
  const count = rules.rules.length === 1
    ? "1 rule"
    : `${rules.rules.length} rules`;
  return `${blocks.join("\n")}\n${rules.file}: ${count}, valid\n`;
}

/** One line of `alerts status`. */
export interface AlertStatus {
  container: string | null;
  rule: string;
  state: "pending" | "firing" | "inactive";
  /** Unix ms when the state began: pending start, or firing time. */
  sinceMs: number | null;
  /** Unix ms when a pending alert fires if its condition keeps holding. */
  firesAtMs: number | null;
  value: number | null;
  threshold: number | null;
  labels: Record<string, string>;
  /** Unix ms of the last evaluation. */
  evaluatedAtMs: number | null;
}

/**
 * Combines stored instances with the rules: every stored instance, then one
 * `inactive` line for each rule without a stored instance.
 */
export function alertStatuses(
  rows: readonly AlertStateRow[],
  rules: AlertRules | null,
): AlertStatus[] {
  const durations = new Map(
    rules?.rules.map((rule) => [rule.name, rule.durationMs]) ?? [],
  );
  const statuses: AlertStatus[] = rows.map((row) => {
    const durationMs = durations.get(row.rule);
    const firing = row.firedAtMs !== null;
    return {
      container: row.container,
      rule: row.rule,
      state: firing ? "firing" : "pending",
      sinceMs: firing ? row.firedAtMs : row.pendingSinceMs,
      firesAtMs: firing || durationMs === undefined
        ? null
        : row.pendingSinceMs + durationMs,
      value: row.value,
      threshold: row.threshold,
      labels: JSON.parse(row.labels),
      evaluatedAtMs: row.evaluatedAtMs,
    };
  });
  const active = new Set(rows.map((row) => row.rule));
  for (const rule of rules?.rules ?? []) {
    if (active.has(rule.name)) continue;
    statuses.push({
      container: rule.container,
      rule: rule.name,
      state: "inactive",
      sinceMs: null,
      firesAtMs: null,
      value: null,
      threshold: rule.condition.comparisons[0]!.threshold,
      labels: rule.labels,
      evaluatedAtMs: null,
    });
  }
  return statuses;
}

function isoOrDash(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString();
}

function padTable(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row.map((cell, index) =>
      index === row.length - 1 ? cell : cell.padEnd(widths[index]!)
    ).join("  ")
  ).join("\n") + "\n";
}

/** Formats statuses as an aligned table, one alert instance per line. */
export function statusesToTable(statuses: readonly AlertStatus[]): string {
  if (statuses.length === 0) return "no pending or firing alerts\n";
  const header = [
    "CONTAINER",
    "RULE",
    "STATE",
    "SINCE",
    "FIRES AT",
    "VALUE",
    "THRESHOLD",
    "LAST EVALUATED",
    "LABELS",
  ];
  const rows = statuses.map((status) => [
    status.container ?? "(all)",
    status.rule,
    status.state,
    isoOrDash(status.sinceMs),
    isoOrDash(status.firesAtMs),
    status.value === null ? "-" : String(status.value),
    status.threshold === null ? "-" : String(status.threshold),
    isoOrDash(status.evaluatedAtMs),
    Object.keys(status.labels).length === 0
      ? "-"
      : JSON.stringify(status.labels),
  ]);
  return padTable([header, ...rows]);
}

/** Formats statuses as a JSON array with ISO 8601 times. */
export function statusesToJson(statuses: readonly AlertStatus[]): string {
  const toIso = (ms: number | null) =>
    ms === null ? null : new Date(ms).toISOString();
  return JSON.stringify(
    statuses.map((status) => ({
      container: status.container,
      rule: status.rule,
      state: status.state,
      since: toIso(status.sinceMs),
      fires_at: toIso(status.firesAtMs),
      value: status.value,
      threshold: status.threshold,
      last_evaluated: toIso(status.evaluatedAtMs),
      labels: status.labels,
    })),
    null,
    2,
  ) + "\n";
}

interface StatusFlags {
  db?: string;
  config?: string;
  rules?: string;
  container?: string;
  format: "table" | "json";
}

/** Finds the database and the rules file from `--db`, `--config` and `--rules`. */
async function statusSources(
  flags: StatusFlags,
): Promise<{ dbPath: string; rulesPath: string | null }> {
  if (flags.db !== undefined && flags.config !== undefined) {
    throw new UsageError("--db conflicts with --config; pass one of them");
  }
  if (flags.db !== undefined) {
    return { dbPath: flags.db, rulesPath: flags.rules ?? null };
  }
  if (flags.config === undefined) {
    throw new UsageError(
      "no database given: pass --db FILE or --config FILE",
      "horos_vllm_logger alerts status --db /data/vllm_metrics.db --rules configs/vllm_alerts.yaml",
    );
  }
  const config = await loadConfigFile(flags.config);
  if (config.dbPath === null) {
    throw new UsageError(
      `${flags.config} scrapes no metrics, so there is no alert state; pass --db FILE`,
    );
  }
  return {
    dbPath: config.dbPath,
    rulesPath: flags.rules ?? config.alertsFile,
  };
}

/** Adds `alerts check` and `alerts status` to the program. */
export function addAlertsCommands(
  program: Command,
  exitCode: { value: number },
): void {
  const alerts = program
    .command("alerts")
    .description("check alert rules and show pending and firing alerts");

  alerts
    .command("check")
    .description("validate a rules file and print what each rule means")
    .option("--rules <file>", "rules file", DEFAULT_RULES_FILE)
    .option(
      "--db <file>",
      "also check that each metric named in a rule has series in this database",
    )
    .addHelpText(
      "after",
      `
Exits 2 and names the rule, key and column when the file is invalid; the logger
refuses to start on such a file. With --db, a metric that has no stored series
(a misspelled name, or one this vLLM version does not expose) is reported and
the exit code is 1, because such a rule would never fire.

Examples:
  horos_vllm_logger alerts check
  horos_vllm_logger alerts check --rules /etc/horos/vllm_alerts.yaml --db /data/vllm_metrics.db`,
    )
    .action(async (flags: { rules: string; db?: string }) => {
      const rules = await loadRules(flags.rules);
      await writeStdout(formatRulesCheck(rules));
      if (flags.db === undefined) return;
      const store = openStore(flags.db, { readOnly: true });
      try {
        const missing = metricsWithoutSeries(store, rules);
        for (const { rule, metric } of missing) {
          writeStderr(
            `warning: rule "${rule}": no series named ${metric} in ${flags.db}; check the spelling (it would never fire)`,
          );
        }
        if (missing.length > 0) exitCode.value = EXIT_FAILURE;
      } finally {
        store.close();
      }
    });

  alerts
    .command("status")
    .description(
      "show the pending and firing alerts stored by the logger, per container and label set",
    )
    .option("--db <file>", "SQLite file written by the logger")
    .option(
      "--config <file>",
      "read the database path and alerts_file from this configuration instead of --db",
    )
    .option(
      "--rules <file>",
      "rules file, to list inactive rules and when pending alerts fire (default with --config: its alerts_file)",
    )
    .option("--container <name>", "only this container")
    .addOption(
      new Option("--format <format>", "output format")
        .choices(["table", "json"])
        .default("table"),
    )
    .addHelpText(
      "after",
      `
The state is what the running logger saved after its last scrape; LAST EVALUATED
shows how recent it is. Times are UTC.

Examples:
  horos_vllm_logger alerts status --config configs/vllm_logger.yaml
  horos_vllm_logger alerts status --db /data/vllm_metrics.db --rules configs/vllm_alerts.yaml
  horos_vllm_logger alerts status --db /data/vllm_metrics.db --format json`,
    )
    .action(async (flags: StatusFlags) => {
      const { dbPath, rulesPath } = await statusSources(flags);
      const rules = rulesPath === null ? null : await loadRules(rulesPath);
      const store = openStore(dbPath, { readOnly: true });
      let rows: AlertStateRow[];
      try {
        rows = hasAlertStateTable(store.db)
          ? loadAlertStates(store.db, flags.container ?? null)
          : [];
      } finally {
        store.close();
      }
      const statuses = alertStatuses(rows, rules).filter((status) =>
        flags.container === undefined || status.container === null ||
        status.container === flags.container
      );
      await writeStdout(
        flags.format === "json"
          ? statusesToJson(statuses)
          : statusesToTable(statuses),
      );
    });
}
