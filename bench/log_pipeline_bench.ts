/**
 * Log pipeline benchmark, three figures:
 *
 * 1. In-process throughput of the whole pipeline on a realistic vLLM line
 *    mix: Docker-timestamped bytes → line splitting → event grouping →
 *    JSON records appended to a day file.
 * 2. End-to-end throughput of the real logger process reading a container's
 *    history from the fake `docker` (both processes share the 2 cores).
 * 3. CPU share and memory of a logger following 1,000 lines/s live.
 *
 * Run: `deno run --allow-all bench/log_pipeline_bench.ts [--follow-seconds 60]`
 *
 * @module
 */
// deno-lint-ignore-file no-console
import {
  dayFileName,
  DayFileWriter,
  eventRecord,
} from "../src/logs/day_files.ts";
import { EventGrouper } from "../src/logs/event_grouper.ts";
import { splitDockerTimestamp } from "../src/logs/follower.ts";
import { LineSplitter } from "../src/logs/line_splitter.ts";
import type { LogEvent, StreamName } from "../src/logs/types.ts";
import {
  appendDockerLogEntries,
  createContainer,
  setContainerRunning,
} from "../src/simulate/docker_store.ts";

const REPO = new URL("../", import.meta.url).pathname;
const DENO = Deno.env.get("HOROS_DENO") ?? Deno.execPath();
/** V8 flags for the logger process only, e.g. `--max-old-space-size=48`. */
const loggerV8Flags = Deno.args.includes("--logger-v8-flags")
  ? Deno.args[Deno.args.indexOf("--logger-v8-flags") + 1] ?? ""
  : "";
const followSeconds =
  Number(Deno.args[Deno.args.indexOf("--follow-seconds") + 1] ?? "") || 60;

const STDERR_LINES = new Set<number>();
for (
  const [first, last] of [[14, 20], [33, 34], [60, 62], [92, 102], [115, 120]]
) {
  for (let n = first!; n <= last!; n++) STDERR_LINES.add(n);
}

/** The 120 fixture lines without their Docker timestamps, with the stream Docker gives each. */
async function fixtureMix(): Promise<{ stream: StreamName; text: string }[]> {
  const text = await Deno.readTextFile(
    `${REPO}tests/testdata/vllm/logs-startup.txt`,
  );
  return text.slice(0, -1).split("\n").map((line, i) => ({
    stream: STDERR_LINES.has(i + 1) ? "stderr" : "stdout",
    text: line,
  }));
}

function dockerTime(index: number): string {
  const ms = Date.UTC(2026, 10, 17, 9, 0, 0) + Math.floor(index / 1000);
  return new Date(ms).toISOString().replace(
    "Z",
    `${String(index % 1000).padStart(3, "0")}000Z`,
  );
}

async function inProcessThroughput(
  mix: { stream: StreamName; text: string }[],
  lines: number,
): Promise<number> {
  const encoder = new TextEncoder();
  const chunks: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };
  let pending: Record<StreamName, string> = { stdout: "", stderr: "" };
  for (let i = 0; i < lines; i++) {
    const line = mix[i % mix.length]!;
    pending[line.stream] += `${dockerTime(i)} ${line.text}\n`;
    if (pending[line.stream].length > 64 * 1024) {
      chunks[line.stream].push(encoder.encode(pending[line.stream]));
      pending[line.stream] = "";
    }
  }
  for (const stream of ["stdout", "stderr"] as const) {
    chunks[stream].push(encoder.encode(pending[stream]));
  }
  pending = { stdout: "", stderr: "" };

  const dir = await Deno.makeTempDir();
  const writer = new DayFileWriter(dir);
  const started = performance.now();
  for (const stream of ["stdout", "stderr"] as const) {
    const splitter = new LineSplitter({ joinDockerChunks: true });
    const grouper = new EventGrouper();
    let events: LogEvent[] = [];
    const flush = async () => {
      await writer.append(events.map((event) => ({
        day: dayFileName(event.timestamp),
        json: JSON.stringify(eventRecord("vllm-bench", event)),
      })));
      events = [];
    };
    for (const chunk of chunks[stream]) {
      for (const line of splitter.push(chunk)) {
        const split = splitDockerTimestamp(line.text)!;
        events.push(
          ...grouper.push({
            timestamp: split.timestamp,
            stream,
            text: split.text,
          }),
        );
      }
      await flush();
    }
    events.push(...grouper.flush());
    await flush();
  }
  await writer.sync();
  const seconds = (performance.now() - started) / 1000;
  writer.close();
  await Deno.remove(dir, { recursive: true });
  return lines / seconds;
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
function processUsage(pid: number): { cpuSeconds: number; rssMiB: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMiB: rssKiB / 1024 };
}

