import assert from "node:assert/strict";
import {
  appendDockerLog,
  appendDockerLogEntries,
  appendDockerLogLines,
  containerLogPath,
  createContainer,
  type DockerLogEntry,
  formatTimestamp,
  parseDockerLogEntry,
  parseTimestampNanos,
  removeContainer,
  serializeEntry,
  setContainerRunning,
  splitLineLikeDocker,
} from "../../src/simulate/docker_store.ts";

const DOCKER = new URL("../../scripts/fake-docker/docker", import.meta.url)
  .pathname;
const decoder = new TextDecoder();

interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment of the fake docker for one test. */
function dockerEnv(root: string): Record<string, string> {
  return {
    FAKE_DOCKER_ROOT: root,
    FAKE_DOCKER_LOG: `${root}/calls.jsonl`,
    HOROS_DENO: Deno.execPath(),
  };
}

async function runDocker(root: string, args: string[]): Promise<DockerResult> {
  const output = await new Deno.Command(DOCKER, {
    args,
    env: dockerEnv(root),
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function spawnDocker(root: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(DOCKER, {
    args,
    env: dockerEnv(root),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Collects a stream's text in the background. */
function collect(stream: ReadableStream<Uint8Array>): {
  text: () => string;
  done: Promise<void>;
} {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
    }
  })();
  return { text: () => text, done };
}

async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function withRoot(body: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "fake-docker-" });
  try {
    await body(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function readEntries(
  root: string,
  container: string,
): Promise<DockerLogEntry[]> {
  const text = await Deno.readTextFile(containerLogPath(root, container));
  return text.trimEnd().split("\n").map(parseDockerLogEntry);
}

const T1 = "2026-11-17T09:14:03.903258690Z";
const T2 = "2026-11-17T09:14:04.000000001Z";
const T3 = "2026-11-17T09:14:05.5Z";

Deno.test("fake docker missing container", async () => {
  await withRoot(async (root) => {
    const result = await runDocker(root, ["logs", "--follow", "ghost"]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      "Error response from daemon: No such container: ghost\n",
    );
    assert.equal(result.stdout, "");
  });
});

Deno.test("fake docker history on both streams", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    await appendDockerLogLines(root, "c1", [
      { stream: "stdout", text: "out one", time: T1 },
      { stream: "stderr", text: "\rLoading 50%", time: T2 },
      { stream: "stdout", text: "out two\r", time: T3 },
    ]);

    await t.step("with timestamps", async () => {
      const result = await runDocker(root, ["logs", "--timestamps", "c1"]);
      assert.equal(result.code, 0);
      assert.equal(
        result.stdout,
        `${T1} out one\n2026-11-17T09:14:05.500000000Z out two\r\n`,
      );
      assert.equal(result.stderr, `${T2} \rLoading 50%\n`);
    });
    await t.step("without timestamps", async () => {
      const result = await runDocker(root, ["logs", "c1"]);
      assert.equal(result.stdout, "out one\nout two\r\n");
      assert.equal(result.stderr, "\rLoading 50%\n");
    });
    await t.step("tail keeps the last entries", async () => {
      const result = await runDocker(root, ["logs", "-n", "1", "c1"]);
      assert.equal(result.stdout, "out two\r\n");
      assert.equal(result.stderr, "");
    });
    await t.step("invocations are recorded", async () => {
      const calls = (await Deno.readTextFile(`${root}/calls.jsonl`))
        .trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(calls[0].argv, ["logs", "--timestamps", "c1"]);
      assert.deepEqual(calls.at(-1).argv, ["logs", "-n", "1", "c1"]);
    });
  });
});

Deno.test("fake docker since is inclusive", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    await appendDockerLogLines(root, "c1", [
      { stream: "stdout", text: "first", time: T1 },
      { stream: "stdout", text: "second", time: T2 },
      { stream: "stdout", text: "second again", time: T2 },
      { stream: "stdout", text: "third", time: T3 },
    ]);
    const since = async (value: string) =>
      (await runDocker(root, ["logs", "-t", "--since", value, "c1"])).stdout;

    await t.step("equal time comes again", async () => {
      assert.equal(
        await since(T2),
        `${T2} second\n${T2} second again\n2026-11-17T09:14:05.500000000Z third\n`,
      );
    });
    await t.step("one nanosecond later skips it", async () => {
      assert.equal(
        await since("2026-11-17T09:14:04.000000002Z"),
        "2026-11-17T09:14:05.500000000Z third\n",
      );
    });
    await t.step("unix seconds with a fraction", async () => {
      const seconds = Date.UTC(2026, 10, 17, 9, 14, 4) / 1000;
      assert.equal(
        await since(`${seconds}.000000001`),
        `${T2} second\n${T2} second again\n2026-11-17T09:14:05.500000000Z third\n`,
      );
    });
    await t.step("a zone offset", async () => {
      assert.equal(
        await since("2026-11-17T10:14:05.5+01:00"),
        "2026-11-17T09:14:05.500000000Z third\n",
      );
    });
    await t.step("until is inclusive and stops", async () => {
      const result = await runDocker(root, ["logs", "--until", T2, "c1"]);
      assert.equal(result.stdout, "first\nsecond\nsecond again\n");
    });
    await t.step("invalid value fails", async () => {
      const result = await runDocker(root, ["logs", "--since", "soon", "c1"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /failed to parse value as time or duration/);
    });
  });
});

