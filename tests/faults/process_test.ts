/**
 * Process faults: SIGTERM during a scrape, during a day-file compression and
 * during database writes, and SIGKILL at random points in a loop. After each
 * stop every day file is whole JSON lines, the database passes `PRAGMA
 * integrity_check`, and after a final run every line docker has is in the
 * files exactly once.
 *
 * `HOROS_FAULT_KILL_ROUNDS` sets the number of SIGKILL rounds (default 5).
 */
import assert from "node:assert/strict";
import { maintainDayFiles } from "../../src/logs/maintenance.ts";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
} from "../../src/simulate/docker_store.ts";
import { FaultServer, hang, reply } from "./fault_server.ts";
import {
  assertDatabaseIntact,
  assertLinesExactlyOnce,
  delay,
  listTree,
  LoggerProcess,
  NO_SANITIZERS,
  queryDatabase,
  readDayFiles,
  waitUntil,
} from "./helpers.ts";

const BASE_MS = Date.UTC(2026, 10, 17, 9, 0, 0);

function generatedLines(from: number, to: number): DockerLogLine[] {
  const lines: DockerLogLine[] = [];
  for (let i = from; i < to; i++) {
    const micros = String(i % 1000).padStart(3, "0");
    lines.push({
      stream: i % 4 === 0 ? "stderr" : "stdout",
      text: `generated line ${i}`,
      time: new Date(BASE_MS + Math.floor(i / 1000)).toISOString().replace(
        "Z",
        `${micros}001Z`,
      ),
    });
  }
  return lines;
}

function gaugeBody(series: number, value: number): string {
  const lines = ["# TYPE vllm:test_gauge gauge"];
  for (let i = 0; i < series; i++) {
    lines.push(`vllm:test_gauge{index="${i}"} ${value}`);
  }
  return lines.join("\n") + "\n";
}

function scrapeRows(dbPath: string): { up: number; error: string | null }[] {
  try {
    return queryDatabase(dbPath, "SELECT up, error FROM scrapes ORDER BY id");
  } catch {
    return [];
  }
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(path),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16)).join("");
}

async function gunzip(path: string): Promise<Uint8Array<ArrayBuffer>> {
  using file = await Deno.open(path);
  return new Uint8Array(
    await new Response(
      file.readable.pipeThrough(new DecompressionStream("gzip")),
    ).arrayBuffer(),
  );
}

/**
 * Writes an old day file of about `mebibytes` MiB of random, poorly
 * compressible JSON lines, and a one-line file of the day before the
 * generated lines, so that ages count from there at start.
 */
async function writeOldDayFiles(
  logDir: string,
  mebibytes: number,
): Promise<void> {
  await Deno.writeTextFile(
    `${logDir}/2026-11-16.jsonl`,
    JSON.stringify({
      timestamp: "2026-11-16T23:59:59.000000001Z",
      level: "INFO",
      container: "vllm-old",
      stream: "stdout",
      message: "the day before",
    }) + "\n",
  );
  using file = await Deno.open(`${logDir}/2026-11-01.jsonl`, {
    write: true,
    create: true,
    mode: 0o640,
  });
  const random = new Uint8Array(48 * 1024);
  const encoder = new TextEncoder();
  for (let i = 0; i < mebibytes * 16; i++) {
    crypto.getRandomValues(random);
    const record = {
      timestamp: "2026-11-01T00:00:00.000000001Z",
      level: "INFO",
      container: "vllm-compress",
      stream: "stdout",
      message: btoa(String.fromCharCode(...random)).slice(0, 64 * 1024 - 200),
    };
    const bytes = encoder.encode(JSON.stringify(record) + "\n");
    let offset = 0;
    while (offset < bytes.length) {
      offset += await file.write(bytes.subarray(offset));
    }
  }
}

