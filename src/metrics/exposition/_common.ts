/**
 * Scanner, float parsing and sample collection shared by the Prometheus text
 * 0.0.4 parser and the OpenMetrics 1.0 parser.
 *
 * Both parsers walk the body line by line with a {@linkcode LineScanner}
 * (character codes, no regular expressions) and hand HELP, TYPE and sample
 * lines to an {@linkcode ExpositionBuilder}, which assigns families, drops
 * repeated series and records line errors.
 *
 * @module
 */

import type {
  ExpositionLineError,
  MetricType,
  ParsedExposition,
  Sample,
} from "./types.ts";

/** Character code of `#`, which starts comments and OpenMetrics exemplars. */
export const HASH = 0x23;
/** Character code of `{`, which opens a label set. */
export const OPEN_BRACE = 0x7b;

const TAB = 0x09;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const EQUALS = 0x3d;
const UPPER_A = 0x41;
const UPPER_E = 0x45;
const UPPER_Z = 0x5a;
const BACKSLASH = 0x5c;
const UNDERSCORE = 0x5f;
const LOWER_A = 0x61;
const LOWER_E = 0x65;
const LOWER_N = 0x6e;
const LOWER_Z = 0x7a;
const CLOSE_BRACE = 0x7d;

/** Maximum length of the line excerpt quoted in an error message. */
const MAX_FRAGMENT_LENGTH = 80;

function isDigit(code: number): boolean {
  return code >= DIGIT_0 && code <= DIGIT_9;
}

function isLetterOrUnderscore(code: number): boolean {
  return (code >= LOWER_A && code <= LOWER_Z) ||
    (code >= UPPER_A && code <= UPPER_Z) || code === UNDERSCORE;
}

function isLabelNameChar(code: number): boolean {
  return isLetterOrUnderscore(code) || isDigit(code);
}

function isMetricNameStart(code: number): boolean {
  return isLetterOrUnderscore(code) || code === COLON;
}

function isMetricNameChar(code: number): boolean {
  return isLetterOrUnderscore(code) || isDigit(code) || code === COLON;
}

function isBlank(code: number): boolean {
  return code === SPACE || code === TAB;
}

/**
 * Parses a sample value the way Go's `strconv.ParseFloat` reads the values
 * that Prometheus clients write.
 *
 * Accepts decimal numbers with an optional sign, fraction and exponent
 * (`5.221789e+06`, `.5`, `1.`), `NaN` and an optionally signed `Inf` or
 * `Infinity`, all case-insensitive as in Go. Returns `undefined` for anything
 * else, including the empty string. Go's hexadecimal floats (`0x1p-2`) and
 * digit underscores are rejected, as the Prometheus text parser rejects them.
 */
export function parseFloatValue(text: string): number | undefined {
  const length = text.length;
  let index = 0;
  const first = text.charCodeAt(0);
  if (first === PLUS || first === MINUS) {
    index = 1;
  }

  let digitCount = 0;
  while (index < length && isDigit(text.charCodeAt(index))) {
    index++;
    digitCount++;
  }
  if (index < length && text.charCodeAt(index) === DOT) {
    index++;
    while (index < length && isDigit(text.charCodeAt(index))) {
      index++;
      digitCount++;
    }
  }
  if (digitCount === 0) {
    return parseSpecialFloat(text);
  }

  if (index < length) {
    const code = text.charCodeAt(index);
    if (code === LOWER_E || code === UPPER_E) {
      index++;
      const sign = text.charCodeAt(index);
      if (sign === PLUS || sign === MINUS) {
        index++;
      }
      let exponentDigits = 0;
      while (index < length && isDigit(text.charCodeAt(index))) {
        index++;
        exponentDigits++;
      }
      if (exponentDigits === 0) {
        return undefined;
      }
    }
  }
  if (index !== length) {
    return undefined;
  }
  // The scan above admits only the decimal syntax, which Number() reads the
  // same way Go does, so Number() cannot see a hex prefix or blanks here.
  return Number(text);
}

function parseSpecialFloat(text: string): number | undefined {
  switch (text.toLowerCase()) {
    case "nan":
      return NaN;
    case "inf":
    case "+inf":
    case "infinity":
    case "+infinity":
      return Infinity;
    case "-inf":
    case "-infinity":
      return -Infinity;
    default:
      return undefined;
  }
}

