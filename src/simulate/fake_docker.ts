/**
 * A stand-in for the `docker` CLI, backed by the file store of
 * `docker_store.ts` under `$FAKE_DOCKER_ROOT`. It implements what the logger
 * and the tests need:
 *
 * - `docker logs [-f|--follow] [-t|--timestamps] [--since T] [--until T]
 *   [-n|--tail N] [--details] CONTAINER`: container stdout entries go to
 *   stdout, stderr entries to stderr, each prefixed with
 *   `2026-11-17T09:14:03.903258690Z ` when `-t` is given. `--since` keeps
 *   entries with a time at or after T (nanosecond precision). With
 *   `--follow` it polls for new entries every 50 ms while the container's
 *   `running` file exists, and exits 0 once it is gone and everything
 *   stored has been printed.
 * - `docker inspect [-f FORMAT] CONTAINER...` and `docker ps [-a] [-q]
 *   [--no-trunc] [--format FORMAT] [--filter name=X|status=S]`, with small Go
 *   templates (`{{.State.Running}}`, `{{json .State}}`, `{{.Names}}`).
 * - `docker --version` and `docker version`.
 *
 * `FAKE_DOCKER_LOG`, when set, names a file that receives one JSON line per
 * invocation with the arguments, so tests can check how the logger called
 * docker. Run it through `scripts/fake-docker/docker`.
 *
 * @module
 */
// deno-lint-ignore-file no-console

import {
  CONTAINER_NAME_PATTERN,
  containerDirectory,
  type DockerLogEntry,
  formatTimestamp,
  nowNanos,
  parseDockerLogEntry,
  parseTimestampNanos,
  readContainerConfig,
} from "./docker_store.ts";

const VERSION_TEXT = "Docker version 27.5.1-fake, build horos-fake-docker";
const POLL_INTERVAL_MS = 50;
const READ_CHUNK_BYTES = 256 * 1024;
const FLUSH_THRESHOLD_CHARS = 64 * 1024;

/** Exit status of a flag error, as the docker CLI uses it. */
const EXIT_USAGE = 125;

/** A failure that ends the command with a message on stderr and an exit status. */
class CommandError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "CommandError";
  }
}

/** Thrown when stdout or stderr was closed by the reader. */
class OutputClosed extends Error {
  constructor() {
    super("Output closed by the reader");
    this.name = "OutputClosed";
  }
}

/** Options of `docker logs`. */
interface LogsOptions {
  container: string;
  follow: boolean;
  timestamps: boolean;
  sinceNanos: bigint | undefined;
  untilNanos: bigint | undefined;
  /** Entries to show from the end of the log; undefined shows all. */
  tail: number | undefined;
}

/** Buffered writer for one output stream. */
class OutputBuffer {
  #parts: string[] = [];
  #length = 0;
  readonly #target: { write(bytes: Uint8Array): Promise<number> };
  readonly #encoder = new TextEncoder();

  constructor(target: { write(bytes: Uint8Array): Promise<number> }) {
    this.#target = target;
  }

  get pendingChars(): number {
    return this.#length;
  }

  push(text: string): void {
    this.#parts.push(text);
    this.#length += text.length;
  }

  async flush(): Promise<void> {
    if (this.#length === 0) {
      return;
    }
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#length = 0;
    let written = 0;
    try {
      while (written < bytes.length) {
        written += await this.#target.write(bytes.subarray(written));
      }
    } catch (error) {
      if (
        error instanceof Deno.errors.BrokenPipe ||
        error instanceof Deno.errors.ConnectionReset
      ) {
        throw new OutputClosed();
      }
      throw error;
    }
  }
}

/** Writes entries to stdout and stderr, keeping their order across the two streams. */
class EntryPrinter {
  readonly #stdout = new OutputBuffer(Deno.stdout);
  readonly #stderr = new OutputBuffer(Deno.stderr);
  #current: OutputBuffer = this.#stdout;
  readonly #timestamps: boolean;

  constructor(timestamps: boolean) {
    this.#timestamps = timestamps;
  }

  async print(entry: DockerLogEntry, nanos: bigint): Promise<void> {
    const buffer = entry.stream === "stdout" ? this.#stdout : this.#stderr;
    if (buffer !== this.#current) {
      // Flush the other stream first, so that a reader of both streams
      // gets the entries in log order as far as two pipes allow.
      await this.#current.flush();
      this.#current = buffer;
    }
    const prefix = this.#timestamps
      ? `${formatTimestamp(nanos, "fixed")} `
      : "";
    buffer.push(prefix + entry.log);
    if (buffer.pendingChars >= FLUSH_THRESHOLD_CHARS) {
      await buffer.flush();
    }
  }

