/**
 * Renders {@linkcode ContainerStats} as a readable table or as JSON.
 *
 * @module
 */
import type {
  ContainerStats,
  GaugeStats,
  LatencyStats,
  ModelStats,
  QuantileFigure,
  RateStats,
} from "../metrics/stats.ts";
import { NO_MODEL } from "../metrics/stats.ts";

/** Turns `camelCase` keys into `snake_case`, the style of every other JSON output. */
function snakeCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeCaseKeys);
  if (value === null || typeof value !== "object") return value;
  const result: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) {
    result[key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase()] =
      snakeCaseKeys(entry);
  }
  return result;
}

/**
 * Serialises stats as JSON with snake_case keys. Numbers that JSON cannot
 * hold are written as the strings `"NaN"`, `"+Inf"` and `"-Inf"`, as
 * Prometheus's HTTP API does.
 */
export function statsToJson(stats: readonly ContainerStats[]): string {
  return JSON.stringify(
    stats.map((entry) => ({
      container: entry.container,
      window: {
        start: new Date(entry.window.startMs).toISOString(),
        end: new Date(entry.window.endMs).toISOString(),
      },
      scrape_health: snakeCaseKeys(entry.scrapeHealth),
      models: snakeCaseKeys(entry.models),
      ...(entry.loraAdapters === undefined
        ? {}
        : { lora_adapters: snakeCaseKeys(entry.loraAdapters) }),
    })),
    (_key, value) => {
      if (typeof value !== "number" || Number.isFinite(value)) return value;
      if (Number.isNaN(value)) return "NaN";
      return value > 0 ? "+Inf" : "-Inf";
    },
    2,
  );
}

function number(value: number, digits: number): string {
  if (Number.isNaN(value)) return "-";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return value.toFixed(digits);
}

function seconds(value: number): string {
  if (Number.isNaN(value)) return "-";
  if (value < 1) return `${(value * 1000).toFixed(1)} ms`;
  return `${value.toFixed(3)} s`;
}

function quantile(figure: QuantileFigure): string {
  const text = seconds(figure.value);
  return figure.atLeast ? `≥ ${text}` : text;
}

function row(label: string, cells: string[]): string {
  // Cells line up in 18-column steps; a longer cell keeps two spaces after it.
  const padded = cells.map((cell) =>
    cell.padEnd(Math.ceil((cell.length + 2) / 18) * 18)
  );
  return `  ${label.padEnd(22)}${padded.join("").trimEnd()}`;
}

function gaugeRow(
  label: string,
  stats: GaugeStats,
  unit: string,
  digits: number,
): string {
  const cell = (name: string, value: number) =>
    `${name} ${number(value, digits)}${unit}`;
  return row(label, [
    cell("avg", stats.avg),
    cell("max", stats.max),
    cell("min", stats.min),
    cell("last", stats.last),
  ]);
}

function latencyRow(
  label: string,
  stats: LatencyStats,
  unitName: string,
): string {
  if (!(stats.count > 0)) {
    return row(label, [
      Number.isNaN(stats.count) ? "no data" : `no ${unitName}`,
    ]);
  }
  return row(label, [
    `avg ${seconds(stats.avg)}`,
    `p50 ${quantile(stats.p50)}`,
    `p95 ${quantile(stats.p95)}`,
    `p99 ${quantile(stats.p99)}`,
    `(${number(stats.count, 0)} ${unitName})`,
  ]);
}

function rateRow(label: string, stats: RateStats): string {
  return row(label, [
    `avg ${number(stats.avg, 1)}`,
    `max ${number(stats.max, 1)}`,
    `min ${number(stats.min, 1)}`,
  ]);
}

function modelLines(model: ModelStats): string[] {
  const name = model.model === NO_MODEL ? "(no model_name label)" : model.model;
  const engines = model.engines.length === 0
    ? ""
    : ` (engine ${model.engines.join(", ")})`;
  const finished = Object.entries(model.finishedRequestsByReason)
    .map(([reason, count]) => `${reason} ${number(count, 0)}`)
    .join(", ");
  return [
    `model ${name}${engines}`,
    gaugeRow("KV-cache usage", model.kvCacheUsagePercent, " %", 2),
    ...Object.entries(model.kvCacheUsagePercentByEngine ?? {}).map((
      [engine, stats],
    ) => gaugeRow(`  engine ${engine}`, stats, " %", 2)),
    gaugeRow("Running requests", model.runningRequests, "", 1),
    gaugeRow("Waiting requests", model.waitingRequests, "", 1),
    latencyRow("Queue time", model.queueTimeSeconds, "requests"),
    latencyRow(
      "Time to first token",
      model.timeToFirstTokenSeconds,
      "requests",
    ),
    latencyRow("E2E latency", model.e2eLatencySeconds, "requests"),
    latencyRow("Inter-token latency", model.interTokenLatencySeconds, "tokens"),
    rateRow("Generation tokens/s", model.generationTokensPerSecond),
    rateRow("Prompt tokens/s", model.promptTokensPerSecond),
    row("Preemptions", [number(model.preemptions, 0)]),
    row("Finished requests", [finished === "" ? "-" : finished]),
  ];
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Renders stats as a plain-text table, one block per container and model. */
export function statsToTable(stats: readonly ContainerStats[]): string {
  const lines: string[] = [];
  for (const entry of stats) {
    const health = entry.scrapeHealth;
    lines.push(
      `${entry.container}  ${iso(entry.window.startMs)} to ${
        iso(entry.window.endMs)
      }`,
    );
    lines.push(
      row("Scrapes", [
        `${health.scrapes} (up ${health.up}, down ${health.down})`,
        `avg ${seconds(health.avgDurationSeconds)}`,
        `max ${seconds(health.maxDurationSeconds)}`,
        `parse errors ${health.parseErrors}`,
      ]),
    );
    if (health.lastError !== null) {
      lines.push(row("Last scrape error", [health.lastError]));
    }
    if (entry.models.length === 0) {
      lines.push("  no vLLM samples in this window");
    }
    for (const model of entry.models) lines.push(...modelLines(model));
    lines.push("");
  }
  return lines.join("\n");
}
