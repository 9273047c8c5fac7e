/**
 * Resume point of log capture after the follower or the logger restarts,
 * and the test for replayed events that are already in the files.
 *
 * `docker logs --since T` is inclusive at nanosecond precision, so the lines
 * stamped T come again. Several lines can share one timestamp. The
 * timestamps of stdout and stderr are not ordered relative to each other, so
 * dropping everything older than the last written line would lose lines.
 * The follower therefore resumes at the older of the two streams' newest
 * events (at most {@linkcode RESUME_MARGIN_MS} before the newest event of
 * either stream). It skips a replayed event only when an event with the same
 * timestamp, stream and text was written before, counting repeats.
 *
 * @module
 */
import { listDayFiles } from "./day_files.ts";
import type { LogEvent, StreamName } from "./types.ts";

/**
 * How far before the newest written event a resume may start. The two
 * streams are read concurrently, so a line stamped this much earlier than
 * the newest written line of the other stream has been read and written.
 */
export const RESUME_MARGIN_MS = 60_000;

/** Tail of the newest day file read at start to rebuild the state. */
const TAIL_BYTES = 8 * 1024 * 1024;

/**
 * Identity of an event: timestamp, stream and a 64-bit hash of the message
 * (two independent 32-bit FNV-1a hashes), so the key set stays small even
 * for long messages. Two different messages with the same timestamp and
 * stream collide with a probability of about 2^-64.
 */
function eventKey(timestamp: string, stream: string, message: string): string {
  let first = 0x811c9dc5;
  let second = 0x01000193 ^ message.length;
  for (let i = 0; i < message.length; i++) {
    const code = message.charCodeAt(i);
    first = Math.imul(first ^ code, 0x01000193);
    second = Math.imul(second ^ code, 0x5bd1e995);
    second ^= second >>> 15;
  }
  const hash = (first >>> 0).toString(36) + "." + (second >>> 0).toString(36);
  return `${timestamp}\u0000${stream}\u0000${hash}`;
}

/** Timestamp `ms` milliseconds before a Docker timestamp, in the same fixed-width form. */
function timestampBefore(timestamp: string, ms: number): string {
  const seconds = Date.parse(timestamp.slice(0, 19) + "Z") - ms;
  return new Date(seconds).toISOString().slice(0, 19) + timestamp.slice(19);
}

/** State of what was written, per container. */
export class ResumeState {
  readonly #newest = new Map<StreamName, string>();
  readonly #written = new Map<string, number>();
  #replayed = new Map<string, number>();
  #replaySince: string | null = null;
  #pruneAtSize = 8192;

  /** Value for `docker logs --since`, or null when nothing was written yet. */
  sinceArgument(): string | null {
    let oldest: string | null = null;
    let newest: string | null = null;
    for (const timestamp of this.#newest.values()) {
      if (oldest === null || timestamp < oldest) oldest = timestamp;
      if (newest === null || timestamp > newest) newest = timestamp;
    }
    if (oldest === null || newest === null) return null;
    const floor = timestampBefore(newest, RESUME_MARGIN_MS);
    return oldest < floor ? floor : oldest;
  }

  /** Call when a new follower process starts, before its first event. */
  beginReplay(): void {
    this.#replayed = new Map();
    this.#replaySince = this.sinceArgument();
  }

  /** True when the event is already in the files and must not be written again. */
  isDuplicate(event: LogEvent): boolean {
    if (this.#replaySince === null || event.timestamp < this.#replaySince) {
      return false;
    }
    const key = eventKey(event.timestamp, event.stream, event.message);
    const written = this.#written.get(key) ?? 0;
    const replayed = this.#replayed.get(key) ?? 0;
    if (replayed >= written) return false;
    this.#replayed.set(key, replayed + 1);
    return true;
  }

  /** Records an event that is now in a file. */
  recordWritten(timestamp: string, stream: StreamName, message: string): void {
    const newest = this.#newest.get(stream);
    if (newest === undefined || timestamp > newest) {
      this.#newest.set(stream, timestamp);
    }
    const key = eventKey(timestamp, stream, message);
    this.#written.set(key, (this.#written.get(key) ?? 0) + 1);
    if (this.#written.size >= this.#pruneAtSize) this.#prune();
  }

  /**
   * Drops keys older than the next resume point: Docker will not send them
   * again. Keys are in insertion order, which is timestamp order except for
   * out-of-order lines, so the scan stops at the first key that is kept. An
   * out-of-order key is then only kept longer than needed.
   */
  #prune(): void {
    const floor = this.sinceArgument();
    if (floor !== null) {
      for (const key of this.#written.keys()) {
        if (key.slice(0, key.indexOf("\u0000")) >= floor) break;
        this.#written.delete(key);
      }
    }
    this.#pruneAtSize = Math.max(8192, this.#written.size * 2);
  }

  /**
   * Rebuilds the state from the newest day file in `dir`, so a restarted
   * logger resumes where the previous one stopped.
   */
  static async fromDirectory(dir: string): Promise<ResumeState> {
    const state = new ResumeState();
    const files = await listDayFiles(dir);
    const newestFile = files.at(-1);
    if (newestFile === undefined) return state;
    const text = await readTail(`${dir}/${newestFile}`, TAIL_BYTES);
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let record: { timestamp?: unknown; stream?: unknown; message?: unknown };
      try {
        record = JSON.parse(line);
      } catch {
        continue; // a line cut by the tail window
      }
      const { timestamp, stream, message } = record;
      if (typeof timestamp !== "string" || typeof message !== "string") {
        continue;
      }
      if (stream !== "stdout" && stream !== "stderr") continue;
      state.recordWritten(timestamp, stream, message);
    }
    state.#prune();
    return state;
  }
}

async function readTail(path: string, maxBytes: number): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const start = Math.max(0, size - maxBytes);
  await file.seek(start, Deno.SeekMode.Start);
  const bytes = new Uint8Array(size - start);
  let read = 0;
  while (read < bytes.length) {
    const n = await file.read(bytes.subarray(read));
    if (n === null) break;
    read += n;
  }
  return new TextDecoder().decode(bytes.subarray(0, read));
}