  async flush(): Promise<void> {
    await this.#stdout.flush();
    await this.#stderr.flush();
  }
}

/** Reads complete entries from a growing `log.jsonl`, remembering where it stopped. */
class LogFileReader {
  readonly #path: string;
  #file: Deno.FsFile | undefined;
  #pending: Uint8Array = new Uint8Array(0);
  readonly #decoder = new TextDecoder();

  constructor(path: string) {
    this.#path = path;
  }

  /** Calls `onEntry` for every complete entry added since the last call; a torn last line waits for its end. */
  async readAvailable(
    onEntry: (entry: DockerLogEntry, nanos: bigint) => Promise<boolean>,
  ): Promise<boolean> {
    const file = await this.#open();
    if (file === undefined) {
      return true;
    }
    const chunk = new Uint8Array(READ_CHUNK_BYTES);
    for (;;) {
      const read = await file.read(chunk);
      if (read === null) {
        return true;
      }
      const data = concat(this.#pending, chunk.subarray(0, read));
      const end = data.lastIndexOf(0x0a);
      if (end < 0) {
        this.#pending = data;
        continue;
      }
      this.#pending = data.slice(end + 1);
      const text = this.#decoder.decode(data.subarray(0, end));
      for (const line of text.split("\n")) {
        if (line.trim() === "") {
          continue;
        }
        const parsed = parseLine(line);
        if (parsed !== undefined && !(await onEntry(...parsed))) {
          return false;
        }
      }
    }
  }

  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  async #open(): Promise<Deno.FsFile | undefined> {
    if (this.#file === undefined) {
      try {
        this.#file = await Deno.open(this.#path, { read: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          return undefined;
        }
        throw error;
      }
    }
    return this.#file;
  }
}

function parseLine(line: string): [DockerLogEntry, bigint] | undefined {
  try {
    const entry = parseDockerLogEntry(line);
    const nanos = parseTimestampNanos(entry.time);
    if (nanos === undefined) {
      throw new SyntaxError(`invalid time "${entry.time}" in log entry`);
    }
    return [entry, nanos];
  } catch (error) {
    // Docker reports a corrupt entry in the stream and goes on.
    const message = error instanceof Error ? error.message : String(error);
    console.error(
      `error from daemon in stream: Error grabbing logs: ${message}`,
    );
    return undefined;
  }
}

function concat(first: Uint8Array, second: Uint8Array): Uint8Array {
  if (first.length === 0) {
    return second.slice();
  }
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}

/** Runs `docker logs`. */
async function runLogs(root: string, args: string[]): Promise<number> {
  const options = parseLogsArgs(args);
  const directory = directoryOf(root, options.container);
  if (!(await pathExists(directory))) {
    throw new CommandError(
      `Error response from daemon: No such container: ${options.container}`,
    );
  }
  const runningPath = `${directory}/running`;
  const reader = new LogFileReader(`${directory}/log.jsonl`);
  const printer = new EntryPrinter(options.timestamps);
  let ended = false;
  const show = async (entry: DockerLogEntry, nanos: bigint) => {
    if (options.sinceNanos !== undefined && nanos < options.sinceNanos) {
      return true;
    }
    if (options.untilNanos !== undefined && nanos > options.untilNanos) {
      // Like Docker, the first entry after --until ends the output.
      ended = true;
      return false;
    }
    await printer.print(entry, nanos);
    return true;
  };
  try {
    let running = await pathExists(runningPath);
    if (options.tail === undefined) {
      await reader.readAvailable(show);
    } else {
      // Docker picks the last N entries first and filters them by time after.
      const tail = options.tail;
      let last: [DockerLogEntry, bigint][] = [];
      await reader.readAvailable((entry, nanos) => {
        last.push([entry, nanos]);
        if (last.length >= 2 * tail + 1024) {
          last = last.slice(last.length - tail);
        }
        return Promise.resolve(true);
      });
      for (const [entry, nanos] of tail === 0 ? [] : last.slice(-tail)) {
        if (!(await show(entry, nanos))) {
          break;
        }
      }
    }
    await printer.flush();
    while (options.follow && running && !ended) {
      await delay(POLL_INTERVAL_MS);
      // Read after checking the marker: whatever was written before the
      // container stopped is then printed before exiting.
      running = await pathExists(runningPath);
      await reader.readAvailable(show);
      await printer.flush();
      if (
        options.untilNanos !== undefined && nowNanos() > options.untilNanos
      ) {
        break;
      }
    }
  } finally {
    reader.close();
  }
  return 0;
}

