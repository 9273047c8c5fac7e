import assert from "node:assert/strict";
import { parseTextFormat } from "../../src/metrics/exposition/text_format.ts";
import { openStore } from "../../src/metrics/store.ts";
import { DENO, REPO } from "../e2e/helpers.ts";

async function run(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(DENO, {
    args: ["run", "--allow-all", `${REPO}/main.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function fixtureDatabase(): Promise<{ dir: string; db: string }> {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/metrics.db`;
  const store = openStore(db);
  const parsed = parseTextFormat(
    await Deno.readTextFile(`${REPO}/tests/testdata/vllm/metrics-v1-busy.prom`),
  );
  store.writeScrape({
    container: "vllm-a",
    timestampMs: Date.now() - 1000,
    durationSeconds: 0.01,
    up: true,
    samplesScraped: parsed.samples.length,
    parseErrors: 0,
    duplicateSamples: 0,
    error: null,
  }, parsed.samples);
  store.close();
  return { dir, db };
}

Deno.test("help output is complete every time", async () => {
  const lengths = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const result = await run("run", "--help");
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Examples:/);
    lengths.add(result.stdout.length);
  }
  assert.equal(lengths.size, 1);
});

Deno.test("flag form accepts the flags in any order", async () => {
  const result = await run("--interval-seconds", "2", "--no-such-flag");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown option '--no-such-flag'/);
});

Deno.test("unknown names are errors, not empty output", async (t) => {
  const { dir, db } = await fixtureDatabase();
  const cases: [string, string[], RegExp][] = [
    ["stats container", [
      "metrics",
      "stats",
      "--container",
      "vllm-b",
      "--db",
      db,
    ], /containers with scrapes: vllm-a/],
    ["export metric", [
      "metrics",
      "export",
      "--metric",
      "kv_cache_usage",
      "--db",
      db,
    ], /metrics list/],
    ["export container", [
      "metrics",
      "export",
      "--metric",
      "kv_cache_usage_perc",
      "--container",
      "x",
      "--db",
      db,
    ], /not found/],
    [
      "list container",
      ["metrics", "list", "--container", "x", "--db", db],
      /not found/,
    ],
    ["logs level", ["logs", "--dir", dir, "--level", "bogus"], /not a level/],
  ];
  for (const [name, args, message] of cases) {
    await t.step(name, async () => {
      const result = await run(...args);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, "");
    });
  }
  await t.step("known names still work", async () => {
    const result = await run(
      "metrics",
      "export",
      "--metric",
      "kv_cache_usage_perc",
      "--container",
      "vllm-a",
      "--db",
      db,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim().split("\n").length, 2);
  });
  await Deno.remove(dir, { recursive: true });
});
