/**
 * SQLite storage of scrapes: a `scrapes` table (one row per scrape, with its
 * health), a `series` table (one row per container, name and label set) and
 * a `samples` table (one row per series per scrape). The `metrics` view joins
 * them back into the plain columns `timestamp` (Unix milliseconds),
 * `container`, `metric_name`, `value` and `labels` (JSON text).
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
export const SCHEMA_VERSION = 1;

const SCHEMA = `
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
CREATE TABLE IF NOT EXISTS samples (
  series_id INTEGER NOT NULL,
  scrape_id INTEGER NOT NULL,
  value REAL,                        -- NULL means the endpoint reported NaN
  PRIMARY KEY (series_id, scrape_id)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS metrics AS
  SELECT sc.timestamp AS timestamp, se.container AS container,
         se.metric_name AS metric_name, sa.value AS value, se.labels AS labels
  FROM samples sa
  JOIN series se ON se.id = sa.series_id
  JOIN scrapes sc ON sc.id = sa.scrape_id;
`;

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
}

/** Serialises labels with sorted keys, so equal label sets give equal text. */
export function canonicalLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  const sorted: Record<string, string> = {};
  for (const key of keys) sorted[key] = labels[key] as string;
  return JSON.stringify(sorted);
}

/** True when an error from node:sqlite means another connection holds the lock. */
export function isBusyError(error: unknown): boolean {
  return error instanceof Error &&
    /database is (locked|busy)|SQLITE_BUSY/i.test(error.message);
}

/** Writes scrapes into one SQLite file; several processes may share it. */
export class MetricsStore {
  readonly db: DatabaseSync;
  readonly #seriesIds = new Map<string, number>();
  #insertScrape: StatementSync | null = null;
  #insertSeries: StatementSync | null = null;
  #selectSeries: StatementSync | null = null;
  #insertSample: StatementSync | null = null;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  /**
   * Stores one scrape in one transaction: a reader sees all of it or none.
   * Returns the scrape's id.
   *
   * @throws the SQLite error; nothing of the scrape is stored then
   */
  writeScrape(health: ScrapeHealth, samples: readonly Sample[]): number {
    this.#prepare();
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = this.#insertScrape!.run(
        health.container,
        health.timestampMs,
        health.durationSeconds,
        health.up ? 1 : 0,
        health.samplesScraped,
        health.parseErrors,
        health.duplicateSamples,
        health.error,
      );
      const scrapeId = Number(result.lastInsertRowid);
      for (const sample of samples) {
        const seriesId = this.#seriesId(health.container, sample);
        const value = Number.isNaN(sample.value) ? null : sample.value;
        this.#insertSample!.run(seriesId, scrapeId, value);
      }
      this.db.exec("COMMIT");
      return scrapeId;
    } catch (error) {
      this.db.exec("ROLLBACK");
      // Series ids created inside the rolled-back transaction no longer exist.
      this.#seriesIds.clear();
      throw error;
    }
  }

  /**
   * Deletes scrapes that started before `cutoffMs` and their samples, a few
   * series per transaction so a concurrent scrape never waits long. Returns
   * the number of samples deleted.
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
    const deleteSamples = this.db.prepare(
      "DELETE FROM samples WHERE series_id = ? AND scrape_id <= ?",
    );
    let deleted = 0;
    for (let start = 0; start < seriesIds.length; start += seriesPerBatch) {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        for (const id of seriesIds.slice(start, start + seriesPerBatch)) {
          deleted += Number(deleteSamples.run(id, lastId).changes);
        }
        this.db.exec("COMMIT");
      } catch (error) {
        this.db.exec("ROLLBACK");
        throw error;
      }
      // Let scrapes and other processes take the write lock between batches.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    this.db.prepare("DELETE FROM scrapes WHERE id <= ?").run(lastId);
    return deleted;
  }

  close(): void {
    this.db.close();
  }

  #prepare(): void {
    if (this.#insertScrape !== null) return;
    this.#insertScrape = this.db.prepare(
      `INSERT INTO scrapes (container, timestamp, duration_seconds, up, samples_scraped,
         parse_errors, duplicate_samples, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertSeries = this.db.prepare(
      `INSERT INTO series (container, metric_name, labels, family, metric_type)
       VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.#selectSeries = this.db.prepare(
      "SELECT id FROM series WHERE container = ? AND metric_name = ? AND labels = ?",
    );
    this.#insertSample = this.db.prepare(
      "INSERT OR IGNORE INTO samples (series_id, scrape_id, value) VALUES (?, ?, ?)",
    );
  }

  #seriesId(container: string, sample: Sample): number {
    const labels = canonicalLabels(sample.labels);
    const key = `${sample.name}\u0000${labels}`;
    const cached = this.#seriesIds.get(key);
    if (cached !== undefined) return cached;
    this.#insertSeries!.run(
      container,
      sample.name,
      labels,
      sample.family,
      sample.type,
    );
    const row = this.#selectSeries!.get(container, sample.name, labels) as {
      id: number | bigint;
    };
    const id = Number(row.id);
    this.#seriesIds.set(key, id);
    return id;
  }
}

/**
 * Opens (and, unless read-only, creates and migrates) a metrics database in
 * WAL mode with a busy timeout.
 *
 * @throws {Deno.errors.NotFound} when a read-only open finds no file
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
  const db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 250 });
  if (!options.readOnly) {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    migrate(db);
  }
  return new MetricsStore(db);
}

function migrate(db: DatabaseSync): void {
  const row = db.prepare("PRAGMA user_version").get() as {
    user_version: number;
  };
  if (row.user_version > SCHEMA_VERSION) {
    throw new RangeError(
      `Database schema version ${row.user_version} is newer than this program's ${SCHEMA_VERSION}; upgrade horos_vllm_logger`,
    );
  }
  if (row.user_version === SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(SCHEMA);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
