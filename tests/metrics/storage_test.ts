import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Sample } from "../../src/metrics/exposition/types.ts";
import { loadSeriesWindows } from "../../src/metrics/query.ts";
import { counterIncrease, counterRate } from "../../src/metrics/window_math.ts";
import {
  canonicalLabels,
  MAX_RUN_SPAN_IDS,
  type MetricsStore,
  openStore,
  SCHEMA_VERSION,
  type ScrapeHealth,
} from "../../src/metrics/store.ts";

/** Mulberry32, so every run of the test writes the same data. */
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

function health(
  container: string,
  timestampMs: number,
  samples: number,
  up = true,
): ScrapeHealth {
  return {
    container,
    timestampMs,
    durationSeconds: 0.01,
    up,
    samplesScraped: samples,
    parseErrors: 0,
    duplicateSamples: 0,
    error: up ? null : "HTTP status 500, expected 200",
  };
}

function gauge(
  name: string,
  labels: Record<string, string>,
  value: number,
): Sample {
  return { name, labels, value, family: name, type: "gauge" };
}

/** One row of the `metrics` view, with NULL read back as NaN for comparison. */
interface MetricRow {
  timestamp: number;
  container: string;
  metric_name: string;
  value: number;
  labels: string;
}

function viewRows(store: MetricsStore): MetricRow[] {
  const rows = store.db.prepare(
    `SELECT timestamp, container, metric_name, value, labels FROM metrics
     ORDER BY container, metric_name, labels, timestamp`,
  ).all() as unknown as MetricRow[];
  return rows.map((row) => ({ ...row, value: row.value ?? NaN }));
}

function tableCount(store: MetricsStore, table: string): number {
  const row = store.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as {
    n: number;
  };
  return row.n;
}

/** Values a series may take: repeats, NaN, infinities, negatives, integers. */
const VALUE_POOL = [0, 1, 2.5, -3, NaN, Infinity, -Infinity, 1e15, 0.1];

/**
 * Writes `scrapes` rounds to two containers through `store`: some scrapes
 * fail, series vanish and come back, values repeat or change at random.
 * Returns the rows the `metrics` view must show, sorted like `viewRows`.
 */
function writeRandomScrapes(
  store: MetricsStore,
  scrapes: number,
  seed: number,
  startMs = 1_000_000,
): MetricRow[] {
  const random = randomSource(seed);
  const expected: MetricRow[] = [];
  const current = new Map<string, number>();
  for (let round = 0; round < scrapes; round++) {
    for (const container of ["c-a", "c-b"]) {
      // Clock steps back now and then; scrape order still holds.
      const timestampMs = startMs + round * 5000 -
        (random() < 0.05 ? 20_000 : 0);
      if (random() < 0.1) {
        store.writeScrape(health(container, timestampMs, 0, false), []);
        continue;
      }
      const samples: Sample[] = [];
      for (let index = 0; index < 12; index++) {
        // Series 9 to 11 vanish often, as after a restart.
        if (index >= 9 && random() < 0.4) continue;
        const labels = { engine: String(index % 3), slot: String(index) };
        const key = `${container}/${index}`;
        let value = current.get(key) ?? 0;
        if (random() < 0.45) {
          value = VALUE_POOL[Math.floor(random() * VALUE_POOL.length)]!;
        }
        current.set(key, value);
        const name = index < 4 ? "m_a" : "m_b";
        samples.push(gauge(name, labels, value));
        expected.push({
          timestamp: timestampMs,
          container,
          metric_name: name,
          value,
          labels: canonicalLabels(labels),
        });
      }
      store.writeScrape(
        health(container, timestampMs, samples.length),
        samples,
      );
    }
  }
  return expected.sort((a, b) =>
    a.container.localeCompare(b.container) ||
    a.metric_name.localeCompare(b.metric_name) ||
    a.labels.localeCompare(b.labels) ||
    a.timestamp - b.timestamp
  );
}

/**
 * Sorts rows like `viewRows`. Rows with equal keys (a clock step can repeat
 * a timestamp) keep the order they came in, which is scrape order for both.
 */
function sortRows(rows: MetricRow[]): MetricRow[] {
  return rows.map((row, index) => ({ row, index })).sort((a, b) =>
    a.row.container.localeCompare(b.row.container) ||
    a.row.metric_name.localeCompare(b.row.metric_name) ||
    a.row.labels.localeCompare(b.row.labels) ||
    a.row.timestamp - b.row.timestamp || a.index - b.index
  ).map((entry) => entry.row);
}