Deno.test("fake docker follow", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "c1");
    await appendDockerLog(root, "c1", "stdout", "before");
    const child = spawnDocker(root, ["logs", "-ft", "c1"]);
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);

    await t.step("prints the history", async () => {
      await waitFor(() => stdout.text().includes(" before\n"), "history");
    });
    await t.step("picks up appended lines", async () => {
      await appendDockerLog(root, "c1", "stderr", "later on stderr");
      await appendDockerLog(root, "c1", "stdout", "later on stdout");
      await waitFor(
        () => stdout.text().includes(" later on stdout\n"),
        "the appended stdout line",
      );
      await waitFor(
        () => stderr.text().includes(" later on stderr\n"),
        "the appended stderr line",
      );
    });
    await t.step("exits 0 when the container stops", async () => {
      await appendDockerLog(root, "c1", "stdout", "last words");
      await setContainerRunning(root, "c1", false);
      const status = await child.status;
      await stdout.done;
      await stderr.done;
      assert.equal(status.code, 0);
      assert.match(stdout.text(), / last words\n$/);
      assert.equal(stdout.text().split("\n").length - 1, 3);
    });
  });
});

Deno.test("fake docker follow on a stopped container", async () => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    await appendDockerLog(root, "c1", "stdout", "history", T1);
    const started = performance.now();
    const result = await runDocker(root, ["logs", "--follow", "c1"]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, "history\n");
    assert.ok(performance.now() - started < 5_000);
  });
});

Deno.test("fake docker waits for a torn entry", async () => {
  await withRoot(async (root) => {
    await createContainer(root, "c1");
    const entry = serializeEntry({
      log: "whole\n",
      stream: "stdout",
      time: T1,
    });
    const half = Math.floor(entry.length / 2);
    const path = containerLogPath(root, "c1");
    await Deno.writeTextFile(path, entry.slice(0, half), { append: true });
    const child = spawnDocker(root, ["logs", "-f", "c1"]);
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(stdout.text(), "");
    await Deno.writeTextFile(path, entry.slice(half), { append: true });
    await waitFor(() => stdout.text() === "whole\n", "the completed entry");
    await setContainerRunning(root, "c1", false);
    assert.equal((await child.status).code, 0);
    await stdout.done;
    await stderr.done;
    assert.equal(stdout.text(), "whole\n");
    assert.equal(stderr.text(), "");
  });
});

Deno.test("fake docker stops on SIGTERM", async () => {
  await withRoot(async (root) => {
    await createContainer(root, "c1");
    await appendDockerLog(root, "c1", "stdout", "running");
    const child = spawnDocker(root, ["logs", "-f", "c1"]);
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    await waitFor(() => stdout.text() === "running\n", "the first line");
    child.kill("SIGTERM");
    const status = await child.status;
    await stdout.done;
    await stderr.done;
    assert.equal(status.code, 0);
    assert.equal(stderr.text(), "");
  });
});

Deno.test("fake docker stops when the reader goes", async () => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    const lines = Array.from(
      { length: 50_000 },
      (_, i) => ({
        stream: "stdout" as const,
        text: `line ${i} ${"x".repeat(80)}`,
      }),
    );
    await appendDockerLogLines(root, "c1", lines);
    const child = spawnDocker(root, ["logs", "-t", "c1"]);
    const reader = child.stdout.getReader();
    const first = await reader.read();
    assert.ok(first.value !== undefined);
    assert.ok(first.value.length > 0);
    await reader.cancel();
    const stderr = collect(child.stderr);
    const status = await child.status;
    await stderr.done;
    assert.equal(status.code, 0);
    assert.equal(stderr.text(), "");
  });
});

