/**
 * SQLite storage of scrapes: a `scrapes` table (one row per scrape, with its
 * health), a `series` table (one row per container, name and label set) and
 * two sample tables. The `metrics` view joins them back into the plain
 * columns `timestamp` (Unix milliseconds), `container`, `metric_name`,
 * `value` and `labels` (JSON text), one row per stored sample.
 *
 * A scrape's samples first go to `recent_samples`, keyed by scrape, so a
 * write appends to the last pages of the table. Compaction later moves them
 * to `sample_runs`, keyed by series, where one row stores a value that
 * stayed the same over consecutive successful scrapes of the series'
 * container. Reads of one series then touch few pages, and a value that
 * does not change (a `_created` stamp, an unused bucket, an idle server)
 * costs one row per run instead of one per scrape.
 *
 * NaN samples are stored as SQL NULL: SQLite turns a NaN bound to a REAL
 * column into NULL anyway, and a sample always has a value, so NULL in
 * `value` means exactly "the endpoint reported NaN". `+Inf` and `-Inf` are
 * stored as themselves.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Sample } from "./exposition/types.ts";

/** Version of the schema below, kept in `PRAGMA user_version`. */
export const SCHEMA_VERSION = 2;

/**
 * Longest span of scrape ids one run may cover. The views join a scrape to
 * its run with `r.scrape_id > sc.id - MAX_RUN_SPAN_IDS`, which lets SQLite
 * find the run by a short primary-key range instead of scanning every
 * earlier run of the series; a query over the last hour of a month-old file
 * took 32 s without it. The cost is one row per 1,024 ids for a constant
 * series.
 */
export const MAX_RUN_SPAN_IDS = 1024;

const SCRAPES_AND_SERIES = `
CREATE TABLE IF NOT EXISTS scrapes (
  id INTEGER PRIMARY KEY,            -- increases in scrape order, even if the clock steps back
  container TEXT NOT NULL,
  timestamp INTEGER NOT NULL,        -- Unix milliseconds, wall clock at scrape start
  duration_seconds REAL NOT NULL,
  up INTEGER NOT NULL,               -- 1 when the scrape was stored, 0 when it failed
  samples_scraped INTEGER NOT NULL,
  parse_errors INTEGER NOT NULL,
  duplicate_samples INTEGER NOT NULL,
  error TEXT                         -- why the scrape failed, NULL when up = 1
);
CREATE INDEX IF NOT EXISTS scrapes_by_container_time ON scrapes (container, timestamp);
CREATE TABLE IF NOT EXISTS series (
  id INTEGER PRIMARY KEY,
  container TEXT NOT NULL,
  metric_name TEXT NOT NULL,
  labels TEXT NOT NULL,              -- JSON object, keys sorted
  family TEXT NOT NULL,
  metric_type TEXT NOT NULL,
  UNIQUE (container, metric_name, labels)
);
`;

const SAMPLE_TABLES = `
-- Samples not compacted yet, one row each.
CREATE TABLE recent_samples (
  scrape_id INTEGER NOT NULL,
  series_id INTEGER NOT NULL,
  value REAL,                        -- NULL means the endpoint reported NaN
  PRIMARY KEY (scrape_id, series_id)
) WITHOUT ROWID;
-- Compacted samples: the series had \`value\` in every successful scrape of
-- its container with an id from scrape_id to scrape_id + last_scrape_offset.
CREATE TABLE sample_runs (
  series_id INTEGER NOT NULL,
  scrape_id INTEGER NOT NULL,        -- first scrape of the run
  last_scrape_offset INTEGER NOT NULL, -- id of the run's last scrape minus scrape_id
  value REAL,                        -- NULL means the endpoint reported NaN
  PRIMARY KEY (series_id, scrape_id)
) WITHOUT ROWID;
`;

