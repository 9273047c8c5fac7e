import assert from "node:assert/strict";
import {
  type ExportFormat,
  type ExportResult,
  exportSamples,
} from "../../src/metrics/export.ts";
import type { Sample } from "../../src/metrics/exposition/types.ts";
import {
  type MetricsStore,
  openStore,
  type ScrapeHealth,
} from "../../src/metrics/store.ts";

const GOLDEN = new URL("./golden/", import.meta.url);
const ALL_TIME = { startMs: 0, endMs: 10_000 };
const MODEL = { engine: "0", model_name: "org/m" };

function sample(
  name: string,
  labels: Record<string, string>,
  value: number,
  family: string,
  type: Sample["type"],
): Sample {
  return { name, labels, value, family, type };
}

function health(
  container: string,
  timestampMs: number,
  samples: number,
  up = true,
): ScrapeHealth {
  return {
    container,
    timestampMs,
    durationSeconds: 0.01,
    up,
    samplesScraped: samples,
    parseErrors: 0,
    duplicateSamples: 0,
    error: up ? null : "HTTP status 500, expected 200",
  };
}

/**
 * Builds one page of container `vllm-a`: a counter and its `_created` gauge,
 * a gauge whose label value needs escaping, a histogram, a series with its
 * own `container` label and an untyped series. The last is a counter named
 * without `_total`, legal in text format 0.0.4 but not in OpenMetrics.
 */
function page(
  total: number,
  escaped: number,
  plain: number,
  buckets: [number, number, number],
  sum: number,
  untyped: number,
  legacy: number,
): Sample[] {
  return [
    sample(
      "vllm:generation_tokens_total",
      MODEL,
      total,
      "vllm:generation_tokens",
      "counter",
    ),
    sample(
      "vllm:generation_tokens_created",
      MODEL,
      1794902496.782212,
      "vllm:generation_tokens_created",
      "gauge",
    ),
    sample("g", { path: 'a"b\\c\nd,e' }, escaped, "g", "gauge"),
    sample("g", { path: "plain" }, plain, "g", "gauge"),
    sample("h_bucket", { le: "0.5" }, buckets[0], "h", "histogram"),
    sample("h_bucket", { le: "1.0" }, buckets[1], "h", "histogram"),
    sample("h_bucket", { le: "+Inf" }, buckets[2], "h", "histogram"),
    sample("h_count", {}, buckets[2], "h", "histogram"),
    sample("h_sum", {}, sum, "h", "histogram"),
    sample("kube", { container: "inner" }, 1, "kube", "gauge"),
    sample("u", {}, untyped, "u", "untyped"),
    sample("legacy", {}, legacy, "legacy", "counter"),
  ];
}

/** Two containers, a failed scrape between two good ones, NaN and infinities. */
function writeSmallDatabase(store: MetricsStore): void {
  let samples = page(10, NaN, Infinity, [1, 2, 3], 1.5, -Infinity, 5);
  store.writeScrape(health("vllm-a", 1000, samples.length), samples);
  store.writeScrape(health("vllm-b", 1500, 1), [
    sample(
      "vllm:generation_tokens_total",
      MODEL,
      7,
      "vllm:generation_tokens",
      "counter",
    ),
  ]);
  store.writeScrape(health("vllm-a", 2000, 0, false), []);
  samples = page(15, 0.25, -Infinity, [2, 3, 5], 4, 2, 6);
  store.writeScrape(health("vllm-a", 3000, samples.length), samples);
}

async function exportText(
  store: MetricsStore,
  format: ExportFormat,
  names: string[] | null = null,
): Promise<{ text: string; result: ExportResult }> {
  let text = "";
  const result = await exportSamples(
    store.db,
    { names, container: null, window: ALL_TIME },
    format,
    (chunk) => {
      text += chunk;
      return Promise.resolve(true);
    },
  );
  return { text, result };
}

