/**
 * Invalid configurations, through the real command line: every one exits
 * with code 2, names the file (or flag) and the key that is wrong and how
 * to fix it, and writes nothing: no database file, no log directory.
 */
import assert from "node:assert/strict";
import { listTree, runCli } from "./helpers.ts";

/** A configuration file case: YAML text and what the message must contain. */
interface FileCase {
  name: string;
  yaml: string;
  /** Key path the message must name; empty for the whole file. */
  key: string;
  /** Other text the message must contain (the reason or the fix). */
  message: RegExp;
}

// In the YAML of a case and in the arguments, `{dir}` becomes the case's
// own directory.
const VALID_CONTAINER = [
  "containers:",
  "  - name: vllm-a",
  "    metrics_endpoint: http://127.0.0.1:9/metrics",
].join("\n");

function withPaths(body: string): string {
  return [
    "log_capture:",
    "  output_dir: {dir}/logs",
    "metrics_scraper:",
    "  db_path: {dir}/metrics.db",
    body,
  ].join("\n");
}

const FILE_CASES: FileCase[] = [
  {
    name: "unknown top-level key",
    yaml: `log_captur:\n  output_dir: {dir}/logs\n${VALID_CONTAINER}`,
    key: "log_captur",
    message: /unknown key.*spelling/,
  },
  {
    name: "unknown nested key",
    yaml: [
      "metrics_scraper:",
      "  db_path: {dir}/metrics.db",
      "  intervall_seconds: 5",
      VALID_CONTAINER,
    ].join("\n"),
    key: "metrics_scraper.intervall_seconds",
    message: /unknown key/,
  },
  {
    name: "interval as a string",
    yaml: withPaths(`  interval_seconds: "5"\n${VALID_CONTAINER}`),
    key: "metrics_scraper.interval_seconds",
    message: /number/,
  },
  {
    name: "negative interval",
    yaml: withPaths(`  interval_seconds: -1\n${VALID_CONTAINER}`),
    key: "metrics_scraper.interval_seconds",
    message: /more than 0/,
  },
  {
    name: "interval over an hour",
    yaml: withPaths(`  interval_seconds: 7200\n${VALID_CONTAINER}`),
    key: "metrics_scraper.interval_seconds",
    message: /3600/,
  },
  {
    name: "timeout not shorter than the interval",
    yaml: withPaths(
      `  interval_seconds: 2\n  timeout_seconds: 3\n${VALID_CONTAINER}`,
    ),
    key: "metrics_scraper.timeout_seconds",
    message: /shorter than interval_seconds/,
  },
  {
    name: "zero retention",
    yaml: [
      "log_capture:",
      "  output_dir: {dir}/logs",
      "  retention_days: 0",
      "metrics_scraper:",
      "  db_path: {dir}/metrics.db",
      VALID_CONTAINER,
    ].join("\n"),
    key: "log_capture.retention_days",
    message: />=1|at least|greater/i,
  },
  {
    name: "unknown compression",
    yaml: [
      "log_capture:",
      "  output_dir: {dir}/logs",
      "  compression: zip",
      VALID_CONTAINER,
    ].join("\n"),
    key: "log_capture.compression",
    message: /gzip/,
  },
  {
    name: "output_dir as a number",
    yaml: `log_capture:\n  output_dir: 17\n${VALID_CONTAINER}`,
    key: "log_capture.output_dir",
    message: /string/,
  },
  {
    name: "no containers key",
    yaml: "log_capture:\n  output_dir: {dir}/logs\n",
    key: "containers",
    message: /is missing: it must be a list/,
  },
  {
    name: "empty container list",
    yaml: "log_capture:\n  output_dir: {dir}/logs\ncontainers: []\n",
    key: "containers",
    message: /at least one container/,
  },
  ...["../x", "/abs", "a/b", "", ".hidden"].map((name): FileCase => ({
    name: `container name ${JSON.stringify(name)}`,
    yaml: withPaths(
      `containers:\n  - name: ${
        JSON.stringify(name)
      }\n    metrics_endpoint: http://127.0.0.1:9/metrics`,
    ),
    key: "containers[0].name",
    message: /letter or digit.*directory name/,
  })),
  {
    name: "container listed twice",
    yaml: withPaths(
      "containers:\n  - name: vllm-a\n  - name: vllm-a",
    ),
    key: "containers[1].name",
    message: /listed twice/,
  },
  ...[
    "ftp://127.0.0.1/metrics",
    "file:///etc/passwd",
    "data:text/plain,up 1",
    "127.0.0.1:8001/metrics",
  ].map((url): FileCase => ({
    name: `endpoint ${url}`,
    yaml: withPaths(
      `containers:\n  - name: vllm-a\n    metrics_endpoint: "${url}"`,
    ),
    key: "containers[0].metrics_endpoint",
    message: /http:\/\/ or https:\/\//,
  })),
  {
    name: "logs_stream with an unclosed quote",
    yaml: withPaths(
      `containers:\n  - name: vllm-a\n    logs_stream: "docker logs 'vllm-a"`,
    ),
    key: "containers[0].logs_stream",
    message: /Unclosed ' quote/,
  },
  {
    name: "empty logs_stream",
    yaml: withPaths(`containers:\n  - name: vllm-a\n    logs_stream: "  "`),
    key: "containers[0].logs_stream",
    message: /empty|at least/,
  },
  {
    name: "YAML syntax error",
    yaml: "log_capture:\n  output_dir: [unclosed\ncontainers:\n  - name: a\n",
    key: "",
    message: /invalid YAML at line \d+/,
  },
  {
    name: "duplicate YAML key",
    yaml: "containers:\n  - name: a\ncontainers:\n  - name: b\n",
    key: "",
    message: /invalid YAML/,
  },
  {
    name: "empty file",
    yaml: "",
    key: "",
    message: /empty/,
  },
  {
    name: "a list instead of a mapping",
    yaml: "- name: vllm-a\n",
    key: "",
    message: /object|mapping/i,
  },
];

