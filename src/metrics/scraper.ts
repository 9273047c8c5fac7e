/**
 * The scrape loop of one container: GET the endpoint every interval, parse
 * the body, store it in one transaction, and record health (`up`, duration,
 * samples, parse errors) for failed scrapes too.
 *
 * @module
 */
import { errorMessage, type Logger } from "../log.ts";
import { parseExposition, SCRAPE_ACCEPT_HEADER } from "./exposition/parse.ts";
import type { ParsedExposition } from "./exposition/types.ts";
import { isBusyError, type MetricsStore, type ScrapeHealth } from "./store.ts";
import type { Sample } from "./exposition/types.ts";

/** Largest body accepted from an endpoint; vLLM's page is about 60 KiB. */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** Scrapes kept in memory while the database cannot be written. */
const MAX_PENDING_WRITES = 720;

/** Why a scrape failed, in a small fixed set for logs and tests. */
export type ScrapeErrorKind =
  | "http_status"
  | "timeout"
  | "connection"
  | "body_too_large"
  | "decode"
  | "content_type";

/** A scrape that failed as a whole: nothing of it is stored. */
export class ScrapeError extends Error {
  readonly kind: ScrapeErrorKind;

  constructor(kind: ScrapeErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ScrapeError";
    this.kind = kind;
  }
}

/** A body that arrived whole, with its media type. */
export interface FetchedBody {
  text: string;
  contentType: string | null;
}

