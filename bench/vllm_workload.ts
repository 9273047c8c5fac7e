/**
 * A deterministic model of a vLLM server's `/metrics` page over a day, for
 * the storage benchmark. Families, label names and bucket bounds are those
 * of vLLM's V1 engine, as in tests/testdata/vllm/metrics-v1-busy.prom. The
 * values follow a diurnal request load with an idle night.
 *
 * The page can be rendered as text format 0.0.4 (for timing the parser) or
 * returned as parsed samples directly (for filling a database quickly).
 *
 * @module
 */
import type { MetricType, Sample } from "../src/metrics/exposition/types.ts";
import {
  HTTP_HIGHR_BUCKETS as HTTP_HIGHR_BOUNDS,
  INTER_TOKEN_BUCKETS as ITL_BOUNDS,
  ITERATION_TOKEN_BUCKETS as ITERATION_TOKEN_BOUNDS,
  oneTwoFiveBuckets,
  REQUEST_LATENCY_BUCKETS as REQUEST_LATENCY_BOUNDS,
  TTFT_BUCKETS as TTFT_BOUNDS,
} from "../src/simulate/vllm_metrics.ts";

/** Bounds of vLLM's token-count histograms for a 32,768-token context. */
const TOKEN_BOUNDS = oneTwoFiveBuckets(32_768);

const FINISHED_REASONS = ["stop", "length", "abort", "error"] as const;

/** Mulberry32: small, fast and deterministic for a given seed. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Formats a value the way prometheus_client's `floatToGoString` does. */
export function formatGoFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  let text = String(value);
  if (Number.isInteger(value) && !text.includes("e")) text += ".0";
  const dot = text.indexOf(".");
  if (value > 0 && dot > 6 && !text.includes("e")) {
    const digits = `${text.slice(1, dot)}${text.slice(dot + 1)}`;
    const mantissa = `${text[0]}.${digits}`.replace(/\.?0+$/, "");
    return `${mantissa}e+${String(dot - 1).padStart(2, "0")}`;
  }
  return text;
}

function formatBound(bound: number): string {
  return Number.isInteger(bound) ? `${bound}.0` : String(bound);
}

class Histogram {
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; the last entry is `+Inf`. */
  readonly counts: number[];
  sum = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(value: number, weight = 1): void {
    let index = 0;
    while (index < this.bounds.length && value > this.bounds[index]!) index++;
    this.counts[index]! += weight;
    this.sum += value * weight;
  }
}

interface FamilyOutput {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

/** Collects samples family by family, in exposition order. */
class PageBuilder {
  readonly families: FamilyOutput[] = [];
  readonly #byName = new Map<string, FamilyOutput>();

  family(name: string, type: MetricType, help: string): FamilyOutput {
    let family = this.#byName.get(name);
    if (family === undefined) {
      family = { name, type, help, samples: [] };
      this.#byName.set(name, family);
      this.families.push(family);
    }
    return family;
  }

