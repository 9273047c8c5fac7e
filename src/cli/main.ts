/**
 * The command line: subcommands, their options and help, and the mapping of
 * failures to exit codes (0 success, 1 runtime failure, 2 usage or
 * configuration error).
 *
 * @module
 */
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/config.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "../exit_codes.ts";
import { errorMessage } from "../log.ts";
import { addAlertsCommands } from "./alerts_command.ts";
import { addLogsCommand } from "./logs_command.ts";
import { addMetricsCommands } from "./metrics_commands.ts";
import { UsageError } from "./options.ts";
import { writeStderr, writeStdout, writeStdoutSync } from "./output.ts";
import { addRunCommand, RUN_FLAGS } from "./run_command.ts";
import { addSimulateCommand } from "./simulate_command.ts";
import { VERSION } from "../version.ts";

function buildProgram(exitCode: { value: number }): Command {
  const program = new Command("horos_vllm_logger")
    .description(
      "Capture vLLM container logs into daily JSONL files, scrape vLLM's /metrics into SQLite,\n" +
        "and report KV-cache usage, latency percentiles and tokens/s from them.",
    )
    .version(
      `horos_vllm_logger ${VERSION} (Deno ${Deno.version.deno})`,
      "-V, --version",
      "print the version",
    )
    .helpCommand(true)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({
      // Help is written synchronously: main() exits right after parsing.
      writeOut: (text) => writeStdoutSync(text),
      writeErr: (text) => writeStderr(text),
    });
  program.addHelpText(
    "after",
    `
Arguments that start with an option rather than a command mean "run",
as in the supervisor's form (${RUN_FLAGS.join(", ")}).

Examples:
  horos_vllm_logger run --config configs/vllm_logger.yaml
  horos_vllm_logger --container vllm-vision --metrics-port 8001 --log-dir /data/vllm_logs/vllm-vision --db /data/vllm_metrics.db
  horos_vllm_logger metrics stats --container vllm-vision --last 1h --db /data/vllm_metrics.db`,
  );
  addRunCommand(program, exitCode);
  addMetricsCommands(program, exitCode);
  addLogsCommand(program);
  addAlertsCommands(program, exitCode);
  addSimulateCommand(program, exitCode);
  program.command("version").description(
    "print the version and the Deno version it was built with",
  ).action(
    async () => {
      await writeStdout(
        `horos_vllm_logger ${VERSION} (Deno ${Deno.version.deno})\n`,
      );
    },
  );
  return program;
}

/** Subcommands and global options that the first argument may name. */
const TOP_LEVEL_WORDS = new Set([
  "run",
  "metrics",
  "logs",
  "alerts",
  "simulate",
  "version",
  "help",
  "-h",
  "--help",
  "-V",
  "--version",
]);

/**
 * Inserts `run` when the arguments start with an option rather than a
 * subcommand, so the supervisor's flags work in any order
 * (`--interval-seconds 2 --container x ...`).
 */
export function withImpliedRun(args: readonly string[]): string[] {
  const first = args[0];
  if (
    first !== undefined && first.startsWith("-") && !TOP_LEVEL_WORDS.has(first)
  ) {
    return ["run", ...args];
  }
  return [...args];
}

/** Runs the command line and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const exitCode = { value: EXIT_OK };
  const program = buildProgram(exitCode);
  try {
    await program.parseAsync(withImpliedRun(args), { from: "user" });
    return exitCode.value;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; every other parse error is a usage error.
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version"
      ) return EXIT_OK;
      if (error.code === "commander.help") return EXIT_OK;
      return EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      writeStderr(`error: invalid configuration: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof UsageError || error instanceof SyntaxError) {
      writeStderr(`error: ${error.message}`);
      if (error instanceof UsageError && error.hint !== undefined) {
        writeStderr(`example: ${error.hint}`);
      }
      return EXIT_USAGE;
    }
    writeStderr(`error: ${errorMessage(error)}`);
    return EXIT_FAILURE;
  }
}
