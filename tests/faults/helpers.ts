/**
 * Helpers for the fault tests: the logger as a subprocess with its own log
 * parsed from stderr, an HTTP endpoint on 127.0.0.1 that misbehaves on
 * request, and checks that the files and the database are intact.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { DENO, FAKE_DOCKER_DIR, REPO } from "../e2e/helpers.ts";

export { DENO, FAKE_DOCKER_DIR, REPO };

/** Test options for cases that leave subprocesses and servers to their own cleanup. */
export const NO_SANITIZERS = { sanitizeOps: false, sanitizeResources: false };

/** One line of the logger's own log (JSON on stderr). */
export type OwnLogLine = Record<string, unknown> & {
  level: string;
  message: string;
};

/** Options of {@linkcode LoggerProcess.start}. */
export interface LoggerProcessOptions {
  /** `FAKE_DOCKER_ROOT` for the fake docker. */
  dockerRoot?: string;
  /** PATH of the logger; the fake docker directory first when omitted. */
  path?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** File-creation mask of the logger process, as octal text such as "022". */
  umask?: string;
}

/** The program as a subprocess: `deno run main.ts ARGS`, stderr parsed as it arrives. */
export class LoggerProcess {
  readonly child: Deno.ChildProcess;
  /** Own log lines that parsed as JSON objects, in order. */
  readonly lines: OwnLogLine[] = [];
  /** Stderr lines that were not JSON (plain `error:` messages). */
  readonly plainLines: string[] = [];
  /** Highest resident set size seen by {@linkcode sampleRss}, in KiB. */
  peakRssKiB = 0;
  readonly #drained: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.child = child;
    this.#drained = this.#drainStderr();
    child.stdout.cancel().catch(() => {});
  }

  /** Starts the logger with `args`; stdin is closed, stdout is ignored. */
  static start(
    args: string[],
    options: LoggerProcessOptions = {},
  ): LoggerProcess {
    const denoArgs = ["run", "--allow-all", `${REPO}/main.ts`, ...args];
    const env: Record<string, string> = {
      PATH: options.path ??
        `${FAKE_DOCKER_DIR}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      HOROS_DENO: DENO,
      ...options.env,
    };
    if (options.dockerRoot !== undefined) {
      env.FAKE_DOCKER_ROOT = options.dockerRoot;
    }
    // Deno has no umask setter, so a shell sets it and then runs Deno.
    const [program, programArgs] = options.umask === undefined
      ? [DENO, denoArgs]
      : ["/bin/sh", [
        "-c",
        `umask ${options.umask} && exec "$0" "$@"`,
        DENO,
        ...denoArgs,
      ]];
    const child = new Deno.Command(program, {
      args: programArgs,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new LoggerProcess(child);
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Messages of the own log lines, in order. */
  messages(): string[] {
    return this.lines.map((line) => line.message);
  }

  /** Own log lines whose message equals `message`. */
  withMessage(message: string): OwnLogLine[] {
    return this.lines.filter((line) => line.message === message);
  }

  /** Everything written to stderr so far, for assertion messages. */
  stderrText(): string {
    return [
      ...this.lines.map((line) => JSON.stringify(line)),
      ...this.plainLines,
    ].join("\n");
  }

  /** Waits until an own log line matches `predicate`, and returns it. */
  async waitForLine(
    predicate: (line: OwnLogLine) => boolean,
    timeoutMs: number,
    description: string,
  ): Promise<OwnLogLine> {
    let found: OwnLogLine | undefined;
    await waitUntil(
      () => {
        found = this.lines.find(predicate);
        return found !== undefined;
      },
      timeoutMs,
      () => `${description}; stderr so far:\n${this.stderrText()}`,
    );
    return found!;
  }

  /** Reads the current and the peak RSS from /proc, and updates {@linkcode peakRssKiB}. */
  sampleRss(): { rssKiB: number; peakKiB: number } {
    const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
    const field = (name: string): number => {
      const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
      return match === null ? 0 : Number(match[1]);
    };
    const rssKiB = field("VmRSS");
    const peakKiB = field("VmHWM");
    this.peakRssKiB = Math.max(this.peakRssKiB, peakKiB);
    return { rssKiB, peakKiB };
  }

  /** True while the process has not exited. */
  async isRunning(): Promise<boolean> {
    const exited = await Promise.race([
      this.child.status.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 0)),
    ]);
    return !exited;
  }

  /** Sends `signal` and waits for the exit; returns the code and the seconds it took. */
  async stop(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<{ code: number; seconds: number }> {
    const started = performance.now();
    try {
      this.child.kill(signal);
    } catch {
      // The process has already exited.
    }
    const status = await this.child.status;
    await this.#drained;
    return {
      code: status.code,
      seconds: (performance.now() - started) / 1000,
    };
  }

  async #drainStderr(): Promise<void> {
    let pending = "";
    const handle = (line: string) => {
      if (line === "") return;
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed === "object" && parsed !== null) {
          this.lines.push(parsed as OwnLogLine);
          return;
        }
      } catch {
        // A plain line such as "error: invalid configuration: ...".
      }
      this.plainLines.push(line);
    };
    for await (
      const chunk of this.child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const part of parts) handle(part);
    }
    handle(pending);
  }
}

/**
 * Polls `condition` every 25 ms until it is true, or throws after
 * `timeoutMs`. A function `description` is called only for the error.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  description: string | (() => string),
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return;
    await delay(25);
  }
  const text = typeof description === "string" ? description : description();
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${text}`);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Output of a finished command-line run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the program to completion with `args` and returns its output. A run
 * still going after `timeoutMs` is killed and fails the test: every command
 * given to this helper is expected to end by itself.
 */
export async function runCli(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const child = new Deno.Command(DENO, {
    args: ["run", "--allow-all", `${REPO}/main.ts`, ...args],
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOROS_DENO: DENO,
      ...options.env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 20_000);
  try {
    const output = await child.output();
    const decoder = new TextDecoder();
    const result = {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
    assert.ok(
      !timedOut,
      `horos_vllm_logger ${args.join(" ")} did not exit: ${result.stderr}`,
    );
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Lists every path under `dir`, relative to it, sorted; missing `dir` gives none. */
export function listTree(dir: string): string[] {
  const found: string[] = [];
  const walk = (relative: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${dir}${relative}`)];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = `${relative}/${entry.name}`;
      found.push(path.slice(1));
      if (entry.isDirectory) walk(path);
    }
  };
  walk("");
  return found.sort();
}

/** True when `jq` is on PATH. */
export const HAS_JQ = (() => {
  try {
    return new Deno.Command("jq", { args: ["--version"] }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

/**
 * Reads every `.jsonl` file under `dir` and returns the records in file
 * order. Fails when a file does not end with a newline or a line is not a
 * JSON object, and, where `jq` is installed, when `jq` rejects a file.
 */
export async function readDayFiles(
  dir: string,
): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  for (const name of listTree(dir).filter((path) => path.endsWith(".jsonl"))) {
    const path = `${dir}/${name}`;
    const text = await Deno.readTextFile(path);
    if (text === "") continue;
    assert.ok(text.endsWith("\n"), `${path} ends with a newline`);
    for (const [index, line] of text.slice(0, -1).split("\n").entries()) {
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        assert.fail(
          `${path}:${index + 1} is not valid JSON (${error}): ${
            line.slice(0, 200)
          }`,
        );
      }
      assert.equal(typeof record, "object", `${path}:${index + 1} is object`);
      records.push(record as Record<string, unknown>);
    }
    if (HAS_JQ) {
      const jq = await new Deno.Command("jq", {
        args: ["-e", 'type == "object"', path],
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.ok(
        jq.success,
        `jq rejects ${path}: ${new TextDecoder().decode(jq.stderr)}`,
      );
    }
  }
  return records;
}

/** Asserts that each `generated line N` for N < total is in `records` exactly once. */
export function assertLinesExactlyOnce(
  records: readonly Record<string, unknown>[],
  total: number,
  prefix = "generated line ",
): void {
  const counts = new Map<string, number>();
  for (const record of records) {
    const message = String(record.message);
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  const repeated = [...counts].filter(([, count]) => count > 1).map((
    [message],
  ) => message);
  assert.deepEqual(repeated.slice(0, 10), [], "no line written twice");
  const missing: number[] = [];
  for (let i = 0; i < total; i++) {
    if (!counts.has(`${prefix}${i}`)) missing.push(i);
  }
  assert.deepEqual(missing.slice(0, 10), [], "no line lost");
  assert.equal(records.length, total, "no other lines");
}

/**
 * Checks a metrics database: `PRAGMA integrity_check` is ok, and for every
 * container and scrape time the `metrics` view has as many samples as the
 * `scrapes` table records. A scrape stored in part, a sample whose series
 * or scrape is missing, and a sample filed under another container all fail
 * the check. Only the `scrapes` table and the `metrics` view are read, so
 * the check works whatever tables hold the samples.
 */
export function assertDatabaseIntact(path: string): void {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const integrity = db.prepare("PRAGMA integrity_check").all() as {
      integrity_check: string;
    }[];
    assert.deepEqual(integrity.map((row) => row.integrity_check), ["ok"]);
    const mismatched = db.prepare(
      `WITH expected AS (
         SELECT container, timestamp, sum(samples_scraped) AS n
         FROM scrapes WHERE up = 1 GROUP BY container, timestamp),
       stored AS (
         SELECT container, timestamp, count(*) AS n
         FROM metrics GROUP BY container, timestamp)
       SELECT e.container, e.timestamp, e.n AS expected, s.n AS stored
       FROM expected e LEFT JOIN stored s USING (container, timestamp)
       WHERE s.n IS NULL OR s.n != e.n
       UNION ALL
       SELECT s.container, s.timestamp, e.n, s.n
       FROM stored s LEFT JOIN expected e USING (container, timestamp)
       WHERE e.n IS NULL
       LIMIT 10`,
    ).all();
    assert.deepEqual(mismatched, [], "samples per scrape in the metrics view");
  } finally {
    db.close();
  }
}

/** Runs one read-only query on a database file and returns its rows. */
export function queryDatabase<T>(
  path: string,
  sql: string,
  ...params: (string | number)[]
): T[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** True when this process may mount a tmpfs (root on Linux with mount(8)). */
export function canMountTmpfs(): boolean {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const dir = Deno.makeTempDirSync({ prefix: "horos-mount-probe-" });
  try {
    const mounted = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
    if (mounted) {
      new Deno.Command("umount", { args: [dir] }).outputSync();
    }
    return mounted;
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Mounts a tmpfs of `sizeKiB` on `dir`; undo with {@linkcode unmount}. */
export async function mountTmpfs(dir: string, sizeKiB: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await runChecked("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${sizeKiB}k,mode=0750`,
    "tmpfs",
    dir,
  ]);
}

/** Remounts a tmpfs read-only (`true`) or read-write (`false`). */
export async function remount(dir: string, readOnly: boolean): Promise<void> {
  await runChecked("mount", ["-o", `remount,${readOnly ? "ro" : "rw"}`, dir]);
}

/** Unmounts `dir`, lazily so that a process still holding a file cannot block it. */
export async function unmount(dir: string): Promise<void> {
  await runChecked("umount", ["-l", dir]);
}

async function runChecked(command: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
}

/** Fills the file system of `dir` with a filler file until writes fail; returns its path. */
export async function fillDisk(dir: string, leaveBytes = 0): Promise<string> {
  const path = `${dir}/filler`;
  using file = await Deno.open(path, { write: true, create: true });
  const block = new Uint8Array(4096);
  try {
    for (;;) await file.write(block);
  } catch {
    // ENOSPC: the file system is full.
  }
  if (leaveBytes > 0) {
    const size = (await file.stat()).size;
    await file.truncate(Math.max(0, size - leaveBytes));
  }
  return path;
}
