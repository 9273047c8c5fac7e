import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  appendContainerLog,
  readJsonl,
  REPO,
  serveMetrics,
  setRunning,
  startLogger,
  waitFor,
} from "./helpers.ts";

const IDLE = await Deno.readTextFile(
  `${REPO}/tests/testdata/vllm/metrics-v1-idle.prom`,
);
const BUSY = await Deno.readTextFile(
  `${REPO}/tests/testdata/vllm/metrics-v1-busy.prom`,
);
const SERIES_PER_SCRAPE = 449;

/** Builds `count` log entries on both streams, one second apart from 2026-11-17T09:00:00Z. */
function logEntries(
  count: number,
): { time: string; stream: "stdout" | "stderr"; log: string }[] {
  const entries = [];
  for (let i = 0; i < count; i++) {
    const time = new Date(Date.UTC(2026, 10, 17, 9, 0, i)).toISOString()
      .replace("Z", "123456Z");
    const stream = i % 3 === 0 ? "stderr" as const : "stdout" as const;
    entries.push({
      time,
      stream,
      log: `(APIServer pid=1) INFO 11-17 09:00:${
        String(i % 60).padStart(2, "0")
      } [api_server.py:${100 + i}] line ${i}\n`,
    });
  }
  return entries;
}

function countRows(
  dbPath: string,
  sql: string,
  ...params: (string | number)[]
): number {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return Number((db.prepare(sql).get(...params) as { n: number }).n);
  } finally {
    db.close();
  }
}

Deno.test({
  name: "run with a config captures logs and scrapes until SIGTERM",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const dockerRoot = `${dir}/docker`;
    const entries = logEntries(40);
    await appendContainerLog(dockerRoot, "vllm-e2e", entries);
    await setRunning(dockerRoot, "vllm-e2e", true);
    const metrics = serveMetrics([IDLE, BUSY]);
    const config = `${dir}/logger.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "log_capture:",
        `  output_dir: ${dir}/logs`,
        "metrics_scraper:",
        "  interval_seconds: 0.5",
        `  db_path: ${dir}/metrics.db`,
        "containers:",
        "  - name: vllm-e2e",
        `    metrics_endpoint: ${metrics.url}`,
      ].join("\n") + "\n",
    );
    const child = startLogger(["run", "--config", config], dockerRoot);
    const stderr = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let logText = "";
    const drain = (async () => {
      for (;;) {
        const { value, done } = await stderr.read();
        if (done) return;
        logText += value;
      }
    })();
    try {
      await waitFor(() => metrics.requests() >= 6, 20_000, "six scrapes");
      const dayFile = `${dir}/logs/vllm-e2e/2026-11-17.jsonl`;
      await waitFor(
        async () => {
          try {
            return (await Deno.readTextFile(dayFile)).split("\n").length >
              entries.length;
          } catch {
            return false;
          }
        },
        10_000,
        "all log lines in the day file",
      );

      const stoppedAt = performance.now();
      child.kill("SIGTERM");
      const status = await child.status;
      const stopSeconds = (performance.now() - stoppedAt) / 1000;
      await drain;
      await child.stdout.cancel();
      assert.equal(status.code, 0, logText);
      assert.ok(stopSeconds < 5, `stopped in ${stopSeconds} s`);

      // The two streams are read concurrently, so only each stream's own order is kept in the file.
      const records = (await readJsonl(dayFile)).sort((a, b) =>
        String(a.timestamp).localeCompare(String(b.timestamp))
      );
      assert.equal(records.length, entries.length);
      for (const [i, record] of records.entries()) {
        assert.equal(typeof record.timestamp, "string");
        assert.equal(record.timestamp, entries[i]!.time);
        assert.equal(record.container, "vllm-e2e");
        assert.equal(record.stream, entries[i]!.stream);
        assert.equal(record.level, "INFO");
        assert.equal(record.message, `line ${i}`);
      }

      const dbPath = `${dir}/metrics.db`;
      const scrapes = countRows(
        dbPath,
        "SELECT count(*) AS n FROM scrapes WHERE up = 1",
      );
      assert.ok(scrapes >= 6, `${scrapes} scrapes stored`);
      assert.equal(
        countRows(dbPath, "SELECT count(*) AS n FROM scrapes WHERE up = 0"),
        0,
      );
      assert.equal(
        countRows(dbPath, "SELECT count(*) AS n FROM metrics"),
        SERIES_PER_SCRAPE * scrapes,
      );
      assert.equal(
        countRows(
          dbPath,
          "SELECT count(*) AS n FROM (SELECT timestamp, value FROM metrics WHERE metric_name = 'vllm:kv_cache_usage_perc' AND container = ?)",
          "vllm-e2e",
        ),
        scrapes,
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await metrics.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "flag form writes <log-dir>/YYYY-MM-DD.jsonl and scrapes localhost",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const dockerRoot = `${dir}/docker`;
    const entries = logEntries(5);
    await appendContainerLog(dockerRoot, "vllm-flags", entries);
    await setRunning(dockerRoot, "vllm-flags", true);
    const metrics = serveMetrics([IDLE]);
    const child = startLogger([
      "--container",
      "vllm-flags",
      "--metrics-port",
      String(metrics.port),
      "--log-dir",
      `${dir}/vllm-flags`,
      "--db",
      `${dir}/metrics.db`,
      "--interval-seconds",
      "0.5",
    ], dockerRoot);
    try {
      await waitFor(() => metrics.requests() >= 2, 20_000, "two scrapes");
      const dayFile = `${dir}/vllm-flags/2026-11-17.jsonl`;
      await waitFor(
        async () => {
          try {
            return (await readJsonl(dayFile)).length === entries.length;
          } catch {
            return false;
          }
        },
        10_000,
        "the day file",
      );
      child.kill("SIGTERM");
      const status = await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
      assert.equal(status.code, 0);
      const scrapes = countRows(
        `${dir}/metrics.db`,
        "SELECT count(*) AS n FROM scrapes WHERE container = 'vllm-flags'",
      );
      assert.ok(scrapes >= 2);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await metrics.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