Deno.test("fake docker prints 2000 lines/s", async () => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    const count = 20_000;
    const lines = Array.from({ length: count }, (_, i) => ({
      stream: i % 5 === 0 ? "stderr" as const : "stdout" as const,
      text: `(APIServer pid=1) INFO 11-17 09:14:03 [x.py:1] line ${i}`,
    }));
    await appendDockerLogLines(root, "c1", lines);
    const started = performance.now();
    const result = await runDocker(root, ["logs", "-t", "c1"]);
    const seconds = (performance.now() - started) / 1000;
    const printed = (result.stdout + result.stderr).split("\n").length - 1;
    assert.equal(printed, count);
    // 10 s is five times the time 20,000 lines may take at 2,000 lines/s.
    assert.ok(seconds < 10, `${count} lines took ${seconds} s`);
  });
});

Deno.test("fake docker splits long lines", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "c1", { running: false });
    const line = Array.from({ length: 40_000 }, (_, i) => String(i % 10)).join(
      "",
    );
    await appendDockerLog(root, "c1", "stdout", line);
    const entries = await readEntries(root, "c1");

    await t.step("stores three chunks", () => {
      assert.deepEqual(
        entries.map((entry) => entry.log.length),
        [16384, 16384, 7233],
      );
      assert.ok(!entries[0]!.log.endsWith("\n"));
      assert.ok(!entries[1]!.log.endsWith("\n"));
      assert.ok(entries[2]!.log.endsWith("\n"));
      assert.equal(entries.map((entry) => entry.log).join(""), `${line}\n`);
    });
    await t.step("chunks share the first chunk's time", () => {
      assert.equal(new Set(entries.map((entry) => entry.time)).size, 1);
    });
    await t.step("each chunk gets a timestamp prefix", async () => {
      const result = await runDocker(root, ["logs", "-t", "c1"]);
      const stamp = formatTimestamp(
        parseTimestampNanos(entries[0]!.time)!,
        "fixed",
      );
      assert.equal(
        result.stdout,
        `${stamp} ${entries[0]!.log}${stamp} ${entries[1]!.log}${stamp} ${
          entries[2]!.log
        }`,
      );
      assert.equal(result.stdout.split("\n").length, 2);
    });
    await t.step("older Docker gave each chunk its own time", async () => {
      await appendDockerLogLines(
        root,
        "c1",
        [{ stream: "stderr", text: line }],
        {
          partialTimestamps: "distinct",
        },
      );
      const distinct = (await readEntries(root, "c1")).slice(3);
      const times = distinct.map((entry) => parseTimestampNanos(entry.time)!);
      assert.equal(times.length, 3);
      assert.ok(times[0]! < times[1]!);
      assert.ok(times[1]! < times[2]!);
    });
  });
});

Deno.test("fake docker splits UTF-8 by bytes", async (t) => {
  // The euro sign is 3 bytes (E2 82 AC). After 16383 ASCII bytes, its
  // first byte ends chunk one and the other two start chunk two. Docker's
  // json-file writer stores each of these invalid bytes as U+FFFD, so the
  // character becomes three replacement characters.
  const line = `${"a".repeat(16383)}\u20ac${"b".repeat(10)}`;

  await t.step("store writes replacement characters", () => {
    assert.deepEqual(splitLineLikeDocker(line), [
      `${"a".repeat(16383)}\ufffd`,
      `\ufffd\ufffd${"b".repeat(10)}\n`,
    ]);
  });
  await t.step("a character that fits is kept", () => {
    const fits = `${"a".repeat(16380)}\u20ac`;
    assert.deepEqual(splitLineLikeDocker(fits), [`${fits}\n`]);
  });
  await t.step("docker logs prints them", async () => {
    await withRoot(async (root) => {
      await createContainer(root, "c1", { running: false });
      await appendDockerLog(root, "c1", "stdout", line);
      const result = await runDocker(root, ["logs", "c1"]);
      assert.equal(
        result.stdout,
        `${"a".repeat(16383)}\ufffd\ufffd\ufffd${"b".repeat(10)}\n`,
      );
    });
  });
});