async function readLimited(
  response: Response,
  maxBytes: number,
): Promise<Uint8Array> {
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (length > maxBytes) {
    await response.body?.cancel();
    throw new ScrapeError(
      "body_too_large",
      `body of ${length} bytes exceeds the limit of ${maxBytes} bytes`,
    );
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body === null) return new Uint8Array();
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      throw new ScrapeError(
        "body_too_large",
        `body exceeds the limit of ${maxBytes} bytes`,
      );
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/**
 * Fetches one exposition body. `Content-Encoding: gzip` is decoded by fetch.
 *
 * @throws {ScrapeError} when the response is not 200, times out, is cut
 * short, is too large, is not UTF-8 or is HTML
 */
export async function fetchExposition(
  url: string,
  timeoutMs: number,
  maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES,
  cancel?: AbortSignal,
): Promise<FetchedBody> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = cancel === undefined
    ? timeout
    : AbortSignal.any([timeout, cancel]);
  try {
    const response = await fetch(url, {
      headers: { Accept: SCRAPE_ACCEPT_HEADER },
      signal,
      redirect: "error",
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new ScrapeError(
        "http_status",
        `HTTP status ${response.status}, expected 200`,
      );
    }
    const contentType = response.headers.get("content-type");
    if (contentType !== null && /^\s*text\/html/i.test(contentType)) {
      await response.body?.cancel();
      throw new ScrapeError(
        "content_type",
        `content type "${contentType}" is not a metrics format`,
      );
    }
    const bytes = await readLimited(response, maxBodyBytes);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (error) {
      throw new ScrapeError(
        "decode",
        "body is not valid UTF-8 (compressed without Content-Encoding?)",
        { cause: error },
      );
    }
    return { text, contentType };
  } catch (error) {
    if (error instanceof ScrapeError) throw error;
    if (timeout.aborted) {
      throw new ScrapeError(
        "timeout",
        `no complete response within ${timeoutMs} ms`,
        { cause: error },
      );
    }
    throw new ScrapeError("connection", errorMessage(error), { cause: error });
  }
}

/** Options of {@linkcode Scraper}. */
export interface ScraperOptions {
  container: string;
  url: string;
  intervalMs: number;
  timeoutMs: number;
  store: MetricsStore;
  logger: Logger;
  /** Largest accepted body. @default DEFAULT_MAX_BODY_BYTES */
  maxBodyBytes?: number;
  /** Clock, injectable for tests. @default Date.now */
  nowMs?: () => number;
  /** Called after each scrape is stored, with its id and samples. */
  onStored?: (
    scrapeId: number,
    health: ScrapeHealth,
    samples: readonly Sample[],
  ) => void;
}

interface PendingWrite {
  health: ScrapeHealth;
  samples: readonly Sample[];
}

/** Scrapes one endpoint on a fixed schedule until stopped. */
export class Scraper {
  readonly #options: ScraperOptions;
  readonly #log: Logger;
  readonly #nowMs: () => number;
  readonly #pending: PendingWrite[] = [];
  #stopped = false;
  readonly #cancel = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #lastFailure: string | null = null;
  #storeFailing = false;
  #lostScrapes = 0;

  constructor(options: ScraperOptions) {
    this.#options = options;
    this.#log = options.logger.child({
      container: options.container,
      endpoint: options.url,
    });
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Starts the loop; the first scrape happens at once. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops after the scrape in progress, then tries once more to store what is pending. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel.abort();
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
    this.#flushPending();
    if (this.#pending.length > 0) {
      this.#log.error(
        "Scrapes lost at shutdown: the database could not be written",
        {
          lost_scrapes: this.#pending.length,
        },
      );
    }
  }

  /** Runs one scrape and stores it (or its failure); used by the loop and by tests. */
  async scrapeOnce(): Promise<void> {
    const { container, url, timeoutMs } = this.#options;
    const startedMs = this.#nowMs();
    const startedClock = performance.now();
    let parsed: ParsedExposition | null = null;
    let failure: string | null = null;
    try {
      const body = await fetchExposition(
        url,
        timeoutMs,
        this.#options.maxBodyBytes,
        this.#cancel.signal,
      );
      parsed = parseExposition(body.text, body.contentType);
    } catch (error) {
      failure = errorMessage(error);
    }
    // A scrape cut short by shutdown says nothing about the endpoint.
    if (this.#cancel.signal.aborted) return;
    const durationSeconds = (performance.now() - startedClock) / 1000;
    const health: ScrapeHealth = {
      container,
      timestampMs: startedMs,
      durationSeconds,
      up: parsed !== null,
      samplesScraped: parsed?.samples.length ?? 0,
      parseErrors: parsed?.errors.length ?? 0,
      duplicateSamples: parsed?.duplicateSamples ?? 0,
      error: failure,
    };
    this.#reportOutcome(health, parsed);
    this.#pending.push({ health, samples: parsed?.samples ?? [] });
    if (this.#pending.length > MAX_PENDING_WRITES) {
      this.#pending.shift();
      this.#lostScrapes++;
    }
    this.#flushPending();
  }

  async #run(): Promise<void> {
    const { intervalMs } = this.#options;
    let next = performance.now();
    while (!this.#stopped) {
      await this.scrapeOnce();
      // Keep a fixed schedule; a scrape that overran skips the ticks it missed.
      next += intervalMs;
      const now = performance.now();
      if (next < now) next += Math.ceil((now - next) / intervalMs) * intervalMs;
      if (this.#stopped) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, next - now);
      });
      this.#wake = null;
    }
  }

  #reportOutcome(health: ScrapeHealth, parsed: ParsedExposition | null): void {
    if (!health.up) {
      // One line per failure episode, not per scrape: `up` records each one.
      if (this.#lastFailure !== health.error) {
        this.#log.warn("Scrape failed", { err: health.error });
      }
      this.#lastFailure = health.error;
      return;
    }
    if (this.#lastFailure !== null) {
      this.#log.info("Scrape recovered");
      this.#lastFailure = null;
    }
    const firstError = parsed?.errors[0];
    if (firstError !== undefined) {
      this.#log.debug("Malformed lines skipped", {
        parse_errors: parsed!.errors.length,
        first_line: firstError.line,
        first_error: firstError.message,
      });
    }
  }

  #flushPending(): void {
    while (this.#pending.length > 0) {
      const write = this.#pending[0]!;
      try {
        const id = this.#options.store.writeScrape(write.health, write.samples);
        this.#pending.shift();
        this.#options.onStored?.(id, write.health, write.samples);
      } catch (error) {
        if (!this.#storeFailing) {
          const message = isBusyError(error)
            ? "Database busy; keeping scrapes in memory and retrying"
            : "Database write failed; keeping scrapes in memory and retrying";
          this.#log.error(message, {
            err: errorMessage(error),
            pending_scrapes: this.#pending.length,
          });
        }
        this.#storeFailing = true;
        return;
      }
    }
    if (this.#storeFailing) {
      this.#log.info("Database writes resumed", {
        lost_scrapes: this.#lostScrapes,
      });
      this.#storeFailing = false;
      this.#lostScrapes = 0;
    }
  }
}
