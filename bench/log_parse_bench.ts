/**
 * Throughput of the log pipeline: `cleanLine`, `parseLine` and
 * `EventGrouper` over the vLLM fixture logs repeated many times.
 *
 * Run: `deno bench --allow-read bench/log_parse_bench.ts`. Lines per second
 * = lines in the bench name / time per iteration.
 */
import { cleanLine } from "../src/logs/clean.ts";
import { EventGrouper } from "../src/logs/event_grouper.ts";
import { parseLine } from "../src/logs/parse_line.ts";
import type { RawLine, StreamName } from "../src/logs/types.ts";

const DATA = new URL("../tests/testdata/vllm/", import.meta.url);
const REPEAT = 100;

async function readLines(name: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(name, DATA));
  return text.slice(0, -1).split("\n");
}

function inRanges(n: number, ranges: [number, number][]): boolean {
  return ranges.some(([first, last]) => n >= first && n <= last);
}

/** Reads both fixtures once, tagging each line with the stream docker gives it. */
async function fixtureLines(): Promise<RawLine[]> {
  const lines: RawLine[] = [];
  const startup = await readLines("logs-startup-timestamps.txt");
  startup.forEach((text, i) => {
    const stderr = inRanges(i + 1, [
      [14, 20],
      [33, 34],
      [60, 62],
      [92, 102],
      [115, 120],
    ]);
    const stream: StreamName = stderr ? "stderr" : "stdout";
    lines.push({ timestamp: text.slice(0, 30), stream, text: text.slice(31) });
  });
  const legacy = await readLines("logs-v0-legacy.txt");
  legacy.forEach((text, i) => {
    const stderr = inRanges(i + 1, [[11, 15], [28, 30]]);
    const stream: StreamName = stderr ? "stderr" : "stdout";
    lines.push({ timestamp: "2026-03-08T14:02:11.000000000Z", stream, text });
  });
  return lines;
}

const onePass = await fixtureLines();
const lines: RawLine[] = [];
for (let i = 0; i < REPEAT; i++) lines.push(...onePass);
const count = lines.length.toLocaleString("en-US");

Deno.bench(`clean + parse + group, ${count} lines`, {
  group: "pipeline",
  baseline: true,
}, () => {
  const groupers = {
    stdout: new EventGrouper(),
    stderr: new EventGrouper(),
  };
  let events = 0;
  for (const line of lines) events += groupers[line.stream].push(line).length;
  events += groupers.stdout.flush().length + groupers.stderr.flush().length;
  if (events === 0) throw new Error("no events were produced");
});

Deno.bench(`cleanLine only, ${count} lines`, { group: "pipeline" }, () => {
  let length = 0;
  for (const line of lines) length += cleanLine(line.text).length;
  if (length === 0) throw new Error("all cleaned lines were empty");
});

const cleaned = lines.map((line) => cleanLine(line.text));

Deno.bench(`parseLine only, ${count} lines`, { group: "pipeline" }, () => {
  let fields = 0;
  for (let i = 0; i < cleaned.length; i++) {
    const parsed = parseLine(cleaned[i] ?? "", "stdout");
    if (parsed.fields.status !== undefined) fields++;
  }
  if (fields === 0) throw new Error("no access line was parsed");
});