const VIEWS = `
-- One row per stored sample, by series and scrape: the table of schema
-- version 1, kept as a view for queries written against it.
CREATE VIEW samples AS
  SELECT r.series_id AS series_id, sc.id AS scrape_id, r.value AS value
  FROM sample_runs r
  JOIN series se ON se.id = r.series_id
  JOIN scrapes sc ON sc.id BETWEEN r.scrape_id AND r.scrape_id + r.last_scrape_offset
                 AND r.scrape_id > sc.id - ${MAX_RUN_SPAN_IDS}
                 AND sc.container = se.container AND sc.up = 1
  UNION ALL
  SELECT series_id, scrape_id, value FROM recent_samples;
-- The same rows by container, metric name and labels. Both branches are
-- spelled out, so that SQLite can push a filter on the series into each.
CREATE VIEW metrics AS
  SELECT sc.timestamp AS timestamp, se.container AS container,
         se.metric_name AS metric_name, r.value AS value, se.labels AS labels
  FROM sample_runs r
  JOIN series se ON se.id = r.series_id
  JOIN scrapes sc ON sc.id BETWEEN r.scrape_id AND r.scrape_id + r.last_scrape_offset
                 AND r.scrape_id > sc.id - ${MAX_RUN_SPAN_IDS}
                 AND sc.container = se.container AND sc.up = 1
  UNION ALL
  SELECT sc.timestamp, se.container, se.metric_name, rs.value, se.labels
  FROM recent_samples rs
  JOIN series se ON se.id = rs.series_id
  JOIN scrapes sc ON sc.id = rs.scrape_id;
`;

/**
 * Schema version 1 kept every sample in `samples`, keyed by series. Its rows
 * become recent samples, which compaction then turns into runs.
 */
const MIGRATE_V1_TO_V2 = `
DROP VIEW IF EXISTS metrics;
${SAMPLE_TABLES}
INSERT INTO recent_samples (scrape_id, series_id, value)
  SELECT scrape_id, series_id, value FROM samples ORDER BY scrape_id, series_id;
DROP TABLE samples;
${VIEWS}
`;

/**
 * Compaction starts once a store has written this many rows since its last
 * compaction, or 64 scrapes' worth when scrapes are larger, so each series
 * gains many samples per compaction and its last page is rewritten rarely.
 */
const COMPACTION_MIN_ROWS = 20_000;
const COMPACTION_SCRAPES = 64;
/** Rows of `recent_samples` one compaction step reads; bounds its memory. */
const COMPACTION_SCAN_ROWS = 200_000;
/**
 * Rows moved per compaction transaction. The transaction blocks the event
 * loop and holds the write lock, so it is kept to about 20 ms (measured on
 * the benchmark machine of docs/benchmarks.md).
 */
const COMPACTION_TRANSACTION_ROWS = 5_000;
/**
 * How long a compaction transaction waits for the write lock before it
 * gives the event loop back and tries again, in milliseconds, and how many
 * times it tries before the compaction gives up until the next writes.
 */
const COMPACTION_LOCK_WAIT_MS = 5;
const COMPACTION_LOCK_TRIES = 400;
/** Shortest pause between two compaction transactions, in milliseconds. */
const COMPACTION_MIN_PAUSE_MS = 10;

/** Scrape health, stored for failed scrapes too. */
export interface ScrapeHealth {
  container: string;
  /** Wall clock at scrape start, Unix milliseconds. */
  timestampMs: number;
  durationSeconds: number;
  up: boolean;
  samplesScraped: number;
  parseErrors: number;
  duplicateSamples: number;
  error: string | null;
}

/** Options of {@linkcode openStore}. */
export interface StoreOptions {
  /** Open without creating or migrating; fails when the file is missing. */
  readOnly?: boolean;
  /** How long one statement waits for another process's lock. @default 250 */
  busyTimeoutMs?: number;
  /**
   * Compact in the background after writes. Tests and the benchmark turn
   * it off to call {@linkcode MetricsStore.compact} themselves.
   * @default true
   */
  autoCompact?: boolean;
  /**
   * Called when a background compaction fails for another reason than a
   * busy database (which is retried after the next writes). The samples
   * stay readable in `recent_samples` either way.
   */
  onCompactionError?: (error: unknown) => void;
}

/** Serialises labels with sorted keys, so equal label sets give equal text. */
export function canonicalLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  const sorted: Record<string, string> = {};
  for (const key of keys) sorted[key] = labels[key] as string;
  return JSON.stringify(sorted);
}

/**
 * Rolls back the open transaction, if any. SQLite may already have rolled
 * it back itself after SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM, and a
 * second ROLLBACK would throw and hide the first error.
 */
function rollback(db: DatabaseSync): void {
  if (db.isTransaction) db.exec("ROLLBACK");
}

/** True when an error from node:sqlite means another connection holds the lock. */
export function isBusyError(error: unknown): boolean {
  return error instanceof Error &&
    /database is (locked|busy)|SQLITE_BUSY/i.test(error.message);
}