/** Returns the container's directory; a name Docker would reject is reported as not found. */
function directoryOf(root: string, container: string): string {
  if (!CONTAINER_NAME_PATTERN.test(container)) {
    throw new CommandError(
      `Error response from daemon: No such container: ${container}`,
    );
  }
  return containerDirectory(root, container);
}

function parseLogsArgs(args: string[]): LogsOptions {
  const flags = parseFlags(args, {
    boolean: ["follow", "timestamps", "details"],
    value: ["since", "until", "tail"],
    short: { f: "follow", t: "timestamps", n: "tail" },
  }, "logs");
  if (flags.positional.length !== 1) {
    throw new CommandError(
      `"docker logs" requires exactly 1 argument.\nSee 'docker logs --help'.\n\nUsage:  docker logs [OPTIONS] CONTAINER\n\nFetch the logs of a container`,
    );
  }
  const now = nowNanos();
  const since = flags.values.get("since");
  const until = flags.values.get("until");
  const tail = flags.values.get("tail");
  return {
    container: flags.positional[0]!,
    follow: flags.booleans.has("follow"),
    timestamps: flags.booleans.has("timestamps"),
    sinceNanos: since === undefined || since === ""
      ? undefined
      : parseTimeArgument(since, "since", now),
    untilNanos: until === undefined || until === ""
      ? undefined
      : parseTimeArgument(until, "until", now),
    tail: parseTail(tail),
  };
}

function parseTail(value: string | undefined): number | undefined {
  if (value === undefined || value === "all") {
    return undefined;
  }
  const count = Number(value);
  if (!Number.isInteger(count)) {
    throw new CommandError(
      `invalid argument "${value}" for "-n, --tail" flag: expected an integer or "all"\nSee 'docker logs --help'.`,
      EXIT_USAGE,
    );
  }
  return count < 0 ? undefined : count;
}

/**
 * Parses a `--since`/`--until` value as Docker accepts it: RFC 3339 with a
 * zone or without one (taken as UTC here), a date `2006-01-02`, Unix
 * seconds with an optional decimal fraction, or a Go duration before now
 * (`10m`, `1h30m`, `1.5s`).
 */
function parseTimeArgument(value: string, flag: string, now: bigint): bigint {
  const rfc3339 = parseTimestampNanos(value) ??
    parseTimestampNanos(`${value}Z`) ??
    parseTimestampNanos(`${value}T00:00:00Z`);
  if (rfc3339 !== undefined) {
    return rfc3339;
  }
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (unix !== null) {
    const fraction = (unix[2] ?? "").padEnd(9, "0");
    return BigInt(unix[1]!) * 1_000_000_000n + BigInt(fraction);
  }
  const duration = parseGoDuration(value);
  if (duration !== undefined) {
    return now - duration;
  }
  throw new CommandError(
    `invalid value for "${flag}": failed to parse value as time or duration: "${value}"`,
  );
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

function parseGoDuration(value: string): bigint | undefined {
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let matched = 0;
  while (pattern.lastIndex < value.length) {
    const match = pattern.exec(value);
    if (match === null) {
      return undefined;
    }
    total += Number(match[1]) * (DURATION_UNITS[match[2]!] ?? 0);
    matched++;
  }
  return matched > 0 ? BigInt(Math.round(total)) : undefined;
}

/** Runs `docker inspect`. */
async function runInspect(root: string, args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    boolean: ["size"],
    value: ["format", "type"],
    short: { f: "format", s: "size" },
  }, "inspect");
  if (flags.positional.length === 0) {
    throw new CommandError(
      `"docker inspect" requires at least 1 argument.\nSee 'docker inspect --help'.`,
    );
  }
  const format = flags.values.get("format");
  const found: Record<string, unknown>[] = [];
  const missing: string[] = [];
  for (const name of flags.positional) {
    const details = await describeContainer(root, name);
    if (details === undefined) {
      missing.push(name);
    } else {
      found.push(details);
    }
  }
  if (format === undefined) {
    console.log(JSON.stringify(found, null, 4));
  } else {
    for (const details of found) {
      console.log(renderTemplate(format, details));
    }
  }
  for (const name of missing) {
    console.error(`Error: No such object: ${name}`);
  }
  return missing.length > 0 ? 1 : 0;
}

