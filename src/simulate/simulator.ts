/**
 * A stand-in for a vLLM V1 OpenAI server, for demos and tests on machines
 * without a GPU. It serves `/metrics` in the layout of a real server
 * (prometheus_client text format 0.0.4, the 2026 family set, gzip when the
 * client accepts it), `/health`, and produces the log lines such a server
 * prints. The figures come from a
 * request-level engine model, so counters, histograms and gauges agree with
 * each other and with the log lines.
 *
 * @module
 */

import type { StreamName } from "../logs/types.ts";
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  EngineModel,
  type EngineObserver,
  type SimulatedRequest,
} from "./engine_model.ts";
import { SeededRandom } from "./random.ts";
import {
  accessLine,
  asgiErrorLines,
  type LogLine,
  type ProcessNames,
  processPrefix,
  requestWarningLines,
  shutdownLines,
  startupLines,
  statsMessage,
  streamErrorLines,
  vllmRecord,
} from "./vllm_log_lines.ts";
import { VllmMetrics, type VllmTotals } from "./vllm_metrics.ts";

/** Load level as a function of the time since start in ms; 0 is idle, 1 the nominal busy level. */
export type LoadProfile = (elapsedMs: number) => number;

/** Options of {@linkcode startSimulator}. */
export interface SimulatorOptions {
  /**
   * TCP port on 127.0.0.1; 0 picks a free port.
   * @default 0
   */
  port?: number;
  /**
   * Value of the `model_name` label and the model named in the log.
   * @default "org/model-7b"
   */
  modelName?: string;
  /**
   * Seed of the workload; equal seeds and equal `advance` calls give equal figures.
   * @default 1
   */
  seed?: number;
  /**
   * Wall-clock interval in ms at which the model advances by the time that
   * really passed. 0 turns the timer off: the model then moves only through
   * {@linkcode Simulator.advance}, which makes tests deterministic.
   * @default 1000
   */
  tickMs?: number;
  /**
   * Load level (0 idle, 1 nominal, more is heavier) or a profile over time.
   * @default 1
   */
  load?: number | LoadProfile;
  /**
   * Mean request arrivals per second at load 1.
   * @default 10
   */
  requestsPerSecondAtLoad1?: number;
  /**
   * Model-time interval in ms of the periodic engine stats log line; 0 turns it off.
   * @default 10000
   */
  statsIntervalMs?: number;
  /**
   * Whether process prefixes carry ANSI colour codes, as 2025 to early-2026
   * builds print them even without a TTY.
   * @default true
   */
  color?: boolean;
  /**
   * Model-time interval in ms between runtime WARNING records; 0 turns them off.
   * @default 0
   */
  warningIntervalMs?: number;
  /**
   * Model-time interval in ms between ERROR tracebacks, alternately a vLLM
   * ERROR record and a raw uvicorn traceback; 0 turns them off.
   * @default 0
   */
  errorIntervalMs?: number;
  /**
   * KV-cache blocks of 16 tokens (`num_gpu_blocks`); fewer blocks fill
   * sooner and cause preemptions.
   * @default 29184
   */
  kvCacheBlocks?: number;
  /**
   * Model clock at start, in Unix milliseconds.
   * @default Date.now()
   */
  startTimeMs?: number;
  /**
   * Receives every physical log line, without its final `\n`, in the order
   * vLLM would print it. It must not throw: with the timer on it runs
   * inside a timer callback.
   */
  onLogLine?: (stream: StreamName, text: string) => void;
}

/** Current figures of a simulator, for tests. */
export interface SimulatorSnapshot extends VllmTotals {
  /** Model time in Unix milliseconds. */
  timeMs: number;
  running: number;
  waiting: number;
  /** KV-cache usage as a fraction (0-1). */
  kvCacheUsage: number;
  /** Load level in effect. */
  load: number;
  /** `/metrics` requests served. */
  metricsRequests: number;
}

