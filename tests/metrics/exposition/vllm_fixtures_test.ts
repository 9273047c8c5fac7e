/**
 * Parses the vLLM `/metrics` fixtures (text format 0.0.4, rendered by
 * prometheus_client) and checks the counts and values the fixtures were
 * built with.
 */

import assert from "node:assert/strict";

import { parseTextFormat } from "../../../src/metrics/exposition/text_format.ts";
import type {
  MetricType,
  ParsedExposition,
  Sample,
} from "../../../src/metrics/exposition/types.ts";

const FIXTURE_DIRECTORY = new URL("../../testdata/vllm/", import.meta.url);

interface FixtureCounts {
  file: string;
  lines: number;
  /** Sample lines, each a distinct series. */
  samples: number;
  /** Families with a `# TYPE` line. */
  families: number;
  counter: number;
  gauge: number;
  histogram: number;
  summary: number;
  /** Samples whose name ends in `_created`. */
  createdSamples: number;
  /** `vllm:` families other than the `_created` gauges. */
  vllmFamilies: number;
  /** Distinct label sets (without `le`) over all histogram families. */
  histogramLabelSets: number;
}

const FIXTURES: FixtureCounts[] = [
  {
    file: "metrics-v1-idle.prom",
    lines: 591,
    samples: 449,
    families: 71,
    counter: 13,
    gauge: 39,
    histogram: 17,
    summary: 2,
    createdSamples: 46,
    vllmFamilies: 28,
    histogramLabelSets: 20,
  },
  {
    file: "metrics-v1-busy.prom",
    lines: 591,
    samples: 449,
    families: 71,
    counter: 13,
    gauge: 39,
    histogram: 17,
    summary: 2,
    createdSamples: 46,
    vllmFamilies: 28,
    histogramLabelSets: 20,
  },
  {
    file: "metrics-v1-restarted.prom",
    lines: 544,
    samples: 402,
    families: 71,
    counter: 13,
    gauge: 39,
    histogram: 17,
    summary: 2,
    createdSamples: 33,
    vllmFamilies: 28,
    histogramLabelSets: 17,
  },
  {
    file: "metrics-v1-two-models.prom",
    lines: 1071,
    samples: 1003,
    families: 34,
    counter: 9,
    gauge: 6,
    histogram: 17,
    summary: 2,
    createdSamples: 0,
    vllmFamilies: 29,
    histogramLabelSets: 48,
  },
  {
    file: "metrics-v0-legacy.prom",
    lines: 308,
    samples: 250,
    families: 29,
    counter: 4,
    gauge: 10,
    histogram: 15,
    summary: 0,
    createdSamples: 0,
    vllmFamilies: 29,
    histogramLabelSets: 15,
  },
];

function readFixture(file: string): string {
  return Deno.readTextFileSync(new URL(file, FIXTURE_DIRECTORY));
}

function parseFixture(file: string): ParsedExposition {
  return parseTextFormat(readFixture(file));
}

/** Returns the single sample named `name` whose labels include `labels`. */
function findSample(
  result: ParsedExposition,
  name: string,
  labels: Record<string, string> = {},
): Sample {
  const matches = result.samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  );
  assert.equal(
    matches.length,
    1,
    `expected one ${name} ${JSON.stringify(labels)}, found ${matches.length}`,
  );
  return matches[0]!;
}

function countFamilies(result: ParsedExposition, type: MetricType): number {
  let count = 0;
  for (const family of result.families.values()) {
    if (family.type === type) {
      count++;
    }
  }
  return count;
}

/** Label set of a histogram sample without `le`, as a stable string. */
function labelSetKey(sample: Sample): string {
  const entries = Object.entries(sample.labels)
    .filter(([name]) => name !== "le")
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return `${sample.family} ${JSON.stringify(entries)}`;
}

function bucketBound(sample: Sample): number {
  const le = sample.labels.le;
  return le === "+Inf" ? Infinity : Number(le);
}

