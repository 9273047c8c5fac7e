/**
 * Follows one container's logs: runs `docker logs --follow --timestamps`
 * (no shell), turns its stdout and stderr lines into events, and appends
 * them to the day files. When the command exits it is started again with
 * backoff, from where the files end.
 *
 * @module
 */
import { errorMessage, type Logger } from "../log.ts";
import {
  dayFileName,
  DayFileWriteError,
  DayFileWriter,
  eventRecord,
  repairTornLines,
} from "./day_files.ts";
import { EventGrouper } from "./event_grouper.ts";
import { LineSplitter } from "./line_splitter.ts";
import { maintainDayFiles, type MaintenanceOptions } from "./maintenance.ts";
import { ResumeState } from "./resume.ts";
import type { LogEvent, RawLine, StreamName } from "./types.ts";

/** Options of {@linkcode LogFollower}. */
export interface LogFollowerOptions {
  container: string;
  /** The logs command split into arguments, e.g. `["docker", "logs", "-f", "vllm-vision"]`. */
  command: string[];
  /** Directory of the day files. */
  logDir: string;
  logger: Logger;
  /** Write queued events this often. @default 200 */
  flushIntervalMs?: number;
  /** Emit a held multi-line event after this much silence. @default 1000 */
  quietFlushMs?: number;
  /** First restart delay; doubles up to `maxBackoffMs`. @default 1000 */
  initialBackoffMs?: number;
  /** @default 30000 */
  maxBackoffMs?: number;
  /** Compression and retention of day files; none when omitted. */
  maintenance?: MaintenanceOptions;
  /** Time between maintenance runs after the one at start. @default 1 hour */
  maintenanceIntervalMs?: number;
}

/** Counters of one follower, for tests and health output. */
export interface FollowerCounters {
  linesRead: number;
  eventsWritten: number;
  duplicatesSkipped: number;
  restarts: number;
}

/**
 * Adds `--timestamps` and `--since` to the logs command, right after its
 * `logs` word (or at the end when it has none).
 */
export function followCommandArgs(
  command: readonly string[],
  since: string | null,
): string[] {
  const extra: string[] = [];
  if (!command.includes("--timestamps") && !command.includes("-t")) {
    extra.push("--timestamps");
  }
  if (since !== null) extra.push("--since", since);
  const args = [...command];
  const at = args.indexOf("logs");
  if (at === -1) args.push(...extra);
  else args.splice(at + 1, 0, ...extra);
  return args;
}

const TIMESTAMP_PREFIX =
  /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(Z|[+-]\d{2}:\d{2}) /;

/**
 * Splits `<timestamp> <text>` as `docker logs --timestamps` prints it.
 * Returns the timestamp as UTC with nine fraction digits, or null when the
 * line has no timestamp (a message of the docker command itself).
 */
export function splitDockerTimestamp(
  line: string,
): { timestamp: string; text: string } | null {
  // Fast path: Docker's fixed-width UTC form.
  if (
    line.length >= 31 && line.charCodeAt(29) === 0x5a &&
    line.charCodeAt(30) === 0x20 && line.charCodeAt(10) === 0x54
  ) {
    return { timestamp: line.slice(0, 30), text: line.slice(31) };
  }
  const match = TIMESTAMP_PREFIX.exec(line);
  if (match === null) return null;
  const [prefix, local, zone] = match as unknown as [string, string, string];
  const dot = local.indexOf(".");
  const fraction = (dot === -1 ? "" : local.slice(dot + 1)).padEnd(9, "0");
  const seconds = dot === -1 ? local : local.slice(0, dot);
  const utc = new Date(`${seconds}${zone}`).toISOString().slice(0, 19);
  return { timestamp: `${utc}.${fraction}Z`, text: line.slice(prefix.length) };
}

/** Orders events by Docker timestamp; the fixed-width form sorts as text. */
function compareTimestamps(a: LogEvent, b: LogEvent): number {
  if (a.timestamp < b.timestamp) return -1;
  if (a.timestamp > b.timestamp) return 1;
  return 0;
}

