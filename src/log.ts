/**
 * The program's own structured log: one JSON object per line on stderr, with
 * the same key names as the captured records (`timestamp`, `level`,
 * `message`, `container`) so one `jq` filter reads both.
 *
 * @module
 */

/** Levels of the program's own log, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

/** Extra fields of a log line; `err` contains an error's message. */
export type LogFields = Record<string, string | number | boolean | null>;

/** Destination of formatted log lines; tests pass a capturing function. */
export type LogSink = (line: string) => void;

/** Options of {@linkcode Logger}. */
export interface LoggerOptions {
  /** Lowest level written. @default "info" */
  level?: LogLevel;
  /** Destination of formatted lines. @default a synchronous write to stderr */
  sink?: LogSink;
  /** Fields added to every line, such as the container name. */
  bound?: LogFields;
  /** Clock, injectable for tests. @default Date.now */
  nowMs?: () => number;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stderr.writeSync(bytes.subarray(offset));
  }
}

/**
 * Turns any thrown value into a one-line message for the `err` field: the
 * error's message followed by the messages of its causes that it does not
 * already contain.
 */
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  let message = error.message;
  let cause = error.cause;
  for (let depth = 0; cause instanceof Error && depth < 5; depth++) {
    if (cause.message !== "" && !message.includes(cause.message)) {
      message += `: ${cause.message}`;
    }
    cause = cause.cause;
  }
  return message;
}

/** Writes JSON log lines; `child` binds fields such as `container`. */
export class Logger {
  readonly #level: LogLevel;
  readonly #sink: LogSink;
  readonly #bound: LogFields;
  readonly #nowMs: () => number;

  constructor(options: LoggerOptions = {}) {
    this.#level = options.level ?? "info";
    this.#sink = options.sink ?? writeStderr;
    this.#bound = options.bound ?? {};
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Returns a logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger({
      level: this.#level,
      sink: this.#sink,
      bound: { ...this.#bound, ...fields },
      nowMs: this.#nowMs,
    });
  }

  debug(message: string, fields: LogFields = {}): void {
    this.#write("debug", message, fields);
  }

  info(message: string, fields: LogFields = {}): void {
    this.#write("info", message, fields);
  }

  warn(message: string, fields: LogFields = {}): void {
    this.#write("warn", message, fields);
  }

  error(message: string, fields: LogFields = {}): void {
    this.#write("error", message, fields);
  }

  #write(level: LogLevel, message: string, fields: LogFields): void {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[this.#level]) return;
    const record = {
      timestamp: new Date(this.#nowMs()).toISOString(),
      level,
      message,
      ...this.#bound,
      ...fields,
    };
    this.#sink(JSON.stringify(record));
  }
}
