/**
 * File store behind the fake `docker` executable (`scripts/fake-docker/docker`)
 * and the `simulate` command. Each fake container is a directory
 * `<root>/<name>/` holding:
 *
 * - `log.jsonl`: the container's output, one JSON object per line in the
 *   layout of Docker's json-file log driver,
 *   `{"log":"text\n","stream":"stdout","time":"2026-11-17T09:14:03.90325869Z"}`.
 *   An entry whose `log` does not end in `\n` is a partial chunk of a longer
 *   line. `time` is RFC 3339 in UTC with up to nine fraction digits.
 * - `running`: present while the container runs; it contains the start
 *   time.
 * - `config.json` (optional): the container id and creation time.
 *
 * @module
 */

import type { StreamName } from "../logs/types.ts";

/**
 * Largest chunk, in bytes, of one logged line: Docker's log copier (moby
 * `daemon/logger/copier.go`, default buffer 16 KiB) splits longer lines.
 */
export const DOCKER_LOG_CHUNK_BYTES = 16 * 1024;

/** One entry of `log.jsonl`, as Docker's json-file driver stores it. */
export interface DockerLogEntry {
  /** Output bytes as text, including the final `\n` unless the entry is a partial chunk. */
  log: string;
  stream: StreamName;
  /** RFC 3339 time in UTC with up to nine fraction digits. */
  time: string;
}

/** One line to append; the store adds the final `\n`. */
export interface DockerLogLine {
  stream: StreamName;
  /** The line without its final `\n`; text containing `\n` is split into several lines. */
  text: string;
  /**
   * Time of every entry made from `text`; when absent, the store takes the
   * current time.
   */
  time?: Date | string;
}

/** Options of {@linkcode appendDockerLogLines}. */
export interface AppendOptions {
  /**
   * Time of the chunks of a line split at 16 KiB. `shared`: every chunk
   * carries the time of the first, as the copier does since it records
   * partial-message metadata (moby `daemon/logger/copier.go`; Docker 20.10
   * shows it). `distinct`: each chunk gets its own, later time, as the
   * copier did before that change.
   * @default "shared"
   */
  partialTimestamps?: "shared" | "distinct";
}

/** Contents of `config.json`. */
export interface ContainerConfig {
  /** 64 hexadecimal digits. */
  id: string;
  /** RFC 3339 creation time. */
  created: string;
}

/** Container names Docker accepts; other names could also escape the root directory. */
export const CONTAINER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Returns the directory of a container.
 *
 * @throws {RangeError} when the name is not a valid Docker container name.
 */
export function containerDirectory(root: string, container: string): string {
  if (!CONTAINER_NAME_PATTERN.test(container)) {
    throw new RangeError(
      `Invalid container name "${container}": use letters, digits, "_", "." and "-", starting with a letter or digit`,
    );
  }
  return `${root.replace(/\/+$/, "")}/${container}`;
}

/** Returns the path of a container's `log.jsonl`. */
export function containerLogPath(root: string, container: string): string {
  return `${containerDirectory(root, container)}/log.jsonl`;
}

/** Returns the path of a container's `running` marker file. */
export function containerRunningPath(root: string, container: string): string {
  return `${containerDirectory(root, container)}/running`;
}

/**
 * Creates a container with an empty log, running unless `running` is
 * false, like `docker run`. An existing container keeps its log and its
 * id, like a restart.
 */
export async function createContainer(
  root: string,
  container: string,
  options: { running?: boolean } = {},
): Promise<void> {
  const directory = containerDirectory(root, container);
  await Deno.mkdir(directory, { recursive: true });
  await Deno.writeTextFile(`${directory}/log.jsonl`, "", { append: true });
  const configPath = `${directory}/config.json`;
  if (!(await exists(configPath))) {
    const config: ContainerConfig = {
      id: randomContainerId(),
      created: new Date().toISOString(),
    };
    await Deno.writeTextFile(configPath, JSON.stringify(config) + "\n");
  }
  await setContainerRunning(root, container, options.running ?? true);
}

