import assert from "node:assert/strict";
import { cleanLine } from "../../src/logs/clean.ts";
import { parseEvents } from "../../src/logs/event_grouper.ts";
import type { LogEvent, RawLine, StreamName } from "../../src/logs/types.ts";

const DATA = new URL("../testdata/vllm/", import.meta.url);

/** Physical lines of a fixture, without their `\n`. */
async function readFixtureLines(name: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(name, DATA));
  assert.equal(text.endsWith("\n"), true);
  return text.slice(0, -1).split("\n");
}

/** Set of one-based line numbers from inclusive ranges. */
function lineNumbers(ranges: [number, number][]): Set<number> {
  const numbers = new Set<number>();
  for (const [first, last] of ranges) {
    for (let n = first; n <= last; n++) numbers.add(n);
  }
  return numbers;
}

/** Line numbers that docker tags as stderr in logs-startup*.txt. */
const STARTUP_STDERR = lineNumbers([
  [14, 20],
  [33, 34],
  [60, 62],
  [92, 102],
  [115, 120],
]);
/** Line numbers that docker tags as stderr in logs-v0-legacy.txt. */
const V0_STDERR = lineNumbers([[11, 15], [28, 30]]);

const DOCKER_TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) /;

/** Parsed fixture: its raw lines, its events, and lookups by line number. */
interface Fixture {
  lines: RawLine[];
  events: LogEvent[];
  /** The event whose first line is line `n` (one-based). */
  eventAt(n: number): LogEvent;
  /** The event holding line `n` (one-based) in its `lines`. */
  eventHolding(n: number): LogEvent;
}

function buildFixture(lines: RawLine[]): Fixture {
  const events = parseEvents(lines);
  const holder = new Map<RawLine, LogEvent>();
  for (const event of events) {
    for (const line of event.lines) {
      assert.equal(holder.has(line), false, "line in two events");
      holder.set(line, event);
    }
  }
  const lineAt = (n: number): RawLine => {
    const line = lines[n - 1];
    assert.ok(line !== undefined, `no line ${n}`);
    return line;
  };
  return {
    lines,
    events,
    eventAt(n) {
      const event = holder.get(lineAt(n));
      assert.ok(event !== undefined, `line ${n} is in no event`);
      assert.equal(
        event.lines[0],
        lineAt(n),
        `line ${n} does not start an event`,
      );
      return event;
    },
    eventHolding(n) {
      const event = holder.get(lineAt(n));
      assert.ok(event !== undefined, `line ${n} is in no event`);
      return event;
    },
  };
}

async function loadTimestampedStartup(): Promise<Fixture> {
  const texts = await readFixtureLines("logs-startup-timestamps.txt");
  const lines = texts.map((text, i): RawLine => {
    const match = DOCKER_TIMESTAMP.exec(text);
    assert.ok(match !== null, `line ${i + 1} has no docker timestamp`);
    const stream: StreamName = STARTUP_STDERR.has(i + 1) ? "stderr" : "stdout";
    return {
      timestamp: match[1] ?? "",
      stream,
      text: text.slice(match[0].length),
    };
  });
  return buildFixture(lines);
}

async function loadUntimestamped(
  name: string,
  streamOf: (n: number) => StreamName,
): Promise<Fixture> {
  const texts = await readFixtureLines(name);
  const lines = texts.map((text, i): RawLine => ({
    timestamp: `line ${i + 1}`,
    stream: streamOf(i + 1),
    text,
  }));
  return buildFixture(lines);
}

