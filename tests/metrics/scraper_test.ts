import assert from "node:assert/strict";
import { Logger } from "../../src/log.ts";
import {
  fetchExposition,
  ScrapeError,
  Scraper,
} from "../../src/metrics/scraper.ts";
import { openStore } from "../../src/metrics/store.ts";

/** Compresses text with the web-standard gzip stream. */
async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const BODY =
  '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 3\n';

/** Serves one handler on 127.0.0.1 for the duration of `body`. */
async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  try {
    await body(`http://127.0.0.1:${server.addr.port}/metrics`);
  } finally {
    await server.shutdown();
  }
}

async function failureKind(url: string, timeoutMs = 2000): Promise<string> {
  try {
    await fetchExposition(url, timeoutMs, 1024 * 1024);
  } catch (error) {
    assert.ok(error instanceof ScrapeError, String(error));
    return error.kind;
  }
  return "none";
}

Deno.test("fetchExposition accepts good bodies", async (t) => {
  await t.step("plain text", async () => {
    await withServer(
      () =>
        new Response(BODY, {
          headers: { "content-type": "text/plain; version=0.0.4" },
        }),
      async (url) => {
        const fetched = await fetchExposition(url, 2000);
        assert.equal(fetched.text, BODY);
        assert.equal(fetched.contentType, "text/plain; version=0.0.4");
      },
    );
  });
  await t.step("gzip with Content-Encoding", async () => {
    const compressed = await gzip(BODY);
    await withServer(
      () =>
        new Response(compressed, { headers: { "content-encoding": "gzip" } }),
      async (url) =>
        assert.equal((await fetchExposition(url, 2000)).text, BODY),
    );
  });
  await t.step("sends an Accept header", async () => {
    let accept: string | null = null;
    await withServer((request) => {
      accept = request.headers.get("accept");
      return new Response(BODY);
    }, (url) => fetchExposition(url, 2000).then(() => undefined));
    assert.ok(
      accept !== null && (accept as string).includes("text/plain"),
      String(accept),
    );
  });
});

Deno.test("fetchExposition fails whole scrapes", async (t) => {
  await t.step("status 500", async () => {
    await withServer(
      () => new Response("oops", { status: 500 }),
      async (url) => {
        assert.equal(await failureKind(url), "http_status");
      },
    );
  });
  await t.step("HTML page", async () => {
    await withServer(
      () =>
        new Response("<html></html>", {
          headers: { "content-type": "text/html" },
        }),
      async (url) => {
        assert.equal(await failureKind(url), "content_type");
      },
    );
  });
  await t.step("gzip without Content-Encoding", async () => {
    const compressed = await gzip(BODY);
    await withServer(() => new Response(compressed), async (url) => {
      assert.equal(await failureKind(url), "decode");
    });
  });
  await t.step("body over the limit", async () => {
    await withServer(
      () => new Response("x".repeat(2 * 1024 * 1024)),
      async (url) => {
        assert.equal(await failureKind(url), "body_too_large");
      },
    );
  });
  await t.step("hangs past the timeout", async () => {
    await withServer(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return new Response(BODY);
    }, async (url) => {
      assert.equal(await failureKind(url, 200), "timeout");
    });
  });
  await t.step("connection refused", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    assert.equal(
      await failureKind(`http://127.0.0.1:${port}/metrics`),
      "connection",
    );
  });
});

Deno.test("Scraper stores up and down scrapes", async () => {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/m.db`);
  const lines: string[] = [];
  let fail = false;
  await withServer(
    () => fail ? new Response("down", { status: 503 }) : new Response(BODY),
    async (url) => {
      const scraper = new Scraper({
        container: "c",
        url,
        intervalMs: 60_000,
        timeoutMs: 1000,
        store,
        logger: new Logger({ sink: (line) => lines.push(line) }),
      });
      await scraper.scrapeOnce();
      fail = true;
      await scraper.scrapeOnce();
      await scraper.scrapeOnce();
      fail = false;
      await scraper.scrapeOnce();
    },
  );
  const rows = store.db.prepare(
    "SELECT up, samples_scraped, error FROM scrapes ORDER BY id",
  ).all() as {
    up: number;
    samples_scraped: number;
    error: string | null;
  }[];
  assert.deepEqual(rows.map((row) => row.up), [1, 0, 0, 1]);
  assert.deepEqual(rows.map((row) => row.samples_scraped), [1, 0, 0, 1]);
  assert.match(rows[1]!.error!, /HTTP status 503/);
  const samples = store.db.prepare("SELECT count(*) AS n FROM metrics")
    .get() as { n: number };
  assert.equal(samples.n, 2);
  // One warning for the failure episode and one line when it recovered.
  const messages = lines.map((line) => JSON.parse(line).message);
  assert.deepEqual(messages, ["Scrape failed", "Scrape recovered"]);
  store.close();
  await Deno.remove(dir, { recursive: true });
});