/**
 * Parses a decimal integer with an optional sign, as used for text-format
 * timestamps. Returns `undefined` for anything else.
 */
export function parseIntegerValue(text: string): number | undefined {
  const length = text.length;
  let index = 0;
  const first = text.charCodeAt(0);
  if (first === PLUS || first === MINUS) {
    index = 1;
  }
  if (index === length) {
    return undefined;
  }
  while (index < length) {
    if (!isDigit(text.charCodeAt(index))) {
      return undefined;
    }
    index++;
  }
  return Number(text);
}

/**
 * Replaces the escape sequences `\\`, `\n` and, when `unescapeQuote` is set,
 * `\"` in `text`.
 *
 * Any other backslash sequence is kept as written, which is what the
 * Prometheus parsers do with the text format.
 */
export function unescapeExpositionString(
  text: string,
  unescapeQuote: boolean,
): string {
  let backslash = text.indexOf("\\");
  if (backslash === -1) {
    return text;
  }
  let result = "";
  let copiedUpTo = 0;
  while (backslash !== -1 && backslash + 1 < text.length) {
    const next = text.charCodeAt(backslash + 1);
    let replacement: string | undefined;
    if (next === BACKSLASH) {
      replacement = "\\";
    } else if (next === LOWER_N) {
      replacement = "\n";
    } else if (next === QUOTE && unescapeQuote) {
      replacement = '"';
    }
    if (replacement === undefined) {
      backslash = text.indexOf("\\", backslash + 1);
      continue;
    }
    result += text.slice(copiedUpTo, backslash) + replacement;
    copiedUpTo = backslash + 2;
    backslash = text.indexOf("\\", copiedUpTo);
  }
  return result + text.slice(copiedUpTo);
}

/** A syntax or consistency problem on one line; the line is skipped. */
export class LineSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LineSyntaxError";
  }
}

/**
 * Cursor over one line of an exposition body at a time.
 *
 * `nextLine()` moves to the next line, without its `\n` or a `\r` before it.
 * The read methods advance `pos` within the current line and throw
 * {@linkcode LineSyntaxError} with a message that names what was expected,
 * what was found and an excerpt of the line.
 */
export class LineScanner {
  readonly text: string;
  /** Offset of the next character to read. */
  pos = 0;
  /** Offset just past the current line, without its line ending. */
  end = 0;
  /** Offset of the first character of the current line. */
  lineStart = 0;
  /** One-based number of the current line; 0 before the first `nextLine()`. */
  lineNumber = 0;
  private nextLineStart = 0;

  constructor(text: string) {
    this.text = text;
  }

  /** Moves to the next line and returns whether there was one. */
  nextLine(): boolean {
    const text = this.text;
    const start = this.nextLineStart;
    if (start >= text.length) {
      return false;
    }
    const newline = text.indexOf("\n", start);
    let end = newline === -1 ? text.length : newline;
    this.nextLineStart = newline === -1 ? text.length : newline + 1;
    if (end > start && text.charCodeAt(end - 1) === CR) {
      end--;
    }
    this.lineStart = start;
    this.pos = start;
    this.end = end;
    this.lineNumber++;
    return true;
  }

