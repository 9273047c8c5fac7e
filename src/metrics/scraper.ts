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

/**
 * Largest body accepted from an endpoint. vLLM's page is about 50 KiB per
 * engine. Parsing a body takes about three times its size in memory, so
 * this limit also bounds the memory of one scrape.
 */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Scrapes kept in memory while the database cannot be written. */
const MAX_PENDING_WRITES = 720;

/**
 * Samples kept in memory while the database cannot be written (one held
 * sample takes about 300 bytes, so about 75 MB). Beyond either limit the
 * oldest held scrapes are dropped.
 */
const MAX_PENDING_SAMPLES = 250_000;

/** While scrapes keep failing, the failure is logged again this often. */
const FAILURE_REMINDER_MS = 600_000;

/** Kind of scrape failure, from a small fixed set for logs and tests. */
export type ScrapeErrorKind =
  | "http_status"
  | "timeout"
  | "connection"
  | "body_incomplete"
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

/**
 * Start of an HTML document. No line of the text format or of OpenMetrics
 * starts with `<`.
 */
const HTML_START = /^\s*<(?:!doctype|html|head|body|\?xml)/i;

/** A body that arrived whole, with its media type. */
export interface FetchedBody {
  text: string;
  contentType: string | null;
}

async function readLimited(
  response: Response,
  maxBytes: number,
  signal: AbortSignal,
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
  try {
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
  } catch (error) {
    if (error instanceof ScrapeError || signal.aborted) throw error;
    throw new ScrapeError(
      "body_incomplete",
      `connection closed before the whole body arrived (${total} bytes read): ${
        errorMessage(error)
      }`,
      { cause: error },
    );
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
 * @throws {ScrapeError} when the connection fails, or the response is not
 * 200, times out, is cut short, is too large, is not UTF-8 or is HTML
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
        `content type "${contentType}" is HTML, not a metrics format`,
      );
    }
    const bytes = await readLimited(response, maxBodyBytes, signal);
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
    // An error page of a proxy or of the server, whatever its Content-Type.
    if (HTML_START.test(text.slice(0, 1024))) {
      throw new ScrapeError(
        "content_type",
        `body is an HTML page, not a metrics format (content type ${
          contentType === null ? "missing" : `"${contentType}"`
        })`,
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
    throw new ScrapeError(
      "connection",
      `connection failed: ${errorMessage(error)}`,
      { cause: error },
    );
  }
}

/** Options of {@linkcode Scraper}. */
export interface ScraperOptions {
  container: string;
  url: string;
  intervalMs: number;
  timeoutMs: number;
  /**
   * Database the scrapes are written to, or a function that returns it or
   * null while it is not open. Scrapes are held in memory meanwhile.
   */
  store: MetricsStore | (() => MetricsStore | null);
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
  /** The failure episode in progress, or null while scrapes succeed. */
  #failure: {
    scrapes: number;
    startedMs: number;
    loggedMs: number;
  } | null = null;
  #pendingSamples = 0;
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
    // A scrape cut short by shutdown is no fault of the endpoint, so it is not recorded.
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
    this.#pendingSamples += health.samplesScraped;
    this.#flushPending();
    this.#dropBeyondLimits();
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

  /**
   * Logs one line when a failure episode starts, a reminder every
   * {@linkcode FAILURE_REMINDER_MS} while it lasts, and one line when a
   * scrape succeeds again. The `scrapes` table records every failed scrape.
   */
  #reportOutcome(health: ScrapeHealth, parsed: ParsedExposition | null): void {
    const nowMs = performance.now();
    if (!health.up) {
      if (this.#failure === null) {
        this.#failure = { scrapes: 1, startedMs: nowMs, loggedMs: nowMs };
        this.#log.warn("Scrape failed", { err: health.error });
        return;
      }
      this.#failure.scrapes++;
      if (nowMs - this.#failure.loggedMs >= FAILURE_REMINDER_MS) {
        this.#failure.loggedMs = nowMs;
        this.#log.warn("Scrape still failing", {
          err: health.error,
          failed_scrapes: this.#failure.scrapes,
        });
      }
      return;
    }
    if (this.#failure !== null) {
      this.#log.info("Scrape recovered", {
        failed_scrapes: this.#failure.scrapes,
        down_seconds: Math.round((nowMs - this.#failure.startedMs) / 1000),
      });
      this.#failure = null;
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

  /** Drops the oldest scrapes held beyond the memory limits, keeping the newest. */
  #dropBeyondLimits(): void {
    while (
      this.#pending.length > 1 &&
      (this.#pending.length > MAX_PENDING_WRITES ||
        this.#pendingSamples > MAX_PENDING_SAMPLES)
    ) {
      const dropped = this.#pending.shift()!;
      this.#pendingSamples -= dropped.samples.length;
      if (this.#lostScrapes === 0) {
        this.#log.error(
          "Database unavailable too long; dropping the oldest scrapes held in memory",
          {
            held_scrapes: this.#pending.length,
            held_samples: this.#pendingSamples,
          },
        );
      }
      this.#lostScrapes++;
    }
  }

  #flushPending(): void {
    while (this.#pending.length > 0) {
      const write = this.#pending[0]!;
      const option = this.#options.store;
      const store = typeof option === "function" ? option() : option;
      if (store === null) {
        // The owner of the database logs why it is not open.
        this.#storeFailing = true;
        return;
      }
      let id: number;
      try {
        id = store.writeScrape(write.health, write.samples);
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
      this.#pending.shift();
      this.#pendingSamples -= write.samples.length;
      try {
        this.#options.onStored?.(id, write.health, write.samples);
      } catch (error) {
        this.#log.error("Processing a stored scrape failed", {
          err: errorMessage(error),
          scrape_id: id,
        });
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
