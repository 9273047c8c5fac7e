/**
 * The `logs` subcommand: search the day files by container, time, level and
 * text, printing JSON lines for `jq` or a readable form.
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { loadConfigFile } from "../config/config.ts";
import {
  findDayFiles,
  formatRecord,
  LEVELS,
  searchLogs,
} from "../logs/search.ts";
import { parsePositiveInteger, UsageError } from "./options.ts";
import { writeStdout } from "./output.ts";
import { resolveWindow, type WindowFlags } from "./time_window.ts";

interface LogsFlags extends WindowFlags {
  dir?: string;
  config?: string;
  container?: string[];
  level?: (typeof LEVELS)[number];
  grep?: string;
  format: "jsonl" | "text";
  limit?: number;
}

/** Other spellings of levels, as Python's logging module also accepts them. */
const LEVEL_ALIASES: Record<string, string> = {
  WARN: "WARNING",
  FATAL: "CRITICAL",
};

/** Parses `--level` in any case, with WARN and FATAL as aliases. */
function parseLevel(value: string): (typeof LEVELS)[number] {
  const upper = value.toUpperCase();
  const level = LEVEL_ALIASES[upper] ?? upper;
  const known = LEVELS.find((name) => name === level);
  if (known === undefined) {
    throw new InvalidArgumentError(
      `"${value}" is not a level; use one of ${LEVELS.join(", ")}`,
    );
  }
  return known;
}

async function logRoot(flags: LogsFlags): Promise<string> {
  if (flags.dir !== undefined && flags.config !== undefined) {
    throw new UsageError("--dir conflicts with --config; pass one of them");
  }
  if (flags.dir !== undefined) return flags.dir;
  if (flags.config !== undefined) {
    const config = await loadConfigFile(flags.config);
    if (config.outputDir !== null) return config.outputDir;
  }
  throw new UsageError(
    "no log directory given: pass --dir DIR or --config FILE",
    "horos_vllm_logger logs --dir /data/vllm_logs --container vllm-vision --level WARNING --last 1h",
  );
}

/** Adds `logs` to the program. */
export function addLogsCommand(program: Command): void {
  program
    .command("logs")
    .description(
      "search captured logs (.jsonl and .jsonl.gz) by container, time, level and text",
    )
    .option(
      "--dir <dir>",
      "output directory with one folder per container, or one container's folder",
    )
    .option(
      "--config <file>",
      "read log_capture.output_dir from this configuration instead of --dir",
    )
    .option("--container <name...>", "only these containers (default: all)")
    .option(
      "--last <duration>",
      "window ending now (or at --until), e.g. 15m, 1h, 7d (default: all time)",
    )
    .option(
      "--since <time>",
      "window start: RFC 3339, a date, Unix seconds, or a duration ago",
    )
    .option(
      "--until <time>",
      "window end, same forms as --since (default: now)",
    )
    .addOption(
      new Option(
        "--level <level>",
        `lowest level shown: ${LEVELS.join(", ")} (any case)`,
      ).argParser(parseLevel),
    )
    .option(
      "--grep <text>",
      "only events whose message contains this text (case-insensitive)",
    )
    .addOption(
      new Option("--format <format>", "output format").choices([
        "jsonl",
        "text",
      ]).default("jsonl"),
    )
    .option("--limit <n>", "stop after this many events", parsePositiveInteger)
    .addHelpText(
      "after",
      `
Examples:
  horos_vllm_logger logs --dir /data/vllm_logs --container vllm-vision --level WARNING --last 1h
  horos_vllm_logger logs --config configs/vllm_logger.yaml --grep "Traceback" --format text
  horos_vllm_logger logs --dir /data/vllm_logs/vllm-vision --since 2026-11-17 | jq .gpu_kv_cache_usage_pct`,
    )
    .action(async (flags: LogsFlags) => {
      const window = resolveWindow(flags, Date.now(), null);
      const root = await logRoot(flags);
      let files;
      try {
        files = await findDayFiles(root);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new UsageError(`log directory "${root}" not found`);
        }
        throw error;
      }
      const found = new Set(files.map((file) => file.container));
      const unknown = (flags.container ?? []).filter((name) =>
        !found.has(name)
      );
      if (unknown.length > 0) {
        const list = found.size === 0 ? "none" : [...found].join(", ");
        throw new UsageError(
          `container ${
            unknown.map((name) => `"${name}"`).join(", ")
          } has no log files under "${root}" (containers found: ${list})`,
        );
      }
      let count = 0;
      let buffer = "";
      for await (
        const match of searchLogs(files, {
          containers: flags.container ?? [],
          startMs: window.startMs,
          endMs: window.endMs,
          minLevel: flags.level ?? null,
          text: flags.grep ?? null,
        })
      ) {
        buffer +=
          (flags.format === "text" ? formatRecord(match.record) : match.line) +
          "\n";
        count++;
        if (buffer.length > 64 * 1024) {
          if (!await writeStdout(buffer)) return;
          buffer = "";
        }
        if (flags.limit !== undefined && count >= flags.limit) break;
      }
      await writeStdout(buffer);
    });
}