/** A flag-form case: arguments (with `{dir}`) and what the message must contain. */
interface FlagCase {
  name: string;
  args: string[];
  message: RegExp;
}

const FLAG_CASES: FlagCase[] = [
  ...["../x", "/abs", "a/b", ""].map((name): FlagCase => ({
    name: `--container ${JSON.stringify(name)}`,
    args: ["--container", name, "--log-dir", "{dir}/logs"],
    message: /--container.*not a valid container name/,
  })),
  {
    name: "--metrics-port out of range",
    args: [
      "--container",
      "vllm-a",
      "--metrics-port",
      "70000",
      "--db",
      "{dir}/metrics.db",
    ],
    message: /--metrics-port.*65535/,
  },
  {
    name: "--metrics-port without --db",
    args: ["--container", "vllm-a", "--metrics-port", "8001"],
    message: /--db.*required/,
  },
  {
    name: "--metrics-url with file://",
    args: [
      "--container",
      "vllm-a",
      "--metrics-url",
      "file:///etc/passwd",
      "--db",
      "{dir}/metrics.db",
    ],
    message: /--metrics-url.*http:\/\/ or https:\/\//,
  },
  {
    name: "--metrics-url with ftp://",
    args: [
      "--container",
      "vllm-a",
      "--metrics-url",
      "ftp://127.0.0.1/metrics",
      "--db",
      "{dir}/metrics.db",
    ],
    message: /--metrics-url.*http:\/\/ or https:\/\//,
  },
  {
    name: "--container alone",
    args: ["--container", "vllm-a"],
    message: /nothing to do/,
  },
  {
    name: "--interval-seconds 0",
    args: [
      "--container",
      "vllm-a",
      "--log-dir",
      "{dir}/logs",
      "--interval-seconds",
      "0",
    ],
    message: /positive number/,
  },
  {
    name: "--logs-stream with an unclosed quote",
    args: [
      "--container",
      "vllm-a",
      "--log-dir",
      "{dir}/logs",
      "--logs-stream",
      "docker logs 'vllm-a",
    ],
    message: /--logs-stream.*Unclosed/,
  },
  {
    name: "empty --logs-stream",
    args: [
      "--container",
      "vllm-a",
      "--log-dir",
      "{dir}/logs",
      "--logs-stream",
      " ",
    ],
    message: /--logs-stream.*empty/,
  },
  {
    name: "--config with --container",
    args: ["run", "--config", "{dir}/valid.yaml", "--container", "vllm-a"],
    message: /--config conflicts/,
  },
  {
    name: "--config with --interval-seconds",
    args: ["run", "--config", "{dir}/valid.yaml", "--interval-seconds", "1"],
    message: /--config conflicts with --interval-seconds/,
  },
  {
    name: "--config with --logs-stream",
    args: [
      "run",
      "--config",
      "{dir}/valid.yaml",
      "--logs-stream",
      "docker logs -f vllm-a",
    ],
    message: /--config conflicts with --logs-stream/,
  },
  {
    name: "missing --config file",
    args: ["run", "--config", "{dir}/missing.yaml"],
    message:
      /missing\.yaml: file not found; pass an existing file with --config/,
  },
  {
    name: "--config names a directory",
    args: ["run", "--config", "{dir}"],
    message: /cannot be read/,
  },
  {
    name: "unknown flag",
    args: ["--container", "vllm-a", "--log-dirr", "{dir}/logs"],
    message: /unknown option '--log-dirr'/,
  },
];

