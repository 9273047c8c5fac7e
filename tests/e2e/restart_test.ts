import assert from "node:assert/strict";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
  setContainerRunning,
} from "../../src/simulate/docker_store.ts";
import { readJsonl, startLogger, waitFor } from "./helpers.ts";

const CONTAINER = "vllm-restart";
const BASE_MS = Date.UTC(2026, 10, 17, 9, 0, 0);

/** Line `i` of the generated stream: alternating streams, one microsecond apart. */
function generatedLine(i: number): DockerLogLine {
  const ms = BASE_MS + Math.floor(i / 1000);
  const micros = String(i % 1000).padStart(3, "0");
  const time = new Date(ms).toISOString().replace("Z", `${micros}000Z`);
  return {
    stream: i % 4 === 0 ? "stderr" : "stdout",
    text: `generated line ${i}`,
    time,
  };
}

/** Appends lines [from, to) in batches, pausing between them, until the range is done. */
async function produce(
  root: string,
  from: number,
  to: number,
  batch = 50,
): Promise<void> {
  for (let i = from; i < to; i += batch) {
    const lines = [];
    for (let j = i; j < Math.min(to, i + batch); j++) {
      lines.push(generatedLine(j));
    }
    await appendDockerLogLines(root, CONTAINER, lines);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function messages(logDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(logDir)) {
    if (!entry.name.endsWith(".jsonl")) continue;
    for (const record of await readJsonl(`${logDir}/${entry.name}`)) {
      found.push(String(record.message));
    }
  }
  return found;
}

function assertExactLines(found: string[], total: number): void {
  const counts = new Map<string, number>();
  for (const message of found) {
    counts.set(message, (counts.get(message) ?? 0) + 1);
  }
  const duplicates = [...counts].filter(([, count]) => count > 1).map((
    [message],
  ) => message);
  assert.deepEqual(duplicates, [], "no line written twice");
  const missing = [];
  for (let i = 0; i < total; i++) {
    if (!counts.has(`generated line ${i}`)) missing.push(i);
  }
  assert.deepEqual(missing, [], "no line lost");
  assert.equal(found.length, total);
}

function loggerArgs(logDir: string): string[] {
  return ["--container", CONTAINER, "--log-dir", logDir];
}

async function stopLogger(
  child: Deno.ChildProcess,
  signal: Deno.Signal,
): Promise<Deno.CommandStatus> {
  child.kill(signal);
  const status = await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  return status;
}

const noLeaks = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "logger SIGTERM and restart keeps every line once",
  ...noLeaks,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    await createContainer(root, CONTAINER, { running: true });
    const total = 3000;
    const producing = produce(root, 0, total);
    let child = startLogger(loggerArgs(logDir), root);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal((await stopLogger(child, "SIGTERM")).code, 0);
    child = startLogger(loggerArgs(logDir), root);
    await producing;
    await waitFor(
      async () => (await messages(logDir)).length >= total,
      20_000,
      "every line",
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await stopLogger(child, "SIGTERM")).code, 0);
    assertExactLines(await messages(logDir), total);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "logger SIGKILL at random points loses and repeats nothing",
  ...noLeaks,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    await createContainer(root, CONTAINER, { running: true });
    const total = 4000;
    const producing = produce(root, 0, total, 40);
    for (let round = 0; round < 5; round++) {
      const child = startLogger(loggerArgs(logDir), root);
      await new Promise((resolve) =>
        setTimeout(resolve, 400 + Math.random() * 600)
      );
      await stopLogger(child, "SIGKILL");
    }
    await producing;
    await setContainerRunning(root, CONTAINER, false);
    const child = startLogger(loggerArgs(logDir), root);
    await waitFor(
      async () => (await messages(logDir)).length >= total,
      20_000,
      "every line",
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await stopLogger(child, "SIGTERM")).code, 0);
    assertExactLines(await messages(logDir), total);
    await Deno.remove(dir, { recursive: true });
  },
});
