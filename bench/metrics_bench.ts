// deno-lint-ignore-file no-console
/**
 * Storage benchmark of the metrics database. It fills a 24-hour database
 * (one scrape every 5 s of a 606-series vLLM page) through
 * `MetricsStore.writeScrape`. Then it measures bytes per sample, the
 * parse-and-store time of a 606-series and of a 9,985-series scrape, and
 * `metrics stats --last 24h` and `metrics export` run as subprocesses, with
 * their peak memory. It prints the figures with the machine they ran on.
 *
 * Run: `deno run --allow-all bench/metrics_bench.ts` (about 4 minutes on 2
 * cores). Options:
 *
 * - `--scrapes N`: scrapes in the database (default 17280, 24 hours)
 * - `--page-size BYTES`: page size of the new database
 * - `--always-busy`: peak load all day instead of a day with an idle night
 * - `--compare-v1`: also fill a database with schema version 1's layout,
 *   about 4 more minutes
 * - `--keep DIR`: write the databases into DIR and keep them
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { writeStdout } from "../src/cli/output.ts";
import { exportSamples } from "../src/metrics/export.ts";
import { parseExposition } from "../src/metrics/exposition/parse.ts";
import { containerStats } from "../src/metrics/stats.ts";
import {
  canonicalLabels,
  type MetricsStore,
  openStore,
  type ScrapeHealth,
} from "../src/metrics/store.ts";
import { VllmWorkload } from "./vllm_workload.ts";

const REPO = new URL("../", import.meta.url).pathname;
const DENO = Deno.env.get("HOROS_DENO") ?? Deno.execPath();
const INTERVAL_MS = 5000;
const CONTAINER = "vllm-bench";
const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One line of the result table. */
interface Figure {
  measure: string;
  value: string;
  goal: string;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? sorted[middle]!
    : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function percentile(values: readonly number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))
  ]!;
}

function health(timestampMs: number, samples: number): ScrapeHealth {
  return {
    container: CONTAINER,
    timestampMs,
    durationSeconds: 0.02,
    up: true,
    samplesScraped: samples,
    parseErrors: 0,
    duplicateSamples: 0,
    error: null,
  };
}

function machineDescription(): string[] {
  let cpu = "unknown CPU";
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? cpu;
  } catch {
    // Not Linux: the CPU model stays unknown.
  }
  const memory = Deno.systemMemoryInfo();
  const db = new DatabaseSync(":memory:");
  const sqlite = (db.prepare("SELECT sqlite_version() AS v").get() as {
    v: string;
  }).v;
  db.close();
  return [
    `CPU: ${cpu}, ${navigator.hardwareConcurrency} logical cores`,
    `Memory: ${(memory.total / 2 ** 30).toFixed(1)} GiB`,
    `OS: ${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, SQLite ${sqlite}`,
  ];
}

