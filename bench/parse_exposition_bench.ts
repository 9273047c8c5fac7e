/**
 * Benchmarks of the exposition parsers on a generated 10,000-series body in
 * both formats and on the vLLM fixture payloads.
 *
 * Run with `deno bench --allow-all bench/parse_exposition_bench.ts`.
 *
 * @module
 */

import { parseOpenMetrics } from "../src/metrics/exposition/openmetrics.ts";
import { parseTextFormat } from "../src/metrics/exposition/text_format.ts";

const FIXTURE_DIRECTORY = new URL("../tests/testdata/vllm/", import.meta.url);

/** The first 19 bounds of vLLM's request-latency buckets as prometheus_client prints them, then `+Inf`. */
const BUCKET_BOUNDS = [
  "0.3",
  "0.5",
  "0.8",
  "1.0",
  "1.5",
  "2.0",
  "2.5",
  "5.0",
  "10.0",
  "15.0",
  "20.0",
  "30.0",
  "40.0",
  "50.0",
  "60.0",
  "120.0",
  "240.0",
  "480.0",
  "960.0",
  "+Inf",
];

const MODEL_COUNT = 8;
const ENGINE_COUNT = 5;
const GAUGE_FAMILIES = 34;
const COUNTER_FAMILIES = 20;
const HISTOGRAM_FAMILIES = 8;

/**
 * Builds a vLLM-shaped body with 10,000 series: 40 label sets (8 models times
 * 5 engines) in 34 gauge families (1,360 series), 20 counter families with
 * their `_created` samples (1,600) and 8 histogram families with 20 buckets,
 * `_sum` and `_count` (7,040).
 *
 * The text variant declares counters and their `_created` gauges the way
 * prometheus_client writes text 0.0.4. The OpenMetrics variant declares each
 * counter once, with `_total` and `_created` samples, and ends with `# EOF`.
 */
function generateBody(openMetrics: boolean): string {
  // Label names sorted, as prometheus_client and client_golang print them.
  const engineLabels: string[] = [];
  const modelLabels: string[] = [];
  for (let model = 0; model < MODEL_COUNT; model++) {
    for (let engine = 0; engine < ENGINE_COUNT; engine++) {
      engineLabels.push(`engine="${engine}"`);
      modelLabels.push(`model_name="org/model-${model}-7b"`);
    }
  }
  const labelSets = engineLabels.map((engine, index) =>
    `${engine},${modelLabels[index]}`
  );

  const lines: string[] = [];
  let counter = 1;
  for (let family = 0; family < GAUGE_FAMILIES; family++) {
    const name = `vllm:bench_gauge_${family}`;
    lines.push(`# HELP ${name} Generated gauge ${family}.`);
    lines.push(`# TYPE ${name} gauge`);
    for (const labels of labelSets) {
      lines.push(`${name}{${labels}} ${(counter++ * 0.000137).toString()}`);
    }
  }

  for (let family = 0; family < COUNTER_FAMILIES; family++) {
    const base = `vllm:bench_tokens_${family}`;
    if (openMetrics) {
      lines.push(`# HELP ${base} Generated counter ${family}.`);
      lines.push(`# TYPE ${base} counter`);
      for (const labels of labelSets) {
        lines.push(`${base}_total{${labels}} ${counter++}.0`);
        lines.push(`${base}_created{${labels}} 1.7949024967821484e+09`);
      }
    } else {
      lines.push(`# HELP ${base}_total Generated counter ${family}.`);
      lines.push(`# TYPE ${base}_total counter`);
      for (const labels of labelSets) {
        lines.push(`${base}_total{${labels}} ${counter++}.0`);
      }
      lines.push(`# HELP ${base}_created Generated counter ${family}.`);
      lines.push(`# TYPE ${base}_created gauge`);
      for (const labels of labelSets) {
        lines.push(`${base}_created{${labels}} 1.7949024967821484e+09`);
      }
    }
  }

  for (let family = 0; family < HISTOGRAM_FAMILIES; family++) {
    const name = `vllm:bench_latency_${family}_seconds`;
    lines.push(`# HELP ${name} Generated histogram ${family}.`);
    lines.push(`# TYPE ${name} histogram`);
    for (const [index, labels] of labelSets.entries()) {
      const engine = engineLabels[index];
      const model = modelLabels[index];
      let cumulative = 0;
      for (const bound of BUCKET_BOUNDS) {
        cumulative += counter++ % 7;
        lines.push(
          `${name}_bucket{${engine},le="${bound}",${model}} ${cumulative}.0`,
        );
      }
      lines.push(`${name}_count{${labels}} ${cumulative}.0`);
      lines.push(`${name}_sum{${labels}} ${(cumulative * 0.731).toString()}`);
    }
  }

  if (openMetrics) {
    lines.push("# EOF");
  }
  return lines.join("\n") + "\n";
}

const generatedText = generateBody(false);
const generatedOpenMetrics = generateBody(true);

Deno.bench(
  "text 0.0.4, generated 10,000 series",
  { group: "generated" },
  () => {
    parseTextFormat(generatedText);
  },
);

Deno.bench(
  "OpenMetrics 1.0, generated 10,000 series",
  { group: "generated" },
  () => {
    parseOpenMetrics(generatedOpenMetrics);
  },
);

for (
  const fixture of [
    "metrics-v1-idle.prom",
    "metrics-v1-busy.prom",
    "metrics-v1-restarted.prom",
    "metrics-v1-two-models.prom",
    "metrics-v0-legacy.prom",
  ]
) {
  const body = Deno.readTextFileSync(new URL(fixture, FIXTURE_DIRECTORY));
  Deno.bench(`text 0.0.4, ${fixture}`, { group: "fixtures" }, () => {
    parseTextFormat(body);
  });
}
