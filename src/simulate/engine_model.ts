/**
 * Request-level model of a vLLM V1 engine, used by the simulator to produce
 * metrics that move like a real server's. Requests arrive as a Poisson
 * process, wait in a FIFO queue, are scheduled when KV-cache blocks and
 * batch slots are free, prefill in chunks, then decode one token per engine
 * step until they stop, reach `max_tokens` or are aborted.
 *
 * Times are milliseconds on the model clock (Unix milliseconds). The model
 * only advances when `advanceTo` is called.
 *
 * @module
 */

import type { SeededRandom } from "./random.ts";

/** Reasons a request finishes, as vLLM's `finished_reason` label names them. */
export type FinishReason = "stop" | "length" | "abort";

/** OpenAI-compatible routes the simulated clients call. */
export type CompletionRoute = "/v1/chat/completions" | "/v1/completions";

/** One simulated request and its progress through the engine. */
export interface SimulatedRequest {
  id: number;
  route: CompletionRoute;
  /** TCP port of the simulated client, shown in the access log line. */
  clientPort: number;
  /** Whether the client asked for a streamed response. */
  streamed: boolean;
  arrivalMs: number;
  promptTokens: number;
  /** `max_tokens` sampling parameter. */
  maxTokens: number;
  /** Output tokens after which the request finishes. */
  targetOutputTokens: number;
  finishReason: FinishReason;
  /** Prompt tokens found in the prefix cache at first scheduling, a multiple of the block size. */
  cachedPromptTokens: number;
  /** Index of the shared system prompt the request starts with, or -1. */
  prefixGroup: number;
  firstScheduledMs: number | undefined;
  firstTokenMs: number | undefined;
  lastTokenMs: number | undefined;
  finishedMs: number | undefined;
  outputTokens: number;
  /** Tokens whose KV must be present before decoding continues. */
  prefillTargetTokens: number;
  /** Tokens of `prefillTargetTokens` already in the KV cache. */
  prefilledTokens: number;
  /** Tokens currently stored in KV-cache blocks for this request. */
  kvTokens: number;
  blocks: number;
  preemptions: number;
}

/** Engine and workload parameters. */
export interface EngineConfig {
  /** KV-cache blocks on the GPU (`num_gpu_blocks`). */
  kvCacheBlocks: number;
  /** Tokens per KV-cache block. */
  blockSize: number;
  /** Maximum requests in the running batch (`max_num_seqs`). */
  maxNumSeqs: number;
  /** Token budget of one engine step (`max_num_batched_tokens`). */
  maxNumBatchedTokens: number;
  /** Maximum context length of a request in tokens (`max_model_len`). */
  maxModelLen: number;
  /** Fixed cost of one engine step in ms. */
  stepBaseMs: number;
  /** Added step cost per decoding request in ms. */
  stepPerSequenceMs: number;
  /** Added step cost per prefilled token in ms. */
  stepPerPrefillTokenMs: number;
  /** Share of requests aborted by their client before finishing. */
  abortProbability: number;
}

/** Default engine parameters, shaped like a 7B model on one large GPU. */
export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  kvCacheBlocks: 29184,
  blockSize: 16,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  maxModelLen: 32768,
  stepBaseMs: 12,
  stepPerSequenceMs: 0.12,
  stepPerPrefillTokenMs: 0.04,
  abortProbability: 0.005,
};

/** Receives the engine's events; the simulator turns them into metrics and log lines. */
export interface EngineObserver {
  /** Called once per request, when the scheduler first admits it. */
  requestScheduled(request: SimulatedRequest): void;
  /** Called when the scheduler evicts a running request to free KV blocks. */
  requestPreempted(request: SimulatedRequest): void;
  /** Called when a request's first output token is produced. */
  firstToken(request: SimulatedRequest): void;
  /** Called for every output token after the first, with the gap to the previous token in seconds. */
  outputToken(request: SimulatedRequest, interTokenSeconds: number): void;
  /** Called after each engine step with the tokens it booked. */
  stepFinished(promptTokens: number, generationTokens: number): void;
  /** Called when a request finishes for any reason. */
  requestFinished(request: SimulatedRequest): void;
}

const SYSTEM_PROMPT_TOKENS = [384, 512, 768, 1024, 1536, 2048, 3072, 4096];
const MAX_TOKENS_CHOICES: readonly (readonly [number, number])[] = [
  [256, 2],
  [512, 3],
  [1024, 3],
  [2048, 2],
];

