import assert from "node:assert/strict";
import { maintainDayFiles } from "../../src/logs/maintenance.ts";

async function dayFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function gunzip(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  return await new Response(
    new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).text();
}

/** Writes one day file per date with a distinct line. */
async function writeDays(dir: string, days: string[]): Promise<void> {
  for (const day of days) {
    await Deno.writeTextFile(`${dir}/${day}.jsonl`, `{"day":"${day}"}\n`);
  }
}

Deno.test("maintainDayFiles compresses and deletes by age from the newest day", async () => {
  const dir = await Deno.makeTempDir();
  await writeDays(dir, [
    "2026-10-01",
    "2026-11-01",
    "2026-11-09",
    "2026-11-10",
    "2026-11-16",
    "2026-11-17",
  ]);
  const result = await maintainDayFiles(dir, {
    compression: "gzip",
    compressAfterDays: 7,
    retentionDays: 30,
  });
  assert.deepEqual(await dayFiles(dir), [
    "2026-11-01.jsonl.gz",
    "2026-11-09.jsonl.gz",
    "2026-11-10.jsonl",
    "2026-11-16.jsonl",
    "2026-11-17.jsonl",
  ]);
  assert.deepEqual(result.deleted, [`${dir}/2026-10-01.jsonl`]);
  assert.equal(result.compressed.length, 2);
  assert.equal(
    await gunzip(`${dir}/2026-11-01.jsonl.gz`),
    '{"day":"2026-11-01"}\n',
  );
  assert.equal(
    await gunzip(`${dir}/2026-11-09.jsonl.gz`),
    '{"day":"2026-11-09"}\n',
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("maintainDayFiles uses an injected reference day", async () => {
  const dir = await Deno.makeTempDir();
  await writeDays(dir, ["2026-11-01", "2026-11-02"]);
  await maintainDayFiles(dir, {
    compression: "gzip",
    compressAfterDays: 7,
    retentionDays: 30,
    referenceDay: "2026-11-20",
  });
  // The newest file is never touched, even when it is old.
  assert.deepEqual(await dayFiles(dir), [
    "2026-11-01.jsonl.gz",
    "2026-11-02.jsonl",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("maintainDayFiles recovers from a crash at each step", async (t) => {
  await t.step("temporary file left behind", async () => {
    const dir = await Deno.makeTempDir();
    await writeDays(dir, ["2026-11-01", "2026-11-17"]);
    await Deno.writeTextFile(`${dir}/2026-11-01.jsonl.gz.tmp`, "partial");
    const result = await maintainDayFiles(dir, {
      compression: "gzip",
      compressAfterDays: 7,
      retentionDays: 30,
    });
    assert.deepEqual(result.recovered, ["2026-11-01.jsonl.gz.tmp"]);
    assert.deepEqual(await dayFiles(dir), [
      "2026-11-01.jsonl.gz",
      "2026-11-17.jsonl",
    ]);
    assert.equal(
      await gunzip(`${dir}/2026-11-01.jsonl.gz`),
      '{"day":"2026-11-01"}\n',
    );
    await Deno.remove(dir, { recursive: true });
  });
  await t.step("renamed but original not removed", async () => {
    const dir = await Deno.makeTempDir();
    await writeDays(dir, ["2026-11-01", "2026-11-17"]);
    const compressed = new Blob(['{"day":"2026-11-01"}\n']).stream()
      .pipeThrough(new CompressionStream("gzip"));
    await Deno.writeFile(
      `${dir}/2026-11-01.jsonl.gz`,
      new Uint8Array(await new Response(compressed).arrayBuffer()),
    );
    const result = await maintainDayFiles(dir, {
      compression: "gzip",
      compressAfterDays: 7,
      retentionDays: 30,
    });
    assert.deepEqual(result.recovered, [`${dir}/2026-11-01.jsonl`]);
    assert.deepEqual(await dayFiles(dir), [
      "2026-11-01.jsonl.gz",
      "2026-11-17.jsonl",
    ]);
    await Deno.remove(dir, { recursive: true });
  });
  await t.step("late events beside a compressed day are kept", async () => {
    const dir = await Deno.makeTempDir();
    await writeDays(dir, ["2026-11-01", "2026-11-17"]);
    const compressed = new Blob(['{"day":"earlier"}\n']).stream().pipeThrough(
      new CompressionStream("gzip"),
    );
    await Deno.writeFile(
      `${dir}/2026-11-01.jsonl.gz`,
      new Uint8Array(await new Response(compressed).arrayBuffer()),
    );
    await maintainDayFiles(dir, {
      compression: "gzip",
      compressAfterDays: 7,
      retentionDays: 30,
    });
    assert.deepEqual(await dayFiles(dir), [
      "2026-11-01.jsonl",
      "2026-11-01.jsonl.gz",
      "2026-11-17.jsonl",
    ]);
    await Deno.remove(dir, { recursive: true });
  });
});

Deno.test("maintainDayFiles with compression off only deletes", async () => {
  const dir = await Deno.makeTempDir();
  await writeDays(dir, ["2026-09-01", "2026-11-01", "2026-11-17"]);
  await maintainDayFiles(dir, {
    compression: "none",
    compressAfterDays: 7,
    retentionDays: 30,
  });
  assert.deepEqual(await dayFiles(dir), [
    "2026-11-01.jsonl",
    "2026-11-17.jsonl",
  ]);
  await Deno.remove(dir, { recursive: true });
});
