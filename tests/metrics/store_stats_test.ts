import assert from "node:assert/strict";
import { parseTextFormat } from "../../src/metrics/exposition/text_format.ts";
import { containerStats } from "../../src/metrics/stats.ts";
import { openStore } from "../../src/metrics/store.ts";
import { resolveMetricNames } from "../../src/metrics/query.ts";

const TESTDATA = new URL("../testdata/vllm/", import.meta.url);
const IDLE_MS = Date.parse("2026-11-17T10:31:20.000Z");
const BUSY_MS = Date.parse("2026-11-17T10:31:25.000Z");
const RESTARTED_MS = Date.parse("2026-11-17T10:40:46.600Z");

function assertClose(actual: number, expected: number, relative = 1e-9): void {
  const tolerance = Math.abs(expected) * relative + 1e-12;
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `expected ${expected}, got ${actual}`,
  );
}

async function storeFixture(
  path: string,
  file: string,
  timestampMs: number,
): Promise<number> {
  const parsed = parseTextFormat(
    await Deno.readTextFile(new URL(file, TESTDATA)),
  );
  const store = openStore(path);
  try {
    return store.writeScrape({
      container: "vllm-test",
      timestampMs,
      durationSeconds: 0.01,
      up: true,
      samplesScraped: parsed.samples.length,
      parseErrors: parsed.errors.length,
      duplicateSamples: parsed.duplicateSamples,
      error: null,
    }, parsed.samples);
  } finally {
    store.close();
  }
}

