/**
 * Security properties: no shell runs the logs command, created files and
 * directories get restrictive modes, command-line filters reach SQL only as
 * bound parameters, and endpoints are http or https without redirects.
 * Container names that are not directory names are rejected by
 * `config_test.ts`.
 */
import assert from "node:assert/strict";
import { fetchExposition, ScrapeError } from "../../src/metrics/scraper.ts";
import { openStore } from "../../src/metrics/store.ts";
import { FaultServer, reply } from "./fault_server.ts";
import {
  delay,
  listTree,
  LoggerProcess,
  NO_SANITIZERS,
  queryDatabase,
  readDayFiles,
  runCli,
  waitUntil,
} from "./helpers.ts";

/** Writes a logs command that records its arguments (NUL-separated) and prints one line. */
async function argvRecorder(dir: string): Promise<string> {
  const path = `${dir}/record-argv`;
  await Deno.writeTextFile(
    path,
    [
      "#!/bin/sh",
      `for arg in "$@"; do printf '%s\\0' "$arg"; done > "${dir}/argv"`,
      "printf '2026-11-17T09:00:00.000000001Z recorded\\n'",
      "exec sleep 60",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return path;
}

function recordedArgv(dir: string): string[] {
  const text = Deno.readTextFileSync(`${dir}/argv`);
  return text.split("\0").slice(0, -1);
}

Deno.test({
  name: "logs_stream runs without a shell",
  ...NO_SANITIZERS,
  fn: async (t) => {
    // Shell syntax in logs_stream stays plain arguments; the canary survives.
    const dir = await Deno.makeTempDir();
    try {
      const script = await argvRecorder(dir);
      const canary = `${dir}/canary`;
      await Deno.mkdir(canary);
      await Deno.writeTextFile(`${canary}/keep`, "still here\n");
      const injected = [
        `vllm-x; rm -rf ${canary}`,
        `&& touch ${dir}/pwned-and`,
        `| tee ${dir}/pwned-pipe`,
        `$(touch ${dir}/pwned-subst)`,
        `\`touch ${dir}/pwned-backtick\``,
        `> ${dir}/pwned-redirect`,
      ].join(" ");
      const expected = [
        "logs",
        "--timestamps",
        "-f",
        "vllm-x;",
        "rm",
        "-rf",
        canary,
        "&&",
        "touch",
        `${dir}/pwned-and`,
        "|",
        "tee",
        `${dir}/pwned-pipe`,
        "$(touch",
        `${dir}/pwned-subst)`,
        "`touch",
        `${dir}/pwned-backtick\``,
        ">",
        `${dir}/pwned-redirect`,
      ];

      const run = async (args: string[], logDir: string) => {
        await Deno.remove(`${dir}/argv`).catch(() => {});
        const logger = LoggerProcess.start(args);
        try {
          await waitUntil(
            async () => {
              try {
                return (await readDayFiles(logDir)).length > 0;
              } catch {
                return false;
              }
            },
            15_000,
            "the recorded line",
          );
          assert.equal((await logger.stop()).code, 0);
        } finally {
          if (await logger.isRunning()) await logger.stop("SIGKILL");
        }
        assert.deepEqual(recordedArgv(dir), expected);
        assert.equal(
          Deno.readTextFileSync(`${canary}/keep`),
          "still here\n",
          "canary survives",
        );
        assert.deepEqual(
          listTree(dir).filter((name) => name.startsWith("pwned")),
          [],
        );
        const records = await readDayFiles(logDir);
        assert.deepEqual(records.map((record) => record.message), [
          "recorded",
        ]);
      };

      await t.step("from the configuration file", async () => {
        const config = `${dir}/logger.yaml`;
        await Deno.writeTextFile(
          config,
          [
            "log_capture:",
            `  output_dir: ${dir}/file-logs`,
            "containers:",
            "  - name: vllm-x",
            `    logs_stream: ${
              JSON.stringify(`${script} logs -f ${injected}`)
            }`,
            "",
          ].join("\n"),
        );
        await run(["run", "--config", config], `${dir}/file-logs/vllm-x`);
      });

      await t.step("from --logs-stream", async () => {
        await run([
          "--container",
          "vllm-x",
          "--log-dir",
          `${dir}/flag-logs`,
          "--logs-stream",
          `${script} logs -f ${injected}`,
        ], `${dir}/flag-logs`);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Permission bits of `path`. */
function modeOf(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test({
  name: "created files are 0640 and directories 0750",
  ignore: Deno.build.os === "windows",
  ...NO_SANITIZERS,
  fn: async (t) => {
    // The modes are upper bounds: a stricter umask makes them stricter.
    const server = FaultServer.start(
      { good: reply("# TYPE vllm:x gauge\nvllm:x 1\n") },
      "good",
    );
    const check = async (
      umask: string,
      directoryMode: number,
      fileMode: number,
    ) => {
      const dir = await Deno.makeTempDir();
      try {
        const script = await argvRecorder(dir);
        const outputDir = `${dir}/out/logs`;
        const logDir = `${outputDir}/vllm-modes`;
        const config = `${dir}/logger.yaml`;
        await Deno.writeTextFile(
          config,
          [
            "log_capture:",
            `  output_dir: ${outputDir}`,
            "metrics_scraper:",
            "  interval_seconds: 0.25",
            `  db_path: ${dir}/out/db/metrics.db`,
            "containers:",
            "  - name: vllm-modes",
            `    logs_stream: ${script} logs`,
            `    metrics_endpoint: ${server.url}`,
            "",
          ].join("\n"),
        );
        await Deno.mkdir(`${dir}/out/db`, { recursive: true });
        const logger = LoggerProcess.start(["run", "--config", config], {
          umask,
        });
        try {
          await waitUntil(
            () => {
              try {
                return queryDatabase<{ n: number }>(
                      `${dir}/out/db/metrics.db`,
                      "SELECT count(*) AS n FROM scrapes",
                    )[0]!.n >= 2 &&
                  listTree(logDir).includes("2026-11-17.jsonl");
              } catch {
                return false;
              }
            },
            20_000,
            "a scrape and a day file",
          );
          const dbFiles = listTree(`${dir}/out/db`);
          assert.deepEqual(dbFiles, [
            "metrics.db",
            "metrics.db-shm",
            "metrics.db-wal",
          ]);
          for (const name of dbFiles) {
            assert.equal(
              modeOf(`${dir}/out/db/${name}`).toString(8),
              fileMode.toString(8),
              name,
            );
          }
          assert.equal((await logger.stop()).code, 0);
        } finally {
          if (await logger.isRunning()) await logger.stop("SIGKILL");
        }
        assert.equal(modeOf(outputDir).toString(8), directoryMode.toString(8));
        assert.equal(modeOf(logDir).toString(8), directoryMode.toString(8));
        assert.equal(
          modeOf(`${logDir}/2026-11-17.jsonl`).toString(8),
          fileMode.toString(8),
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    };
    try {
      await t.step("umask 000", () => check("000", 0o750, 0o640));
      await t.step("umask 077", () => check("077", 0o700, 0o600));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "compressed day files are 0640",
  ...NO_SANITIZERS,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const script = await argvRecorder(dir);
      const logDir = `${dir}/logs/vllm-gz`;
      await Deno.mkdir(logDir, { recursive: true });
      await Deno.writeTextFile(
        `${logDir}/2026-11-01.jsonl`,
        '{"timestamp":"2026-11-01T00:00:00.000000001Z","message":"old"}\n',
      );
      await Deno.writeTextFile(
        `${logDir}/2026-11-16.jsonl`,
        '{"timestamp":"2026-11-16T00:00:00.000000001Z","message":"day before"}\n',
      );
      const config = `${dir}/logger.yaml`;
      await Deno.writeTextFile(
        config,
        [
          "log_capture:",
          `  output_dir: ${dir}/logs`,
          "  compress_after_days: 1",
          "containers:",
          "  - name: vllm-gz",
          `    logs_stream: ${script} logs`,
          "",
        ].join("\n"),
      );
      const logger = LoggerProcess.start(["run", "--config", config], {
        umask: "000",
      });
      try {
        await logger.waitForLine(
          (line) => line.message === "Compressed day file",
          20_000,
          "the compression",
        );
        assert.equal((await logger.stop()).code, 0);
      } finally {
        if (await logger.isRunning()) await logger.stop("SIGKILL");
      }
      assert.equal(modeOf(`${logDir}/2026-11-01.jsonl.gz`), 0o640);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const INJECTIONS = [
  "x' OR 1=1 --",
  "x' OR '1'='1",
  "vllm-a' --",
  "x'; DROP TABLE scrapes; --",
  '" OR ""="',
  "%",
];

Deno.test({
  name: "command-line filters are bound parameters",
  ...NO_SANITIZERS,
  fn: async (t) => {
    // Quotes and SQL in a filter match nothing instead of everything.
    const dir = await Deno.makeTempDir();
    const db = `${dir}/metrics.db`;
    const store = openStore(db);
    const now = Date.now();
    for (const container of ["vllm-a", "vllm-b"]) {
      for (let i = 0; i < 3; i++) {
        store.writeScrape({
          container,
          timestampMs: now - 60_000 + i * 1000,
          durationSeconds: 0.01,
          up: true,
          samplesScraped: 1,
          parseErrors: 0,
          duplicateSamples: 0,
          error: null,
        }, [{
          name: "vllm:kv_cache_usage_perc",
          labels: { model_name: "m" },
          value: 0.5,
          family: "vllm:kv_cache_usage_perc",
          type: "gauge",
        }]);
      }
    }
    store.close();
    try {
      await t.step("matching filters find the data", async () => {
        const result = await runCli([
          "metrics",
          "export",
          "--metric",
          "kv_cache_usage_perc",
          "--container",
          "vllm-a",
          "--format",
          "csv",
          "--db",
          db,
        ]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout.trim().split("\n").length, 1 + 3);
      });
      for (const value of INJECTIONS) {
        await t.step(`filter ${JSON.stringify(value)}`, async () => {
          const exportByContainer = await runCli([
            "metrics",
            "export",
            "--metric",
            "kv_cache_usage_perc",
            "--container",
            value,
            "--format",
            "jsonl",
            "--db",
            db,
          ]);
          assert.equal(exportByContainer.stdout, "", exportByContainer.stderr);
          const exportByMetric = await runCli([
            "metrics",
            "export",
            "--metric",
            value,
            "--format",
            "jsonl",
            "--db",
            db,
          ]);
          assert.equal(exportByMetric.stdout, "", exportByMetric.stderr);
          const list = await runCli([
            "metrics",
            "list",
            "--container",
            value,
            "--db",
            db,
          ]);
          // An unknown container is a usage error that lists the real ones.
          assert.equal(list.code, 2, list.stderr);
          assert.equal(list.stdout, "");
          assert.match(list.stderr, /not found in the database/);
          const stats = await runCli([
            "metrics",
            "stats",
            "--container",
            value,
            "--last",
            "1h",
            "--format",
            "json",
            "--db",
            db,
          ]);
          assert.equal(stats.code, 2, stats.stderr);
          assert.equal(stats.stdout, "");
          assert.match(stats.stderr, /not found in the database/);
        });
      }
      await t.step("the database is unchanged", () => {
        const rows = queryDatabase<{ n: number }>(
          db,
          "SELECT count(*) AS n FROM scrapes",
        );
        assert.equal(rows[0]!.n, 6);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "scrapes never follow redirects",
  ...NO_SANITIZERS,
  fn: async () => {
    // A redirect could point the scraper at another host or port.
    const target = FaultServer.start({ good: reply("vllm:x 1\n") }, "good");
    const redirecting = FaultServer.start({
      redirect: async (conn) => {
        const head = [
          "HTTP/1.1 302 Found",
          `Location: ${target.url}`,
          "Content-Length: 0",
          "Connection: close",
          "",
          "",
        ].join("\r\n");
        await conn.write(new TextEncoder().encode(head));
      },
    }, "redirect");
    try {
      await assert.rejects(
        () => fetchExposition(redirecting.url, 2000),
        (error) => error instanceof ScrapeError,
      );
      await delay(100);
      assert.equal(
        target.count("good"),
        0,
        "the redirect target got no request",
      );
    } finally {
      await target.close();
      await redirecting.close();
    }
  },
});