/** A running simulator. */
export interface Simulator {
  /** Metrics endpoint, `http://127.0.0.1:<port>/metrics`. */
  readonly url: string;
  /** TCP port the server listens on. */
  readonly port: number;
  /** Sets the load level (0 idle, 1 nominal) or a load profile from now on. */
  setLoad(load: number | LoadProfile): void;
  /** Advances the model by `ms` of model time, emitting the log lines that fall in it. */
  advance(ms: number): void;
  /** Returns the current figures. */
  snapshot(): SimulatorSnapshot;
  /** Returns the body `/metrics` would serve now. */
  renderMetrics(): string;
  /** Prints the shutdown lines, stops the timer and the server. Calling it again does nothing. */
  close(): Promise<void>;
}

/** Content type prometheus_client sends for the text format 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const DEFAULT_MODEL_NAME = "org/model-7b";
const VLLM_VERSION = "0.15.1";
const CONTAINER_PORT = 8000;
/** Maximum model time in ms run with one load level and one arrival rate. */
const LOAD_STEP_MS = 1000;
/** Share of client requests rejected with 400 before reaching the engine. */
const BAD_REQUEST_SHARE = 0.004;
const IGNORED_REQUEST_FIELDS = ["top_k_extra", "user_id", "logprobs_mode"];

/**
 * Returns a load profile that rises from idle to `peak` and back once per
 * period: idle for the first quarter, busy around the middle, idle again
 * for the last quarter.
 */
export function waveLoad(peak: number, periodMs: number): LoadProfile {
  return (elapsedMs) =>
    peak * Math.max(0, -Math.cos((2 * Math.PI * elapsedMs) / periodMs));
}

/**
 * Starts a simulator: prints the startup lines, starts the HTTP server on
 * 127.0.0.1 and, unless `tickMs` is 0, the timer that advances the model.
 *
 * @throws {RangeError} when an option is out of range.
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function startSimulator(options: SimulatorOptions = {}): Simulator {
  return new VllmSimulator(options);
}

/** Model time at which a scheduled log event happens next, and its period. */
interface PeriodicEvent {
  nextMs: number;
  periodMs: number;
  run: (timeMs: number) => void;
}

class VllmSimulator implements Simulator {
  readonly url: string;
  readonly port: number;
  readonly #names: ProcessNames;
  readonly #random: SeededRandom;
  readonly #engine: EngineModel;
  readonly #metrics: VllmMetrics;
  readonly #startMs: number;
  readonly #requestsPerSecondAtLoad1: number;
  readonly #onLogLine: (stream: StreamName, text: string) => void;
  readonly #events: PeriodicEvent[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #load: number | LoadProfile;
  #modelTimeMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastWallMs = Date.now();
  #metricsRequests = 0;
  #closed: Promise<void> | undefined;
  #lastStats = { computed: 0, generation: 0, preemptions: 0 };
  #lastIntervalHadThroughput = false;
  #statsIntervalSeconds: number;
  #errorCount = 0;

