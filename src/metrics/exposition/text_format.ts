/**
 * Parser for the Prometheus text exposition format 0.0.4
 * (`text/plain; version=0.0.4`), the format vLLM's `/metrics` serves.
 *
 * @module
 */

import {
  ExpositionBuilder,
  type ExpositionDialect,
  HASH,
  LineScanner,
  LineSyntaxError,
  parseFloatValue,
  parseIntegerValue,
  parseTypeDeclaration,
  readSeries,
  SeriesBuffer,
  unescapeExpositionString,
} from "./_common.ts";
import type { MetricType, ParsedExposition } from "./types.ts";

const TEXT_DIALECT: ExpositionDialect = {
  counterSampleMayUseFamilyName: true,
  stripCounterTotalSuffix: true,
};

/** Types that a `# TYPE` line of the text format may name. */
const TEXT_FORMAT_TYPES: ReadonlySet<string> = new Set<MetricType>([
  "counter",
  "gauge",
  "histogram",
  "summary",
  "untyped",
]);

/**
 * Parses a body in the Prometheus text format 0.0.4.
 *
 * Lines may end in `\n` or `\r\n`. Blank lines and comments other than
 * `# HELP` and `# TYPE` are ignored. A sample line is
 * `name{labels} value [timestamp]`, where the timestamp is an integer in
 * Unix milliseconds and the name may also be given quoted as the first item
 * in the braces (`{"my.metric",le="1"} 3`). A malformed line is skipped and
 * listed in `errors`. A counter declared as `x_total` gets the family name
 * `x`, as OpenMetrics names it.
 */
export function parseTextFormat(body: string): ParsedExposition {
  const scanner = new LineScanner(body);
  const builder = new ExpositionBuilder(TEXT_DIALECT);
  const series = new SeriesBuffer();
  while (scanner.nextLine()) {
    scanner.skipBlanks();
    if (scanner.atEnd()) {
      continue;
    }
    try {
      if (scanner.peek() === HASH) {
        parseCommentLine(scanner, builder);
      } else {
        parseSampleLine(scanner, builder, series);
      }
    } catch (error) {
      if (!(error instanceof LineSyntaxError)) {
        throw error;
      }
      builder.addError(scanner.lineNumber, error.message);
    }
  }
  return builder.finish();
}

function parseCommentLine(
  scanner: LineScanner,
  builder: ExpositionBuilder,
): void {
  scanner.pos++;
  scanner.skipBlanks();
  const keyword = scanner.readToken();
  if (keyword === "HELP") {
    scanner.skipBlanks();
    const name = scanner.readMetricName("expected metric name after # HELP");
    let help = "";
    if (!scanner.atEnd()) {
      scanner.requireBlanks(
        "expected a blank between the metric name and the help text",
      );
      help = unescapeExpositionString(scanner.readRest(), false);
    }
    const problem = builder.setHelp(name, help, scanner.lineNumber);
    if (problem !== undefined) {
      scanner.failLine(problem);
    }
  } else if (keyword === "TYPE") {
    parseTypeDeclaration(
      scanner,
      builder,
      TEXT_FORMAT_TYPES,
      "expected metric type counter, gauge, histogram, summary or untyped",
    );
  }
  // Every other comment carries no data.
}

function parseSampleLine(
  scanner: LineScanner,
  builder: ExpositionBuilder,
  series: SeriesBuffer,
): void {
  readSeries(scanner, series);
  scanner.requireBlanks(
    "expected a blank and the sample value after the series",
  );

  const valueStart = scanner.pos;
  const valueText = scanner.readToken();
  const value = parseFloatValue(valueText);
  if (value === undefined) {
    scanner.pos = valueStart;
    scanner.fail(
      "expected sample value (a float, NaN, +Inf or -Inf)",
      valueText,
    );
  }

  let timestampMs: number | undefined;
  scanner.skipBlanks();
  if (!scanner.atEnd()) {
    const timestampStart = scanner.pos;
    const timestampText = scanner.readToken();
    timestampMs = parseIntegerValue(timestampText);
    if (timestampMs === undefined) {
      scanner.pos = timestampStart;
      scanner.fail(
        "expected end of line or a timestamp in integer milliseconds",
        timestampText,
      );
    }
    scanner.skipBlanks();
    if (!scanner.atEnd()) {
      scanner.fail("expected end of line after the timestamp");
    }
  }
  builder.addSample(series, value, timestampMs, scanner.lineNumber);
}
