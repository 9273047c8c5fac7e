/**
 * Search over the day files of one or more containers, `.jsonl` and
 * `.jsonl.gz` alike, streaming line by line so memory stays flat.
 *
 * @module
 */

/** Levels from least to most severe; `--level` keeps a level and those above it. */
export const LEVELS = [
  "DEBUG",
  "INFO",
  "WARNING",
  "ERROR",
  "CRITICAL",
] as const;

/** Filters of a search; every one that is set must match. */
export interface LogSearchQuery {
  /** Only these containers; every container found when empty. */
  containers: string[];
  /** Window in Unix milliseconds, inclusive. */
  startMs: number;
  endMs: number;
  /** Lowest level kept, or null for all. */
  minLevel: (typeof LEVELS)[number] | null;
  /** Case-insensitive text the message must contain, or null. */
  text: string | null;
}

/** One day file of one container. */
export interface DayFileRef {
  container: string;
  day: string;
  path: string;
}

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl(\.gz)?$/;

async function dayFilesIn(
  dir: string,
  container: string,
): Promise<DayFileRef[]> {
  const files: DayFileRef[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = DAY_FILE.exec(entry.name);
    if (entry.isFile && match !== null) {
      files.push({ container, day: match[1]!, path: `${dir}/${entry.name}` });
    }
  }
  return files;
}

/**
 * Finds the day files under `root`, which is either one container's
 * directory (day files directly inside) or the output directory with one
 * subdirectory per container. Sorted by container, then day.
 *
 * @throws {Deno.errors.NotFound} when `root` does not exist
 */
export async function findDayFiles(root: string): Promise<DayFileRef[]> {
  const base = root.replace(/\/+$/, "");
  const name = base.slice(base.lastIndexOf("/") + 1);
  let files = await dayFilesIn(base, name);
  if (files.length === 0) {
    for await (const entry of Deno.readDir(base)) {
      if (entry.isDirectory) {
        files.push(...await dayFilesIn(`${base}/${entry.name}`, entry.name));
      }
    }
  }
  files = files.sort((a, b) =>
    a.container.localeCompare(b.container) || a.day.localeCompare(b.day) ||
    a.path.localeCompare(b.path)
  );
  return files;
}

/** Docker-style timestamp (nine fraction digits) of a time in milliseconds, for string comparison. */
function nanoTimestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 23) + "000000Z";
}

/** Yields the lines of a `.jsonl` or `.jsonl.gz` file without loading it whole. */
export async function* readLines(path: string): AsyncGenerator<string> {
  const file = await Deno.open(path, { read: true });
  let stream: ReadableStream<Uint8Array> = file.readable;
  if (path.endsWith(".gz")) {
    stream = stream.pipeThrough(
      new DecompressionStream("gzip") as TransformStream<
        Uint8Array,
        Uint8Array
      >,
    );
  }
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest !== "") yield rest;
}

/** A record that matched, with its original line. */
export interface LogMatch {
  line: string;
  record: Record<string, unknown>;
}

/** Yields the records of the files that match the query, in file order. */
export async function* searchLogs(
  files: readonly DayFileRef[],
  query: LogSearchQuery,
): AsyncGenerator<LogMatch> {
  const since = nanoTimestamp(query.startMs);
  const until = nanoTimestamp(query.endMs);
  const firstDay = since.slice(0, 10);
  const lastDay = until.slice(0, 10);
  const minRank = query.minLevel === null ? -1 : LEVELS.indexOf(query.minLevel);
  const text = query.text?.toLowerCase() ?? null;
  for (const file of files) {
    if (
      query.containers.length > 0 && !query.containers.includes(file.container)
    ) continue;
    if (file.day < firstDay || file.day > lastDay) continue;
    for await (const line of readLines(file.path)) {
      if (line === "") continue;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        continue; // a torn line that the logger has not repaired yet
      }
      const timestamp = String(record.timestamp ?? "");
      if (timestamp < since || timestamp > until) continue;
      if (
        minRank >= 0 &&
        LEVELS.indexOf(String(record.level) as (typeof LEVELS)[number]) <
          minRank
      ) continue;
      if (
        text !== null &&
        !String(record.message ?? "").toLowerCase().includes(text)
      ) continue;
      yield { line, record };
    }
  }
}

/** Formats a record for reading: time, container, level, then the message. */
export function formatRecord(record: Record<string, unknown>): string {
  const time = String(record.timestamp ?? "").replace(/(\.\d{3})\d*Z$/, "$1Z");
  const level = String(record.level ?? "").padEnd(8);
  const message = String(record.message ?? "").replaceAll("\n", "\n    ");
  return `${time} ${String(record.container ?? "")} ${level} ${message}`;
}
