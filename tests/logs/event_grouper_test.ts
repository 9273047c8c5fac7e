import assert from "node:assert/strict";
import { EventGrouper, parseEvents } from "../../src/logs/event_grouper.ts";
import type { LogEvent, RawLine, StreamName } from "../../src/logs/types.ts";

const API = "\x1b[0;36m(APIServer pid=1)\x1b[0;0m ";
const ENGINE = "\x1b[0;36m(EngineCore_DP0 pid=267)\x1b[0;0m ";

/** Builds raw lines with increasing timestamps, one second apart. */
function rawLines(texts: string[], stream: StreamName = "stderr"): RawLine[] {
  return texts.map((text, i) => ({
    timestamp: `2026-11-17T09:16:${String(i).padStart(2, "0")}.000000000Z`,
    stream,
    text,
  }));
}

function group(texts: string[], stream: StreamName = "stderr"): LogEvent[] {
  const grouper = new EventGrouper();
  const events: LogEvent[] = [];
  for (const line of rawLines(texts, stream)) {
    events.push(...grouper.push(line));
  }
  events.push(...grouper.flush());
  return events;
}

const TRACEBACK = [
  "Traceback (most recent call last):",
  '  File "/app/main.py", line 10, in <module>',
  "    run(config)",
  "    ^^^^^^^^^^^",
  '  File "/app/run.py", line 3, in run',
  "    return load(config['path'])",
  "           ^^^^^^^^^^^^^^^^^^^^",
  "KeyError: 'path'",
];

Deno.test("raw traceback with caret lines is one ERROR event", () => {
  const events = group(TRACEBACK);
  assert.equal(events.length, 1);
  const event = events[0] as LogEvent;
  assert.equal(event.level, "ERROR");
  assert.equal(event.message, TRACEBACK.join("\n"));
  assert.equal(event.lines.length, TRACEBACK.length);
  assert.equal(event.fields.exception_type, "KeyError");
  assert.equal(event.timestamp, "2026-11-17T09:16:00.000000000Z");
  assert.equal(event.stream, "stderr");
});

Deno.test("chained exceptions stay in one event", async (t) => {
  const markers = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
  ];
  for (const marker of markers) {
    await t.step(marker, () => {
      const texts = [
        ...TRACEBACK,
        "",
        marker,
        "",
        "Traceback (most recent call last):",
        '  File "/app/main.py", line 12, in <module>',
        "    raise RuntimeError('load failed') from None",
        "RuntimeError: load failed",
      ];
      const events = group(texts);
      assert.equal(events.length, 1);
      const event = events[0] as LogEvent;
      assert.equal(event.lines.length, texts.length);
      assert.equal(event.message, texts.join("\n"));
      assert.equal(event.fields.exception_type, "RuntimeError");
      assert.equal(event.level, "ERROR");
    });
  }
});

Deno.test("consecutive tracebacks are separate events", () => {
  const events = group([...TRACEBACK, ...TRACEBACK]);
  assert.equal(events.length, 2);
  assert.equal(events[0]?.lines.length, TRACEBACK.length);
  assert.equal(events[1]?.lines.length, TRACEBACK.length);
});

Deno.test("line after exception line starts a new event", () => {
  const events = group([
    ...TRACEBACK,
    "  detail indented under the exception",
    "next line",
  ]);
  assert.equal(events.length, 2);
  assert.equal(events[0]?.lines.length, TRACEBACK.length + 1);
  assert.equal(events[1]?.message, "next line");
  assert.equal(events[1]?.level, "INFO");
});

Deno.test("uvicorn ASGI error takes the raw traceback", () => {
  const texts = [
    `${API}ERROR:    Exception in ASGI application`,
    `${API}Traceback (most recent call last):`,
    `${API}  File "/x/httptools_impl.py", line 416, in run_asgi`,
    `${API}    result = await app(  # type: ignore[func-returns-value]`,
    `${API}             ^^^^^^^^^^`,
    `${API}anyio.ClosedResourceError`,
    `${API}INFO 11-17 09:16:23 [loggers.py:259] Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 1.0 tokens/s, Running: 1 reqs, Waiting: 0 reqs, GPU KV cache usage: 1.0%, Prefix cache hit rate: 0.0%`,
  ];
  const events = group(texts);
  assert.equal(events.length, 2);
  const error = events[0] as LogEvent;
  assert.equal(error.level, "ERROR");
  assert.equal(error.lines.length, 6);
  assert.equal(
    error.message,
    [
      "Exception in ASGI application",
      "Traceback (most recent call last):",
      '  File "/x/httptools_impl.py", line 416, in run_asgi',
      "    result = await app(  # type: ignore[func-returns-value]",
      "             ^^^^^^^^^^",
      "anyio.ClosedResourceError",
    ].join("\n"),
  );
  assert.equal(error.fields.exception_type, "anyio.ClosedResourceError");
  assert.equal(error.fields.process, "APIServer");
  assert.equal(events[1]?.fields.running_requests, 1);
});