function startLogger(root: string, logDir: string): Deno.ChildProcess {
  return new Deno.Command(DENO, {
    args: [
      "run",
      "--allow-all",
      `${REPO}main.ts`,
      "--container",
      "vllm-bench",
      "--log-dir",
      logDir,
    ],
    env: {
      PATH: `${REPO}scripts/fake-docker:${Deno.env.get("PATH")}`,
      FAKE_DOCKER_ROOT: root,
      HOROS_DENO: DENO,
      ...(loggerV8Flags === "" ? {} : { DENO_V8_FLAGS: loggerV8Flags }),
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Counts newline bytes appended to the files of `dir` since the last call, reading only new bytes. */
function lineCounter(dir: string): () => Promise<number> {
  const offsets = new Map<string, number>();
  let count = 0;
  return async () => {
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].map((entry) => entry.name);
    } catch {
      return count;
    }
    for (const name of names) {
      using file = await Deno.open(`${dir}/${name}`);
      const offset = offsets.get(name) ?? 0;
      await file.seek(offset, Deno.SeekMode.Start);
      const buffer = new Uint8Array(1024 * 1024);
      let read = offset;
      for (;;) {
        const n = await file.read(buffer);
        if (n === null) break;
        for (let i = 0; i < n; i++) if (buffer[i] === 0x0a) count++;
        read += n;
      }
      offsets.set(name, read);
    }
    return count;
  };
}

async function storeHistory(
  root: string,
  mix: { stream: StreamName; text: string }[],
  lines: number,
) {
  await createContainer(root, "vllm-bench", { running: false });
  for (let start = 0; start < lines; start += 10_000) {
    const entries = [];
    for (let i = start; i < Math.min(lines, start + 10_000); i++) {
      const line = mix[i % mix.length]!;
      entries.push({
        log: line.text + "\n",
        stream: line.stream,
        time: dockerTime(i),
      });
    }
    await appendDockerLogEntries(root, "vllm-bench", entries);
  }
}

async function endToEndThroughput(
  mix: { stream: StreamName; text: string }[],
  lines: number,
) {
  const dir = await Deno.makeTempDir();
  await storeHistory(`${dir}/docker`, mix, lines);
  // The mix groups 120 lines into 97 events.
  const expectedEvents = Math.floor(lines / mix.length) * 97;
  const started = performance.now();
  const child = startLogger(`${dir}/docker`, `${dir}/logs`);
  const countLines = lineCounter(`${dir}/logs`);
  while (await countLines() < expectedEvents) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  child.kill("SIGTERM");
  await child.status;
  await Deno.remove(dir, { recursive: true });
  return { linesPerSecond: lines / seconds, seconds };
}

async function followLive(
  mix: { stream: StreamName; text: string }[],
  seconds: number,
  rate: number,
) {
  const dir = await Deno.makeTempDir();
  const root = `${dir}/docker`;
  await createContainer(root, "vllm-bench", { running: true });
  const child = startLogger(root, `${dir}/logs`);
  await new Promise((r) => setTimeout(r, 2000));
  const before = processUsage(child.pid);
  const rss: number[] = [];
  let index = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const tick = performance.now();
    const entries = [];
    for (let i = 0; i < rate / 10; i++, index++) {
      const line = mix[index % mix.length]!;
      entries.push({
        log: line.text + "\n",
        stream: line.stream,
        time: new Date().toISOString().replace("Z", "000000Z"),
      });
    }
    await appendDockerLogEntries(root, "vllm-bench", entries);
    if (index % rate === 0) rss.push(processUsage(child.pid).rssMiB);
    await new Promise((r) =>
      setTimeout(r, Math.max(0, 100 - (performance.now() - tick)))
    );
  }
  const elapsed = (performance.now() - started) / 1000;
  const after = processUsage(child.pid);
  await setContainerRunning(root, "vllm-bench", false);
  child.kill("SIGTERM");
  await child.status;
  await Deno.remove(dir, { recursive: true });
  return {
    lines: index,
    cpuShare: (after.cpuSeconds - before.cpuSeconds) / elapsed,
    rssFirst: rss[0] ?? NaN,
    rssLast: rss.at(-1) ?? NaN,
    rssPeak: Math.max(...rss),
    rssEvery30s: rss.filter((_, i) => i % 30 === 0),
  };
}

const mix = await fixtureMix();
console.log(
  `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${Deno.build.target}`,
);
const inProcess = await inProcessThroughput(mix, 600_000);
console.log(
  `in-process pipeline (split, group, JSON, append): ${
    Math.round(inProcess).toLocaleString("en")
  } lines/s`,
);
const endToEnd = await endToEndThroughput(mix, 240_000);
console.log(
  `logger process reading 240,000 history lines from the fake docker: ${
    Math.round(endToEnd.linesPerSecond).toLocaleString("en")
  } lines/s (${endToEnd.seconds.toFixed(1)} s, docker process included)`,
);
const live = await followLive(mix, followSeconds, 1000);
console.log(
  `following 1,000 lines/s for ${followSeconds} s: logger CPU ${
    (live.cpuShare * 100).toFixed(1)
  }% of one core, ` +
    `RSS first ${live.rssFirst.toFixed(1)} MiB, last ${
      live.rssLast.toFixed(1)
    } MiB, peak ${live.rssPeak.toFixed(1)} MiB; every 30 s: ${
      live.rssEvery30s.map((value) => value.toFixed(0)).join(", ")
    } MiB`,
);
