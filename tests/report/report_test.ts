import assert from "node:assert/strict";
import { Command } from "commander";
import { formatAlertEvent } from "../../src/alerts/alert_log.ts";
import { addReportCommand } from "../../src/cli/report_command.ts";
import type { Sample } from "../../src/metrics/exposition/types.ts";
import { parseTextFormat } from "../../src/metrics/exposition/text_format.ts";
import { containerStats } from "../../src/metrics/stats.ts";
import { openStore } from "../../src/metrics/store.ts";
import {
  buildReportData,
  parseAlertLine,
  readAlertsLog,
} from "../../src/report/report_data.ts";
import {
  jsonForScript,
  renderReportHtml,
} from "../../src/report/render_html.ts";
import { loadContainerTimeline } from "../../src/report/timeline.ts";

const TESTDATA = new URL("../testdata/vllm/", import.meta.url);
const OUT_DIR = new URL("../out/report/", import.meta.url);
const START_MS = Date.parse("2026-11-17T10:00:00.000Z");
const INTERVAL_MS = 5000;
const SCRAPES = 120;
/** Scrape that fails (stored with up = 0 and no samples). */
const FAILED_SCRAPE = 50;
/** First scrape after a container restart: counters start again near zero. */
const RESTART_SCRAPE = 80;
const WINDOW = {
  startMs: START_MS,
  endMs: START_MS + (SCRAPES - 1) * INTERVAL_MS,
};
const CHROMIUM = "/usr/bin/chromium";
const HOSTILE_MODEL = "</script><script>document.title='x'</script>";

function isCumulative(sample: Sample): boolean {
  return sample.type === "counter" || sample.type === "histogram";
}

/**
 * Multiplier of every counter and bucket at scrape `k`. It always grows
 * (its slope stays above 0.00025 per scrape) except at the restart, where it
 * drops to near zero, and its slope varies so rates move over time.
 */
function counterFactor(k: number): number {
  const since = k < RESTART_SCRAPE ? k : k - RESTART_SCRAPE;
  const start = k < RESTART_SCRAPE ? 1 : 0.004;
  return start + 0.004 * since + 0.03 * (1 - Math.cos(since / 8));
}

/**
 * Cumulative count of extra slow observations (3 to 5 s) added to every
 * latency histogram by scrape `k`, varying over time so the percentiles move.
 */
function slowObservations(k: number): number {
  const from = k < RESTART_SCRAPE ? 0 : RESTART_SCRAPE;
  let total = 0;
  for (let j = from; j <= k; j++) total += Math.round(2 + 2 * Math.sin(j / 6));
  return total;
}

/** Returns the fixture's samples at scrape `k`, with gauges and counters evolving. */
function evolve(base: readonly Sample[], k: number): Sample[] {
  return base.map((sample) => {
    const model = sample.labels.model_name ?? "";
    const phase = (model.length % 5) + Number(sample.labels.engine ?? 0);
    let value = sample.value;
    if (sample.name === "vllm:kv_cache_usage_perc") {
      value = 0.45 + 0.35 * Math.sin(k / 9 + phase);
    } else if (sample.name === "vllm:num_requests_running") {
      value = Math.round(12 + 10 * Math.sin(k / 7 + phase));
    } else if (sample.name === "vllm:num_requests_waiting") {
      value = Math.max(0, Math.round(3 + 4 * Math.sin(k / 5 + phase)));
    } else if (isCumulative(sample)) {
      value = sample.value * counterFactor(k);
      const isLatency = sample.family.endsWith("_seconds");
      const slow = slowObservations(k);
      if (isLatency && sample.name.endsWith("_bucket")) {
        const le = Number(
          sample.labels.le === "+Inf" ? Infinity : sample.labels.le,
        );
        if (le >= 5) value += slow;
      } else if (isLatency && sample.name.endsWith("_count")) {
        value += slow;
      } else if (isLatency && sample.name.endsWith("_sum")) {
        value += slow * 4;
      }
    }
    return { ...sample, value };
  });
}

async function fixtureSamples(file: string): Promise<Sample[]> {
  const parsed = parseTextFormat(
    await Deno.readTextFile(new URL(file, TESTDATA)),
  );
  assert.equal(parsed.errors.length, 0, `${file} parses without errors`);
  return parsed.samples;
}

