import assert from "node:assert/strict";
import {
  formatPrometheusValue,
  formatPythonFloat,
} from "../../src/simulate/prometheus_text.ts";
import {
  METRICS_CONTENT_TYPE,
  type Simulator,
  type SimulatorOptions,
  startSimulator,
  waveLoad,
} from "../../src/simulate/simulator.ts";
import { runSimulateCommand } from "../../src/simulate/simulator_command.ts";
import { parseTimestampNanos } from "../../src/simulate/docker_store.ts";
import { formatOneDecimal } from "../../src/simulate/vllm_log_lines.ts";

const IDLE_FIXTURE = new URL(
  "../testdata/vllm/metrics-v1-idle.prom",
  import.meta.url,
);
const START_MS = Date.UTC(2026, 10, 17, 10, 0, 0);

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  /** `[name, type]` of every `# TYPE` line, in order. */
  families: [string, string][];
  /** Series by name and sorted labels. */
  series: Map<string, Series>;
}

/** Parses just enough of the text format for these tests. */
function parseExposition(text: string): Exposition {
  const families: [string, string][] = [];
  const series = new Map<string, Series>();
  for (const line of text.split("\n")) {
    if (line === "") {
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, , name = "", type = ""] = line.split(" ");
      families.push([name, type]);
      continue;
    }
    if (line.startsWith("#")) {
      continue;
    }
    const match = /^([^\s{]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (
      const pair of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)
    ) {
      labels[pair[1]!] = pair[2]!;
    }
    const value = Number(match[3]);
    assert.ok(!Number.isNaN(value), `value is not a number: ${line}`);
    series.set(seriesKey(match[1]!, labels), {
      name: match[1]!,
      labels,
      value,
    });
  }
  return { families, series };
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const pairs = Object.keys(labels).sort().map((key) =>
    `${key}=${labels[key]}`
  );
  return `${name}{${pairs.join(",")}}`;
}

function value(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  const engineLabels = name.startsWith("vllm:")
    ? { engine: "0", model_name: "org/model-7b", ...labels }
    : labels;
  const found = exposition.series.get(seriesKey(name, engineLabels));
  assert.ok(found, `series ${seriesKey(name, engineLabels)} is missing`);
  return found.value;
}

/** Per-request histograms whose `_count` equals the finished requests. */
const PER_REQUEST_HISTOGRAMS = [
  "vllm:e2e_request_latency_seconds",
  "vllm:request_queue_time_seconds",
  "vllm:request_inference_time_seconds",
  "vllm:request_prefill_time_seconds",
  "vllm:request_decode_time_seconds",
  "vllm:request_prompt_tokens",
  "vllm:request_generation_tokens",
  "vllm:request_max_num_generation_tokens",
  "vllm:request_params_n",
  "vllm:request_params_max_tokens",
  "vllm:request_time_per_output_token_seconds",
  "vllm:request_prefill_kv_computed_tokens",
];

