/**
 * Faults of log capture: `docker` missing, a container that does not exist
 * yet, a container restarting ten times in a few seconds, a logs command
 * that fails, a stopped container, a 64 MiB line, binary garbage and a line
 * of only `\r`. In each case the logger logs the episode once and backs
 * off. It writes every line docker still has exactly once.
 */
import assert from "node:assert/strict";
import { Logger } from "../../src/log.ts";
import { LogFollower } from "../../src/logs/follower.ts";
import {
  appendDockerLogEntries,
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
  setContainerRunning,
} from "../../src/simulate/docker_store.ts";
import {
  assertLinesExactlyOnce,
  delay,
  FAKE_DOCKER_DIR,
  LoggerProcess,
  NO_SANITIZERS,
  readDayFiles,
  waitUntil,
} from "./helpers.ts";

const BASE_MS = Date.UTC(2026, 10, 17, 9, 0, 0);

/** Line `i` of a generated stream: a quarter on stderr, one microsecond apart. */
function generatedLine(i: number): DockerLogLine {
  const ms = BASE_MS + Math.floor(i / 1000);
  const micros = String(i % 1000).padStart(3, "0");
  return {
    stream: i % 4 === 0 ? "stderr" : "stdout",
    text: `generated line ${i}`,
    time: new Date(ms).toISOString().replace("Z", `${micros}001Z`),
  };
}

function generatedLines(from: number, to: number): DockerLogLine[] {
  const lines: DockerLogLine[] = [];
  for (let i = from; i < to; i++) lines.push(generatedLine(i));
  return lines;
}

async function countRecords(logDir: string): Promise<number> {
  try {
    return (await readDayFiles(logDir)).length;
  } catch {
    return 0;
  }
}

/** Number of lines in a file, 0 when it does not exist. */
function countFileLines(path: string): number {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((line) => line)
      .length;
  } catch {
    return 0;
  }
}

/** Writes an executable shell script and returns its path. */
async function writeScript(path: string, body: string): Promise<string> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

const RESTART_MESSAGE = /^Log follower (exited|could not start)/;

