/**
 * Daily JSONL files: `<dir>/YYYY-MM-DD.jsonl`, named by the UTC date of each
 * event's Docker timestamp, appended one whole line per event.
 *
 * @module
 */
import type { LogEvent } from "./types.ts";

/** Name of the day file for a Docker timestamp (`2026-11-17T...Z` → `2026-11-17.jsonl`). */
export function dayFileName(timestamp: string): string {
  return `${timestamp.slice(0, 10)}.jsonl`;
}

const DAY_FILE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;

/** Keys of a record that parsed fields may never overwrite. */
export const RESERVED_KEYS = [
  "timestamp",
  "level",
  "container",
  "stream",
  "message",
] as const;

/**
 * Builds the JSON record of an event: the reserved keys first, then the
 * parsed fields, then `line_count` for events of several physical lines and
 * `truncated`/`original_bytes` for a line cut to the length limit.
 */
export function eventRecord(
  container: string,
  event: LogEvent,
): Record<string, unknown> {
  const record: Record<string, unknown> = {
    timestamp: event.timestamp,
    level: event.level,
    container,
    stream: event.stream,
    message: event.message,
  };
  for (const [key, value] of Object.entries(event.fields)) {
    if (!(key in record)) record[key] = value;
  }
  if (event.lines.length > 1) record.line_count = event.lines.length;
  const cut = event.lines.find((line) => line.originalBytes !== undefined);
  if (cut !== undefined) {
    record.truncated = true;
    record.original_bytes = cut.originalBytes;
  }
  return record;
}

/**
 * Cuts a torn last line (no final `\n`, left by a crash mid-write) off each
 * day file in `dir`. Returns the files repaired and the bytes removed.
 */
export async function repairTornLines(
  dir: string,
): Promise<{ path: string; removedBytes: number }[]> {
  const repaired: { path: string; removedBytes: number }[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return repaired;
    throw error;
  }
  for (const entry of entries) {
    if (!entry.isFile || !DAY_FILE.test(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    const removedBytes = await repairTornLine(path);
    if (removedBytes > 0) repaired.push({ path, removedBytes });
  }
  return repaired;
}

/**
 * Cuts the bytes after the last `\n` off one file. Returns the number of
 * bytes removed; 0 when the file ends with `\n`, is empty or is missing.
 */
export async function repairTornLine(path: string): Promise<number> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  using _file = file;
  const size = (await file.stat()).size;
  if (size === 0) return 0;

  // Read backwards in blocks until the last newline is found.
  const block = new Uint8Array(64 * 1024);
  let end = size;
  let keep = 0;
  search: while (end > 0) {
    const start = Math.max(0, end - block.length);
    await file.seek(start, Deno.SeekMode.Start);
    const view = block.subarray(0, end - start);
    let read = 0;
    while (read < view.length) {
      const n = await file.read(view.subarray(read));
      if (n === null) break;
      read += n;
    }
    for (let i = view.length - 1; i >= 0; i--) {
      if (view[i] === 0x0a) {
        keep = start + i + 1;
        break search;
      }
    }
    end = start;
  }

  if (keep === size) return 0;
  await file.truncate(keep);
  await file.sync();
  return size - keep;
}

/** Lists the day files of a directory, oldest first. */
export async function listDayFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && DAY_FILE.test(entry.name)) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return names;
    throw error;
  }
  return names.sort();
}

const encoder = new TextEncoder();

/**
 * An append that failed part-way. The day files in `written` got all their
 * lines; the others got none, since a failed write is cut off again.
 */
export class DayFileWriteError extends Error {
  /** Day file names (`YYYY-MM-DD.jsonl`) whose lines were all written. */
  readonly written: ReadonlySet<string>;

  constructor(
    message: string,
    written: ReadonlySet<string>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DayFileWriteError";
    this.written = written;
  }
}

/** Appends records to day files, keeping the files of recent days open. */
export class DayFileWriter {
  readonly #dir: string;
  readonly #files = new Map<string, Deno.FsFile>();
  /** Day file names being opened or open, so maintenance leaves them alone. */
  readonly #active = new Set<string>();
  #dirReady = false;

  constructor(dir: string) {
    this.#dir = dir;
  }

  get dir(): string {
    return this.#dir;
  }

  /**
   * Days (`YYYY-MM-DD`) whose files are open for appending, as a live view:
   * each `has` call checks the state at that moment.
   */
  openDays(): { has(day: string): boolean } {
    return { has: (day) => this.#active.has(`${day}.jsonl`) };
  }

  /**
   * Appends serialised lines, grouped by day file, oldest day first, each
   * group in one write. Returns when the bytes are in the files (not
   * necessarily fsynced). A line is written whole or not at all.
   *
   * @throws {DayFileWriteError} naming the day files that were written; at
   * the first failing day file the append stops and that file is cut back
   * to its size before
   */
  async append(lines: { day: string; json: string }[]): Promise<void> {
    if (lines.length === 0) return;
    const written = new Set<string>();
    const byDay = new Map<string, string[]>();
    for (const line of lines) {
      let group = byDay.get(line.day);
      if (group === undefined) byDay.set(line.day, group = []);
      group.push(line.json);
    }
    let current = "";
    try {
      if (!this.#dirReady) {
        await Deno.mkdir(this.#dir, { recursive: true, mode: 0o750 });
        this.#dirReady = true;
      }
      for (const day of [...byDay.keys()].sort()) {
        current = day;
        await this.#appendWhole(day, byDay.get(day)!);
        written.add(day);
      }
    } catch (error) {
      throw new DayFileWriteError(
        `Writing ${this.#dir}/${current} failed: ${
          error instanceof Error ? error.message : String(error)
        }`,
        written,
        { cause: error },
      );
    }
  }

  /** Appends one group; on failure cuts the file back and closes it. */
  async #appendWhole(day: string, group: string[]): Promise<void> {
    const file = await this.#open(day);
    const sizeBefore = (await file.stat()).size;
    const bytes = encoder.encode(group.join("\n") + "\n");
    try {
      let offset = 0;
      while (offset < bytes.length) {
        offset += await file.write(bytes.subarray(offset));
      }
    } catch (error) {
      // A full disk can take part of the bytes. Cut them off again; if that
      // fails too, the next open cuts the file back to its last newline.
      await file.truncate(sizeBefore).catch(() => {});
      this.#forget(day);
      throw error;
    }
  }

  /** Flushes file contents to disk. */
  async sync(): Promise<void> {
    for (const file of this.#files.values()) await file.sync();
  }

  close(): void {
    for (const file of this.#files.values()) file.close();
    this.#files.clear();
    this.#active.clear();
  }

  #forget(day: string): void {
    try {
      this.#files.get(day)?.close();
    } catch {
      // Already closed.
    }
    this.#files.delete(day);
    this.#active.delete(day);
  }

  async #open(day: string): Promise<Deno.FsFile> {
    let file = this.#files.get(day);
    if (file !== undefined) return file;
    this.#active.add(day);
    const path = `${this.#dir}/${day}`;
    try {
      // A failed cut-back after an earlier write error can leave a torn line.
      await repairTornLine(path);
      file = await Deno.open(path, { append: true, create: true, mode: 0o640 });
    } catch (error) {
      this.#active.delete(day);
      throw error;
    }
    this.#files.set(day, file);
    // Keep only the two most recent days open; older events are rare.
    if (this.#files.size > 2) {
      const oldest = [...this.#files.keys()].sort()[0]!;
      this.#forget(oldest);
    }
    return file;
  }
}
