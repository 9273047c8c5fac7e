/**
 * The metric families of a single-API-server vLLM V1 instance (2026 family
 * set, one model, `engine="0"`), registered in the order vLLM and
 * prometheus_client expose them, and kept up to date from the engine
 * model's events.
 *
 * @module
 */

import type {
  EngineObserver,
  FinishReason,
  SimulatedRequest,
} from "./engine_model.ts";
import {
  type CounterChild,
  type GaugeChild,
  type HistogramChild,
  type Labels,
  type MetricFamily,
  MetricRegistry,
} from "./prometheus_text.ts";

/** Upper bounds of the time-to-first-token histogram, in seconds. */
export const TTFT_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
  20.0,
  40.0,
  80.0,
  160.0,
  640.0,
  2560.0,
];

/** Upper bounds of the inter-token and time-per-output-token histograms, in seconds. */
export const INTER_TOKEN_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.15,
  0.2,
  0.3,
  0.4,
  0.5,
  0.75,
  1.0,
  2.5,
  5.0,
  7.5,
  10.0,
  20.0,
  40.0,
  80.0,
];

/** Upper bounds of the per-request latency histograms (e2e, queue, prefill, ...), in seconds. */
export const REQUEST_LATENCY_BUCKETS: readonly number[] = [
  0.3,
  0.5,
  0.8,
  1.0,
  1.5,
  2.0,
  2.5,
  5.0,
  10.0,
  15.0,
  20.0,
  30.0,
  40.0,
  50.0,
  60.0,
  120.0,
  240.0,
  480.0,
  960.0,
  1920.0,
  7680.0,
];

/** Upper bounds of `vllm:iteration_tokens_total`, in tokens per engine step. */
export const ITERATION_TOKEN_BUCKETS: readonly number[] = [
  1,
  8,
  16,
  32,
  64,
  128,
  256,
  512,
  1024,
  2048,
  4096,
  8192,
  16384,
];

/** Upper bounds of `http_request_duration_highr_seconds`, in seconds. */
export const HTTP_HIGHR_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1.0,
  1.5,
  2.0,
  2.5,
  3.0,
  3.5,
  4.0,
  4.5,
  5.0,
  7.5,
  10.0,
  30.0,
  60.0,
];

const HTTP_DURATION_BUCKETS: readonly number[] = [0.1, 0.5, 1.0];

/** Number of recent requests whose prefix-cache lookups make up the hit rate of the stats log line. */
const HIT_RATE_WINDOW_REQUESTS = 1000;

/**
 * Returns 1, 2, 5, 10, 20, 50, ... up to `max` inclusive: vLLM's bounds for
 * token-count histograms, which depend on `max_model_len`.
 */
export function oneTwoFiveBuckets(max: number): number[] {
  const bounds: number[] = [];
  for (let exponent = 0;; exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const bound = mantissa * 10 ** exponent;
      if (bound > max) {
        return bounds;
      }
      bounds.push(bound);
    }
  }
}

/** Settings that shape the exposed series. */
export interface VllmMetricsOptions {
  /** Value of the `model_name` label. */
  modelName: string;
  /** Value of the `engine` label (data-parallel rank). */
  engine: string;
  /** `max_model_len`; sets the bounds of the token-count histograms. */
  maxModelLen: number;
  kvCacheBlocks: number;
  blockSize: number;
  /** Process start as Unix milliseconds (`process_start_time_seconds`). */
  startMs: number;
  /** Current model time in Unix milliseconds, used for `_created` values. */
  clockMs: () => number;
}

/** Running totals that tests and the stats log line read. */
export interface VllmTotals {
  promptTokens: number;
  promptTokensComputed: number;
  promptTokensCached: number;
  generationTokens: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  preemptions: number;
  finishedRequests: Record<FinishReason | "error", number>;
  /** Prefix-cache hit rate (0-1) over the most recent scheduled requests. */
  recentPrefixCacheHitRate: number;
}