function assertClose(actual: number, expected: number, what: string): void {
  const tolerance = 1e-9 * Math.max(1, Math.abs(expected));
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual} differs from ${expected}`,
  );
}

/** Checks the invariants that hold in every scrape of a V1 single-process server. */
function assertInvariants(exposition: Exposition): void {
  const finished = ["stop", "length", "abort", "error"].reduce(
    (sum, reason) =>
      sum +
      value(exposition, "vllm:request_success_total", {
        finished_reason: reason,
      }),
    0,
  );
  for (const histogram of PER_REQUEST_HISTOGRAMS) {
    assert.equal(
      value(exposition, `${histogram}_count`),
      finished,
      `${histogram}_count against finished requests`,
    );
  }

  const prompt = value(exposition, "vllm:prompt_tokens_total");
  const generation = value(exposition, "vllm:generation_tokens_total");
  assert.equal(
    value(exposition, "vllm:iteration_tokens_total_sum"),
    prompt + generation,
  );

  const bySource = ["local_compute", "local_cache_hit", "external_kv_transfer"]
    .map((source) =>
      value(exposition, "vllm:prompt_tokens_by_source_total", { source })
    );
  assert.equal(bySource.reduce((sum, part) => sum + part, 0), prompt);
  assert.equal(
    value(exposition, "vllm:prompt_tokens_cached_total"),
    bySource[1],
  );
  assert.ok(
    value(exposition, "vllm:prefix_cache_hits_total") <=
      value(exposition, "vllm:prefix_cache_queries_total"),
  );
  assert.equal(
    value(exposition, "vllm:inter_token_latency_seconds_count"),
    generation - value(exposition, "vllm:time_to_first_token_seconds_count"),
  );
  const kv = value(exposition, "vllm:kv_cache_usage_perc");
  assert.ok(kv >= 0, `KV-cache usage ${kv} is negative`);
  assert.ok(kv <= 1, `KV-cache usage ${kv} is above 1`);

  assertHistogramsCumulative(exposition);
}

/** Checks every histogram label set: `le` ascending, counts non-decreasing, `+Inf` equal to `_count`. */
function assertHistogramsCumulative(exposition: Exposition): void {
  const histograms = exposition.families.filter(([, type]) =>
    type === "histogram"
  );
  assert.ok(histograms.length > 0);
  for (const [family] of histograms) {
    const groups = new Map<string, Series[]>();
    for (const sample of exposition.series.values()) {
      if (sample.name !== `${family}_bucket`) {
        continue;
      }
      const { le: _le, ...rest } = sample.labels;
      const key = seriesKey(family, rest);
      groups.set(key, [...(groups.get(key) ?? []), sample]);
    }
    for (const [key, buckets] of groups) {
      const bounds = buckets.map((bucket) =>
        bucket.labels.le === "+Inf" ? Infinity : Number(bucket.labels.le)
      );
      assert.deepEqual(bounds, [...bounds].sort((a, b) => a - b), key);
      assert.equal(bounds.at(-1), Infinity, `${key} has no +Inf bucket`);
      for (let i = 1; i < buckets.length; i++) {
        assert.ok(
          buckets[i]!.value >= buckets[i - 1]!.value,
          `${key} bucket le=${bounds[i]} decreases`,
        );
      }
      const { le: _le, ...labels } = buckets[0]!.labels;
      const count = exposition.series.get(seriesKey(`${family}_count`, labels));
      assert.ok(count, `${key} has no _count`);
      assert.equal(buckets.at(-1)!.value, count.value, `${key} +Inf`);
      assert.ok(
        exposition.series.has(seriesKey(`${family}_sum`, labels)),
        `${key} has no _sum`,
      );
    }
  }
}

async function scrape(simulator: Simulator): Promise<Exposition> {
  const response = await fetch(simulator.url);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

async function withSimulator(
  options: SimulatorOptions,
  body: (simulator: Simulator, lines: [string, string][]) => Promise<void>,
): Promise<void> {
  const lines: [string, string][] = [];
  const simulator = startSimulator({
    tickMs: 0,
    seed: 42,
    startTimeMs: START_MS,
    onLogLine: (stream, text) => lines.push([stream, text]),
    ...options,
  });
  try {
    await body(simulator, lines);
  } finally {
    await simulator.close();
  }
}

Deno.test("formatPrometheusValue matches prometheus_client", async (t) => {
  const cases: [number, string][] = [
    [0, "0.0"],
    [1, "1.0"],
    [432060, "432060.0"],
    [5221789, "5.221789e+06"],
    [1669360, "1.66936e+06"],
    [1048576, "1.048576e+06"],
    [1000000, "1e+06"],
    [1794902400.41, "1.79490240041e+09"],
    [1794902496.7821484, "1.7949024967821484e+09"],
    // prometheus_client prints "e+0" and then the exponent.
    [12873379840, "1.287337984e+010"],
    [0.28748629385964913, "0.28748629385964913"],
    [0.0001, "0.0001"],
    [9.75010481363281e-6, "9.75010481363281e-06"],
    [2.5, "2.5"],
    [-1, "-1.0"],
    [1e16, "1e+16"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
  ];
  for (const [input, expected] of cases) {
    await t.step(`${input} -> ${expected}`, () => {
      assert.equal(formatPrometheusValue(input), expected);
    });
  }
  await t.step("python repr of small and large values", () => {
    assert.equal(formatPythonFloat(1e-5), "1e-05");
    assert.equal(formatPythonFloat(1234567890123456), "1234567890123456.0");
    assert.equal(formatPythonFloat(-0.5), "-0.5");
  });
});

Deno.test("formatOneDecimal rounds ties to even", () => {
  assert.equal(formatOneDecimal(0.25), "0.2");
  assert.equal(formatOneDecimal(0.75), "0.8");
  assert.equal(formatOneDecimal(0.35), "0.3");
  assert.equal(formatOneDecimal(0.05), "0.1");
  assert.equal(formatOneDecimal(97.6), "97.6");
  assert.equal(formatOneDecimal(0), "0.0");
  assert.equal(formatOneDecimal(10251.44), "10251.4");
});

Deno.test("simulator HTTP routes", async (t) => {
  await withSimulator({}, async (simulator, lines) => {
    await t.step("url points at 127.0.0.1", () => {
      assert.equal(simulator.url, `http://127.0.0.1:${simulator.port}/metrics`);
    });
    await t.step("metrics content type", async () => {
      const response = await fetch(simulator.url);
      await response.body?.cancel();
      assert.equal(response.status, 200);
      assert.equal(
        response.headers.get("content-type"),
        METRICS_CONTENT_TYPE,
      );
      assert.equal(simulator.snapshot().metricsRequests, 1);
    });
    await t.step("gzip when the client accepts it", async () => {
      const plain = await fetch(simulator.url, {
        headers: { "accept-encoding": "identity" },
      });
      const plainBody = await plain.text();
      assert.equal(plain.headers.get("content-encoding"), null);
      const gzip = await fetch(simulator.url, {
        headers: { "accept-encoding": "gzip" },
      });
      const gzipBody = await gzip.text();
      assert.equal(gzip.headers.get("content-encoding"), "gzip");
      assert.equal(gzipBody, plainBody);
    });
    await t.step("health answers 200", async () => {
      const response = await fetch(`http://127.0.0.1:${simulator.port}/health`);
      await response.body?.cancel();
      assert.equal(response.status, 200);
    });
    await t.step("other paths answer 404", async () => {
      const response = await fetch(
        `http://127.0.0.1:${simulator.port}/v1/unknown?x=1`,
      );
      await response.body?.cancel();
      assert.equal(response.status, 404);
      const body = simulator.renderMetrics();
      assert.match(
        body,
        /^http_requests_total\{handler="none",method="GET",status="4xx"\} 1\.0$/m,
      );
    });
    await t.step("access lines for each request", () => {
      const access = lines
        .map(([, text]) => text)
        .filter((text) => text.includes('HTTP/1.1"'));
      assert.ok(
        access.some((text) =>
          /INFO: {5}127\.0\.0\.1:\d+ - "GET \/metrics HTTP\/1\.1" 200 OK$/
            .test(text)
        ),
      );
      assert.ok(
        access.some((text) =>
          text.endsWith('"GET /v1/unknown?x=1 HTTP/1.1" 404 Not Found')
        ),
      );
    });
  });
});

