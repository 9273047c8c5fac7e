/**
 * Grouping of the physical lines of one container stream into log events.
 *
 * One line is one event, except for these multi-line events:
 * - a vLLM record split over several lines. vLLM repeats the whole header on
 *   every line and ends every line but the last with `\r`. A line continues
 *   the held record when the held record's last line ended with `\r` and the
 *   line repeats its header, which is then left out of the message;
 * - a raw Python traceback: `Traceback (most recent call last):`, the indented
 *   `File ...`, source and caret lines, the chain markers (`During handling of
 *   the above exception, another exception occurred:`, `The above exception
 *   was the direct cause of the following exception:`) with the tracebacks
 *   after them, and the final `module.Error: message` line with any indented
 *   lines below it. A traceback joins the held event when that event has no
 *   traceback of its own, is not a Python warning or progress bar, and either
 *   has level WARNING, ERROR or CRITICAL (uvicorn's `ERROR:    Exception in
 *   ASGI application`, a pre-2025 `logger.exception` record) or ends with `:`
 *   (multiprocessing's `Process EngineCore_DP0:`);
 * - a Python warning and the indented source line(s) below it.
 *
 * Continuation lines must come from the same process prefix as the held
 * event.
 * NOTE: only one event is held per stream, so a line from another process
 * written into the middle of a traceback ends it, and the remaining frames
 * become events of their own.
 *
 * Empty lines (nothing after the process prefix, such as the one tqdm
 * leaves after the weight-loading bar) are appended to the held event's
 * `lines` and, unless they end it, to its message as empty lines. An empty
 * line that arrives while no event is held produces no event: it is counted
 * in `droppedEmptyLines` and otherwise discarded, which loses no text because
 * it has none.
 *
 * An event's fields are those of its first line, plus `exception_type` when
 * it contains a traceback. An event without a level word of its own that
 * contains a traceback gets level `ERROR`.
 *
 * @module
 */
import { cleanLine } from "./clean.ts";
import { type LineKind, type ParsedLine, parseLine } from "./parse_line.ts";
import type { FieldValue, LogEvent, RawLine, StreamName } from "./types.ts";

/** Options of an `EventGrouper`. */
export interface EventGrouperOptions {
  /**
   * Maximum number of physical lines in one event, so that a runaway
   * traceback cannot hold unbounded memory. The lines after the cut go into
   * a new event that keeps the level and goes on grouping the same traceback
   * or record. Default 2000.
   */
  maxEventLines?: number;
}

const DEFAULT_MAX_EVENT_LINES = 2000;

const TRACEBACK_START = "Traceback (most recent call last):";
const CHAIN_MARKERS = [
  "During handling of the above exception, another exception occurred:",
  "The above exception was the direct cause of the following exception:",
];

/** Position of the held event within a Python traceback or warning. */
enum Tail {
  /** Not inside a traceback or warning. */
  None,
  /** Inside the frames, before the exception line. */
  Frames,
  /** After the exception line: only indented lines and chain markers continue. */
  AfterException,
  /** After a chain marker: the next traceback belongs to the event. */
  AfterChainMarker,
  /** After a Python warning line: indented source lines continue. */
  Warning,
}

interface HeldEvent {
  event: LogEvent;
  /** Message of each line; joined with `\n` when the event is finished. */
  parts: string[];
  kind: LineKind;
  levelFound: boolean;
  /** Process prefix name and pid of the first line; `undefined` without a prefix. */
  process: FieldValue | undefined;
  pid: FieldValue | undefined;
  recordHeader: string;
  /** Whether the last non-empty raw line ended with `\r` (vLLM: the record continues). */
  continuesRecord: boolean;
  hasTraceback: boolean;
  tail: Tail;
}

/**
 * Groups the lines of one container stream (one instance per stream) into
 * log events. An event is held until a line that starts a new event arrives,
 * or until `flush()`: the caller flushes after a quiet period and at
 * shutdown so that the last event is not held forever.
 */