/** HTTP request outcome, counted the way prometheus-fastapi-instrumentator does. */
export interface HttpObservation {
  /** Route template, or `none` for a path that matched no route. */
  handler: string;
  method: string;
  /** Status class such as `2xx` or `4xx`. */
  status: string;
  requestBytes: number;
  responseBytes: number;
  durationSeconds: number;
}

/** vLLM's metric families plus the process, Python and HTTP families of its API server. */
export class VllmMetrics implements EngineObserver {
  readonly registry: MetricRegistry;
  readonly #options: VllmMetricsOptions;
  readonly #labels: Labels;
  readonly #recentLookups: { queries: number; hits: number }[] = [];
  #processCpuSeconds = 95.0;
  #finishedCount = 0;

  readonly #gcCollected: CounterChild[];
  readonly #gcCollections: CounterChild[];
  readonly #virtualMemory: GaugeChild;
  readonly #residentMemory: GaugeChild;
  readonly #cpuSeconds: CounterChild;
  readonly #openFds: GaugeChild;

  readonly #running: GaugeChild;
  readonly #waiting: GaugeChild;
  readonly #kvCacheUsage: GaugeChild;
  readonly #prefixQueries: CounterChild;
  readonly #prefixHits: CounterChild;
  readonly #preemptions: CounterChild;
  readonly #promptTokens: CounterChild;
  readonly #promptBySource: Record<
    "local_compute" | "local_cache_hit" | "external_kv_transfer",
    CounterChild
  >;
  readonly #promptCached: CounterChild;
  readonly #generationTokens: CounterChild;
  readonly #requestSuccess: Record<FinishReason | "error", CounterChild>;
  readonly #requestPromptTokens: HistogramChild;
  readonly #requestGenerationTokens: HistogramChild;
  readonly #iterationTokens: HistogramChild;
  readonly #requestMaxGenerationTokens: HistogramChild;
  readonly #requestParamsN: HistogramChild;
  readonly #requestParamsMaxTokens: HistogramChild;
  readonly #timeToFirstToken: HistogramChild;
  readonly #interTokenLatency: HistogramChild;
  readonly #timePerOutputToken: HistogramChild;
  readonly #e2eLatency: HistogramChild;
  readonly #queueTime: HistogramChild;
  readonly #inferenceTime: HistogramChild;
  readonly #prefillTime: HistogramChild;
  readonly #decodeTime: HistogramChild;
  readonly #prefillKvComputed: HistogramChild;

  readonly #httpRequests: MetricFamily<"counter">;
  readonly #httpRequestSize: MetricFamily<"summary">;
  readonly #httpResponseSize: MetricFamily<"summary">;
  readonly #httpDurationHighr: HistogramChild;
  readonly #httpDuration: MetricFamily<"histogram">;