/** The engine: queue, running batch, KV-cache blocks and the model clock. */
export class EngineModel {
  readonly #config: EngineConfig;
  readonly #random: SeededRandom;
  readonly #observer: EngineObserver;
  readonly #waiting: SimulatedRequest[] = [];
  readonly #running: SimulatedRequest[] = [];
  readonly #warmPrefixGroups = new Set<number>();
  #clockMs: number;
  #usedBlocks = 0;
  #arrivalsPerSecond = 0;
  #nextArrivalMs = Infinity;
  #nextRequestId = 0;

  constructor(
    config: EngineConfig,
    random: SeededRandom,
    observer: EngineObserver,
    startMs: number,
  ) {
    this.#config = config;
    this.#random = random;
    this.#observer = observer;
    this.#clockMs = startMs;
  }

  /** Current model time in Unix milliseconds. */
  get clockMs(): number {
    return this.#clockMs;
  }

  /** Requests in the running batch. */
  get runningCount(): number {
    return this.#running.length;
  }

  /** Requests waiting to be scheduled, preempted ones included. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  /** Fraction (0-1) of KV-cache blocks held by running requests. */
  get kvCacheUsage(): number {
    return this.#usedBlocks / this.#config.kvCacheBlocks;
  }

  /**
   * Sets the mean arrival rate. A Poisson process is memoryless, so drawing
   * the next gap afresh from the current time keeps the arrivals Poisson
   * with a piecewise-constant rate.
   */
  setArrivalRate(requestsPerSecond: number): void {
    const rate = Math.max(0, requestsPerSecond);
    if (rate === this.#arrivalsPerSecond) {
      return;
    }
    this.#arrivalsPerSecond = rate;
    this.#nextArrivalMs = rate > 0
      ? this.#clockMs + this.#random.exponential(1000 / rate)
      : Infinity;
  }

  /**
   * Runs engine steps until the model clock reaches `targetMs`. The last
   * step may end a few milliseconds after `targetMs`; the clock then stays
   * there and the next call continues from it.
   */
  advanceTo(targetMs: number): void {
    while (this.#clockMs < targetMs) {
      this.#admitArrivals();
      if (this.#running.length === 0 && this.#waiting.length === 0) {
        this.#clockMs = Math.min(targetMs, this.#nextArrivalMs);
        continue;
      }
      this.#step();
    }
  }

