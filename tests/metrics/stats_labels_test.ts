import assert from "node:assert/strict";
import { parseTextFormat } from "../../src/metrics/exposition/text_format.ts";
import type { Sample } from "../../src/metrics/exposition/types.ts";
import { containerStats } from "../../src/metrics/stats.ts";
import {
  type MetricsStore,
  openStore,
  type ScrapeHealth,
} from "../../src/metrics/store.ts";

const TESTDATA = new URL("../testdata/vllm/", import.meta.url);
const MODEL = "org/model-7b";

function assertClose(actual: number, expected: number): void {
  assert.ok(
    Math.abs(actual - expected) <= Math.abs(expected) * 1e-9 + 1e-12,
    `expected ${expected}, got ${actual}`,
  );
}

function health(timestampMs: number, samples: number): ScrapeHealth {
  return {
    container: "c",
    timestampMs,
    durationSeconds: 0.01,
    up: true,
    samplesScraped: samples,
    parseErrors: 0,
    duplicateSamples: 0,
    error: null,
  };
}

function gauge(
  name: string,
  labels: Record<string, string>,
  value: number,
): Sample {
  return { name, labels, value, family: name, type: "gauge" };
}

function counter(
  name: string,
  labels: Record<string, string>,
  value: number,
): Sample {
  return {
    name,
    labels,
    value,
    family: name.replace(/_total$/, ""),
    type: "counter",
  };
}

