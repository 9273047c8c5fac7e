/**
 * Alert state in the metrics database: one row per active alert instance
 * (pending or firing) in the table `alert_state`, so that a restarted logger
 * neither repeats a firing event nor misses the resolution of an alert.
 *
 * The state lives in the SQLite file rather than in a JSON file beside
 * `alerts.log` because several logger processes may share that file and the
 * output directory, each for its own containers. Rows are keyed by
 * container, so each process reads and writes only the rows of the
 * containers it scrapes, and SQLite's locking keeps concurrent writes whole.
 * A shared JSON file would need its own locking.
 *
 * The table is created with `CREATE TABLE IF NOT EXISTS` when the alert
 * engine opens the database, independently of the schema version in
 * `PRAGMA user_version`, so databases of earlier versions gain it in place.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

const ALERT_STATE_SCHEMA = `
CREATE TABLE IF NOT EXISTS alert_state (
  container TEXT NOT NULL,
  rule TEXT NOT NULL,
  labels TEXT NOT NULL,            -- JSON object, keys sorted, without le
  condition TEXT NOT NULL,         -- the rule's condition when the row was written
  threshold REAL NOT NULL,         -- threshold of the condition's first comparison
  level TEXT NOT NULL,             -- ERROR, WARNING or INFO
  pending_since INTEGER NOT NULL,  -- Unix ms of the first scrape where the condition held
  fired_at INTEGER,                -- Unix ms of the firing event, NULL while pending
  value REAL,                      -- value at the last evaluation, NULL when it had none
  evaluated_at INTEGER NOT NULL,   -- Unix ms of the last evaluation
  PRIMARY KEY (container, rule, labels)
) WITHOUT ROWID;
`;

/** One active alert instance as stored. */
export interface AlertStateRow {
  container: string;
  rule: string;
  /** Canonical JSON of the label set, as `canonicalLabels` writes it. */
  labels: string;
  condition: string;
  threshold: number;
  level: string;
  /** Unix milliseconds of the first scrape where the condition held. */
  pendingSinceMs: number;
  /** Unix milliseconds of the firing event, or null while pending. */
  firedAtMs: number | null;
  value: number | null;
  /** Unix milliseconds of the last evaluation. */
  evaluatedAtMs: number;
}

/** Creates the `alert_state` table when it does not exist. */
export function ensureAlertStateTable(db: DatabaseSync): void {
  db.exec(ALERT_STATE_SCHEMA);
}

/** Returns whether the database has an `alert_state` table. */
export function hasAlertStateTable(db: DatabaseSync): boolean {
  const row = db.prepare(
    "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'alert_state'",
  ).get();
  return row !== undefined;
}

function nullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * Loads the stored alert instances, of one container or of all when
 * `container` is null, ordered by container, rule and labels.
 */
export function loadAlertStates(
  db: DatabaseSync,
  container: string | null,
): AlertStateRow[] {
  const rows = db.prepare(
    `SELECT container, rule, labels, condition, threshold, level, pending_since,
            fired_at, value, evaluated_at
     FROM alert_state WHERE ? IS NULL OR container = ?
     ORDER BY container, rule, labels`,
  ).all(container, container) as Record<string, unknown>[];
  return rows.map((row) => ({
    container: String(row.container),
    rule: String(row.rule),
    labels: String(row.labels),
    condition: String(row.condition),
    threshold: Number(row.threshold),
    level: String(row.level),
    pendingSinceMs: Number(row.pending_since),
    firedAtMs: nullableNumber(row.fired_at),
    value: nullableNumber(row.value),
    evaluatedAtMs: Number(row.evaluated_at),
  }));
}

/** A change to the stored state: a row to write, or the key of a row to delete. */
export type AlertStateChange =
  | { kind: "upsert"; row: AlertStateRow }
  | { kind: "delete"; container: string; rule: string; labels: string };

/**
 * Applies changes in one transaction: all of them are stored or none.
 *
 * @throws the SQLite error, such as a busy database, after rolling back
 */
export function writeAlertStates(
  db: DatabaseSync,
  changes: readonly AlertStateChange[],
): void {
  if (changes.length === 0) return;
  const upsert = db.prepare(
    `INSERT INTO alert_state (container, rule, labels, condition, threshold, level,
       pending_since, fired_at, value, evaluated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (container, rule, labels) DO UPDATE SET
       condition = excluded.condition, threshold = excluded.threshold,
       level = excluded.level, pending_since = excluded.pending_since,
       fired_at = excluded.fired_at, value = excluded.value,
       evaluated_at = excluded.evaluated_at`,
  );
  const remove = db.prepare(
    "DELETE FROM alert_state WHERE container = ? AND rule = ? AND labels = ?",
  );
  db.exec("BEGIN IMMEDIATE");
  try {
    for (const change of changes) {
      if (change.kind === "delete") {
        remove.run(change.container, change.rule, change.labels);
        continue;
      }
      const row = change.row;
      const value = row.value !== null && Number.isFinite(row.value)
        ? row.value
        : null;
      upsert.run(
        row.container,
        row.rule,
        row.labels,
        row.condition,
        row.threshold,
        row.level,
        row.pendingSinceMs,
        row.firedAtMs,
        value,
        row.evaluatedAtMs,
      );
    }
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