  constructor(options: VllmMetricsOptions) {
    this.#options = options;
    this.#labels = { engine: options.engine, model_name: options.modelName };
    const registry = new MetricRegistry(() => options.clockMs() / 1000);
    this.registry = registry;
    const labels = this.#labels;
    const tokenBuckets = oneTwoFiveBuckets(options.maxModelLen);

    // Python and process collectors of prometheus_client (no `_created`).
    const gcCollected = registry.register({
      name: "python_gc_objects_collected",
      help: "Objects freed by the Python garbage collector, per generation.",
      type: "counter",
      created: false,
    });
    const gcUncollectable = registry.register({
      name: "python_gc_objects_uncollectable",
      help: "Objects the collector found but could not free, per generation.",
      type: "counter",
      created: false,
    });
    const gcCollections = registry.register({
      name: "python_gc_collections",
      help: "Garbage-collection runs, per generation.",
      type: "counter",
      created: false,
    });
    this.#gcCollected = ["0", "1", "2"].map((generation) =>
      gcCollected.labels({ generation })
    );
    for (const generation of ["0", "1", "2"]) {
      gcUncollectable.labels({ generation });
    }
    this.#gcCollections = ["0", "1", "2"].map((generation) =>
      gcCollections.labels({ generation })
    );
    registry.register({
      name: "python_info",
      help: "Interpreter build information; the value is always 1.",
      type: "gauge",
    }).labels({
      implementation: "CPython",
      major: "3",
      minor: "12",
      patchlevel: "12",
      version: "3.12.12",
    }).value = 1;
    this.#virtualMemory = registry.register({
      name: "process_virtual_memory_bytes",
      help: "Virtual memory size of this process, in bytes.",
      type: "gauge",
    }).labels();
    this.#residentMemory = registry.register({
      name: "process_resident_memory_bytes",
      help: "Resident memory size of this process, in bytes.",
      type: "gauge",
    }).labels();
    registry.register({
      name: "process_start_time_seconds",
      help: "When this process started, as Unix time in seconds.",
      type: "gauge",
    }).labels().value = Math.round(options.startMs / 10) / 100;
    this.#cpuSeconds = registry.register({
      name: "process_cpu_seconds",
      help: "User plus system CPU time of this process, in seconds.",
      type: "counter",
      created: false,
    }).labels();
    this.#openFds = registry.register({
      name: "process_open_fds",
      help: "File descriptors this process has open.",
      type: "gauge",
    }).labels();
    registry.register({
      name: "process_max_fds",
      help: "Limit on open file descriptors for this process.",
      type: "gauge",
    }).labels().value = 1048576;

    // vLLM's own families; vLLM creates every child at start.
    this.#running = registry.register({
      name: "vllm:num_requests_running",
      help: "Requests currently in the running batch.",
      type: "gauge",
    }).labels(labels);
    this.#waiting = registry.register({
      name: "vllm:num_requests_waiting",
      help: "Requests queued and not yet scheduled.",
      type: "gauge",
    }).labels(labels);
    const sleepState = registry.register({
      name: "vllm:engine_sleep_state",
      help:
        "Sleep state as a one-hot set: awake=1 when serving; weights_offloaded=1 at sleep level 1; discard_all=1 at sleep level 2.",
      type: "gauge",
    });
    sleepState.labels({ ...labels, sleep_state: "awake" }).value = 1;
    sleepState.labels({ ...labels, sleep_state: "weights_offloaded" });
    sleepState.labels({ ...labels, sleep_state: "discard_all" });
    this.#kvCacheUsage = registry.register({
      name: "vllm:kv_cache_usage_perc",
      help: "Fraction of KV-cache blocks in use (0 = empty, 1 = full).",
      type: "gauge",
    }).labels(labels);
    this.#prefixQueries = registry.register({
      name: "vllm:prefix_cache_queries",
      help: "Prompt tokens looked up in the prefix cache.",
      type: "counter",
    }).labels(labels);
    this.#prefixHits = registry.register({
      name: "vllm:prefix_cache_hits",
      help: "Prompt tokens that were found in the prefix cache.",
      type: "counter",
    }).labels(labels);
    this.#preemptions = registry.register({
      name: "vllm:num_preemptions",
      help: "Requests preempted by the scheduler since start.",
      type: "counter",
    }).labels(labels);
    this.#promptTokens = registry.register({
      name: "vllm:prompt_tokens",
      help: "Prompt (prefill) tokens processed.",
      type: "counter",
    }).labels(labels);
    const bySource = registry.register({
      name: "vllm:prompt_tokens_by_source",
      help: "Prompt tokens split by where their KV came from.",
      type: "counter",
    });
    this.#promptBySource = {
      local_compute: bySource.labels({ ...labels, source: "local_compute" }),
      local_cache_hit: bySource.labels({
        ...labels,
        source: "local_cache_hit",
      }),
      external_kv_transfer: bySource.labels({
        ...labels,
        source: "external_kv_transfer",
      }),
    };
    this.#promptCached = registry.register({
      name: "vllm:prompt_tokens_cached",
      help: "Prompt tokens that needed no prefill compute (cache hits).",
      type: "counter",
    }).labels(labels);
    this.#generationTokens = registry.register({
      name: "vllm:generation_tokens",
      help: "Output tokens generated.",
      type: "counter",
    }).labels(labels);
    const success = registry.register({
      name: "vllm:request_success",
      help: "Finished requests, by finish reason.",
      type: "counter",
    });
    this.#requestSuccess = {
      stop: success.labels({ ...labels, finished_reason: "stop" }),
      length: success.labels({ ...labels, finished_reason: "length" }),
      abort: success.labels({ ...labels, finished_reason: "abort" }),
      error: success.labels({ ...labels, finished_reason: "error" }),
    };
    const histogram = (
      name: string,
      help: string,
      buckets: readonly number[],
    ): HistogramChild =>
      registry.register({ name, help, type: "histogram", buckets }).labels(
        labels,
      );
    this.#requestPromptTokens = histogram(
      "vllm:request_prompt_tokens",
      "Prompt length of finished requests, in tokens.",
      tokenBuckets,
    );
    this.#requestGenerationTokens = histogram(
      "vllm:request_generation_tokens",
      "Output length of finished requests, in tokens.",
      tokenBuckets,
    );
    this.#iterationTokens = histogram(
      "vllm:iteration_tokens_total",
      "Tokens handled per engine step.",
      ITERATION_TOKEN_BUCKETS,
    );
    this.#requestMaxGenerationTokens = histogram(
      "vllm:request_max_num_generation_tokens",
      "Longest output among a finished request's sequences.",
      tokenBuckets,
    );
    this.#requestParamsN = histogram(
      "vllm:request_params_n",
      "The n sampling parameter of finished requests.",
      [1, 2, 5, 10, 20],
    );
    this.#requestParamsMaxTokens = histogram(
      "vllm:request_params_max_tokens",
      "The max_tokens sampling parameter of finished requests.",
      tokenBuckets,
    );
    this.#timeToFirstToken = histogram(
      "vllm:time_to_first_token_seconds",
      "Seconds from request arrival to its first output token.",
      TTFT_BUCKETS,
    );
    this.#interTokenLatency = histogram(
      "vllm:inter_token_latency_seconds",
      "Seconds between consecutive output tokens of a request.",
      INTER_TOKEN_BUCKETS,
    );
    this.#timePerOutputToken = histogram(
      "vllm:request_time_per_output_token_seconds",
      "Mean seconds per output token after the first, per finished request.",
      INTER_TOKEN_BUCKETS,
    );
    this.#e2eLatency = histogram(
      "vllm:e2e_request_latency_seconds",
      "Seconds from arrival to completion, per finished request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.#queueTime = histogram(
      "vllm:request_queue_time_seconds",
      "Seconds a finished request waited before it was first scheduled.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.#inferenceTime = histogram(
      "vllm:request_inference_time_seconds",
      "Seconds a finished request spent running (prefill + decode).",
      REQUEST_LATENCY_BUCKETS,
    );
    this.#prefillTime = histogram(
      "vllm:request_prefill_time_seconds",
      "Seconds of prefill, per finished request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.#decodeTime = histogram(
      "vllm:request_decode_time_seconds",
      "Seconds of decode, per finished request.",
      REQUEST_LATENCY_BUCKETS,
    );
    this.#prefillKvComputed = histogram(
      "vllm:request_prefill_kv_computed_tokens",
      "Prompt tokens whose KV had to be computed (not reused), per finished request.",
      tokenBuckets,
    );
    registry.register({
      name: "vllm:cache_config_info",
      help: "KV-cache configuration carried as labels; the value is always 1.",
      type: "gauge",
    }).labels(cacheConfigLabels(options)).value = 1;

    // prometheus-fastapi-instrumentator: children appear on first use.
    this.#httpRequests = registry.register({
      name: "http_requests",
      help: "HTTP requests handled, by method, status class and route.",
      type: "counter",
    });
    this.#httpRequestSize = registry.register({
      name: "http_request_size_bytes",
      help: "Request Content-Length by route (0 when the header is absent).",
      type: "summary",
    });
    this.#httpResponseSize = registry.register({
      name: "http_response_size_bytes",
      help: "Response Content-Length by route (0 for streamed bodies).",
      type: "summary",
    });
    this.#httpDurationHighr = registry.register({
      name: "http_request_duration_highr_seconds",
      help: "HTTP request duration with fine buckets and no route labels.",
      type: "histogram",
      buckets: HTTP_HIGHR_BUCKETS,
    }).labels();
    this.#httpDuration = registry.register({
      name: "http_request_duration_seconds",
      help: "HTTP request duration with coarse buckets, by route and method.",
      type: "histogram",
      buckets: HTTP_DURATION_BUCKETS,
    });

    this.updateProcess(0, 0, 0);
  }

  /** Renders the whole exposition body. */
  render(): string {
    return this.registry.render();
  }

  /** Sets the instantaneous engine gauges. */
  updateEngineGauges(
    running: number,
    waiting: number,
    kvCacheUsage: number,
  ): void {
    this.#running.value = running;
    this.#waiting.value = waiting;
    this.#kvCacheUsage.value = kvCacheUsage;
  }

  /**
   * Advances the process and Python collector figures.
   *
   * @param elapsedSeconds Model time passed since the previous call.
   * @param busyFraction 0 when idle up to 1 at full batch; scales CPU time.
   * @param openConnections Client connections currently open.
   */
  updateProcess(
    elapsedSeconds: number,
    busyFraction: number,
    openConnections: number,
  ): void {
    this.#processCpuSeconds += elapsedSeconds * (0.03 + 0.9 * busyFraction);
    this.#cpuSeconds.value = Math.round(this.#processCpuSeconds * 100) / 100;
    const finished = this.#finishedCount;
    const sinceStart = (this.#options.clockMs() - this.#options.startMs) /
      1000;
    const setGeneration = (
      children: CounterChild[],
      values: number[],
    ): void => {
      children.forEach((child, index) => {
        child.value = Math.floor(values[index] ?? 0);
      });
    };
    const collections0 = 640 + finished * 0.9 + sinceStart * 0.2;
    setGeneration(this.#gcCollections, [
      collections0,
      collections0 / 11,
      collections0 / 130,
    ]);
    setGeneration(this.#gcCollected, [
      5200 + finished * 41 + sinceStart * 3,
      900 + finished * 6,
      1300 + finished * 0.9,
    ]);
    this.#virtualMemory.value = 12873379840;
    this.#residentMemory.value = 1391386624 + 4096 * Math.floor(finished / 20);
    this.#openFds.value = 38 + openConnections;
  }

  /** Counts one HTTP request in the `http_*` families. */
  recordHttpRequest(observation: HttpObservation): void {
    const { handler, method, status } = observation;
    this.#httpRequests.labels({ handler, method, status }).inc();
    this.#httpRequestSize.labels({ handler }).observe(
      observation.requestBytes,
    );
    this.#httpResponseSize.labels({ handler }).observe(
      observation.responseBytes,
    );
    this.#httpDurationHighr.observe(observation.durationSeconds);
    this.#httpDuration.labels({ handler, method }).observe(
      observation.durationSeconds,
    );
  }

  /** Returns the running totals. */
  totals(): VllmTotals {
    let windowQueries = 0;
    let windowHits = 0;
    for (const lookup of this.#recentLookups) {
      windowQueries += lookup.queries;
      windowHits += lookup.hits;
    }
    return {
      promptTokens: this.#promptTokens.value,
      promptTokensComputed: this.#promptBySource.local_compute.value,
      promptTokensCached: this.#promptCached.value,
      generationTokens: this.#generationTokens.value,
      prefixCacheQueries: this.#prefixQueries.value,
      prefixCacheHits: this.#prefixHits.value,
      preemptions: this.#preemptions.value,
      finishedRequests: {
        stop: this.#requestSuccess.stop.value,
        length: this.#requestSuccess.length.value,
        abort: this.#requestSuccess.abort.value,
        error: this.#requestSuccess.error.value,
      },
      recentPrefixCacheHitRate: windowQueries > 0
        ? windowHits / windowQueries
        : 0,
    };
  }

  requestScheduled(request: SimulatedRequest): void {
    this.#prefixQueries.inc(request.promptTokens);
    this.#prefixHits.inc(request.cachedPromptTokens);
    this.#recentLookups.push({
      queries: request.promptTokens,
      hits: request.cachedPromptTokens,
    });
    if (this.#recentLookups.length > HIT_RATE_WINDOW_REQUESTS) {
      this.#recentLookups.shift();
    }
  }

  requestPreempted(): void {
    this.#preemptions.inc();
  }

  firstToken(request: SimulatedRequest): void {
    // vLLM books a request's prompt tokens when its first token appears.
    const cached = request.cachedPromptTokens;
    this.#promptTokens.inc(request.promptTokens);
    this.#promptBySource.local_compute.inc(request.promptTokens - cached);
    this.#promptBySource.local_cache_hit.inc(cached);
    this.#promptCached.inc(cached);
    this.#generationTokens.inc();
    const firstTokenMs = request.firstTokenMs ?? request.arrivalMs;
    this.#timeToFirstToken.observe((firstTokenMs - request.arrivalMs) / 1000);
  }

  outputToken(_request: SimulatedRequest, interTokenSeconds: number): void {
    this.#generationTokens.inc();
    this.#interTokenLatency.observe(interTokenSeconds);
  }

  stepFinished(promptTokens: number, generationTokens: number): void {
    this.#iterationTokens.observe(promptTokens + generationTokens);
  }

  requestFinished(request: SimulatedRequest): void {
    const arrival = request.arrivalMs;
    const scheduled = request.firstScheduledMs ?? arrival;
    const firstToken = request.firstTokenMs ?? scheduled;
    const finished = request.finishedMs ?? firstToken;
    const decodeSeconds = (finished - firstToken) / 1000;
    this.#requestSuccess[request.finishReason].inc();
    this.#finishedCount += 1;
    this.#requestPromptTokens.observe(request.promptTokens);
    this.#requestGenerationTokens.observe(request.outputTokens);
    this.#requestMaxGenerationTokens.observe(request.outputTokens);
    this.#requestParamsN.observe(1);
    this.#requestParamsMaxTokens.observe(request.maxTokens);
    this.#timePerOutputToken.observe(
      request.outputTokens > 1 ? decodeSeconds / (request.outputTokens - 1) : 0,
    );
    this.#e2eLatency.observe((finished - arrival) / 1000);
    this.#queueTime.observe((scheduled - arrival) / 1000);
    this.#inferenceTime.observe((finished - scheduled) / 1000);
    this.#prefillTime.observe((firstToken - scheduled) / 1000);
    this.#decodeTime.observe(decodeSeconds);
    this.#prefillKvComputed.observe(
      request.promptTokens - request.cachedPromptTokens,
    );
  }
}

function cacheConfigLabels(options: VllmMetricsOptions): Labels {
  // Values are Python str() of vLLM's CacheConfig fields, hence "None" and "True".
  return {
    block_size: String(options.blockSize),
    cache_dtype: "auto",
    calculate_kv_scales: "False",
    cpu_kvcache_space_bytes: "None",
    cpu_offload_gb: "0",
    enable_prefix_caching: "True",
    engine: options.engine,
    gpu_memory_utilization: "0.9",
    is_attention_free: "False",
    kv_cache_memory_bytes: "None",
    kv_sharing_fast_prefill: "False",
    mamba_cache_dtype: "auto",
    mamba_page_size_padded: "None",
    mamba_ssm_cache_dtype: "auto",
    num_cpu_blocks: "None",
    num_gpu_blocks: String(options.kvCacheBlocks),
    num_gpu_blocks_override: "None",
    prefix_caching_hash_algo: "sha256",
    sliding_window: "None",
    swap_space: "4",
    swap_space_bytes: "4294967296",
  };
}