/** Deletes a container and its log, like `docker rm -f`. A missing container is not an error. */
export async function removeContainer(
  root: string,
  container: string,
): Promise<void> {
  try {
    await Deno.remove(containerDirectory(root, container), {
      recursive: true,
    });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
}

/**
 * Starts or stops a container by creating or deleting its `running` file.
 * A follower (`docker logs --follow`) exits once the file is gone.
 *
 * @throws {Deno.errors.NotFound} when the container does not exist.
 */
export async function setContainerRunning(
  root: string,
  container: string,
  running: boolean,
): Promise<void> {
  const directory = containerDirectory(root, container);
  if (!(await exists(directory))) {
    throw new Deno.errors.NotFound(
      `Container "${container}" not found under ${root}: create it with createContainer first`,
    );
  }
  const marker = `${directory}/running`;
  if (running) {
    await Deno.writeTextFile(marker, new Date().toISOString() + "\n");
    return;
  }
  try {
    await Deno.remove(marker);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
}

/**
 * Appends the text a container printed on one stream. Each line of `text`
 * becomes one entry; a line over 16 KiB becomes several chunks (see
 * {@linkcode splitLineLikeDocker}). Without `time`, entries get the current
 * time, strictly later than every entry before in this container.
 */
export function appendDockerLog(
  root: string,
  container: string,
  stream: StreamName,
  text: string,
  time?: Date | string,
  options: AppendOptions = {},
): Promise<void> {
  const line: DockerLogLine = time === undefined
    ? { stream, text }
    : { stream, text, time };
  return appendDockerLogLines(root, container, [line], options);
}

/**
 * Appends several lines with one write, so that a reader gets all of them
 * or none. Automatic times strictly increase per container within this
 * process, also across calls. An explicit `time` is stored as given, so
 * tests can write equal or out-of-order times.
 *
 * @throws {Deno.errors.NotFound} when the container does not exist.
 * @throws {RangeError} when an explicit time is not valid RFC 3339.
 */
export function appendDockerLogLines(
  root: string,
  container: string,
  lines: readonly DockerLogLine[],
  options: AppendOptions = {},
): Promise<void> {
  const path = containerLogPath(root, container);
  return withFileLock(path, async () => {
    const file = await openLogForAppend(path, root, container);
    try {
      const last = await lastTimestampOf(path, file);
      let lastNanos = last.nanos;
      const entries: DockerLogEntry[] = [];
      for (const line of lines) {
        const explicit = line.time === undefined
          ? undefined
          : timeToNanos(line.time);
        for (const text of line.text.replace(/\n$/, "").split("\n")) {
          const chunks = splitLineLikeDocker(text);
          let chunkNanos = explicit ?? laterThan(lastNanos);
          for (const [index, chunk] of chunks.entries()) {
            if (index > 0 && options.partialTimestamps === "distinct") {
              chunkNanos = explicit === undefined
                ? laterThan(chunkNanos)
                : chunkNanos + 1n;
            }
            entries.push({
              log: chunk,
              stream: line.stream,
              time: formatTimestamp(chunkNanos, "trimmed"),
            });
            lastNanos = chunkNanos > lastNanos ? chunkNanos : lastNanos;
          }
        }
      }
      const bytes = encoder.encode(entries.map(serializeEntry).join(""));
      await writeAll(file, bytes);
      lastTimestamps.set(path, {
        size: last.size + bytes.length,
        nanos: lastNanos,
      });
    } finally {
      file.close();
    }
  });
}

/**
 * Appends entries exactly as given, in one write: tests use it for partial
 * chunks without a final `\n`, odd times or unusual field content.
 *
 * @throws {Deno.errors.NotFound} when the container does not exist.
 */
export function appendDockerLogEntries(
  root: string,
  container: string,
  entries: readonly DockerLogEntry[],
): Promise<void> {
  const path = containerLogPath(root, container);
  return withFileLock(path, async () => {
    const file = await openLogForAppend(path, root, container);
    try {
      await writeAll(
        file,
        encoder.encode(entries.map(serializeEntry).join("")),
      );
      // The entries may carry any time, so the next automatic time is
      // worked out from the file again.
      lastTimestamps.delete(path);
    } finally {
      file.close();
    }
  });
}

/**
 * Splits one line (without its `\n`) the way Docker's log copier does. It
 * cuts chunks of 16384 bytes of UTF-8 while at least that much remains,
 * then adds the rest with the `\n`. A line of an exact multiple of 16384
 * bytes thus ends with an entry of just `\n`.
 *
 * The split is by bytes, so it can cut a multi-byte character. The
 * json-file driver writes each invalid byte at a chunk edge as U+FFFD, so
 * such a character becomes one U+FFFD per byte and is lost, as with real
 * Docker.
 */
export function splitLineLikeDocker(line: string): string[] {
  const bytes = encoder.encode(line);
  if (bytes.length < DOCKER_LOG_CHUNK_BYTES) {
    return [`${decodeLikeGo(bytes)}\n`];
  }
  const chunks: string[] = [];
  let offset = 0;
  while (bytes.length - offset >= DOCKER_LOG_CHUNK_BYTES) {
    const end = offset + DOCKER_LOG_CHUNK_BYTES;
    chunks.push(decodeLikeGo(bytes.subarray(offset, end)));
    offset = end;
  }
  chunks.push(`${decodeLikeGo(bytes.subarray(offset))}\n`);
  return chunks;
}

/**
 * Parses one line of `log.jsonl`.
 *
 * @throws {SyntaxError} when the line is not a valid entry.
 */
export function parseDockerLogEntry(line: string): DockerLogEntry {
  const value: unknown = JSON.parse(line);
  if (typeof value !== "object" || value === null) {
    throw new SyntaxError(`Log entry is not a JSON object: ${line}`);
  }
  const record = value as Record<string, unknown>;
  const { log, stream, time } = record;
  if (
    typeof log !== "string" || typeof time !== "string" ||
    (stream !== "stdout" && stream !== "stderr")
  ) {
    throw new SyntaxError(
      `Log entry needs string "log" and "time" and "stream" stdout or stderr: ${line}`,
    );
  }
  return { log, stream, time };
}

/**
 * Parses an RFC 3339 time (`2026-11-17T09:14:03.903258690Z`, an offset
 * such as `+02:00` instead of `Z`, up to nine fraction digits) into
 * nanoseconds since the Unix epoch. Returns undefined for anything else.
 */
export function parseTimestampNanos(text: string): bigint | undefined {
  const match =
    /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/
      .exec(text);
  if (match === null) {
    return undefined;
  }
  const [, year, month, day, hour, minute, second, fraction = "", zone = "Z"] =
    match;
  const fields = [year, month, day, hour, minute, second].map(Number);
  const [y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0] = fields;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(ms);
  if (
    check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 ||
    mi > 59 || s > 59
  ) {
    return undefined;
  }
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    offsetMinutes = sign *
      (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const fractionNanos = BigInt(fraction.padEnd(9, "0") || "0");
  return BigInt(ms - offsetMinutes * 60_000) * 1_000_000n + fractionNanos;
}

/**
 * Formats nanoseconds since the Unix epoch in UTC. `fixed` always prints
 * nine fraction digits, as `docker logs --timestamps` does. `trimmed` drops
 * trailing zeros and a point left without digits, as Go's
 * `time.RFC3339Nano` does in json-file entries.
 */
export function formatTimestamp(
  nanos: bigint,
  style: "fixed" | "trimmed",
): string {
  const seconds = nanos / 1_000_000_000n;
  const fraction = (nanos % 1_000_000_000n).toString().padStart(9, "0");
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (style === "fixed") {
    return `${base}.${fraction}Z`;
  }
  const trimmed = fraction.replace(/0+$/, "");
  return trimmed === "" ? `${base}Z` : `${base}.${trimmed}Z`;
}

/** Returns the current time in nanoseconds since the Unix epoch, with sub-millisecond resolution. */
export function nowNanos(): bigint {
  const origin = performance.timeOrigin;
  const originNanos = BigInt(Math.floor(origin)) * 1_000_000n +
    BigInt(Math.round((origin % 1) * 1e6));
  return originNanos + BigInt(Math.round(performance.now() * 1e6));
}

/**
 * Serializes an entry with the field order and escaping of Docker's
 * json-file driver: `<`, `>`, `&`, U+2028, U+2029 and control characters
 * other than `\n` and `\r` as `\u00XX` escapes.
 */
export function serializeEntry(entry: DockerLogEntry): string {
  return `{"log":${goJsonString(entry.log)},"stream":${
    goJsonString(entry.stream)
  },"time":${goJsonString(entry.time)}}\n`;
}

/** Reads `config.json`, or returns undefined when the container has none. */
export async function readContainerConfig(
  root: string,
  container: string,
): Promise<ContainerConfig | undefined> {
  const path = `${containerDirectory(root, container)}/config.json`;
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    if (typeof value?.id === "string" && typeof value?.created === "string") {
      return { id: value.id, created: value.created };
    }
    return undefined;
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound || error instanceof SyntaxError
    ) {
      return undefined;
    }
    throw error;
  }
}

/** Last entry time and file size per log file, as this process last wrote them. */
const lastTimestamps = new Map<string, { size: number; nanos: bigint }>();
/** Pending appends per log file, so appends from one process never interleave. */
const fileLocks = new Map<string, Promise<unknown>>();

function withFileLock<T>(path: string, task: () => Promise<T>): Promise<T> {
  const previous = fileLocks.get(path) ?? Promise.resolve();
  const result = previous.then(task, task);
  const settled = result.catch(() => {});
  fileLocks.set(path, settled);
  settled.then(() => {
    if (fileLocks.get(path) === settled) {
      fileLocks.delete(path);
    }
  });
  return result;
}

async function openLogForAppend(
  path: string,
  root: string,
  container: string,
): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true, append: true, create: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Container "${container}" not found under ${root}: create it with createContainer first`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Returns the file size and the latest entry time to continue from. The
 * cached value is used while the file has the size this process left it
 * at. Otherwise another writer appended, so the last entry is read again.
 */
async function lastTimestampOf(
  path: string,
  file: Deno.FsFile,
): Promise<{ size: number; nanos: bigint }> {
  const { size } = await file.stat();
  const cached = lastTimestamps.get(path);
  if (cached !== undefined && cached.size === size) {
    return cached;
  }
  return { size, nanos: await readLastEntryTime(file, size) };
}

/** Reads the time of the last complete entry, looking at most 256 KiB back from the end. */
async function readLastEntryTime(
  file: Deno.FsFile,
  size: number,
): Promise<bigint> {
  const window = Math.min(size, 256 * 1024);
  if (window === 0) {
    return 0n;
  }
  const buffer = new Uint8Array(window);
  await file.seek(size - window, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < window) {
    const read = await file.read(buffer.subarray(filled));
    if (read === null) {
      break;
    }
    filled += read;
  }
  const text = decoder.decode(buffer.subarray(0, filled));
  const complete = text.slice(0, text.lastIndexOf("\n"));
  const lastLine = complete.slice(complete.lastIndexOf("\n") + 1);
  try {
    return parseTimestampNanos(parseDockerLogEntry(lastLine).time) ?? 0n;
  } catch {
    // A torn or foreign last line gives no time; the clock alone is used.
    return 0n;
  }
}

function laterThan(previous: bigint): bigint {
  const now = nowNanos();
  return now > previous ? now : previous + 1n;
}

function timeToNanos(time: Date | string): bigint {
  if (time instanceof Date) {
    const ms = time.getTime();
    if (Number.isNaN(ms)) {
      throw new RangeError("Invalid log time: the Date is invalid");
    }
    return BigInt(ms) * 1_000_000n;
  }
  const nanos = parseTimestampNanos(time);
  if (nanos === undefined) {
    throw new RangeError(
      `Invalid log time "${time}": expected RFC 3339 such as 2026-11-17T09:14:03.903258690Z`,
    );
  }
  return nanos;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return false;
    }
    throw error;
  }
}

function randomContainerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(
    "",
  );
}

// deno-lint-ignore no-control-regex -- control characters are what it looks for
const NEEDS_ESCAPE = /[\u0000-\u001f"\\<>&\u2028\u2029]/;

function goJsonString(text: string): string {
  if (!NEEDS_ESCAPE.test(text)) {
    return `"${text}"`;
  }
  let out = '"';
  let start = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    let escape: string | undefined;
    if (code === 0x22) {
      escape = '\\"';
    } else if (code === 0x5c) {
      escape = "\\\\";
    } else if (code === 0x0a) {
      escape = "\\n";
    } else if (code === 0x0d) {
      escape = "\\r";
    } else if (
      code < 0x20 || code === 0x3c || code === 0x3e || code === 0x26 ||
      code === 0x2028 || code === 0x2029
    ) {
      escape = `\\u${code.toString(16).padStart(4, "0")}`;
    }
    if (escape !== undefined) {
      out += text.slice(start, index) + escape;
      start = index + 1;
    }
  }
  return `${out}${text.slice(start)}"`;
}

