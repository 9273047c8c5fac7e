/**
 * The `run` subcommand and its two forms: `--config FILE`, or the
 * supervisor's flags for one container.
 *
 * @module
 */
import { type Command, Option } from "commander";
import {
  configFromFlags,
  type FlagOptions,
  loadConfigFile,
  type LoggerConfig,
} from "../config/config.ts";
import { Logger, type LogLevel } from "../log.ts";
import {
  parsePositiveInteger,
  parsePositiveNumber,
  UsageError,
} from "./options.ts";
import { runDaemon } from "./run.ts";

/** Flags that make a bare invocation mean `run`. */
export const RUN_FLAGS = [
  "--alerts-file",
  "--container",
  "--metrics-port",
  "--metrics-url",
  "--log-dir",
  "--db",
  "--config",
];

interface RunFlags extends FlagOptions {
  config?: string;
  logLevel: LogLevel;
}

/** Options of the flag form, with the configuration key that sets each in a file. */
const FLAG_FORM_OPTIONS: [keyof FlagOptions, string, string][] = [
  ["container", "--container", "containers[].name"],
  ["metricsPort", "--metrics-port", "containers[].metrics_endpoint"],
  ["metricsUrl", "--metrics-url", "containers[].metrics_endpoint"],
  ["logDir", "--log-dir", "log_capture.output_dir"],
  ["db", "--db", "metrics_scraper.db_path"],
  ["intervalSeconds", "--interval-seconds", "metrics_scraper.interval_seconds"],
  ["logsStream", "--logs-stream", "containers[].logs_stream"],
  ["alertsFile", "--alerts-file", "alerts_file"],
];

/** Resolves the configuration from `--config` or from the flag form, not both. */
export async function configForRun(flags: RunFlags): Promise<LoggerConfig> {
  const flagFormGiven = FLAG_FORM_OPTIONS.filter(([key]) =>
    flags[key] !== undefined
  );
  if (flags.config !== undefined) {
    if (flagFormGiven.length > 0) {
      const names = flagFormGiven.map(([, flag]) => flag).join(", ");
      const keys = flagFormGiven.map(([, , key]) => key).join(", ");
      throw new UsageError(
        `--config conflicts with ${names}: pass either --config FILE or the flag form, and set ${keys} in the file`,
        "horos_vllm_logger run --config configs/vllm_logger.yaml",
      );
    }
    return await loadConfigFile(flags.config);
  }
  const flagForm = flags.container ?? flags.metricsPort ?? flags.metricsUrl ??
    flags.alertsFile ?? flags.logDir ?? flags.db;
  if (flagForm === undefined) {
    throw new UsageError(
      "run needs --config FILE, or --container with --log-dir and/or --metrics-port and --db",
      "horos_vllm_logger --container vllm-vision --metrics-port 8001 --log-dir /data/vllm_logs/vllm-vision --db /data/vllm_metrics.db",
    );
  }
  return configFromFlags(flags);
}

/** Waits for SIGTERM or SIGINT and aborts the returned signal. */
function shutdownSignal(
  logger: Logger,
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const handlers: [Deno.Signal, () => void][] = [];
  for (const name of ["SIGTERM", "SIGINT"] as const) {
    const handler = () => {
      logger.info("Signal received", { signal: name });
      controller.abort();
    };
    Deno.addSignalListener(name, handler);
    handlers.push([name, handler]);
  }
  return {
    signal: controller.signal,
    dispose: () => {
      for (const [name, handler] of handlers) {
        Deno.removeSignalListener(name, handler);
      }
    },
  };
}

/** Adds `run` to the program. */
export function addRunCommand(
  program: Command,
  _exitCode: { value: number },
): void {
  program
    .command("run")
    .description(
      "follow container logs into daily JSONL files and scrape /metrics into SQLite until SIGTERM or SIGINT",
    )
    .option(
      "--config <file>",
      "YAML configuration with several containers (see configs/vllm_logger.yaml)",
    )
    .option(
      "--container <name>",
      "flag form: the container to follow and label samples with",
    )
    .option(
      "--log-dir <dir>",
      "flag form: directory of the daily files <dir>/YYYY-MM-DD.jsonl",
    )
    .option(
      "--metrics-port <port>",
      "flag form: scrape http://localhost:<port>/metrics (needs --db)",
      parsePositiveInteger,
    )
    .option(
      "--metrics-url <url>",
      "flag form: scrape this URL instead of --metrics-port (needs --db)",
    )
    .option(
      "--db <file>",
      "flag form: SQLite file to write; several loggers may share it",
    )
    .option(
      "--interval-seconds <seconds>",
      "flag form: time between scrapes (default: 5)",
      parsePositiveNumber,
    )
    .option(
      "--alerts-file <file>",
      "flag form: alert rules (see configs/vllm_alerts.yaml); alerts.log goes to --log-dir",
    )
    .option(
      "--logs-stream <command>",
      'flag form: command that streams the logs (default: "docker logs -f <name>")',
    )
    .addOption(
      new Option(
        "--log-level <level>",
        "lowest level of the program's own log on stderr",
      )
        .choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .addHelpText(
      "after",
      `
Exactly one form: --config FILE, or the flag form. In the flag form --container is
required, --log-dir enables log capture, and --metrics-port (or --metrics-url) with --db
enables scraping. SIGTERM or SIGINT writes everything held and exits 0.

Examples:
  horos_vllm_logger run --config configs/vllm_logger.yaml
  horos_vllm_logger --container vllm-vision --metrics-port 8001 --log-dir /data/vllm_logs/vllm-vision --db /data/vllm_metrics.db
  horos_vllm_logger --container vllm-think --log-dir /data/vllm_logs/vllm-think`,
    )
    .action(async (flags: RunFlags) => {
      const config = await configForRun(flags);
      const logger = new Logger({ level: flags.logLevel });
      const { signal, dispose } = shutdownSignal(logger);
      try {
        await runDaemon(config, { logger, signal });
      } finally {
        dispose();
      }
    });
}
