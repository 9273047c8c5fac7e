import assert from "node:assert/strict";
import { parseTextFormat } from "../../src/metrics/exposition/text_format.ts";
import { openStore } from "../../src/metrics/store.ts";
import {
  colorEnabled,
  loadModelSparklines,
  type ModelSparklines,
  sparkline,
  type SparklineRange,
  statsToTerminalTable,
  timeColumns,
} from "../../src/cli/sparkline.ts";
import { statsToTable } from "../../src/cli/stats_format.ts";
import type { ContainerStats, ModelStats } from "../../src/metrics/stats.ts";

Deno.test("sparkline draws values as blocks", async (t) => {
  const cases: [string, number[], number, SparklineRange, string][] = [
    ["rising 0 to 7", [0, 1, 2, 3, 4, 5, 6, 7], 8, {}, "▁▂▃▄▅▆▇█"],
    ["falling", [7, 6, 5, 4, 3, 2, 1, 0], 8, {}, "█▇▆▅▄▃▂▁"],
    ["zero-based scale", [50, 100], 2, {}, "▅█"],
    ["all zero", [0, 0, 0], 3, {}, "▁▁▁"],
    ["constant positive", [4, 4], 2, {}, "██"],
    ["NaN is a space", [0, NaN, 7], 3, {}, "▁ █"],
    ["all NaN", [NaN, NaN], 2, {}, "  "],
    ["infinities", [-Infinity, 1, Infinity], 3, {}, "▁██"],
    ["negative values", [-7, 0, 7], 3, {}, "▁▅█"],
    ["fixed range", [0, 50, 100], 3, { min: 0, max: 100 }, "▁▅█"],
    ["value above fixed max", [150], 1, { min: 0, max: 100 }, "█"],
    ["fewer values than width", [1, 2], 10, {}, "▅█"],
    ["means of groups", [0, 0, 7, 7], 2, {}, "▁█"],
    ["group mean skips NaN", [NaN, 7, 0, 0], 2, {}, "█▁"],
    ["group of only NaN", [NaN, NaN, 7, 7], 2, {}, " █"],
    ["uneven groups", [0, 0, 0, 7, 7], 2, { max: 7 }, "▁▆"],
    ["no values", [], 5, {}, ""],
    ["zero width", [1, 2, 3], 0, {}, ""],
  ];
  for (const [name, values, width, range, expected] of cases) {
    await t.step(name, () => {
      assert.equal(sparkline(values, width, range), expected);
    });
  }
});

Deno.test("timeColumns averages per time slice", async (t) => {
  await t.step("gap leaves empty columns", () => {
    // Points at 0-3 s and 10-13 s in 7 slices of 13/7 s each.
    const times = [0, 1000, 2000, 3000, 10_000, 11_000, 12_000, 13_000];
    const values = [1, 1, 1, 1, 5, 5, 5, 5];
    const columns = timeColumns(times, values, 7);
    assert.equal(columns.length, 7);
    assert.deepEqual(columns.map((value) => Number.isNaN(value)), [
      false,
      false,
      true,
      true,
      true,
      false,
      false,
    ]);
    assert.equal(columns[0], 1);
    assert.equal(columns[6], 5);
  });
  await t.step("fewer points than columns", () => {
    assert.deepEqual(timeColumns([0, 5000], [3, 4], 10), [3, 4]);
  });
  await t.step("no points", () => {
    assert.deepEqual(timeColumns([], [], 10), []);
  });
});

Deno.test("colorEnabled honours NO_COLOR and --no-color", async (t) => {
  const terminal = { isTerminal: () => true };
  const pipe = { isTerminal: () => false };
  const env = (values: Record<string, string>) => ({
    get: (name: string) => values[name],
  });
  const cases: [
    string,
    boolean,
    { color?: boolean },
    Record<string, string>,
    boolean,
  ][] = [
    ["terminal", true, {}, {}, true],
    ["pipe", false, {}, {}, false],
    ["--no-color", true, { color: false }, {}, false],
    ["NO_COLOR=1", true, {}, { NO_COLOR: "1" }, false],
    ["empty NO_COLOR", true, {}, { NO_COLOR: "" }, true],
    ["--color default true", true, { color: true }, {}, true],
  ];
  for (const [name, isTerminal, flags, variables, expected] of cases) {
    await t.step(name, () => {
      assert.equal(
        colorEnabled(isTerminal ? terminal : pipe, flags, env(variables)),
        expected,
      );
    });
  }
});

function gauge(value: number) {
  return { avg: value, max: value, min: value, last: value };
}

function latency() {
  const figure = { value: 0.5, atLeast: false };
  return { count: 10, avg: 0.5, p50: figure, p95: figure, p99: figure };
}

function modelStats(model: string): ModelStats {
  return {
    model,
    engines: ["0"],
    kvCacheUsagePercent: gauge(50),
    runningRequests: gauge(3),
    waitingRequests: gauge(1),
    queueTimeSeconds: latency(),
    timeToFirstTokenSeconds: latency(),
    e2eLatencySeconds: latency(),
    interTokenLatencySeconds: latency(),
    generationTokensPerSecond: { avg: 10, max: 20, min: 0 },
    promptTokensPerSecond: { avg: 100, max: 200, min: 0 },
    preemptions: 0,
    finishedRequestsByReason: { stop: 10 },
  };
}