/**
 * Stores `SCRAPES` scrapes, 5 s apart, of two containers: `vllm-two` (two
 * models, one with two engines) and `vllm-one` (one model). One scrape of
 * `vllm-two` fails, and both restart at `RESTART_SCRAPE`.
 */
async function buildDatabase(
  path: string,
  options: { hostileModel?: boolean } = {},
): Promise<void> {
  const two = await fixtureSamples("metrics-v1-two-models.prom");
  let one = await fixtureSamples("metrics-v1-busy.prom");
  if (options.hostileModel) {
    one = one.map((sample) =>
      sample.labels.model_name === undefined
        ? sample
        : { ...sample, labels: { ...sample.labels, model_name: HOSTILE_MODEL } }
    );
  }
  // Each container is written through its own store, as one logger process
  // per container does.
  for (
    const [container, base] of [["vllm-two", two], ["vllm-one", one]] as const
  ) {
    const store = openStore(path);
    try {
      for (let k = 0; k < SCRAPES; k++) {
        const failed = container === "vllm-two" && k === FAILED_SCRAPE;
        const samples = failed ? [] : evolve(base, k);
        store.writeScrape({
          container,
          timestampMs: START_MS + k * INTERVAL_MS,
          durationSeconds: 0.01 + 0.005 * (k % 7),
          up: !failed,
          samplesScraped: samples.length,
          parseErrors: 0,
          duplicateSamples: 0,
          error: failed ? "connection refused" : null,
        }, samples);
      }
    } finally {
      store.close();
    }
  }
}

/**
 * Writes an alerts.log: two events of one model in the logger's own format,
 * a hand-written line with Unix seconds, a line outside the window and two
 * invalid lines.
 */
async function writeAlertsLog(path: string): Promise<void> {
  const kvEvent = {
    container: "vllm-two",
    alert: "kv_cache_saturated",
    threshold: 0.9,
    condition: "vllm:kv_cache_usage_perc > 0.9",
    labels: { engine: "0", model_name: "org/model-7b" },
    level: "WARNING" as const,
  };
  const lines = [
    formatAlertEvent({
      ...kvEvent,
      timestamp: new Date(START_MS + 20 * INTERVAL_MS).toISOString(),
      state: "firing",
      value: 0.93,
    }),
    formatAlertEvent({
      ...kvEvent,
      timestamp: new Date(START_MS + 60 * INTERVAL_MS).toISOString(),
      state: "resolved",
      value: 0.41,
    }),
    JSON.stringify({
      timestamp: (START_MS + 90 * INTERVAL_MS) / 1000,
      container: "vllm-one",
      alert: "queue_time_high",
      state: "firing",
      value: 2.6,
    }) + "\n",
    JSON.stringify({
      timestamp: new Date(START_MS - 3_600_000).toISOString(),
      container: "vllm-two",
      alert: "scrape_down",
      state: "firing",
      value: 0,
    }) + "\n",
    "not json\n",
    "\n",
    JSON.stringify({ container: "vllm-two", alert: "no_timestamp" }) + "\n",
  ];
  await Deno.writeTextFile(path, lines.join(""));
}