/**
 * Makes `statement` return each row as an array of column values, which
 * saves building an object per row on large reads.
 *
 * `StatementSync.setReturnArrays` exists at run time in Deno 2.9 (Node's
 * API since 24.0) but not in the bundled `node:sqlite` type declarations.
 */
export function returnArrays(statement: StatementSync): StatementSync {
  (statement as StatementSync & {
    setReturnArrays(enabled: boolean): void;
  }).setReturnArrays(true);
  return statement;
}

/** A run of equal values in consecutive successful scrapes of one series. */
interface Run {
  firstId: number;
  lastId: number;
  value: number | null;
}

/** Writes scrapes into one SQLite file; several processes may share it. */
export class MetricsStore {
  readonly db: DatabaseSync;
  readonly #seriesIds = new Map<string, number>();
  readonly #seriesContainers = new Map<number, string>();
  readonly #autoCompact: boolean;
  readonly #busyTimeoutMs: number;
  readonly #onCompactionError: ((error: unknown) => void) | undefined;
  #statements: Record<string, StatementSync> | null = null;
  #rowsSinceCompaction = 0;
  #compaction: Promise<void> | null = null;
  #compactionTimer: ReturnType<typeof setTimeout> | undefined;
  #pauseTimer: ReturnType<typeof setTimeout> | undefined;
  #endPause: (() => void) | null = null;
  #closed = false;

  constructor(
    db: DatabaseSync,
    options: Pick<
      StoreOptions,
      "autoCompact" | "busyTimeoutMs" | "onCompactionError"
    > = {},
  ) {
    this.db = db;
    this.#autoCompact = options.autoCompact ?? true;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 250;
    this.#onCompactionError = options.onCompactionError;
  }

  /**
   * Stores one scrape in one transaction: a reader sees all of it or none.
   * Returns the scrape's id. May start a background compaction afterwards.
   *
   * @throws the SQLite error; nothing of the scrape is stored then
   */
  writeScrape(health: ScrapeHealth, samples: readonly Sample[]): number {
    const statements = this.#prepare();
    this.db.exec("BEGIN IMMEDIATE");
    let scrapeId: number;
    try {
      const result = statements.insertScrape!.run(
        health.container,
        health.timestampMs,
        health.durationSeconds,
        health.up ? 1 : 0,
        health.samplesScraped,
        health.parseErrors,
        health.duplicateSamples,
        health.error,
      );
      scrapeId = Number(result.lastInsertRowid);
      const insertSample = statements.insertSample!;
      for (const sample of samples) {
        const seriesId = this.#seriesId(health.container, sample);
        const value = Number.isNaN(sample.value) ? null : sample.value;
        insertSample.run(scrapeId, seriesId, value);
      }
      this.db.exec("COMMIT");
    } catch (error) {
      // Series ids created inside the rolled-back transaction no longer
      // exist, and SQLite may hand them to other series later.
      this.#seriesIds.clear();
      this.#seriesContainers.clear();
      rollback(this.db);
      throw error;
    }
    this.#rowsSinceCompaction += samples.length;
    const threshold = Math.max(
      COMPACTION_MIN_ROWS,
      COMPACTION_SCRAPES * samples.length,
    );
    if (this.#autoCompact && this.#rowsSinceCompaction >= threshold) {
      this.#scheduleCompaction();
    }
    return scrapeId;
  }