Deno.test("process header line takes the traceback", () => {
  const texts = [
    `${ENGINE}Process EngineCore_DP0:`,
    ...TRACEBACK.map((t) => ENGINE + t),
  ];
  const events = group(texts);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.level, "ERROR");
  assert.equal(events[0]?.lines.length, texts.length);
  assert.equal(events[0]?.message.split("\n")[0], "Process EngineCore_DP0:");
});

Deno.test("INFO record does not take a traceback", () => {
  const events = group([
    `${API}INFO 11-17 09:16:07 [x.py:1] Available routes are`,
    ...TRACEBACK.map((t) => API + t),
  ]);
  assert.equal(events.length, 2);
  assert.equal(events[0]?.level, "INFO");
  assert.equal(events[1]?.level, "ERROR");
  assert.equal(events[1]?.lines.length, TRACEBACK.length);
});

Deno.test("pre-2025 ERROR record takes the raw traceback", () => {
  const events = group([
    "ERROR 03-08 14:05:11 serving_chat.py:123] Error in stream generator.",
    ...TRACEBACK,
  ], "stdout");
  assert.equal(events.length, 1);
  assert.equal(events[0]?.level, "ERROR");
  assert.equal(events[0]?.fields.source_file, "serving_chat.py");
  assert.equal(events[0]?.fields.exception_type, "KeyError");
});

Deno.test("line from another process ends a traceback", () => {
  const texts = [
    ...TRACEBACK.slice(0, 3).map((t) => API + t),
    `${ENGINE}  File "/other.py", line 1, in f`,
    ...TRACEBACK.slice(3).map((t) => API + t),
  ];
  const events = group(texts);
  assert.equal(events[0]?.lines.length, 3);
  assert.equal(events[0]?.fields.process, "APIServer");
  assert.equal(events[1]?.fields.process, "EngineCore_DP0");
  assert.equal(events[1]?.lines.length, 1);
  // The frames after the foreign line no longer follow a traceback header,
  // so each becomes an event of its own; no line is lost.
  assert.equal(
    events.reduce((sum, e) => sum + e.lines.length, 0),
    texts.length,
  );
});

const HEADER = "ERROR 11-17 09:16:07 [serving.py:1325]";

Deno.test("repeated-header record with CR is one event", () => {
  const texts = [
    `${API}${HEADER} Error in chat completion stream generator.\r`,
    `${API}${HEADER} Traceback (most recent call last):\r`,
    `${API}${HEADER}   File "/x/serving.py", line 1187, in gen\r`,
    `${API}${HEADER}     delta = parse(\r`,
    `${API}${HEADER}             ^^^^^^\r`,
    `${API}${HEADER} json.decoder.JSONDecodeError: Expecting ',' delimiter: line 1 column 58 (char 57)`,
    `${API}${HEADER} Another record with the same header`,
  ];
  const events = group(texts, "stdout");
  assert.equal(events.length, 2);
  const event = events[0] as LogEvent;
  assert.equal(event.level, "ERROR");
  assert.equal(event.stream, "stdout");
  assert.equal(event.timestamp, "2026-11-17T09:16:00.000000000Z");
  assert.equal(event.lines.length, 6);
  assert.equal(
    event.message,
    [
      "Error in chat completion stream generator.",
      "Traceback (most recent call last):",
      '  File "/x/serving.py", line 1187, in gen',
      "    delta = parse(",
      "            ^^^^^^",
      "json.decoder.JSONDecodeError: Expecting ',' delimiter: line 1 column 58 (char 57)",
    ].join("\n"),
  );
  assert.equal(event.fields.source_file, "serving.py");
  assert.equal(event.fields.source_line, 1325);
  assert.equal(event.fields.exception_type, "json.decoder.JSONDecodeError");
  assert.equal(events[1]?.message, "Another record with the same header");
});

Deno.test("same header without CR starts new events", () => {
  const events = group([
    `${API}INFO 11-17 09:15:15 [launcher.py:46] Route: /docs, Methods: HEAD, GET`,
    `${API}INFO 11-17 09:15:15 [launcher.py:46] Route: /redoc, Methods: HEAD, GET`,
  ], "stdout");
  assert.equal(events.length, 2);
});

Deno.test("CR record continues only with the same header", () => {
  const events = group([
    `${API}${HEADER} first line\r`,
    `${API}INFO 11-17 09:16:07 [other.py:1] unrelated`,
  ], "stdout");
  assert.equal(events.length, 2);
  assert.equal(events[0]?.message, "first line");
});

Deno.test("CR record continues only in the same process", () => {
  const events = group([
    `${API}${HEADER} first line\r`,
    `${ENGINE}${HEADER} same header, other process`,
  ], "stdout");
  assert.equal(events.length, 2);
});

Deno.test("Python warning takes its indented source line", () => {
  const texts = [
    "/usr/lib/python3.12/multiprocessing/resource_tracker.py:279: UserWarning: resource_tracker: There appear to be 1 leaked shared_memory objects to clean up at shutdown",
    "  warnings.warn('resource_tracker: There appear to be %d '",
    "unrelated text",
  ];
  const events = group(texts);
  assert.equal(events.length, 2);
  const warning = events[0] as LogEvent;
  assert.equal(warning.level, "WARNING");
  assert.equal(warning.fields.warning_category, "UserWarning");
  assert.equal(warning.lines.length, 2);
  assert.equal(
    warning.message,
    "resource_tracker: There appear to be 1 leaked shared_memory objects to clean up at shutdown\n  warnings.warn('resource_tracker: There appear to be %d '",
  );
});