Deno.test({
  name: "follower without docker on PATH",
  ...NO_SANITIZERS,
  fn: async () => {
    // docker missing: one clear line, retries with backoff, no crash, no files.
    const dir = await Deno.makeTempDir();
    await Deno.mkdir(`${dir}/empty-bin`);
    const logger = LoggerProcess.start(
      ["--container", "vllm-nodocker", "--log-dir", `${dir}/logs`],
      { path: `${dir}/empty-bin` },
    );
    try {
      const line = await logger.waitForLine(
        (line) => RESTART_MESSAGE.test(line.message),
        15_000,
        "the follower's first failure",
      );
      assert.equal(line.container, "vllm-nodocker");
      assert.match(String(line.err), /"docker" not found on PATH/);
      await delay(3500);
      assert.ok(await logger.isRunning());
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assert.equal(
        logger.lines.filter((line) => RESTART_MESSAGE.test(line.message))
          .length,
        1,
        `one line for the episode:\n${logger.stderrText()}`,
      );
      assert.throws(() => Deno.statSync(`${dir}/logs`), Deno.errors.NotFound);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower starts capturing when docker is installed later",
  ...NO_SANITIZERS,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    Deno.env.set("FAKE_DOCKER_ROOT", root);
    await Deno.mkdir(`${dir}/bin`);
    await createContainer(root, "vllm-late-docker");
    await appendDockerLogLines(
      root,
      "vllm-late-docker",
      generatedLines(0, 100),
    );
    const logLines: string[] = [];
    const follower = new LogFollower({
      container: "vllm-late-docker",
      command: [`${dir}/bin/docker`, "logs", "-f", "vllm-late-docker"],
      logDir,
      logger: new Logger({ sink: (line) => logLines.push(line) }),
      flushIntervalMs: 50,
      initialBackoffMs: 100,
      maxBackoffMs: 400,
    });
    try {
      await follower.start();
      await delay(500);
      assert.equal(await countRecords(logDir), 0);
      // Installed the way a package manager does: written, then renamed.
      await writeScript(
        `${dir}/docker.new`,
        `exec "${FAKE_DOCKER_DIR}/docker" "$@"`,
      );
      await Deno.rename(`${dir}/docker.new`, `${dir}/bin/docker`);
      await waitUntil(
        async () => await countRecords(logDir) >= 100,
        15_000,
        "the lines after docker appeared",
      );
      await follower.stop();
      assertLinesExactlyOnce(await readDayFiles(logDir), 100);
      const failures = logLines.map((line) => JSON.parse(line)).filter((
        line,
      ) => RESTART_MESSAGE.test(line.message));
      assert.equal(failures.length, 1, logLines.join("\n"));
      assert.match(failures[0].err, /not found/);
    } finally {
      await follower.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower waits for a container created later",
  ...NO_SANITIZERS,
  fn: async () => {
    // No such container: one line, backoff, then every line once.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    const logger = LoggerProcess.start(
      ["--container", "vllm-later", "--log-dir", logDir],
      { dockerRoot: root },
    );
    try {
      const line = await logger.waitForLine(
        (line) => RESTART_MESSAGE.test(line.message),
        15_000,
        "the first failure",
      );
      assert.match(String(line.err), /No such container: vllm-later/);
      await delay(1500);
      await createContainer(root, "vllm-later");
      await appendDockerLogLines(root, "vllm-later", generatedLines(0, 200));
      await waitUntil(
        async () => await countRecords(logDir) >= 200,
        15_000,
        "lines of the new container",
      );
      await appendDockerLogLines(root, "vllm-later", generatedLines(200, 300));
      await waitUntil(
        async () => await countRecords(logDir) >= 300,
        10_000,
        "lines logged while followed",
      );
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertLinesExactlyOnce(await readDayFiles(logDir), 300);
      const waits = logger.lines.filter((line) =>
        RESTART_MESSAGE.test(line.message) &&
        /No such container/.test(String(line.err))
      );
      assert.equal(waits.length, 1, logger.stderrText());
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower with ten container restarts in seconds",
  ...NO_SANITIZERS,
  fn: async () => {
    // Lines logged while stopped and while running are all captured once.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    const name = "vllm-flapping";
    await createContainer(root, name);
    const logger = LoggerProcess.start(
      ["--container", name, "--log-dir", logDir],
      { dockerRoot: root },
    );
    try {
      let next = 0;
      for (let restart = 0; restart < 10; restart++) {
        await appendDockerLogLines(root, name, generatedLines(next, next + 60));
        next += 60;
        await delay(150);
        await setContainerRunning(root, name, false);
        await appendDockerLogLines(root, name, generatedLines(next, next + 20));
        next += 20;
        await delay(100);
        await setContainerRunning(root, name, true);
        await delay(100);
      }
      await appendDockerLogLines(root, name, generatedLines(next, next + 100));
      next += 100;
      await waitUntil(
        async () => await countRecords(logDir) >= next,
        30_000,
        `${next} lines`,
      );
      await delay(300);
      assert.ok(await logger.isRunning());
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertLinesExactlyOnce(await readDayFiles(logDir), next);
      for (const line of logger.lines) {
        assert.notEqual(line.level, "error", JSON.stringify(line));
      }
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower with a failing logs command",
  ...NO_SANITIZERS,
  fn: async () => {
    // The command's stderr and exit code are logged once; retries back off.
    const dir = await Deno.makeTempDir();
    const script = await writeScript(
      `${dir}/failing-logs`,
      `echo "attempt $*" >> "${dir}/attempts"\n` +
        'echo "fatal: cannot connect to the log service" >&2\nexit 3',
    );
    const config = `${dir}/logger.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "log_capture:",
        `  output_dir: ${dir}/logs`,
        "containers:",
        "  - name: vllm-failing",
        `    logs_stream: ${script} logs -f vllm-failing`,
        "",
      ].join("\n"),
    );
    const logger = LoggerProcess.start(["run", "--config", config]);
    try {
      const line = await logger.waitForLine(
        (line) => RESTART_MESSAGE.test(line.message),
        15_000,
        "the first failure",
      );
      assert.equal(line.exit_code, 3);
      assert.equal(line.err, "fatal: cannot connect to the log service");
      assert.equal(line.container, "vllm-failing");
      // Attempts at about 0, 1 and 3 s with the backoff doubling from 1 s.
      await delay(4000);
      const attempts = countFileLines(`${dir}/attempts`);
      assert.ok(attempts >= 2, `${attempts} attempts: retried`);
      assert.ok(attempts <= 4, `${attempts} attempts: backed off`);
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assert.equal(
        logger.lines.filter((line) => RESTART_MESSAGE.test(line.message))
          .length,
        1,
        logger.stderrText(),
      );
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower of a stopped container backs off",
  ...NO_SANITIZERS,
  fn: async () => {
    // Replayed lines are not progress: no restart every second, no log flood.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    const calls = `${dir}/docker-calls.jsonl`;
    await createContainer(root, "vllm-stopped", { running: false });
    await appendDockerLogLines(root, "vllm-stopped", generatedLines(0, 10));
    const logger = LoggerProcess.start(
      ["--container", "vllm-stopped", "--log-dir", logDir],
      { dockerRoot: root, env: { FAKE_DOCKER_LOG: calls } },
    );
    try {
      await waitUntil(
        async () => await countRecords(logDir) >= 10,
        15_000,
        "the stored lines",
      );
      const firstCall = countFileLines(calls);
      await delay(5000);
      // Backoff 1, 2, 4 s: calls at about 1 and 3 s in the next five seconds.
      const more = countFileLines(calls) - firstCall;
      assert.ok(more <= 2, `${more} docker calls in 5 s`);
      const stopped = await logger.stop();
      assert.equal(stopped.code, 0);
      assertLinesExactlyOnce(await readDayFiles(logDir), 10);
      const restarts = logger.lines.filter((line) =>
        RESTART_MESSAGE.test(line.message)
      );
      assert.equal(restarts.length, 1, logger.stderrText());
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const MIB = 1024 * 1024;

Deno.test({
  name: "follower cuts a 64 MiB line to 1 MiB",
  ...NO_SANITIZERS,
  fn: async () => {
    // The cut line keeps its size in original_bytes; memory stays bounded.
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    const logDir = `${dir}/logs`;
    const name = "vllm-long-line";
    await createContainer(root, name);
    const logger = LoggerProcess.start(
      ["--container", name, "--log-dir", logDir],
      { dockerRoot: root },
    );
    try {
      await logger.waitForLine(
        (line) => line.message === "Logger started",
        15_000,
        "start",
      );
      await delay(300);
      const baseline = logger.sampleRss().rssKiB;
      // 32 Mi two-byte characters: 64 MiB of UTF-8.
      const long = "é".repeat(32 * MIB);
      await appendDockerLogLines(root, name, [
        generatedLine(0),
        { ...generatedLine(1), text: long },
        generatedLine(2),
      ]);
      await waitUntil(
        async () => {
          logger.sampleRss();
          return await countRecords(logDir) >= 3;
        },
        60_000,
        "the three lines",
      );
      const records = await readDayFiles(logDir);
      assert.equal(records.length, 3);
      const cut = records.find((record) => record.truncated === true);
      assert.ok(cut !== undefined, "a record marked truncated");
      assert.equal(cut.original_bytes, 64 * MIB);
      const kept = new TextEncoder().encode(String(cut.message)).length;
      assert.ok(kept <= MIB, `${kept} bytes kept`);
      assert.ok(kept > MIB - 4096, `${kept} bytes kept`);
      assert.ok(String(cut.message).startsWith("éé"));
      const others = records.filter((record) => record !== cut).map((
        record,
      ) => record.message);
      assert.deepEqual(others.sort(), ["generated line 0", "generated line 2"]);
      const growthMiB = (logger.peakRssKiB - baseline) / 1024;
      assert.ok(growthMiB < 160, `RSS grew by ${growthMiB.toFixed(0)} MiB`);
      assert.equal((await logger.stop()).code, 0);
    } finally {
      if (await logger.isRunning()) await logger.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "follower with binary garbage and bare carriage returns",
  ...NO_SANITIZERS,
  fn: async (t) => {
    const dir = await Deno.makeTempDir();
    const root = `${dir}/docker`;
    Deno.env.set("FAKE_DOCKER_ROOT", root);
    const logLines: string[] = [];
    const follow = (name: string, command: string[]) =>
      new LogFollower({
        container: name,
        command,
        logDir: `${dir}/logs/${name}`,
        logger: new Logger({ sink: (line) => logLines.push(line) }),
        flushIntervalMs: 50,
        quietFlushMs: 200,
        initialBackoffMs: 100,
        maxBackoffMs: 400,
      });
    try {
      await t.step(
        "raw bytes from a logs command become valid JSON",
        async () => {
          // Invalid UTF-8, NUL, ESC and DEL; each line still becomes one record.
          const garbage =
            "\\377\\376\\000\\033[31mred\\033[0m \\303\\050 \\177";
          const script = await writeScript(
            `${dir}/garbage-logs`,
            [
              "for i in 1 2 3; do",
              `  printf '2026-11-17T09:00:0%s.000000001Z ${garbage} %s\\n' "$i" "$i"`,
              "done",
              "printf '2026-11-17T09:00:04.000000001Z end\\n'",
              "exec sleep 60",
            ].join("\n"),
          );
          const follower = follow("vllm-garbage", [script, "logs"]);
          await follower.start();
          await waitUntil(
            async () => await countRecords(`${dir}/logs/vllm-garbage`) >= 4,
            10_000,
            "four records",
          );
          await follower.stop();
          const records = await readDayFiles(`${dir}/logs/vllm-garbage`);
          assert.equal(records.length, 4);
          for (const record of records.slice(0, 3)) {
            const message = String(record.message);
            assert.ok(message.includes("\uFFFD"), JSON.stringify(message));
            assert.ok(message.includes("red"), JSON.stringify(message));
            assert.ok(!message.includes("\x1b"), "ANSI codes removed");
          }
          assert.equal(records[3]!.message, "end");
        },
      );

      await t.step(
        "control characters from docker stay in one record",
        async () => {
          const name = "vllm-control";
          await createContainer(root, name);
          await appendDockerLogEntries(root, name, [
            {
              log: "\u0000\u0001\u0007 bell \u0008\u000b\u000c \ufffd\n",
              stream: "stdout",
              time: "2026-11-17T09:00:01.000000001Z",
            },
            {
              log: "after\n",
              stream: "stdout",
              time: "2026-11-17T09:00:02.000000001Z",
            },
          ]);
          const follower = follow(name, [
            `${FAKE_DOCKER_DIR}/docker`,
            "logs",
            "-f",
            name,
          ]);
          await follower.start();
          await waitUntil(
            async () => await countRecords(`${dir}/logs/${name}`) >= 2,
            10_000,
            "two records",
          );
          await follower.stop();
          const records = await readDayFiles(`${dir}/logs/${name}`);
          assert.equal(records.length, 2);
          assert.ok(String(records[0]!.message).includes("bell"));
          assert.equal(records[1]!.message, "after");
        },
      );

      await t.step("lines of only \\r add no text and lose none", async () => {
        // After cleaning, such a line is empty: it joins the event before it
        // (counted in line_count) or, with none held, has no text to write.
        const name = "vllm-carriage";
        await createContainer(root, name);
        await appendDockerLogEntries(root, name, [
          {
            log: "before\n",
            stream: "stdout",
            time: "2026-11-17T09:00:01.000000001Z",
          },
          {
            log: "\r\n",
            stream: "stdout",
            time: "2026-11-17T09:00:02.000000001Z",
          },
          {
            log: "\r\r\n",
            stream: "stderr",
            time: "2026-11-17T09:00:03.000000001Z",
          },
          {
            log: "after\n",
            stream: "stdout",
            time: "2026-11-17T09:00:04.000000001Z",
          },
          {
            log: "stderr after\n",
            stream: "stderr",
            time: "2026-11-17T09:00:05.000000001Z",
          },
        ]);
        const follower = follow(name, [
          `${FAKE_DOCKER_DIR}/docker`,
          "logs",
          "-f",
          name,
        ]);
        await follower.start();
        await waitUntil(
          async () => await countRecords(`${dir}/logs/${name}`) >= 3,
          10_000,
          "three records",
        );
        await delay(300);
        await follower.stop();
        assert.equal(follower.counters.linesRead, 5);
        const records = (await readDayFiles(`${dir}/logs/${name}`)).sort((
          a,
          b,
        ) => String(a.timestamp).localeCompare(String(b.timestamp)));
        assert.deepEqual(
          records.map((record) => record.message),
          ["before", "after", "stderr after"],
        );
        assert.equal(records[0]!.line_count, 2);
      });
      for (const line of logLines) {
        assert.notEqual(JSON.parse(line).level, "error", line);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
