/**
 * Load benchmark of the whole logger process: eight containers each logging
 * 2,000 lines/s on average (1,000 lines/s, and 6,000 lines/s in every fifth
 * second), and eight `/metrics` endpoints of 2,000 series each, scraped
 * every second. The containers are served by the fake `docker`
 * (`scripts/fake-docker/docker`), the endpoints by this process on
 * 127.0.0.1; all of them share the machine with the logger.
 *
 * Figures:
 * - capture lag: time from a line's Docker timestamp until this process
 *   finds it in a day file. Files are read every 250 ms, so the figure is
 *   an upper bound by up to 250 ms.
 * - lines lost or written twice (both must be 0), per container.
 * - the logger's resident memory each 10 s and its peak (VmHWM).
 * - the logger's CPU time (user + system, without its `docker logs`
 *   children) as a share of one core.
 * - scrapes stored, and their duration.
 *
 * Run: `deno run --allow-all bench/load_bench.ts [--seconds 300] [--json]`
 *
 * @module
 */
// deno-lint-ignore-file no-console
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import {
  appendDockerLogLines,
  createContainer,
  type DockerLogLine,
} from "../src/simulate/docker_store.ts";

const REPO = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const DENO = Deno.env.get("HOROS_DENO") ?? Deno.execPath();
const CONTAINERS = 8;
const SERIES = 2000;
const STEADY_LINES_PER_SECOND = 1000;
const BURST_LINES_PER_SECOND = 6000;
/** Every fifth second is a burst, so the average is 2,000 lines/s. */
const BURST_EVERY_SECONDS = 5;
const TICK_MS = 100;
const FILE_POLL_MS = 250;

/** Series of one histogram: 22 finite buckets, `+Inf`, `_sum` and `_count`. */
const HISTOGRAM_SERIES = 25;

/**
 * Renders a page of `SERIES` series: a quarter gauges, a quarter counters
 * and half histograms.
 */
function metricsPage(container: number, scrape: number): string {
  const gauges = SERIES / 4;
  const histograms = SERIES / 2 / HISTOGRAM_SERIES;
  const lines: string[] = [];

  lines.push("# HELP vllm:bench_gauge A gauge per engine and slot.");
  lines.push("# TYPE vllm:bench_gauge gauge");
  for (let i = 0; i < gauges; i++) {
    lines.push(
      `vllm:bench_gauge{engine="${
        i % 4
      }",model_name="bench-${container}",slot="${i}"} ${
        Math.random().toFixed(4)
      }`,
    );
  }

  lines.push("# TYPE vllm:bench_requests counter");
  for (let i = 0; i < gauges; i++) {
    lines.push(
      `vllm:bench_requests_total{engine="${
        i % 4
      }",model_name="bench-${container}",slot="${i}"} ${scrape * (i + 1)}`,
    );
  }

  lines.push("# TYPE vllm:bench_latency_seconds histogram");
  const bounds = Array.from(
    { length: HISTOGRAM_SERIES - 3 },
    (_, i) => 0.001 * 2 ** i,
  );
  for (let h = 0; h < histograms; h++) {
    const labels = `engine="${
      h % 4
    }",model_name="bench-${container}",route="${h}"`;
    let cumulative = 0;
    for (const bound of bounds) {
      cumulative += scrape;
      lines.push(
        `vllm:bench_latency_seconds_bucket{${labels},le="${bound}"} ${cumulative}`,
      );
    }
    lines.push(
      `vllm:bench_latency_seconds_bucket{${labels},le="+Inf"} ${cumulative}`,
    );
    lines.push(`vllm:bench_latency_seconds_sum{${labels}} ${scrape * 1.5}`);
    lines.push(`vllm:bench_latency_seconds_count{${labels}} ${cumulative}`);
  }
  return lines.join("\n") + "\n";
}

function containerName(index: number): string {
  return `vllm-load-${index}`;
}

/** Quantile of sorted numbers, nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Reads the logger's RSS and peak RSS in KiB, and its CPU seconds. */
function processStats(
  pid: number,
): { rssKiB: number; peakKiB: number; cpuSeconds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return {
    rssKiB: field("VmRSS"),
    peakKiB: field("VmHWM"),
    cpuSeconds: ticks / 100,
  };
}