Deno.test("Python warning does not take a traceback", () => {
  const events = group([
    "/app/x.py:3: FutureWarning: old API",
    ...TRACEBACK,
  ]);
  assert.equal(events.length, 2);
  assert.equal(events[0]?.level, "WARNING");
  assert.equal(events[1]?.level, "ERROR");
});

Deno.test("prefix-only line joins the held event", () => {
  const texts = [
    `${ENGINE}\rLoading safetensors checkpoint shards: 100% Completed | 4/4 [00:10<00:00,  2.68s/it]`,
    ENGINE,
    `${ENGINE}INFO 11-17 09:14:34 [default_loader.py:308] Loading weights took 10.73 seconds`,
  ];
  const lines = rawLines(texts);
  const grouper = new EventGrouper();
  assert.deepEqual(grouper.push(lines[0] as RawLine), []);
  assert.deepEqual(grouper.push(lines[1] as RawLine), []);
  const completed = grouper.push(lines[2] as RawLine);
  assert.equal(completed.length, 1);
  const progress = completed[0] as LogEvent;
  assert.deepEqual(progress.lines, [lines[0], lines[1]]);
  assert.equal(
    progress.message,
    "Loading safetensors checkpoint shards: 100% Completed | 4/4 [00:10<00:00,  2.68s/it]",
  );
  assert.equal(progress.fields.progress_pct, 100);
  assert.equal(grouper.droppedEmptyLines, 0);
});

Deno.test("prefix-only line with nothing held is dropped", () => {
  const grouper = new EventGrouper();
  const [line] = rawLines([ENGINE]);
  assert.deepEqual(grouper.push(line as RawLine), []);
  assert.equal(grouper.pending(), false);
  assert.deepEqual(grouper.flush(), []);
  assert.equal(grouper.droppedEmptyLines, 1);
});

Deno.test("flush emits the held event once", () => {
  const grouper = new EventGrouper();
  const [line] = rawLines([`${API}INFO:     Shutting down`]);
  assert.equal(grouper.pending(), false);
  assert.deepEqual(grouper.push(line as RawLine), []);
  assert.equal(grouper.pending(), true);
  const flushed = grouper.flush();
  assert.equal(flushed.length, 1);
  assert.equal(flushed[0]?.message, "Shutting down");
  assert.equal(grouper.pending(), false);
  assert.deepEqual(grouper.flush(), []);
});

Deno.test("flush in a traceback then more frames", () => {
  const lines = rawLines(TRACEBACK);
  const grouper = new EventGrouper();
  for (const line of lines.slice(0, 4)) grouper.push(line);
  const first = grouper.flush();
  assert.equal(first.length, 1);
  assert.equal(first[0]?.lines.length, 4);
  for (const line of lines.slice(4)) grouper.push(line);
  const rest = grouper.flush();
  assert.equal(rest.length, 1);
  assert.equal(rest[0]?.lines.length, 1);
});

Deno.test("push returns the event the line completed", () => {
  const lines = rawLines(["one", "two"], "stdout");
  const grouper = new EventGrouper();
  assert.deepEqual(grouper.push(lines[0] as RawLine), []);
  const completed = grouper.push(lines[1] as RawLine);
  assert.equal(completed.length, 1);
  assert.equal(completed[0]?.message, "one");
  assert.equal(completed[0]?.lines[0], lines[0]);
});

Deno.test("trailing empty lines are left out of the message", () => {
  const events = group([...TRACEBACK, "", "   "]);
  assert.equal(events.length, 1);
  assert.equal(events[0]?.lines.length, TRACEBACK.length + 2);
  assert.equal(events[0]?.message, TRACEBACK.join("\n"));
});

Deno.test("maxEventLines cuts long events", () => {
  const grouper = new EventGrouper({ maxEventLines: 3 });
  const events: LogEvent[] = [];
  for (const line of rawLines(TRACEBACK)) events.push(...grouper.push(line));
  events.push(...grouper.flush());
  assert.deepEqual(events.map((e) => e.lines.length), [3, 3, 2]);
  assert.equal(
    events.reduce((sum, e) => sum + e.lines.length, 0),
    TRACEBACK.length,
  );
});

Deno.test("parseEvents groups per stream in input order", () => {
  const lines: RawLine[] = [
    { timestamp: "t1", stream: "stdout", text: `${API}${HEADER} a\r` },
    { timestamp: "t2", stream: "stderr", text: "progress 1" },
    { timestamp: "t3", stream: "stdout", text: `${API}${HEADER} b` },
    { timestamp: "t4", stream: "stderr", text: "progress 2" },
  ];
  const events = parseEvents(lines);
  assert.deepEqual(events.map((e) => e.timestamp), ["t1", "t2", "t4"]);
  assert.equal(events[0]?.message, "a\nb");
  assert.equal(events[0]?.lines.length, 2);
});