Deno.test({
  name: "SIGTERM during a scrape",
  ...NO_SANITIZERS,
  fn: async () => {
    // Exit 0 within seconds; the cut scrape is not recorded as a failure.
    const dir = await Deno.makeTempDir();
    const dbPath = `${dir}/metrics.db`;
    const server = FaultServer.start(
      { good: reply(gaugeBody(10, 1)), hang },
      "good",
    );
    const logger = LoggerProcess.start([
      "--container",
      "vllm-term-scrape",
      "--metrics-url",
      server.url,
      "--db",
      dbPath,
      "--interval-seconds",
      "5",
    ]);
    try {
      await waitUntil(() => scrapeRows(dbPath).length >= 1, 20_000, "a scrape");
      server.mode = "hang";
      // The next scrape starts five seconds after the first.
      await waitUntil(() => server.count("hang") >= 1, 10_000, "a hung scrape");
      const stopped = await logger.stop("SIGTERM");
      assert.equal(stopped.code, 0, logger.stderrText());
      assert.ok(stopped.seconds < 3, `stopped in ${stopped.seconds} s`);
      assertDatabaseIntact(dbPath);
      assert.deepEqual(scrapeRows(dbPath).map((row) => row.up), [1]);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGTERM during a day file compression",
  ...NO_SANITIZERS,
  fn: async () => {
    // Exit 0 at once, the original file intact; the next run compresses it.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const outputDir = `${dir}/logs`;
    const logDir = `${outputDir}/vllm-compress`;
    await createContainer(root, "vllm-compress");
    await appendDockerLogLines(root, "vllm-compress", generatedLines(0, 20));
    await Deno.mkdir(logDir, { recursive: true });
    const oldFile = `${logDir}/2026-11-01.jsonl`;
    await writeOldDayFiles(logDir, 128);
    const oldHash = await sha256(oldFile);
    const config = `${dir}/logger.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "log_capture:",
        `  output_dir: ${outputDir}`,
        "  compress_after_days: 1",
        "  retention_days: 365",
        "containers:",
        "  - name: vllm-compress",
        "",
      ].join("\n"),
    );
    let logger = LoggerProcess.start(["run", "--config", config], {
      dockerRoot: root,
    });
    try {
      await waitUntil(
        () => listTree(logDir).some((name) => name.endsWith(".gz.tmp")),
        20_000,
        "the compression to start",
      );
      const stopped = await logger.stop("SIGTERM");
      assert.equal(stopped.code, 0, logger.stderrText());
      assert.ok(stopped.seconds < 2, `stopped in ${stopped.seconds} s`);
      assert.deepEqual(
        listTree(logDir).filter((name) => name.startsWith("2026-11-01")),
        ["2026-11-01.jsonl"],
        "only the original is left",
      );
      assert.equal(await sha256(oldFile), oldHash);
      // Log capture did not wait for the compression.
      assert.equal((await readDayFiles(logDir)).length > 0, true);

      logger = LoggerProcess.start(["run", "--config", config], {
        dockerRoot: root,
      });
      await logger.waitForLine(
        (line) => line.message === "Compressed day file",
        60_000,
        "the compression to finish",
      );
      assert.equal((await logger.stop()).code, 0);
      assert.deepEqual(
        listTree(logDir).filter((name) => name.startsWith("2026-11-01")),
        ["2026-11-01.jsonl.gz"],
      );
      const restored = await gunzip(`${oldFile}.gz`);
      const digest = await crypto.subtle.digest("SHA-256", restored);
      assert.equal(
        Array.from(new Uint8Array(digest), (b) => b.toString(16)).join(""),
        oldHash,
      );
      const records = (await readDayFiles(logDir)).filter((record) =>
        String(record.timestamp).startsWith("2026-11-17")
      );
      assertLinesExactlyOnce(records, 20);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGTERM during database writes",
  ...NO_SANITIZERS,
  fn: async () => {
    // Large scrapes, SIGTERM at random moments: exit 0, whole scrapes only.
    const dir = await Deno.makeTempDir();
    const dbPath = `${dir}/metrics.db`;
    let value = 0;
    const server = FaultServer.start({
      good: (conn, s) => reply(gaugeBody(20_000, value++))(conn, s),
    }, "good");
    try {
      for (let round = 0; round < 3; round++) {
        const logger = LoggerProcess.start([
          "--container",
          "vllm-term-write",
          "--metrics-url",
          server.url,
          "--db",
          dbPath,
          "--interval-seconds",
          "0.2",
        ]);
        const before = server.count("good");
        await waitUntil(
          () => server.count("good") >= before + 2,
          20_000,
          "scrapes",
        );
        await delay(Math.random() * 400);
        const stopped = await logger.stop("SIGTERM");
        assert.equal(stopped.code, 0, logger.stderrText());
        assert.ok(stopped.seconds < 5, `stopped in ${stopped.seconds} s`);
        assertDatabaseIntact(dbPath);
      }
      const rows = scrapeRows(dbPath);
      assert.ok(rows.length >= 5, `${rows.length} scrapes`);
      assert.ok(rows.every((row) => row.up === 1), JSON.stringify(rows));
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const KILL_ROUNDS = Number(Deno.env.get("HOROS_FAULT_KILL_ROUNDS") ?? "5");

Deno.test({
  name: `SIGKILL at random points, ${KILL_ROUNDS} rounds`,
  ...NO_SANITIZERS,
  fn: async () => {
    // After each kill the files and database are readable; at the end
    // every line docker has is in the files exactly once.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const outputDir = `${dir}/logs`;
    const logDir = `${outputDir}/vllm-killed`;
    const dbPath = `${dir}/metrics.db`;
    await createContainer(root, "vllm-killed");
    await Deno.mkdir(logDir, { recursive: true });
    // An old day file, so compressions are killed too.
    await writeOldDayFiles(logDir, 8);
    let value = 0;
    const server = FaultServer.start({
      good: (conn, s) => reply(gaugeBody(2000, value++))(conn, s),
    }, "good");
    const config = `${dir}/logger.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "log_capture:",
        `  output_dir: ${outputDir}`,
        "  compress_after_days: 1",
        "  retention_days: 365",
        "metrics_scraper:",
        "  interval_seconds: 0.2",
        `  db_path: ${dbPath}`,
        "containers:",
        "  - name: vllm-killed",
        `    metrics_endpoint: ${server.url}`,
        "",
      ].join("\n"),
    );
    const total = 1000 * (KILL_ROUNDS + 2);
    let produced = 0;
    let producing = true;
    const producer = (async () => {
      while (producing && produced < total) {
        const next = Math.min(total, produced + 40);
        await appendDockerLogLines(
          root,
          "vllm-killed",
          generatedLines(produced, next),
        );
        produced = next;
        await delay(10);
      }
    })();
    try {
      for (let round = 0; round < KILL_ROUNDS; round++) {
        const logger = LoggerProcess.start(["run", "--config", config], {
          dockerRoot: root,
        });
        await logger.waitForLine(
          (line) => line.message === "Logger started",
          20_000,
          "start",
        );
        await delay(200 + Math.random() * 1000);
        await logger.stop("SIGKILL");
        // Between runs, as a person would look at them.
        await readDayFiles(logDir);
        assertDatabaseIntact(dbPath);
      }
      producing = false;
      await producer;
      const logger = LoggerProcess.start(["run", "--config", config], {
        dockerRoot: root,
      });
      await waitUntil(
        async () =>
          (await readDayFiles(logDir)).filter((record) =>
            String(record.message).startsWith("generated line")
          ).length >= produced,
        30_000,
        `${produced} lines`,
      );
      await delay(300);
      const stopped = await logger.stop("SIGTERM");
      assert.equal(stopped.code, 0, logger.stderrText());
      const records = (await readDayFiles(logDir)).filter((record) =>
        record.container === "vllm-killed" &&
        String(record.timestamp).startsWith("2026-11-17")
      );
      assertLinesExactlyOnce(records, produced);
      assertDatabaseIntact(dbPath);
      const leftovers = listTree(logDir).filter((name) =>
        name.endsWith(".tmp")
      );
      assert.deepEqual(leftovers, [], "no temporary file after a clean run");
    } finally {
      producing = false;
      await producer;
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "compression keeps a day file written meanwhile",
  ...NO_SANITIZERS,
  fn: async (t) => {
    // A line appended during the compression is not lost with the
    // original, and a day the writer opens meanwhile is left alone.
    const line = JSON.stringify({
      timestamp: "2026-11-01T23:59:59.000000001Z",
      message: "appended during compression",
    }) + "\n";
    for (const change of ["appended", "opened by the writer"] as const) {
      await t.step(change, async () => {
        const dir = await Deno.makeTempDir();
        try {
          await writeOldDayFiles(dir, 32);
          const path = `${dir}/2026-11-01.jsonl`;
          const active = new Set<string>();
          const running = maintainDayFiles(dir, {
            compression: "gzip",
            compressAfterDays: 1,
            retentionDays: 365,
            activeDays: active,
          });
          await waitUntil(
            () => listTree(dir).includes("2026-11-01.jsonl.gz.tmp"),
            10_000,
            "the compression to start",
          );
          if (change === "appended") {
            await Deno.writeTextFile(path, line, { append: true });
          } else {
            active.add("2026-11-01");
          }
          const result = await running;
          const left = listTree(dir).filter((name) =>
            name.startsWith("2026-11-01")
          );
          if (change === "opened by the writer") {
            assert.deepEqual(result.compressed, []);
            assert.deepEqual(left, ["2026-11-01.jsonl"]);
            return;
          }
          // Read before the end of the file: compressed with the line.
          // Read after: the original is kept, with the line.
          assert.equal(left.length, 1, left.join());
          const text = left[0] === "2026-11-01.jsonl"
            ? await Deno.readTextFile(path)
            : new TextDecoder().decode(await gunzip(`${path}.gz`));
          assert.ok(text.endsWith(line));
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  },
});
