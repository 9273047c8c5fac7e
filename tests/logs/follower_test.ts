import assert from "node:assert/strict";
import { Logger } from "../../src/log.ts";
import { LogFollower } from "../../src/logs/follower.ts";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
  setContainerRunning,
} from "../../src/simulate/docker_store.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const FAKE_DOCKER = `${REPO}scripts/fake-docker/docker`;
const DENO = Deno.env.get("HOROS_DENO") ?? Deno.execPath();

interface Harness {
  root: string;
  logDir: string;
  container: string;
  logLines: string[];
  follower(): LogFollower;
  records(): Promise<Record<string, unknown>[]>;
  cleanup(): Promise<void>;
}

async function harness(container = "vllm-t"): Promise<Harness> {
  const root = await Deno.makeTempDir();
  Deno.env.set("FAKE_DOCKER_ROOT", `${root}/docker`);
  Deno.env.set("HOROS_DENO", DENO);
  const logDir = `${root}/logs`;
  const logLines: string[] = [];
  return {
    root: `${root}/docker`,
    logDir,
    container,
    logLines,
    follower: () =>
      new LogFollower({
        container,
        command: [FAKE_DOCKER, "logs", "-f", container],
        logDir,
        logger: new Logger({
          sink: (line) => logLines.push(line),
          level: "debug",
        }),
        flushIntervalMs: 50,
        quietFlushMs: 200,
        initialBackoffMs: 50,
        maxBackoffMs: 200,
      }),
    records: async () => {
      const records: Record<string, unknown>[] = [];
      let names: string[] = [];
      try {
        names = [...Deno.readDirSync(logDir)].map((entry) => entry.name).filter(
          (name) => name.endsWith(".jsonl"),
        );
      } catch {
        return records;
      }
      for (const name of names.sort()) {
        const text = await Deno.readTextFile(`${logDir}/${name}`);
        for (const line of text.split("\n")) {
          if (line !== "") records.push(JSON.parse(line));
        }
      }
      return records;
    },
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
}

function stamp(second: number, nanos = 0): string {
  const base = new Date(Date.UTC(2026, 10, 17, 9, 0, 0) + second * 1000)
    .toISOString().slice(0, 19);
  return `${base}.${String(nanos).padStart(9, "0")}Z`;
}

/** Unique plain lines; each becomes one event. */
function lines(
  from: number,
  count: number,
  stream: "stdout" | "stderr" = "stdout",
  second?: number,
): DockerLogLine[] {
  return Array.from({ length: count }, (_, i) => ({
    stream,
    text: `${stream} line ${from + i}`,
    time: stamp(second ?? from + i, second === undefined ? 0 : i),
  }));
}

async function waitForRecords(
  h: Harness,
  count: number,
  timeoutMs = 15_000,
): Promise<Record<string, unknown>[]> {
  const deadline = performance.now() + timeoutMs;
  let records: Record<string, unknown>[] = [];
  while (performance.now() < deadline) {
    records = await h.records();
    if (records.length >= count) return records;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `expected ${count} records, found ${records.length}; log: ${
      h.logLines.slice(-5).join("\n")
    }`,
  );
}

/** Asserts each expected line is in the files exactly once and nothing else is. */
function assertExactlyOnce(
  records: Record<string, unknown>[],
  expected: DockerLogLine[],
): void {
  const seen = records.map((record) => `${record.stream}|${record.message}`)
    .sort();
  const wanted = expected.map((line) => `${line.stream}|${line.text}`).sort();
  assert.deepEqual(seen, wanted);
}

const noLeaks = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "follower resumes after a container restart",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    const first = lines(0, 50);
    await appendDockerLogLines(h.root, h.container, first);
    const follower = h.follower();
    await follower.start();
    await waitForRecords(h, 50);
    await setContainerRunning(h.root, h.container, false);
    const second = lines(50, 30);
    await appendDockerLogLines(h.root, h.container, second);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await setContainerRunning(h.root, h.container, true);
    const third = lines(80, 20, "stderr");
    await appendDockerLogLines(h.root, h.container, third);
    await waitForRecords(h, 100);
    await follower.stop();
    assertExactlyOnce(await h.records(), [...first, ...second, ...third]);
    assert.ok(follower.counters.restarts >= 1);
    await h.cleanup();
  },
});

Deno.test({
  name: "follower process killed repeatedly loses nothing",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    const follower = h.follower();
    await follower.start();
    const expected: DockerLogLine[] = [];
    for (let round = 0; round < 5; round++) {
      const batch = [
        ...lines(round * 20, 10),
        ...lines(round * 20 + 10, 10, "stderr"),
      ];
      expected.push(...batch);
      await appendDockerLogLines(h.root, h.container, batch);
      await waitForRecords(h, expected.length);
      const pid = follower.followerPid;
      if (pid !== null) Deno.kill(pid, "SIGKILL");
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
    await follower.stop();
    assertExactlyOnce(await h.records(), expected);
    await h.cleanup();
  },
});

Deno.test({
  name: "follower skips replayed lines with equal timestamps",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    // Ten lines share one timestamp, so --since returns all of them again.
    const same = Array.from(
      { length: 10 },
      (_, i) => ({
        stream: "stdout" as const,
        text: `same ${i}`,
        time: stamp(5),
      }),
    );
    const repeated = [{
      stream: "stdout" as const,
      text: "same 0",
      time: stamp(5),
    }];
    await appendDockerLogLines(h.root, h.container, same.slice(0, 6));
    const follower = h.follower();
    await follower.start();
    await waitForRecords(h, 6);
    await setContainerRunning(h.root, h.container, false);
    await appendDockerLogLines(h.root, h.container, [
      ...same.slice(6),
      ...repeated,
    ]);
    await setContainerRunning(h.root, h.container, true);
    await waitForRecords(h, 11);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await follower.stop();
    const records = await h.records();
    assert.equal(records.length, 11);
    assert.equal(
      records.filter((record) => record.message === "same 0").length,
      2,
    );
    await h.cleanup();
  },
});