Deno.test("simulator families match the idle fixture", async () => {
  const fixture = parseExposition(await Deno.readTextFile(IDLE_FIXTURE));
  await withSimulator({}, async (simulator) => {
    simulator.advance(5_000);
    const exposition = await scrape(simulator);
    assert.deepEqual(exposition.families, fixture.families);
    // vLLM creates all of its children at start, so its series match the
    // fixture exactly; http_* children appear as routes are used.
    const nonHttp = (keys: Iterable<string>) =>
      [...keys].filter((key) => !key.startsWith("http_")).sort();
    assert.deepEqual(
      nonHttp(exposition.series.keys()),
      nonHttp(fixture.series.keys()),
    );
  });
});

Deno.test("simulator scrapes under load", async (t) => {
  await withSimulator({ load: 1 }, async (simulator) => {
    simulator.advance(20_000);
    const first = await scrape(simulator);
    simulator.advance(10_000);
    const second = await scrape(simulator);

    await t.step("invariants hold in both scrapes", () => {
      assertInvariants(first);
      assertInvariants(second);
    });
    await t.step("counters and histograms never decrease", () => {
      for (const [key, before] of first.series) {
        if (!/(_total|_bucket|_count|_sum)$/.test(before.name)) {
          continue;
        }
        const after = second.series.get(key);
        assert.ok(after, `${key} disappeared`);
        assert.ok(after.value >= before.value, `${key} decreased`);
      }
    });
    await t.step("created times stay fixed", () => {
      for (const [key, before] of first.series) {
        if (
          before.name.endsWith("_created") ||
          before.name === "process_start_time_seconds"
        ) {
          assert.equal(second.series.get(key)?.value, before.value, key);
        }
      }
    });
    await t.step("tokens and requests grow", () => {
      for (
        const name of [
          "vllm:generation_tokens_total",
          "vllm:prompt_tokens_total",
          "vllm:e2e_request_latency_seconds_count",
          "vllm:time_to_first_token_seconds_count",
          "vllm:inter_token_latency_seconds_count",
          "vllm:request_queue_time_seconds_count",
        ]
      ) {
        assert.ok(value(second, name) > value(first, name), name);
      }
    });
    await t.step("gauges follow the engine", () => {
      const snapshot = simulator.snapshot();
      const kv = value(second, "vllm:kv_cache_usage_perc");
      assert.ok(kv > 0, "KV-cache usage is 0 under load");
      assert.equal(kv, snapshot.kvCacheUsage);
      assert.ok(value(second, "vllm:num_requests_running") > 0);
      assert.equal(
        value(second, "vllm:num_requests_running"),
        snapshot.running,
      );
      assert.equal(
        value(second, "vllm:num_requests_waiting"),
        snapshot.waiting,
      );
      assert.equal(
        value(second, "vllm:generation_tokens_total"),
        snapshot.generationTokens,
      );
    });
  });
});