async function withTempDir(
  body: (dir: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("compaction keeps every sample of the metrics view", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const expected = sortRows(writeRandomScrapes(store, 150, 7));
      const before = viewRows(store);
      assert.equal(before.length, expected.length);
      assert.deepEqual(before, expected);

      const moved = await store.compact(97);
      assert.equal(moved, expected.length, "every recent sample moved");
      assert.equal(tableCount(store, "recent_samples"), 0);
      assert.ok(
        tableCount(store, "sample_runs") < expected.length,
        "repeated values share a run",
      );
      assert.deepEqual(viewRows(store), expected);
    } finally {
      store.close();
    }
  });
});

Deno.test("compaction continues runs across passes", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const expected: MetricRow[] = [];
      // Three passes over consecutive stretches of scrapes: runs that reach
      // the end of one pass are extended by the next.
      for (const [round, seed] of [[0, 11], [1, 12], [2, 13]] as const) {
        expected.push(
          ...writeRandomScrapes(store, 40, seed, 1_000_000 + round * 200_000),
        );
        await store.compact(50);
      }
      assert.deepEqual(viewRows(store), sortRows(expected));

      const constant = openStore(`${dir}/constant.db`, { autoCompact: false });
      try {
        for (let pass = 0; pass < 3; pass++) {
          for (let i = 0; i < 10; i++) {
            const timestampMs = (pass * 10 + i) * 1000;
            constant.writeScrape(health("c", timestampMs, 1), [
              gauge("g", {}, 42),
            ]);
          }
          await constant.compact();
        }
        const runs = constant.db.prepare(
          "SELECT scrape_id, last_scrape_offset, value FROM sample_runs",
        ).all();
        assert.deepEqual(runs.map((row) => ({ ...row })), [
          { scrape_id: 1, last_scrape_offset: 29, value: 42 },
        ]);
      } finally {
        constant.close();
      }
    } finally {
      store.close();
    }
  });
});

Deno.test("runs break at a failed scrape and at an absent series", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const g = (value: number): Sample[] => [gauge("g", {}, value)];
      store.writeScrape(health("c", 1000, 1), g(5));
      store.writeScrape(health("c", 2000, 1), g(5));
      store.writeScrape(health("c", 3000, 0, false), []);
      store.writeScrape(health("c", 4000, 1), g(5));
      store.writeScrape(health("c", 5000, 1), [gauge("other", {}, 1)]);
      store.writeScrape(health("c", 6000, 1), g(5));
      // Another container's scrapes between two of this one's do not matter.
      store.writeScrape(health("d", 6500, 1), [gauge("g", {}, 9)]);
      store.writeScrape(health("c", 7000, 1), g(5));
      await store.compact();
      const runs = store.db.prepare(
        `SELECT r.scrape_id, r.last_scrape_offset FROM sample_runs r
         JOIN series se ON se.id = r.series_id
         WHERE se.container = 'c' AND se.metric_name = 'g' ORDER BY r.scrape_id`,
      ).all().map((row) => ({ ...row }));
      // The failed scrape 3 does not break the run: the series could not
      // have been seen there. Scrape 5 succeeded without the series.
      assert.deepEqual(runs, [
        { scrape_id: 1, last_scrape_offset: 3 },
        { scrape_id: 6, last_scrape_offset: 2 },
      ]);
      const values = store.db.prepare(
        "SELECT timestamp FROM metrics WHERE container = 'c' AND metric_name = 'g' ORDER BY timestamp",
      ).all().map((row) => (row as { timestamp: number }).timestamp);
      assert.deepEqual(values, [1000, 2000, 4000, 6000, 7000]);
    } finally {
      store.close();
    }
  });
});

Deno.test("readers see the same windows before and after compaction", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      writeRandomScrapes(store, 120, 21);
      const windows = [
        { startMs: 0, endMs: 10_000_000 },
        { startMs: 1_100_000, endMs: 1_300_000 },
        { startMs: 1_234_567, endMs: 1_234_567 },
      ];
      const load = () =>
        windows.map((window) =>
          loadSeriesWindows(store.db, "c-a", ["m_a", "m_b"], window)
        );
      const loadIncrease = () =>
        windows.map((window) =>
          loadSeriesWindows(store.db, "c-b", ["m_a", "m_b"], window, {
            increaseOnly: () => true,
          })
        );
      const before = load();
      const increaseBefore = loadIncrease();
      await store.compact(64);
      assert.deepEqual(load(), before);
      assert.deepEqual(loadIncrease(), increaseBefore);
      // Part of the samples compacted and part recent reads the same too.
      writeRandomScrapes(store, 30, 22, 2_000_000);
      const mixed = load();
      await store.compact(64);
      assert.deepEqual(load(), mixed);
    } finally {
      store.close();
    }
  });
});

