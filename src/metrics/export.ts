/**
 * `metrics export`: streams stored samples as CSV, JSON lines or OpenMetrics
 * text. Samples are read a bounded slice of scrapes at a time, so memory
 * stays flat on millions of rows.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { TimeWindow } from "../cli/time_window.ts";
import {
  findSeries,
  SampleReader,
  type ScrapeTimeline,
  type SeriesInfo,
} from "./query.ts";
import { returnArrays } from "./store.ts";

/** Output formats of `metrics export`. */
export type ExportFormat = "csv" | "jsonl" | "openmetrics";

/** Selection of the samples to export. */
export interface ExportQuery {
  /** Stored names to match against series names and families; null for every series. */
  names: string[] | null;
  /** Only this container, or every container when null. */
  container: string | null;
  window: TimeWindow;
}

/** Receives output text; returns false to stop early (a closed pipe). */
export type ExportSink = (text: string) => Promise<boolean>;

/** Counts of an export. */
export interface ExportResult {
  /** Sample lines written. */
  rows: number;
  /**
   * Samples left out of OpenMetrics output because their scrape time was
   * not after the previous one of the same series (a wall clock stepped
   * back). OpenMetrics requires increasing timestamps per series.
   */
  outOfOrderSamples: number;
}

/** Approximate maximum number of samples of one slice read into memory. */
const SLICE_SAMPLES = 100_000;
/**
 * Output is handed to the sink in pieces of about this many bytes. Smaller
 * pieces lower the peak memory of a sink that writes asynchronously: with
 * `Deno.stdout.write`, an all-rows export of the benchmark database peaked
 * at 102 MiB with 16 KiB pieces and 113 MiB with 64 KiB (Deno 2.9.6).
 */
const SINK_CHUNK = 16 * 1024;

/** Successful scrapes of the exported containers, merged in id order. */
interface ExportTimeline {
  ids: number[];
  timestampsMs: number[];
  /** Per container: its own timeline and each entry's index in `ids`. */
  byContainer: Map<
    string,
    { timeline: ScrapeTimeline; globalPositions: number[] }
  >;
}

function loadExportTimeline(
  db: DatabaseSync,
  containers: ReadonlySet<string>,
  window: TimeWindow,
): ExportTimeline {
  const statement = returnArrays(db.prepare(
    `SELECT id, timestamp, container FROM scrapes
     WHERE up = 1 AND timestamp BETWEEN ? AND ? ORDER BY id`,
  ));
  const result: ExportTimeline = {
    ids: [],
    timestampsMs: [],
    byContainer: new Map(),
  };
  for (const container of containers) {
    result.byContainer.set(container, {
      timeline: { ids: [], timestampsMs: [] },
      globalPositions: [],
    });
  }
  const rows = statement.iterate(window.startMs, window.endMs) as Iterable<
    [number, number, string]
  >;
  for (const [id, timestampMs, container] of rows) {
    const entry = result.byContainer.get(container);
    if (entry === undefined) continue;
    entry.globalPositions.push(result.ids.length);
    entry.timeline.ids.push(id);
    entry.timeline.timestampsMs.push(timestampMs);
    result.ids.push(id);
    result.timestampsMs.push(timestampMs);
  }
  return result;
}

/** Index of the first element of the sorted `values` that is not below `target`. */
function lowerBound(values: readonly number[], target: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle]! < target) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The samples of a group of series over scrapes `first` to `end - 1` of the
 * export timeline: the sample of series `i` at scrape `p` is
 * `values[i * stride + p - first]` when `present` is 1 there.
 */
interface Slice {
  first: number;
  end: number;
  stride: number;
  values: Float64Array;
  present: Uint8Array;
}

/**
 * Reads the samples of `series` slice after slice of the timeline, each
 * slice holding at most about {@linkcode SLICE_SAMPLES} values. The arrays
 * are reused: a slice is valid until the next one is requested.
 */