  #admitArrivals(): void {
    while (this.#nextArrivalMs <= this.#clockMs) {
      this.#waiting.push(this.#createRequest(this.#nextArrivalMs));
      this.#nextArrivalMs += this.#random.exponential(
        1000 / this.#arrivalsPerSecond,
      );
    }
  }

  #createRequest(arrivalMs: number): SimulatedRequest {
    const random = this.#random;
    const config = this.#config;
    const cacheTokens = config.kvCacheBlocks * config.blockSize;
    const maxTokens = Math.min(
      random.weighted(MAX_TOKENS_CHOICES),
      Math.floor(cacheTokens / 4),
    );
    const prefixGroup = random.chance(0.7)
      ? random.integer(0, SYSTEM_PROMPT_TOKENS.length - 1)
      : -1;
    const systemTokens = SYSTEM_PROMPT_TOKENS[prefixGroup] ?? 0;
    const userTokens = Math.round(random.logNormal(600, 1.0));
    // The prompt must fit the context length and, with its output, half of
    // the KV cache, so that a request alone in the batch can always run.
    const maxPromptTokens = Math.max(
      8,
      Math.min(
        config.maxModelLen - maxTokens,
        Math.floor(cacheTokens / 2) - maxTokens,
      ),
    );
    const promptTokens = clamp(systemTokens + userTokens, 8, maxPromptTokens);
    const naturalOutput = Math.max(1, Math.round(random.logNormal(180, 0.9)));
    let finishReason: FinishReason = "stop";
    let targetOutputTokens = naturalOutput;
    if (naturalOutput >= maxTokens) {
      finishReason = "length";
      targetOutputTokens = maxTokens;
    }
    if (random.chance(config.abortProbability)) {
      finishReason = "abort";
      targetOutputTokens = random.integer(1, targetOutputTokens);
    }
    return {
      id: this.#nextRequestId++,
      route: random.chance(0.8) ? "/v1/chat/completions" : "/v1/completions",
      clientPort: random.integer(32768, 60999),
      streamed: random.chance(0.5),
      arrivalMs,
      promptTokens,
      maxTokens,
      targetOutputTokens,
      finishReason,
      cachedPromptTokens: 0,
      prefixGroup,
      firstScheduledMs: undefined,
      firstTokenMs: undefined,
      lastTokenMs: undefined,
      finishedMs: undefined,
      outputTokens: 0,
      prefillTargetTokens: promptTokens,
      prefilledTokens: 0,
      kvTokens: 0,
      blocks: 0,
      preemptions: 0,
    };
  }

  /** Runs one engine step: schedule decodes, prefill chunks and new requests, then book tokens. */
  #step(): void {
    let budget = this.#config.maxNumBatchedTokens;
    const decoding = this.#scheduleDecodes();
    budget -= decoding.length;

    const prefillChunks = new Map<SimulatedRequest, number>();
    for (const request of this.#running) {
      if (budget <= 0) {
        break;
      }
      if (request.prefilledTokens < request.prefillTargetTokens) {
        const chunk = this.#allocatePrefill(request, budget);
        if (chunk > 0) {
          prefillChunks.set(request, chunk);
          budget -= chunk;
        }
      }
    }
    budget = this.#scheduleWaiting(budget, prefillChunks);

    let prefillTokens = 0;
    for (const chunk of prefillChunks.values()) {
      prefillTokens += chunk;
    }
    if (decoding.length === 0 && prefillTokens === 0) {
      // Every running request is stuck in prefill without free blocks:
      // evict the newest so the others can continue next step.
      const victim = this.#running[this.#running.length - 1];
      if (victim !== undefined) {
        this.#preempt(victim);
      }
    }
    const config = this.#config;
    const stepMs = config.stepBaseMs +
      config.stepPerSequenceMs * decoding.length +
      config.stepPerPrefillTokenMs * prefillTokens;
    this.#clockMs += stepMs;
    this.#finishStep(decoding, prefillChunks);
  }

  /** Picks the running requests that decode this step, preempting the newest ones when blocks run out. */
  #scheduleDecodes(): SimulatedRequest[] {
    const decoding: SimulatedRequest[] = [];
    let index = 0;
    while (index < this.#running.length) {
      const request = this.#running[index]!;
      if (request.prefilledTokens < request.prefillTargetTokens) {
        index++;
        continue;
      }
      const neededBlocks = this.#blocksFor(request.kvTokens + 1) -
        request.blocks;
      let preemptedItself = false;
      // Victims come from the end of the batch, behind `index`, so no
      // request already picked for this step is evicted.
      while (neededBlocks > this.#freeBlocks() && !preemptedItself) {
        const victim = this.#running[this.#running.length - 1]!;
        this.#preempt(victim);
        preemptedItself = victim === request;
      }
      if (preemptedItself) {
        break;
      }
      this.#setBlocks(request, this.#blocksFor(request.kvTokens + 1));
      request.kvTokens += 1;
      decoding.push(request);
      index++;
    }
    return decoding;
  }

  #scheduleWaiting(
    initialBudget: number,
    prefillChunks: Map<SimulatedRequest, number>,
  ): number {
    let budget = initialBudget;
    const config = this.#config;
    while (
      budget > 0 && this.#waiting.length > 0 &&
      this.#running.length < config.maxNumSeqs
    ) {
      const request = this.#waiting[0]!;
      const firstTime = request.firstScheduledMs === undefined;
      const cached = firstTime
        ? this.#lookUpPrefixCache(request)
        : request.cachedPromptTokens;
      // Admit only when the whole prefill fits, keeping 1 % of the blocks
      // free for decoding, so admission does not immediately cause
      // preemption.
      const reserve = this.#running.length === 0
        ? 0
        : Math.ceil(config.kvCacheBlocks * 0.01);
      const neededBlocks = this.#blocksFor(request.prefillTargetTokens + 1);
      if (neededBlocks + reserve > this.#freeBlocks()) {
        break;
      }
      this.#waiting.shift();
      this.#running.push(request);
      if (firstTime) {
        request.firstScheduledMs = this.#clockMs;
        request.cachedPromptTokens = cached;
        request.prefilledTokens = cached;
        request.kvTokens = cached;
        this.#setBlocks(request, this.#blocksFor(cached));
        if (request.prefixGroup >= 0) {
          this.#warmPrefixGroups.add(request.prefixGroup);
        }
        this.#observer.requestScheduled(request);
      }
      const chunk = this.#allocatePrefill(request, budget);
      if (chunk > 0) {
        prefillChunks.set(request, chunk);
        budget -= chunk;
      }
    }
    return budget;
  }

  /** Returns the block-aligned prefix of the prompt that an earlier request with the same system prompt left in the cache. */
  #lookUpPrefixCache(request: SimulatedRequest): number {
    if (
      request.prefixGroup < 0 ||
      !this.#warmPrefixGroups.has(request.prefixGroup)
    ) {
      return 0;
    }
    const systemTokens = SYSTEM_PROMPT_TOKENS[request.prefixGroup] ?? 0;
    // The last prompt token is always computed, so at most promptTokens - 1
    // tokens can come from the cache.
    const reusable = Math.min(systemTokens, request.promptTokens - 1);
    const blockSize = this.#config.blockSize;
    return Math.floor(reusable / blockSize) * blockSize;
  }

  #allocatePrefill(request: SimulatedRequest, budget: number): number {
    const remaining = request.prefillTargetTokens - request.prefilledTokens;
    const freeTokens = this.#freeBlocks() * this.#config.blockSize +
      (request.blocks * this.#config.blockSize - request.kvTokens);
    const chunk = Math.min(remaining, budget, Math.max(0, freeTokens));
    if (chunk <= 0) {
      return 0;
    }
    request.kvTokens += chunk;
    this.#setBlocks(request, this.#blocksFor(request.kvTokens));
    return chunk;
  }

  #finishStep(
    decoding: SimulatedRequest[],
    prefillChunks: Map<SimulatedRequest, number>,
  ): void {
    const now = this.#clockMs;
    let promptTokens = 0;
    let generationTokens = 0;
    const produced: SimulatedRequest[] = [];

    for (const [request, chunk] of prefillChunks) {
      request.prefilledTokens += chunk;
      if (request.prefilledTokens < request.prefillTargetTokens) {
        continue;
      }
      if (request.firstTokenMs === undefined) {
        request.firstTokenMs = now;
        request.lastTokenMs = now;
        request.outputTokens = 1;
        promptTokens += request.promptTokens;
        generationTokens += 1;
        this.#observer.firstToken(request);
        produced.push(request);
      }
    }
    for (const request of decoding) {
      const interTokenSeconds = (now - (request.lastTokenMs ?? now)) / 1000;
      request.lastTokenMs = now;
      request.outputTokens += 1;
      generationTokens += 1;
      this.#observer.outputToken(request, interTokenSeconds);
      produced.push(request);
    }
    if (promptTokens + generationTokens > 0 || prefillChunks.size > 0) {
      this.#observer.stepFinished(promptTokens, generationTokens);
    }
    for (const request of produced) {
      if (request.outputTokens >= request.targetOutputTokens) {
        this.#finish(request);
      }
    }
  }

  #finish(request: SimulatedRequest): void {
    request.finishedMs = this.#clockMs;
    this.#removeRunning(request);
    this.#setBlocks(request, 0);
    this.#observer.requestFinished(request);
  }

  /** Evicts a running request; it recomputes its whole context when scheduled again. */
  #preempt(request: SimulatedRequest): void {
    this.#removeRunning(request);
    this.#setBlocks(request, 0);
    request.kvTokens = 0;
    request.prefilledTokens = 0;
    request.prefillTargetTokens = request.promptTokens +
      Math.max(0, request.outputTokens - 1);
    request.preemptions += 1;
    this.#waiting.unshift(request);
    this.#observer.requestPreempted(request);
  }

  #removeRunning(request: SimulatedRequest): void {
    const index = this.#running.indexOf(request);
    if (index >= 0) {
      this.#running.splice(index, 1);
    }
  }

  #setBlocks(request: SimulatedRequest, blocks: number): void {
    this.#usedBlocks += blocks - request.blocks;
    request.blocks = blocks;
  }

  #freeBlocks(): number {
    return this.#config.kvCacheBlocks - this.#usedBlocks;
  }

  #blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.#config.blockSize);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
