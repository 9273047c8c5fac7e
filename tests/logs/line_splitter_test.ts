import assert from "node:assert/strict";
import {
  DOCKER_CHUNK_BYTES,
  LineSplitter,
} from "../../src/logs/line_splitter.ts";

const encoder = new TextEncoder();

Deno.test("LineSplitter splits across chunk boundaries", () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push(encoder.encode("ab")), []);
  assert.deepEqual(splitter.push(encoder.encode("c\nde\r\n")), [
    { text: "abc" },
    { text: "de\r" },
  ]);
  assert.equal(splitter.hasPartial(), false);
  assert.deepEqual(splitter.push(encoder.encode("tail")), []);
  assert.deepEqual(splitter.end(), [{ text: "tail" }]);
});

Deno.test("LineSplitter replaces invalid UTF-8", () => {
  const splitter = new LineSplitter();
  const lines = splitter.push(new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0x0a]));
  assert.deepEqual(lines, [{ text: "a\uFFFD\uFFFDb" }]);
});

Deno.test("LineSplitter keeps a character split between pushes", () => {
  const splitter = new LineSplitter();
  const bytes = encoder.encode("é\n");
  assert.deepEqual(splitter.push(bytes.subarray(0, 1)), []);
  assert.deepEqual(splitter.push(bytes.subarray(1)), [{ text: "é" }]);
});

Deno.test("LineSplitter cuts lines over the limit", () => {
  const splitter = new LineSplitter({ maxLineBytes: 10 });
  const lines = splitter.push(encoder.encode("0123456789abcdef\nok\n"));
  assert.deepEqual(lines, [{ text: "0123456789", originalBytes: 16 }, {
    text: "ok",
  }]);
});

Deno.test("LineSplitter joins Docker's timestamped chunks", async (t) => {
  const stamp = (n: number) => `2026-11-17T09:14:0${n}.000000000Z `;
  await t.step("ASCII line of 40,000 characters", () => {
    const text = "x".repeat(40_000);
    const raw = stamp(1) + text.slice(0, DOCKER_CHUNK_BYTES) + stamp(2) +
      text.slice(DOCKER_CHUNK_BYTES, 2 * DOCKER_CHUNK_BYTES) + stamp(3) +
      text.slice(2 * DOCKER_CHUNK_BYTES) + "\n";
    const splitter = new LineSplitter({ joinDockerChunks: true });
    const lines = splitter.push(encoder.encode(raw));
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.text, stamp(1) + text);
  });
  await t.step("multibyte character across the boundary", () => {
    const text = "a".repeat(DOCKER_CHUNK_BYTES - 1) + "€" + "b".repeat(100);
    const bytes = encoder.encode(text);
    const first = bytes.subarray(0, DOCKER_CHUNK_BYTES);
    const second = bytes.subarray(DOCKER_CHUNK_BYTES);
    const raw = new Uint8Array([
      ...encoder.encode(stamp(1)),
      ...first,
      ...encoder.encode(stamp(2)),
      ...second,
      0x0a,
    ]);
    const splitter = new LineSplitter({ joinDockerChunks: true });
    const lines = splitter.push(raw);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.text, stamp(1) + text);
  });
  await t.step("short lines are untouched", () => {
    const splitter = new LineSplitter({ joinDockerChunks: true });
    const line = stamp(1) + "2026-11-17T09:14:03.000000000Z looks like a stamp";
    assert.deepEqual(splitter.push(encoder.encode(line + "\n")), [{
      text: line,
    }]);
  });
});
