/**
 * Types shared by the log capture pipeline: raw lines from `docker logs`,
 * the events built from them, and the JSON records written to disk.
 *
 * @module
 */

/** Output stream of a container, as `docker logs` separates them. */
export type StreamName = "stdout" | "stderr";

/** One physical line as `docker logs --timestamps` delivered it. */
export interface RawLine {
  /** Docker's timestamp, RFC 3339 with nine fraction digits, UTC (`2026-11-17T09:14:03.903258690Z`). */
  timestamp: string;
  stream: StreamName;
  /** The line without its final `\n`; `\r` and ANSI escape codes are still in it. */
  text: string;
  /** Byte length of the line before it was cut to the length limit, when it was cut. */
  originalBytes?: number;
}

/** Value types a parsed field may have in a JSON record. */
export type FieldValue = string | number | boolean;

/** One log event: a single line, or a traceback or multi-line record joined. */
export interface LogEvent {
  /** Docker timestamp of the event's first line. */
  timestamp: string;
  stream: StreamName;
  /** `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; `INFO` when the line names no level. */
  level: string;
  /** Cleaned text of the event; lines of a multi-line event joined with `\n`. */
  message: string;
  /** Fields parsed from the text (source file, process prefix, stats figures, ...). */
  fields: Record<string, FieldValue>;
  /** Raw lines the event was built from, in input order. */
  lines: RawLine[];
}