/** Runs `docker ps`. */
async function runPs(root: string, args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    boolean: ["all", "quiet", "no-trunc"],
    value: ["format", "filter"],
    short: { a: "all", q: "quiet", f: "filter" },
  }, "ps");
  const filter = parseFilter(flags.values.get("filter"));
  const rows: Record<string, unknown>[] = [];
  for (const name of await listContainers(root)) {
    const details = await describeContainer(root, name);
    const state = details?.State as { Running?: boolean } | undefined;
    // Like Docker, a status filter also lists stopped containers without -a.
    const showStopped = flags.booleans.has("all") ||
      filter.status !== undefined;
    if (details === undefined || (!state?.Running && !showStopped)) {
      continue;
    }
    const stateName = state?.Running ? "running" : "exited";
    if (
      (filter.name !== undefined && !name.includes(filter.name)) ||
      (filter.status !== undefined && filter.status !== stateName)
    ) {
      continue;
    }
    const id = String(details.Id);
    rows.push({
      ID: flags.booleans.has("no-trunc") ? id : id.slice(0, 12),
      Image: "vllm/vllm-openai:latest",
      Names: name,
      State: stateName,
      Status: state?.Running ? "Up" : "Exited (0)",
    });
  }
  const format = flags.values.get("format");
  if (flags.booleans.has("quiet")) {
    rows.forEach((row) => console.log(row.ID));
  } else if (format !== undefined) {
    rows.forEach((row) => console.log(renderTemplate(format, row)));
  } else {
    console.log("CONTAINER ID   IMAGE                     STATUS       NAMES");
    for (const row of rows) {
      console.log(
        `${String(row.ID).padEnd(14)} ${String(row.Image).padEnd(25)} ${
          String(row.Status).padEnd(12)
        } ${row.Names}`,
      );
    }
  }
  return 0;
}

/** Parses the `--filter` value of `docker ps`; `name` and `status` are supported. */
function parseFilter(
  value: string | undefined,
): { name?: string; status?: string } {
  if (value === undefined) {
    return {};
  }
  const [key = "", filterValue = ""] = splitOnce(value, "=");
  if (key === "name") {
    return { name: filterValue };
  }
  if (key === "status") {
    return { status: filterValue };
  }
  throw new CommandError(
    `Error response from daemon: invalid filter '${key}'`,
  );
}