Deno.test({
  name: "follower keeps out-of-order stderr lines across a restart",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    const stdoutFirst = lines(0, 5, "stdout", 30);
    const stderrEarly = lines(100, 3, "stderr", 10);
    await appendDockerLogLines(h.root, h.container, [
      ...stderrEarly,
      ...stdoutFirst,
    ]);
    const follower = h.follower();
    await follower.start();
    await waitForRecords(h, 8);
    await setContainerRunning(h.root, h.container, false);
    // stderr lines stamped before the newest stdout line, stored after it.
    const stderrLate = lines(200, 3, "stderr", 20);
    const stdoutLate = lines(300, 2, "stdout", 31);
    await appendDockerLogLines(h.root, h.container, [
      ...stderrLate,
      ...stdoutLate,
    ]);
    await setContainerRunning(h.root, h.container, true);
    await waitForRecords(h, 13);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await follower.stop();
    assertExactlyOnce(await h.records(), [
      ...stderrEarly,
      ...stdoutFirst,
      ...stderrLate,
      ...stdoutLate,
    ]);
    await h.cleanup();
  },
});

Deno.test({
  name: "follower waits for a container that does not exist yet",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    const follower = h.follower();
    await follower.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(
      h.logLines.some((line) => line.includes("No such container")),
      h.logLines.join("\n"),
    );
    await createContainer(h.root, h.container, { running: false });
    const history = lines(0, 5);
    await appendDockerLogLines(h.root, h.container, history);
    await waitForRecords(h, 5);
    await setContainerRunning(h.root, h.container, true);
    const live = lines(5, 5);
    await appendDockerLogLines(h.root, h.container, live);
    await waitForRecords(h, 10);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await follower.stop();
    assertExactlyOnce(await h.records(), [...history, ...live]);
    await h.cleanup();
  },
});

Deno.test({
  name: "follower splits a burst across UTC midnight",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    const burst: DockerLogLine[] = [
      {
        stream: "stdout",
        text: "before midnight",
        time: "2026-11-17T23:59:59.999999999Z",
      },
      {
        stream: "stderr",
        text: "at midnight",
        time: "2026-11-18T00:00:00.000000000Z",
      },
      {
        stream: "stdout",
        text: "after midnight",
        time: "2026-11-18T00:00:00.000000001Z",
      },
      {
        stream: "stdout",
        text: "late old event",
        time: "2026-11-17T12:00:00.000000000Z",
      },
    ];
    await appendDockerLogLines(h.root, h.container, burst);
    const follower = h.follower();
    await follower.start();
    await waitForRecords(h, 4);
    await follower.stop();
    const day17 = await Deno.readTextFile(`${h.logDir}/2026-11-17.jsonl`);
    const day18 = await Deno.readTextFile(`${h.logDir}/2026-11-18.jsonl`);
    assert.deepEqual(
      day17.trim().split("\n").map((line) => JSON.parse(line).message).sort(),
      [
        "before midnight",
        "late old event",
      ],
    );
    assert.deepEqual(
      day18.trim().split("\n").map((line) => JSON.parse(line).message).sort(),
      [
        "after midnight",
        "at midnight",
      ],
    );
    await h.cleanup();
  },
});

Deno.test({
  name: "follower joins lines Docker split into 16 KiB chunks",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    // 47,000 bytes: three chunks, each boundary between two characters.
    const long = "x".repeat(13_000) + "é".repeat(7_000) + "y".repeat(20_000);
    const json = JSON.stringify({ payload: "z".repeat(19_980), n: 1 });
    assert.equal(long.length, 40_000);
    assert.equal(json.length, 20_000);
    await appendDockerLogLines(h.root, h.container, [
      { stream: "stdout", text: long, time: stamp(1) },
      { stream: "stdout", text: json, time: stamp(2) },
    ], { partialTimestamps: "distinct" });
    const follower = h.follower();
    await follower.start();
    const records = await waitForRecords(h, 2);
    await follower.stop();
    assert.equal(records.length, 2);
    const messages = records.map((record) => record.message);
    assert.ok(
      messages.includes(long),
      "the long line is one event with its exact text",
    );
    assert.ok(
      messages.includes(json),
      "the JSON line is one event with its exact text",
    );
    await h.cleanup();
  },
});

Deno.test({
  name: "follower writes a line that never gets its newline",
  ...noLeaks,
  fn: async () => {
    const h = await harness();
    await createContainer(h.root, h.container, { running: true });
    const logPath = `${h.root}/${h.container}/log.jsonl`;
    const entry = {
      log: "progress without newline",
      stream: "stdout",
      time: stamp(1),
    };
    await Deno.writeTextFile(logPath, JSON.stringify(entry) + "\n", {
      append: true,
    });
    const follower = h.follower();
    await follower.start();
    const records = await waitForRecords(h, 1);
    assert.equal(records[0]!.message, "progress without newline");
    await follower.stop();
    assert.equal((await h.records()).length, 1);
    await h.cleanup();
  },
});
