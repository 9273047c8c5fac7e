/**
 * Splits a byte stream into lines at `\n`, decoding each line as UTF-8 with
 * invalid bytes replaced by U+FFFD, so no input can stop the follower.
 *
 * @module
 */

/** A line read from a stream, without its `\n`. */
export interface SplitLine {
  text: string;
  /** Byte length of the line before it was cut, when it was longer than the limit. */
  originalBytes?: number;
}

/** Options of {@linkcode LineSplitter}. */
export interface LineSplitterOptions {
  /** Longer lines are cut to this many bytes. @default 1 MiB plus room for Docker's timestamp */
  maxLineBytes?: number;
  /**
   * Remove the timestamps Docker puts inside a long line: its json-file
   * driver stores a line longer than 16 KiB as 16,384-byte chunks, and
   * `docker logs --timestamps` prefixes every chunk with its own timestamp.
   * The bytes are joined before decoding, so a character split between two
   * chunks comes out whole. @default false
   */
  joinDockerChunks?: boolean;
}

/** Size of the chunks Docker's json-file driver cuts long lines into. */
export const DOCKER_CHUNK_BYTES = 16 * 1024;

/** Length of Docker's timestamp prefix: `2026-11-17T09:14:03.903258690Z `. */
export const DOCKER_TIMESTAMP_BYTES = 31;

/** True when `bytes` contains Docker's fixed-width RFC 3339 timestamp and a space at `at`. */
export function isDockerTimestampAt(bytes: Uint8Array, at: number): boolean {
  if (at + DOCKER_TIMESTAMP_BYTES > bytes.length) return false;
  for (let i = 0; i < DOCKER_TIMESTAMP_BYTES; i++) {
    const byte = bytes[at + i]!;
    switch (i) {
      case 4:
      case 7:
        if (byte !== 0x2d) return false; // "-"
        break;
      case 10:
        if (byte !== 0x54) return false; // "T"
        break;
      case 13:
      case 16:
        if (byte !== 0x3a) return false; // ":"
        break;
      case 19:
        if (byte !== 0x2e) return false; // "."
        break;
      case 29:
        if (byte !== 0x5a) return false; // "Z"
        break;
      case 30:
        if (byte !== 0x20) return false; // " "
        break;
      default:
        if (byte < 0x30 || byte > 0x39) return false;
    }
  }
  return true;
}

/**
 * Number of chunks, each with its timestamp, of a line Docker split: full
 * chunks of {@linkcode DOCKER_CHUNK_BYTES}, then a last one of 0 to 16,383
 * bytes. `rawBytes` counts the timestamps too.
 */
function dockerChunkCount(rawBytes: number): number {
  return Math.floor(
    (rawBytes + DOCKER_CHUNK_BYTES) /
      (DOCKER_CHUNK_BYTES + DOCKER_TIMESTAMP_BYTES),
  );
}

/** Default cut: 1 MiB of text plus Docker's 31-byte timestamp prefix. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024 + 31;

/** Incremental splitter: feed chunks with `push`, then `end` at end of stream. */
export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #joinDockerChunks: boolean;
  readonly #decoder = new TextDecoder("utf-8");
  #buffer = new Uint8Array(64 * 1024);
  #length = 0;
  /** Bytes dropped from the current line after the cut, or 0. */
  #droppedBytes = 0;

  constructor(options: LineSplitterOptions = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#joinDockerChunks = options.joinDockerChunks ?? false;
  }

  /** Adds a chunk and returns the lines it completed. */
  push(chunk: Uint8Array): SplitLine[] {
    const lines: SplitLine[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      this.#append(chunk.subarray(start, end));
      if (newline === -1) break;
      lines.push(this.#takeLine());
      start = newline + 1;
    }
    return lines;
  }

  /** True when bytes of an unfinished line are held. */
  hasPartial(): boolean {
    return this.#length > 0 || this.#droppedBytes > 0;
  }

  /** Returns the unfinished line, if any, as a line of its own. */
  end(): SplitLine[] {
    return this.hasPartial() ? [this.#takeLine()] : [];
  }

  #append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const room = this.#maxLineBytes - this.#length;
    if (room <= 0 || this.#droppedBytes > 0) {
      this.#droppedBytes += bytes.length;
      return;
    }
    const kept = bytes.length > room ? bytes.subarray(0, room) : bytes;
    this.#droppedBytes += bytes.length - kept.length;
    if (this.#length + kept.length > this.#buffer.length) {
      const grown = new Uint8Array(
        Math.max(this.#buffer.length * 2, this.#length + kept.length),
      );
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(kept, this.#length);
    this.#length += kept.length;
  }

  #takeLine(): SplitLine {
    const rawBytes = this.#length + this.#droppedBytes;
    const chunked = this.#joinDockerChunks && this.#removeChunkTimestamps();
    const text = this.#decoder.decode(this.#buffer.subarray(0, this.#length));
    const line: SplitLine = { text };
    if (this.#droppedBytes > 0) {
      // The dropped part of a chunked line carries a timestamp per chunk
      // too; those are Docker's, not the line's.
      line.originalBytes = chunked
        ? rawBytes - DOCKER_TIMESTAMP_BYTES * (dockerChunkCount(rawBytes) - 1)
        : rawBytes;
    }
    this.#length = 0;
    this.#droppedBytes = 0;
    if (this.#buffer.length > 1024 * 1024) {
      this.#buffer = new Uint8Array(64 * 1024);
    }
    return line;
  }

  /**
   * Removes the timestamps at the chunk boundaries of the held line, keeping
   * the first. Returns true when the line is chunked the way Docker does it
   * up to the end of the held bytes.
   */
  #removeChunkTimestamps(): boolean {
    const bytes = this.#buffer;
    let boundary = DOCKER_TIMESTAMP_BYTES + DOCKER_CHUNK_BYTES;
    if (this.#length <= boundary || !isDockerTimestampAt(bytes, 0)) {
      return false;
    }
    let write = boundary;
    let read = boundary;
    let chunked = true;
    while (read < this.#length) {
      if (read === boundary && isDockerTimestampAt(bytes, read)) {
        read += DOCKER_TIMESTAMP_BYTES;
        boundary = read + DOCKER_CHUNK_BYTES;
        continue;
      }
      if (
        read === boundary && this.#droppedBytes > 0 &&
        this.#length - read < DOCKER_TIMESTAMP_BYTES
      ) {
        // The cut fell inside a chunk's timestamp: leave its start out too.
        break;
      }
      if (read === boundary) chunked = false;
      const end = Math.min(
        this.#length,
        boundary > read ? boundary : this.#length,
      );
      bytes.copyWithin(write, read, end);
      write += end - read;
      read = end;
    }
    this.#length = write;
    return chunked;
  }
}