  /**
   * Moves the samples in `recent_samples` (those of scrapes stored before
   * the call) into `sample_runs`, a bounded number of rows per transaction,
   * yielding to other writers between transactions. Returns the number of
   * samples moved.
   *
   * Several processes may compact at once: each transaction re-reads what
   * is left, so a sample is moved exactly once.
   *
   * @throws the SQLite error of the failed transaction, which is rolled
   * back; samples moved by earlier transactions stay moved
   */
  async compact(
    transactionRows: number = COMPACTION_TRANSACTION_ROWS,
  ): Promise<number> {
    this.#rowsSinceCompaction = 0;
    const statements = this.#prepare();
    const { high: last } = statements.recentBounds!.get() as {
      high: number | null;
    };
    let moved = 0;
    while (last !== null && !this.#closed) {
      const { low } = statements.recentBounds!.get() as { low: number | null };
      if (low === null || low > last) break;
      // Each step reads about COMPACTION_SCAN_ROWS rows, whole scrapes.
      const offsetRow = statements.recentOffset!.get(COMPACTION_SCAN_ROWS) as
        | { scrape_id: number }
        | undefined;
      const high = offsetRow === undefined
        ? last
        : Math.min(last, Math.max(low, offsetRow.scrape_id - 1));
      const counts = statements.recentSeriesCounts!.all(low, high) as {
        series_id: number;
        row_count: number;
      }[];
      let batchStart = 0;
      while (batchStart < counts.length && !this.#closed) {
        let rows = 0;
        let batchEnd = batchStart;
        while (
          batchEnd < counts.length &&
          (batchEnd === batchStart ||
            rows + counts[batchEnd]!.row_count <= transactionRows)
        ) {
          rows += counts[batchEnd]!.row_count;
          batchEnd++;
        }
        const started = performance.now();
        moved += await this.#compactBatchWhenFree(
          low,
          high,
          counts[batchStart]!.series_id,
          counts[batchEnd - 1]!.series_id,
        );
        batchStart = batchEnd;
        // Leave the write lock free three times as long as it was held. A
        // writer waiting in SQLite's busy handler sleeps up to 50 ms between
        // tries, and a short gap would let it miss the lock until its busy
        // timeout ran out.
        await this.#pause(
          Math.max(
            COMPACTION_MIN_PAUSE_MS,
            3 * (performance.now() - started),
          ),
        );
      }
    }
    return moved;
  }

  /**
   * Deletes scrapes that started before `cutoffMs` and their samples, a few
   * series per transaction with pauses between, so a concurrent scrape waits
   * for one short transaction at most. Returns the number of samples
   * deleted, counted from the deleted scrapes.
   */
  async deleteBefore(cutoffMs: number, seriesPerBatch = 50): Promise<number> {
    const row = this.db.prepare(
      "SELECT max(id) AS id FROM scrapes WHERE timestamp < ?",
    ).get(cutoffMs) as {
      id: number | null;
    };
    if (row.id === null) return 0;
    const lastId = row.id;
    const seriesIds =
      (this.db.prepare("SELECT id FROM series").all() as { id: number }[]).map((
        r,
      ) => r.id);
    // A run that started before the cutoff and ends after it stays: the
    // view and the readers only expand it over scrapes that still exist.
    const deleteRuns = this.db.prepare(
      `DELETE FROM sample_runs
       WHERE series_id = ?1 AND scrape_id <= ?2 AND scrape_id + last_scrape_offset <= ?2`,
    );
    for (let start = 0; start < seriesIds.length; start += seriesPerBatch) {
      const started = performance.now();
      this.db.exec("BEGIN IMMEDIATE");
      try {
        for (const id of seriesIds.slice(start, start + seriesPerBatch)) {
          deleteRuns.run(id, lastId);
        }
        this.db.exec("COMMIT");
      } catch (error) {
        rollback(this.db);
        throw error;
      }
      // Leave the write lock free for a while, as compaction does.
      await this.#pause(
        Math.max(COMPACTION_MIN_PAUSE_MS, 3 * (performance.now() - started)),
      );
      if (this.#closed) return 0;
    }
    this.db.exec("BEGIN IMMEDIATE");
    try {
      // The scraper stores `samples_scraped` samples with each successful
      // scrape, so their sum counts the samples deleted.
      const counted = this.db.prepare(
        "SELECT coalesce(sum(samples_scraped), 0) AS n FROM scrapes WHERE id <= ? AND up = 1",
      ).get(lastId) as { n: number };
      this.db.prepare("DELETE FROM recent_samples WHERE scrape_id <= ?").run(
        lastId,
      );
      this.db.prepare("DELETE FROM scrapes WHERE id <= ?").run(lastId);
      this.db.exec("COMMIT");
      return Number(counted.n);
    } catch (error) {
      rollback(this.db);
      throw error;
    }
  }

  /** Closes the database; a background compaction stops before its next step. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#compactionTimer);
    clearTimeout(this.#pauseTimer);
    // A compaction waiting between transactions returns, as `#closed` is set.
    this.#endPause?.();
    this.#compaction = null;
    this.db.close();
  }

  /** Waits `ms` milliseconds; {@linkcode close} ends the wait at once. */
  #pause(ms = 1): Promise<void> {
    return new Promise((resolve) => {
      this.#endPause = () => {
        this.#endPause = null;
        clearTimeout(this.#pauseTimer);
        resolve();
      };
      this.#pauseTimer = setTimeout(this.#endPause, ms);
    });
  }

  /**
   * Runs {@linkcode #compactBatch}, and while another connection holds the
   * write lock, waits between short tries instead of blocking the event
   * loop for the whole busy timeout.
   */
  async #compactBatchWhenFree(
    low: number,
    high: number,
    firstSeries: number,
    lastSeries: number,
  ): Promise<number> {
    for (let tries = 1;; tries++) {
      try {
        return this.#compactBatch(low, high, firstSeries, lastSeries);
      } catch (error) {
        if (!isBusyError(error) || tries >= COMPACTION_LOCK_TRIES) throw error;
      }
      await this.#pause(COMPACTION_LOCK_WAIT_MS);
      if (this.#closed) return 0;
    }
  }

  /** Resolves when no background compaction is running. */
  async compacted(): Promise<void> {
    while (this.#compaction !== null) await this.#compaction;
  }

  #scheduleCompaction(): void {
    if (this.#compaction !== null) return;
    this.#compaction = new Promise<void>((resolve) => {
      this.#compactionTimer = setTimeout(async () => {
        this.#compactionTimer = undefined;
        try {
          await this.compact();
        } catch (error) {
          // A busy database is normal with several writers: the next writes
          // start another attempt.
          if (!isBusyError(error) && !this.#closed) {
            this.#onCompactionError?.(error);
          }
        } finally {
          this.#compaction = null;
          resolve();
        }
      }, 0);
    });
  }

  /**
   * Moves the rows of `recent_samples` with scrape ids in `[low, high]` and
   * series ids in `[firstSeries, lastSeries]` into runs, in one transaction.
   */
  #compactBatch(
    low: number,
    high: number,
    firstSeries: number,
    lastSeries: number,
  ): number {
    const statements = this.#prepare();
    this.db.exec(`PRAGMA busy_timeout = ${COMPACTION_LOCK_WAIT_MS}`);
    try {
      this.db.exec("BEGIN IMMEDIATE");
    } finally {
      this.db.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
    }
    try {
      const rows = statements.recentRows!.all(
        low,
        high,
        firstSeries,
        lastSeries,
      ) as unknown as [number, number, number | null][];
      if (rows.length === 0) {
        this.db.exec("COMMIT");
        return 0;
      }
      const positions = this.#successfulScrapePositions(rows, low, high);
      const newRuns: (number | null)[] = [];
      let index = 0;
      while (index < rows.length) {
        const seriesId = rows[index]![0];
        const scrapes = positions.get(this.#seriesContainers.get(seriesId)!)!;
        const last = statements.lastRun!.get(seriesId) as
          | {
            scrape_id: number;
            last_scrape_offset: number;
            value: number | null;
          }
          | undefined;
        // `run` starts as the series' last stored run, which may be extended
        // in place; every run after it is new.
        let run: Run | null = last === undefined ? null : {
          firstId: last.scrape_id,
          lastId: last.scrape_id + last.last_scrape_offset,
          value: last.value,
        };
        let runIsStored = run !== null;
        const storedLastId = run?.lastId;
        const finishRun = (finished: Run): void => {
          if (!runIsStored) {
            newRuns.push(
              seriesId,
              finished.firstId,
              finished.lastId - finished.firstId,
              finished.value,
            );
          } else if (finished.lastId !== storedLastId) {
            statements.extendRun!.run(
              finished.lastId - finished.firstId,
              seriesId,
              finished.firstId,
            );
          }
        };
        for (; index < rows.length && rows[index]![0] === seriesId; index++) {
          const [, scrapeId, value] = rows[index]!;
          const position = scrapes.positions.get(scrapeId);
          const previousId = position === undefined || position === 0
            ? undefined
            : scrapes.ids[position - 1];
          if (
            run !== null && run.value === value && run.lastId === previousId &&
            scrapeId - run.firstId < MAX_RUN_SPAN_IDS
          ) {
            run.lastId = scrapeId;
            continue;
          }
          if (run !== null) finishRun(run);
          run = { firstId: scrapeId, lastId: scrapeId, value };
          runIsStored = false;
        }
        finishRun(run!);
      }
      statements.insertRuns!.run(jsonNumbers(newRuns));
      statements.deleteRecent!.run(low, high, firstSeries, lastSeries);
      this.db.exec("COMMIT");
      return rows.length;
    } catch (error) {
      rollback(this.db);
      throw error;
    }
  }

  /**
   * Lists, per container of the series in `rows`, the successful scrapes
   * from the one before `low` to `high`, with each id's position in the list.
   * Two samples of a series continue a run only when their scrapes are
   * neighbours in this list.
   */
  #successfulScrapePositions(
    rows: readonly [number, number, number | null][],
    low: number,
    high: number,
  ): Map<string, { ids: number[]; positions: Map<number, number> }> {
    const statements = this.#prepare();
    const containers = new Set<string>();
    for (const [seriesId] of rows) {
      let container = this.#seriesContainers.get(seriesId);
      if (container === undefined) {
        const row = statements.seriesContainer!.get(seriesId) as {
          container: string;
        };
        container = row.container;
        this.#seriesContainers.set(seriesId, container);
      }
      containers.add(container);
    }
    const result = new Map<
      string,
      { ids: number[]; positions: Map<number, number> }
    >();
    for (const container of containers) {
      const before = statements.previousSuccessful!.get(container, low) as
        | { id: number }
        | undefined;
      const ids = before === undefined ? [] : [before.id];
      for (
        const row of statements.successfulScrapes!.all(
          container,
          low,
          high,
        ) as {
          id: number;
        }[]
      ) {
        ids.push(row.id);
      }
      result.set(container, {
        ids,
        positions: new Map(ids.map((id, position) => [id, position])),
      });
    }
    return result;
  }

  #prepare(): Record<string, StatementSync> {
    if (this.#statements !== null) return this.#statements;
    const prepare = (sql: string): StatementSync => this.db.prepare(sql);
    const recentRows = prepare(
      `SELECT series_id, scrape_id, value FROM recent_samples
       WHERE scrape_id BETWEEN ? AND ? AND series_id BETWEEN ? AND ?
       ORDER BY series_id, scrape_id`,
    );
    returnArrays(recentRows);
    this.#statements = {
      insertScrape: prepare(
        `INSERT INTO scrapes (container, timestamp, duration_seconds, up, samples_scraped,
           parse_errors, duplicate_samples, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertSeries: prepare(
        `INSERT INTO series (container, metric_name, labels, family, metric_type)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      selectSeries: prepare(
        "SELECT id FROM series WHERE container = ? AND metric_name = ? AND labels = ?",
      ),
      insertSample: prepare(
        "INSERT OR IGNORE INTO recent_samples (scrape_id, series_id, value) VALUES (?, ?, ?)",
      ),
      recentBounds: prepare(
        "SELECT min(scrape_id) AS low, max(scrape_id) AS high FROM recent_samples",
      ),
      recentOffset: prepare(
        "SELECT scrape_id FROM recent_samples ORDER BY scrape_id LIMIT 1 OFFSET ?",
      ),
      recentSeriesCounts: prepare(
        `SELECT series_id, count(*) AS row_count FROM recent_samples
         WHERE scrape_id BETWEEN ? AND ? GROUP BY series_id ORDER BY series_id`,
      ),
      recentRows,
      seriesContainer: prepare("SELECT container FROM series WHERE id = ?"),
      // `+container` keeps SQLite from scanning the container's whole
      // index: stepping back along the ids finds the row within a few.
      previousSuccessful: prepare(
        `SELECT id FROM scrapes WHERE id < ?2 AND +container = ?1 AND up = 1
         ORDER BY id DESC LIMIT 1`,
      ),
      successfulScrapes: prepare(
        `SELECT id FROM scrapes WHERE id BETWEEN ?2 AND ?3 AND +container = ?1 AND up = 1
         ORDER BY id`,
      ),
      lastRun: prepare(
        `SELECT scrape_id, last_scrape_offset, value FROM sample_runs
         WHERE series_id = ? ORDER BY scrape_id DESC LIMIT 1`,
      ),
      extendRun: prepare(
        "UPDATE sample_runs SET last_scrape_offset = ? WHERE series_id = ? AND scrape_id = ?",
      ),
      insertRuns: prepare(
        `INSERT INTO sample_runs (series_id, scrape_id, last_scrape_offset, value)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)`,
      ),
      deleteRecent: prepare(
        `DELETE FROM recent_samples
         WHERE scrape_id BETWEEN ? AND ? AND series_id BETWEEN ? AND ?`,
      ),
    };
    return this.#statements;
  }

  #seriesId(container: string, sample: Sample): number {
    const labels = canonicalLabels(sample.labels);
    const key = `${container}\u0000${sample.name}\u0000${labels}`;
    const cached = this.#seriesIds.get(key);
    if (cached !== undefined) return cached;
    const statements = this.#statements!;
    statements.insertSeries!.run(
      container,
      sample.name,
      labels,
      sample.family,
      sample.type,
    );
    const row = statements.selectSeries!.get(
      container,
      sample.name,
      labels,
    ) as {
      id: number | bigint;
    };
    const id = Number(row.id);
    this.#seriesIds.set(key, id);
    this.#seriesContainers.set(id, container);
    return id;
  }
}

