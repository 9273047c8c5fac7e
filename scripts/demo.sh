#!/usr/bin/env bash
# Runs the main job for about 20 seconds on this machine: a simulated vLLM
# server (metrics on 127.0.0.1, logs through a fake `docker`), the logger in
# the supervisor's flag form, then the stats and the files it wrote.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deno=${HOROS_DENO:-deno}
demo_dir=${DEMO_DIR:-$repo/demo}
duration=${DEMO_SECONDS:-20}
container=vllm-demo
cli=("$deno" run --allow-all "$repo/main.ts")

rm -rf "$demo_dir"
mkdir -p "$demo_dir"
port=$("$deno" eval 'const l = Deno.listen({ hostname: "127.0.0.1", port: 0 }); console.log(l.addr.port); l.close();')

export FAKE_DOCKER_ROOT=$demo_dir/docker
export PATH=$repo/scripts/fake-docker:$PATH
export HOROS_DENO=$deno

echo "== Simulated vLLM server on http://127.0.0.1:$port/metrics, container $container"
"${cli[@]}" simulate --port "$port" --docker-root "$FAKE_DOCKER_ROOT" --container "$container" \
  >"$demo_dir/simulator.out" 2>&1 &
simulator=$!
trap 'kill "$simulator" 2>/dev/null || true' EXIT
"$deno" eval --quiet "
  for (let i = 0; i < 200; i++) {
    try { await (await fetch('http://127.0.0.1:$port/health')).body?.cancel(); Deno.exit(0); } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  console.error('the simulator did not start; see $demo_dir/simulator.out'); Deno.exit(1);"

echo "== Logger running for ${duration}s (its own log: $demo_dir/logger.log)"
"${cli[@]}" --container "$container" --metrics-port "$port" --log-dir "$demo_dir/logs/$container" \
  --db "$demo_dir/vllm_metrics.db" --interval-seconds 2 2>"$demo_dir/logger.log" &
logger=$!
sleep "$duration"
kill -TERM "$logger"
wait "$logger"
echo "== Logger stopped with exit code 0 after SIGTERM"
kill "$simulator" 2>/dev/null || true
wait "$simulator" 2>/dev/null || true

echo
echo "== horos_vllm_logger metrics stats --container $container --last 5m --db $demo_dir/vllm_metrics.db"
"${cli[@]}" metrics stats --container "$container" --last 5m --db "$demo_dir/vllm_metrics.db"
"${cli[@]}" metrics stats --container "$container" --last 5m --db "$demo_dir/vllm_metrics.db" --format json \
  | "$deno" run "$repo/scripts/demo_check.ts"

echo
echo "== Files written"
for file in "$demo_dir"/logs/"$container"/*.jsonl; do
  echo "$file: $(wc -l <"$file") events; the last two:"
  tail -n 2 "$file"
done
echo "$demo_dir/vllm_metrics.db: $(du -h "$demo_dir/vllm_metrics.db" | cut -f1)"