Deno.test("increase-only loading keeps counter increase and rate", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      writeRandomScrapes(store, 200, 41);
      await store.compact(300);
      writeRandomScrapes(store, 40, 42, 3_000_000);
      const windows = [
        { startMs: 0, endMs: 10_000_000 },
        { startMs: 1_200_000, endMs: 3_100_000 },
        { startMs: 1_500_000, endMs: 1_520_000 },
      ];
      let compared = 0;
      for (const window of windows) {
        const full = loadSeriesWindows(store.db, "c-a", ["m_a", "m_b"], window);
        const reducedList = loadSeriesWindows(
          store.db,
          "c-a",
          ["m_a", "m_b"],
          window,
          { increaseOnly: () => true },
        );
        assert.equal(reducedList.length, full.length);
        full.forEach((series, index) => {
          const reduced = reducedList[index]!;
          assert.equal(reduced.seriesId, series.seriesId);
          assert.ok(reduced.samples.length <= series.samples.length);
          assert.ok(
            Object.is(
              counterIncrease(reduced.samples),
              counterIncrease(series.samples),
            ),
            `increase of series ${series.seriesId}`,
          );
          assert.ok(
            Object.is(
              counterRate(reduced.samples),
              counterRate(series.samples),
            ),
            `rate of series ${series.seriesId}`,
          );
          compared++;
        });
      }
      assert.ok(compared >= 20, `${compared} series compared`);
    } finally {
      store.close();
    }
  });
});

Deno.test("increase-only loading keeps resets and ends", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const reset = [10, 20, 20, 5, 8, NaN];
      const flat = [5, 5, NaN, NaN, NaN, NaN];
      reset.forEach((value, index) => {
        store.writeScrape(health("c", index * 5000, 2), [
          gauge("reset", {}, value),
          gauge("flat", {}, flat[index]!),
        ]);
      });
      await store.compact();
      const window = { startMs: 0, endMs: 60_000 };
      const [flatSeries, resetSeries] = loadSeriesWindows(
        store.db,
        "c",
        ["reset", "flat"],
        window,
        { increaseOnly: () => true },
      ).sort((a, b) => a.metricName.localeCompare(b.metricName));
      // The first and the last sample that is not NaN.
      assert.deepEqual(flatSeries!.samples, [
        { timestampMs: 0, value: 5 },
        { timestampMs: 5000, value: 5 },
      ]);
      assert.equal(counterIncrease(flatSeries!.samples), 0);
      // The first, both sides of the reset, and the last that is not NaN.
      assert.deepEqual(resetSeries!.samples, [
        { timestampMs: 0, value: 10 },
        { timestampMs: 10_000, value: 20 },
        { timestampMs: 15_000, value: 5 },
        { timestampMs: 20_000, value: 8 },
      ]);
      assert.equal(counterIncrease(resetSeries!.samples), 18);
      assert.equal(counterRate(resetSeries!.samples), 18 / 20);
    } finally {
      store.close();
    }
  });
});

Deno.test("two stores compacting one file move each sample once", async () => {
  await withTempDir(async (dir) => {
    const first = openStore(`${dir}/m.db`, { autoCompact: false });
    const second = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const expected = sortRows(writeRandomScrapes(first, 100, 31));
      const [movedFirst, movedSecond] = await Promise.all([
        first.compact(40),
        second.compact(40),
      ]);
      assert.equal(movedFirst + movedSecond, expected.length);
      assert.deepEqual(viewRows(first), expected);
    } finally {
      first.close();
      second.close();
    }
  });
});

