import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  ConfigError,
  configFromDocument,
  configFromFlags,
  loadConfigFile,
  splitCommand,
} from "../../src/config/config.ts";

/** Runs `fn` and returns what it throws; fails when it throws nothing. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

Deno.test("shipped configuration loads with documented defaults", async () => {
  const config = await loadConfigFile(
    new URL("../../configs/vllm_logger.yaml", import.meta.url).pathname,
  );
  assert.equal(config.outputDir, "/data/vllm_logs");
  assert.equal(config.intervalMs, 5000);
  assert.equal(config.timeoutMs, 4000);
  assert.equal(config.dbPath, "/data/vllm_metrics.db");
  assert.equal(config.containers.length, 2);
  assert.deepEqual(config.containers[0]!.logsCommand, [
    "docker",
    "logs",
    "-f",
    "vllm-vision",
  ]);
  assert.deepEqual(config.containers[1]!.logsCommand, [
    "docker",
    "logs",
    "-f",
    "vllm-think",
  ]);
  assert.equal(config.containers[0]!.logDir, "/data/vllm_logs/vllm-vision");
  assert.equal(
    config.containers[1]!.metricsEndpoint,
    "http://localhost:8002/metrics",
  );
});

Deno.test("invalid configurations name the key and the fix", async (t) => {
  const cases: {
    name: string;
    yaml: string;
    keyPath: string;
    fragment: string;
  }[] = [
    {
      name: "unknown top-level key",
      yaml: "containers: [{name: a}]\nlog_captur: {}\n",
      keyPath: "log_captur",
      fragment: "unknown key",
    },
    {
      name: "unknown nested key",
      yaml: "containers: [{name: a, metrics_url: http://x}]\n",
      keyPath: "containers[0].metrics_url",
      fragment: "unknown key",
    },
    {
      name: "wrong type",
      yaml:
        "containers: [{name: a}]\nmetrics_scraper: {interval_seconds: five}\n",
      keyPath: "metrics_scraper.interval_seconds",
      fragment: "must be a number, not a string",
    },
    {
      name: "negative interval",
      yaml:
        "containers: [{name: a}]\nmetrics_scraper: {interval_seconds: -1}\n",
      keyPath: "metrics_scraper.interval_seconds",
      fragment: "",
    },
    {
      name: "name escaping the output directory",
      yaml: "containers: [{name: ../x}]\n",
      keyPath: "containers[0].name",
      fragment: "directory name",
    },
    {
      name: "absolute name",
      yaml: "containers: [{name: /abs}]\n",
      keyPath: "containers[0].name",
      fragment: "",
    },
    {
      name: "name with a slash",
      yaml: "containers: [{name: a/b}]\n",
      keyPath: "containers[0].name",
      fragment: "",
    },
    {
      name: "empty name",
      yaml: "containers: [{name: ''}]\n",
      keyPath: "containers[0].name",
      fragment: "",
    },
    {
      name: "endpoint that is not http",
      yaml: "containers: [{name: a, metrics_endpoint: 'file:///etc/passwd'}]\n",
      keyPath: "containers[0].metrics_endpoint",
      fragment: "http://",
    },
    {
      name: "no containers",
      yaml: "containers: []\n",
      keyPath: "containers",
      fragment: "at least one",
    },
    {
      name: "container listed twice",
      yaml: "containers: [{name: a}, {name: a}]\n",
      keyPath: "containers[1].name",
      fragment: "twice",
    },
    {
      name: "timeout not below interval",
      yaml:
        "containers: [{name: a}]\nmetrics_scraper: {interval_seconds: 2, timeout_seconds: 2}\n",
      keyPath: "metrics_scraper.timeout_seconds",
      fragment: "shorter than interval_seconds",
    },
    {
      name: "unclosed quote in logs_stream",
      yaml: 'containers: [{name: a, logs_stream: "docker logs \'a"}]\n',
      keyPath: "containers[0].logs_stream",
      fragment: "Unclosed",
    },
  ];
  for (const testCase of cases) {
    await t.step(testCase.name, () => {
      const error = thrownBy(() =>
        configFromDocument("test.yaml", parse(testCase.yaml))
      );
      assert.ok(error instanceof ConfigError);
      assert.equal(error.keyPath, testCase.keyPath);
      assert.equal(error.file, "test.yaml");
      assert.ok(error.message.includes(testCase.fragment), error.message);
    });
  }
});

Deno.test("loadConfigFile reports missing and malformed files", async () => {
  await assert.rejects(
    () => loadConfigFile("/nonexistent/vllm_logger.yaml"),
    /file not found/,
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bad.yaml`, "containers: [\n");
  await assert.rejects(() => loadConfigFile(`${dir}/bad.yaml`), /invalid YAML/);
  await Deno.writeTextFile(`${dir}/empty.yaml`, "");
  await assert.rejects(
    () => loadConfigFile(`${dir}/empty.yaml`),
    /the file is empty/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("splitCommand splits without a shell", async (t) => {
  const cases: [string, string[]][] = [
    ["docker logs -f vllm", ["docker", "logs", "-f", "vllm"]],
    ["docker logs -f 'a b'", ["docker", "logs", "-f", "a b"]],
    ['podman logs -f "x"', ["podman", "logs", "-f", "x"]],
    ["docker logs -f a; rm -rf /", [
      "docker",
      "logs",
      "-f",
      "a;",
      "rm",
      "-rf",
      "/",
    ]],
    ["docker logs $(id)", ["docker", "logs", "$(id)"]],
    ["  spaced   out  ", ["spaced", "out"]],
    ["empty ''", ["empty", ""]],
  ];
  for (const [input, expected] of cases) {
    await t.step(input, () => assert.deepEqual(splitCommand(input), expected));
  }
});

Deno.test("configFromFlags builds the supervisor's form", async (t) => {
  await t.step("both halves", () => {
    const config = configFromFlags({
      container: "vllm-vision",
      metricsPort: 8001,
      logDir: "/l",
      db: "/d.db",
    });
    const container = config.containers[0]!;
    assert.equal(container.logDir, "/l");
    assert.equal(container.metricsEndpoint, "http://localhost:8001/metrics");
    assert.deepEqual(container.logsCommand, [
      "docker",
      "logs",
      "-f",
      "vllm-vision",
    ]);
    assert.equal(config.dbPath, "/d.db");
  });
  await t.step("logs only", () => {
    const config = configFromFlags({ container: "a", logDir: "/l" });
    assert.equal(config.dbPath, null);
    assert.equal(config.containers[0]!.metricsEndpoint, null);
  });
  await t.step("metrics only", () => {
    const config = configFromFlags({
      container: "a",
      metricsPort: 9,
      db: "/d.db",
    });
    assert.equal(config.containers[0]!.logDir, null);
  });
  const invalid: [string, Parameters<typeof configFromFlags>[0], string][] = [
    ["missing container", { logDir: "/l" }, "--container"],
    ["bad container", { container: "../x", logDir: "/l" }, "--container"],
    ["port without db", { container: "a", metricsPort: 1 }, "--db"],
    ["db without port", { container: "a", db: "/d" }, "--metrics-port"],
    ["nothing to do", { container: "a" }, ""],
    ["port and url", {
      container: "a",
      metricsPort: 1,
      metricsUrl: "http://127.0.0.1:1/metrics",
      db: "/d",
    }, "--metrics-url"],
    ["url not http", {
      container: "a",
      metricsUrl: "ftp://x/metrics",
      db: "/d",
    }, "--metrics-url"],
  ];
  for (const [name, flags, keyPath] of invalid) {
    await t.step(name, () => {
      const error = thrownBy(() => configFromFlags(flags));
      assert.ok(error instanceof ConfigError);
      assert.equal(error.keyPath, keyPath);
    });
  }
});

Deno.test("alerts need a scraped container", () => {
  const error = thrownBy(() =>
    configFromDocument(
      "test.yaml",
      parse("containers: [{name: a}]\nalerts_file: rules.yaml\n"),
    )
  );
  assert.ok(error instanceof ConfigError);
  assert.equal(error.keyPath, "alerts_file");
  const flagError = thrownBy(() =>
    configFromFlags({ container: "a", logDir: "/l", alertsFile: "r.yaml" })
  );
  assert.ok(flagError instanceof ConfigError);
  assert.equal(flagError.keyPath, "--alerts-file");
});