Deno.test("store keeps every series of two scrapes", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await storeFixture(path, "metrics-v1-idle.prom", IDLE_MS);
  await storeFixture(path, "metrics-v1-busy.prom", BUSY_MS);
  const store = openStore(path, { readOnly: true });
  try {
    const count = store.db.prepare("SELECT count(*) AS n FROM metrics")
      .get() as { n: number };
    assert.equal(count.n, 449 * 2);
    const series = store.db.prepare("SELECT count(*) AS n FROM series")
      .get() as { n: number };
    assert.equal(series.n, 449);
    const kv = store.db.prepare(
      "SELECT timestamp, value FROM metrics WHERE metric_name = 'vllm:kv_cache_usage_perc' AND container = ? ORDER BY timestamp",
    ).all("vllm-test") as { timestamp: number; value: number }[];
    assert.deepEqual(kv.map((row) => row.timestamp), [IDLE_MS, BUSY_MS]);
    assert.deepEqual(kv.map((row) => row.value), [0, 0.28748629385964913]);
  } finally {
    store.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stats over idle and busy snapshots", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await storeFixture(path, "metrics-v1-idle.prom", IDLE_MS);
  await storeFixture(path, "metrics-v1-busy.prom", BUSY_MS);
  const store = openStore(path, { readOnly: true });
  const stats = containerStats(store.db, "vllm-test", {
    startMs: IDLE_MS,
    endMs: BUSY_MS,
  });
  store.close();
  const model = stats.models.find((entry) => entry.model === "org/model-7b");
  assert.ok(model !== undefined, "model org/model-7b is present");

  await t.step("KV-cache usage in percent", () => {
    assertClose(model.kvCacheUsagePercent.avg, 14.374314692982457);
    assertClose(model.kvCacheUsagePercent.max, 28.748629385964913);
    assert.equal(model.kvCacheUsagePercent.min, 0);
  });
  await t.step("queue time from bucket increases", () => {
    assert.equal(model.queueTimeSeconds.count, 22);
    assertClose(model.queueTimeSeconds.avg, 0.131218, 1e-5);
    assertClose(model.queueTimeSeconds.p50.value, 0.173684, 1e-5);
    assertClose(model.queueTimeSeconds.p95.value, 0.49);
    assertClose(model.queueTimeSeconds.p99.value, 0.734);
  });
  await t.step("other latency percentiles", () => {
    assertClose(model.timeToFirstTokenSeconds.p95.value, 2.18);
    assertClose(model.timeToFirstTokenSeconds.p99.value, 2.436);
    assertClose(model.e2eLatencySeconds.p95.value, 4.65625);
    assertClose(model.interTokenLatencySeconds.p95.value, 0.292472, 1e-5);
  });
  await t.step("token rates from counters", () => {
    assertClose(model.generationTokensPerSecond.avg, 149.2);
    assertClose(model.promptTokensPerSecond.avg, 32011.6);
  });
  await t.step("finished requests by reason", () => {
    assert.deepEqual(model.finishedRequestsByReason, {
      stop: 16,
      length: 6,
      abort: 0,
      error: 0,
    });
    assert.equal(model.preemptions, 0);
  });
  await t.step("scrape health", () => {
    assert.equal(stats.scrapeHealth.scrapes, 2);
    assert.equal(stats.scrapeHealth.up, 2);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stats across a container restart", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await storeFixture(path, "metrics-v1-busy.prom", BUSY_MS);
  await storeFixture(path, "metrics-v1-restarted.prom", RESTARTED_MS);
  const store = openStore(path, { readOnly: true });
  const stats = containerStats(store.db, "vllm-test", {
    startMs: BUSY_MS,
    endMs: RESTARTED_MS,
  });
  store.close();
  const model = stats.models.find((entry) => entry.model === "org/model-7b")!;
  const seconds = (RESTARTED_MS - BUSY_MS) / 1000;
  assertClose(model.generationTokensPerSecond.avg, 1003 / seconds);
  assertClose(model.promptTokensPerSecond.avg, 4785 / seconds);
  assert.equal(model.finishedRequestsByReason.stop, 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("NaN samples are stored as NULL and read back as NaN", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  const store = openStore(path);
  const parsed = parseTextFormat(
    "# TYPE g gauge\ng NaN\n# TYPE h gauge\nh +Inf\n",
  );
  store.writeScrape({
    container: "c",
    timestampMs: 1000,
    durationSeconds: 0,
    up: true,
    samplesScraped: 2,
    parseErrors: 0,
    duplicateSamples: 0,
    error: null,
  }, parsed.samples);
  const rows = store.db.prepare(
    "SELECT metric_name, value FROM metrics ORDER BY metric_name",
  ).all() as {
    metric_name: string;
    value: number | null;
  }[];
  store.close();
  assert.deepEqual(rows.map((row) => row.value), [null, Infinity]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resolveMetricNames maps short and renamed names", async (t) => {
  const cases: [string, string[]][] = [
    ["kv_cache_usage_perc", [
      "kv_cache_usage_perc",
      "vllm:kv_cache_usage_perc",
      "vllm:gpu_cache_usage_perc",
    ]],
    ["vllm:gpu_cache_usage_perc", [
      "vllm:gpu_cache_usage_perc",
      "vllm:kv_cache_usage_perc",
    ]],
    ["vllm:num_requests_running", ["vllm:num_requests_running"]],
  ];
  for (const [input, expected] of cases) {
    await t.step(input, () => {
      assert.deepEqual(new Set(resolveMetricNames(input)), new Set(expected));
    });
  }
});

Deno.test("deleteBefore removes old scrapes and their samples only", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await storeFixture(path, "metrics-v1-idle.prom", IDLE_MS);
  await storeFixture(path, "metrics-v1-busy.prom", BUSY_MS);
  const store = openStore(path);
  const deleted = await store.deleteBefore(BUSY_MS, 7);
  assert.equal(deleted, 449);
  const remaining = store.db.prepare("SELECT DISTINCT timestamp FROM metrics")
    .all() as { timestamp: number }[];
  assert.deepEqual(remaining.map((row) => row.timestamp), [BUSY_MS]);
  const scrapes = store.db.prepare("SELECT count(*) AS n FROM scrapes")
    .get() as { n: number };
  assert.equal(scrapes.n, 1);
  assert.equal(await store.deleteBefore(IDLE_MS), 0);
  store.close();
  await Deno.remove(dir, { recursive: true });
});