/** Creates an empty file with the given page size, before the schema exists. */
function createWithPageSize(path: string, pageSize: number): void {
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA page_size = ${pageSize}`);
  db.exec("PRAGMA journal_mode = WAL");
  db.close();
}

interface FillResult {
  samples: number;
  writeMs: number[];
  compactionMs: number[];
  seconds: number;
  workload: VllmWorkload;
  endMs: number;
}

/**
 * Writes `scrapes` scrapes ending at `endMs` through the store, and lets
 * each background compaction finish before the next scrape, as the 5 s
 * between real scrapes would.
 */
async function fillDay(
  store: MetricsStore,
  scrapes: number,
  endMs: number,
  alwaysBusy: boolean,
): Promise<FillResult> {
  const startMs = endMs - (scrapes - 1) * INTERVAL_MS;
  const workload = new VllmWorkload({
    models: ["org/model-7b"],
    engines: 2,
    startMs: startMs - 3_600_000,
    ...(alwaysBusy ? { loadAt: () => 1 } : {}),
  });
  const writeMs: number[] = [];
  const compactionMs: number[] = [];
  let samples = 0;
  const started = performance.now();
  for (let scrape = 0; scrape < scrapes; scrape++) {
    const timestampMs = startMs + scrape * INTERVAL_MS;
    workload.advance(timestampMs, INTERVAL_MS / 1000);
    const page = workload.samples();
    const before = performance.now();
    store.writeScrape(health(timestampMs, page.length), page);
    const written = performance.now();
    writeMs.push(written - before);
    await store.compacted();
    const compacted = performance.now() - written;
    // A pass yields between transactions, so even a short one takes a
    // timer tick; those below 2 ms are scrapes without a compaction.
    if (compacted > 2) compactionMs.push(compacted);
    samples += page.length;
    if (scrape % 2880 === 2879) {
      console.error(`  ${scrape + 1} of ${scrapes} scrapes written`);
    }
  }
  await store.compact();
  return {
    samples,
    writeMs,
    compactionMs,
    seconds: (performance.now() - started) / 1000,
    workload,
    endMs,
  };
}

/** Fills a database with schema version 1's layout, for comparison. */
function fillVersion1(path: string, scrapes: number, endMs: number): {
  samples: number;
  writeMs: number[];
} {
  const db = new DatabaseSync(path, { timeout: 250 });
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec(`
    CREATE TABLE scrapes (id INTEGER PRIMARY KEY, container TEXT NOT NULL,
      timestamp INTEGER NOT NULL, duration_seconds REAL NOT NULL, up INTEGER NOT NULL,
      samples_scraped INTEGER NOT NULL, parse_errors INTEGER NOT NULL,
      duplicate_samples INTEGER NOT NULL, error TEXT);
    CREATE INDEX scrapes_by_container_time ON scrapes (container, timestamp);
    CREATE TABLE series (id INTEGER PRIMARY KEY, container TEXT NOT NULL,
      metric_name TEXT NOT NULL, labels TEXT NOT NULL, family TEXT NOT NULL,
      metric_type TEXT NOT NULL, UNIQUE (container, metric_name, labels));
    CREATE TABLE samples (series_id INTEGER NOT NULL, scrape_id INTEGER NOT NULL,
      value REAL, PRIMARY KEY (series_id, scrape_id)) WITHOUT ROWID;`);
  const insertScrape = db.prepare(
    `INSERT INTO scrapes (container, timestamp, duration_seconds, up, samples_scraped,
       parse_errors, duplicate_samples, error) VALUES (?, ?, 0.02, 1, ?, 0, 0, NULL)`,
  );
  const insertSeries = db.prepare(
    `INSERT INTO series (container, metric_name, labels, family, metric_type)
     VALUES (?, ?, ?, ?, ?) RETURNING id`,
  );
  const insertSample = db.prepare(
    "INSERT INTO samples (series_id, scrape_id, value) VALUES (?, ?, ?)",
  );
  const seriesIds = new Map<string, number>();
  const startMs = endMs - (scrapes - 1) * INTERVAL_MS;
  const workload = new VllmWorkload({
    models: ["org/model-7b"],
    engines: 2,
    startMs: startMs - 3_600_000,
  });
  const writeMs: number[] = [];
  let samples = 0;
  for (let scrape = 0; scrape < scrapes; scrape++) {
    const timestampMs = startMs + scrape * INTERVAL_MS;
    workload.advance(timestampMs, INTERVAL_MS / 1000);
    const page = workload.samples();
    const before = performance.now();
    db.exec("BEGIN IMMEDIATE");
    const scrapeId = Number(
      insertScrape.run(CONTAINER, timestampMs, page.length).lastInsertRowid,
    );
    for (const sample of page) {
      const labels = canonicalLabels(sample.labels);
      const key = `${sample.name}\u0000${labels}`;
      let seriesId = seriesIds.get(key);
      if (seriesId === undefined) {
        const row = insertSeries.get(
          CONTAINER,
          sample.name,
          labels,
          sample.family,
          sample.type,
        ) as { id: number };
        seriesId = row.id;
        seriesIds.set(key, seriesId);
      }
      insertSample.run(
        seriesId,
        scrapeId,
        Number.isNaN(sample.value) ? null : sample.value,
      );
    }
    db.exec("COMMIT");
    writeMs.push(performance.now() - before);
    samples += page.length;
    if (scrape % 2880 === 2879) {
      console.error(`  version 1: ${scrape + 1} of ${scrapes} scrapes written`);
    }
  }
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  return { samples, writeMs };
}

/** Checkpoints the WAL into the file and returns the file size in bytes. */
function checkpointedSize(store: MetricsStore, path: string): number {
  store.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return Deno.statSync(path).size;
}

interface ParseStoreResult {
  parseMs: number[];
  storeMs: number[];
  totalMs: number[];
  series: number;
}

/**
 * Renders `scrapes` pages of `workload` as text, then times parsing each
 * with `parseExposition` and storing it with `writeScrape`. Compactions run
 * between scrapes, untimed, as during the idle time of a real interval.
 */
async function timeParseAndStore(
  store: MetricsStore,
  workload: VllmWorkload,
  startMs: number,
  scrapes: number,
): Promise<ParseStoreResult> {
  const result: ParseStoreResult = {
    parseMs: [],
    storeMs: [],
    totalMs: [],
    series: 0,
  };
  for (let scrape = 0; scrape < scrapes; scrape++) {
    const timestampMs = startMs + scrape * INTERVAL_MS;
    workload.advance(timestampMs, INTERVAL_MS / 1000);
    const body = workload.render();
    const started = performance.now();
    const parsed = parseExposition(body, TEXT_CONTENT_TYPE);
    const parsedAt = performance.now();
    store.writeScrape(
      health(timestampMs, parsed.samples.length),
      parsed.samples,
    );
    const storedAt = performance.now();
    if (parsed.errors.length > 0) {
      throw new Error(
        `generated page has parse errors: ${parsed.errors[0]!.message}`,
      );
    }
    result.series = parsed.samples.length;
    result.parseMs.push(parsedAt - started);
    result.storeMs.push(storedAt - parsedAt);
    result.totalMs.push(storedAt - started);
    await store.compacted();
  }
  return result;
}

interface ProcessResult {
  seconds: number;
  peakRssBytes: number | null;
  stdoutBytes: number;
  stdoutLines: number;
  stdout: string | null;
}

/**
 * Runs a command, counting its stdout, and measures its wall time and peak
 * resident memory: from `/usr/bin/time -f %M` when present, else from
 * `VmHWM` in `/proc/<pid>/status` polled every 10 ms (which can miss a
 * peak in the last 10 ms).
 */
async function runMeasured(
  args: string[],
  keepStdout: boolean,
): Promise<ProcessResult> {
  let timeTool = false;
  try {
    Deno.statSync("/usr/bin/time");
    timeTool = true;
  } catch {
    // Poll /proc instead.
  }
  const command = timeTool
    ? new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M", DENO, ...args],
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(DENO, { args, stdout: "piped", stderr: "piped" });
  const started = performance.now();
  const child = command.spawn();
  let polledKb = 0;
  const poll = timeTool ? undefined : setInterval(() => {
    try {
      const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      polledKb = Math.max(polledKb, kb);
    } catch {
      // The process has exited.
    }
  }, 10);
  let stdoutBytes = 0;
  let stdoutLines = 0;
  let stdoutText = "";
  const decoder = new TextDecoder();
  const stderrText = new Response(child.stderr).text();
  for await (const chunk of child.stdout) {
    stdoutBytes += chunk.byteLength;
    for (const byte of chunk) if (byte === 10) stdoutLines++;
    if (keepStdout) stdoutText += decoder.decode(chunk, { stream: true });
  }
  const status = await child.status;
  clearInterval(poll);
  const seconds = (performance.now() - started) / 1000;
  const stderr = await stderrText;
  if (!status.success) {
    throw new Error(`${args.join(" ")} exited with ${status.code}: ${stderr}`);
  }
  let peakKb: number | null = polledKb > 0 ? polledKb : null;
  if (timeTool) {
    const lines = stderr.trim().split("\n");
    peakKb = Number(lines[lines.length - 1]);
  }
  return {
    seconds,
    peakRssBytes: peakKb === null ? null : peakKb * 1024,
    stdoutBytes,
    stdoutLines,
    stdout: keepStdout ? stdoutText + decoder.decode() : null,
  };
}

function formatMs(value: number): string {
  return `${value.toFixed(2)} ms`;
}

/** Formats bytes in megabytes of 10^6 bytes, the unit of the goals. */
function formatMb(bytes: number | null): string {
  return bytes === null ? "unknown" : `${(bytes / 1e6).toFixed(0)} MB`;
}

const encoder = new TextEncoder();

/** Writes to stdout synchronously, as an alternative to the CLI's writer. */
function writeStdoutSync(text: string): Promise<boolean> {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
  return Promise.resolve(true);
}

/**
 * Exports every row as CSV to stdout, through the CLI's own writer
 * (`writeStdout`, which awaits `Deno.stdout.write`) or through
 * `Deno.stdout.writeSync`.
 */
async function exportAllRows(path: string, sink: string): Promise<void> {
  const store = openStore(path, { readOnly: true });
  try {
    await exportSamples(
      store.db,
      {
        names: null,
        container: null,
        window: { startMs: 0, endMs: Number.MAX_SAFE_INTEGER },
      },
      "csv",
      sink === "sync" ? writeStdoutSync : writeStdout,
    );
  } finally {
    store.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      scrapes: { type: "string", default: "17280" },
      "page-size": { type: "string" },
      "compare-v1": { type: "boolean", default: false },
      "always-busy": { type: "boolean", default: false },
      keep: { type: "string" },
      "export-all": { type: "string" },
      sink: { type: "string", default: "cli" },
    },
  });
  // Internal mode: the export subprocess of the benchmark itself.
  if (values["export-all"] !== undefined) {
    await exportAllRows(values["export-all"], values.sink);
    return;
  }
  const scrapes = Number(values.scrapes);
  const dir = values.keep ??
    await Deno.makeTempDir({ prefix: "metrics-bench-" });
  await Deno.mkdir(dir, { recursive: true });
  const dayPath = `${dir}/day.db`;
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${dayPath}${suffix}`).catch(() => {});
  }
  const figures: Figure[] = [];
  const notes: string[] = [];

  console.error(`Filling ${scrapes} scrapes into ${dayPath}`);
  if (values["page-size"] !== undefined) {
    createWithPageSize(dayPath, Number(values["page-size"]));
  }
  const endMs = Math.floor(Date.now() / INTERVAL_MS) * INTERVAL_MS;
  const store = openStore(dayPath);
  const fill = await fillDay(store, scrapes, endMs, values["always-busy"]);
  const size = checkpointedSize(store, dayPath);
  const pageSize = (store.db.prepare("PRAGMA page_size").get() as {
    page_size: number;
  }).page_size;
  const runs =
    (store.db.prepare("SELECT count(*) AS n FROM sample_runs").get() as {
      n: number;
    }).n;
  const freePages = (store.db.prepare("PRAGMA freelist_count").get() as {
    freelist_count: number;
  }).freelist_count;
  store.db.exec(`VACUUM INTO '${dir}/vacuumed.db'`);
  const vacuumedSize = Deno.statSync(`${dir}/vacuumed.db`).size;
  await Deno.remove(`${dir}/vacuumed.db`);
  store.close();

  figures.push(
    {
      measure: `Dataset: ${scrapes} scrapes x ${
        fill.samples / scrapes
      } series, ${values["always-busy"] ? "busy all day" : "idle night"}`,
      value: `${fill.samples.toLocaleString("en")} samples in ${
        fill.seconds.toFixed(0)
      } s`,
      goal: "",
    },
    {
      measure: "Bytes per sample on disk (after checkpoint)",
      value: `${(size / fill.samples).toFixed(2)} (${
        formatMb(size)
      }, page ${pageSize} B)`,
      goal: "<= 16",
    },
    {
      measure: "  same after VACUUM INTO",
      value: `${
        (vacuumedSize / fill.samples).toFixed(2)
      } (${freePages} free pages before)`,
      goal: "",
    },
    {
      measure: "  rows in sample_runs per sample",
      value: (runs / fill.samples).toFixed(3),
      goal: "",
    },
    {
      measure: "writeScrape, 606 samples: median / p99",
      value: `${formatMs(median(fill.writeMs))} / ${
        formatMs(percentile(fill.writeMs, 0.99))
      }`,
      goal: "",
    },
    {
      measure: "Background compaction: passes, median / max",
      value: `${fill.compactionMs.length}, ${
        formatMs(median(fill.compactionMs))
      } / ${formatMs(Math.max(...fill.compactionMs))}`,
      goal: "",
    },
  );

  console.error("Timing parse and store of 606-series scrapes");
  await Deno.copyFile(dayPath, `${dir}/copy.db`);
  const copy = openStore(`${dir}/copy.db`);
  const small = await timeParseAndStore(
    copy,
    fill.workload,
    endMs + INTERVAL_MS,
    300,
  );
  copy.close();
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${dir}/copy.db${suffix}`).catch(() => {});
  }
  figures.push({
    measure:
      `Parse + store one ${small.series}-series scrape (24 h database): median`,
    value: `${formatMs(median(small.totalMs))} (parse ${
      formatMs(median(small.parseMs))
    }, store ${formatMs(median(small.storeMs))}; p99 ${
      formatMs(percentile(small.totalMs, 0.99))
    })`,
    goal: "<= 5 ms",
  });

  console.error("Timing parse and store of ~10,000-series scrapes");
  const largePath = `${dir}/large.db`;
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(`${largePath}${suffix}`).catch(() => {});
  }
  const large = openStore(largePath);
  const largeWorkload = new VllmWorkload({
    models: Array.from({ length: 37 }, (_, index) => `org/model-${index}`),
    engines: 1,
    startMs: endMs - 3_600_000,
  });
  // 140 scrapes include two compactions (one per 64 scrapes of this size).
  const big = await timeParseAndStore(
    large,
    largeWorkload,
    endMs - 140 * INTERVAL_MS,
    140,
  );
  large.close();
  figures.push({
    measure: `Parse + store one ${
      big.series.toLocaleString("en")
    }-series scrape: median`,
    value: `${formatMs(median(big.totalMs))} (parse ${
      formatMs(median(big.parseMs))
    }, store ${formatMs(median(big.storeMs))}; p99 ${
      formatMs(percentile(big.totalMs, 0.99))
    })`,
    goal: "<= 60 ms",
  });

  console.error("Timing metrics stats");
  const reader = openStore(dayPath, { readOnly: true });
  const inProcess: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    containerStats(reader.db, CONTAINER, {
      startMs: endMs - 86_400_000,
      endMs,
    });
    inProcess.push(performance.now() - started);
  }
  reader.close();
  const cli: ProcessResult[] = [];
  for (let run = 0; run < 3; run++) {
    cli.push(
      await runMeasured([
        "run",
        "--allow-all",
        `${REPO}main.ts`,
        "metrics",
        "stats",
        "--db",
        dayPath,
        "--last",
        "24h",
        "--format",
        "json",
      ], run === 0),
    );
  }
  const statsJson = JSON.parse(cli[0]!.stdout!) as {
    scrape_health: { scrapes: number };
  }[];
  figures.push(
    {
      measure: "containerStats over 24 h, in process: median of 3",
      value: formatMs(median(inProcess)),
      goal: "",
    },
    {
      measure: "`metrics stats --last 24h` subprocess: median of 3",
      value: `${
        (median(cli.map((run) => run.seconds)) * 1000).toFixed(0)
      } ms (peak RSS ${formatMb(cli[0]!.peakRssBytes)}, ${
        statsJson[0]?.scrape_health.scrapes ?? 0
      } scrapes in window)`,
      goal: "<= 1 s",
    },
  );

  console.error("Timing metrics export");
  const family = await runMeasured([
    "run",
    "--allow-all",
    `${REPO}main.ts`,
    "metrics",
    "export",
    "--db",
    dayPath,
    "--metric",
    "vllm:e2e_request_latency_seconds",
    "--format",
    "csv",
  ], false);
  const everything = await runMeasured([
    "run",
    "--allow-all",
    import.meta.url,
    "--export-all",
    dayPath,
  ], false);
  const everythingSync = await runMeasured([
    "run",
    "--allow-all",
    import.meta.url,
    "--export-all",
    dayPath,
    "--sink",
    "sync",
  ], false);
  figures.push(
    {
      measure: "`metrics export` of one histogram family as CSV",
      value: `${(family.stdoutLines - 1).toLocaleString("en")} rows in ${
        family.seconds.toFixed(1)
      } s, peak RSS ${formatMb(family.peakRssBytes)}`,
      goal: "<= 100 MB",
    },
    {
      measure: "Export of all rows as CSV (exportSamples, subprocess)",
      value: `${(everything.stdoutLines - 1).toLocaleString("en")} rows, ${
        formatMb(everything.stdoutBytes)
      } in ${everything.seconds.toFixed(1)} s, peak RSS ${
        formatMb(everything.peakRssBytes)
      }`,
      goal: "<= 100 MB",
    },
    {
      measure: "  same, writing with Deno.stdout.writeSync",
      value: `${everythingSync.seconds.toFixed(1)} s, peak RSS ${
        formatMb(everythingSync.peakRssBytes)
      }`,
      goal: "<= 100 MB",
    },
  );
  if (everything.stdoutLines - 1 !== fill.samples) {
    notes.push(
      `export wrote ${
        everything.stdoutLines - 1
      } rows, expected ${fill.samples}`,
    );
  }

  if (values["compare-v1"]) {
    console.error("Filling the same scrapes with schema version 1's layout");
    const v1Path = `${dir}/version1.db`;
    for (const suffix of ["", "-wal", "-shm"]) {
      await Deno.remove(`${v1Path}${suffix}`).catch(() => {});
    }
    const v1 = fillVersion1(v1Path, scrapes, endMs);
    const v1Size = Deno.statSync(v1Path).size;
    figures.push(
      {
        measure: "Schema version 1 layout: bytes per sample",
        value: (v1Size / v1.samples).toFixed(2),
        goal: "",
      },
      {
        measure: "Schema version 1 layout: write median / p99",
        value: `${formatMs(median(v1.writeMs))} / ${
          formatMs(percentile(v1.writeMs, 0.99))
        }`,
        goal: "",
      },
    );
  }

  if (values.keep === undefined) await Deno.remove(dir, { recursive: true });

  console.log("Metrics storage benchmark (bench/metrics_bench.ts)");
  for (const line of machineDescription()) console.log(`  ${line}`);
  console.log("");
  const widths = [
    Math.max(...figures.map((figure) => figure.measure.length), 7),
    Math.max(...figures.map((figure) => figure.value.length), 5),
  ];
  console.log(
    `| ${"Measure".padEnd(widths[0]!)} | ${
      "Value".padEnd(widths[1]!)
    } | Goal |`,
  );
  console.log(
    `|${"-".repeat(widths[0]! + 2)}|${"-".repeat(widths[1]! + 2)}|------|`,
  );
  for (const figure of figures) {
    console.log(
      `| ${figure.measure.padEnd(widths[0]!)} | ${
        figure.value.padEnd(widths[1]!)
      } | ${figure.goal} |`,
    );
  }
  for (const note of notes) console.log(`\nWARNING: ${note}`);
}

if (import.meta.main) {
  await main();
}