/** Level counts with progress events counted apart from their INFO level. */
function countLevels(events: LogEvent[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const event of events) {
    const key = event.fields.progress_pct === undefined
      ? event.level
      : "progress";
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

const STARTUP_LEVELS = { INFO: 81, WARNING: 6, ERROR: 2, progress: 8 };

const STATS_ROWS = [
  {
    line: 67,
    time: "09:15:43",
    prompt: 281.7,
    gen: 52.3,
    run: 1,
    wait: 0,
    kv: 0.2,
    hit: 0.0,
  },
  {
    line: 74,
    time: "09:15:53",
    prompt: 10251.4,
    gen: 402.6,
    run: 24,
    wait: 9,
    kv: 41.8,
    hit: 38.5,
  },
  {
    line: 78,
    time: "09:16:03",
    prompt: 8795.0,
    gen: 611.9,
    run: 31,
    wait: 17,
    preempt: 2,
    kv: 97.6,
    hit: 44.9,
  },
  {
    line: 91,
    time: "09:16:13",
    prompt: 2140.6,
    gen: 655.0,
    run: 29,
    wait: 14,
    preempt: 1,
    kv: 95.2,
    hit: 46.0,
  },
  {
    line: 103,
    time: "09:16:23",
    prompt: 0.0,
    gen: 498.3,
    run: 12,
    wait: 0,
    kv: 38.0,
    hit: 47.3,
  },
  {
    line: 105,
    time: "09:16:33",
    prompt: 0.0,
    gen: 287.5,
    run: 3,
    wait: 0,
    kv: 9.9,
    hit: 47.3,
  },
  {
    line: 106,
    time: "09:16:43",
    prompt: 0.0,
    gen: 31.4,
    run: 0,
    wait: 0,
    kv: 0.0,
    hit: 47.3,
  },
  {
    line: 107,
    time: "09:16:53",
    prompt: 0.0,
    gen: 0.0,
    run: 0,
    wait: 0,
    kv: 0.0,
    hit: 47.3,
  },
];

Deno.test("startup with timestamps: event and level counts", async () => {
  const fixture = await loadTimestampedStartup();
  assert.equal(fixture.lines.length, 120);
  assert.equal(fixture.events.length, 97);
  assert.deepEqual(countLevels(fixture.events), STARTUP_LEVELS);
});

Deno.test("startup with timestamps: every line in exactly one event", async () => {
  const fixture = await loadTimestampedStartup();
  // buildFixture already rejects a line held by two events.
  const linesInEvents = fixture.events.reduce(
    (sum, e) => sum + e.lines.length,
    0,
  );
  assert.equal(linesInEvents, 120);
  // Line 20 is the process prefix alone: it joins the progress event of line 19.
  const progress = fixture.eventHolding(20);
  assert.equal(progress, fixture.eventAt(19));
  assert.equal(progress.lines.length, 2);
  assert.equal(progress.message.endsWith("4/4 [00:10<00:00,  2.68s/it]"), true);
});

Deno.test("startup with timestamps: event time and stream from first line", async () => {
  const fixture = await loadTimestampedStartup();
  const first = fixture.events[0] as LogEvent;
  assert.equal(first.timestamp, "2026-11-17T09:14:03.903258690Z");
  for (const event of fixture.events) {
    assert.equal(event.timestamp, event.lines[0]?.timestamp);
    assert.equal(event.stream, event.lines[0]?.stream);
    for (const line of event.lines) assert.equal(line.stream, event.stream);
  }
  assert.equal(
    fixture.eventAt(119).timestamp,
    "2026-11-17T09:19:00.611312942Z",
  );
  assert.equal(
    fixture.lines[119]?.timestamp,
    "2026-11-17T09:19:00.611317638Z",
  );
});

Deno.test("startup with timestamps: no ANSI or CR in messages", async () => {
  const fixture = await loadTimestampedStartup();
  for (const event of fixture.events) {
    assert.equal(event.message.includes("\x1b"), false, event.message);
    assert.equal(event.message.includes("\r"), false, event.message);
    for (const value of Object.values(event.fields)) {
      assert.equal(String(value).includes("\x1b"), false, String(value));
    }
  }
});

Deno.test("startup with timestamps: stats lines", async (t) => {
  const fixture = await loadTimestampedStartup();
  const stats = fixture.events.filter((e) =>
    e.fields.prompt_throughput_tokens_per_s !== undefined
  );
  assert.equal(stats.length, 8);
  for (const row of STATS_ROWS) {
    await t.step(`line ${row.line}`, () => {
      const fields = fixture.eventAt(row.line).fields;
      assert.equal(fields.vllm_time, `11-17 ${row.time}`);
      assert.equal(fields.source_file, "loggers.py");
      assert.equal(fields.source_line, 259);
      assert.equal(fields.engine, "000");
      assert.equal(fields.prompt_throughput_tokens_per_s, row.prompt);
      assert.equal(fields.generation_throughput_tokens_per_s, row.gen);
      assert.equal(fields.running_requests, row.run);
      assert.equal(fields.waiting_requests, row.wait);
      assert.equal(fields.preemptions, row.preempt);
      assert.equal(fields.gpu_kv_cache_usage_pct, row.kv);
      assert.equal(fields.prefix_cache_hit_rate_pct, row.hit);
    });
  }
  const kv = stats.map((e) => e.fields.gpu_kv_cache_usage_pct as number);
  const average = kv.reduce((a, b) => a + b, 0) / kv.length;
  assert.ok(Math.abs(average - 35.3375) < 1e-9, String(average));
  assert.equal(Math.max(...kv), 97.6);
  assert.equal(Math.min(...kv), 0);
});

Deno.test("startup with timestamps: special lines", async (t) => {
  const fixture = await loadTimestampedStartup();
  const warnings: [number, string, number][] = [
    [7, "envs.py", 1492],
    [22, "kv_cache.py", 109],
    [23, "kv_cache.py", 123],
    [38, "model.py", 1389],
  ];
  for (const [line, file, sourceLine] of warnings) {
    await t.step(`line ${line} WARNING`, () => {
      const event = fixture.eventAt(line);
      assert.equal(event.level, "WARNING");
      assert.equal(event.fields.source_file, file);
      assert.equal(event.fields.source_line, sourceLine);
      assert.equal(event.lines.length, 1);
    });
  }

  await t.step("lines 79-90 one ERROR record", () => {
    const event = fixture.eventAt(79);
    assert.equal(event.level, "ERROR");
    assert.equal(event.lines.length, 12);
    assert.equal(fixture.eventHolding(90), event);
    assert.equal(event.fields.source_file, "serving.py");
    assert.equal(event.fields.source_line, 1325);
    assert.equal(event.fields.vllm_time, "11-17 09:16:07");
    assert.equal(
      event.fields.exception_type,
      "json.decoder.JSONDecodeError",
    );
    assert.equal(
      event.message.includes(
        "json.decoder.JSONDecodeError: Expecting ',' delimiter: line 1 column 58 (char 57)",
      ),
      true,
    );
    const messageLines = event.message.split("\n");
    assert.equal(messageLines.length, 12);
    assert.equal(messageLines[0], "Error in chat completion stream generator.");
    for (const text of messageLines) {
      assert.equal(text.includes("[serving.py:1325]"), false, text);
    }
  });

  await t.step("lines 92-102 one uvicorn ERROR event", () => {
    const event = fixture.eventAt(92);
    assert.equal(event.level, "ERROR");
    assert.equal(event.stream, "stderr");
    assert.equal(event.lines.length, 11);
    assert.equal(fixture.eventHolding(102), event);
    assert.equal(event.message.endsWith("\nanyio.ClosedResourceError"), true);
    assert.equal(event.fields.exception_type, "anyio.ClosedResourceError");
    // No access line follows the crashed request.
    assert.equal(fixture.eventAt(103).fields.status, undefined);
  });

  await t.step("line 115 torch WARNING", () => {
    const event = fixture.eventAt(115);
    assert.equal(event.level, "WARNING");
    assert.equal(event.fields.source_file, "ProcessGroupNCCL.cpp");
    assert.equal(event.fields.source_line, 1553);
    assert.equal(event.fields.rank, 0);
    assert.equal(event.fields.process, undefined);
  });

  await t.step("lines 119-120 one Python warning", () => {
    const event = fixture.eventAt(119);
    assert.equal(event.level, "WARNING");
    assert.equal(event.lines.length, 2);
    assert.equal(fixture.eventHolding(120), event);
    assert.equal(event.fields.warning_category, "UserWarning");
    assert.equal(
      event.fields.source_file,
      "/usr/lib/python3.12/multiprocessing/resource_tracker.py",
    );
    assert.equal(event.fields.source_line, 279);
  });

  for (const line of [60, 61, 62, 116, 117, 118]) {
    await t.step(`line ${line} uvicorn INFO on stderr`, () => {
      const event = fixture.eventAt(line);
      assert.equal(event.level, "INFO");
      assert.equal(event.stream, "stderr");
      assert.equal(event.fields.process, "APIServer");
      assert.equal(event.fields.vllm_time, undefined);
    });
  }

  await t.step("line 114 shutdown INFO", () => {
    const event = fixture.eventAt(114);
    assert.equal(event.level, "INFO");
    assert.equal(event.message, "Shutting down FastAPI HTTP server.");
  });

  await t.step("line 33 final tqdm state", () => {
    const event = fixture.eventAt(33);
    assert.equal(event.lines.length, 1);
    assert.match(
      event.message,
      /^Capturing CUDA graphs \(mixed prefill-decode, PIECEWISE\): 100%\|██████████\| 51\/51 \[00:03<00:00, 15\.89it\/s\]$/,
    );
    assert.equal(event.fields.progress_pct, 100);
    assert.equal(event.fields.progress_current, 51);
    assert.equal(event.fields.progress_total, 51);
    assert.equal(event.fields.process, "EngineCore_DP0");
  });

  await t.step("line 34 final tqdm state", () => {
    const event = fixture.eventAt(34);
    assert.match(event.message, /: 100%\|██████████\| 35\/35 \[/);
  });
});

Deno.test("startup with timestamps: event kinds", async () => {
  const fixture = await loadTimestampedStartup();
  const events = fixture.events;
  const stats = events.filter((e) =>
    e.fields.prompt_throughput_tokens_per_s !== undefined
  );
  const records = events.filter((e) =>
    e.fields.vllm_time !== undefined &&
    e.fields.prompt_throughput_tokens_per_s === undefined
  );
  const access = events.filter((e) => e.fields.status !== undefined);
  const progress = events.filter((e) => e.fields.progress_pct !== undefined);
  const torch = events.filter((e) => e.fields.source_time !== undefined);
  const warnings = events.filter((e) =>
    e.fields.warning_category !== undefined
  );
  const uvicornOther = events.filter((e) => {
    const first = cleanLine(e.lines[0]?.text ?? "");
    return e.fields.status === undefined &&
      / (INFO|ERROR): {4,5}/.test(first);
  });
  assert.equal(records.length, 52);
  assert.equal(stats.length, 8);
  assert.equal(access.length, 20);
  assert.equal(uvicornOther.length, 7);
  assert.equal(progress.length, 8);
  assert.equal(torch.length, 1);
  assert.equal(warnings.length, 1);

  const times = records.concat(stats).map((e) => e.fields.vllm_time as string)
    .sort();
  assert.equal(times[0], "11-17 09:14:03");
  assert.equal(times[times.length - 1], "11-17 09:18:59");
});

Deno.test("startup with timestamps: access lines", async () => {
  const fixture = await loadTimestampedStartup();
  const counts: Record<string, number> = {};
  for (const event of fixture.events) {
    const fields = event.fields;
    if (fields.status === undefined) continue;
    assert.equal(event.level, "INFO");
    assert.equal(event.stream, "stdout");
    assert.equal(fields.http_version, "1.1");
    assert.match(String(fields.client), /^127\.0\.0\.1:\d+$/);
    const key = `${fields.method} ${fields.path} ${fields.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  assert.deepEqual(counts, {
    "GET /health 200": 5,
    "GET /v1/models 200": 1,
    "POST /v1/chat/completions 200": 8,
    "POST /v1/chat/completions 400": 1,
    "POST /v1/completions 200": 1,
    "GET /metrics 200": 4,
  });
  const badRequest = fixture.eventAt(76);
  assert.equal(badRequest.fields.status, 400);
  assert.equal(badRequest.message.endsWith("400 Bad Request"), true);
  for (const line of [110, 111, 112, 113]) {
    assert.equal(fixture.eventAt(line).fields.path, "/metrics");
  }
});

Deno.test("startup without timestamps: same events", async (t) => {
  const byStream = await loadUntimestamped(
    "logs-startup.txt",
    (n) => STARTUP_STDERR.has(n) ? "stderr" : "stdout",
  );
  // `docker logs 2>&1` into one pipe: group everything as one stream.
  const merged = await loadUntimestamped("logs-startup.txt", () => "stdout");
  for (
    const [name, fixture] of [["by stream", byStream], [
      "merged",
      merged,
    ]] as const
  ) {
    await t.step(name, () => {
      assert.equal(fixture.lines.length, 120);
      assert.equal(fixture.events.length, 97);
      assert.deepEqual(countLevels(fixture.events), STARTUP_LEVELS);
      const linesInEvents = fixture.events.reduce(
        (sum, e) => sum + e.lines.length,
        0,
      );
      assert.equal(linesInEvents, 120);
      assert.equal(fixture.eventHolding(20), fixture.eventAt(19));
      assert.equal(fixture.eventAt(79).lines.length, 12);
      assert.equal(fixture.eventAt(92).lines.length, 11);
      assert.equal(fixture.eventAt(119).lines.length, 2);
    });
  }
});

Deno.test("V0 legacy log", async (t) => {
  const fixture = await loadUntimestamped(
    "logs-v0-legacy.txt",
    (n) => V0_STDERR.has(n) ? "stderr" : "stdout",
  );
  const events = fixture.events;
  assert.equal(fixture.lines.length, 37);
  assert.equal(events.length, 36);
  assert.equal(events.reduce((sum, e) => sum + e.lines.length, 0), 37);

  await t.step("empty line 15 joins the progress event", () => {
    const event = fixture.eventHolding(15);
    assert.equal(event, fixture.eventAt(14));
    assert.equal(event.fields.progress_pct, 100);
  });

  await t.step("levels", () => {
    const warnings = events.filter((e) => e.level === "WARNING");
    assert.deepEqual(warnings, [fixture.eventAt(6), fixture.eventAt(35)]);
    assert.equal(events.some((e) => e.level === "ERROR"), false);
    assert.equal(
      fixture.eventAt(6).fields.source_file,
      "multiproc_gpu_executor.py",
    );
    assert.equal(fixture.eventAt(6).fields.source_line, 53);
    assert.equal(
      fixture.eventAt(35).fields.kv_total_num_cumulative_preemption,
      1,
    );
  });

  await t.step("stats lines 34 and 36", () => {
    const expected = [
      {
        line: 34,
        prompt: 3.4,
        gen: 14.9,
        run: 1,
        swapped: 0,
        pending: 0,
        gpu: 0.1,
        cpu: 0.0,
      },
      {
        line: 36,
        prompt: 0.0,
        gen: 1204.8,
        run: 62,
        swapped: 0,
        pending: 9,
        gpu: 99.4,
        cpu: 0.0,
      },
    ];
    for (const row of expected) {
      const fields = fixture.eventAt(row.line).fields;
      assert.equal(fields.source_file, "metrics.py");
      assert.equal(fields.source_line, 349);
      assert.equal(fields.prompt_throughput_tokens_per_s, row.prompt);
      assert.equal(fields.generation_throughput_tokens_per_s, row.gen);
      assert.equal(fields.running_requests, row.run);
      assert.equal(fields.swapped_requests, row.swapped);
      // V0 prints the waiting queue as `Pending`.
      assert.equal(fields.waiting_requests, row.pending);
      assert.equal(fields.gpu_kv_cache_usage_pct, row.gpu);
      assert.equal(fields.cpu_kv_cache_usage_pct, row.cpu);
      assert.equal(fields.engine, undefined);
    }
  });

  await t.step("access lines 33 and 37", () => {
    const access = events.filter((e) => e.fields.status !== undefined);
    assert.deepEqual(access, [fixture.eventAt(33), fixture.eventAt(37)]);
    for (const event of access) {
      assert.equal(event.fields.method, "POST");
      assert.equal(event.fields.path, "/v1/chat/completions");
    }
    assert.equal(fixture.eventAt(33).fields.status, 200);
    assert.equal(fixture.eventAt(37).fields.status, 400);
  });

  await t.step("worker prefix lines 7 and 17", () => {
    for (const line of [7, 17]) {
      const fields = fixture.eventAt(line).fields;
      assert.equal(fields.process, "VllmWorkerProcess");
      assert.equal(fields.pid, 212);
    }
    const prefixed = events.filter((e) => e.fields.process !== undefined);
    assert.equal(prefixed.length, 2);
  });

  await t.step("progress lines 11-14", () => {
    for (const line of [11, 12, 13, 14]) {
      const event = fixture.eventAt(line);
      assert.equal(event.stream, "stderr");
      assert.equal(event.fields.progress_total, 2);
      assert.equal(event.message.startsWith("Loading safetensors"), true);
    }
  });

  await t.step("no ANSI or CR in messages", () => {
    for (const event of events) {
      assert.equal(event.message.includes("\x1b"), false, event.message);
      assert.equal(event.message.includes("\r"), false, event.message);
    }
  });
});