  sample(
    family: FamilyOutput,
    name: string,
    labels: Record<string, string>,
    value: number,
  ): void {
    // The parsers name a counter family without its `_total` suffix.
    const familyName = family.type === "counter"
      ? family.name.replace(/_total$/, "")
      : family.name;
    family.samples.push({
      name,
      labels,
      value,
      family: familyName,
      type: family.type,
    });
  }
}

/** One `(model_name, engine)` pair and its state. */
class EngineState {
  readonly labels: Record<string, string>;
  readonly createdSeconds: number;
  running = 0;
  waiting = 0;
  kvUsage = 0;
  preemptions = 0;
  promptTokens = 0;
  generationTokens = 0;
  cachedPromptTokens = 0;
  prefixQueries = 0;
  prefixHits = 0;
  readonly finished = new Map<string, number>(
    FINISHED_REASONS.map((reason) => [reason, 0]),
  );
  readonly histograms = new Map<string, Histogram>([
    ["vllm:time_to_first_token_seconds", new Histogram(TTFT_BOUNDS)],
    ["vllm:inter_token_latency_seconds", new Histogram(ITL_BOUNDS)],
    ["vllm:e2e_request_latency_seconds", new Histogram(REQUEST_LATENCY_BOUNDS)],
    ["vllm:request_queue_time_seconds", new Histogram(REQUEST_LATENCY_BOUNDS)],
    [
      "vllm:request_inference_time_seconds",
      new Histogram(REQUEST_LATENCY_BOUNDS),
    ],
    [
      "vllm:request_prefill_time_seconds",
      new Histogram(REQUEST_LATENCY_BOUNDS),
    ],
    ["vllm:request_decode_time_seconds", new Histogram(REQUEST_LATENCY_BOUNDS)],
    ["vllm:request_prompt_tokens", new Histogram(TOKEN_BOUNDS)],
    ["vllm:request_generation_tokens", new Histogram(TOKEN_BOUNDS)],
    ["vllm:iteration_tokens_total", new Histogram(ITERATION_TOKEN_BOUNDS)],
    ["vllm:request_params_n", new Histogram([1, 2, 5, 10, 20])],
  ]);

  constructor(model: string, engine: string, createdSeconds: number) {
    this.labels = { engine, model_name: model };
    this.createdSeconds = createdSeconds;
  }
}

/** Options of {@linkcode VllmWorkload}. */
export interface WorkloadOptions {
  /** Values of `model_name`; each model runs `engines` engines. */
  models: readonly string[];
  /** Data-parallel engines per model (label `engine` = "0", "1", ...). */
  engines: number;
  /** Peak request arrival rate per engine, requests per second. @default 2 */
  peakRequestsPerSecond?: number;
  /** Seed of the pseudo-random source. @default 1 */
  seed?: number;
  /** Process start, Unix milliseconds; `_created` values derive from it. */
  startMs: number;
  /** Relative load (0 to 1) at an hour of the day. @default diurnalLoad */
  loadAt?: (hourOfDay: number) => number;
}

/**
 * Relative load at an hour of the day (UTC): idle from 01:00 to 06:00, a
 * morning ramp, a busy working day and a falling evening.
 */
export function diurnalLoad(hourOfDay: number): number {
  if (hourOfDay < 1) return 0.15 * (1 - hourOfDay);
  if (hourOfDay < 6) return 0;
  if (hourOfDay < 9) return (hourOfDay - 6) / 3;
  if (hourOfDay < 18) {
    return 0.8 + 0.2 * Math.sin(((hourOfDay - 9) / 9) * Math.PI);
  }
  return 0.8 * (1 - (hourOfDay - 18) / 6) + 0.15 * ((hourOfDay - 18) / 6);
}

/**
 * A simulated vLLM server: call {@linkcode advance} once per scrape interval,
 * then {@linkcode samples} or {@linkcode render} for the page at that time.
 */
export class VllmWorkload {
  readonly #engines: EngineState[] = [];
  readonly #random: () => number;
  readonly #peak: number;
  readonly #loadAt: (hourOfDay: number) => number;
  readonly #startSeconds: number;
  #cpuSeconds = 0;
  #residentBytes = 1.4e9;
  #gcCollected = [11906, 1801, 2410];
  #gcCollections = [1561, 141, 11];
  #httpRequests = 0;
  #httpRequestBytes = 0;
  #httpResponseBytes = 0;
  readonly #httpHighr = new Histogram(HTTP_HIGHR_BOUNDS);
  readonly #httpDuration = new Histogram([0.1, 0.5, 1]);