/**
 * Encodes a flat list of numbers as JSON for `json_each`: NaN is null (SQL
 * NULL) and the infinities are `±9e999`, which SQLite's JSON reads back as
 * infinite REAL values.
 */
function jsonNumbers(values: readonly (number | null)[]): string {
  let text = "[";
  for (let i = 0; i < values.length; i += 4) {
    if (i > 0) text += ",";
    text += `[${values[i]},${values[i + 1]},${values[i + 2]},${
      jsonNumber(values[i + 3]!)
    }]`;
  }
  return text + "]";
}

function jsonNumber(value: number | null): string {
  if (value === null || Number.isNaN(value)) return "null";
  if (value === Infinity) return "9e999";
  if (value === -Infinity) return "-9e999";
  return String(value);
}

/**
 * Opens (and, unless read-only, creates and migrates) a metrics database in
 * WAL mode with a busy timeout.
 *
 * @throws {Deno.errors.NotFound} when a read-only open finds no file
 * @throws {RangeError} when the file's schema is newer than this program's,
 * or, for a read-only open, older
 */
export function openStore(
  path: string,
  options: StoreOptions = {},
): MetricsStore {
  if (options.readOnly) {
    try {
      Deno.statSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(
          `Metrics database "${path}" not found; pass --db with the file the logger writes`,
        );
      }
      throw error;
    }
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? 250;
  const db = new DatabaseSync(path, { timeout: busyTimeoutMs });
  try {
    if (options.readOnly) {
      checkReadableVersion(db, path);
    } else {
      // A lock held longer than the busy timeout fails the open, and the
      // caller retries: waiting here would block the event loop.
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      migrate(db);
    }
  } catch (error) {
    db.close();
    throw error;
  }
  const storeOptions: Pick<
    StoreOptions,
    "autoCompact" | "busyTimeoutMs" | "onCompactionError"
  > = { busyTimeoutMs };
  if (options.autoCompact !== undefined) {
    storeOptions.autoCompact = options.autoCompact;
  }
  if (options.onCompactionError !== undefined) {
    storeOptions.onCompactionError = options.onCompactionError;
  }
  return new MetricsStore(db, storeOptions);
}