/**
 * Decodes UTF-8 the way Go's json-file writer treats it: every byte that
 * does not start a valid sequence becomes one U+FFFD.
 */
function decodeLikeGo(bytes: Uint8Array): string {
  let out = "";
  let start = 0;
  let index = 0;
  while (index < bytes.length) {
    const length = validSequenceLength(bytes, index);
    if (length === 0) {
      out += decoder.decode(bytes.subarray(start, index)) + "\uFFFD";
      index += 1;
      start = index;
    } else {
      index += length;
    }
  }
  return out + decoder.decode(bytes.subarray(start));
}

/** Returns the length of the valid UTF-8 sequence at `index`, or 0 when it is invalid or cut off. */
function validSequenceLength(bytes: Uint8Array, index: number): number {
  const first = bytes[index]!;
  if (first < 0x80) {
    return 1;
  }
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (first >= 0xc2 && first <= 0xdf) {
    length = 2;
  } else if (first >= 0xe0 && first <= 0xef) {
    length = 3;
    if (first === 0xe0) low = 0xa0;
    if (first === 0xed) high = 0x9f;
  } else if (first >= 0xf0 && first <= 0xf4) {
    length = 4;
    if (first === 0xf0) low = 0x90;
    if (first === 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (index + length > bytes.length) {
    return 0;
  }
  for (let offset = 1; offset < length; offset++) {
    const byte = bytes[index + offset]!;
    const min = offset === 1 ? low : 0x80;
    const max = offset === 1 ? high : 0xbf;
    if (byte < min || byte > max) {
      return 0;
    }
  }
  return length;
}