  constructor(options: SimulatorOptions) {
    const tickMs = nonNegative("tickMs", options.tickMs ?? 1000);
    const statsIntervalMs = nonNegative(
      "statsIntervalMs",
      options.statsIntervalMs ?? 10_000,
    );
    const warningIntervalMs = nonNegative(
      "warningIntervalMs",
      options.warningIntervalMs ?? 0,
    );
    const errorIntervalMs = nonNegative(
      "errorIntervalMs",
      options.errorIntervalMs ?? 0,
    );
    const kvCacheBlocks = options.kvCacheBlocks ??
      DEFAULT_ENGINE_CONFIG.kvCacheBlocks;
    if (!Number.isInteger(kvCacheBlocks) || kvCacheBlocks < 16) {
      throw new RangeError(
        `Invalid kvCacheBlocks ${kvCacheBlocks}: expected an integer of at least 16`,
      );
    }
    this.#statsIntervalSeconds = statsIntervalMs / 1000;
    this.#requestsPerSecondAtLoad1 = nonNegative(
      "requestsPerSecondAtLoad1",
      options.requestsPerSecondAtLoad1 ?? 10,
    );
    this.#load = options.load ?? 1;
    this.#onLogLine = options.onLogLine ?? (() => {});
    this.#startMs = options.startTimeMs ?? Date.now();
    this.#modelTimeMs = this.#startMs;
    this.#names = {
      color: options.color ?? true,
      apiServerPid: 1,
      engineCorePid: 267,
    };
    this.#random = new SeededRandom(options.seed ?? 1);
    const engineConfig: EngineConfig = {
      ...DEFAULT_ENGINE_CONFIG,
      kvCacheBlocks,
    };
    const modelName = options.modelName ?? DEFAULT_MODEL_NAME;
    this.#metrics = new VllmMetrics({
      modelName,
      engine: "0",
      maxModelLen: engineConfig.maxModelLen,
      kvCacheBlocks,
      blockSize: engineConfig.blockSize,
      startMs: this.#startMs,
      clockMs: () => this.#modelTimeMs,
    });
    this.#engine = new EngineModel(
      engineConfig,
      this.#random,
      this.#createObserver(),
      this.#startMs,
    );

    // The server handles requests only after this constructor returns, so
    // the startup lines still come before any access line.
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: () => {},
    }, (request, info) => this.#handle(request, info));
    this.port = this.#server.addr.port;
    this.url = `http://127.0.0.1:${this.port}/metrics`;

    this.#emitAll(startupLines(this.#names, {
      modelName,
      vllmVersion: VLLM_VERSION,
      containerPort: CONTAINER_PORT,
      maxModelLen: engineConfig.maxModelLen,
      maxNumBatchedTokens: engineConfig.maxNumBatchedTokens,
      kvCacheBlocks,
      blockSize: engineConfig.blockSize,
    }, this.#startMs));
    this.#schedule(statsIntervalMs, (timeMs) => this.#emitStats(timeMs));
    this.#schedule(warningIntervalMs, (timeMs) => this.#emitWarning(timeMs));
    this.#schedule(errorIntervalMs, (timeMs) => this.#emitError(timeMs));
    // Clients usually list the models once before sending requests.
    this.#recordClientRequest("GET", "/v1/models", 200, 0, 512);
    if (tickMs > 0) {
      this.#timer = setInterval(() => this.#tick(), tickMs);
    }
  }

  setLoad(load: number | LoadProfile): void {
    if (typeof load === "number") {
      nonNegative("load", load);
    }
    this.#load = load;
    this.#applyLoad();
  }

  advance(ms: number): void {
    nonNegative("ms", ms);
    const targetMs = this.#modelTimeMs + ms;
    while (this.#modelTimeMs < targetMs) {
      this.#applyLoad();
      const stepEndMs = Math.min(targetMs, this.#modelTimeMs + LOAD_STEP_MS);
      const event = this.#nextEventBefore(stepEndMs);
      const segmentEndMs = event?.nextMs ?? stepEndMs;
      this.#engine.advanceTo(segmentEndMs);
      const elapsedSeconds = (segmentEndMs - this.#modelTimeMs) / 1000;
      this.#modelTimeMs = segmentEndMs;
      this.#updateGauges(elapsedSeconds);
      if (event !== undefined) {
        event.run(event.nextMs);
        event.nextMs += event.periodMs;
      }
    }
  }

  snapshot(): SimulatorSnapshot {
    return {
      ...this.#metrics.totals(),
      timeMs: this.#modelTimeMs,
      running: this.#engine.runningCount,
      waiting: this.#engine.waitingCount,
      kvCacheUsage: this.#engine.kvCacheUsage,
      load: this.#currentLoad(),
      metricsRequests: this.#metricsRequests,
    };
  }

  renderMetrics(): string {
    return this.#metrics.render();
  }

  close(): Promise<void> {
    if (this.#closed === undefined) {
      if (this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
      this.#emitAll(shutdownLines(this.#names, this.#modelTimeMs));
      this.#closed = this.#server.shutdown();
    }
    return this.#closed;
  }

  #tick(): void {
    const now = Date.now();
    const elapsed = now - this.#lastWallMs;
    this.#lastWallMs = now;
    if (elapsed > 0) {
      this.advance(elapsed);
    }
  }

  #handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    const url = new URL(request.url);
    const client = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    const target = `${url.pathname}${url.search}`;
    const prefix = processPrefix(this.#names, "APIServer");
    const respond = <T>(status: number, response: T): T => {
      this.#emit(
        "stdout",
        accessLine(prefix, client, request.method, target, status),
      );
      return response;
    };
    if (url.pathname === "/metrics" || url.pathname === "/health") {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return respond(
          405,
          Response.json({ detail: "Method Not Allowed" }, { status: 405 }),
        );
      }
      if (url.pathname === "/health") {
        return respond(200, new Response(null, { status: 200 }));
      }
      this.#metricsRequests += 1;
      return respond(200, metricsResponse(request, this.renderMetrics()));
    }
    // Unknown paths are counted under handler "none", as the
    // instrumentator does; /metrics and /health are not counted at all.
    this.#metrics.recordHttpRequest({
      handler: "none",
      method: request.method,
      status: "4xx",
      requestBytes: 0,
      responseBytes: 22,
      durationSeconds: 0.0008,
    });
    return respond(
      404,
      Response.json({ detail: "Not Found" }, { status: 404 }),
    );
  }

  #createObserver(): EngineObserver {
    const metrics = this.#metrics;
    return {
      requestScheduled: (request) => metrics.requestScheduled(request),
      requestPreempted: () => metrics.requestPreempted(),
      firstToken: (request) => metrics.firstToken(request),
      outputToken: (request, seconds) => metrics.outputToken(request, seconds),
      stepFinished: (prompt, generation) =>
        metrics.stepFinished(prompt, generation),
      requestFinished: (request) => {
        metrics.requestFinished(request);
        this.#completeClientRequest(request);
      },
    };
  }

  /** Counts a finished engine request as an HTTP request and prints its access line. */
  #completeClientRequest(request: SimulatedRequest): void {
    const finishedMs = request.finishedMs ?? this.#engine.clockMs;
    const durationSeconds = (finishedMs - request.arrivalMs) / 1000 + 0.002;
    const requestBytes = 180 + request.promptTokens * 4;
    const responseBytes = request.streamed ? 0 : 320 + request.outputTokens * 4;
    this.#metrics.recordHttpRequest({
      handler: request.route,
      method: "POST",
      status: "2xx",
      requestBytes,
      responseBytes,
      durationSeconds,
    });
    const prefix = processPrefix(this.#names, "APIServer");
    this.#emit(
      "stdout",
      accessLine(
        prefix,
        `127.0.0.1:${request.clientPort}`,
        "POST",
        request.route,
        200,
      ),
    );
    if (this.#random.chance(BAD_REQUEST_SHARE)) {
      this.#recordClientRequest("POST", request.route, 400, 420, 160);
    }
  }

  /** Counts a request that never reaches the engine and prints its access line. */
  #recordClientRequest(
    method: string,
    route: string,
    status: number,
    requestBytes: number,
    responseBytes: number,
  ): void {
    this.#metrics.recordHttpRequest({
      handler: route,
      method,
      status: `${Math.floor(status / 100)}xx`,
      requestBytes,
      responseBytes,
      durationSeconds: 0.001 + this.#random.next() * 0.004,
    });
    const client = `127.0.0.1:${this.#random.integer(32768, 60999)}`;
    const prefix = processPrefix(this.#names, "APIServer");
    this.#emit("stdout", accessLine(prefix, client, method, route, status));
  }

  #emitStats(timeMs: number): void {
    const totals = this.#metrics.totals();
    const intervalSeconds = this.#statsIntervalSeconds;
    const computed = totals.promptTokensComputed - this.#lastStats.computed;
    const generation = totals.generationTokens - this.#lastStats.generation;
    const preemptions = totals.preemptions - this.#lastStats.preemptions;
    this.#lastStats = {
      computed: totals.promptTokensComputed,
      generation: totals.generationTokens,
      preemptions: totals.preemptions,
    };
    const hasThroughput = computed > 0 || generation > 0;
    // vLLM logs the line at DEBUG (hidden by default) when this and the
    // previous interval both had zero throughput.
    const visible = hasThroughput || this.#lastIntervalHadThroughput;
    this.#lastIntervalHadThroughput = hasThroughput;
    if (!visible) {
      return;
    }
    const message = statsMessage({
      promptTokensPerSecond: computed / intervalSeconds,
      generationTokensPerSecond: generation / intervalSeconds,
      running: this.#engine.runningCount,
      waiting: this.#engine.waitingCount,
      preemptions,
      kvCacheUsage: this.#engine.kvCacheUsage,
      prefixCacheHitRate: totals.recentPrefixCacheHitRate,
    });
    const prefix = processPrefix(this.#names, "APIServer");
    for (
      const text of vllmRecord(
        prefix,
        "INFO",
        timeMs,
        "loggers.py:259",
        message,
      )
    ) {
      this.#emit("stdout", text);
    }
  }

  #emitWarning(timeMs: number): void {
    const field = IGNORED_REQUEST_FIELDS[
      this.#random.integer(0, IGNORED_REQUEST_FIELDS.length - 1)
    ] ?? "user_id";
    this.#emitAll(requestWarningLines(this.#names, timeMs, field));
  }

  #emitError(timeMs: number): void {
    this.#errorCount += 1;
    this.#emitAll(
      this.#errorCount % 2 === 1
        ? streamErrorLines(this.#names, timeMs)
        : asgiErrorLines(this.#names),
    );
  }

  #schedule(periodMs: number, run: (timeMs: number) => void): void {
    if (periodMs > 0) {
      this.#events.push({ nextMs: this.#startMs + periodMs, periodMs, run });
    }
  }

  #nextEventBefore(limitMs: number): PeriodicEvent | undefined {
    let next: PeriodicEvent | undefined;
    for (const event of this.#events) {
      if (
        event.nextMs <= limitMs &&
        (next === undefined || event.nextMs < next.nextMs)
      ) {
        next = event;
      }
    }
    return next;
  }

  #currentLoad(): number {
    const load = this.#load;
    const level = typeof load === "number"
      ? load
      : load(this.#modelTimeMs - this.#startMs);
    return Number.isFinite(level) ? Math.max(0, level) : 0;
  }

  #applyLoad(): void {
    this.#engine.setArrivalRate(
      this.#currentLoad() * this.#requestsPerSecondAtLoad1,
    );
  }

  #updateGauges(elapsedSeconds: number): void {
    const engine = this.#engine;
    this.#metrics.updateEngineGauges(
      engine.runningCount,
      engine.waitingCount,
      engine.kvCacheUsage,
    );
    this.#metrics.updateProcess(
      elapsedSeconds,
      Math.min(1, engine.runningCount / 64),
      engine.runningCount + engine.waitingCount,
    );
  }

  #emit(stream: StreamName, text: string): void {
    this.#onLogLine(stream, text);
  }

  #emitAll(lines: LogLine[]): void {
    for (const line of lines) {
      this.#emit(line.stream, line.text);
    }
  }
}

/**
 * Builds the `/metrics` response. Like prometheus_client's ASGI app, the
 * body is gzip-compressed when the request's Accept-Encoding names gzip.
 *
 * NOTE: the body is always the text format 0.0.4. A real server responds to an
 * Accept header naming `application/openmetrics-text` with OpenMetrics.
 */
async function metricsResponse(
  request: Request,
  body: string,
): Promise<Response> {
  const acceptEncoding = request.headers.get("accept-encoding") ?? "";
  const gzipAccepted = acceptEncoding.split(",").some((coding) =>
    coding.trim().split(";")[0]?.trim().toLowerCase() === "gzip"
  );
  if (!gzipAccepted) {
    return new Response(body, {
      headers: { "content-type": METRICS_CONTENT_TYPE },
    });
  }
  const compressed = await new Response(
    new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  return new Response(compressed, {
    headers: {
      "content-type": METRICS_CONTENT_TYPE,
      "content-encoding": "gzip",
    },
  });
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Invalid ${name} ${value}: expected a finite number of at least 0`,
    );
  }
  return value;
}