Deno.test("background compaction after many rows", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`);
    try {
      const samples = Array.from(
        { length: 500 },
        (_, index) => gauge("g", { index: String(index) }, index % 7),
      );
      for (let scrape = 0; scrape < 70; scrape++) {
        store.writeScrape(health("c", scrape * 1000, 500), samples);
      }
      await store.compacted();
      // 64 scrapes of 500 samples reach the threshold; the 6 after the
      // compaction started may or may not have been moved with it.
      assert.ok(tableCount(store, "recent_samples") <= 6 * 500);
      assert.equal(tableCount(store, "samples"), 70 * 500);
    } finally {
      store.close();
    }
  });
});

Deno.test("deleteBefore keeps runs that reach past the cutoff", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      for (let i = 0; i < 10; i++) {
        store.writeScrape(health("c", i * 1000, 2), [
          gauge("constant", {}, 1),
          gauge("changing", {}, i),
        ]);
      }
      await store.compact();
      for (let i = 10; i < 12; i++) {
        store.writeScrape(health("c", i * 1000, 2), [
          gauge("constant", {}, 1),
          gauge("changing", {}, i),
        ]);
      }
      const deleted = await store.deleteBefore(5000);
      // Scrapes 1 to 5 held 2 samples each. The compacted run of `constant`
      // spans the cutoff and stays, expanded over the scrapes left.
      assert.equal(deleted, 10);
      const rows = store.db.prepare(
        "SELECT metric_name, timestamp, value FROM metrics ORDER BY metric_name, timestamp",
      ).all().map((row) => ({ ...row }));
      const expected = [];
      for (const name of ["changing", "constant"]) {
        for (let i = 5; i < 12; i++) {
          expected.push({
            metric_name: name,
            timestamp: i * 1000,
            value: name === "constant" ? 1 : i,
          });
        }
      }
      assert.deepEqual(rows, expected);
      await store.compact();
      const after = store.db.prepare(
        "SELECT metric_name, timestamp, value FROM metrics ORDER BY metric_name, timestamp",
      ).all().map((row) => ({ ...row }));
      assert.deepEqual(after, expected);
    } finally {
      store.close();
    }
  });
});

Deno.test("series that vanish and come back stay one series", async () => {
  await withTempDir(async (dir) => {
    const store = openStore(`${dir}/m.db`, { autoCompact: false });
    try {
      const counter = (value: number): Sample => ({
        name: "vllm:generation_tokens_total",
        labels: { model_name: "m", engine: "0" },
        value,
        family: "vllm:generation_tokens",
        type: "counter",
      });
      store.writeScrape(health("c", 0, 1), [counter(100)]);
      store.writeScrape(health("c", 5000, 1), [counter(150)]);
      // The container restarted: one scrape fails, one comes back without
      // the series (the engine is still loading), then the counter restarts.
      store.writeScrape(health("c", 10_000, 0, false), []);
      store.writeScrape(health("c", 15_000, 1), [gauge("up_probe", {}, 1)]);
      store.writeScrape(health("c", 20_000, 1), [
        // Labels in another order are the same label set.
        { ...counter(30), labels: { engine: "0", model_name: "m" } },
      ]);
      await store.compact();
      const series = store.db.prepare(
        "SELECT count(*) AS n FROM series WHERE metric_name = 'vllm:generation_tokens_total'",
      ).get() as { n: number };
      assert.equal(series.n, 1);
      const [window] = loadSeriesWindows(
        store.db,
        "c",
        ["vllm:generation_tokens_total"],
        { startMs: 0, endMs: 20_000 },
      );
      assert.ok(window !== undefined);
      assert.deepEqual(window.samples, [
        { timestampMs: 0, value: 100 },
        { timestampMs: 5000, value: 150 },
        { timestampMs: 20_000, value: 30 },
      ]);
    } finally {
      store.close();
    }
  });
});

/** The schema of version 1, as the first release created it. */
const SCHEMA_V1 = `
CREATE TABLE scrapes (
  id INTEGER PRIMARY KEY, container TEXT NOT NULL, timestamp INTEGER NOT NULL,
  duration_seconds REAL NOT NULL, up INTEGER NOT NULL, samples_scraped INTEGER NOT NULL,
  parse_errors INTEGER NOT NULL, duplicate_samples INTEGER NOT NULL, error TEXT);
CREATE INDEX scrapes_by_container_time ON scrapes (container, timestamp);
CREATE TABLE series (
  id INTEGER PRIMARY KEY, container TEXT NOT NULL, metric_name TEXT NOT NULL,
  labels TEXT NOT NULL, family TEXT NOT NULL, metric_type TEXT NOT NULL,
  UNIQUE (container, metric_name, labels));
CREATE TABLE samples (
  series_id INTEGER NOT NULL, scrape_id INTEGER NOT NULL, value REAL,
  PRIMARY KEY (series_id, scrape_id)) WITHOUT ROWID;
CREATE VIEW metrics AS
  SELECT sc.timestamp AS timestamp, se.container AS container,
         se.metric_name AS metric_name, sa.value AS value, se.labels AS labels
  FROM samples sa JOIN series se ON se.id = sa.series_id
  JOIN scrapes sc ON sc.id = sa.scrape_id;
PRAGMA user_version = 1;
`;

/** Writes a version 1 file with two containers, a failed scrape and NaN. */
function createVersion1File(path: string): MetricRow[] {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(SCHEMA_V1);
  const insertScrape = db.prepare(
    `INSERT INTO scrapes (id, container, timestamp, duration_seconds, up, samples_scraped,
       parse_errors, duplicate_samples, error) VALUES (?, ?, ?, 0.01, ?, ?, 0, 0, ?)`,
  );
  const insertSeries = db.prepare(
    `INSERT INTO series (id, container, metric_name, labels, family, metric_type)
     VALUES (?, ?, ?, ?, ?, 'gauge')`,
  );
  const insertSample = db.prepare(
    "INSERT INTO samples (series_id, scrape_id, value) VALUES (?, ?, ?)",
  );
  const labels = '{"engine":"0"}';
  insertSeries.run(1, "a", "g", labels, "g");
  insertSeries.run(2, "a", "h", "{}", "h");
  insertSeries.run(3, "b", "g", labels, "g");
  const values = [1, 1, 2, null, null, 3, 3, 3];
  const expected: MetricRow[] = [];
  let scrapeId = 0;
  values.forEach((value, index) => {
    for (const [container, seriesIds] of [["a", [1, 2]], ["b", [3]]] as const) {
      scrapeId++;
      const up = !(container === "a" && index === 4);
      insertScrape.run(
        scrapeId,
        container,
        index * 5000,
        up ? 1 : 0,
        up ? seriesIds.length : 0,
        up ? null : "timed out",
      );
      if (!up) continue;
      for (const seriesId of seriesIds) {
        const stored = seriesId === 2 ? index * 0.5 : value;
        insertSample.run(seriesId, scrapeId, stored);
        expected.push({
          timestamp: index * 5000,
          container,
          metric_name: seriesId === 2 ? "h" : "g",
          value: stored ?? NaN,
          labels: seriesId === 2 ? "{}" : labels,
        });
      }
    }
  });
  db.close();
  return sortRows(expected);
}

Deno.test("migration from schema version 1 keeps every sample", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/v1.db`;
    const expected = createVersion1File(path);
    assert.throws(
      () => openStore(path, { readOnly: true }),
      /schema version 1, older than this program's 2/,
    );
    const store = openStore(path, { autoCompact: false });
    try {
      const version = store.db.prepare("PRAGMA user_version").get() as {
        user_version: number;
      };
      assert.equal(version.user_version, SCHEMA_VERSION);
      assert.deepEqual(viewRows(store), expected);
      assert.equal(tableCount(store, "recent_samples"), expected.length);
      await store.compact();
      assert.deepEqual(viewRows(store), expected);
      assert.equal(tableCount(store, "samples"), expected.length);
      // New scrapes continue the old ids and series.
      store.writeScrape(health("a", 40_000, 1), [
        gauge("g", { engine: "0" }, 3),
      ]);
      const series = tableCount(store, "series");
      assert.equal(series, 3);
    } finally {
      store.close();
    }
    const reader = openStore(path, { readOnly: true });
    try {
      assert.equal(viewRows(reader).length, expected.length + 1);
    } finally {
      reader.close();
    }
  });
});