  /** Character code at `pos`, or -1 at the end of the line. */
  peek(): number {
    return this.pos < this.end ? this.text.charCodeAt(this.pos) : -1;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  skipBlanks(): void {
    while (this.pos < this.end && isBlank(this.text.charCodeAt(this.pos))) {
      this.pos++;
    }
  }

  /** Returns whether the rest of the line is empty or only spaces and tabs. */
  restIsBlank(): boolean {
    for (let index = this.pos; index < this.end; index++) {
      if (!isBlank(this.text.charCodeAt(index))) {
        return false;
      }
    }
    return true;
  }

  /** Skips at least one blank, or fails with `expected`. */
  requireBlanks(expected: string): void {
    if (this.pos >= this.end || !isBlank(this.text.charCodeAt(this.pos))) {
      this.fail(expected);
    }
    this.skipBlanks();
  }

  /** Consumes the character `code`, or fails with `expected`. */
  expectChar(code: number, expected: string): void {
    if (this.peek() !== code) {
      this.fail(expected);
    }
    this.pos++;
  }

  /** Reads up to the next blank or the end of the line. */
  readToken(): string {
    const start = this.pos;
    while (this.pos < this.end && !isBlank(this.text.charCodeAt(this.pos))) {
      this.pos++;
    }
    return this.text.slice(start, this.pos);
  }

  /** Returns the rest of the line and moves to its end. */
  readRest(): string {
    const rest = this.text.slice(this.pos, this.end);
    this.pos = this.end;
    return rest;
  }

  /**
   * Reads a metric name: either bare (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, as
   * Prometheus 3 writes UTF-8 names, a non-empty double-quoted string.
   */
  readMetricName(expected: string): string {
    if (this.peek() !== QUOTE) {
      return this.readBareMetricName(expected);
    }
    const start = this.pos;
    const name = this.readQuoted();
    if (name === "") {
      this.pos = start;
      this.fail(expected);
    }
    return name;
  }

  /** Reads a bare metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
  readBareMetricName(expected: string): string {
    const start = this.pos;
    if (!isMetricNameStart(this.peek())) {
      this.fail(expected);
    }
    this.pos++;
    while (
      this.pos < this.end && isMetricNameChar(this.text.charCodeAt(this.pos))
    ) {
      this.pos++;
    }
    return this.text.slice(start, this.pos);
  }

  /**
   * Reads a double-quoted string starting at `pos` and unescapes `\\`, `\"`
   * and `\n` in it.
   */
  readQuoted(): string {
    const text = this.text;
    const openingQuote = this.pos;
    this.pos++;
    let hasEscape = false;
    while (this.pos < this.end) {
      const code = text.charCodeAt(this.pos);
      if (code === QUOTE) {
        const raw = text.slice(openingQuote + 1, this.pos);
        this.pos++;
        return hasEscape ? unescapeExpositionString(raw, true) : raw;
      }
      if (code === BACKSLASH) {
        hasEscape = true;
        // Skips the escaped character so that `\"` does not end the string.
        this.pos++;
      }
      this.pos++;
    }
    this.pos = this.end;
    return this.fail(
      `expected closing double quote of the string opened at column ${
        openingQuote - this.lineStart + 1
      }`,
    );
  }

  /**
   * Throws a {@linkcode LineSyntaxError} whose message is `expected`, what
   * was found at `pos` (the character there unless `foundToken` is given),
   * the column and an excerpt of the line.
   */
  fail(expected: string, foundToken?: string): never {
    let found: string;
    if (foundToken !== undefined && foundToken !== "") {
      found = JSON.stringify(foundToken);
    } else if (this.pos < this.end) {
      found = JSON.stringify(this.text[this.pos]);
    } else {
      found = "end of line";
    }
    throw new LineSyntaxError(
      `${expected}, found ${found} at column ${
        this.pos - this.lineStart + 1
      }: ${this.excerpt()}`,
    );
  }

  /**
   * Throws a {@linkcode LineSyntaxError} with `message` and an excerpt from
   * the start of the line.
   */
  failLine(message: string): never {
    this.pos = this.lineStart;
    throw new LineSyntaxError(`${message}: ${this.excerpt()}`);
  }

  /** Up to 80 characters of the current line around `pos`. */
  excerpt(): string {
    const lineLength = this.end - this.lineStart;
    if (lineLength <= MAX_FRAGMENT_LENGTH) {
      return this.text.slice(this.lineStart, this.end);
    }
    const half = MAX_FRAGMENT_LENGTH / 2;
    const from = Math.max(this.lineStart, this.pos - half);
    const to = Math.min(this.end, from + MAX_FRAGMENT_LENGTH);
    const prefix = from > this.lineStart ? "…" : "";
    const suffix = to < this.end ? "…" : "";
    return prefix + this.text.slice(from, to) + suffix;
  }
}

/**
 * The series of one sample or exemplar line: metric name and labels.
 *
 * A buffer is reused from line to line, so only the first `labelCount`
 * entries of the arrays belong to the current line.
 */
export class SeriesBuffer {
  name = "";
  labelNames: string[] = [];
  labelValues: string[] = [];
  labelCount = 0;
  /**
   * The series exactly as written when that is already its canonical form
   * (see {@linkcode renderSeriesKey}), else `undefined`.
   */
  canonicalText: string | undefined = undefined;
  /**
   * Whether every label name was bare and every value had no escapes, so
   * that each needs no quoting in {@linkcode renderSeriesKey}.
   */
  plainLabels = true;
  /** Label indexes sorted by label name, filled by `sortLabels()`. */
  readonly sortedOrder: number[] = [];
  /** Label names of the previous line by position, see `pushLabel()`. */
  private readonly previousLabelNames: string[] = [];