function userVersion(db: DatabaseSync): number {
  const row = db.prepare("PRAGMA user_version").get() as {
    user_version: number;
  };
  return row.user_version;
}

function checkReadableVersion(db: DatabaseSync, path: string): void {
  const version = userVersion(db);
  if (version > SCHEMA_VERSION) {
    throw new RangeError(
      `Database schema version ${version} is newer than this program's ${SCHEMA_VERSION}; upgrade horos_vllm_logger`,
    );
  }
  if (version < SCHEMA_VERSION) {
    throw new RangeError(
      `Database "${path}" has schema version ${version}, older than this program's ${SCHEMA_VERSION}; ` +
        "start the logger with this version once to migrate it",
    );
  }
}

function migrate(db: DatabaseSync): void {
  const version = userVersion(db);
  if (version > SCHEMA_VERSION) {
    throw new RangeError(
      `Database schema version ${version} is newer than this program's ${SCHEMA_VERSION}; upgrade horos_vllm_logger`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    // Another process may have migrated while this one waited for the lock.
    const locked = userVersion(db);
    if (locked === 0) {
      db.exec(SCRAPES_AND_SERIES + SAMPLE_TABLES + VIEWS);
    } else if (locked === 1) {
      db.exec(MIGRATE_V1_TO_V2);
    }
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    rollback(db);
    throw error;
  }
}