async function describeContainer(
  root: string,
  name: string,
): Promise<Record<string, unknown> | undefined> {
  if (!CONTAINER_NAME_PATTERN.test(name)) {
    return undefined;
  }
  const directory = containerDirectory(root, name);
  if (!(await pathExists(directory))) {
    return undefined;
  }
  const config = await readContainerConfig(root, name);
  let startedAt = "0001-01-01T00:00:00Z";
  let running = false;
  try {
    startedAt = (await Deno.readTextFile(`${directory}/running`)).trim() ||
      startedAt;
    running = true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
  return {
    Id: config?.id ?? await hexDigest(name),
    Created: config?.created ?? "0001-01-01T00:00:00Z",
    Name: `/${name}`,
    State: {
      Status: running ? "running" : "exited",
      Running: running,
      ExitCode: 0,
      StartedAt: startedAt,
    },
    LogPath: `${directory}/log.jsonl`,
    HostConfig: { LogConfig: { Type: "json-file", Config: {} } },
    Config: { Image: "vllm/vllm-openai:latest", Tty: false },
  };
}

async function listContainers(root: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      if (entry.isDirectory) {
        names.push(entry.name);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
  return names.sort();
}

/** Renders a Go template limited to `{{.Field.Path}}` and `{{json .Field}}` actions. */
function renderTemplate(template: string, data: unknown): string {
  return template.replace(/\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}/g, (
    _match,
    json: string | undefined,
    path: string,
  ) => {
    let value: unknown = data;
    for (const key of path.split(".").filter((part) => part !== "")) {
      value = (value as Record<string, unknown> | undefined)?.[key];
    }
    if (json !== undefined) {
      return JSON.stringify(value ?? null);
    }
    if (value === undefined || value === null) {
      return "<no value>";
    }
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }).replaceAll("\\n", "\n").replaceAll("\\t", "\t");
}

interface FlagSpec {
  boolean: string[];
  value: string[];
  short: Record<string, string>;
}

interface ParsedFlags {
  booleans: Set<string>;
  values: Map<string, string>;
  positional: string[];
}

/**
 * Parses flags the way the docker CLI (pflag) does: `--name value`,
 * `--name=value`, `-n value`, `-n3`, grouped short booleans (`-ft`),
 * `--flag=false`, and `--` to end the flags.
 */
function parseFlags(
  args: string[],
  spec: FlagSpec,
  command: string,
): ParsedFlags {
  const result: ParsedFlags = {
    booleans: new Set(),
    values: new Map(),
    positional: [],
  };
  const unknown = (flag: string): never => {
    const description = flag.startsWith("--")
      ? `flag: ${flag}`
      : `shorthand flag: '${flag.slice(1)}' in ${flag}`;
    throw new CommandError(
      `unknown ${description}\nSee 'docker ${command} --help'.`,
      EXIT_USAGE,
    );
  };
  const setFlag = (name: string, inline: string | undefined, index: number) => {
    if (spec.boolean.includes(name)) {
      if (inline === undefined || inline === "true") {
        result.booleans.add(name);
      } else {
        result.booleans.delete(name);
      }
      return index;
    }
    if (spec.value.includes(name)) {
      if (inline !== undefined) {
        result.values.set(name, inline);
        return index;
      }
      const next = args[index + 1];
      if (next === undefined) {
        throw new CommandError(
          `flag needs an argument: --${name}\nSee 'docker ${command} --help'.`,
          EXIT_USAGE,
        );
      }
      result.values.set(name, next);
      return index + 1;
    }
    return unknown(`--${name}`);
  };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === "--") {
      result.positional.push(...args.slice(index + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const [name = "", inline] = splitOnce(arg.slice(2), "=");
      index = setFlag(name, inline, index);
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (let position = 1; position < arg.length; position++) {
        const name = spec.short[arg[position]!] ?? unknown(`-${arg[position]}`);
        if (spec.value.includes(name)) {
          const rest = arg.slice(position + 1).replace(/^=/, "");
          index = setFlag(name, rest === "" ? undefined : rest, index);
          break;
        }
        setFlag(name, undefined, index);
      }
    } else {
      result.positional.push(arg);
    }
  }
  return result;
}

function splitOnce(text: string, separator: string): [string, string?] {
  const index = text.indexOf(separator);
  return index < 0
    ? [text]
    : [text.slice(0, index), text.slice(index + separator.length)];
}

async function pathExists(path: string): Promise<boolean> {
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

async function hexDigest(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(digest),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function recordInvocation(args: string[]): void {
  const logPath = Deno.env.get("FAKE_DOCKER_LOG");
  if (logPath === undefined || logPath === "") {
    return;
  }
  const record = {
    time: new Date().toISOString(),
    pid: Deno.pid,
    argv: args,
  };
  Deno.writeTextFileSync(logPath, JSON.stringify(record) + "\n", {
    append: true,
  });
}

/**
 * Runs one fake docker command and returns its exit status.
 *
 * @param args Arguments after `docker`.
 */
export async function runFakeDocker(args: string[]): Promise<number> {
  recordInvocation(args);
  const [command, ...rest] = args;
  if (command === "--version" || command === "-v" || command === "version") {
    console.log(VERSION_TEXT);
    return 0;
  }
  const root = Deno.env.get("FAKE_DOCKER_ROOT");
  if (root === undefined || root === "") {
    console.error(
      "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n" +
        "(fake docker: set FAKE_DOCKER_ROOT to the directory that holds the fake containers)",
    );
    return 1;
  }
  try {
    switch (command) {
      case "logs":
        return await runLogs(root, rest);
      case "container":
        return await runContainerCommand(root, rest);
      case "inspect":
        return await runInspect(root, rest);
      case "ps":
        return await runPs(root, rest);
      default:
        console.error(
          `docker: unknown command: docker ${
            command ?? ""
          }\n\nRun 'docker --help' for more information`,
        );
        return 1;
    }
  } catch (error) {
    if (error instanceof OutputClosed) {
      return 0;
    }
    if (error instanceof CommandError) {
      console.error(error.message);
      return error.exitCode;
    }
    throw error;
  }
}

function runContainerCommand(root: string, args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  switch (subcommand) {
    case "logs":
      return runLogs(root, rest);
    case "inspect":
      return runInspect(root, rest);
    case "ls":
    case "list":
    case "ps":
      return runPs(root, rest);
    default:
      console.error(
        `docker: unknown command: docker container ${
          subcommand ?? ""
        }\n\nRun 'docker container --help' for more information`,
      );
      return Promise.resolve(1);
  }
}

if (import.meta.main) {
  // A reader that stops (SIGTERM, SIGINT, or a closed pipe) ends the
  // command at once and quietly, with status 0.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
  Deno.exit(await runFakeDocker(Deno.args));
}
