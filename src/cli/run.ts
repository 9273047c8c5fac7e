/**
 * The `run` command: one log follower and one scraper per container, until
 * SIGTERM or SIGINT, then everything held is written and the database closed.
 *
 * @module
 */
import { AlertEngine } from "../alerts/evaluator.ts";
import { loadRules } from "../alerts/rules.ts";
import type { LoggerConfig } from "../config/config.ts";
import { errorMessage, type Logger } from "../log.ts";
import { LogFollower } from "../logs/follower.ts";
import { Scraper } from "../metrics/scraper.ts";
import { type MetricsStore, openStore } from "../metrics/store.ts";

/** Time between runs of metrics retention after the one at start. */
const RETENTION_INTERVAL_MS = 3_600_000;

/** Time between checks that the database path still names the open file. */
const FILE_CHECK_INTERVAL_MS = 1000;

/** First delay before opening the database again; doubles up to the maximum. */
const OPEN_RETRY_INITIAL_MS = 1000;
const OPEN_RETRY_MAX_MS = 30_000;

/** Callbacks of {@linkcode StoreHandle}. */
export interface StoreHandleOptions {
  logger: Logger;
  /** Called after each open; an exception counts as a failed open. */
  onOpen?: (store: MetricsStore) => void;
  /** Called before the store is closed. */
  onClose?: (store: MetricsStore) => void;
}

/**
 * The daemon's metrics database, opened on first use and, after a failure
 * (a locked file, a read-only or missing directory), again with backoff
 * from 1 s doubling to 30 s, while the rest of the daemon goes on.
 *
 * When the file is deleted or replaced while open, SQLite would go on
 * writing into the unlinked file, whose contents are gone once it is
 * closed. So the handle checks the path at most once a second. When the
 * path no longer names the open file, the store is closed and a new
 * database is created at the path.
 *
 * A new file is created with mode 0640 (less the process umask); SQLite
 * gives its `-wal` and `-shm` files the same mode.
 */
export class StoreHandle {
  readonly path: string;
  readonly #options: StoreHandleOptions;
  #store: MetricsStore | null = null;
  /** Device and inode of the open file, as `dev:ino`. */
  #identity: string | null = null;
  #checkedMs = -Infinity;
  #retryAtMs = -Infinity;
  #retryMs = OPEN_RETRY_INITIAL_MS;
  #failures = 0;
  #closed = false;

  constructor(path: string, options: StoreHandleOptions) {
    this.path = path;
    this.#options = options;
  }

  /** Returns the open store, opening it when due; null while it cannot be opened. */
  current(): MetricsStore | null {
    if (this.#closed) return null;
    const nowMs = performance.now();
    if (this.#store !== null) {
      if (nowMs - this.#checkedMs < FILE_CHECK_INTERVAL_MS) return this.#store;
      this.#checkedMs = nowMs;
      const identity = fileIdentity(this.path);
      // undefined: the path could not be checked (not that it is gone).
      if (identity === undefined || identity === this.#identity) {
        return this.#store;
      }
      this.#options.logger.error(
        "Metrics database file was deleted or replaced; creating a new one at its path",
        { db: this.path },
      );
      this.#closeStore();
    }
    if (nowMs < this.#retryAtMs) return null;
    try {
      this.#open();
    } catch (error) {
      this.#failures++;
      if (this.#failures === 1 || this.#failures % 10 === 0) {
        this.#options.logger.error(
          "Opening the metrics database failed; scrapes are held in memory until it opens",
          {
            db: this.path,
            err: errorMessage(error),
            retry_in_ms: this.#retryMs,
            attempts: this.#failures,
          },
        );
      }
      this.#retryAtMs = nowMs + this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, OPEN_RETRY_MAX_MS);
      return null;
    }
    if (this.#failures > 0) {
      this.#options.logger.info("Metrics database opened", {
        db: this.path,
        attempts: this.#failures + 1,
      });
    }
    this.#failures = 0;
    this.#retryMs = OPEN_RETRY_INITIAL_MS;
    this.#checkedMs = nowMs;
    return this.#store;
  }

  /** Closes the store; {@linkcode current} returns null afterwards. */
  close(): void {
    this.#closed = true;
    this.#closeStore();
  }

  #open(): void {
    try {
      // Created here rather than by SQLite, which would use mode 0644.
      Deno.openSync(this.path, { write: true, createNew: true, mode: 0o640 })
        .close();
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const logger = this.#options.logger;
    const store = openStore(this.path, {
      onCompactionError: (error) =>
        logger.warn(
          "Compacting samples failed; retrying at the next compaction",
          {
            db: this.path,
            err: errorMessage(error),
          },
        ),
    });
    try {
      this.#options.onOpen?.(store);
    } catch (error) {
      store.close();
      throw error;
    }
    this.#store = store;
    this.#identity = fileIdentity(this.path) ?? null;
  }

  #closeStore(): void {
    const store = this.#store;
    if (store === null) return;
    this.#store = null;
    this.#identity = null;
    try {
      this.#options.onClose?.(store);
    } finally {
      store.close();
    }
  }
}