async function withStore(
  body: (store: MetricsStore) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/m.db`, { autoCompact: false });
  try {
    await body(store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const WINDOW = { startMs: 0, endMs: 100_000 };

Deno.test("stale pid copy does not dilute a gauge", async () => {
  await withStore((store) => {
    // Process 1 reports the engine's values. Process 2 exposes a copy stuck
    // at 0.
    const live = [0.2, 0.4, 0.6, 0.4];
    live.forEach((value, index) => {
      const samples = [
        gauge("vllm:kv_cache_usage_perc", {
          engine: "0",
          model_name: MODEL,
          pid: "1",
        }, value),
        gauge("vllm:kv_cache_usage_perc", {
          engine: "0",
          model_name: MODEL,
          pid: "2",
        }, 0),
        gauge("vllm:num_requests_running", {
          engine: "0",
          model_name: MODEL,
          pid: "1",
        }, index + 3),
        gauge("vllm:num_requests_running", {
          engine: "0",
          model_name: MODEL,
          pid: "2",
        }, 0),
      ];
      store.writeScrape(health(index * 5000, samples.length), samples);
    });
    const stats = containerStats(store.db, "c", WINDOW);
    assert.equal(stats.models.length, 1);
    const model = stats.models[0]!;
    assert.deepEqual(model.pids, ["1", "2"]);
    assertClose(model.kvCacheUsagePercent.avg, 40);
    assertClose(model.kvCacheUsagePercent.max, 60);
    assertClose(model.kvCacheUsagePercent.min, 20);
    assertClose(model.kvCacheUsagePercent.last, 40);
    assert.equal(model.runningRequests.avg, 4.5);
    assert.equal(model.runningRequests.last, 6);
  });
});

Deno.test("pid copy that changed last wins", async () => {
  await withStore((store) => {
    // Process 1 updates first and then stops; process 2 takes over.
    const rows: [number, number][] = [[0.5, 0], [0.6, 0], [0.6, 0.3], [
      0.6,
      0.35,
    ]];
    rows.forEach(([first, second], index) => {
      const samples = [
        gauge("vllm:kv_cache_usage_perc", {
          engine: "0",
          model_name: MODEL,
          pid: "1",
        }, first),
        gauge("vllm:kv_cache_usage_perc", {
          engine: "0",
          model_name: MODEL,
          pid: "2",
        }, second),
      ];
      store.writeScrape(health(index * 5000, samples.length), samples);
    });
    const model = containerStats(store.db, "c", WINDOW).models[0]!;
    // 0.5 and 0.6 from process 1, then 0.3 and 0.35 from process 2.
    assertClose(model.kvCacheUsagePercent.avg, 43.75);
    assertClose(model.kvCacheUsagePercent.last, 35);
  });
});

Deno.test("pid copies combine before engines", async () => {
  await withStore((store) => {
    for (let index = 0; index < 3; index++) {
      const samples: Sample[] = [];
      for (const engine of ["0", "1"]) {
        const live = engine === "0" ? 0.2 + index * 0.1 : 0.5;
        samples.push(
          gauge("vllm:kv_cache_usage_perc", {
            engine,
            model_name: MODEL,
            pid: "10",
          }, live),
          gauge("vllm:kv_cache_usage_perc", {
            engine,
            model_name: MODEL,
            pid: "11",
          }, 0),
        );
      }
      store.writeScrape(health(index * 5000, samples.length), samples);
    }
    const model = containerStats(store.db, "c", WINDOW).models[0]!;
    assert.deepEqual(model.engines, ["0", "1"]);
    assert.deepEqual(model.pids, ["10", "11"]);
    // Engine means per scrape: (0.2+0.5)/2, (0.3+0.5)/2, (0.4+0.5)/2.
    assertClose(model.kvCacheUsagePercent.avg, 40);
    assertClose(model.kvCacheUsagePercent.min, 35);
    assertClose(model.kvCacheUsagePercent.max, 45);
  });
});

Deno.test("counters of several pids are summed", async () => {
  await withStore((store) => {
    const values = [[100, 10], [150, 30]];
    values.forEach(([first, second], index) => {
      const samples = [
        counter("vllm:generation_tokens_total", {
          model_name: MODEL,
          pid: "1",
        }, first!),
        counter("vllm:generation_tokens_total", {
          model_name: MODEL,
          pid: "2",
        }, second!),
      ];
      store.writeScrape(health(index * 10_000, samples.length), samples);
    });
    const model = containerStats(store.db, "c", WINDOW).models[0]!;
    assertClose(model.generationTokensPerSecond.avg, (50 + 20) / 10);
  });
});

Deno.test("counter that vanishes and returns after a restart", async () => {
  await withStore((store) => {
    const tokens = (value: number): Sample =>
      counter("vllm:generation_tokens_total", { model_name: MODEL }, value);
    store.writeScrape(health(0, 1), [tokens(1000)]);
    store.writeScrape(health(10_000, 1), [tokens(1100)]);
    // The server restarts: one scrape without the counter, then it counts
    // again from zero.
    store.writeScrape(health(20_000, 1), [gauge("other", {}, 1)]);
    store.writeScrape(health(30_000, 1), [tokens(40)]);
    store.writeScrape(health(40_000, 1), [tokens(90)]);
    const model = containerStats(store.db, "c", WINDOW).models[0]!;
    // 100 before the restart, 40 + 50 after it, over 40 s.
    assertClose(model.generationTokensPerSecond.avg, 190 / 40);
  });
});

Deno.test("LoRA adapters from the info gauge", async () => {
  await withStore(async (store) => {
    const parsed = parseTextFormat(
      await Deno.readTextFile(new URL("metrics-v1-two-models.prom", TESTDATA)),
    );
    store.writeScrape(
      health(5000, parsed.samples.length),
      parsed.samples,
    );
    const stats = containerStats(store.db, "c", WINDOW);
    assert.deepEqual(stats.loraAdapters, {
      updatedMs: 1.79491147917e9 * 1000,
      maxLora: "4",
      running: ["sql-lora", "chat-lora"],
      waiting: [],
    });
    // The info gauge has no model_name label and adds no model.
    assert.deepEqual(
      stats.models.map((model) => model.model),
      ["org/model-7b", "org/other-model-14b"],
    );
  });
});

Deno.test("LoRA adapters absent without the info gauge", async () => {
  await withStore((store) => {
    store.writeScrape(health(0, 1), [
      gauge("vllm:num_requests_running", { model_name: MODEL }, 1),
    ]);
    assert.equal(containerStats(store.db, "c", WINDOW).loraAdapters, null);
  });
});

Deno.test("per-engine KV-cache shows a saturated engine", async () => {
  await withStore((store) => {
    [[0.95, 0.5], [0.97, 0.4]].forEach(([hot, cool], index) => {
      const samples = [
        gauge(
          "vllm:kv_cache_usage_perc",
          { engine: "0", model_name: MODEL },
          hot!,
        ),
        gauge(
          "vllm:kv_cache_usage_perc",
          { engine: "1", model_name: MODEL },
          cool!,
        ),
      ];
      store.writeScrape(health(index * 5000, samples.length), samples);
    });
    const model = containerStats(store.db, "c", WINDOW).models[0]!;
    // The combined figure averages the engines at each scrape.
    assertClose(model.kvCacheUsagePercent.max, 72.5);
    const byEngine = model.kvCacheUsagePercentByEngine!;
    assertClose(byEngine["0"]!.max, 97);
    assertClose(byEngine["1"]!.max, 50);
    assertClose(byEngine["1"]!.min, 40);
  });
});