const STATS: ContainerStats[] = [{
  container: "vllm-test",
  window: { startMs: 0, endMs: 3_600_000 },
  scrapeHealth: {
    scrapes: 10,
    up: 10,
    down: 0,
    avgDurationSeconds: 0.01,
    maxDurationSeconds: 0.02,
    parseErrors: 0,
    lastScrapeMs: 3_600_000,
    lastError: null,
  },
  models: [modelStats("org/a"), modelStats("org/b")],
}];

function drawings(model: string, mark: string): ModelSparklines {
  return {
    model,
    kvCacheUsagePercent: `${mark}kv`,
    runningRequests: `${mark}run`,
    waitingRequests: `${mark}wait`,
    generationTokensPerSecond: `${mark}gen`,
    promptTokensPerSecond: `${mark}prompt`,
  };
}

Deno.test("statsToTerminalTable appends sparklines to rows", async (t) => {
  const sparklines = new Map([["vllm-test", [
    drawings("org/a", "▁A"),
    drawings("org/b", "▁B"),
  ]]]);
  const plain = statsToTable(STATS).split("\n");
  const text = statsToTerminalTable(STATS, sparklines, { color: false });
  const lines = text.split("\n");

  await t.step("same rows as the plain table", () => {
    assert.equal(lines.length, plain.length);
  });
  const expected: [string, string][] = [
    ["KV-cache usage", "kv"],
    ["Running requests", "run"],
    ["Waiting requests", "wait"],
    ["Generation tokens/s", "gen"],
    ["Prompt tokens/s", "prompt"],
  ];
  for (const [model, mark] of [["org/a", "▁A"], ["org/b", "▁B"]] as const) {
    for (const [label, suffix] of expected) {
      await t.step(`${model} ${label}`, () => {
        const modelStart = lines.findIndex((line) =>
          line.startsWith(`model ${model}`)
        );
        const row = lines.slice(modelStart).find((line) =>
          line.startsWith(`  ${label} `)
        );
        assert.ok(row !== undefined, `row ${label} of ${model} exists`);
        assert.ok(
          row.endsWith(`  ${mark}${suffix}`),
          `row ends with its sparkline: ${row}`,
        );
        assert.equal(row.indexOf(mark), 98, "sparkline starts at column 98");
      });
    }
  }
  await t.step("other rows unchanged", () => {
    const queue = lines.find((line) => line.startsWith("  Queue time "));
    assert.equal(queue, plain.find((line) => line.startsWith("  Queue time ")));
  });
  await t.step("colour wraps the sparkline", () => {
    const colored = statsToTerminalTable(STATS, sparklines, { color: true });
    assert.ok(colored.includes("\x1b[36m▁Akv\x1b[0m"));
  });
  await t.step("missing sparklines leave the table as is", () => {
    assert.equal(
      statsToTerminalTable(STATS, new Map(), { color: true }),
      statsToTable(STATS),
    );
  });
});

Deno.test("loadModelSparklines reads a stored container", async (t) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/metrics.db`;
  const body = await Deno.readTextFile(
    new URL("../testdata/vllm/metrics-v1-busy.prom", import.meta.url),
  );
  const base = parseTextFormat(body).samples;
  const store = openStore(path);
  const startMs = Date.parse("2026-11-17T10:00:00Z");
  const scrapes = 40;
  for (let k = 0; k < scrapes; k++) {
    // KV-cache usage rises from 0 to 1; generation tokens grow 100 per scrape.
    const samples = base.map((sample) => {
      if (sample.name === "vllm:kv_cache_usage_perc") {
        return { ...sample, value: k / (scrapes - 1) };
      }
      if (sample.name === "vllm:generation_tokens_total") {
        return { ...sample, value: sample.value + 100 * k };
      }
      return sample;
    });
    store.writeScrape({
      container: "c",
      timestampMs: startMs + k * 5000,
      durationSeconds: 0.01,
      up: true,
      samplesScraped: samples.length,
      parseErrors: 0,
      duplicateSamples: 0,
      error: null,
    }, samples);
  }
  store.close();

  const reader = openStore(path, { readOnly: true });
  const window = { startMs, endMs: startMs + 3_600_000 };
  const [model] = loadModelSparklines(reader.db, "c", window, 8);
  reader.close();
  assert.ok(model !== undefined, "one model");

  await t.step("model name", () => assert.equal(model.model, "org/model-7b"));
  await t.step("KV-cache usage rises on the 0-100 % scale", () => {
    const line = model.kvCacheUsagePercent;
    assert.equal(line.length, 8);
    assert.equal(line[0], "▁");
    assert.equal(line[7], "█");
    const levels = [...line].map((char) => "▁▂▃▄▅▆▇█".indexOf(char));
    assert.deepEqual(levels, [...levels].sort((a, b) => a - b), line);
  });
  await t.step("constant running requests draw one height", () => {
    assert.equal(model.runningRequests.length, 8);
    assert.equal(new Set(model.runningRequests).size, 1);
  });
  await t.step("constant token rate draws the top block", () => {
    // 20 tokens/s in every interval; the first column has no rate yet for
    // its first point but the mean of the others is the same rate.
    assert.equal(model.generationTokensPerSecond, "████████");
  });
  await Deno.remove(dir, { recursive: true });
});
