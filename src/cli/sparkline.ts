/**
 * Terminal sparklines for `metrics stats`: one line of block characters per
 * quantity and model, showing how it moved over the window, and the colour
 * decision for terminal output.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { ContainerStats } from "../metrics/stats.ts";
import { loadContainerTimeline } from "../report/timeline.ts";
import { statsToTable } from "./stats_format.ts";
import type { TimeWindow } from "./time_window.ts";

/** The eight block heights, lowest first. */
const BLOCKS = "▁▂▃▄▅▆▇█";

/** Options of {@linkcode sparkline}. */
export interface SparklineRange {
  /** Value drawn as the lowest block. @default min(0, smallest drawn value) */
  min?: number;
  /** Value drawn as the highest block. @default the largest drawn value */
  max?: number;
}

/** Means of `values` in `width` consecutive groups of nearly equal size, ignoring `NaN`. */
function resample(values: readonly number[], width: number): number[] {
  if (values.length <= width) return [...values];
  const columns: number[] = [];
  for (let column = 0; column < width; column++) {
    const start = Math.floor(column * values.length / width);
    const end = Math.floor((column + 1) * values.length / width);
    let sum = 0;
    let count = 0;
    for (let i = start; i < end; i++) {
      const value = values[i]!;
      if (Number.isNaN(value)) continue;
      sum += value;
      count++;
    }
    columns.push(count === 0 ? NaN : sum / count);
  }
  return columns;
}

/**
 * Draws values as a line of the blocks ▁▂▃▄▅▆▇█, one character per value, or
 * per group of values when there are more values than `width` (each group
 * shows its mean). `NaN` draws as a space, `+Inf` as █ and `-Inf` as ▁.
 *
 * The scale runs from `min(0, smallest drawn value)` to the largest drawn
 * value (a group's mean, when values are grouped), so a series of
 * non-negative values keeps its zero at the lowest block and a small wobble
 * on a large value does not fill the whole height. A series
 * whose range is empty draws every value as ▁. Returns an empty string for
 * no values or a width below 1.
 */
export function sparkline(
  values: readonly number[],
  width: number,
  range: SparklineRange = {},
): string {
  if (!(width >= 1)) return "";
  const columns = resample(values, Math.floor(width));
  const finite = columns.filter((value) => Number.isFinite(value));
  const low = range.min ?? Math.min(0, ...finite);
  const high = range.max ?? (finite.length === 0 ? low : Math.max(...finite));
  const top = BLOCKS.length - 1;
  return columns.map((value) => {
    if (Number.isNaN(value)) return " ";
    if (value === Infinity) return BLOCKS[top];
    if (value === -Infinity || !(high > low)) return BLOCKS[0];
    const level = Math.round((value - low) / (high - low) * top);
    return BLOCKS[Math.min(Math.max(level, 0), top)];
  }).join("");
}

/** Sparklines of one model over a window, each `width` characters or fewer. */
export interface ModelSparklines {
  model: string;
  kvCacheUsagePercent: string;
  runningRequests: string;
  waitingRequests: string;
  generationTokensPerSecond: string;
  promptTokensPerSecond: string;
}

/**
 * Means of the points in `width` equal time slices between the first and the
 * last point, `NaN` for a slice without a point, so a stretch without
 * scrapes shows as blank columns.
 */
export function timeColumns(
  timestampsMs: readonly number[],
  values: readonly number[],
  width: number,
): number[] {
  const first = timestampsMs[0];
  const last = timestampsMs[timestampsMs.length - 1];
  if (first === undefined || last === undefined) return [];
  if (timestampsMs.length <= width || last === first) return [...values];
  const sums = new Array<number>(width).fill(0);
  const counts = new Array<number>(width).fill(0);
  const sliceMs = (last - first) / width;
  timestampsMs.forEach((time, i) => {
    const value = values[i]!;
    if (Number.isNaN(value)) return;
    const column = Math.min(Math.floor((time - first) / sliceMs), width - 1);
    sums[column]! += value;
    counts[column]!++;
  });
  return sums.map((sum, i) => counts[i] === 0 ? NaN : sum / counts[i]!);
}

/**
 * Computes sparklines of KV-cache usage (on a fixed 0-100 % scale), running
 * and waiting requests, and generation and prompt tokens/s per model of one
 * container over a window. Latency histograms are not read.
 */