Deno.test("vLLM fixtures counts", async (t) => {
  for (const expected of FIXTURES) {
    await t.step(expected.file, () => {
      const body = readFixture(expected.file);
      const result = parseTextFormat(body);

      assert.equal(body.split("\n").length - 1, expected.lines);
      assert.deepStrictEqual(result.errors, []);
      assert.equal(result.duplicateSamples, 0);
      assert.equal(result.samples.length, expected.samples);
      assert.equal(result.families.size, expected.families);
      assert.equal(countFamilies(result, "counter"), expected.counter);
      assert.equal(countFamilies(result, "gauge"), expected.gauge);
      assert.equal(countFamilies(result, "histogram"), expected.histogram);
      assert.equal(countFamilies(result, "summary"), expected.summary);
      assert.equal(countFamilies(result, "untyped"), 0);

      const createdSamples = result.samples.filter((sample) =>
        sample.name.endsWith("_created")
      );
      assert.equal(createdSamples.length, expected.createdSamples);
      for (const sample of createdSamples) {
        assert.equal(sample.type, "gauge", sample.name);
        assert.equal(sample.family, sample.name);
      }

      const vllmFamilies = [...result.families.keys()].filter((name) =>
        name.startsWith("vllm:") && !name.endsWith("_created")
      );
      assert.equal(vllmFamilies.length, expected.vllmFamilies);

      const histogramLabelSets = new Set(
        result.samples
          .filter((sample) => sample.type === "histogram")
          .map(labelSetKey),
      );
      assert.equal(histogramLabelSets.size, expected.histogramLabelSets);

      for (const sample of result.samples) {
        assert.equal(sample.timestampMs, undefined, sample.name);
      }
    });
  }
});

Deno.test("vLLM fixtures histogram invariants", async (t) => {
  for (const { file } of FIXTURES) {
    await t.step(file, () => {
      const result = parseFixture(file);
      const buckets = new Map<string, Sample[]>();
      const counts = new Map<string, number>();
      const sums = new Set<string>();
      for (const sample of result.samples) {
        if (sample.type !== "histogram") {
          continue;
        }
        const key = labelSetKey(sample);
        if (sample.name === `${sample.family}_bucket`) {
          const list = buckets.get(key) ?? [];
          list.push(sample);
          buckets.set(key, list);
        } else if (sample.name === `${sample.family}_count`) {
          counts.set(key, sample.value);
        } else if (sample.name === `${sample.family}_sum`) {
          sums.add(key);
        }
      }

      assert.ok(buckets.size > 0);
      for (const [key, list] of buckets) {
        const last = list[list.length - 1]!;
        assert.equal(last.labels.le, "+Inf", key);
        assert.equal(last.value, counts.get(key), key);
        assert.ok(sums.has(key), `${key} has no _sum`);
        for (let index = 1; index < list.length; index++) {
          const previous = list[index - 1]!;
          const current = list[index]!;
          assert.ok(
            bucketBound(previous) < bucketBound(current),
            `${key}: le ${previous.labels.le} then ${current.labels.le}`,
          );
          assert.ok(previous.value <= current.value, key);
        }
      }
      assert.equal(counts.size, buckets.size);
    });
  }
});

Deno.test("vLLM busy fixture values", () => {
  const result = parseFixture("metrics-v1-busy.prom");

  const kvUsage = findSample(result, "vllm:kv_cache_usage_perc");
  assert.equal(kvUsage.value, 0.28748629385964913);
  assert.equal(kvUsage.type, "gauge");
  assert.deepStrictEqual(kvUsage.labels, {
    engine: "0",
    model_name: "org/model-7b",
  });

  const generation = findSample(result, "vllm:generation_tokens_total");
  assert.equal(generation.value, 432806);
  assert.equal(generation.family, "vllm:generation_tokens");
  assert.equal(generation.type, "counter");

  const generationCreated = findSample(
    result,
    "vllm:generation_tokens_created",
  );
  assert.equal(generationCreated.value, 1.794902496782318e+09);
  assert.equal(generationCreated.family, "vllm:generation_tokens_created");
  assert.equal(generationCreated.type, "gauge");

  assert.equal(findSample(result, "vllm:prompt_tokens_total").value, 5221789);
  assert.equal(findSample(result, "vllm:num_requests_running").value, 43);
  assert.equal(findSample(result, "vllm:num_requests_waiting").value, 13);
  assert.equal(
    findSample(result, "process_start_time_seconds").value,
    1.79490240041e+09,
  );
  assert.equal(findSample(result, "process_max_fds").value, 1048576);

  const iterationBuckets = result.samples.filter((sample) =>
    sample.name === "vllm:iteration_tokens_total_bucket"
  );
  assert.ok(iterationBuckets.length > 0);
  for (const bucket of iterationBuckets) {
    assert.equal(bucket.family, "vllm:iteration_tokens_total");
    assert.equal(bucket.type, "histogram");
  }
  const iterationCount = findSample(
    result,
    "vllm:iteration_tokens_total_count",
  );
  assert.equal(iterationCount.value, 31735);
  assert.equal(
    findSample(result, "vllm:iteration_tokens_total_sum").value,
    5654595,
  );
  assert.equal(
    findSample(result, "vllm:iteration_tokens_total_created").family,
    "vllm:iteration_tokens_total_created",
  );

  const success = result.samples.filter((sample) =>
    sample.name === "vllm:request_success_total"
  );
  assert.deepStrictEqual(
    success.map((sample) => [sample.labels.finished_reason, sample.value]),
    [["stop", 1714], ["length", 136], ["abort", 9], ["error", 0]],
  );

  assert.equal(
    result.families.get("vllm:generation_tokens")?.type,
    "counter",
  );
  assert.equal(
    result.families.get("vllm:iteration_tokens_total")?.type,
    "histogram",
  );
});