function* slicesOf(
  reader: SampleReader,
  series: readonly SeriesInfo[],
  timeline: ExportTimeline,
): Generator<Slice> {
  const stride = Math.max(
    16,
    Math.floor(SLICE_SAMPLES / Math.max(1, series.length)),
  );
  const seriesIds = series.map((entry) => entry.seriesId);
  // Typed arrays keep a slice from allocating per sample.
  const values = new Float64Array(series.length * stride);
  const present = new Uint8Array(series.length * stride);
  for (let first = 0; first < timeline.ids.length; first += stride) {
    const end = Math.min(first + stride, timeline.ids.length);
    reader.loadRecent(seriesIds, timeline.ids[first]!, timeline.ids[end - 1]!);
    present.fill(0);
    series.forEach((entry, seriesIndex) => {
      const container = timeline.byContainer.get(entry.container);
      if (container === undefined) return;
      const positions = container.globalPositions;
      const row = seriesIndex * stride - first;
      reader.read(
        entry.seriesId,
        container.timeline,
        lowerBound(positions, first),
        lowerBound(positions, end),
        (start, stop, value) => {
          for (let position = start; position < stop; position++) {
            const cell = row + positions[position]!;
            values[cell] = value;
            present[cell] = 1;
          }
        },
      );
    });
    yield { first, end, stride, values, present };
  }
}

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
    "\n",
    "\\n",
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Collects output as UTF-8 bytes in one reused buffer and hands it to the
 * sink in pieces of about {@linkcode SINK_CHUNK} bytes. A row is written from
 * parts encoded once (per series, per scrape) and from its value written
 * digit by digit, so it creates no garbage. A high allocation rate would
 * make V8 grow its young generation by tens of megabytes.
 */
class OutputBuffer {
  readonly #sink: ExportSink;
  #bytes = new Uint8Array(2 * SINK_CHUNK);
  #length = 0;
  #open = true;

  constructor(sink: ExportSink) {
    this.#sink = sink;
  }

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    const larger = new Uint8Array(
      Math.max(2 * this.#bytes.length, this.#length + extra),
    );
    larger.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = larger;
  }