  clear(): void {
    this.name = "";
    this.labelCount = 0;
    this.canonicalText = undefined;
    this.plainLabels = true;
  }

  /** Returns whether `name` is among the labels pushed so far on this line. */
  hasLabel(name: string): boolean {
    for (let index = 0; index < this.labelCount; index++) {
      if (this.labelNames[index] === name) {
        return true;
      }
    }
    return false;
  }

  /**
   * Appends a label. A name equal to the previous line's name at the same
   * position is replaced by that string object, which V8 has already
   * internalized as a property key, so building the label record is cheaper.
   */
  pushLabel(name: string, value: string): void {
    const index = this.labelCount;
    const previous = this.previousLabelNames[index];
    if (name === previous) {
      this.labelNames[index] = previous;
    } else {
      this.labelNames[index] = name;
      this.previousLabelNames[index] = name;
    }
    this.labelValues[index] = value;
    this.labelCount = index + 1;
  }

  /** Fills `sortedOrder` with the label indexes in label-name order. */
  sortLabels(): void {
    const names = this.labelNames;
    const order = this.sortedOrder;
    order.length = this.labelCount;
    // Insertion sort, because label sets are short and often nearly sorted.
    for (let index = 0; index < this.labelCount; index++) {
      const name = names[index]!;
      let position = index;
      while (position > 0 && names[order[position - 1]!]! > name) {
        order[position] = order[position - 1]!;
        position--;
      }
      order[position] = index;
    }
  }
}

function skipBlanksFrom(text: string, pos: number): number {
  let code = text.charCodeAt(pos);
  while (code === SPACE || code === TAB) {
    pos++;
    code = text.charCodeAt(pos);
  }
  return pos;
}

/**
 * Reads a label set starting at the `{` under the scanner into `series`.
 * Returns whether the set is written canonically: bare label names in
 * strictly ascending order, values without escapes, at least one label, and
 * no blanks or trailing comma.
 *
 * Also accepts blanks around the tokens, an empty set, a trailing comma and
 * double-quoted label names. A repeated label name is an error. When
 * `allowMetricName` is set, a quoted string that is the first item and is
 * not followed by `=` is stored as `series.name` (`{"my.metric",le="1"}`).
 */
export function readLabelSet(
  scanner: LineScanner,
  series: SeriesBuffer,
  allowMetricName: boolean,
): boolean {
  // This is the hot path of both parsers, so the position lives in a local
  // variable. Loops over names and blanks read up to the character after the
  // line without a bounds check. That character is "\r", "\n" or, at the end
  // of the body, NaN, and none of these continues a token.
  const text = scanner.text;
  const end = scanner.end;
  scanner.expectChar(OPEN_BRACE, 'expected "{"');
  let pos = scanner.pos;
  let canonical = true;
  let first = true;
  for (;;) {
    let code = text.charCodeAt(pos);
    if (code === SPACE || code === TAB) {
      canonical = false;
      pos = skipBlanksFrom(text, pos);
      code = text.charCodeAt(pos);
    }
    if (code === CLOSE_BRACE) {
      // Reached on `{}` and after a trailing comma.
      scanner.pos = pos + 1;
      return false;
    }

    const nameStart = pos;
    let labelName: string;
    if (code === QUOTE) {
      canonical = false;
      series.plainLabels = false;
      scanner.pos = pos;
      labelName = scanner.readQuoted();
      pos = skipBlanksFrom(text, scanner.pos);
      const next = text.charCodeAt(pos);
      if (
        first && allowMetricName && (next === COMMA || next === CLOSE_BRACE)
      ) {
        if (labelName === "") {
          scanner.pos = nameStart;
          scanner.fail("expected a non-empty quoted metric name");
        }
        series.name = labelName;
        first = false;
        pos++;
        if (next === CLOSE_BRACE) {
          scanner.pos = pos;
          return false;
        }
        continue;
      }
      if (labelName === "") {
        scanner.pos = nameStart;
        scanner.fail("expected a non-empty quoted label name");
      }
    } else {
      if (!isLetterOrUnderscore(code)) {
        scanner.pos = pos;
        scanner.fail('expected label name or "}"');
      }
      pos++;
      while (isLabelNameChar(text.charCodeAt(pos))) {
        pos++;
      }
      labelName = text.slice(nameStart, pos);
      code = text.charCodeAt(pos);
      if (code === SPACE || code === TAB) {
        canonical = false;
        pos = skipBlanksFrom(text, pos);
      }
    }
    first = false;

    if (text.charCodeAt(pos) !== EQUALS) {
      scanner.pos = pos;
      scanner.fail(
        `expected "=" after label name ${JSON.stringify(labelName)}`,
      );
    }
    pos++;
    code = text.charCodeAt(pos);
    if (code === SPACE || code === TAB) {
      canonical = false;
      pos = skipBlanksFrom(text, pos);
      code = text.charCodeAt(pos);
    }
    if (code !== QUOTE) {
      scanner.pos = pos;
      scanner.fail(
        `expected label value in double quotes for label ${
          JSON.stringify(labelName)
        }`,
      );
    }

    const valueStart = pos + 1;
    let valueEnd = valueStart;
    let hasEscape = false;
    while (valueEnd < end) {
      code = text.charCodeAt(valueEnd);
      if (code === QUOTE) {
        break;
      }
      if (code === BACKSLASH) {
        hasEscape = true;
        // Skips the escaped character so that `\"` does not end the value.
        valueEnd++;
      }
      valueEnd++;
    }
    if (valueEnd >= end) {
      scanner.pos = end;
      scanner.fail(
        `expected closing double quote of the value of label ${
          JSON.stringify(labelName)
        }`,
      );
    }
    let labelValue = text.slice(valueStart, valueEnd);
    if (hasEscape) {
      labelValue = unescapeExpositionString(labelValue, true);
      canonical = false;
      series.plainLabels = false;
    }
    pos = valueEnd + 1;

    if (series.hasLabel(labelName)) {
      scanner.pos = nameStart;
      scanner.fail(
        `expected each label name once, found ${
          JSON.stringify(labelName)
        } again`,
      );
    }
    const count = series.labelCount;
    if (count > 0 && !(series.labelNames[count - 1]! < labelName)) {
      canonical = false;
    }
    series.pushLabel(labelName, labelValue);

    code = text.charCodeAt(pos);
    if (code === SPACE || code === TAB) {
      canonical = false;
      pos = skipBlanksFrom(text, pos);
      code = text.charCodeAt(pos);
    }
    if (code === CLOSE_BRACE) {
      scanner.pos = pos + 1;
      return canonical;
    }
    if (code !== COMMA) {
      scanner.pos = pos;
      scanner.fail('expected "," or "}" after label value');
    }
    pos++;
  }
}

/**
 * Reads the series part of a sample line (`name{labels}`, `name` or
 * `{"name",labels}`) into `series` and leaves the scanner after it.
 */
export function readSeries(scanner: LineScanner, series: SeriesBuffer): void {
  series.clear();
  const text = scanner.text;
  const seriesStart = scanner.pos;
  const first = text.charCodeAt(seriesStart);
  if (first === OPEN_BRACE) {
    readLabelSet(scanner, series, true);
    if (series.name === "") {
      scanner.pos = seriesStart;
      scanner.fail(
        'expected a metric name before "{" or as the first quoted item inside it',
      );
    }
    return;
  }

  if (!isMetricNameStart(first)) {
    scanner.fail('expected metric name, "{" or "#"');
  }
  let pos = seriesStart + 1;
  while (isMetricNameChar(text.charCodeAt(pos))) {
    pos++;
  }
  series.name = text.slice(seriesStart, pos);
  scanner.pos = pos;

  let code = text.charCodeAt(pos);
  if (code === OPEN_BRACE) {
    if (readLabelSet(scanner, series, false)) {
      series.canonicalText = text.slice(seriesStart, scanner.pos);
    }
    return;
  }
  if (code === SPACE || code === TAB) {
    const afterBlanks = skipBlanksFrom(text, pos);
    code = text.charCodeAt(afterBlanks);
    if (code === OPEN_BRACE) {
      scanner.pos = afterBlanks;
      readLabelSet(scanner, series, false);
      return;
    }
  }
  series.canonicalText = series.name;
}

/**
 * Renders the canonical text form of a series, which serves as its key for
 * finding repeated series.
 *
 * The form is the bare metric name, or `{"name",` when the name is not a
 * valid bare name. The labels follow sorted by name as `name="value"`, with
 * `\`, `"` and line feeds escaped and with names quoted when they are not
 * valid bare label names. Because this is a serialisation, two series get
 * the same string exactly when they have the same name and the same labels.
 */
export function renderSeriesKey(series: SeriesBuffer): string {
  const count = series.labelCount;
  const name = series.name;
  const bareName = isBareName(name, true);
  if (count === 0) {
    return bareName ? name : `{${quoteString(name)}}`;
  }
  const names = series.labelNames;
  const values = series.labelValues;
  series.sortLabels();
  const order = series.sortedOrder;
  const plain = series.plainLabels;

  let key = bareName ? name + "{" : "{" + quoteString(name) + ",";
  for (let position = 0; position < count; position++) {
    const index = order[position]!;
    const labelName = names[index]!;
    const labelValue = values[index]!;
    if (plain) {
      key += labelName + '="' + labelValue + '"';
    } else {
      key += isBareName(labelName, false) ? labelName : quoteString(labelName);
      key += "=" + quoteString(labelValue);
    }
    key += position === count - 1 ? "}" : ",";
  }
  return key;
}

function isBareName(name: string, allowColon: boolean): boolean {
  if (name === "") {
    return false;
  }
  const first = name.charCodeAt(0);
  if (!(allowColon ? isMetricNameStart(first) : isLetterOrUnderscore(first))) {
    return false;
  }
  for (let index = 1; index < name.length; index++) {
    const code = name.charCodeAt(index);
    if (!(allowColon ? isMetricNameChar(code) : isLabelNameChar(code))) {
      return false;
    }
  }
  return true;
}

function quoteString(text: string): string {
  return '"' +
    text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
      "\n",
      "\\n",
    ) + '"';
}

