/**
 * The `simulate` subcommand: a vLLM-shaped server for demos and tests.
 *
 * @module
 */
import type { Command } from "commander";
import { runSimulateCommand } from "../simulate/simulator_command.ts";
import { parsePositiveInteger, parsePositiveNumber } from "./options.ts";

interface SimulateFlags {
  port: number;
  dockerRoot?: string;
  container?: string;
  durationSeconds?: number;
  seed?: number;
}

/** Adds `simulate` to the program. */
export function addSimulateCommand(
  program: Command,
  _exitCode: { value: number },
): void {
  program
    .command("simulate")
    .description(
      "serve a simulated vLLM /metrics on 127.0.0.1 and print vLLM-format log lines",
    )
    .option(
      "--port <port>",
      "port of http://127.0.0.1:<port>/metrics",
      parsePositiveInteger,
      8001,
    )
    .option(
      "--docker-root <dir>",
      "also store the log lines for the fake docker (scripts/fake-docker) under <dir>",
    )
    .option(
      "--container <name>",
      "container name for --docker-root",
      "vllm-sim",
    )
    .option(
      "--duration-seconds <seconds>",
      "stop after this long (default: until SIGTERM or SIGINT)",
      parsePositiveNumber,
    )
    .option(
      "--seed <n>",
      "seed of the simulated workload",
      parsePositiveInteger,
    )
    .addHelpText(
      "after",
      `
Examples:
  horos_vllm_logger simulate --port 8001
  horos_vllm_logger simulate --port 8001 --docker-root /tmp/fake-docker --container vllm-sim --duration-seconds 60`,
    )
    .action(async (flags: SimulateFlags) => {
      const controller = new AbortController();
      const stop = () => controller.abort();
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      try {
        await runSimulateCommand(
          {
            port: flags.port,
            ...(flags.dockerRoot === undefined
              ? {}
              : { dockerRoot: flags.dockerRoot }),
            ...(flags.container === undefined
              ? {}
              : { container: flags.container }),
            ...(flags.durationSeconds === undefined
              ? {}
              : { durationSeconds: flags.durationSeconds }),
            ...(flags.seed === undefined ? {} : { seed: flags.seed }),
          },
          controller.signal,
        );
      } finally {
        Deno.removeSignalListener("SIGTERM", stop);
        Deno.removeSignalListener("SIGINT", stop);
      }
    });
}