  constructor(options: WorkloadOptions) {
    this.#random = randomSource(options.seed ?? 1);
    this.#peak = options.peakRequestsPerSecond ?? 2;
    this.#loadAt = options.loadAt ?? diurnalLoad;
    this.#startSeconds = options.startMs / 1000;
    let offset = 0;
    for (const model of options.models) {
      for (let engine = 0; engine < options.engines; engine++) {
        offset += 0.0123;
        this.#engines.push(
          new EngineState(model, String(engine), this.#startSeconds + offset),
        );
      }
    }
  }

  /** Draws from Poisson(mean) by inversion; fine for the small means used here. */
  #poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 50) {
      const normal = Math.sqrt(-2 * Math.log(1 - this.#random())) *
        Math.cos(2 * Math.PI * this.#random());
      return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal));
    }
    const limit = Math.exp(-mean);
    let count = 0;
    let product = this.#random();
    while (product > limit) {
      count++;
      product *= this.#random();
    }
    return count;
  }

  /** Draws from a log-normal distribution with the given median. */
  #logNormal(median: number, sigma: number): number {
    const normal = Math.sqrt(-2 * Math.log(1 - this.#random())) *
      Math.cos(2 * Math.PI * this.#random());
    return median * Math.exp(sigma * normal);
  }

  /** Moves the simulated server `seconds` forward, ending at `nowMs`. */
  advance(nowMs: number, seconds: number): void {
    const hour = (nowMs / 3_600_000) % 24;
    const load = this.#loadAt(hour);
    for (const engine of this.#engines) {
      this.#advanceEngine(engine, load, seconds);
    }
    this.#cpuSeconds += seconds * (0.05 + 0.6 * load);
    this.#residentBytes += Math.round((this.#random() - 0.5) * 4096) * 4096;
    for (let generation = 0; generation < 3; generation++) {
      this.#gcCollections[generation]! += this.#poisson(
        (3 - generation) * (0.02 + load) * seconds,
      );
      this.#gcCollected[generation]! += this.#poisson(
        40 * (0.02 + load) * seconds,
      );
    }
  }