Deno.test("simulator drains to idle", async (t) => {
  await withSimulator({ load: 2 }, async (simulator, lines) => {
    simulator.advance(30_000);
    simulator.setLoad(0);
    simulator.advance(300_000);
    const idle = await scrape(simulator);

    await t.step("gauges return to zero", () => {
      assert.equal(value(idle, "vllm:num_requests_running"), 0);
      assert.equal(value(idle, "vllm:num_requests_waiting"), 0);
      assert.equal(value(idle, "vllm:kv_cache_usage_perc"), 0);
    });
    await t.step("per-request sums equal the token counters", () => {
      assertInvariants(idle);
      assert.equal(
        value(idle, "vllm:request_prompt_tokens_sum"),
        value(idle, "vllm:prompt_tokens_total"),
      );
      assert.equal(
        value(idle, "vllm:request_generation_tokens_sum"),
        value(idle, "vllm:generation_tokens_total"),
      );
      assert.equal(
        value(idle, "vllm:request_prefill_kv_computed_tokens_sum"),
        value(idle, "vllm:prompt_tokens_by_source_total", {
          source: "local_compute",
        }),
      );
    });
    await t.step("latency parts add up", () => {
      const sum = (name: string) => value(idle, `${name}_sum`);
      assertClose(
        sum("vllm:e2e_request_latency_seconds"),
        sum("vllm:request_queue_time_seconds") +
          sum("vllm:request_inference_time_seconds"),
        "e2e = queue + inference",
      );
      assertClose(
        sum("vllm:request_inference_time_seconds"),
        sum("vllm:request_prefill_time_seconds") +
          sum("vllm:request_decode_time_seconds"),
        "inference = prefill + decode",
      );
    });
    await t.step("stats lines stop after one all-zero line", () => {
      const stats = lines
        .map(([, text]) => text)
        .filter((text) => text.includes("[loggers.py:259]"));
      assert.ok(stats.length >= 4, `${stats.length} stats lines`);
      assert.match(
        stats.at(-1)!,
        /Avg prompt throughput: 0\.0 tokens\/s, Avg generation throughput: 0\.0 tokens\/s, Running: 0 reqs, Waiting: 0 reqs, GPU KV cache usage: 0\.0%/,
      );
      assert.doesNotMatch(
        stats.at(-2)!,
        /Avg generation throughput: 0\.0 tokens\/s/,
      );
    });
  });
});

Deno.test("simulator preempts with a small KV cache", async () => {
  await withSimulator({ load: 0.3, kvCacheBlocks: 400 }, async (simulator) => {
    simulator.advance(20_000);
    const busy = await scrape(simulator);
    assert.ok(simulator.snapshot().preemptions > 0, "no preemption happened");
    assertInvariants(busy);
    simulator.setLoad(0);
    simulator.advance(600_000);
    const idle = await scrape(simulator);
    assertInvariants(idle);
    assert.equal(value(idle, "vllm:num_requests_running"), 0);
    assert.equal(
      value(idle, "vllm:request_generation_tokens_sum"),
      value(idle, "vllm:generation_tokens_total"),
    );
  });
});

Deno.test("simulator seed makes runs repeatable", async () => {
  const bodies: string[] = [];
  for (let run = 0; run < 2; run++) {
    await withSimulator({ seed: 9 }, (simulator) => {
      simulator.advance(15_000);
      bodies.push(simulator.renderMetrics());
      return Promise.resolve();
    });
  }
  assert.equal(bodies[0], bodies[1]);
});

