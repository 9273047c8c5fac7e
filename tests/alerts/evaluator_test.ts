import assert from "node:assert/strict";
import { loadAlertStates } from "../../src/alerts/alert_state.ts";
import { AlertEngine } from "../../src/alerts/evaluator.ts";
import {
  type AlertRules,
  loadRules,
  parseRules,
} from "../../src/alerts/rules.ts";
import { Logger } from "../../src/log.ts";
import type { Sample } from "../../src/metrics/exposition/types.ts";
import {
  type MetricsStore,
  openStore,
  type ScrapeHealth,
} from "../../src/metrics/store.ts";

const SHIPPED_RULES = new URL("../../configs/vllm_alerts.yaml", import.meta.url)
  .pathname;
const INTERVAL_MS = 5000;
const START_MS = Date.parse("2026-11-17T10:00:00Z");
const CONTAINER = "vllm-vision";
const MODEL = "org/model-7b";
const QUEUE_BOUNDS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, Infinity];

/** What one model does during one scrape interval. */
interface Load {
  /** `vllm:kv_cache_usage_perc`, a 0-1 fraction. */
  kv: number;
  running: number;
  tokensPerSecond: number;
  /** Queue times, in seconds, of the requests that finished in the interval. */
  queueSeconds: readonly number[];
}

const NORMAL: Load = {
  kv: 0.4,
  running: 8,
  tokensPerSecond: 300,
  queueSeconds: [0.1, 0.2, 0.4],
};
const IDLE: Load = { kv: 0, running: 0, tokensPerSecond: 0, queueSeconds: [] };
const KV_FULL: Load = { ...NORMAL, kv: 0.95 };
const QUEUED: Load = { ...NORMAL, queueSeconds: [2.8, 3, 3.5, 4] };
const STALLED: Load = { ...NORMAL, tokensPerSecond: 0 };

interface ModelCounters {
  tokens: number;
  buckets: number[];
  sum: number;
  count: number;
}

function formatBound(bound: number): string {
  return bound === Infinity ? "+Inf" : bound.toFixed(1);
}

/** A vLLM endpoint whose counters and histograms grow with the load. */
class FakeVllm {
  #counters = new Map<string, ModelCounters>();

  /** Advances one scrape interval under `loads` and returns the page's samples. */
  step(loads: Record<string, Load>): Sample[] {
    const samples: Sample[] = [];
    for (const [model, load] of Object.entries(loads)) {
      const counters = this.#countersOf(model);
      counters.tokens += load.tokensPerSecond * INTERVAL_MS / 1000;
      for (const seconds of load.queueSeconds) {
        counters.sum += seconds;
        counters.count++;
        QUEUE_BOUNDS.forEach((bound, index) => {
          if (seconds <= bound) counters.buckets[index]!++;
        });
      }
      samples.push(...modelSamples(model, load, counters));
    }
    return samples;
  }

  /** Restarts the server: every counter and histogram starts again at 0. */
  restart(): void {
    this.#counters.clear();
  }

  #countersOf(model: string): ModelCounters {
    let counters = this.#counters.get(model);
    if (counters === undefined) {
      counters = {
        tokens: 0,
        buckets: QUEUE_BOUNDS.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.#counters.set(model, counters);
    }
    return counters;
  }
}

function modelSamples(
  model: string,
  load: Load,
  counters: ModelCounters,
): Sample[] {
  const labels = { engine: "0", model_name: model };
  const queue = "vllm:request_queue_time_seconds";
  const samples: Sample[] = [
    {
      name: "vllm:kv_cache_usage_perc",
      labels,
      value: load.kv,
      family: "vllm:kv_cache_usage_perc",
      type: "gauge",
    },
    {
      name: "vllm:num_requests_running",
      labels,
      value: load.running,
      family: "vllm:num_requests_running",
      type: "gauge",
    },
    {
      name: "vllm:generation_tokens_total",
      labels,
      value: counters.tokens,
      family: "vllm:generation_tokens",
      type: "counter",
    },
  ];
  QUEUE_BOUNDS.forEach((bound, index) => {
    samples.push({
      name: `${queue}_bucket`,
      labels: { engine: "0", le: formatBound(bound), model_name: model },
      value: counters.buckets[index]!,
      family: queue,
      type: "histogram",
    });
  });
  samples.push(
    {
      name: `${queue}_sum`,
      labels,
      value: counters.sum,
      family: queue,
      type: "histogram",
    },
    {
      name: `${queue}_count`,
      labels,
      value: counters.count,
      family: queue,
      type: "histogram",
    },
  );
  return samples;
}