export class EventGrouper {
  /** Empty lines discarded because no event was held when they arrived. */
  droppedEmptyLines = 0;

  #held: HeldEvent | null = null;
  readonly #maxEventLines: number;

  constructor(options: EventGrouperOptions = {}) {
    this.#maxEventLines = options.maxEventLines ?? DEFAULT_MAX_EVENT_LINES;
  }

  /** Adds one line; returns the events it completed (zero or one). */
  push(line: RawLine): LogEvent[] {
    const parsed = parseLine(cleanLine(line.text), line.stream);
    const held = this.#held;
    if (held !== null && continuesHeld(held, parsed)) {
      if (held.event.lines.length < this.#maxEventLines) {
        appendLine(held, line, parsed);
        return [];
      }
      this.#held = startSuccessor(held, line, parsed);
      return [finishEvent(held)];
    }
    this.#held = null;
    if (parsed.kind === "empty") {
      this.droppedEmptyLines++;
    } else {
      this.#held = startEvent(line, parsed);
    }
    return held === null ? [] : [finishEvent(held)];
  }

  /** Returns the held event, if any, as completed. */
  flush(): LogEvent[] {
    const held = this.#held;
    if (held === null) return [];
    this.#held = null;
    return [finishEvent(held)];
  }

  /** Whether an event is held (`flush()` would return one). */
  pending(): boolean {
    return this.#held !== null;
  }
}

/** Splits `lines` by stream, groups each stream, and returns all events in input order of their first lines. */
export function parseEvents(lines: RawLine[]): LogEvent[] {
  const groupers = new Map<StreamName, EventGrouper>();
  const positions = new Map<RawLine, number>();
  const events: LogEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as RawLine;
    positions.set(line, i);
    let grouper = groupers.get(line.stream);
    if (grouper === undefined) {
      grouper = new EventGrouper();
      groupers.set(line.stream, grouper);
    }
    for (const event of grouper.push(line)) events.push(event);
  }
  for (const grouper of groupers.values()) {
    for (const event of grouper.flush()) events.push(event);
  }
  const firstPosition = (event: LogEvent): number =>
    positions.get(event.lines[0] as RawLine) ?? 0;
  return events.sort((a, b) => firstPosition(a) - firstPosition(b));
}

/**
 * Decides whether a line continues the held event and, when it does, moves
 * the held event's traceback state past that line.
 */
function continuesHeld(held: HeldEvent, parsed: ParsedLine): boolean {
  if (parsed.kind === "empty") return true;
  const fields = parsed.fields;
  if (fields.process !== held.process || fields.pid !== held.pid) return false;

  const message = parsed.message;
  // NOTE: in a TTY container every line ends with `\r`, so consecutive
  // records with the same header and second (such as the `Route:` lines of
  // launcher.py) are joined into one event there.
  if (
    held.continuesRecord && parsed.recordHeader !== "" &&
    parsed.recordHeader === held.recordHeader
  ) {
    if (message.startsWith(TRACEBACK_START)) held.hasTraceback = true;
    return true;
  }
  if (parsed.kind !== "text") return false;

  if (message.startsWith(TRACEBACK_START)) {
    if (!acceptsTraceback(held)) return false;
    startTraceback(held);
    return true;
  }
  switch (held.tail) {
    case Tail.None:
      return false;
    case Tail.Warning:
      return isIndented(message);
    case Tail.Frames:
      if (isChainMarker(message)) held.tail = Tail.AfterChainMarker;
      else if (!isIndented(message)) held.tail = Tail.AfterException;
      return true;
    case Tail.AfterException:
    case Tail.AfterChainMarker:
      if (isChainMarker(message)) {
        held.tail = Tail.AfterChainMarker;
        return true;
      }
      return isIndented(message);
  }
}

