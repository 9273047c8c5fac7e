import assert from "node:assert/strict";
import {
  parseDurationMs,
  parseTimePointMs,
  resolveWindow,
} from "../../src/cli/time_window.ts";

Deno.test("parseDurationMs reads durations with units", async (t) => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["90s", 90_000],
    ["15m", 900_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["7d", 604_800_000],
    ["1.5h", 5_400_000],
  ];
  for (const [text, expected] of cases) {
    await t.step(text, () => assert.equal(parseDurationMs(text), expected));
  }
  for (const bad of ["", "1", "h", "1x", "-1h", "1h ", "0s"]) {
    await t.step(
      `rejects "${bad}"`,
      () => assert.throws(() => parseDurationMs(bad), SyntaxError),
    );
  }
});

Deno.test("parseTimePointMs reads absolute and relative times", async (t) => {
  const now = Date.parse("2026-11-17T12:00:00Z");
  const cases: [string, number][] = [
    ["2026-11-17T10:00:00Z", Date.parse("2026-11-17T10:00:00Z")],
    ["2026-11-17", Date.parse("2026-11-17T00:00:00Z")],
    ["1794902400", 1794902400_000],
    ["2h", now - 7_200_000],
  ];
  for (const [text, expected] of cases) {
    await t.step(
      text,
      () => assert.equal(parseTimePointMs(text, now), expected),
    );
  }
  await t.step(
    "rejects nonsense",
    () => assert.throws(() => parseTimePointMs("yesterday", now), SyntaxError),
  );
});

Deno.test("resolveWindow combines the flags", () => {
  const now = 10_000_000;
  assert.deepEqual(resolveWindow({}, now, "1h"), {
    startMs: now - 3_600_000,
    endMs: now,
  });
  assert.deepEqual(resolveWindow({}, now, null), { startMs: 0, endMs: now });
  assert.deepEqual(resolveWindow({ last: "10s" }, now, "1h"), {
    startMs: now - 10_000,
    endMs: now,
  });
  assert.throws(
    () => resolveWindow({ last: "1h", since: "2h" }, now, null),
    /conflicts/,
  );
  assert.throws(
    () => resolveWindow({ since: "1h", until: "2h" }, now, null),
    /empty/,
  );
});
