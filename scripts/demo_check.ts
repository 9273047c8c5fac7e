/**
 * Reads `metrics stats --format json` on stdin and exits 1 unless the demo
 * produced non-zero KV-cache usage, generation tokens/s and a queue-time p95.
 *
 * @module
 */
// deno-lint-ignore-file no-console

const stats = JSON.parse(await new Response(Deno.stdin.readable).text());
const model = stats[0]?.models?.[0];
const figures = {
  "KV-cache usage avg (%)": model?.kv_cache_usage_percent?.avg,
  "generation tokens/s": model?.generation_tokens_per_second?.avg,
  "queue time p95 (s)": model?.queue_time_seconds?.p95?.value,
};
let ok = true;
for (const [name, value] of Object.entries(figures)) {
  const good = typeof value === "number" && value > 0;
  console.log(`${good ? "ok  " : "FAIL"} ${name}: ${value}`);
  ok &&= good;
}
if (!ok) {
  console.error(
    "The demo did not produce the expected figures; see demo/logger.log",
  );
  Deno.exit(1);
}