/** Follows the day files of one container by offset and records each new line's lag. */
class DayFileTail {
  readonly seen = new Map<number, number>();
  readonly #dir: string;
  readonly #offsets = new Map<string, number>();
  #partial = "";

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Reads what was appended since the last call; returns the lags in ms. */
  poll(nowMs: number): number[] {
    const lags: number[] = [];
    let names: string[];
    try {
      names = [...Deno.readDirSync(this.#dir)].map((entry) => entry.name)
        .filter((name) => name.endsWith(".jsonl")).sort();
    } catch {
      return lags;
    }
    for (const name of names) {
      const path = `${this.#dir}/${name}`;
      const offset = this.#offsets.get(name) ?? 0;
      using file = Deno.openSync(path, { read: true });
      const size = file.statSync().size;
      if (size <= offset) continue;
      file.seekSync(offset, Deno.SeekMode.Start);
      const bytes = new Uint8Array(size - offset);
      let read = 0;
      while (read < bytes.length) {
        const n = file.readSync(bytes.subarray(read));
        if (n === null) break;
        read += n;
      }
      this.#offsets.set(name, offset + read);
      const text = this.#partial +
        new TextDecoder().decode(bytes.subarray(0, read));
      const lines = text.split("\n");
      this.#partial = lines.pop()!;
      for (const line of lines) {
        const record = JSON.parse(line) as {
          timestamp: string;
          message: string;
        };
        const match = /^bench line (\d+) /.exec(record.message);
        if (match === null) continue;
        const sequence = Number(match[1]);
        this.seen.set(sequence, (this.seen.get(sequence) ?? 0) + 1);
        const stampMs = Date.parse(record.timestamp.slice(0, 23) + "Z");
        lags.push(nowMs - stampMs);
      }
    }
    return lags;
  }
}

interface Options {
  seconds: number;
  json: boolean;
}

async function run(options: Options): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "horos-load-bench-" });
  const dockerRoot = `${dir}/docker`;
  const dbPath = `${dir}/metrics.db`;
  const scrapes = new Array<number>(CONTAINERS).fill(0);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const match = /^\/c(\d+)\/metrics$/.exec(new URL(request.url).pathname);
      if (match === null) return new Response("not found", { status: 404 });
      const index = Number(match[1]);
      scrapes[index] = (scrapes[index] ?? 0) + 1;
      return new Response(metricsPage(index, scrapes[index]!), {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    },
  );
  const config = [
    "log_capture:",
    `  output_dir: ${dir}/logs`,
    "metrics_scraper:",
    "  interval_seconds: 1",
    `  db_path: ${dbPath}`,
    "containers:",
  ];
  for (let i = 0; i < CONTAINERS; i++) {
    await createContainer(dockerRoot, containerName(i));
    config.push(
      `  - name: ${containerName(i)}`,
      `    metrics_endpoint: http://127.0.0.1:${server.addr.port}/c${i}/metrics`,
    );
  }
  await Deno.writeTextFile(`${dir}/logger.yaml`, config.join("\n") + "\n");

  const logger = new Deno.Command(DENO, {
    args: [
      "run",
      "--allow-all",
      `${REPO}/main.ts`,
      "run",
      "--config",
      `${dir}/logger.yaml`,
    ],
    env: {
      PATH: `${REPO}/scripts/fake-docker:${Deno.env.get("PATH") ?? ""}`,
      FAKE_DOCKER_ROOT: dockerRoot,
      HOROS_DENO: DENO,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const ownLog: string[] = [];
  const drain = (async () => {
    for await (
      const chunk of logger.stderr.pipeThrough(new TextDecoderStream())
    ) {
      ownLog.push(chunk);
    }
  })();

  // Produce: every 100 ms each container logs its share of the second's rate.
  const produced = new Array<number>(CONTAINERS).fill(0);
  const startedMs = Date.now();
  const tails = Array.from(
    { length: CONTAINERS },
    (_, i) => new DayFileTail(`${dir}/logs/${containerName(i)}`),
  );
  const lags: number[] = [];
  const memory: { second: number; rssMiB: number }[] = [];
  let lastMemorySecond = -10;
  const cpuStart = processStats(logger.pid).cpuSeconds;
  console.error(`load bench: ${options.seconds} s in ${dir}`);

  let nextTickMs = performance.now();
  let nextPollMs = performance.now();
  for (let tick = 0; tick * TICK_MS < options.seconds * 1000; tick++) {
    const second = Math.floor((tick * TICK_MS) / 1000);
    const rate = second % BURST_EVERY_SECONDS === BURST_EVERY_SECONDS - 1
      ? BURST_LINES_PER_SECOND
      : STEADY_LINES_PER_SECOND;
    const perTick = (rate * TICK_MS) / 1000;
    await Promise.all(produced.map((from, index) => {
      const lines: DockerLogLine[] = [];
      for (let n = from; n < from + perTick; n++) {
        lines.push({
          stream: n % 10 === 0 ? "stderr" : "stdout",
          text:
            `(APIServer pid=1) INFO 11-17 09:00:00 [loggers.py:123] bench line ${n} ` +
            `Avg prompt throughput: 281.7 tokens/s, Running: ${n % 32} reqs`,
        });
      }
      produced[index] = from + perTick;
      return appendDockerLogLines(dockerRoot, containerName(index), lines);
    }));
    if (performance.now() >= nextPollMs) {
      const nowMs = Date.now();
      for (const tail of tails) lags.push(...tail.poll(nowMs));
      nextPollMs += FILE_POLL_MS;
    }
    if (second >= lastMemorySecond + 10) {
      lastMemorySecond = second;
      memory.push({
        second,
        rssMiB: Math.round(processStats(logger.pid).rssKiB / 1024),
      });
    }
    nextTickMs += TICK_MS;
    const wait = nextTickMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  const producingSeconds = (Date.now() - startedMs) / 1000;
  const cpuEnd = processStats(logger.pid).cpuSeconds;

  // Let the logger catch up, then stop it and count every line.
  const total = produced.reduce((sum, n) => sum + n, 0);
  const catchUpStarted = performance.now();
  while (performance.now() - catchUpStarted < 120_000) {
    const nowMs = Date.now();
    for (const tail of tails) lags.push(...tail.poll(nowMs));
    const seen = tails.reduce((sum, tail) => sum + tail.seen.size, 0);
    if (seen >= total) break;
    await new Promise((resolve) => setTimeout(resolve, FILE_POLL_MS));
  }
  const catchUpSeconds = (performance.now() - catchUpStarted) / 1000;
  const peak = processStats(logger.pid);
  const stopStarted = performance.now();
  logger.kill("SIGTERM");
  const status = await logger.status;
  const stopSeconds = (performance.now() - stopStarted) / 1000;
  await drain;
  for (const tail of tails) tail.poll(Date.now());
  await server.shutdown();

  let lost = 0;
  let repeated = 0;
  for (const [index, tail] of tails.entries()) {
    for (let n = 0; n < produced[index]!; n++) {
      const count = tail.seen.get(n) ?? 0;
      if (count === 0) lost++;
      if (count > 1) repeated += count - 1;
    }
  }
  const db = new DatabaseSync(dbPath, { readOnly: true });
  const scrapeRow = db.prepare(
    `SELECT count(*) AS n, sum(up) AS up, avg(duration_seconds) AS avg_s,
            max(duration_seconds) AS max_s, sum(samples_scraped) AS samples
     FROM scrapes`,
  ).get() as {
    n: number;
    up: number;
    avg_s: number;
    max_s: number;
    samples: number;
  };
  db.close();
  const dbBytes = Deno.statSync(dbPath).size;

  lags.sort((a, b) => a - b);
  const errors = ownLog.join("").split("\n").filter((line) =>
    line.includes('"level":"error"') || line.includes('"level":"warn"')
  );
  const result = {
    seconds: Math.round(producingSeconds),
    containers: CONTAINERS,
    lines_produced: total,
    lines_per_second: Math.round(total / producingSeconds),
    lines_lost: lost,
    lines_written_twice: repeated,
    capture_lag_ms: {
      p50: Math.round(quantile(lags, 0.5)),
      p99: Math.round(quantile(lags, 0.99)),
      max: Math.round(lags.at(-1) ?? NaN),
    },
    catch_up_seconds_after_load: Number(catchUpSeconds.toFixed(1)),
    logger_cpu_percent_of_one_core: Math.round(
      (100 * (cpuEnd - cpuStart)) / producingSeconds,
    ),
    logger_rss_mib_every_10_s: memory.map((entry) => entry.rssMiB),
    logger_peak_rss_mib: Math.round(peak.peakKiB / 1024),
    scrapes: scrapeRow.n,
    scrapes_up: scrapeRow.up,
    samples_stored: scrapeRow.samples,
    scrape_seconds: {
      avg: Number(scrapeRow.avg_s.toFixed(3)),
      max: Number(scrapeRow.max_s.toFixed(3)),
    },
    database_mib: Math.round(dbBytes / 1048576),
    stop_seconds: Number(stopSeconds.toFixed(2)),
    exit_code: status.code,
    warnings_and_errors_logged: errors.length,
  };
  if (options.json) {
    console.log(JSON.stringify(result));
  } else {
    for (const [key, value] of Object.entries(result)) {
      console.log(`${key.padEnd(32)} ${JSON.stringify(value)}`);
    }
    for (const line of errors.slice(0, 5)) console.log(`logged: ${line}`);
  }
  await Deno.remove(dir, { recursive: true });
  if (lost > 0 || repeated > 0 || status.code !== 0) Deno.exit(1);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "300" },
      json: { type: "boolean", default: false },
    },
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error(
      `--seconds must be a positive number, got "${values.seconds}"`,
    );
    Deno.exit(2);
  }
  await run({ seconds, json: values.json });
}