/** Options that differ between the text format and OpenMetrics. */
export interface ExpositionDialect {
  /**
   * Whether a counter's samples may carry the family name itself, as in the
   * text format (`# TYPE http_requests_total counter` then
   * `http_requests_total 5`). OpenMetrics requires the `_total` suffix.
   */
  counterSampleMayUseFamilyName: boolean;
  /**
   * Whether a counter declared with a name ending in `_total` gets the name
   * without it as its family name. prometheus_client writes
   * `# TYPE vllm:prompt_tokens_total counter` in the text format and
   * `# TYPE vllm:prompt_tokens counter` in OpenMetrics for the same counter,
   * so stripping makes both formats report the family `vllm:prompt_tokens`.
   */
  stripCounterTotalSuffix: boolean;
}

interface FamilyState {
  name: string;
  type: MetricType;
  help: string | undefined;
  /** Line of the `# TYPE` line, or 0 when none was seen. */
  typeLine: number;
  /** Line of the `# HELP` line, or 0 when none was seen. */
  helpLine: number;
  /** Line of the first sample assigned to the family, or 0. */
  firstSampleLine: number;
}

/**
 * Sample-name suffixes and the family types that own them. A sample named
 * `<family><suffix>` belongs to `<family>` only when the family's type is
 * listed for the suffix.
 */