Deno.test("newer schema version is rejected", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/future.db`;
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => openStore(path), /newer than this program's/);
    assert.throws(
      () => openStore(path, { readOnly: true }),
      /newer than this program's/,
    );
  });
});

Deno.test("runs are capped so the metrics view finds them by key range", async () => {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/m.db`, { autoCompact: false });
  for (let i = 0; i < 3000; i++) {
    store.writeScrape({
      container: "c",
      timestampMs: 1_000_000 + i * 5000,
      durationSeconds: 0,
      up: true,
      samplesScraped: 1,
      parseErrors: 0,
      duplicateSamples: 0,
      error: null,
    }, [{
      name: "constant",
      labels: {},
      value: 1,
      family: "constant",
      type: "gauge",
    }]);
  }
  await store.compact();
  const runs = store.db.prepare(
    "SELECT count(*) AS n, max(last_scrape_offset) AS longest FROM sample_runs",
  ).get() as { n: number; longest: number };
  assert.equal(runs.n, Math.ceil(3000 / MAX_RUN_SPAN_IDS));
  assert.equal(runs.longest, MAX_RUN_SPAN_IDS - 1);
  const rows = store.db.prepare(
    "SELECT count(*) AS n, min(timestamp) AS first, max(timestamp) AS last FROM metrics WHERE metric_name = 'constant'",
  ).get() as { n: number; first: number; last: number };
  assert.equal(rows.n, 3000);
  assert.equal(rows.first, 1_000_000);
  assert.equal(rows.last, 1_000_000 + 2999 * 5000);
  store.close();
  await Deno.remove(dir, { recursive: true });
});
