/**
 * The work of the `simulate` subcommand: run the vLLM simulator, print its
 * log lines as the container would (stdout lines to stdout, stderr lines to
 * stderr) and, with a docker root, store them for the fake `docker logs`.
 *
 * @module
 */

import type { StreamName } from "../logs/types.ts";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
  setContainerRunning,
} from "./docker_store.ts";
import {
  type Simulator,
  type SimulatorOptions,
  startSimulator,
  waveLoad,
} from "./simulator.ts";

/** Options of {@linkcode runSimulateCommand}. */
export interface SimulateCommandOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Root of the fake docker store; when set, log lines are also stored there. */
  dockerRoot?: string;
  /**
   * Container name in the fake docker store.
   * @default "vllm-sim"
   */
  container?: string;
  /** Seconds to run; without it the command runs until `signal` aborts. */
  durationSeconds?: number;
  /** Seed of the simulated workload. */
  seed?: number;
  /** Value of the `model_name` label. */
  modelName?: string;
  /**
   * Load level: 0 idle, 1 nominal (about 10 requests/s).
   * @default 1
   */
  load?: number;
  /**
   * When set, the load follows a wave with this period in seconds: idle,
   * rising to `load`, idle again.
   */
  loadPeriodSeconds?: number;
  /** Interval of the engine stats log line in seconds; vLLM's default is 10. */
  statsIntervalSeconds?: number;
  /** Seconds between runtime WARNING lines; off when absent. */
  warningIntervalSeconds?: number;
  /** Seconds between ERROR tracebacks; off when absent. */
  errorIntervalSeconds?: number;
  /**
   * Whether process prefixes carry ANSI colour codes.
   * @default true
   */
  color?: boolean;
  /**
   * Whether to print the log lines to stdout and stderr, and the address
   * of the server to stderr.
   * @default true
   */
  print?: boolean;
}

const encoder = new TextEncoder();

/**
 * Runs the simulator until `durationSeconds` pass or `signal` aborts, then
 * prints the shutdown lines and marks the fake container as stopped.
 *
 * @throws {Error} when the log lines cannot be stored; the run stops at the
 *   first failure.
 */
export async function runSimulateCommand(
  options: SimulateCommandOptions,
  signal?: AbortSignal,
): Promise<void> {
  const store = options.dockerRoot === undefined
    ? undefined
    : new LogStore(options.dockerRoot, options.container ?? "vllm-sim");
  await store?.start();

  const stop = new AbortController();
  const printer = new LinePrinter(options.print ?? true);
  store?.onFailure(() => stop.abort());
  const settings: SimulatorOptions = {
    port: options.port,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.modelName === undefined
      ? {}
      : { modelName: options.modelName }),
    load: options.loadPeriodSeconds === undefined
      ? options.load ?? 1
      : waveLoad(options.load ?? 1, options.loadPeriodSeconds * 1000),
    ...(options.statsIntervalSeconds === undefined
      ? {}
      : { statsIntervalMs: options.statsIntervalSeconds * 1000 }),
    ...(options.warningIntervalSeconds === undefined
      ? {}
      : { warningIntervalMs: options.warningIntervalSeconds * 1000 }),
    ...(options.errorIntervalSeconds === undefined
      ? {}
      : { errorIntervalMs: options.errorIntervalSeconds * 1000 }),
    ...(options.color === undefined ? {} : { color: options.color }),
    onLogLine: (stream, text) => {
      printer.print(stream, text);
      store?.add(stream, text);
    },
  };
  let simulator: Simulator;
  try {
    simulator = startSimulator(settings);
  } catch (error) {
    // The container was marked as running above; a port already in use
    // must not leave it so.
    await store?.finish();
    throw error;
  }
  printer.notice(
    `simulate: serving ${simulator.url} for model ${
      options.modelName ?? "org/model-7b"
    }${
      store === undefined
        ? ""
        : `, logs stored for container ${store.container}`
    }`,
  );

  try {
    await waitUntilStopped(options.durationSeconds, signal, stop.signal);
  } finally {
    await simulator.close();
    await store?.finish();
  }
}

/** Resolves when the duration passes or one of the signals aborts. */
function waitUntilStopped(
  durationSeconds: number | undefined,
  ...signals: (AbortSignal | undefined)[]
): Promise<void> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const active = signals.filter((s): s is AbortSignal => s !== undefined);
    const done = (): void => {
      clearTimeout(timer);
      for (const s of active) {
        s.removeEventListener("abort", done);
      }
      resolve();
    };
    if (active.some((s) => s.aborted)) {
      done();
      return;
    }
    for (const s of active) {
      s.addEventListener("abort", done, { once: true });
    }
    if (durationSeconds !== undefined) {
      timer = setTimeout(done, durationSeconds * 1000);
    }
  });
}

/** Writes lines to stdout or stderr; stops quietly once the reader has gone. */
class LinePrinter {
  #enabled: boolean;

  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  print(stream: StreamName, text: string): void {
    if (this.#enabled) {
      this.#write(stream === "stdout" ? Deno.stdout : Deno.stderr, text);
    }
  }

  /** Prints a message of the command itself on stderr. */
  notice(text: string): void {
    if (this.#enabled) {
      this.#write(Deno.stderr, text);
    }
  }

  #write(
    target: { writeSync(bytes: Uint8Array): number },
    text: string,
  ): void {
    const bytes = encoder.encode(`${text}\n`);
    try {
      let written = 0;
      while (written < bytes.length) {
        written += target.writeSync(bytes.subarray(written));
      }
    } catch (error) {
      if (error instanceof Deno.errors.BrokenPipe) {
        this.#enabled = false;
        return;
      }
      throw error;
    }
  }
}

/**
 * Collects log lines and appends them to the fake docker store in order, in
 * batches, so each line gets a store time close to when it was printed.
 */
class LogStore {
  readonly root: string;
  readonly container: string;
  #batch: DockerLogLine[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #failure: Error | undefined;
  #onFailure: () => void = () => {};

  constructor(root: string, container: string) {
    this.root = root;
    this.container = container;
  }

  /** Creates the container, or restarts it keeping its log. */
  async start(): Promise<void> {
    await createContainer(this.root, this.container);
  }

  onFailure(listener: () => void): void {
    this.#onFailure = listener;
  }

  add(stream: StreamName, text: string): void {
    if (this.#failure !== undefined) {
      return;
    }
    this.#batch.push({ stream, text });
    this.#flushTimer ??= setTimeout(() => this.#flush(), 0);
  }

  /** Stores what is left and marks the container as stopped. */
  async finish(): Promise<void> {
    this.#flush();
    await this.#flushing;
    await setContainerRunning(this.root, this.container, false);
    if (this.#failure !== undefined) {
      throw this.#failure;
    }
  }

  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const lines = this.#batch;
    this.#batch = [];
    if (lines.length === 0) {
      return;
    }
    this.#flushing = this.#flushing.then(async () => {
      if (this.#failure !== undefined) {
        return;
      }
      try {
        await appendDockerLogLines(this.root, this.container, lines);
      } catch (error) {
        this.#failure = new Error(
          `Failed to store log lines of container ${this.container} under ${this.root}: ${
            error instanceof Error ? error.message : String(error)
          }`,
          { cause: error },
        );
        this.#onFailure();
      }
    });
  }
}