const SUFFIX_OWNERS: ReadonlyArray<readonly [string, ReadonlySet<MetricType>]> =
  [
    ["_bucket", new Set<MetricType>(["histogram", "gaugehistogram"])],
    ["_count", new Set<MetricType>(["histogram", "summary"])],
    ["_sum", new Set<MetricType>(["histogram", "summary"])],
    ["_total", new Set<MetricType>(["counter"])],
    ["_created", new Set<MetricType>(["counter", "histogram", "summary"])],
    ["_gcount", new Set<MetricType>(["gaugehistogram"])],
    ["_gsum", new Set<MetricType>(["gaugehistogram"])],
    ["_info", new Set<MetricType>(["info"])],
  ];

/** Family types whose samples may carry the family name with no suffix. */
const TYPES_WITH_UNSUFFIXED_SAMPLES: ReadonlySet<MetricType> = new Set<
  MetricType
>(["gauge", "summary", "stateset", "unknown", "untyped"]);

/**
 * Collects the families, samples and errors of one body.
 *
 * A sample named like a declared family whose type allows samples without a
 * suffix belongs to that family. Otherwise a sample named
 * `<family><suffix>` belongs to `<family>` when the family's type owns the
 * suffix (see `SUFFIX_OWNERS`). Any other sample forms its own `untyped`
 * family named after the sample.
 */