interface AlertLine {
  timestamp: string;
  container: string;
  alert: string;
  state: string;
  value: number | null;
  threshold: number;
  condition: string;
  labels: Record<string, string>;
  level: string;
}

/** A database, an alerts.log and an engine, driven one scrape at a time. */
class Harness {
  readonly dir: string;
  readonly dbPath: string;
  readonly alertLogPath: string;
  readonly logLines: string[] = [];
  rules: AlertRules;
  store: MetricsStore;
  engine: AlertEngine;
  /** Time of the next scrape, Unix milliseconds. */
  nowMs = START_MS;

  constructor(rules: AlertRules) {
    this.dir = Deno.makeTempDirSync({ prefix: "alerts_test_" });
    this.dbPath = `${this.dir}/metrics.db`;
    this.alertLogPath = `${this.dir}/out/alerts.log`;
    this.rules = rules;
    this.store = openStore(this.dbPath);
    this.engine = this.#openEngine();
  }

  /** Stores one scrape (null samples for a failed one) and evaluates it. */
  scrape(samples: Sample[] | null, container = CONTAINER): number {
    const health: ScrapeHealth = {
      container,
      timestampMs: this.nowMs,
      durationSeconds: 0.01,
      up: samples !== null,
      samplesScraped: samples?.length ?? 0,
      parseErrors: 0,
      duplicateSamples: 0,
      error: samples === null ? "connection refused" : null,
    };
    const scrapeId = this.store.writeScrape(health, samples ?? []);
    this.engine.onScrape(scrapeId, health, samples ?? []);
    const scrapedAtMs = this.nowMs;
    this.nowMs += INTERVAL_MS;
    return scrapedAtMs;
  }

  /** Runs `count` scrapes of one model under `load`; returns the first one's time. */
  run(fake: FakeVllm, load: Load, count: number): number {
    const firstMs = this.nowMs;
    for (let i = 0; i < count; i++) this.scrape(fake.step({ [MODEL]: load }));
    return firstMs;
  }

  /** Runs `count` failed scrapes while the server keeps working. */
  fail(fake: FakeVllm, load: Load, count: number): number {
    const firstMs = this.nowMs;
    for (let i = 0; i < count; i++) {
      fake.step({ [MODEL]: load });
      this.scrape(null);
    }
    return firstMs;
  }

  /** Starts over as a new process would: new connection, new engine. */
  restart(rules: AlertRules = this.rules): void {
    this.store.close();
    this.rules = rules;
    this.store = openStore(this.dbPath);
    this.engine = this.#openEngine();
  }

  alertLogText(): string {
    try {
      return Deno.readTextFileSync(this.alertLogPath);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "";
      throw error;
    }
  }

  events(alert?: string): AlertLine[] {
    const text = this.alertLogText();
    const lines = text === "" ? [] : text.trimEnd().split("\n");
    const events = lines.map((line) => JSON.parse(line) as AlertLine);
    return alert === undefined
      ? events
      : events.filter((event) => event.alert === alert);
  }

  close(): void {
    this.store.close();
    Deno.removeSync(this.dir, { recursive: true });
  }

  #openEngine(): AlertEngine {
    return AlertEngine.open({
      rules: this.rules,
      store: this.store,
      alertLogPath: this.alertLogPath,
      logger: new Logger({ sink: (line) => this.logLines.push(line) }),
    });
  }
}

function rulesFrom(yaml: string): AlertRules {
  return parseRules("test_rules.yaml", yaml);
}

function oneRule(
  name: string,
  condition: string,
  duration: string,
): AlertRules {
  return rulesFrom(
    `rules:\n  - name: ${name}\n    condition: '${condition}'\n    duration: ${duration}\n    action: log_warning\n`,
  );
}

