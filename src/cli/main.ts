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
import { writeStderr, writeStdout } from "./output.ts";
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
      writeOut: (text) => void writeStdout(text),
      writeErr: (text) => writeStderr(text),
    });
  program.addHelpText(
    "after",
    `
A bare invocation with ${RUN_FLAGS.join(", ")} means "run".

Examples:
  horos_vllm_logger run --config configs/vllm_logger.yaml
  horos_vllm_logger --container vllm-vision --metrics-port 8001 --log-dir /data/vllm_logs/vllm-vision --db /data/vllm_metrics.db
  horos_vllm_logger metrics stats --container vllm-vision --last 1h --db /data/vllm_metrics.db`,
  );
  addRunCommand(program, exitCode);
  addMetricsCommands(program, exitCode);
  addLogsCommand(program);
  addAlertsCommands(program);
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

/** Inserts `run` when the arguments start with one of the daemon's flags. */
export function withImpliedRun(args: readonly string[]): string[] {
  const first = args[0];
  if (
    first !== undefined &&
    RUN_FLAGS.some((flag) => first === flag || first.startsWith(`${flag}=`))
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