  #advanceEngine(engine: EngineState, load: number, seconds: number): void {
    const finished = this.#poisson(this.#peak * load * seconds);
    const histogram = (name: string): Histogram => engine.histograms.get(name)!;
    let busySeconds = 0;
    for (let request = 0; request < finished; request++) {
      const prompt = Math.max(1, Math.round(this.#logNormal(900, 1.1)));
      const generated = Math.max(1, Math.round(this.#logNormal(180, 0.9)));
      const itl = this.#logNormal(0.022 + 0.03 * load, 0.25);
      const queue = load > 0.7
        ? this.#logNormal(0.05 + (load - 0.7) * 3, 1)
        : this.#logNormal(0.01, 0.8);
      const prefill = prompt / 12000 + this.#logNormal(0.02, 0.4);
      const ttft = queue + prefill;
      const decode = itl * (generated - 1);
      const e2e = ttft + decode;
      const cached = Math.floor(prompt * 0.3 * this.#random());
      histogram("vllm:time_to_first_token_seconds").observe(ttft);
      if (generated > 1) {
        histogram("vllm:inter_token_latency_seconds").observe(
          itl,
          generated - 1,
        );
      }
      histogram("vllm:e2e_request_latency_seconds").observe(e2e);
      histogram("vllm:request_queue_time_seconds").observe(queue);
      histogram("vllm:request_inference_time_seconds").observe(
        prefill + decode,
      );
      histogram("vllm:request_prefill_time_seconds").observe(prefill);
      histogram("vllm:request_decode_time_seconds").observe(decode);
      histogram("vllm:request_prompt_tokens").observe(prompt);
      histogram("vllm:request_generation_tokens").observe(generated);
      histogram("vllm:request_params_n").observe(1);
      engine.promptTokens += prompt;
      engine.generationTokens += generated;
      engine.cachedPromptTokens += cached;
      engine.prefixQueries += prompt;
      engine.prefixHits += cached;
      const pick = this.#random();
      const reason = pick < 0.85
        ? "stop"
        : pick < 0.985
        ? "length"
        : pick < 0.999
        ? "abort"
        : "error";
      engine.finished.set(reason, engine.finished.get(reason)! + 1);
      this.#httpRequests++;
      this.#httpRequestBytes += prompt * 4 + 300;
      this.#httpResponseBytes += generated * 4 + 400;
      this.#httpHighr.observe(e2e);
      this.#httpDuration.observe(e2e);
      busySeconds += e2e;
    }
    // Little's law: requests in the batch = arrival rate x time in system.
    engine.running = Math.round(busySeconds / seconds);
    engine.waiting = load > 0.7
      ? Math.round(this.#random() * (load - 0.7) * 60)
      : 0;
    engine.kvUsage = Math.min(1, engine.running * 1100 / (29184 * 16));
    if (engine.kvUsage > 0.9 && this.#random() < 0.2) engine.preemptions++;
    if (engine.running > 0) {
      const steps = Math.round(seconds / (0.022 + 0.03 * load));
      histogram("vllm:iteration_tokens_total").observe(engine.running, steps);
    }
  }

  #build(): PageBuilder {
    const page = new PageBuilder();
    const generations = ["0", "1", "2"];
    const collected = page.family(
      "python_gc_objects_collected_total",
      "counter",
      "Objects freed by the Python garbage collector, per generation.",
    );
    generations.forEach((generation, index) =>
      page.sample(
        collected,
        collected.name,
        { generation },
        this.#gcCollected[index]!,
      )
    );
    const uncollectable = page.family(
      "python_gc_objects_uncollectable_total",
      "counter",
      "Uncollectable objects found during GC.",
    );
    for (const generation of generations) {
      page.sample(uncollectable, uncollectable.name, { generation }, 0);
    }
    const collections = page.family(
      "python_gc_collections_total",
      "counter",
      "Times each generation was collected.",
    );
    generations.forEach((generation, index) =>
      page.sample(
        collections,
        collections.name,
        { generation },
        this.#gcCollections[index]!,
      )
    );
    const info = page.family("python_info", "gauge", "Python platform.");
    page.sample(info, info.name, {
      implementation: "CPython",
      major: "3",
      minor: "12",
      patchlevel: "12",
      version: "3.12.12",
    }, 1);
    const processGauges: [string, number][] = [
      ["process_virtual_memory_bytes", 1.287337984e10],
      ["process_resident_memory_bytes", this.#residentBytes],
      [
        "process_start_time_seconds",
        Math.round(this.#startSeconds * 100) / 100,
      ],
    ];
    for (const [name, value] of processGauges) {
      page.sample(page.family(name, "gauge", name), name, {}, value);
    }
    const cpu = page.family(
      "process_cpu_seconds_total",
      "counter",
      "CPU time.",
    );
    page.sample(cpu, cpu.name, {}, Math.round(this.#cpuSeconds * 100) / 100);
    const running = this.#engines.reduce((sum, e) => sum + e.running, 0);
    const fds = page.family("process_open_fds", "gauge", "Open descriptors.");
    page.sample(fds, fds.name, {}, 60 + running);
    const maxFds = page.family("process_max_fds", "gauge", "Descriptor limit.");
    page.sample(maxFds, maxFds.name, {}, 1048576);

    this.#buildEngineFamilies(page);
    this.#buildHttpFamilies(page);
    return page;
  }

  #buildEngineFamilies(page: PageBuilder): void {
    const gauge = (
      name: string,
      help: string,
      pick: (e: EngineState) => number,
    ) => {
      const family = page.family(name, "gauge", help);
      for (const engine of this.#engines) {
        page.sample(family, name, engine.labels, pick(engine));
      }
    };
    gauge(
      "vllm:num_requests_running",
      "Requests in the batch.",
      (e) => e.running,
    );
    gauge("vllm:num_requests_waiting", "Requests queued.", (e) => e.waiting);
    const sleep = page.family(
      "vllm:engine_sleep_state",
      "gauge",
      "Engine sleep state, one-hot.",
    );
    for (const engine of this.#engines) {
      for (const state of ["awake", "weights_offloaded", "discard_all"]) {
        page.sample(sleep, sleep.name, {
          ...engine.labels,
          sleep_state: state,
        }, state === "awake" ? 1 : 0);
      }
    }
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage, 0-1.", (e) => e.kvUsage);

    const counter = (
      base: string,
      help: string,
      series: (e: EngineState) => [Record<string, string>, number][],
    ) => {
      const total = page.family(`${base}_total`, "counter", help);
      const created = page.family(`${base}_created`, "gauge", help);
      for (const engine of this.#engines) {
        for (const [labels, value] of series(engine)) {
          page.sample(total, total.name, labels, value);
        }
      }
      for (const engine of this.#engines) {
        for (const [labels] of series(engine)) {
          page.sample(created, created.name, labels, engine.createdSeconds);
        }
      }
    };
    counter(
      "vllm:prefix_cache_queries",
      "Prefix-cache queries, tokens.",
      (e) => [[e.labels, e.prefixQueries]],
    );
    counter(
      "vllm:prefix_cache_hits",
      "Prefix-cache hits, tokens.",
      (e) => [[e.labels, e.prefixHits]],
    );
    counter(
      "vllm:num_preemptions",
      "Preemptions.",
      (e) => [[e.labels, e.preemptions]],
    );
    counter(
      "vllm:prompt_tokens",
      "Prompt tokens.",
      (e) => [[e.labels, e.promptTokens]],
    );
    counter("vllm:prompt_tokens_by_source", "Prompt tokens by source.", (e) => [
      [
        { ...e.labels, source: "local_compute" },
        e.promptTokens - e.cachedPromptTokens,
      ],
      [{ ...e.labels, source: "local_cache_hit" }, e.cachedPromptTokens],
      [{ ...e.labels, source: "external_kv_transfer" }, 0],
    ]);
    counter(
      "vllm:prompt_tokens_cached",
      "Cached prompt tokens.",
      (e) => [[e.labels, e.cachedPromptTokens]],
    );
    counter(
      "vllm:generation_tokens",
      "Generated tokens.",
      (e) => [[e.labels, e.generationTokens]],
    );
    counter(
      "vllm:request_success",
      "Finished requests by reason.",
      (e) =>
        FINISHED_REASONS.map((reason) => [
          { ...e.labels, finished_reason: reason },
          e.finished.get(reason)!,
        ]),
    );

    const histogramNames = [...this.#engines[0]!.histograms.keys()];
    for (const name of histogramNames) {
      const family = page.family(name, "histogram", `${name} histogram.`);
      for (const engine of this.#engines) {
        const histogram = engine.histograms.get(name)!;
        let cumulative = 0;
        histogram.counts.forEach((count, index) => {
          cumulative += count;
          const bound = histogram.bounds[index];
          page.sample(family, `${name}_bucket`, {
            ...engine.labels,
            le: bound === undefined ? "+Inf" : formatBound(bound),
          }, cumulative);
        });
        page.sample(family, `${name}_count`, engine.labels, cumulative);
        page.sample(family, `${name}_sum`, engine.labels, histogram.sum);
      }
      const created = page.family(`${name}_created`, "gauge", `${name} start.`);
      for (const engine of this.#engines) {
        page.sample(
          created,
          created.name,
          engine.labels,
          engine.createdSeconds,
        );
      }
    }

    const config = page.family(
      "vllm:cache_config_info",
      "gauge",
      "Cache configuration.",
    );
    // vLLM labels this gauge by engine only, without `model_name`.
    const engineValues = new Set(this.#engines.map((e) => e.labels.engine!));
    for (const engine of engineValues) {
      page.sample(config, config.name, {
        block_size: "16",
        cache_dtype: "auto",
        enable_prefix_caching: "True",
        engine,
        gpu_memory_utilization: "0.9",
        num_gpu_blocks: "29184",
        swap_space: "4",
      }, 1);
    }
  }

  #buildHttpFamilies(page: PageBuilder): void {
    const requests = page.family(
      "http_requests_total",
      "counter",
      "HTTP requests by handler, method and status.",
    );
    const handlers: [string, string, number][] = [
      ["/v1/chat/completions", "POST", this.#httpRequests],
      ["/health", "GET", Math.floor(this.#cpuSeconds)],
      ["/v1/models", "GET", 3],
    ];
    for (const [handler, method, value] of handlers) {
      page.sample(requests, requests.name, {
        handler,
        method,
        status: "2xx",
      }, value);
    }
    const requestsCreated = page.family(
      "http_requests_created",
      "gauge",
      "HTTP requests by handler, method and status.",
    );
    for (const [handler, method] of handlers) {
      page.sample(requestsCreated, requestsCreated.name, {
        handler,
        method,
        status: "2xx",
      }, this.#startSeconds + 1.5);
    }
    for (
      const [name, value] of [
        ["http_request_size_bytes", this.#httpRequestBytes],
        ["http_response_size_bytes", this.#httpResponseBytes],
      ] as const
    ) {
      const family = page.family(name, "summary", `${name} summary.`);
      const labels = { handler: "/v1/chat/completions" };
      page.sample(family, `${name}_count`, labels, this.#httpRequests);
      page.sample(family, `${name}_sum`, labels, value);
    }
    const highr = page.family(
      "http_request_duration_highr_seconds",
      "histogram",
      "Request latency, fine buckets.",
    );
    let cumulative = 0;
    this.#httpHighr.counts.forEach((count, index) => {
      cumulative += count;
      const bound = this.#httpHighr.bounds[index];
      page.sample(highr, `${highr.name}_bucket`, {
        le: bound === undefined ? "+Inf" : formatBound(bound),
      }, cumulative);
    });
    page.sample(highr, `${highr.name}_count`, {}, cumulative);
    page.sample(highr, `${highr.name}_sum`, {}, this.#httpHighr.sum);

    const duration = page.family(
      "http_request_duration_seconds",
      "histogram",
      "Request latency by handler.",
    );
    for (const [handler, method, requests] of handlers) {
      // Only the completions handler receives slow requests. The others'
      // requests all fall into the first bucket.
      const slow = handler === "/v1/chat/completions";
      let bucketTotal = 0;
      this.#httpDuration.counts.forEach((count, index) => {
        if (slow) bucketTotal += count;
        else if (index === 0) bucketTotal += requests;
        const bound = this.#httpDuration.bounds[index];
        page.sample(duration, `${duration.name}_bucket`, {
          handler,
          le: bound === undefined ? "+Inf" : formatBound(bound),
          method,
        }, bucketTotal);
      });
      page.sample(
        duration,
        `${duration.name}_count`,
        { handler, method },
        bucketTotal,
      );
      page.sample(
        duration,
        `${duration.name}_sum`,
        { handler, method },
        slow ? this.#httpDuration.sum : requests * 0.002,
      );
    }
  }

  /** Returns the page as the parser would: samples in exposition order. */
  samples(): Sample[] {
    return this.#build().families.flatMap((family) => family.samples);
  }

  /** Renders the page as text format 0.0.4, labels sorted by name. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.#build().families) {
      lines.push(`# HELP ${family.name} ${family.help}`);
      lines.push(`# TYPE ${family.name} ${family.type}`);
      for (const sample of family.samples) {
        const labels = Object.keys(sample.labels).sort().map((name) =>
          `${name}="${sample.labels[name]}"`
        ).join(",");
        const series = labels === ""
          ? sample.name
          : `${sample.name}{${labels}}`;
        lines.push(`${series} ${formatGoFloat(sample.value)}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}