/** Runs `cases` with at most `limit` subprocesses at a time. */
async function inBatches<T>(
  cases: readonly T[],
  limit: number,
  run: (item: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < cases.length; i += limit) {
    await Promise.all(cases.slice(i, i + limit).map(run));
  }
}

Deno.test("invalid configuration files exit 2 and write nothing", async (t) => {
  const root = await Deno.makeTempDir();
  const results = new Map<string, { code: number; stderr: string }>();
  try {
    await inBatches(FILE_CASES, 4, async (testCase) => {
      const dir = `${root}/case-${FILE_CASES.indexOf(testCase)}`;
      await Deno.mkdir(dir);
      const file = `${dir}/logger.yaml`;
      await Deno.writeTextFile(file, testCase.yaml.replaceAll("{dir}", dir));
      const result = await runCli(["run", "--config", file]);
      // Nothing but the configuration file itself.
      assert.deepEqual(listTree(dir), ["logger.yaml"], testCase.name);
      results.set(testCase.name, {
        code: result.code,
        stderr: result.stderr.replaceAll(file, "FILE"),
      });
    });
    for (const testCase of FILE_CASES) {
      await t.step(testCase.name, () => {
        const result = results.get(testCase.name)!;
        assert.equal(result.code, 2, result.stderr);
        const where = testCase.key === ""
          ? "FILE: "
          : `FILE: ${testCase.key}: `;
        assert.ok(
          result.stderr.startsWith(`error: invalid configuration: ${where}`),
          result.stderr,
        );
        assert.match(result.stderr, testCase.message);
        assert.equal(result.stderr.trim().split("\n").length, 1);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("invalid flags exit 2 and write nothing", async (t) => {
  const root = await Deno.makeTempDir();
  const results = new Map<
    string,
    { code: number; stderr: string; written: string[] } | { error: unknown }
  >();
  try {
    await inBatches(FLAG_CASES, 4, async (testCase) => {
      const dir = `${root}/case-${FLAG_CASES.indexOf(testCase)}`;
      await Deno.mkdir(dir);
      await Deno.writeTextFile(
        `${dir}/valid.yaml`,
        withPaths(VALID_CONTAINER).replaceAll("{dir}", dir) + "\n",
      );
      const args = testCase.args.map((arg) => arg.replaceAll("{dir}", dir));
      try {
        const result = await runCli(args);
        results.set(testCase.name, { ...result, written: listTree(dir) });
      } catch (error) {
        results.set(testCase.name, { error });
      }
    });
    for (const testCase of FLAG_CASES) {
      await t.step(testCase.name, () => {
        const result = results.get(testCase.name)!;
        if ("error" in result) throw result.error;
        assert.deepEqual(result.written, ["valid.yaml"], "nothing written");
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, /^error: /);
        assert.match(result.stderr, testCase.message);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