/**
 * Returns `dev:ino` of the file at `path`, null when there is none, or
 * undefined when it cannot be checked.
 */
function fileIdentity(path: string): string | null | undefined {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? null : undefined;
  }
}

async function deleteExpiredSamples(
  handle: StoreHandle,
  retentionDays: number,
  logger: Logger,
): Promise<void> {
  const store = handle.current();
  if (store === null) return;
  try {
    const deleted = await store.deleteBefore(
      Date.now() - retentionDays * 86_400_000,
    );
    if (deleted > 0) {
      logger.info("Deleted samples past retention", {
        samples: deleted,
        retention_days: retentionDays,
      });
    }
  } catch (error) {
    logger.warn("Metrics retention failed; retrying in an hour", {
      err: errorMessage(error),
    });
  }
}

/** Options of {@linkcode runDaemon}. */
export interface RunOptions {
  logger: Logger;
  /** Stops the daemon when aborted; the command wires SIGTERM and SIGINT to it. */
  signal: AbortSignal;
}

/** Runs followers and scrapers until `signal` aborts, then shuts them down cleanly. */
export async function runDaemon(
  config: LoggerConfig,
  options: RunOptions,
): Promise<void> {
  const { logger, signal } = options;
  // An invalid rules file stops start-up before anything is written.
  const rules = config.alertsFile === null
    ? null
    : await loadRules(config.alertsFile);
  const outputDir = config.outputDir;
  // Rebuilt each time the database is opened, since it keeps its state there.
  let alerts: AlertEngine | null = null;
  const store = config.dbPath === null ? null : new StoreHandle(config.dbPath, {
    logger,
    onOpen: (opened) => {
      if (rules === null || outputDir === null) return;
      alerts = AlertEngine.open({
        rules,
        store: opened,
        logger,
        alertLogPath: `${outputDir}/alerts.log`,
      });
    },
    onClose: () => alerts = null,
  });

  const followers: LogFollower[] = [];
  const scrapers: Scraper[] = [];
  for (const container of config.containers) {
    if (container.logDir !== null) {
      followers.push(
        new LogFollower({
          container: container.name,
          command: container.logsCommand,
          logDir: container.logDir,
          logger,
          maintenance: {
            compression: config.compression,
            compressAfterDays: config.compressAfterDays,
            retentionDays: config.retentionDays,
          },
        }),
      );
    }
    if (container.metricsEndpoint !== null && store !== null) {
      scrapers.push(
        new Scraper({
          container: container.name,
          url: container.metricsEndpoint,
          intervalMs: config.intervalMs,
          timeoutMs: config.timeoutMs,
          store: () => store.current(),
          logger,
          onStored: (id, health, samples) =>
            alerts?.onScrape(id, health, samples),
        }),
      );
    }
  }

  logger.info("Logger started", {
    containers: config.containers.map((c) => c.name).join(","),
    db: config.dbPath,
    interval_seconds: config.intervalMs / 1000,
  });
  for (const follower of followers) await follower.start();
  // Opened here so that a database that opens at once does so before the
  // first scrape; a failure is logged and retried by the scrapers.
  store?.current();
  for (const scraper of scrapers) scraper.start();
  let retention: Promise<void> = Promise.resolve();
  const retentionTimer = store === null ? undefined : setInterval(() => {
    retention = retention.then(() =>
      deleteExpiredSamples(store!, config.metricsRetentionDays, logger)
    );
  }, RETENTION_INTERVAL_MS);
  if (store !== null) {
    retention = deleteExpiredSamples(
      store,
      config.metricsRetentionDays,
      logger,
    );
  }

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });

  logger.info("Stopping: writing what is held");
  clearInterval(retentionTimer);
  await retention;
  const results = await Promise.allSettled([
    ...followers.map((follower) => follower.stop()),
    ...scrapers.map((scraper) => scraper.stop()),
  ]);
  for (const result of results) {
    if (result.status === "rejected") {
      logger.error("Shutdown step failed", {
        err: errorMessage(result.reason),
      });
    }
  }
  store?.close();
  logger.info("Logger stopped");
}