function ms(iso: string): number {
  return Date.parse(iso);
}

interface ShippedScenario {
  rule: string;
  durationMs: number;
  /** The load, or "down" for failed scrapes, while the condition holds. */
  trigger: Load | "down";
}

Deno.test("shipped rules fire after their duration and resolve", async (t) => {
  const rules = await loadRules(SHIPPED_RULES);
  const scenarios: ShippedScenario[] = [
    { rule: "kv_cache_saturated", durationMs: 300_000, trigger: KV_FULL },
    { rule: "queue_time_high", durationMs: 120_000, trigger: QUEUED },
    { rule: "generation_stalled", durationMs: 300_000, trigger: STALLED },
    { rule: "scrape_down", durationMs: 60_000, trigger: "down" },
  ];
  for (const { rule, durationMs, trigger } of scenarios) {
    await t.step(rule, () => {
      const harness = new Harness(rules);
      try {
        const fake = new FakeVllm();
        harness.run(fake, NORMAL, 12);
        const triggerScrapes = (durationMs + 120_000) / INTERVAL_MS;
        const onsetMs = trigger === "down"
          ? harness.fail(fake, NORMAL, triggerScrapes)
          : harness.run(fake, trigger, triggerScrapes);
        const recoveryMs = harness.run(fake, NORMAL, 24);

        const events = harness.events();
        assert.deepEqual(
          events.map((event) => [event.alert, event.state]),
          [[rule, "firing"], [rule, "resolved"]],
        );
        const [firing, resolved] = events as [AlertLine, AlertLine];
        const firedAfterMs = ms(firing.timestamp) - onsetMs;
        assert.ok(
          firedAfterMs >= durationMs && firedAfterMs < durationMs + INTERVAL_MS,
          `fired ${firedAfterMs} ms after the onset`,
        );
        assert.equal(ms(resolved.timestamp), recoveryMs);
        assert.equal(firing.container, CONTAINER);
      } finally {
        harness.close();
      }
    });
  }
});

Deno.test("alert events carry every field", async () => {
  const harness = new Harness(await loadRules(SHIPPED_RULES));
  try {
    const fake = new FakeVllm();
    harness.run(fake, NORMAL, 2);
    harness.run(fake, KV_FULL, 61);
    harness.run(fake, NORMAL, 1);
    const [firing, resolved] = harness.events() as [AlertLine, AlertLine];
    assert.deepEqual(firing, {
      timestamp: "2026-11-17T10:05:10.000Z",
      container: CONTAINER,
      alert: "kv_cache_saturated",
      state: "firing",
      value: 0.95,
      threshold: 0.9,
      condition: "vllm:kv_cache_usage_perc > 0.9",
      labels: { engine: "0", model_name: MODEL },
      level: "WARNING",
    });
    assert.equal(resolved.state, "resolved");
    assert.equal(resolved.value, 0.4);
    assert.equal(resolved.level, "WARNING");
    assert.equal(Deno.statSync(harness.alertLogPath).mode! & 0o777, 0o640);
    const warnings = harness.logLines.map((line) => JSON.parse(line))
      .filter((line) => line.message === "Alert firing");
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].level, "warn");
  } finally {
    harness.close();
  }
});

/** Drives every shipped rule through one timeline, restarting at `restartAt`. */
function runTimeline(
  rules: AlertRules,
  restartAt: ReadonlySet<number>,
): string {
  const harness = new Harness(rules);
  try {
    const fake = new FakeVllm();
    const phases: [Load | "down", number][] = [
      [NORMAL, 12],
      [KV_FULL, 80],
      [NORMAL, 12],
      [QUEUED, 30],
      [STALLED, 70],
      [NORMAL, 6],
      ["down", 20],
      [NORMAL, 6],
      [IDLE, 70],
      [NORMAL, 6],
    ];
    let scrape = 0;
    for (const [load, count] of phases) {
      for (let i = 0; i < count; i++) {
        if (restartAt.has(scrape)) harness.restart();
        if (load === "down") harness.fail(fake, NORMAL, 1);
        else harness.run(fake, load, 1);
        scrape++;
      }
    }
    return harness.alertLogText();
  } finally {
    harness.close();
  }
}

