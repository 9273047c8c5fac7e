#!/usr/bin/env bash
# Compiles main.ts into one executable with `deno compile`. deno compile
# needs Deno's runtime image (denort) for this version; it downloads it once
# unless DENORT_BIN names a local copy, which offline machines must do.
set -euo pipefail

output=${1:-horos_vllm_logger}
deno=${DENO:-deno}
permissions=(--allow-read --allow-write --allow-net --allow-run --allow-env --allow-sys)

if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
  echo "error: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$deno" compile --frozen "${permissions[@]}" --output "$output" main.ts 2>"$log"; then
  cat "$log" >&2
  if [ -z "${DENORT_BIN:-}" ] && grep -qiE 'denort|download|dl\.deno\.land|error sending request|dns' "$log"; then
    version=$("$deno" --version | head -n 1 | cut -d' ' -f2)
    cat >&2 <<TEXT

error: deno compile could not download Deno's runtime image (denort $version).
This machine cannot reach Deno's download server. Build offline by pointing
DENORT_BIN at a denort binary of exactly this version, for example one
unpacked from denort-x86_64-unknown-linux-gnu.zip of Deno $version:
  make build DENORT_BIN=/path/to/denort
TEXT
  fi
  exit 1
fi
# A binary built on the wrong runtime image (such as the full deno binary
# given as DENORT_BIN) ignores the embedded program: check that it runs ours.
if ! "./$output" version 2>/dev/null | grep -q '^horos_vllm_logger '; then
  rm -f "$output"
  echo "error: the compiled binary does not run horos_vllm_logger; DENORT_BIN=${DENORT_BIN:-} is not a denort runtime image of this Deno version" >&2
  exit 1
fi
echo "built ./$output ($(du -h "$output" | cut -f1)): $("./$output" version)"
