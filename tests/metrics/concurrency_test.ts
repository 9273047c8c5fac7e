import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  DENO,
  REPO,
  serveMetrics,
  startLogger,
  waitFor,
} from "../e2e/helpers.ts";

const IDLE = await Deno.readTextFile(
  `${REPO}/tests/testdata/vllm/metrics-v1-idle.prom`,
);
const BUSY = await Deno.readTextFile(
  `${REPO}/tests/testdata/vllm/metrics-v1-busy.prom`,
);
const SERIES_PER_SCRAPE = 449;
const CONTAINERS = ["vllm-a", "vllm-b", "vllm-c"];
/** How long the three loggers scrape together, in milliseconds. */
const SCRAPING_MS = 14_000;

interface Output {
  code: number;
  stderr: string;
}

async function collect(child: Deno.ChildProcess): Promise<Output> {
  const [status, , stderr] = await Promise.all([
    child.status,
    child.stdout.cancel(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stderr };
}

/** Lines of a process's stderr that report a lock, or any error or warning. */
function problems(stderr: string): string[] {
  return stderr.split("\n").filter((line) =>
    /locked|busy|"level":"(error|warn)"|error:/i.test(line)
  );
}

/** Runs `metrics stats --format json` again and again until `stop` aborts. */
async function statsLoop(
  db: string,
  stop: AbortSignal,
): Promise<{ runs: number; failures: string[] }> {
  let runs = 0;
  const failures: string[] = [];
  while (!stop.aborted) {
    const output = await new Deno.Command(DENO, {
      args: [
        "run",
        "--allow-all",
        `${REPO}/main.ts`,
        "metrics",
        "stats",
        "--db",
        db,
        "--last",
        "1h",
        "--format",
        "json",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    runs++;
    const stderr = new TextDecoder().decode(output.stderr);
    if (output.code !== 0 || stderr.trim() !== "") {
      failures.push(`exit ${output.code}: ${stderr.trim()}`);
      continue;
    }
    const stats = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      container: string;
    }[];
    if (stats.length === 0) failures.push("stats listed no container");
  }
  return { runs, failures };
}

Deno.test({
  name: "three loggers and a reader share one database",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const db = `${dir}/metrics.db`;
    const servers = CONTAINERS.map(() => serveMetrics([IDLE, BUSY]));
    const loggers = CONTAINERS.map((container, index) =>
      startLogger([
        "--container",
        container,
        "--metrics-url",
        servers[index]!.url,
        "--db",
        db,
        "--interval-seconds",
        "0.2",
      ], `${dir}/docker`)
    );
    const outputs = loggers.map(collect);
    const stopReader = new AbortController();
    let reader: Promise<{ runs: number; failures: string[] }> | null = null;
    try {
      await waitFor(
        () => servers.every((server) => server.requests() >= 3),
        20_000,
        "three scrapes of every container",
      );
      reader = statsLoop(db, stopReader.signal);
      await new Promise((resolve) => setTimeout(resolve, SCRAPING_MS));
      for (const logger of loggers) logger.kill("SIGTERM");
      const results = await Promise.all(outputs);
      stopReader.abort();
      const { runs, failures } = await reader;

      for (const [index, result] of results.entries()) {
        assert.equal(result.code, 0, `logger ${CONTAINERS[index]} exit code`);
        assert.deepEqual(
          problems(result.stderr),
          [],
          `logger ${CONTAINERS[index]} stderr`,
        );
      }
      assert.ok(runs >= 3, `${runs} stats runs`);
      assert.deepEqual(failures, [], "stats runs");

      const database = new DatabaseSync(db, { readOnly: true });
      try {
        for (const [index, container] of CONTAINERS.entries()) {
          const requests = servers[index]!.requests();
          const row = database.prepare(
            `SELECT count(*) AS scrapes, coalesce(sum(up), 0) AS up,
                    coalesce(sum(samples_scraped), 0) AS samples
             FROM scrapes WHERE container = ?`,
          ).get(container) as { scrapes: number; up: number; samples: number };
          // A request in flight at SIGTERM is dropped, not stored.
          assert.ok(
            row.scrapes === requests || row.scrapes === requests - 1,
            `${container}: ${row.scrapes} scrapes stored for ${requests} requests`,
          );
          assert.ok(row.scrapes >= 40, `${container}: ${row.scrapes} scrapes`);
          assert.equal(row.up, row.scrapes, `${container}: every scrape up`);
          assert.equal(row.samples, row.scrapes * SERIES_PER_SCRAPE);
          const stored = database.prepare(
            `SELECT count(*) AS n FROM samples sa
             JOIN scrapes sc ON sc.id = sa.scrape_id WHERE sc.container = ?`,
          ).get(container) as { n: number };
          assert.equal(stored.n, row.samples, `${container}: samples stored`);
        }
        const runs = database.prepare("SELECT count(*) AS n FROM sample_runs")
          .get() as { n: number };
        assert.ok(runs.n > 0, "compaction ran while the loggers wrote");
        const integrity = database.prepare("PRAGMA integrity_check").get() as {
          integrity_check: string;
        };
        assert.equal(integrity.integrity_check, "ok");
      } finally {
        database.close();
      }
    } finally {
      stopReader.abort();
      await reader?.catch(() => {});
      for (const logger of loggers) {
        try {
          logger.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }
      await Promise.allSettled(outputs);
      await Promise.all(servers.map((server) => server.close()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