Deno.test("restart changes nothing in alerts.log", async () => {
  const rules = await loadRules(SHIPPED_RULES);
  const uninterrupted = runTimeline(rules, new Set());
  // Restarts while pending, while firing, right after firing and resolving,
  // and during a scrape outage.
  const restarted = runTimeline(
    rules,
    new Set([20, 50, 73, 93, 104, 110, 125, 140, 200, 205, 220, 230]),
  );
  const states = uninterrupted.trimEnd().split("\n")
    .map((line) => JSON.parse(line))
    .map((event) => `${event.alert} ${event.state}`);
  assert.deepEqual(states, [
    "kv_cache_saturated firing",
    "kv_cache_saturated resolved",
    "queue_time_high firing",
    "queue_time_high resolved",
    "generation_stalled firing",
    "generation_stalled resolved",
    "scrape_down firing",
    "scrape_down resolved",
  ]);
  assert.equal(restarted, uninterrupted);
});

Deno.test("failed scrapes neither fire nor resolve", async (t) => {
  const rules = oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "1m");
  await t.step("firing alert survives an outage", () => {
    const harness = new Harness(rules);
    try {
      const fake = new FakeVllm();
      harness.run(fake, KV_FULL, 15);
      assert.equal(harness.events().length, 1);
      harness.fail(fake, KV_FULL, 30);
      harness.run(fake, KV_FULL, 5);
      assert.equal(harness.events().length, 1);
      const recoveryMs = harness.run(fake, NORMAL, 2);
      const states = harness.events().map((event) => event.state);
      assert.deepEqual(states, ["firing", "resolved"]);
      assert.equal(ms(harness.events()[1]!.timestamp), recoveryMs);
    } finally {
      harness.close();
    }
  });
  await t.step("pending time runs on but firing waits for a scrape", () => {
    const harness = new Harness(rules);
    try {
      const fake = new FakeVllm();
      const onsetMs = harness.run(fake, KV_FULL, 6);
      harness.fail(fake, KV_FULL, 14);
      assert.equal(harness.events().length, 0);
      const backMs = harness.run(fake, KV_FULL, 1);
      assert.ok(backMs - onsetMs > 60_000);
      const events = harness.events();
      assert.equal(events.length, 1);
      assert.equal(ms(events[0]!.timestamp), backMs);
    } finally {
      harness.close();
    }
  });
  await t.step("short outage does not fire up == 0", async () => {
    const harness = new Harness(await loadRules(SHIPPED_RULES));
    try {
      const fake = new FakeVllm();
      harness.run(fake, NORMAL, 3);
      harness.fail(fake, NORMAL, 12);
      harness.run(fake, NORMAL, 3);
      assert.deepEqual(harness.events(), []);
    } finally {
      harness.close();
    }
  });
});

Deno.test("counter reset gives no negative rate", () => {
  const rules = rulesFrom(`rules:
  - name: rate_negative
    condition: vllm:generation_tokens_total < 0
    duration: 5s
    action: log_error
  - name: rate_non_negative
    condition: vllm:generation_tokens_total >= 0
    duration: 5s
    action: log_info
`);
  const harness = new Harness(rules);
  try {
    const fake = new FakeVllm();
    harness.run(fake, NORMAL, 10);
    fake.restart();
    harness.run(fake, NORMAL, 1);
    const [state] = loadAlertStates(harness.store.db, CONTAINER);
    assert.equal(state?.rule, "rate_non_negative");
    // After the reset the counter contains only the interval's 1500 tokens.
    assert.equal(state?.value, 300);
    harness.run(fake, NORMAL, 5);
    assert.deepEqual(
      harness.events().map((event) => [event.alert, event.state]),
      [["rate_non_negative", "firing"]],
    );
  } finally {
    harness.close();
  }
});