function assertClose(
  actual: number | undefined,
  expected: number,
  message: string,
): void {
  assert.ok(actual !== undefined, `${message}: value missing`);
  const tolerance = Math.abs(expected) * 1e-9 + 1e-9;
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${message}: expected ${expected}, got ${actual}`,
  );
}

Deno.test("timeline combines engines and rates per scrape", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await buildDatabase(path);
  const base = await fixtureSamples("metrics-v1-two-models.prom");
  const store = openStore(path, { readOnly: true });
  const timeline = loadContainerTimeline(store.db, "vllm-two", WINDOW);
  store.close();
  const model = timeline.models.find((entry) => entry.model === "org/model-7b");
  assert.ok(model !== undefined, "model org/model-7b is present");
  const k = 10;
  const expected = evolve(base, k).filter((s) =>
    s.labels.model_name === "org/model-7b"
  );
  const previous = evolve(base, k - 1).filter((s) =>
    s.labels.model_name === "org/model-7b"
  );
  const valuesOf = (samples: Sample[], name: string) =>
    samples.filter((s) => s.name === name).map((s) => s.value);

  await t.step("one point per scrape", () => {
    assert.equal(timeline.timestampsMs.length, SCRAPES);
    assert.equal(timeline.scrapeCount, SCRAPES);
    assert.equal(timeline.bucketWidthMs, null);
  });
  await t.step(
    "engines listed",
    () => assert.deepEqual(model.engines, ["0", "1"]),
  );
  await t.step("KV-cache usage is the engine mean in percent", () => {
    const kv = valuesOf(expected, "vllm:kv_cache_usage_perc");
    assert.equal(kv.length, 2);
    assertClose(
      model.kvCacheUsagePercent[k],
      (kv[0]! + kv[1]!) / 2 * 100,
      "kv",
    );
  });
  await t.step("running requests are summed", () => {
    const running = valuesOf(expected, "vllm:num_requests_running");
    assertClose(model.runningRequests[k], running[0]! + running[1]!, "running");
  });
  await t.step("token rate is the summed counter increase per second", () => {
    const now = valuesOf(expected, "vllm:generation_tokens_total");
    const before = valuesOf(previous, "vllm:generation_tokens_total");
    const increase = now[0]! - before[0]! + now[1]! - before[1]!;
    assertClose(
      model.generationTokensPerSecond[k],
      increase / (INTERVAL_MS / 1000),
      "rate",
    );
  });
  await t.step("first scrape has no rate", () => {
    assert.ok(Number.isNaN(model.generationTokensPerSecond[0]!));
  });
  await t.step("failed scrape is a gap in gauges", () => {
    assert.ok(Number.isNaN(model.kvCacheUsagePercent[FAILED_SCRAPE]!));
    assert.equal(timeline.scrapeUp[FAILED_SCRAPE], 0);
    assert.equal(timeline.scrapeUp[FAILED_SCRAPE - 1], 1);
  });
  await t.step("rate after a restart counts from zero", () => {
    const after = evolve(base, RESTART_SCRAPE).filter((s) =>
      s.labels.model_name === "org/model-7b"
    );
    const counters = valuesOf(after, "vllm:generation_tokens_total");
    assert.equal(counters.length, 2, "one generation counter per engine");
    const total = counters[0]! + counters[1]!;
    assertClose(
      model.generationTokensPerSecond[RESTART_SCRAPE],
      total / (INTERVAL_MS / 1000),
      "rate after restart",
    );
    assert.ok(
      model.generationTokensPerSecond.every((rate) =>
        Number.isNaN(rate) || rate >= 0
      ),
      "no negative rate",
    );
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rolling latency quantile matches containerStats", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await buildDatabase(path);
  const store = openStore(path, { readOnly: true });
  try {
    const latencyWindowMs = 30_000;
    const timeline = loadContainerTimeline(store.db, "vllm-one", WINDOW, {
      latencyWindowMs,
    });
    const model = timeline.models[0]!;
    for (const i of [20, 45, 100]) {
      // The rolling window (t - 30 s, t] contains the intervals ending at the 6
      // scrapes before and at t, which start at scrape i - 6.
      const stats = containerStats(store.db, "vllm-one", {
        startMs: timeline.timestampsMs[i - 6]!,
        endMs: timeline.timestampsMs[i]!,
      });
      const expected = stats.models[0]!;
      assertClose(
        model.latency!.queueTimeP95[i],
        expected.queueTimeSeconds.p95.value,
        `queue p95 at ${i}`,
      );
      assertClose(
        model.latency!.queueTimeP50[i],
        expected.queueTimeSeconds.p50.value,
        `queue p50 at ${i}`,
      );
      assertClose(
        model.latency!.e2eLatencyP95[i],
        expected.e2eLatencySeconds.p95.value,
        `e2e p95 at ${i}`,
      );
    }
  } finally {
    store.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("downsampling keeps at most maxPoints buckets", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  await buildDatabase(path);
  const store = openStore(path, { readOnly: true });
  const full = loadContainerTimeline(store.db, "vllm-one", WINDOW);
  const small = loadContainerTimeline(store.db, "vllm-one", WINDOW, {
    maxPoints: 10,
  });
  store.close();
  const fullModel = full.models[0]!;
  const smallModel = small.models[0]!;

  await t.step("10 points", () => {
    assert.equal(small.timestampsMs.length, 10);
    assert.equal(smallModel.kvCacheUsagePercent.length, 10);
    assert.equal(smallModel.latency!.queueTimeP95.length, 10);
    assert.notEqual(small.bucketWidthMs, null);
    assert.ok(small.bucketWidthMs! > 0);
  });
  await t.step("gauges are averaged per bucket", () => {
    // 120 points of equal spacing in 10 equal buckets: 12 per bucket, except
    // that the last point belongs to the last bucket.
    const firstBucket = fullModel.kvCacheUsagePercent.slice(0, 12);
    const mean = firstBucket.reduce((sum, value) => sum + value, 0) /
      firstBucket.length;
    assertClose(smallModel.kvCacheUsagePercent[0], mean, "bucket mean");
  });
  await t.step("latencies take the bucket maximum", () => {
    const firstBucket = fullModel.latency!.e2eLatencyP95.slice(0, 12).filter((
      v,
    ) => !Number.isNaN(v));
    assertClose(
      smallModel.latency!.e2eLatencyP95[0],
      Math.max(...firstBucket),
      "bucket max",
    );
  });
  await t.step("overall maximum survives", () => {
    const maximum = (values: number[]) =>
      Math.max(...values.filter((v) => !Number.isNaN(v)));
    assertClose(
      maximum(smallModel.latency!.queueTimeP99),
      maximum(fullModel.latency!.queueTimeP99),
      "max",
    );
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stretch without scrapes becomes a gap marker", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  const store = openStore(path);
  const base = await fixtureSamples("metrics-v1-busy.prom");
  // Scrapes 0-19, then nothing for 10 minutes, then scrapes 140-159.
  const indices = [
    ...Array(20).keys(),
    ...Array.from({ length: 20 }, (_, i) => 140 + i),
  ];
  for (const k of indices) {
    store.writeScrape({
      container: "c",
      timestampMs: START_MS + k * INTERVAL_MS,
      durationSeconds: 0.01,
      up: true,
      samplesScraped: base.length,
      parseErrors: 0,
      duplicateSamples: 0,
      error: null,
    }, evolve(base, k % RESTART_SCRAPE));
  }
  const timeline = loadContainerTimeline(store.db, "c", {
    startMs: 0,
    endMs: START_MS + 3_600_000,
  });
  store.close();
  assert.equal(
    timeline.timestampsMs.length,
    41,
    "40 scrapes and one gap marker",
  );
  const marker = timeline.timestampsMs[20]!;
  assert.ok(
    marker > START_MS + 19 * INTERVAL_MS &&
      marker < START_MS + 140 * INTERVAL_MS,
  );
  assert.ok(Number.isNaN(timeline.models[0]!.kvCacheUsagePercent[20]!));
  assert.ok(Number.isNaN(timeline.scrapeUp[20]!));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("alert lines parse in their accepted forms", async (t) => {
  const bare = {
    timestampMs: START_MS,
    container: null,
    alert: "a",
    state: "unknown",
    value: null,
    threshold: null,
    condition: null,
    labels: {},
  };
  const cases: [string, string, ReturnType<typeof parseAlertLine>][] = [
    [
      "line written by the logger",
      formatAlertEvent({
        timestamp: "2026-11-17T10:00:00.000Z",
        container: "c",
        alert: "kv_cache_saturated",
        state: "firing",
        value: 0.93,
        threshold: 0.9,
        condition: "vllm:kv_cache_usage_perc > 0.9",
        labels: { engine: "0", model_name: "org/model-7b" },
        level: "WARNING",
      }).trimEnd(),
      {
        timestampMs: START_MS,
        container: "c",
        alert: "kv_cache_saturated",
        state: "firing",
        value: 0.93,
        threshold: 0.9,
        condition: "vllm:kv_cache_usage_perc > 0.9",
        labels: { engine: "0", model_name: "org/model-7b" },
      },
    ],
    [
      "Unix seconds",
      `{"timestamp":${START_MS / 1000},"alert":"a","state":"resolved"}`,
      { ...bare, state: "resolved" },
    ],
    [
      "Unix milliseconds and string numbers",
      `{"timestamp":${START_MS},"alert":"a","value":"1.5","threshold":"2"}`,
      { ...bare, value: 1.5, threshold: 2 },
    ],
    [
      "null value and non-string labels",
      `{"timestamp":${START_MS},"alert":"a","value":null,"labels":{"a":"x","b":1}}`,
      { ...bare, labels: { a: "x" } },
    ],
    ["missing alert", '{"timestamp":"2026-11-17T10:00:00Z"}', null],
    ["invalid time", '{"timestamp":"yesterday","alert":"a"}', null],
    ["not JSON", "kv_cache_saturated firing", null],
    ["JSON array", "[1,2]", null],
  ];
  for (const [name, line, expected] of cases) {
    await t.step(name, () => assert.deepEqual(parseAlertLine(line), expected));
  }
});

Deno.test("readAlertsLog filters window and container", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/alerts.log`;
  await writeAlertsLog(path);
  const log = await readAlertsLog(path, WINDOW, ["vllm-two"]);
  assert.deepEqual(log.events.map((event) => [event.alert, event.state]), [
    ["kv_cache_saturated", "firing"],
    ["kv_cache_saturated", "resolved"],
  ]);
  assert.equal(log.invalidLines, 2);
  const all = await readAlertsLog(path, WINDOW, ["vllm-two", "vllm-one"]);
  assert.equal(all.events.length, 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("jsonForScript escapes closing tags", () => {
  const text = jsonForScript({ model: "</script><!--" });
  assert.ok(!text.includes("<"), text);
  assert.deepEqual(JSON.parse(text), { model: "</script><!--" });
});

/** Finds every `http://` or `https://` in the text, with some context. */
function urlsIn(html: string): string[] {
  return [...html.matchAll(/https?:\/\/[^\s"'<>)]{0,60}/gi)].map((match) =>
    match[0]
  );
}

async function renderTestReport(
  dir: string,
  options: { hostileModel?: boolean } = {},
): Promise<string> {
  const path = `${dir}/metrics.db`;
  await buildDatabase(path, options);
  await writeAlertsLog(`${dir}/alerts.log`);
  const containers = ["vllm-one", "vllm-two"];
  const alerts = await readAlertsLog(`${dir}/alerts.log`, WINDOW, containers);
  const store = openStore(path, { readOnly: true });
  try {
    const data = buildReportData(store.db, {
      containers,
      window: WINDOW,
      alerts,
      nowMs: WINDOW.endMs + 60_000,
      latencyWindowMs: 30_000,
    });
    return renderReportHtml(data);
  } finally {
    store.close();
  }
}

Deno.test("report HTML is self-contained", async (t) => {
  const dir = await Deno.makeTempDir();
  const html = await renderTestReport(dir, { hostileModel: true });

  await t.step("no URL anywhere", () => assert.deepEqual(urlsIn(html), []));
  await t.step("no external resource attributes", () => {
    assert.doesNotMatch(html, /<(link|img|iframe|object|embed)\b/i);
    assert.doesNotMatch(html, /\bsrc\s*=/i);
    assert.doesNotMatch(html, /@import|url\(/i);
  });
  await t.step("content security policy forbids loading", () => {
    assert.match(html, /Content-Security-Policy" content="default-src 'none';/);
  });
  await t.step("chart data embedded as JSON", () => {
    const match = html.match(
      /<script type="application\/json" id="report-data">(.*?)<\/script>/s,
    );
    assert.ok(match !== null, "data block present");
    const payload = JSON.parse(match[1]!);
    assert.equal(payload.containers.length, 2);
    assert.equal(payload.containers[1].container, "vllm-two");
    assert.equal(payload.containers[1].timestampsMs.length, SCRAPES);
    // Health chart, then 8 charts for each of the two models.
    assert.equal(payload.containers[1].charts.length, 1 + 2 * 8);
    assert.equal(payload.alerts.length, 3);
  });
  await t.step("model name from labels is escaped", () => {
    assert.ok(!html.includes(HOSTILE_MODEL), "raw label value does not appear");
    assert.ok(
      html.includes("&#60;/script&#62;"),
      "escaped label value appears",
    );
  });
  await t.step("uPlot license is kept", () => {
    assert.match(html, /Copyright \(c\) 2022 Leon Sorokin/);
  });
  await t.step("summary figures from containerStats", () => {
    assert.match(html, /KV-cache usage<\/dt><dd>avg \d+\.\d %/);
    assert.match(html, /Last scrape error: connection refused/);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("metrics report command writes the file", async () => {
  const dir = await Deno.makeTempDir();
  await buildDatabase(`${dir}/metrics.db`);
  await writeAlertsLog(`${dir}/alerts.log`);
  const program = new Command("horos_vllm_logger").exitOverride();
  addReportCommand(program.command("metrics"));
  const output = `${dir}/report.html`;
  await program.parseAsync([
    "metrics",
    "report",
    "--db",
    `${dir}/metrics.db`,
    "--since",
    new Date(WINDOW.startMs).toISOString(),
    "--until",
    new Date(WINDOW.endMs).toISOString(),
    "--container",
    "vllm-two",
    "--alerts-log",
    `${dir}/alerts.log`,
    "--output",
    output,
  ], { from: "user" });
  const html = await Deno.readTextFile(output);
  assert.match(html, /Container <code>vllm-two<\/code>/);
  assert.doesNotMatch(html, /Container <code>vllm-one<\/code>/);
  assert.match(html, /kv_cache_saturated/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("metrics report rejects an unknown container", async () => {
  const dir = await Deno.makeTempDir();
  await buildDatabase(`${dir}/metrics.db`);
  const program = new Command("horos_vllm_logger").exitOverride();
  addReportCommand(program.command("metrics"));
  await assert.rejects(
    program.parseAsync(
      [
        "metrics",
        "report",
        "--db",
        `${dir}/metrics.db`,
        "--container",
        "nope",
        "--output",
        `${dir}/r.html`,
      ],
      { from: "user" },
    ),
    /container "nope" not found in the database \(containers with scrapes: vllm-one, vllm-two\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

/** A Chrome DevTools Protocol connection over a WebSocket. */
class DevTools {
  readonly #socket: WebSocket;
  #nextId = 1;
  readonly #pending = new Map<
    number,
    {
      resolve(result: Record<string, unknown>): void;
      reject(error: Error): void;
    }
  >();
  readonly #listeners = new Set<(event: DevToolsEvent) => void>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (message) => {
      const data = JSON.parse(String(message.data));
      if (typeof data.id === "number") {
        const pending = this.#pending.get(data.id);
        this.#pending.delete(data.id);
        if (data.error !== undefined) {
          pending?.reject(
            new Error(`${data.error.message} (${data.error.code})`),
          );
        } else {
          pending?.resolve(data.result ?? {});
        }
        return;
      }
      for (const listener of this.#listeners) listener(data as DevToolsEvent);
    };
  }

  static connect(url: string): Promise<DevTools> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.onopen = () => resolve(new DevTools(socket));
      socket.onerror = () =>
        reject(new Error(`WebSocket connection to ${url} failed`));
    });
  }

  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const message = sessionId === undefined
      ? { id, method, params }
      : { id, method, params, sessionId };
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.send(JSON.stringify(message));
    });
  }

  onEvent(listener: (event: DevToolsEvent) => void): void {
    this.#listeners.add(listener);
  }

  /** Resolves with the first event that matches, or rejects after `timeoutMs`. */
  waitFor(
    predicate: (event: DevToolsEvent) => boolean,
    timeoutMs: number,
  ): Promise<DevToolsEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error(`no matching DevTools event within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (event: DevToolsEvent) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(event);
      };
      this.#listeners.add(listener);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.readyState === WebSocket.CLOSED) return resolve();
      this.#socket.onclose = () => resolve();
      this.#socket.close();
    });
  }
}

interface DevToolsEvent {
  method: string;
  params: Record<string, unknown>;
  sessionId?: string;
}

/** Headless Chromium with its DevTools endpoint on 127.0.0.1 and a new profile. */
interface Browser {
  devtools: DevTools;
  close(): Promise<void>;
}

async function launchChromium(): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "report-chromium-" });
  const child = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      "--hide-scrollbars",
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Chromium prints "DevTools listening on ws://..." on stderr; the rest of
  // stderr keeps being read so the pipe never fills.
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let url: string | null = null;
  const deadline = Date.now() + 30_000;
  while (url === null) {
    if (Date.now() > deadline) {
      throw new Error("Chromium printed no DevTools URL within 30 s");
    }
    const { value, done } = await lines.read();
    if (done) {
      throw new Error(
        `Chromium exited before printing its DevTools URL:\n${buffered}`,
      );
    }
    buffered += value;
    url = buffered.match(/DevTools listening on (ws:\/\/\S+)/)?.[1] ?? null;
  }
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })();
  const devtools = await DevTools.connect(url);
  return {
    devtools,
    async close() {
      await devtools.send("Browser.close").catch(() => {});
      await devtools.close();
      const status = await Promise.race([
        child.status,
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
      ]);
      if (status === null) {
        child.kill("SIGKILL");
        await child.status;
      }
      await drained.catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/** What the page reports about each chart. */
interface ChartCheck {
  id: string;
  title: string;
  empty: boolean;
  points: number[];
  colorPixels: number[];
}

/**
 * Runs inside the page: per chart, the number of non-null points of each
 * series, and the number of opaque pixels in the plot area that have the
 * series' colour (within a small distance, for antialiasing).
 */
const CHART_CHECK_SCRIPT = `JSON.stringify(window.reportCharts.map((entry) => {
  if (entry.plot === null) return { id: entry.id, title: entry.title, empty: true, points: [], colorPixels: [] };
  const u = entry.plot;
  const points = u.data.slice(1).map((values) => values.filter((v) => v !== null && v !== undefined).length);
  const box = u.bbox;
  const pixels = u.ctx.getImageData(box.left, box.top, box.width, box.height).data;
  const colorPixels = entry.colors.map((hex) => {
    const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 60) count++;
    }
    return count;
  });
  return { id: entry.id, title: entry.title, empty: false, points, colorPixels };
}))`;

async function evaluate(
  devtools: DevTools,
  sessionId: string,
  expression: string,
): Promise<unknown> {
  const result = await devtools.send("Runtime.evaluate", {
    expression,
    returnByValue: true,
    awaitPromise: true,
  }, sessionId);
  if (result.exceptionDetails !== undefined) {
    throw new Error(
      `page script failed: ${JSON.stringify(result.exceptionDetails)}`,
    );
  }
  return (result.result as { value: unknown }).value;
}

async function screenshot(
  devtools: DevTools,
  sessionId: string,
  path: string,
): Promise<void> {
  const metrics = await devtools.send("Page.getLayoutMetrics", {}, sessionId);
  const size = metrics.cssContentSize as { width: number; height: number };
  const shot = await devtools.send("Page.captureScreenshot", {
    format: "png",
    captureBeyondViewport: true,
    clip: { x: 0, y: 0, width: size.width, height: size.height, scale: 1 },
  }, sessionId);
  const bytes = Uint8Array.from(
    atob(shot.data as string),
    (char) => char.charCodeAt(0),
  );
  await Deno.writeFile(path, bytes);
}

/**
 * Moves the mouse over the middle of the first KV-cache chart and checks that
 * its legend shows the UTC time and the value with its unit there.
 */
async function checkHoverLegend(
  devtools: DevTools,
  sessionId: string,
): Promise<void> {
  const [x, y] = await evaluate(
    devtools,
    sessionId,
    `(() => {
      const over = document.querySelector("#c0-m0-kv .u-over");
      over.scrollIntoView({ block: "center" });
      const box = over.getBoundingClientRect();
      return [box.left + box.width / 2, box.top + box.height / 2];
    })()`,
  ) as [number, number];
  await devtools.send(
    "Input.dispatchMouseEvent",
    { type: "mouseMoved", x, y },
    sessionId,
  );
  await evaluate(
    devtools,
    sessionId,
    "new Promise((resolve) => requestAnimationFrame(resolve))",
  );
  const legend = await evaluate(
    devtools,
    sessionId,
    `[...document.querySelectorAll("#c0-m0-kv .u-legend .u-value")].map((cell) => cell.textContent)`,
  ) as string[];
  assert.match(
    legend[0] ?? "",
    /^2026-11-17 10:0\d:\d\d$/,
    `time in the legend: ${legend}`,
  );
  assert.match(
    legend[1] ?? "",
    /^\d+\.\d %$/,
    `KV-cache usage in the legend: ${legend}`,
  );
}

const chromiumMissing = await Deno.stat(CHROMIUM).then(() => false, () => true);

Deno.test({
  name: chromiumMissing
    ? `report in headless Chromium (ignored: ${CHROMIUM} not installed, apt-get install chromium)`
    : "report in headless Chromium draws every chart offline",
  ignore: chromiumMissing,
  async fn(t) {
    const dir = await Deno.makeTempDir();
    const reportPath = `${dir}/report.html`;
    const html = await renderTestReport(dir);
    await Deno.writeTextFile(reportPath, html);
    const bytes = new TextEncoder().encode(html).length;
    // deno-lint-ignore no-console -- the report size is this test's output for a person
    console.log(`report: ${bytes} bytes`);
    const reportUrl = new URL(`file://${reportPath}`).href;
    await Deno.mkdir(OUT_DIR, { recursive: true });

    const browser = await launchChromium();
    const devtools = browser.devtools;
    try {
      const { targetId } = await devtools.send("Target.createTarget", {
        url: "about:blank",
      });
      const { sessionId } = await devtools.send("Target.attachToTarget", {
        targetId,
        flatten: true,
      }) as {
        sessionId: string;
      };
      const requests: string[] = [];
      const problems: string[] = [];
      devtools.onEvent((event) => {
        if (event.sessionId !== sessionId) return;
        if (event.method === "Network.requestWillBeSent") {
          requests.push((event.params.request as { url: string }).url);
        } else if (event.method === "Runtime.exceptionThrown") {
          problems.push(JSON.stringify(event.params.exceptionDetails));
        } else if (event.method === "Log.entryAdded") {
          const entry = event.params.entry as { level: string; text: string };
          if (entry.level === "error" || entry.level === "warning") {
            problems.push(entry.text);
          }
        }
      });
      for (const domain of ["Network", "Page", "Runtime", "Log"]) {
        await devtools.send(`${domain}.enable`, {}, sessionId);
      }
      await devtools.send("Emulation.setDeviceMetricsOverride", {
        width: 1280,
        height: 900,
        deviceScaleFactor: 1,
        mobile: false,
      }, sessionId);

      for (const scheme of ["light", "dark"] as const) {
        await t.step(`${scheme} mode`, async () => {
          await devtools.send("Emulation.setEmulatedMedia", {
            features: [{ name: "prefers-color-scheme", value: scheme }],
          }, sessionId);
          const loaded = devtools.waitFor(
            (event) =>
              event.sessionId === sessionId &&
              event.method === "Page.loadEventFired",
            30_000,
          );
          await devtools.send("Page.navigate", { url: reportUrl }, sessionId);
          await loaded;
          // Two animation frames: uPlot draws its canvas in one after creation.
          await evaluate(
            devtools,
            sessionId,
            "new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))",
          );
          const dark = await evaluate(
            devtools,
            sessionId,
            'matchMedia("(prefers-color-scheme: dark)").matches',
          );
          assert.equal(
            dark,
            scheme === "dark",
            "emulated colour scheme is active",
          );

          const checks = JSON.parse(
            await evaluate(devtools, sessionId, CHART_CHECK_SCRIPT) as string,
          ) as ChartCheck[];
          // Per container: health chart; per model: 8 charts.
          assert.equal(
            checks.length,
            1 + 8 + 1 + 2 * 8,
            "every chart element got a chart",
          );
          for (const check of checks) {
            assert.ok(!check.empty, `${check.id} (${check.title}) has data`);
            check.points.forEach((count, i) => {
              assert.ok(
                count > 0,
                `${check.id} (${check.title}) series ${i + 1} has points`,
              );
            });
            assert.ok(
              check.colorPixels.some((count) => count > 20),
              `${check.id} (${check.title}) drew lines in its series colours: ${check.colorPixels}`,
            );
          }

          if (scheme === "light") await checkHoverLegend(devtools, sessionId);

          const resources = await evaluate(
            devtools,
            sessionId,
            'performance.getEntriesByType("resource").length',
          );
          assert.equal(resources, 0, "page loaded no resource");

          const path = new URL(`report-${scheme}.png`, OUT_DIR).pathname;
          await screenshot(devtools, sessionId, path);
          // deno-lint-ignore no-console -- the screenshot path is this test's output for a person
          console.log(`screenshot (${scheme} mode): ${path}`);
        });
      }
      await t.step("no request except the report itself", () => {
        assert.deepEqual([...new Set(requests)], [reportUrl]);
      });
      await t.step("no console error or exception", () => {
        assert.deepEqual(problems, []);
      });
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