export class ExpositionBuilder {
  private readonly dialect: ExpositionDialect;
  /** Families by every name they were declared or stored under. */
  private readonly familiesByName = new Map<string, FamilyState>();
  /** Families in order of first mention, each once. */
  private readonly familyList: FamilyState[] = [];
  /**
   * Untyped families of samples whose own name belongs to a declared family
   * of another type, such as `foo` below `# TYPE foo histogram`. They are not
   * listed in `families` because the declared family uses that name.
   */
  private readonly shadowedFamilies = new Map<string, FamilyState>();
  private readonly seriesKeys = new Set<string>();
  private readonly samples: Sample[] = [];
  private readonly errors: ExpositionLineError[] = [];
  private duplicateSamples = 0;
  /** Family of the previous sample name, because samples of one name come in runs. */
  private lastSampleName: string | undefined;
  private lastSampleFamily: FamilyState | undefined;

  constructor(dialect: ExpositionDialect) {
    this.dialect = dialect;
  }

  addError(line: number, message: string): void {
    this.errors.push({ line, message });
  }

  /**
   * Stores the help text of family `name`. Returns an error message, and
   * changes nothing, when the family already has a `# HELP` line.
   */
  setHelp(name: string, help: string, line: number): string | undefined {
    this.forgetLastSample();
    const family = this.familiesByName.get(name);
    if (family === undefined) {
      const created = this.createFamily(name, "untyped");
      created.help = help;
      created.helpLine = line;
      return undefined;
    }
    if (family.helpLine !== 0) {
      return `expected one # HELP line per family, found a second one for ${
        JSON.stringify(name)
      } (first on line ${family.helpLine})`;
    }
    family.help = help;
    family.helpLine = line;
    return undefined;
  }

  /**
   * Declares the type of family `name`. Returns an error message, and changes
   * nothing, when the family already has a `# TYPE` line or already has
   * samples.
   */
  setType(name: string, type: MetricType, line: number): string | undefined {
    this.forgetLastSample();
    let family = this.familiesByName.get(name);
    if (family === undefined) {
      family = this.createFamily(name, type);
    } else if (family.typeLine !== 0) {
      return `expected one # TYPE line per family, found a second one for ${
        JSON.stringify(name)
      } (declared ${family.type} on line ${family.typeLine})`;
    } else if (family.firstSampleLine !== 0) {
      return `expected # TYPE before the first sample of ${
        JSON.stringify(name)
      }, found it after that sample (line ${family.firstSampleLine})`;
    }
    family.type = type;
    family.typeLine = line;

    if (
      this.dialect.stripCounterTotalSuffix && type === "counter" &&
      name.length > "_total".length && name.endsWith("_total")
    ) {
      const baseName = name.slice(0, -"_total".length);
      // A name already used by another family keeps the counter's full name.
      if (!this.familiesByName.has(baseName)) {
        family.name = baseName;
        this.familiesByName.set(baseName, family);
      }
    }
    return undefined;
  }

