/**
 * The alert event file `<output_dir>/alerts.log`: one JSON object per line,
 * written when an alert starts firing and when it resolves.
 *
 * @module
 */
import type { AlertLevel } from "./rules.ts";

/** Whether an event starts or ends an alert. */
export type AlertEventState = "firing" | "resolved";

/** One line of `alerts.log`. */
export interface AlertEvent {
  /** Time of the scrape that caused the event, ISO 8601 in UTC. */
  timestamp: string;
  container: string;
  /** Name of the rule. */
  alert: string;
  state: AlertEventState;
  /**
   * Value of the condition's first comparison at the event, or null when it
   * had no value (a series that disappeared, or no observations).
   */
  value: number | null;
  /** Threshold of the condition's first comparison. */
  threshold: number;
  /** The rule's condition as written. */
  condition: string;
  /** Label set of the alert instance, without `le`. */
  labels: Record<string, string>;
  level: AlertLevel;
}

/** Serialises an event as one line of JSON, with the fields in a fixed order. */
export function formatAlertEvent(event: AlertEvent): string {
  const value = event.value !== null && Number.isFinite(event.value)
    ? event.value
    : null;
  return JSON.stringify({
    timestamp: event.timestamp,
    container: event.container,
    alert: event.alert,
    state: event.state,
    value,
    threshold: event.threshold,
    condition: event.condition,
    labels: event.labels,
    level: event.level,
  }) + "\n";
}

const encoder = new TextEncoder();

/** Appends events to one alerts file. */
export class AlertLog {
  /** Path of the file. */
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Appends one event and flushes it to disk before returning. The file is
   * opened for each event, so a log rotation that moves it away is followed
   * by a new file, created with mode 0640 (minus the process umask). The line
   * goes out in one write call, which with O_APPEND keeps lines from
   * processes that share the file whole on a local file system.
   *
   * @throws the file system error; the event is then not written, or only in
   * part when the disk filled up during the write
   */
  append(event: AlertEvent): void {
    const bytes = encoder.encode(formatAlertEvent(event));
    const directory = this.path.replace(/\/[^/]*$/, "");
    if (directory !== this.path && directory !== "") {
      Deno.mkdirSync(directory, { recursive: true });
    }
    const file = Deno.openSync(this.path, {
      append: true,
      create: true,
      mode: 0o640,
    });
    try {
      let offset = file.writeSync(bytes);
      // A regular file takes the whole line in one call. A short write only
      // happens when the disk is full, so the retry then reports the error.
      while (offset < bytes.length) {
        offset += file.writeSync(bytes.subarray(offset));
      }
      file.syncSync();
    } finally {
      file.close();
    }
  }
}