Deno.test("simulator log lines", async (t) => {
  await withSimulator(
    { color: false, warningIntervalMs: 7_000, errorIntervalMs: 11_000 },
    async (simulator, lines) => {
      simulator.advance(25_000);
      await simulator.close();
      const texts = lines.map(([, text]) => text);

      await t.step("startup comes first", () => {
        assert.equal(
          texts[0],
          "(APIServer pid=1) INFO 11-17 10:00:00 [api_server.py:1351] vLLM API server version 0.15.1",
        );
        assert.ok(texts.some((text) => text.includes("GPU KV cache size:")));
      });
      await t.step("no ANSI codes without colour", () => {
        assert.ok(texts.every((text) => !text.includes("\x1b")));
      });
      await t.step("stats line every 10 s", () => {
        const stats = texts.filter((text) => text.includes("[loggers.py:259]"));
        assert.equal(stats.length, 2);
        assert.match(
          stats[0]!,
          /^\(APIServer pid=1\) INFO 11-17 10:00:10 \[loggers\.py:259\] Engine 000: Avg prompt throughput: \d+\.\d tokens\/s, Avg generation throughput: \d+\.\d tokens\/s, Running: \d+ reqs, Waiting: \d+ reqs, (Preemptions: \d+, )?GPU KV cache usage: \d+\.\d%, Prefix cache hit rate: \d+\.\d%$/,
        );
      });
      await t.step("warning records", () => {
        const warnings = texts.filter((text) =>
          text.includes(" WARNING 11-17 10:00:")
        );
        assert.equal(warnings.length, 3);
      });
      await t.step("error record lines end in CR", () => {
        const record = texts.filter((text) =>
          text.includes(" ERROR 11-17 10:00:11 [serving.py:1325]")
        );
        assert.ok(record.length > 2);
        assert.ok(record.slice(0, -1).every((text) => text.endsWith("\r")));
        assert.ok(!record.at(-1)!.endsWith("\r"));
      });
      await t.step("uvicorn traceback on stderr", () => {
        const asgi = lines.findIndex(([, text]) =>
          text.endsWith("ERROR:    Exception in ASGI application")
        );
        assert.ok(asgi >= 0);
        assert.equal(lines[asgi]![0], "stderr");
        assert.equal(
          lines[asgi + 1]![1],
          "(APIServer pid=1) Traceback (most recent call last):",
        );
      });
      await t.step("shutdown comes last", () => {
        assert.equal(
          texts.at(-1),
          "(APIServer pid=1) INFO:     Application shutdown complete.",
        );
      });
    },
  );
});

Deno.test("simulator timer advances the model", async () => {
  await withSimulator({ tickMs: 20, load: 2 }, async (simulator) => {
    const deadline = Date.now() + 5_000;
    while (simulator.snapshot().generationTokens === 0) {
      assert.ok(Date.now() < deadline, "no tokens after 5 s");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const exposition = await scrape(simulator);
    assert.ok(value(exposition, "vllm:generation_tokens_total") > 0);
  });
});

Deno.test("waveLoad goes idle, busy, idle", () => {
  const load = waveLoad(2, 100_000);
  assert.equal(load(0), 0);
  assert.equal(load(20_000), 0);
  assert.equal(load(50_000), 2);
  assert.equal(load(80_000), 0);
});

Deno.test("startSimulator rejects bad options", () => {
  assert.throws(() => startSimulator({ tickMs: -1 }), RangeError);
  assert.throws(() => startSimulator({ kvCacheBlocks: 4 }), RangeError);
});

Deno.test("runSimulateCommand stores logs for docker", async () => {
  const root = await Deno.makeTempDir();
  try {
    await runSimulateCommand({
      port: 0,
      dockerRoot: root,
      container: "vllm-sim",
      durationSeconds: 0.2,
      print: false,
    });
    const entries = (await Deno.readTextFile(`${root}/vllm-sim/log.jsonl`))
      .trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.match(entries[0].log, /vLLM API server version/);
    assert.equal(entries[0].stream, "stdout");
    assert.equal(
      entries.at(-1).log,
      "\x1b[0;36m(APIServer pid=1)\x1b[0;0m INFO:     Application shutdown complete.\n",
    );
    assert.equal(entries.at(-1).stream, "stderr");
    const times = entries.map((entry) => parseTimestampNanos(entry.time)!);
    for (let i = 1; i < times.length; i++) {
      assert.ok(times[i]! > times[i - 1]!, `entry ${i} is not later`);
    }
    await assert.rejects(Deno.stat(`${root}/vllm-sim/running`));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("runSimulateCommand stops on abort", async () => {
  const controller = new AbortController();
  const run = runSimulateCommand({ port: 0, print: false }, controller.signal);
  setTimeout(() => controller.abort(), 50);
  await run;
});

Deno.test("runSimulateCommand with a busy port", async () => {
  const root = await Deno.makeTempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      runSimulateCommand({
        port: listener.addr.port,
        dockerRoot: root,
        container: "vllm-sim",
        print: false,
      }),
      Deno.errors.AddrInUse,
    );
    await assert.rejects(Deno.stat(`${root}/vllm-sim/running`));
  } finally {
    listener.close();
    await Deno.remove(root, { recursive: true });
  }
});