  /**
   * Adds one sample unless its series (name plus label set, in any order) was
   * already added, in which case only `duplicateSamples` grows.
   */
  addSample(
    series: SeriesBuffer,
    value: number,
    timestampMs: number | undefined,
    line: number,
  ): void {
    const key = series.canonicalText ?? renderSeriesKey(series);
    const seriesCount = this.seriesKeys.size;
    this.seriesKeys.add(key);
    if (this.seriesKeys.size === seriesCount) {
      this.duplicateSamples++;
      return;
    }

    const name = series.name;
    let family = this.lastSampleFamily;
    if (name !== this.lastSampleName || family === undefined) {
      family = this.resolveFamily(name);
      this.lastSampleName = name;
      this.lastSampleFamily = family;
    }
    if (family.firstSampleLine === 0) {
      family.firstSampleLine = line;
    }

    const labels = buildLabelRecord(series);
    if (timestampMs === undefined) {
      this.samples.push({
        name,
        labels,
        value,
        family: family.name,
        type: family.type,
      });
    } else {
      this.samples.push({
        name,
        labels,
        value,
        timestampMs,
        family: family.name,
        type: family.type,
      });
    }
  }

  finish(): ParsedExposition {
    const families = new Map<string, { type: MetricType; help?: string }>();
    for (const family of this.familyList) {
      families.set(
        family.name,
        family.help === undefined
          ? { type: family.type }
          : { type: family.type, help: family.help },
      );
    }
    return {
      samples: this.samples,
      families,
      errors: this.errors,
      duplicateSamples: this.duplicateSamples,
    };
  }

  private forgetLastSample(): void {
    this.lastSampleName = undefined;
    this.lastSampleFamily = undefined;
  }

  private createFamily(name: string, type: MetricType): FamilyState {
    const family: FamilyState = {
      name,
      type,
      help: undefined,
      typeLine: 0,
      helpLine: 0,
      firstSampleLine: 0,
    };
    this.familiesByName.set(name, family);
    this.familyList.push(family);
    return family;
  }

  private resolveFamily(sampleName: string): FamilyState {
    const exact = this.familiesByName.get(sampleName);
    if (exact !== undefined && this.allowsUnsuffixedSample(exact.type)) {
      return exact;
    }
    for (const [suffix, owners] of SUFFIX_OWNERS) {
      if (
        sampleName.length > suffix.length && sampleName.endsWith(suffix)
      ) {
        const base = this.familiesByName.get(
          sampleName.slice(0, -suffix.length),
        );
        if (base !== undefined && owners.has(base.type)) {
          return base;
        }
      }
    }
    if (exact === undefined) {
      return this.createFamily(sampleName, "untyped");
    }

    let shadowed = this.shadowedFamilies.get(sampleName);
    if (shadowed === undefined) {
      shadowed = {
        name: sampleName,
        type: "untyped",
        help: undefined,
        typeLine: 0,
        helpLine: 0,
        firstSampleLine: 0,
      };
      this.shadowedFamilies.set(sampleName, shadowed);
    }
    return shadowed;
  }

  private allowsUnsuffixedSample(type: MetricType): boolean {
    return TYPES_WITH_UNSUFFIXED_SAMPLES.has(type) ||
      (type === "counter" && this.dialect.counterSampleMayUseFamilyName);
  }
}

function buildLabelRecord(series: SeriesBuffer): Record<string, string> {
  const record: Record<string, string> = {};
  for (let index = 0; index < series.labelCount; index++) {
    const name = series.labelNames[index]!;
    const value = series.labelValues[index]!;
    if (name === "__proto__") {
      // Plain assignment would replace the prototype instead of adding a key.
      Object.defineProperty(record, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      record[name] = value;
    }
  }
  return record;
}

/**
 * Parses the rest of a `# TYPE` line (after the keyword) and records the
 * type, failing the line when the type is not one of `types`.
 */
export function parseTypeDeclaration(
  scanner: LineScanner,
  builder: ExpositionBuilder,
  types: ReadonlySet<string>,
  expectedTypes: string,
): void {
  scanner.skipBlanks();
  const name = scanner.readMetricName("expected metric name after # TYPE");
  scanner.requireBlanks("expected a blank and the metric type after the name");
  const typeStart = scanner.pos;
  const typeName = scanner.readToken();
  if (!types.has(typeName)) {
    scanner.pos = typeStart;
    scanner.fail(expectedTypes, typeName);
  }
  scanner.skipBlanks();
  if (!scanner.atEnd()) {
    scanner.fail("expected end of line after the metric type");
  }
  const problem = builder.setType(
    name,
    typeName as MetricType,
    scanner.lineNumber,
  );
  if (problem !== undefined) {
    scanner.failLine(problem);
  }
}