async function withSmallDatabase(
  body: (store: MetricsStore, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/metrics.db`, { autoCompact: false });
  try {
    writeSmallDatabase(store);
    await body(store, dir);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const FORMATS: [ExportFormat, string][] = [
  ["csv", "export.csv"],
  ["jsonl", "export.jsonl"],
  ["openmetrics", "export.om"],
];

Deno.test("export matches golden files", async (t) => {
  await withSmallDatabase(async (store) => {
    for (const [format, file] of FORMATS) {
      await t.step(format, async () => {
        const golden = await Deno.readTextFile(new URL(file, GOLDEN));
        const { text, result } = await exportText(store, format);
        assert.equal(text, golden);
        assert.equal(result.rows, 25);
        assert.equal(result.outOfOrderSamples, 0);
      });
    }
    await t.step("same output after compaction", async () => {
      await store.compact();
      for (const [format, file] of FORMATS) {
        const golden = await Deno.readTextFile(new URL(file, GOLDEN));
        assert.equal((await exportText(store, format)).text, golden);
      }
    });
  });
});

Deno.test("export of one metric or family", async () => {
  await withSmallDatabase(async (store) => {
    const { text } = await exportText(store, "csv", [
      "vllm:generation_tokens_total",
    ]);
    const lines = text.trimEnd().split("\n");
    assert.equal(lines.length, 4);
    assert.deepEqual(
      lines.slice(1).map((line) => line.split(",").slice(0, 5).join(",")),
      [
        "1000,1970-01-01T00:00:01.000Z,vllm-a,vllm:generation_tokens_total,10",
        "1500,1970-01-01T00:00:01.500Z,vllm-b,vllm:generation_tokens_total,7",
        "3000,1970-01-01T00:00:03.000Z,vllm-a,vllm:generation_tokens_total,15",
      ],
    );
    // A family name selects every series of the family.
    const histogram = await exportText(store, "openmetrics", ["h"]);
    assert.equal(histogram.result.rows, 10);
    assert.match(histogram.text, /^# TYPE h histogram\n/);
    assert.match(histogram.text, /# EOF\n$/);
  });
});

Deno.test("export with nothing matched", async () => {
  await withSmallDatabase(async (store) => {
    assert.equal(
      (await exportText(store, "csv", ["missing"])).text,
      "timestamp,time,container,metric_name,value,labels\n",
    );
    assert.equal((await exportText(store, "jsonl", ["missing"])).text, "");
    assert.equal(
      (await exportText(store, "openmetrics", ["missing"])).text,
      "# EOF\n",
    );
  });
});

Deno.test("export stops when the sink closes", async () => {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/metrics.db`, { autoCompact: false });
  try {
    const samples = Array.from(
      { length: 200 },
      (_, index) =>
        sample("g", { index: String(index) }, index * 1.25, "g", "gauge"),
    );
    for (let scrape = 0; scrape < 50; scrape++) {
      store.writeScrape(health("c", scrape * 1000, 200), samples);
    }
    let calls = 0;
    const result = await exportSamples(
      store.db,
      { names: ["g"], container: null, window: { startMs: 0, endMs: 1e9 } },
      "csv",
      () => {
        calls++;
        return Promise.resolve(false);
      },
    );
    assert.equal(calls, 1);
    assert.ok(result.rows < 10_000, `${result.rows} rows written`);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OpenMetrics export skips points of a clock stepped back", async () => {
  const dir = await Deno.makeTempDir();
  const store = openStore(`${dir}/metrics.db`, { autoCompact: false });
  try {
    const counter = (value: number): Sample[] => [
      sample("c_total", {}, value, "c", "counter"),
    ];
    store.writeScrape(health("a", 5000, 1), counter(1));
    store.writeScrape(health("a", 10_000, 1), counter(2));
    // The wall clock stepped back 7 s between these two scrapes.
    store.writeScrape(health("a", 8000, 1), counter(3));
    store.writeScrape(health("a", 13_000, 1), counter(4));
    const window = { startMs: 0, endMs: 20_000 };
    let text = "";
    const result = await exportSamples(
      store.db,
      { names: ["c"], container: null, window },
      "openmetrics",
      (chunk) => {
        text += chunk;
        return Promise.resolve(true);
      },
    );
    assert.equal(
      text,
      '# TYPE c counter\nc_total{container="a"} 1 5\nc_total{container="a"} 2 10\n' +
        'c_total{container="a"} 4 13\n# EOF\n',
    );
    assert.equal(result.outOfOrderSamples, 1);
    // CSV keeps every sample, in scrape order.
    let csv = "";
    await exportSamples(
      store.db,
      { names: ["c"], container: null, window },
      "csv",
      (chunk) => {
        csv += chunk;
        return Promise.resolve(true);
      },
    );
    assert.deepEqual(
      csv.trimEnd().split("\n").slice(1).map((line) => line.split(",")[0]),
      ["5000", "10000", "8000", "13000"],
    );
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

function promtoolPath(): string | null {
  for (const directory of (Deno.env.get("PATH") ?? "").split(":")) {
    if (directory === "") continue;
    try {
      const path = `${directory}/promtool`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

const PROMTOOL = promtoolPath();

/** Reads a value as Prometheus prints it: a float, `NaN`, `+Inf` or `-Inf`. */
function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/** Parses `promtool tsdb dump` lines: `{labels} value timestamp_ms`. */
function parseDump(text: string): string[] {
  return text.trimEnd().split("\n").filter((line) => line !== "").map(
    (line) => {
      const match = /^\{(.*)\} (\S+) (\d+)$/.exec(line);
      assert.ok(match !== null, `unexpected dump line: ${line}`);
      return `${match[1]} ${parseValue(match[2]!)} ${match[3]}`;
    },
  ).sort();
}

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `${command} ${args.join(" ")}: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

Deno.test({
  name: PROMTOOL === null
    ? "promtool backfills the OpenMetrics export (ignored: promtool not on PATH)"
    : "promtool backfills the OpenMetrics export",
  ignore: PROMTOOL === null,
  fn: async () => {
    await withSmallDatabase(async (store, dir) => {
      const { text } = await exportText(store, "openmetrics");
      await Deno.writeTextFile(`${dir}/export.om`, text);
      await run(PROMTOOL!, [
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        `${dir}/export.om`,
        `${dir}/blocks`,
      ]);
      // `tsdb dump` opens the directory as a database and wants a WAL there.
      await Deno.mkdir(`${dir}/blocks/wal`, { recursive: true });
      const dumped = parseDump(
        await run(PROMTOOL!, ["tsdb", "dump", `${dir}/blocks`]),
      );

      const jsonl = (await exportText(store, "jsonl")).text.trimEnd().split(
        "\n",
      );
      const expected = jsonl.map((line) => {
        const row = JSON.parse(line) as {
          timestamp: number;
          container: string;
          metric_name: string;
          value: number | string;
          labels: Record<string, string>;
        };
        const labels: [string, string][] = [
          ["__name__", row.metric_name],
          ["container", row.container],
        ];
        for (const [name, value] of Object.entries(row.labels)) {
          labels.push([
            name === "container" ? "exported_container" : name,
            value,
          ]);
        }
        labels.sort(([a], [b]) => a.localeCompare(b, "en"));
        const text = labels.map(([name, value]) =>
          `${name}="${
            value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')
              .replaceAll("\n", "\\n")
          }"`
        ).join(", ");
        const value = typeof row.value === "number"
          ? row.value
          : parseValue(row.value);
        return `${text} ${value} ${row.timestamp}`;
      }).sort();
      assert.deepEqual(dumped, expected);
    });
  },
});