Deno.test("label sets fire independently", () => {
  const harness = new Harness(
    oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "1m"),
  );
  try {
    const fake = new FakeVllm();
    const scrapeBoth = (a: Load, b: Load, count: number) => {
      const firstMs = harness.nowMs;
      for (let i = 0; i < count; i++) {
        harness.scrape(fake.step({ "model-a": a, "model-b": b }));
      }
      return firstMs;
    };
    const aOnsetMs = scrapeBoth(KV_FULL, NORMAL, 12);
    const bOnsetMs = scrapeBoth(KV_FULL, KV_FULL, 14);
    const aEndMs = scrapeBoth(NORMAL, KV_FULL, 12);
    const bEndMs = scrapeBoth(NORMAL, NORMAL, 2);
    const events = harness.events().map((event) => ({
      model: event.labels.model_name,
      state: event.state,
      atMs: ms(event.timestamp),
    }));
    assert.deepEqual(events, [
      { model: "model-a", state: "firing", atMs: aOnsetMs + 60_000 },
      { model: "model-b", state: "firing", atMs: bOnsetMs + 60_000 },
      { model: "model-a", state: "resolved", atMs: aEndMs },
      { model: "model-b", state: "resolved", atMs: bEndMs },
    ]);
  } finally {
    harness.close();
  }
});

Deno.test("alert resolves when its series disappears", () => {
  const harness = new Harness(
    oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "30s"),
  );
  try {
    const fake = new FakeVllm();
    for (let i = 0; i < 8; i++) {
      harness.scrape(fake.step({ "model-a": KV_FULL, "model-b": NORMAL }));
    }
    const goneMs = harness.scrape(fake.step({ "model-b": NORMAL }));
    const events = harness.events();
    assert.deepEqual(events.map((event) => event.state), [
      "firing",
      "resolved",
    ]);
    assert.equal(ms(events[1]!.timestamp), goneMs);
    assert.equal(events[1]!.value, null);
    assert.deepEqual(events[1]!.labels, { engine: "0", model_name: "model-a" });
  } finally {
    harness.close();
  }
});

Deno.test("stall rule stays quiet on an idle server", async () => {
  const harness = new Harness(await loadRules(SHIPPED_RULES));
  try {
    const fake = new FakeVllm();
    harness.run(fake, NORMAL, 3);
    harness.run(fake, IDLE, 200);
    assert.deepEqual(harness.events(), []);
  } finally {
    harness.close();
  }
});

Deno.test("histogram values come from the last interval", async (t) => {
  await t.step("mean observation", () => {
    const harness = new Harness(
      oneRule("queue_mean", "vllm:request_queue_time_seconds > 1", "5s"),
    );
    try {
      const fake = new FakeVllm();
      harness.run(fake, NORMAL, 3);
      harness.run(fake, { ...NORMAL, queueSeconds: [1, 3] }, 2);
      const [firing] = harness.events();
      assert.equal(firing?.state, "firing");
      assert.equal(firing?.value, 2);
    } finally {
      harness.close();
    }
  });
  await t.step("no observations resolve a percentile rule", () => {
    const harness = new Harness(
      oneRule("queue_p95", "p95(vllm:request_queue_time_seconds) > 2", "30s"),
    );
    try {
      const fake = new FakeVllm();
      harness.run(fake, QUEUED, 10);
      const quietMs = harness.run(fake, { ...QUEUED, queueSeconds: [] }, 1);
      const events = harness.events();
      assert.deepEqual(events.map((event) => event.state), [
        "firing",
        "resolved",
      ]);
      // Four observations in the (2.5, 5] bucket put p95 at 2.5 + 2.5 * 0.95.
      assert.equal(events[0]!.value, 4.875);
      assert.equal(ms(events[1]!.timestamp), quietMs);
      assert.equal(events[1]!.value, null);
    } finally {
      harness.close();
    }
  });
  await t.step("first scrape has no rate", () => {
    const harness = new Harness(
      oneRule("any_rate", "vllm:generation_tokens_total >= 0", "5s"),
    );
    try {
      harness.run(new FakeVllm(), NORMAL, 1);
      assert.deepEqual(loadAlertStates(harness.store.db, CONTAINER), []);
    } finally {
      harness.close();
    }
  });
});

