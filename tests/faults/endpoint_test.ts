/**
 * Faults of the metrics endpoint: refused, hanging, error statuses, HTML,
 * huge, not UTF-8, cut short, stalled, flipping label sets and repeated
 * series. A failed scrape stores `up` = 0 and nothing else, the logger logs
 * one line per failure episode, and the next good scrape is stored.
 */
import assert from "node:assert/strict";
import { Logger } from "../../src/log.ts";
import { DEFAULT_MAX_BODY_BYTES, Scraper } from "../../src/metrics/scraper.ts";
import { openStore } from "../../src/metrics/store.ts";
import {
  chunkedThen,
  endlessBody,
  FaultServer,
  hang,
  type Reply,
  reply,
  shortBody,
} from "./fault_server.ts";
import {
  assertDatabaseIntact,
  delay,
  LoggerProcess,
  NO_SANITIZERS,
  type OwnLogLine,
  queryDatabase,
  waitUntil,
} from "./helpers.ts";

const GOOD_BODY = [
  "# HELP vllm:num_requests_running Number of requests running.",
  "# TYPE vllm:num_requests_running gauge",
  'vllm:num_requests_running{engine="0",model_name="m"} 3',
  "# TYPE vllm:kv_cache_usage_perc gauge",
  'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
  "",
].join("\n");
const GOOD_SAMPLES = 2;

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Returns a reply of a gzip body cut short, sent with `Content-Encoding: gzip`. */
async function brokenGzip(): Promise<Reply> {
  const compressed = await gzip(new TextEncoder().encode(GOOD_BODY));
  const cut = compressed.subarray(0, compressed.length - 12);
  return async (conn) => {
    const head = [
      "HTTP/1.1 200 OK",
      "Content-Type: text/plain; version=0.0.4",
      "Content-Encoding: gzip",
      `Content-Length: ${cut.length}`,
      "Connection: close",
      "",
      "",
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    await conn.write(cut);
  };
}

const HUGE_BYTES = 50 * 1024 * 1024;

/** Fault modes with the error each must record. */
interface FaultCase {
  mode: string;
  error: RegExp;
}

const FAULTS: FaultCase[] = [
  { mode: "refused", error: /connection refused/i },
  { mode: "hang", error: /no complete response within \d+ ms/ },
  { mode: "status_500", error: /HTTP status 500/ },
  { mode: "html", error: /HTML/ },
  { mode: "html_as_text", error: /HTML/ },
  { mode: "huge_chunked", error: /exceeds the limit/ },
  { mode: "huge_length", error: /exceeds the limit/ },
  { mode: "invalid_utf8", error: /not valid UTF-8/ },
  { mode: "short_body", error: /closed before the whole body arrived/ },
  { mode: "chunked_stall", error: /no complete response within \d+ ms/ },
  { mode: "chunked_cut", error: /closed before the whole body arrived/ },
  { mode: "broken_gzip", error: /./ },
];

async function faultServer(sent: { bytes: number }): Promise<FaultServer> {
  return FaultServer.start({
    good: reply(GOOD_BODY),
    // "refused" closes the listener instead; this reply is never used.
    refused: reply(GOOD_BODY),
    hang,
    status_500: reply("internal error\n", {
      status: "500 Internal Server Error",
    }),
    html: reply("<html><body>Bad gateway</body></html>\n", {
      contentType: "text/html; charset=utf-8",
    }),
    html_as_text: reply(
      "\n<!DOCTYPE html>\n<html><head><title>502</title></head></html>\n",
    ),
    huge_chunked: endlessBody(HUGE_BYTES, sent),
    huge_length: reply(new Uint8Array(HUGE_BYTES)),
    invalid_utf8: reply(
      new Uint8Array([...new TextEncoder().encode("up 1\n"), 0xff, 0xfe]),
    ),
    short_body: shortBody(GOOD_BODY, GOOD_BODY.length + 500),
    chunked_stall: chunkedThen(GOOD_BODY.slice(0, 40), "stall"),
    chunked_cut: chunkedThen(GOOD_BODY.slice(0, 40), "cut"),
    broken_gzip: await brokenGzip(),
  }, "good");
}

/** Switches the server to `mode`; "refused" closes the listening socket. */
async function enterMode(server: FaultServer, mode: string): Promise<void> {
  if (mode === "refused") await server.refuse();
  else server.listen();
  server.mode = mode;
}

function messagesOf(lines: string[]): OwnLogLine[] {
  return lines.map((line) => JSON.parse(line) as OwnLogLine);
}

Deno.test({
  name: "scraper endpoint faults",
  ...NO_SANITIZERS,
  fn: async (t) => {
    const dir = await Deno.makeTempDir();
    const sent = { bytes: 0 };
    const server = await faultServer(sent);
    const store = openStore(`${dir}/metrics.db`);
    try {
      for (const fault of FAULTS) {
        await t.step(
          `${fault.mode}: up 0 three times, one log line, next scrape stored`,
          async () => {
            const lines: string[] = [];
            const container = `c-${fault.mode}`;
            const scraper = new Scraper({
              container,
              url: server.url,
              intervalMs: 1000,
              timeoutMs: 300,
              store,
              logger: new Logger({ sink: (line) => lines.push(line) }),
            });
            await scraper.scrapeOnce();
            await enterMode(server, fault.mode);
            for (let i = 0; i < 3; i++) await scraper.scrapeOnce();
            await enterMode(server, "good");
            await scraper.scrapeOnce();

            const rows = store.db.prepare(
              "SELECT id, up, samples_scraped, error FROM scrapes WHERE container = ? ORDER BY id",
            ).all(container) as {
              id: number;
              up: number;
              samples_scraped: number;
              error: string | null;
            }[];
            assert.deepEqual(rows.map((row) => row.up), [1, 0, 0, 0, 1]);
            for (const row of rows.slice(1, 4)) {
              assert.match(row.error ?? "", fault.error);
              assert.equal(row.samples_scraped, 0);
            }
            assert.equal(rows[4]!.samples_scraped, GOOD_SAMPLES);
            const stored = store.db.prepare(
              `SELECT count(*) AS n FROM samples sa
               JOIN scrapes sc ON sc.id = sa.scrape_id WHERE sc.container = ?`,
            ).get(container) as { n: number };
            assert.equal(stored.n, 2 * GOOD_SAMPLES, "only good scrapes");

            const log = messagesOf(lines);
            assert.deepEqual(
              log.map((line) => line.message),
              ["Scrape failed", "Scrape recovered"],
            );
            assert.equal(log[0]!.container, container);
            assert.match(String(log[0]!.err), fault.error);
            assert.equal(log[1]!.failed_scrapes, 3);
          },
        );
      }

      await t.step("50 MB body: the client stops reading at the limit", () => {
        // Three chunked 50 MB bodies were offered; each was cut off near
        // the limit (socket buffers hold a few MiB more).
        assert.ok(
          sent.bytes < 3 * (DEFAULT_MAX_BODY_BYTES + 8 * 1024 * 1024),
          `${sent.bytes} bytes accepted by the client`,
        );
      });

      await t.step("alternating failures are one episode", async () => {
        const lines: string[] = [];
        const container = "c-alternating";
        const scraper = new Scraper({
          container,
          url: server.url,
          intervalMs: 1000,
          timeoutMs: 300,
          store,
          logger: new Logger({ sink: (line) => lines.push(line) }),
        });
        for (const mode of ["status_500", "refused", "html", "refused"]) {
          await enterMode(server, mode);
          await scraper.scrapeOnce();
        }
        await enterMode(server, "good");
        await scraper.scrapeOnce();
        const log = messagesOf(lines);
        assert.deepEqual(
          log.map((line) => line.message),
          ["Scrape failed", "Scrape recovered"],
        );
        assert.equal(log[1]!.failed_scrapes, 4);
      });
      assertDatabaseIntact(`${dir}/metrics.db`);
    } finally {
      store.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "scraper label sets and repeated series",
  ...NO_SANITIZERS,
  fn: async (t) => {
    const dir = await Deno.makeTempDir();
    const flipA = '# TYPE q gauge\nq{pid="1"} 1\nq{pid="1",engine="0"} 10\n';
    const flipB = '# TYPE q gauge\nq{pid="2"} 2\nq{engine="0",pid="1"} 20\n';
    const repeated = [
      "# TYPE r counter",
      'r_total{model_name="m"} 5',
      'r_total{model_name="m"} 7',
      "# TYPE h histogram",
      'h_bucket{le="1"} 1',
      'h_bucket{le="+Inf"} 2',
      'h_bucket{le="1"} 9',
      "h_count 2",
      "h_sum 1.5",
      "",
    ].join("\n");
    let body = flipA;
    const server = FaultServer.start({
      current: (conn, s) => reply(body)(conn, s),
    }, "current");
    const store = openStore(`${dir}/metrics.db`);
    const scraper = new Scraper({
      container: "c",
      url: server.url,
      intervalMs: 1000,
      timeoutMs: 500,
      store,
      logger: new Logger({ sink: () => {} }),
    });
    try {
      await t.step("flipping label sets keep both series", async () => {
        for (let i = 0; i < 6; i++) {
          body = i % 2 === 0 ? flipA : flipB;
          await scraper.scrapeOnce();
        }
        const series = store.db.prepare(
          "SELECT labels FROM series WHERE metric_name = 'q' ORDER BY labels",
        ).all() as { labels: string }[];
        assert.deepEqual(series.map((row) => row.labels), [
          '{"engine":"0","pid":"1"}',
          '{"pid":"1"}',
          '{"pid":"2"}',
        ]);
        const perScrape = store.db.prepare(
          `SELECT sa.scrape_id, count(*) AS n FROM samples sa
           GROUP BY sa.scrape_id ORDER BY sa.scrape_id`,
        ).all() as { n: number }[];
        assert.deepEqual(perScrape.map((row) => row.n), [2, 2, 2, 2, 2, 2]);
        // Label order in the body does not make a new series.
        const engineValues = store.db.prepare(
          `SELECT value FROM metrics WHERE metric_name = 'q'
           AND labels = '{"engine":"0","pid":"1"}' ORDER BY timestamp`,
        ).all() as { value: number }[];
        assert.deepEqual(
          engineValues.map((row) => row.value),
          [10, 20, 10, 20, 10, 20],
        );
      });

      await t.step(
        "repeated series keep the first value and are counted",
        async () => {
          body = repeated;
          await scraper.scrapeOnce();
          const scrape = store.db.prepare(
            "SELECT id, up, samples_scraped, duplicate_samples FROM scrapes ORDER BY id DESC LIMIT 1",
          ).get() as {
            id: number;
            up: number;
            samples_scraped: number;
            duplicate_samples: number;
          };
          assert.equal(scrape.up, 1);
          assert.equal(scrape.duplicate_samples, 2);
          assert.equal(scrape.samples_scraped, 5);
          const counter = store.db.prepare(
            "SELECT value FROM samples sa JOIN series se ON se.id = sa.series_id WHERE se.metric_name = 'r_total' AND sa.scrape_id = ?",
          ).all(scrape.id) as { value: number }[];
          assert.deepEqual(counter.map((row) => row.value), [5]);
          const bucket = store.db.prepare(
            `SELECT value FROM samples sa JOIN series se ON se.id = sa.series_id
           WHERE se.metric_name = 'h_bucket' AND se.labels = '{"le":"1"}' AND sa.scrape_id = ?`,
          ).all(scrape.id) as { value: number }[];
          assert.deepEqual(bucket.map((row) => row.value), [1]);
        },
      );
      assertDatabaseIntact(`${dir}/metrics.db`);
    } finally {
      store.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Modes the subprocess run goes through, each followed by good scrapes. */
const PROCESS_FAULTS = [
  "refused",
  "hang",
  "status_500",
  "html",
  "huge_chunked",
  "invalid_utf8",
  "short_body",
  "chunked_stall",
  "chunked_cut",
];

Deno.test({
  name: "logger process survives a misbehaving endpoint",
  ...NO_SANITIZERS,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const sent = { bytes: 0 };
    const server = await faultServer(sent);
    const dbPath = `${dir}/metrics.db`;
    const config = `${dir}/logger.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "metrics_scraper:",
        "  interval_seconds: 0.25",
        "  timeout_seconds: 0.2",
        `  db_path: ${dbPath}`,
        "containers:",
        "  - name: vllm-faulty",
        `    metrics_endpoint: ${server.url}`,
        "",
      ].join("\n"),
    );
    const logger = LoggerProcess.start(["run", "--config", config]);
    try {
      await waitUntil(() => server.count("good") >= 3, 20_000, "good scrapes");
      const baseline = logger.sampleRss().rssKiB;
      for (const mode of PROCESS_FAULTS) {
        const before = server.count(mode);
        await enterMode(server, mode);
        if (mode === "refused") {
          await delay(600);
        } else {
          await waitUntil(
            () => {
              logger.sampleRss();
              return server.count(mode) >= before + 2;
            },
            10_000,
            `two scrapes in mode ${mode}`,
          );
        }
        const good = server.count("good");
        await enterMode(server, "good");
        await waitUntil(
          () => server.count("good") >= good + 2,
          10_000,
          `good scrapes after ${mode}`,
        );
        assert.ok(await logger.isRunning(), `running after ${mode}`);
      }
      // Peak RSS stays within a bound set by the body limit, not the 50 MB offered.
      const peakMiB = (logger.sampleRss().peakKiB - baseline) / 1024;
      assert.ok(peakMiB < 128, `RSS grew by ${peakMiB.toFixed(0)} MiB`);

      const stopped = await logger.stop();
      assert.equal(stopped.code, 0, logger.stderrText());
      const failed = logger.withMessage("Scrape failed");
      assert.equal(
        failed.length,
        PROCESS_FAULTS.length,
        `one line per episode:\n${logger.stderrText()}`,
      );
      for (const line of failed) {
        assert.equal(line.container, "vllm-faulty");
        assert.equal(line.level, "warn");
        assert.equal(typeof line.err, "string");
      }
      assert.equal(
        logger.withMessage("Scrape recovered").length,
        PROCESS_FAULTS.length,
      );

      assertDatabaseIntact(dbPath);
      const down = queryDatabase<{ n: number }>(
        dbPath,
        "SELECT count(*) AS n FROM scrapes WHERE up = 0 AND samples_scraped = 0",
      )[0]!.n;
      assert.ok(down >= 2 * PROCESS_FAULTS.length, `${down} failed scrapes`);
      const last = queryDatabase<{ up: number; n: number }>(
        dbPath,
        `SELECT up, (SELECT count(*) FROM samples WHERE scrape_id = s.id) AS n
         FROM scrapes s ORDER BY id DESC LIMIT 1`,
      )[0]!;
      assert.equal(last.up, 1);
      assert.equal(last.n, GOOD_SAMPLES);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