  /** Appends bytes, usually a part encoded once with {@linkcode encode}. */
  appendBytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  append(text: string): void {
    this.#reserve(text.length * 3);
    this.#length += encoder.encodeInto(
      text,
      this.#bytes.subarray(this.#length),
    ).written;
  }

  /** Appends a byte, such as a quote or a newline. */
  appendByte(byte: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = byte;
  }

  /** Appends a value as `String(value)` would, with `NaN`, `+Inf`, `-Inf`. */
  appendValue(value: number): void {
    if (!Number.isSafeInteger(value)) {
      this.append(formatValue(value));
      return;
    }
    this.#reserve(17);
    let rest = value;
    if (rest < 0) {
      this.#bytes[this.#length++] = 45; // "-"
      rest = -rest;
    }
    const start = this.#length;
    do {
      this.#bytes[this.#length++] = 48 + rest % 10;
      rest = Math.floor(rest / 10);
    } while (rest > 0);
    this.#bytes.subarray(start, this.#length).reverse();
  }

  /** Writes what is buffered once it is large, or always with `force`. */
  async flush(force = false): Promise<boolean> {
    if (!this.#open) return false;
    if (this.#length === 0 || (!force && this.#length < SINK_CHUNK)) {
      return true;
    }
    const text = decoder.decode(this.#bytes.subarray(0, this.#length));
    this.#length = 0;
    this.#open = await this.#sink(text);
    return this.#open;
  }
}

function encode(text: string): Uint8Array {
  return encoder.encode(text);
}

const NEWLINE = 10;
const QUOTE = 34;

/**
 * Writes every matching sample to `sink`.
 *
 * CSV and JSON lines come in scrape order and, within a scrape, by series.
 * OpenMetrics output groups the samples by family, adds the container as a
 * `container` label and lists each label set's points in scrape order. A
 * series' own `container` label becomes `exported_container`, as Prometheus
 * renames a clashing target label. The output ends with `# EOF`, so
 * `promtool tsdb create-blocks-from openmetrics` can backfill it.
 */
export async function exportSamples(
  db: DatabaseSync,
  query: ExportQuery,
  format: ExportFormat,
  sink: ExportSink,
): Promise<ExportResult> {
  const series = query.names === null
    ? findAllSeries(db, query.container)
    : findSeries(db, query.container, query.names);
  const timeline = loadExportTimeline(
    db,
    new Set(series.map((entry) => entry.container)),
    query.window,
  );
  const reader = new SampleReader(db);
  const output = new OutputBuffer(sink);
  const result: ExportResult = { rows: 0, outOfOrderSamples: 0 };
  if (format === "openmetrics") {
    await writeOpenMetrics(reader, series, timeline, output, result);
  } else {
    await writeRows(reader, series, timeline, format, output, result);
  }
  await output.flush(true);
  return result;
}

function findAllSeries(
  db: DatabaseSync,
  container: string | null,
): SeriesInfo[] {
  const rows = db.prepare(
    `SELECT id, container, metric_name, family, metric_type, labels FROM series
     WHERE ?1 IS NULL OR container = ?1 ORDER BY id`,
  ).all(container) as Record<string, string | number>[];
  return rows.map((row) => ({
    seriesId: Number(row.id),
    container: String(row.container),
    metricName: String(row.metric_name),
    family: String(row.family),
    metricType: String(row.metric_type),
    labels: JSON.parse(String(row.labels)),
  }));
}

async function writeRows(
  reader: SampleReader,
  series: readonly SeriesInfo[],
  timeline: ExportTimeline,
  format: "csv" | "jsonl",
  output: OutputBuffer,
  result: ExportResult,
): Promise<void> {
  const csv = format === "csv";
  if (csv) output.append("timestamp,time,container,metric_name,value,labels\n");
  // The parts of a line before and after the value that depend on the
  // series only, encoded once.
  const middles: Uint8Array[] = [];
  const ends: Uint8Array[] = [];
  for (const entry of series) {
    const labels = JSON.stringify(entry.labels);
    if (csv) {
      middles.push(
        encode(`,${csvField(entry.container)},${csvField(entry.metricName)},`),
      );
      ends.push(encode(`,${csvField(labels)}\n`));
    } else {
      middles.push(encode(
        `,"container":${JSON.stringify(entry.container)},"metric_name":${
          JSON.stringify(entry.metricName)
        },"value":`,
      ));
      ends.push(encode(`,"labels":${labels}}\n`));
    }
  }
  for (const slice of slicesOf(reader, series, timeline)) {
    const { first, stride, values, present } = slice;
    for (let position = first; position < slice.end; position++) {
      const timestampMs = timeline.timestampsMs[position]!;
      const timePart = encode(
        csv
          ? `${timestampMs},${new Date(timestampMs).toISOString()}`
          : `{"timestamp":${timestampMs}`,
      );
      let wrote = false;
      for (let index = 0; index < series.length; index++) {
        const cell = index * stride + position - first;
        if (present[cell] !== 1) continue;
        const value = values[cell]!;
        output.appendBytes(timePart);
        output.appendBytes(middles[index]!);
        if (csv || Number.isFinite(value)) {
          output.appendValue(value);
        } else {
          output.appendByte(QUOTE);
          output.appendValue(value);
          output.appendByte(QUOTE);
        }
        output.appendBytes(ends[index]!);
        result.rows++;
        wrote = true;
      }
      if (wrote && !await output.flush()) return;
    }
  }
}

/** OpenMetrics family type for a stored type; `untyped` is `unknown` there. */
function openMetricsType(type: string): string {
  return type === "untyped" ? "unknown" : type;
}

/** Sample name suffixes each OpenMetrics family type allows. */
const SUFFIXES: Record<string, readonly string[]> = {
  counter: ["_total", "_created"],
  gauge: [""],
  unknown: [""],
  stateset: [""],
  info: ["_info"],
  histogram: ["_bucket", "_count", "_sum", "_created"],
  gaugehistogram: ["_bucket", "_gcount", "_gsum"],
  summary: ["", "_count", "_sum", "_created"],
};

/** A series with the family and type it is exported under. */
interface OpenMetricsSeries {
  series: SeriesInfo;
  family: string;
  type: string;
  /** Position of the sample name among the type's suffixes; orders a point. */
  suffixIndex: number;
}

/**
 * Picks each series' OpenMetrics family and type. A series whose name does
 * not fit its family's type (a text-format counter without `_total`) is
 * exported as an `unknown` family named like the series, which OpenMetrics
 * allows for any name. So is every series of a family stored with
 * conflicting types.
 */
function assignFamilies(
  seriesList: readonly SeriesInfo[],
): OpenMetricsSeries[] {
  const assigned = seriesList.map((series): OpenMetricsSeries => {
    const type = openMetricsType(series.metricType);
    const suffixes = SUFFIXES[type] ?? [];
    const suffixIndex = suffixes.findIndex((suffix) =>
      series.metricName === series.family + suffix
    );
    if (suffixIndex === -1) {
      return {
        series,
        family: series.metricName,
        type: "unknown",
        suffixIndex: 0,
      };
    }
    return { series, family: series.family, type, suffixIndex };
  });
  // Two passes settle it: after the first, every conflicting series has its
  // own name as family, so only unknown and gauge-like types can still meet.
  for (let pass = 0; pass < 2; pass++) {
    const types = new Map<string, Set<string>>();
    for (const entry of assigned) {
      const set = types.get(entry.family) ?? new Set<string>();
      set.add(entry.type);
      types.set(entry.family, set);
    }
    for (const entry of assigned) {
      if (types.get(entry.family)!.size > 1) {
        entry.family = entry.series.metricName;
        entry.type = "unknown";
        entry.suffixIndex = 0;
      }
    }
  }
  return assigned;
}

/**
 * Identifies the OpenMetrics Metric a series belongs to: its container and
 * labels without `le` (histograms) or `quantile` (summaries), which vary
 * between the samples of one point.
 */
function metricKey(entry: OpenMetricsSeries): string {
  const labels = { ...entry.series.labels };
  if (entry.type === "histogram" || entry.type === "gaugehistogram") {
    delete labels.le;
  } else if (entry.type === "summary") {
    delete labels.quantile;
  }
  return JSON.stringify([
    entry.series.container,
    Object.entries(labels).sort(([a], [b]) => compareText(a, b)),
  ]);
}

/** Orders text by UTF-16 code units, as `Array.prototype.sort` does. */
function compareText(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** Numeric order of an `le` or `quantile` label value; `+Inf` sorts last. */
function boundOrder(value: string | undefined): number {
  if (value === undefined) return Infinity;
  const number = Number(value);
  return Number.isNaN(number) ? Infinity : number;
}

function formatLabels(series: SeriesInfo): string {
  const pairs: string[] = [
    `container="${escapeLabelValue(series.container)}"`,
  ];
  for (const name of Object.keys(series.labels).sort()) {
    const exported = name === "container" ? "exported_container" : name;
    pairs.push(`${exported}="${escapeLabelValue(series.labels[name]!)}"`);
  }
  return `{${pairs.join(",")}}`;
}

async function writeOpenMetrics(
  reader: SampleReader,
  seriesList: readonly SeriesInfo[],
  timeline: ExportTimeline,
  output: OutputBuffer,
  result: ExportResult,
): Promise<void> {
  const byFamily = new Map<string, Map<string, OpenMetricsSeries[]>>();
  for (const entry of assignFamilies(seriesList)) {
    let metrics = byFamily.get(entry.family);
    if (metrics === undefined) {
      metrics = new Map();
      byFamily.set(entry.family, metrics);
    }
    const key = metricKey(entry);
    const members = metrics.get(key) ?? [];
    members.push(entry);
    metrics.set(key, members);
  }
  for (const family of [...byFamily.keys()].sort()) {
    const metrics = byFamily.get(family)!;
    const type = metrics.values().next().value![0]!.type;
    output.append(`# TYPE ${family} ${type}\n`);
    for (const key of [...metrics.keys()].sort()) {
      // One point: buckets or quantiles by bound, then count, sum, created.
      const members = metrics.get(key)!.sort((a, b) =>
        a.suffixIndex - b.suffixIndex ||
        boundOrder(a.series.labels.le ?? a.series.labels.quantile) -
          boundOrder(b.series.labels.le ?? b.series.labels.quantile)
      );
      const prefixes = members.map((entry) =>
        encode(`${entry.series.metricName}${formatLabels(entry.series)} `)
      );
      let lastTimestampMs = -Infinity;
      for (
        const slice of slicesOf(
          reader,
          members.map((entry) => entry.series),
          timeline,
        )
      ) {
        const { first, stride, values, present } = slice;
        for (let position = first; position < slice.end; position++) {
          let samples = 0;
          for (let index = 0; index < members.length; index++) {
            if (present[index * stride + position - first] === 1) samples++;
          }
          if (samples === 0) continue;
          const timestampMs = timeline.timestampsMs[position]!;
          if (timestampMs <= lastTimestampMs) {
            result.outOfOrderSamples += samples;
            continue;
          }
          lastTimestampMs = timestampMs;
          const timePart = encode(` ${timestampMs / 1000}`);
          for (let index = 0; index < members.length; index++) {
            const cell = index * stride + position - first;
            if (present[cell] !== 1) continue;
            output.appendBytes(prefixes[index]!);
            output.appendValue(values[cell]!);
            output.appendBytes(timePart);
            output.appendByte(NEWLINE);
            result.rows++;
          }
          if (!await output.flush()) return;
        }
      }
    }
  }
  output.append("# EOF\n");
}