Deno.test("rule scope limits containers and labels", () => {
  const rules = rulesFrom(`rules:
  - name: kv_think
    condition: vllm:kv_cache_usage_perc > 0.9
    duration: 5s
    action: log_info
    container: vllm-think
  - name: kv_model_b
    condition: vllm:kv_cache_usage_perc > 0.9
    duration: 5s
    action: log_info
    labels: {model_name: model-b}
`);
  const harness = new Harness(rules);
  try {
    const fake = new FakeVllm();
    for (let i = 0; i < 3; i++) {
      harness.scrape(fake.step({ "model-a": KV_FULL, "model-b": KV_FULL }));
    }
    const fired = harness.events().map((event) =>
      `${event.alert} ${event.container} ${event.labels.model_name}`
    );
    assert.deepEqual(fired, ["kv_model_b vllm-vision model-b"]);
  } finally {
    harness.close();
  }
});

Deno.test("changed rule resolves its stored alert", () => {
  const harness = new Harness(
    oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "10s"),
  );
  try {
    const fake = new FakeVllm();
    harness.run(fake, KV_FULL, 4);
    harness.restart(oneRule("kv", "vllm:kv_cache_usage_perc > 0.99", "10s"));
    const restartMs = harness.run(fake, KV_FULL, 4);
    const events = harness.events();
    assert.deepEqual(
      events.map((event) => [event.state, event.condition]),
      [
        ["firing", "vllm:kv_cache_usage_perc > 0.9"],
        ["resolved", "vllm:kv_cache_usage_perc > 0.9"],
      ],
    );
    assert.equal(ms(events[1]!.timestamp), restartMs);
    assert.deepEqual(loadAlertStates(harness.store.db, CONTAINER), []);
  } finally {
    harness.close();
  }
});

Deno.test("same rule with new spacing keeps its state", () => {
  const harness = new Harness(
    oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "10s"),
  );
  try {
    const fake = new FakeVllm();
    harness.run(fake, KV_FULL, 4);
    harness.restart(oneRule("kv", "vllm:kv_cache_usage_perc>0.90", "10s"));
    harness.run(fake, KV_FULL, 4);
    assert.deepEqual(harness.events().map((event) => event.state), ["firing"]);
  } finally {
    harness.close();
  }
});

Deno.test("evaluation failure is logged, not thrown", () => {
  const harness = new Harness(
    oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "10s"),
  );
  try {
    const fake = new FakeVllm();
    harness.run(fake, KV_FULL, 1);
    const samples = fake.step({ [MODEL]: KV_FULL });
    const health: ScrapeHealth = {
      container: "vllm-think",
      timestampMs: harness.nowMs,
      durationSeconds: 0.01,
      up: true,
      samplesScraped: samples.length,
      parseErrors: 0,
      duplicateSamples: 0,
      error: null,
    };
    harness.store.db.exec("DROP TABLE alert_state");
    harness.engine.onScrape(99, health, samples);
    const errors = harness.logLines.map((line) => JSON.parse(line))
      .filter((line) => line.level === "error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].message, "Alert evaluation failed");
    assert.equal(errors[0].container, "vllm-think");
  } finally {
    harness.close();
  }
});

Deno.test("renamed metric yields one alert", async (t) => {
  const gauge = (name: string, value: number): Sample => ({
    name,
    labels: { model_name: MODEL },
    value,
    family: name,
    type: "gauge",
  });
  const cases: { name: string; page: Sample[] }[] = [
    {
      name: "old name only",
      page: [gauge("vllm:gpu_cache_usage_perc", 0.95)],
    },
    {
      name: "both names",
      page: [
        gauge("vllm:gpu_cache_usage_perc", 0.95),
        gauge("vllm:kv_cache_usage_perc", 0.95),
      ],
    },
  ];
  for (const { name, page } of cases) {
    await t.step(name, () => {
      const harness = new Harness(
        oneRule("kv", "vllm:kv_cache_usage_perc > 0.9", "5s"),
      );
      try {
        harness.scrape(page);
        harness.scrape(page);
        const events = harness.events();
        assert.equal(events.length, 1);
        assert.equal(events[0]!.state, "firing");
        assert.deepEqual(events[0]!.labels, { model_name: MODEL });
      } finally {
        harness.close();
      }
    });
  }
});
