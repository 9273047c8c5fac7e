/**
 * Parser for the OpenMetrics 1.0 text format
 * (`application/openmetrics-text; version=1.0.0`).
 *
 * @module
 */

import {
  ExpositionBuilder,
  type ExpositionDialect,
  HASH,
  LineScanner,
  LineSyntaxError,
  OPEN_BRACE,
  parseFloatValue,
  parseTypeDeclaration,
  readLabelSet,
  readSeries,
  SeriesBuffer,
  unescapeExpositionString,
} from "./_common.ts";
import type { MetricType, ParsedExposition } from "./types.ts";

const OPENMETRICS_DIALECT: ExpositionDialect = {
  counterSampleMayUseFamilyName: false,
  stripCounterTotalSuffix: false,
};

/** Types that a `# TYPE` line of OpenMetrics 1.0 may name. */
const OPENMETRICS_TYPES: ReadonlySet<string> = new Set<MetricType>([
  "counter",
  "gauge",
  "histogram",
  "gaugehistogram",
  "summary",
  "info",
  "stateset",
  "unknown",
]);

/**
 * Parses a body in the OpenMetrics 1.0 text format.
 *
 * A sample line is `name{labels} value [timestamp] [# {labels} value
 * [timestamp]]`. The timestamp is in Unix seconds (a float) and is stored
 * rounded to whole milliseconds. The trailing exemplar is checked and
 * discarded. `# HELP`, `# TYPE` and `# UNIT` lines are read (the unit is not
 * stored) and other comments are ignored. The body must end with a
 * `# EOF` line: a missing one is listed in `errors` and the samples are kept,
 * and any non-blank line after it is an error and is not parsed.
 *
 * This parser accepts more than OpenMetrics 1.0 allows, so that a scrape is
 * not lost to a formatting slip. It also reads blank lines, runs of spaces or
 * tabs between tokens, `\r\n` line ends and comments other than HELP, TYPE,
 * UNIT and EOF. Label sets may end with a comma, and names may be quoted
 * UTF-8 strings as Prometheus 3 writes them.
 */
export function parseOpenMetrics(body: string): ParsedExposition {
  const scanner = new LineScanner(body);
  const builder = new ExpositionBuilder(OPENMETRICS_DIALECT);
  const series = new SeriesBuffer();
  const exemplarSeries = new SeriesBuffer();
  let eofLine = 0;
  while (scanner.nextLine()) {
    if (eofLine !== 0) {
      if (scanner.restIsBlank()) {
        continue;
      }
      builder.addError(
        scanner.lineNumber,
        `expected end of body after "# EOF" on line ${eofLine}, found more content (not parsed): ${scanner.excerpt()}`,
      );
      break;
    }

    scanner.skipBlanks();
    if (scanner.atEnd()) {
      continue;
    }
    try {
      if (scanner.peek() === HASH) {
        if (parseCommentLine(scanner, builder)) {
          eofLine = scanner.lineNumber;
        }
      } else {
        parseSampleLine(scanner, builder, series, exemplarSeries);
      }
    } catch (error) {
      if (!(error instanceof LineSyntaxError)) {
        throw error;
      }
      builder.addError(scanner.lineNumber, error.message);
    }
  }

  if (eofLine === 0) {
    builder.addError(
      scanner.lineNumber + 1,
      scanner.lineNumber === 0
        ? 'expected "# EOF" as the last line, found an empty body'
        : `expected "# EOF" as the last line, found end of body after line ${scanner.lineNumber}`,
    );
  }
  return builder.finish();
}

/** Parses one comment line and returns whether it was `# EOF`. */
function parseCommentLine(
  scanner: LineScanner,
  builder: ExpositionBuilder,
): boolean {
  scanner.pos++;
  scanner.skipBlanks();
  const keyword = scanner.readToken();
  switch (keyword) {
    case "EOF":
      scanner.skipBlanks();
      if (!scanner.atEnd()) {
        scanner.fail('expected end of line after "# EOF"');
      }
      return true;
    case "HELP":
      parseHelp(scanner, builder);
      return false;
    case "TYPE":
      parseType(scanner, builder);
      return false;
    case "UNIT":
      scanner.skipBlanks();
      scanner.readMetricName("expected metric name after # UNIT");
      // NOTE: ParsedExposition has no field for units, so the unit is dropped.
      return false;
    default:
      // Every other comment carries no data.
      return false;
  }
}