Deno.test("vLLM idle and restarted fixture values", () => {
  const idle = parseFixture("metrics-v1-idle.prom");
  assert.equal(findSample(idle, "vllm:generation_tokens_total").value, 432060);
  assert.equal(findSample(idle, "vllm:kv_cache_usage_perc").value, 0);

  const restarted = parseFixture("metrics-v1-restarted.prom");
  assert.equal(
    findSample(restarted, "vllm:generation_tokens_total").value,
    1003,
  );
  assert.equal(
    findSample(restarted, "vllm:kv_cache_usage_perc").value,
    0.0021929824561403508,
  );
  assert.equal(
    findSample(restarted, "vllm:generation_tokens_created").value,
    1.7949120124203181e+09,
  );
});

Deno.test("vLLM two-models fixture values", () => {
  const result = parseFixture("metrics-v1-two-models.prom");
  const generation = [
    ["org/model-7b", "0", 85034],
    ["org/model-7b", "1", 77588],
    ["org/other-model-14b", "0", 32627],
  ] as const;
  for (const [model, engine, value] of generation) {
    const sample = findSample(result, "vllm:generation_tokens_total", {
      model_name: model,
      engine,
    });
    assert.equal(sample.value, value);
    assert.equal(sample.family, "vllm:generation_tokens");
  }

  const cacheConfig = result.samples.filter((sample) =>
    sample.name === "vllm:cache_config_info"
  );
  assert.equal(cacheConfig.length, 3);
  for (const sample of cacheConfig) {
    assert.equal(sample.labels.model_name, undefined);
  }
  assert.deepStrictEqual(
    cacheConfig.map((sample) => sample.labels.num_gpu_blocks),
    ["29184", "29184", "11302"],
  );

  const lora = result.samples.filter((sample) =>
    sample.name === "vllm:lora_requests_info"
  );
  assert.deepStrictEqual(
    lora.map((sample) => [
      sample.labels.running_lora_adapters,
      sample.labels.waiting_lora_adapters,
      sample.value,
    ]),
    [
      ["", "", 1794910275.63],
      ["sql-lora", "chat-lora", 1794910839.82],
      ["sql-lora,chat-lora", "", 1794911479.17],
    ],
  );

  const success = result.samples.filter((sample) =>
    sample.name === "vllm:request_success_total"
  );
  assert.equal(success.length, 12);
});

Deno.test("vLLM V0 legacy fixture values", () => {
  const result = parseFixture("metrics-v0-legacy.prom");

  const hitRate = findSample(result, "vllm:gpu_prefix_cache_hit_rate");
  assert.equal(hitRate.value, -1);
  assert.equal(hitRate.type, "gauge");
  assert.equal(findSample(result, "vllm:cpu_prefix_cache_hit_rate").value, -1);
  assert.equal(
    findSample(result, "vllm:gpu_cache_usage_perc").value,
    0.04120879120879121,
  );
  assert.equal(
    findSample(result, "vllm:avg_generation_throughput_toks_per_s").value,
    41.7,
  );
  assert.equal(findSample(result, "vllm:prompt_tokens_total").value, 935777);
  assert.equal(
    findSample(result, "vllm:generation_tokens_total").family,
    "vllm:generation_tokens",
  );

  const oddBucket = findSample(result, "vllm:iteration_tokens_total_bucket", {
    le: "8096.0",
  });
  assert.equal(oddBucket.family, "vllm:iteration_tokens_total");
  assert.equal(oddBucket.type, "histogram");

  for (const sample of result.samples) {
    assert.equal(sample.labels.engine, undefined, sample.name);
  }
});