export function loadModelSparklines(
  db: DatabaseSync,
  container: string,
  window: TimeWindow,
  width: number,
): ModelSparklines[] {
  const timeline = loadContainerTimeline(db, container, window, {
    latencies: false,
  });
  const draw = (values: number[], range: SparklineRange = {}): string =>
    sparkline(
      timeColumns(timeline.timestampsMs, values, width),
      width,
      range,
    );
  return timeline.models.map((model) => ({
    model: model.model,
    kvCacheUsagePercent: draw(model.kvCacheUsagePercent, { min: 0, max: 100 }),
    runningRequests: draw(model.runningRequests),
    waitingRequests: draw(model.waitingRequests),
    generationTokensPerSecond: draw(model.generationTokensPerSecond),
    promptTokensPerSecond: draw(model.promptTokensPerSecond),
  }));
}

/** Sparklines of every container of `stats`, keyed by container name. */
export function loadStatsSparklines(
  db: DatabaseSync,
  stats: readonly ContainerStats[],
  width = 32,
): Map<string, ModelSparklines[]> {
  return new Map(
    stats.map((entry) => [
      entry.container,
      loadModelSparklines(db, entry.container, entry.window, width),
    ]),
  );
}

/** A stream that may be a terminal, such as `Deno.stdout`. */
export interface TerminalStream {
  isTerminal(): boolean;
}

/**
 * Decides whether to write ANSI colours: never with `--no-color` (commander
 * sets `color: false`) or when the `NO_COLOR` environment variable is set to
 * a non-empty value (the convention of no-color.org), otherwise only when the
 * stream is a terminal.
 */
export function colorEnabled(
  stream: TerminalStream,
  flags: { color?: boolean } = {},
  env: { get(name: string): string | undefined } = Deno.env,
): boolean {
  if (flags.color === false) return false;
  const noColor = env.get("NO_COLOR");
  if (noColor !== undefined && noColor !== "") return false;
  return stream.isTerminal();
}

/** Row labels of `statsToTable` that get a sparkline, and the sparkline each gets. */
const SPARKLINE_ROWS: readonly [
  string,
  keyof Omit<ModelSparklines, "model">,
][] = [
  ["KV-cache usage", "kvCacheUsagePercent"],
  ["Running requests", "runningRequests"],
  ["Waiting requests", "waitingRequests"],
  ["Generation tokens/s", "generationTokensPerSecond"],
  ["Prompt tokens/s", "promptTokensPerSecond"],
];

/**
 * Column where sparklines start: after the widest row of `statsToTable`
 * that gets one (2 + 22 label columns + 4 cells of 18) and two spaces. A
 * longer row moves its sparkline further right.
 */
const SPARKLINE_COLUMN = 98;

const CYAN = "\x1b[36m";
const RESET = "\x1b[0m";

/**
 * Renders `statsToTable` with a sparkline at the end of the KV-cache,
 * request and token-rate rows of each model, for a terminal. Rows are found
 * by their label under each `model ...` line, in the order of
 * `entry.models`, so the table itself is unchanged.
 */
export function statsToTerminalTable(
  stats: readonly ContainerStats[],
  sparklines: ReadonlyMap<string, readonly ModelSparklines[]>,
  options: { color: boolean },
): string {
  const output: string[] = [];
  for (const entry of stats) {
    const lines = statsToTable([entry]).split("\n");
    const models = sparklines.get(entry.container) ?? [];
    let modelIndex = -1;
    for (const line of lines) {
      if (line.startsWith("model ")) modelIndex++;
      const model = entry.models[modelIndex];
      const drawings = model === undefined
        ? undefined
        : models.find((candidate) => candidate.model === model.model);
      const row = SPARKLINE_ROWS.find(([label]) =>
        line.startsWith(`  ${label} `)
      );
      const drawing = row === undefined ? undefined : drawings?.[row[1]];
      if (drawing === undefined || drawing === "") {
        output.push(line);
        continue;
      }
      const colored = options.color ? `${CYAN}${drawing}${RESET}` : drawing;
      output.push(`${line.padEnd(SPARKLINE_COLUMN - 2)}  ${colored}`);
    }
  }
  return output.join("\n");
}
