/**
 * Storage faults: a database locked by another writer (while running and at
 * start), a database file deleted while open, a read-only database
 * directory, and a full disk under the log directory and under the
 * database. The logger keeps running and logs each episode once. It keeps
 * what it cannot write in memory, or reads it again from docker, and writes
 * it once storage works again. No JSONL line is torn, and the database
 * passes `PRAGMA integrity_check`.
 *
 * Cases that need a small file system mount a tmpfs, so they run only as
 * root on Linux and are reported as ignored elsewhere.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
} from "../../src/simulate/docker_store.ts";
import { Logger } from "../../src/log.ts";
import { Scraper } from "../../src/metrics/scraper.ts";
import { type MetricsStore, openStore } from "../../src/metrics/store.ts";
import { FaultServer, reply } from "./fault_server.ts";
import {
  assertDatabaseIntact,
  assertLinesExactlyOnce,
  canMountTmpfs,
  delay,
  fillDisk,
  LoggerProcess,
  mountTmpfs,
  NO_SANITIZERS,
  queryDatabase,
  readDayFiles,
  remount,
  unmount,
  waitUntil,
} from "./helpers.ts";

const CAN_MOUNT = canMountTmpfs();
const BASE_MS = Date.UTC(2026, 10, 17, 9, 0, 0);

function generatedLines(from: number, to: number, pad = 0): DockerLogLine[] {
  const lines: DockerLogLine[] = [];
  for (let i = from; i < to; i++) {
    const micros = String(i % 1000).padStart(3, "0");
    lines.push({
      stream: i % 4 === 0 ? "stderr" : "stdout",
      text: `generated line ${i}${pad > 0 ? " " + "x".repeat(pad) : ""}`,
      time: new Date(BASE_MS + Math.floor(i / 1000)).toISOString().replace(
        "Z",
        `${micros}001Z`,
      ),
    });
  }
  return lines;
}

/**
 * Exposition text with `series` gauges; `variant` changes the label sets.
 * Each value is `index + 1000 * variant`, so a sample stored under another
 * series shows.
 */