/** Runs and restarts the logs command of one container until stopped. */
export class LogFollower {
  readonly counters: FollowerCounters = {
    linesRead: 0,
    eventsWritten: 0,
    duplicatesSkipped: 0,
    restarts: 0,
  };
  readonly #options: Required<
    Omit<LogFollowerOptions, "logger" | "maintenance">
  >;
  readonly #maintenance: MaintenanceOptions | undefined;
  #maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  #maintaining: Promise<void> = Promise.resolve();
  readonly #maintenanceAbort = new AbortController();
  readonly #log: Logger;
  readonly #writer: DayFileWriter;
  #state = new ResumeState();
  #queue: LogEvent[] = [];
  #writing: Promise<void> = Promise.resolve();
  #stopped = false;
  #child: Deno.ChildProcess | null = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  /**
   * Set when a write failed during the current run of the logs command:
   * the rest of that run is discarded and read again from docker, so that
   * nothing newer is written before the lines that failed.
   */
  #discardRun = false;
  /** Events dropped by the current run after a failed write. */
  #discardedEvents = 0;
  /** Failed writes of the episode in progress, 0 while writes succeed. */
  #writeFailures = 0;

  constructor(options: LogFollowerOptions) {
    this.#options = {
      flushIntervalMs: 200,
      quietFlushMs: 1000,
      initialBackoffMs: 1000,
      maxBackoffMs: 30_000,
      maintenanceIntervalMs: 3_600_000,
      ...options,
    };
    this.#maintenance = options.maintenance;
    this.#log = options.logger.child({ container: options.container });
    this.#writer = new DayFileWriter(options.logDir);
  }

  /** Process id of the running logs command, or null between restarts. */
  get followerPid(): number | null {
    return this.#child?.pid ?? null;
  }

  /**
   * Repairs torn lines, rebuilds the resume point from the files, and starts
   * following. Compression and retention run in the background.
   */
  async start(): Promise<void> {
    const repaired = await repairTornLines(this.#options.logDir);
    for (const file of repaired) {
      this.#log.warn(
        "Removed a torn last line left by a crash; it is read again from docker",
        {
          path: file.path,
          removed_bytes: file.removedBytes,
        },
      );
    }
    this.#state = await ResumeState.fromDirectory(this.#options.logDir);
    if (this.#maintenance !== undefined) {
      this.#maintaining = this.#maintain();
      this.#maintenanceTimer = setInterval(() => {
        this.#maintaining = this.#maintaining.then(() => this.#maintain());
      }, this.#options.maintenanceIntervalMs);
    }
    this.#loop ??= this.#run();
  }

  /** Compresses and deletes old day files; a failure is logged and retried next time. */
  async #maintain(): Promise<void> {
    try {
      const result = await maintainDayFiles(this.#options.logDir, {
        ...this.#maintenance!,
        activeDays: this.#writer.openDays(),
        signal: this.#maintenanceAbort.signal,
      });
      for (const path of result.compressed) {
        this.#log.info("Compressed day file", { path });
      }
      for (const path of result.deleted) {
        this.#log.info("Deleted day file past retention", { path });
      }
      for (const path of result.recovered) {
        this.#log.warn("Cleaned up after an interrupted compression", { path });
      }
    } catch (error) {
      if (this.#maintenanceAbort.signal.aborted) return;
      this.#log.error("Day file maintenance failed", {
        err: errorMessage(error),
        dir: this.#options.logDir,
      });
    }
  }

  /**
   * Stops the logs command and a compression in progress, writes every held
   * event, and closes the files.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#maintenanceTimer);
    this.#maintenanceAbort.abort();
    this.#wake?.();
    this.#killChild();
    await this.#loop;
    await this.#maintaining;
    await this.#flushQueue();
    if (this.#discardRun) {
      this.#log.error(
        "Log events not written at shutdown; they are read again from docker at the next start",
        { unwritten_events: this.#discardedEvents },
      );
    }
    try {
      await this.#writer.sync();
    } finally {
      this.#writer.close();
    }
  }

  #killChild(): void {
    try {
      this.#child?.kill("SIGTERM");
    } catch {
      // The process has already exited.
    }
  }

  async #run(): Promise<void> {
    let backoffMs = this.#options.initialBackoffMs;
    let failures = 0;
    while (!this.#stopped) {
      const startedMs = performance.now();
      const writtenBefore = this.counters.eventsWritten;
      const outcome = await this.#followOnce();
      if (this.#stopped) break;
      this.counters.restarts++;
      // Only new events are progress: a stopped container's `docker logs`
      // exits at once after replaying the lines at the resume point.
      const ranLong = performance.now() - startedMs > 60_000;
      if (this.counters.eventsWritten > writtenBefore || ranLong) {
        backoffMs = this.#options.initialBackoffMs;
        failures = 0;
      }
      failures++;
      // One line per episode: the first failure, then every tenth. A run
      // stopped because the files could not be written was logged then.
      if (
        !outcome.stoppedForWriteFailure &&
        (failures === 1 || failures % 10 === 0)
      ) {
        const message = outcome.code === null
          ? "Log follower could not start; retrying"
          : "Log follower exited; restarting";
        this.#log.warn(message, {
          exit_code: outcome.code,
          err: outcome.error,
          restart_in_ms: backoffMs,
          attempts: failures,
        });
      }
      await this.#sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, this.#options.maxBackoffMs);
    }
  }

  async #followOnce(): Promise<
    {
      code: number | null;
      lines: number;
      error: string | null;
      stoppedForWriteFailure: boolean;
    }
  > {
    this.#discardRun = false;
    this.#discardedEvents = 0;
    const since = this.#state.sinceArgument();
    const args = followCommandArgs(this.#options.command, since);
    this.#state.beginReplay();
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(args[0]!, {
        args: args.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? `command "${args[0]}" not found${
          args[0]!.includes("/") ? "" : " on PATH"
        }`
        : errorMessage(error);
      return {
        code: null,
        lines: 0,
        error: reason,
        stoppedForWriteFailure: false,
      };
    }
    this.#child = child;
    const groupers: Record<StreamName, EventGrouper> = {
      stdout: new EventGrouper(),
      stderr: new EventGrouper(),
    };
    const commandMessages: string[] = [];
    let lines = 0;
    let lastLineMs = performance.now();

    const onLine = (
      stream: StreamName,
      text: string,
      originalBytes?: number,
    ): void => {
      const split = splitDockerTimestamp(text);
      if (split === null) {
        // Lines without a timestamp come from the docker command itself.
        if (commandMessages.length < 20) {
          commandMessages.push(text.slice(0, 500));
        }
        return;
      }
      lines++;
      this.counters.linesRead++;
      lastLineMs = performance.now();
      const raw: RawLine = {
        timestamp: split.timestamp,
        stream,
        text: split.text,
      };
      if (originalBytes !== undefined) {
        raw.originalBytes = originalBytes - (text.length - split.text.length);
      }
      this.#queue.push(...groupers[stream].push(raw));
    };

    const splitters: Record<StreamName, LineSplitter> = {
      stdout: new LineSplitter({ joinDockerChunks: true }),
      stderr: new LineSplitter({ joinDockerChunks: true }),
    };
    const timer = setInterval(() => {
      if (performance.now() - lastLineMs >= this.#options.quietFlushMs) {
        // A line that never got its newline is written after a quiet time.
        for (const stream of ["stdout", "stderr"] as const) {
          for (const line of splitters[stream].end()) {
            onLine(stream, line.text, line.originalBytes);
          }
        }
        for (const grouper of Object.values(groupers)) {
          this.#queue.push(...grouper.flush());
        }
      }
      this.#scheduleFlush();
    }, this.#options.flushIntervalMs);

    try {
      await Promise.all([
        this.#readStream(
          child.stdout,
          splitters.stdout,
          (text, original) => onLine("stdout", text, original),
          () => lastLineMs = performance.now(),
        ),
        this.#readStream(
          child.stderr,
          splitters.stderr,
          (text, original) => onLine("stderr", text, original),
          () => lastLineMs = performance.now(),
        ),
      ]);
      const status = await child.status;
      for (const grouper of Object.values(groupers)) {
        this.#queue.push(...grouper.flush());
      }
      await this.#flushQueue();
      const error = commandMessages.length > 0
        ? commandMessages.join(" | ")
        : null;
      return {
        code: status.code,
        lines,
        error,
        stoppedForWriteFailure: this.#discardRun,
      };
    } finally {
      clearInterval(timer);
      this.#child = null;
    }
  }

  async #readStream(
    stream: ReadableStream<Uint8Array>,
    splitter: LineSplitter,
    onLine: (text: string, originalBytes?: number) => void,
    onChunk: () => void,
  ): Promise<void> {
    try {
      for await (const chunk of stream) {
        onChunk();
        for (const line of splitter.push(chunk)) {
          onLine(line.text, line.originalBytes);
        }
      }
    } catch (error) {
      this.#log.warn("Reading the log stream failed", {
        err: errorMessage(error),
      });
    }
    for (const line of splitter.end()) onLine(line.text, line.originalBytes);
  }

  #scheduleFlush(): void {
    this.#writing = this.#writing.then(() => this.#writeQueued());
  }

  async #flushQueue(): Promise<void> {
    this.#scheduleFlush();
    await this.#writing;
  }

  async #writeQueued(): Promise<void> {
    if (this.#queue.length === 0) return;
    const events = this.#queue;
    this.#queue = [];
    if (this.#discardRun) {
      this.#discardedEvents += events.length;
      return;
    }
    const fresh: LogEvent[] = [];
    for (const event of events) {
      if (this.#state.isDuplicate(event)) this.counters.duplicatesSkipped++;
      else fresh.push(event);
    }
    // The two streams are read concurrently and a multi-line event is held
    // until it ends, so order each batch by time (stable for equal stamps).
    fresh.sort(compareTimestamps);
    const lines = fresh.map((event) => ({
      day: dayFileName(event.timestamp),
      json: JSON.stringify(eventRecord(this.#options.container, event)),
    }));
    let written: (day: string) => boolean = () => true;
    let failure: unknown = null;
    try {
      await this.#writer.append(lines);
    } catch (error) {
      failure = error;
      const days = error instanceof DayFileWriteError
        ? error.written
        : new Set<string>();
      written = (day) => days.has(day);
    }
    let count = 0;
    for (const [index, event] of fresh.entries()) {
      if (!written(lines[index]!.day)) continue;
      this.#state.recordWritten(event.timestamp, event.stream, event.message);
      count++;
    }
    this.counters.eventsWritten += count;
    if (failure === null) {
      if (this.#writeFailures > 0) {
        this.#log.info("Writing log events resumed", {
          failed_writes: this.#writeFailures,
        });
        this.#writeFailures = 0;
      }
      return;
    }
    this.#stopRunAfterWriteFailure(failure, fresh.length - count);
  }

  /**
   * Handles a failed write, such as a full disk or a directory that cannot
   * be written. The events not written are dropped and the logs command is
   * stopped. After the restart backoff they are read again from docker,
   * from the resume point, so memory stays bounded however long the failure
   * lasts.
   */
  #stopRunAfterWriteFailure(error: unknown, dropped: number): void {
    this.#discardRun = true;
    this.#discardedEvents += dropped;
    this.#writeFailures++;
    if (this.#writeFailures === 1) {
      this.#log.error(
        "Writing log events failed; stopping docker logs and reading the lines again after a pause",
        {
          err: errorMessage(error),
          dir: this.#options.logDir,
          unwritten_events: dropped,
        },
      );
    }
    this.#killChild();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