function startEvent(line: RawLine, parsed: ParsedLine): HeldEvent {
  const held: HeldEvent = {
    event: {
      timestamp: line.timestamp,
      stream: line.stream,
      level: parsed.level,
      message: "",
      fields: parsed.fields,
      lines: [line],
    },
    parts: [parsed.message],
    kind: parsed.kind,
    levelFound: parsed.levelFound,
    process: parsed.fields.process,
    pid: parsed.fields.pid,
    recordHeader: parsed.recordHeader,
    continuesRecord: endsWithCarriageReturn(line.text),
    hasTraceback: false,
    tail: parsed.kind === "python_warning" ? Tail.Warning : Tail.None,
  };
  if (parsed.kind === "text" && parsed.message.startsWith(TRACEBACK_START)) {
    startTraceback(held);
  }
  return held;
}

function appendLine(held: HeldEvent, line: RawLine, parsed: ParsedLine): void {
  held.event.lines.push(line);
  held.parts.push(parsed.message);
  if (parsed.kind !== "empty") {
    held.continuesRecord = endsWithCarriageReturn(line.text);
  }
}

/**
 * Starts the event that takes over from a held event cut at
 * `maxEventLines`: it keeps the held event's level and grouping state so
 * that the rest of a traceback or record still joins it.
 */
function startSuccessor(
  held: HeldEvent,
  line: RawLine,
  parsed: ParsedLine,
): HeldEvent {
  const successor = startEvent(line, parsed);
  successor.event.level = held.event.level;
  successor.kind = held.kind;
  successor.levelFound = held.levelFound;
  successor.process = held.process;
  successor.pid = held.pid;
  successor.recordHeader = held.recordHeader;
  successor.hasTraceback = held.hasTraceback;
  successor.tail = held.tail;
  if (parsed.kind === "empty") successor.continuesRecord = held.continuesRecord;
  return successor;
}

function startTraceback(held: HeldEvent): void {
  held.hasTraceback = true;
  held.tail = Tail.Frames;
  if (!held.levelFound) {
    held.event.level = "ERROR";
    held.levelFound = true;
  }
}

function acceptsTraceback(held: HeldEvent): boolean {
  if (held.tail === Tail.AfterChainMarker) return true;
  if (held.hasTraceback) return false;
  // A Python warning or a progress bar is never the cause of a traceback.
  if (held.kind === "python_warning" || held.kind === "progress") return false;
  const level = held.event.level;
  if (level === "WARNING" || level === "ERROR" || level === "CRITICAL") {
    return true;
  }
  const last = held.parts[held.parts.length - 1] ?? "";
  return last.endsWith(":");
}

function finishEvent(held: HeldEvent): LogEvent {
  const parts = held.parts;
  let count = parts.length;
  while (count > 1 && parts[count - 1] === "") count--;
  const event = held.event;
  event.message = count === 1
    ? parts[0] ?? ""
    : parts.slice(0, count).join("\n");
  if (held.hasTraceback) {
    const exceptionType = findExceptionType(parts, count);
    if (exceptionType !== undefined) {
      event.fields.exception_type = exceptionType;
    }
  }
  return event;
}

const EXCEPTION_LINE = /^([A-Za-z_][\w.]*)(?::|$)/;

/** Returns the type on the last exception line (`json.decoder.JSONDecodeError: ...`). */
function findExceptionType(parts: string[], count: number): string | undefined {
  for (let i = count - 1; i >= 0; i--) {
    const part = parts[i] ?? "";
    if (part === "" || isIndented(part)) continue;
    const match = EXCEPTION_LINE.exec(part);
    return match === null ? undefined : match[1];
  }
  return undefined;
}

function endsWithCarriageReturn(text: string): boolean {
  return text.charCodeAt(text.length - 1) === 0x0d;
}

function isIndented(text: string): boolean {
  const first = text.charCodeAt(0);
  return first === 0x20 || first === 0x09;
}

function isChainMarker(text: string): boolean {
  return text === CHAIN_MARKERS[0] || text === CHAIN_MARKERS[1];
}