function metricsBody(series: number, variant = 0): string {
  const lines = ["# TYPE vllm:test_gauge gauge"];
  for (let i = 0; i < series; i++) {
    lines.push(
      `vllm:test_gauge{index="${i}",variant="${variant}"} ${
        i + 1000 * variant
      }`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Asserts that every stored sample has the value of its own series. */
function assertSamplesMatchSeries(dbPath: string): void {
  const wrong = queryDatabase<{ labels: string; value: number }>(
    dbPath,
    `SELECT labels, value FROM metrics WHERE metric_name = 'vllm:test_gauge'
     AND value != json_extract(labels, '$.index') + 1000 * json_extract(labels, '$.variant')
     LIMIT 5`,
  );
  assert.deepEqual(wrong, [], "samples stored under another series");
}

/** Starts a server whose body the test can change; it counts requests. */
function metricsServer(series: number): {
  server: FaultServer;
  setVariant(variant: number): void;
} {
  let body = metricsBody(series);
  const server = FaultServer.start({
    good: (conn, s) => reply(body)(conn, s),
  }, "good");
  return {
    server,
    setVariant: (variant) => body = metricsBody(series, variant),
  };
}

function scrapeCount(dbPath: string): number {
  try {
    return queryDatabase<{ n: number }>(
      dbPath,
      "SELECT count(*) AS n FROM scrapes",
    )[0]!.n;
  } catch {
    return 0;
  }
}

/** Asserts the scrapes table has one row per request served, but the one a stop may cut. */
function assertNoScrapeLost(dbPath: string, requests: number): void {
  const rows = scrapeCount(dbPath);
  assert.ok(
    rows >= requests - 1 && rows <= requests,
    `${rows} scrapes stored for ${requests} requests`,
  );
}

async function countRecords(logDir: string): Promise<number> {
  try {
    return (await readDayFiles(logDir)).length;
  } catch {
    return 0;
  }
}

Deno.test({
  name: "database locked by another writer for 10 s",
  ...NO_SANITIZERS,
  fn: async () => {
    // Scrapes are held in memory and all stored afterwards; logs go on.
    const dir = await Deno.makeTempDir();
    const dbPath = `${dir}/metrics.db`;
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    await createContainer(root, "vllm-locked");
    const { server } = metricsServer(50);
    const logger = LoggerProcess.start([
      "--container",
      "vllm-locked",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--log-dir",
      logDir,
      "--interval-seconds",
      "0.25",
    ], { dockerRoot: root });
    let holder: DatabaseSync | null = null;
    try {
      await waitUntil(() => scrapeCount(dbPath) >= 3, 20_000, "scrapes");
      holder = new DatabaseSync(dbPath);
      holder.exec("BEGIN EXCLUSIVE");
      const lockedAt = server.count("good");
      await appendDockerLogLines(root, "vllm-locked", generatedLines(0, 100));
      await waitUntil(
        async () => await countRecords(logDir) >= 100,
        8_000,
        "log lines captured while the database is locked",
      );
      await delay(10_000);
      assert.ok(server.count("good") >= lockedAt + 20, "scrapes went on");
      holder.exec("COMMIT");
      holder.close();
      holder = null;
      await logger.waitForLine(
        (line) => line.message === "Database writes resumed",
        10_000,
        "writes resumed",
      );
      await delay(500);
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0, logger.stderrText());
      assertNoScrapeLost(dbPath, server.count("good"));
      assertDatabaseIntact(dbPath);
      assertSamplesMatchSeries(dbPath);
      const busy = logger.lines.filter((line) =>
        line.message.startsWith("Database busy")
      );
      assert.equal(busy.length, 1, logger.stderrText());
      assert.equal(busy[0]!.container, "vllm-locked");
      const resumed = logger.withMessage("Database writes resumed");
      assert.equal(resumed.length, 1);
      assert.equal(resumed[0]!.lost_scrapes, 0);
      assertLinesExactlyOnce(await readDayFiles(logDir), 100);
    } finally {
      if (holder?.isTransaction) holder.exec("ROLLBACK");
      holder?.close();
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "database locked while the logger starts",
  ...NO_SANITIZERS,
  fn: async () => {
    // A fresh file locked during the schema setup: retried, not fatal.
    const dir = await Deno.makeTempDir();
    const dbPath = `${dir}/metrics.db`;
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    await createContainer(root, "vllm-start-locked");
    await appendDockerLogLines(
      root,
      "vllm-start-locked",
      generatedLines(0, 50),
    );
    const { server } = metricsServer(20);
    let holder: DatabaseSync | null = new DatabaseSync(dbPath);
    holder.exec("PRAGMA journal_mode = WAL");
    holder.exec("CREATE TABLE other_tool (x)");
    holder.exec("BEGIN EXCLUSIVE");
    const logger = LoggerProcess.start([
      "--container",
      "vllm-start-locked",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--log-dir",
      logDir,
      "--interval-seconds",
      "0.25",
    ], { dockerRoot: root });
    try {
      const failed = await logger.waitForLine(
        (line) =>
          line.message.startsWith("Opening the metrics database failed"),
        20_000,
        "the open failure",
      );
      assert.equal(failed.db, dbPath);
      assert.match(String(failed.err), /locked/);
      await waitUntil(
        async () => await countRecords(logDir) >= 50,
        10_000,
        "log lines while the database is locked",
      );
      await delay(1000);
      assert.ok(await logger.isRunning(), logger.stderrText());
      holder.exec("COMMIT");
      holder.close();
      holder = null;
      await waitUntil(
        () => scrapeCount(dbPath) >= server.count("good") - 1,
        15_000,
        "held scrapes stored",
      );
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertNoScrapeLost(dbPath, server.count("good"));
      assertDatabaseIntact(dbPath);
      assertSamplesMatchSeries(dbPath);
      assert.equal(
        logger.lines.filter((line) =>
          line.message.startsWith("Opening the metrics database failed")
        ).length,
        1,
        logger.stderrText(),
      );
    } finally {
      if (holder?.isTransaction) holder.exec("ROLLBACK");
      holder?.close();
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "database file deleted while open",
  ...NO_SANITIZERS,
  fn: async () => {
    // The logger notices, logs it, and goes on in a new file at the path.
    const dir = await Deno.makeTempDir();
    const dbPath = `${dir}/metrics.db`;
    const { server } = metricsServer(30);
    const logger = LoggerProcess.start([
      "--container",
      "vllm-deleted",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--interval-seconds",
      "0.25",
    ]);
    try {
      await waitUntil(() => scrapeCount(dbPath) >= 4, 20_000, "scrapes");
      await Deno.remove(dbPath);
      const line = await logger.waitForLine(
        (line) => line.message.includes("deleted or replaced"),
        10_000,
        "the deletion noticed",
      );
      assert.equal(line.db, dbPath);
      await waitUntil(
        () => scrapeCount(dbPath) >= 4,
        10_000,
        "scrapes in the new file",
      );
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertDatabaseIntact(dbPath);
      assertSamplesMatchSeries(dbPath);
      const info = Deno.statSync(dbPath);
      assert.equal(info.mode! & 0o777, 0o640);
      assert.equal(
        logger.lines.filter((line) => line.level === "error").length,
        1,
        logger.stderrText(),
      );
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "database directory read-only, then writable",
  ignore: !CAN_MOUNT,
  ...NO_SANITIZERS,
  fn: async () => {
    // A read-only file system at start: clear error, retries, recovery.
    const dir = await Deno.makeTempDir();
    const dbDir = `${dir}/db`;
    const dbPath = `${dbDir}/metrics.db`;
    await mountTmpfs(dbDir, 1024);
    await remount(dbDir, true);
    const { server } = metricsServer(20);
    const logger = LoggerProcess.start([
      "--container",
      "vllm-readonly",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--interval-seconds",
      "0.25",
    ]);
    try {
      const failed = await logger.waitForLine(
        (line) =>
          line.message.startsWith("Opening the metrics database failed"),
        20_000,
        "the open failure",
      );
      assert.equal(failed.db, dbPath);
      assert.match(String(failed.err), /read-only/i);
      await delay(1500);
      assert.ok(await logger.isRunning());
      await remount(dbDir, false);
      await logger.waitForLine(
        (line) => line.message === "Metrics database opened",
        20_000,
        "the database opened",
      );
      await waitUntil(
        () => scrapeCount(dbPath) >= server.count("good") - 1,
        10_000,
        "held scrapes stored",
      );
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertNoScrapeLost(dbPath, server.count("good"));
      assertDatabaseIntact(dbPath);
      assertSamplesMatchSeries(dbPath);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await unmount(dbDir);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "disk full under the log directory",
  ignore: !CAN_MOUNT,
  ...NO_SANITIZERS,
  fn: async () => {
    // No torn line, one error line, capture resumes once space returns.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const mountDir = `${dir}/logs`;
    const logDir = `${mountDir}/vllm-full`;
    const name = "vllm-full";
    await createContainer(root, name);
    await mountTmpfs(mountDir, 4096);
    const filler = await fillDisk(mountDir, 64 * 1024);
    const logger = LoggerProcess.start(
      ["--container", name, "--log-dir", logDir],
      { dockerRoot: root },
    );
    try {
      const total = 4000;
      for (let i = 0; i < total; i += 250) {
        await appendDockerLogLines(root, name, generatedLines(i, i + 250, 80));
        await delay(20);
      }
      await logger.waitForLine(
        (line) => line.message.startsWith("Writing log events failed"),
        15_000,
        "the write failure",
      );
      await delay(1500);
      // Whatever was written while the disk was full is whole lines.
      const partial = await readDayFiles(logDir);
      assert.ok(partial.length < total);
      assert.ok(await logger.isRunning());
      await Deno.remove(filler);
      await waitUntil(
        async () => await countRecords(logDir) >= total,
        40_000,
        "every line after space returned",
      );
      await delay(300);
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      const records = await readDayFiles(logDir);
      for (const record of records) {
        record.message = String(record.message).split(" ").slice(0, 3).join(
          " ",
        );
      }
      assertLinesExactlyOnce(records, total);
      const failures = logger.lines.filter((line) =>
        line.message.startsWith("Writing log events failed")
      );
      assert.equal(failures.length, 1, logger.stderrText());
      assert.match(String(failures[0]!.err), /No space left on device/);
      assert.equal(logger.withMessage("Writing log events resumed").length, 1);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await unmount(mountDir);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "disk full under the database",
  ignore: !CAN_MOUNT,
  ...NO_SANITIZERS,
  fn: async () => {
    // Scrapes are held, then stored; new series created meanwhile are kept.
    const dir = await Deno.makeTempDir();
    const dbDir = `${dir}/db`;
    const dbPath = `${dbDir}/metrics.db`;
    await mountTmpfs(dbDir, 8192);
    const { server, setVariant } = metricsServer(200);
    const logger = LoggerProcess.start([
      "--container",
      "vllm-db-full",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--interval-seconds",
      "0.25",
    ]);
    let filler: string | null = null;
    try {
      await waitUntil(() => scrapeCount(dbPath) >= 3, 20_000, "scrapes");
      filler = await fillDisk(dbDir);
      let variant = 0;
      await logger.waitForLine(
        (line) => {
          setVariant(++variant % 4);
          return line.message.startsWith("Database write failed");
        },
        20_000,
        "the write failure",
      );
      for (let i = 0; i < 6; i++) {
        setVariant(++variant % 4);
        await delay(250);
      }
      assert.ok(await logger.isRunning());
      await Deno.remove(filler);
      filler = null;
      await logger.waitForLine(
        (line) => line.message === "Database writes resumed",
        10_000,
        "writes resumed",
      );
      await delay(500);
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertNoScrapeLost(dbPath, server.count("good"));
      assertDatabaseIntact(dbPath);
      assertSamplesMatchSeries(dbPath);
      const failed = logger.lines.filter((line) =>
        line.message.startsWith("Database write failed")
      );
      assert.equal(failed.length, 1, logger.stderrText());
      assert.match(String(failed[0]!.err), /full/);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      if (filler !== null) await Deno.remove(filler).catch(() => {});
      await unmount(dbDir);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "scrapes held for a closed database stay bounded",
  ...NO_SANITIZERS,
  fn: async () => {
    // 100,000 samples a scrape: the third one drops the oldest held scrape.
    const dir = await Deno.makeTempDir();
    const { server } = metricsServer(100_000);
    const lines: string[] = [];
    let store: MetricsStore | null = null;
    const scraper = new Scraper({
      container: "vllm-held",
      url: server.url,
      intervalMs: 60_000,
      timeoutMs: 10_000,
      store: () => store,
      logger: new Logger({ sink: (line) => lines.push(line) }),
    });
    try {
      for (let i = 0; i < 3; i++) await scraper.scrapeOnce();
      const messages = () => lines.map((line) => JSON.parse(line));
      const dropped = messages().filter((line) =>
        line.message.startsWith("Database unavailable too long")
      );
      assert.equal(dropped.length, 1, lines.join("\n"));
      assert.equal(dropped[0].held_scrapes, 2);
      store = openStore(`${dir}/metrics.db`);
      await scraper.scrapeOnce();
      const resumed = messages().filter((line) =>
        line.message === "Database writes resumed"
      );
      assert.equal(resumed.length, 1);
      assert.equal(resumed[0].lost_scrapes, 1);
      assert.equal(scrapeCount(`${dir}/metrics.db`), 3);
    } finally {
      store?.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