Deno.test("docker store timestamps", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "c1");

    await t.step("automatic times strictly increase", async () => {
      for (let i = 0; i < 50; i++) {
        await appendDockerLog(root, "c1", "stdout", `line ${i}`);
      }
      await appendDockerLogLines(
        root,
        "c1",
        Array.from({ length: 50 }, (_, i) => ({
          stream: "stderr" as const,
          text: `batch ${i}`,
        })),
      );
      const times = (await readEntries(root, "c1")).map((entry) =>
        parseTimestampNanos(entry.time)!
      );
      assert.equal(times.length, 100);
      for (let i = 1; i < times.length; i++) {
        assert.ok(times[i]! > times[i - 1]!, `entry ${i} is not later`);
      }
    });
    await t.step("explicit times are kept as given", async () => {
      await appendDockerLog(root, "c1", "stdout", "old", T1);
      await appendDockerLog(root, "c1", "stdout", "old again", T1);
      await appendDockerLog(root, "c1", "stdout", "older", new Date(0));
      const last = (await readEntries(root, "c1")).slice(-3);
      assert.deepEqual(last.map((entry) => entry.time), [
        "2026-11-17T09:14:03.90325869Z",
        "2026-11-17T09:14:03.90325869Z",
        "1970-01-01T00:00:00Z",
      ]);
    });
    await t.step("invalid explicit time is rejected", async () => {
      await assert.rejects(
        appendDockerLog(root, "c1", "stdout", "x", "yesterday"),
        RangeError,
      );
    });
  });
});

Deno.test("docker store entries", async (t) => {
  await withRoot(async (root) => {
    await t.step("Go escaping of special characters", () => {
      assert.equal(
        serializeEntry({
          log: '<a href="x">&\t\u2028\n',
          stream: "stdout",
          time: T1,
        }),
        `{"log":"\\u003ca href=\\"x\\"\\u003e\\u0026\\u0009\\u2028\\n","stream":"stdout","time":"${T1}"}\n`,
      );
    });
    await t.step("raw partial entry is printed without newline", async () => {
      await createContainer(root, "raw", { running: false });
      await appendDockerLogEntries(root, "raw", [
        { log: "cut off", stream: "stdout", time: T1 },
      ]);
      const result = await runDocker(root, ["logs", "raw"]);
      assert.equal(result.stdout, "cut off");
    });
    await t.step("corrupt entry is reported and skipped", async () => {
      await Deno.writeTextFile(containerLogPath(root, "raw"), "not json\n", {
        append: true,
      });
      await appendDockerLog(root, "raw", "stdout", "after", T2);
      const result = await runDocker(root, ["logs", "raw"]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout, "cut offafter\n");
      assert.match(result.stderr, /Error grabbing logs/);
    });
    await t.step("missing container is an error", async () => {
      await assert.rejects(
        appendDockerLog(root, "nobody", "stdout", "x"),
        Deno.errors.NotFound,
      );
      await assert.rejects(
        setContainerRunning(root, "nobody", true),
        Deno.errors.NotFound,
      );
    });
    await t.step("invalid name is rejected", async () => {
      await assert.rejects(createContainer(root, "../escape"), RangeError);
    });
    await t.step("remove deletes the container", async () => {
      await removeContainer(root, "raw");
      const result = await runDocker(root, ["logs", "raw"]);
      assert.equal(result.code, 1);
      await removeContainer(root, "raw");
    });
  });
});

Deno.test("fake docker inspect and ps", async (t) => {
  await withRoot(async (root) => {
    await createContainer(root, "up");
    await createContainer(root, "down", { running: false });

    await t.step("inspect with a format", async () => {
      const result = await runDocker(root, [
        "inspect",
        "--format",
        "{{.Name}} {{.State.Running}}",
        "up",
        "down",
      ]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout, "/up true\n/down false\n");
    });
    await t.step("inspect a missing container", async () => {
      const result = await runDocker(root, ["inspect", "ghost"]);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "[]\n");
      assert.equal(result.stderr, "Error: No such object: ghost\n");
    });
    await t.step("ps lists running containers", async () => {
      const result = await runDocker(root, ["ps", "--format", "{{.Names}}"]);
      assert.equal(result.stdout, "up\n");
      const stopped = await runDocker(root, [
        "ps",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
      ]);
      assert.equal(stopped.stdout, "down\n");
      const all = await runDocker(root, [
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.State}}",
      ]);
      assert.equal(all.stdout, "down exited\nup running\n");
    });
    await t.step("version mentions fake", async () => {
      const result = await runDocker(root, ["--version"]);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /^Docker version .*fake/);
    });
    await t.step("unknown flag exits 125", async () => {
      const result = await runDocker(root, ["logs", "--colour", "up"]);
      assert.equal(result.code, 125);
      assert.match(result.stderr, /^unknown flag: --colour\n/);
    });
  });
});