function parseHelp(scanner: LineScanner, builder: ExpositionBuilder): void {
  scanner.skipBlanks();
  const name = scanner.readMetricName("expected metric name after # HELP");
  let help = "";
  if (!scanner.atEnd()) {
    scanner.requireBlanks(
      "expected a blank between the metric name and the help text",
    );
    help = unescapeExpositionString(scanner.readRest(), true);
  }
  const problem = builder.setHelp(name, help, scanner.lineNumber);
  if (problem !== undefined) {
    scanner.failLine(problem);
  }
}

function parseType(scanner: LineScanner, builder: ExpositionBuilder): void {
  parseTypeDeclaration(
    scanner,
    builder,
    OPENMETRICS_TYPES,
    "expected metric type counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown",
  );
}

function parseSampleLine(
  scanner: LineScanner,
  builder: ExpositionBuilder,
  series: SeriesBuffer,
  exemplarSeries: SeriesBuffer,
): void {
  readSeries(scanner, series);
  scanner.requireBlanks(
    "expected a blank and the sample value after the series",
  );
  const value = readNumber(
    scanner,
    "expected sample value (a number, NaN, +Inf or -Inf)",
  );

  let timestampMs: number | undefined;
  scanner.skipBlanks();
  if (!scanner.atEnd() && scanner.peek() !== HASH) {
    timestampMs = readTimestampMs(
      scanner,
      'expected end of line, a timestamp in seconds or "# " and an exemplar',
    );
    scanner.skipBlanks();
  }
  if (!scanner.atEnd()) {
    if (scanner.peek() !== HASH) {
      scanner.fail('expected end of line or "# " and an exemplar');
    }
    skipExemplar(scanner, exemplarSeries);
  }
  builder.addSample(series, value, timestampMs, scanner.lineNumber);
}

/**
 * Checks an exemplar (`# {labels} value [timestamp]`) starting at the `#` and
 * moves to the end of the line. Exemplars are not stored.
 */
function skipExemplar(
  scanner: LineScanner,
  exemplarSeries: SeriesBuffer,
): void {
  scanner.pos++;
  scanner.requireBlanks('expected a blank after "#" before the exemplar');
  if (scanner.peek() !== OPEN_BRACE) {
    scanner.fail('expected the exemplar label set "{...}"');
  }
  exemplarSeries.clear();
  readLabelSet(scanner, exemplarSeries, false);
  scanner.requireBlanks(
    "expected a blank and the exemplar value after its label set",
  );
  readNumber(scanner, "expected exemplar value (a number)");
  scanner.skipBlanks();
  if (!scanner.atEnd()) {
    readTimestampMs(
      scanner,
      "expected end of line or an exemplar timestamp in seconds",
    );
    scanner.skipBlanks();
    if (!scanner.atEnd()) {
      scanner.fail("expected end of line after the exemplar timestamp");
    }
  }
}

function readNumber(scanner: LineScanner, expected: string): number {
  const start = scanner.pos;
  const text = scanner.readToken();
  const value = parseFloatValue(text);
  if (value === undefined) {
    scanner.pos = start;
    scanner.fail(expected, text);
  }
  return value;
}

/** Reads a timestamp in float seconds and returns it in whole milliseconds. */
function readTimestampMs(scanner: LineScanner, expected: string): number {
  const start = scanner.pos;
  const text = scanner.readToken();
  const seconds = parseFloatValue(text);
  if (seconds === undefined || !Number.isFinite(seconds)) {
    scanner.pos = start;
    scanner.fail(expected, text);
  }
  return Math.round(seconds * 1000);
}
