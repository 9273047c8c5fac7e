import assert from "node:assert/strict";
import {
  findDayFiles,
  formatRecord,
  searchLogs,
} from "../../src/logs/search.ts";

function record(
  timestamp: string,
  level: string,
  message: string,
  container = "a",
): string {
  return JSON.stringify({
    timestamp,
    level,
    container,
    stream: "stdout",
    message,
  });
}

async function gzipText(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function setUp(): Promise<string> {
  const root = await Deno.makeTempDir();
  await Deno.mkdir(`${root}/a`);
  await Deno.mkdir(`${root}/b`);
  await Deno.writeFile(
    `${root}/a/2026-11-16.jsonl.gz`,
    await gzipText(
      record("2026-11-16T23:59:59.999999999Z", "ERROR", "Traceback old") + "\n",
    ),
  );
  await Deno.writeTextFile(
    `${root}/a/2026-11-17.jsonl`,
    [
      record("2026-11-17T00:00:00.000000001Z", "INFO", "started"),
      record(
        "2026-11-17T09:00:00.000000000Z",
        "WARNING",
        "KV cache usage at 91%",
      ),
      record(
        "2026-11-17T10:00:00.000000000Z",
        "ERROR",
        "Engine failed\nTraceback ...",
      ),
    ].join("\n") + "\n",
  );
  await Deno.writeTextFile(
    `${root}/b/2026-11-17.jsonl`,
    record("2026-11-17T09:30:00.000000000Z", "INFO", "b line", "b") + "\n",
  );
  return root;
}

async function messages(
  root: string,
  query: Partial<Parameters<typeof searchLogs>[1]>,
): Promise<string[]> {
  const files = await findDayFiles(root);
  const found: string[] = [];
  for await (
    const match of searchLogs(files, {
      containers: [],
      startMs: 0,
      endMs: Date.parse("2030-01-01T00:00:00Z"),
      minLevel: null,
      text: null,
      ...query,
    })
  ) {
    found.push(String(match.record.message));
  }
  return found;
}

Deno.test("searchLogs reads plain and gzip files with filters", async (t) => {
  const root = await setUp();
  await t.step("everything, container then time order", async () => {
    assert.deepEqual(await messages(root, {}), [
      "Traceback old",
      "started",
      "KV cache usage at 91%",
      "Engine failed\nTraceback ...",
      "b line",
    ]);
  });
  await t.step("one container", async () => {
    assert.deepEqual(await messages(root, { containers: ["b"] }), ["b line"]);
  });
  await t.step("minimum level", async () => {
    assert.deepEqual(
      await messages(root, { minLevel: "WARNING", containers: ["a"] }),
      [
        "Traceback old",
        "KV cache usage at 91%",
        "Engine failed\nTraceback ...",
      ],
    );
  });
  await t.step("text, case-insensitive", async () => {
    assert.deepEqual(await messages(root, { text: "traceback" }), [
      "Traceback old",
      "Engine failed\nTraceback ...",
    ]);
  });
  await t.step("time window at nanosecond edges", async () => {
    const found = await messages(root, {
      startMs: Date.parse("2026-11-17T00:00:00.000Z"),
      endMs: Date.parse("2026-11-17T09:00:00.000Z"),
    });
    assert.deepEqual(found, ["started", "KV cache usage at 91%"]);
  });
  await t.step("one container's directory as root", async () => {
    const files = await findDayFiles(`${root}/b`);
    assert.deepEqual(files.map((file) => file.container), ["b"]);
  });
  await Deno.remove(root, { recursive: true });
});

Deno.test("formatRecord indents continuation lines", () => {
  const text = formatRecord(
    JSON.parse(record("2026-11-17T10:00:00.123456789Z", "ERROR", "a\nb")),
  );
  assert.equal(text, "2026-11-17T10:00:00.123Z a ERROR    a\n    b");
});
