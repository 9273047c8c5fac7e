/**
 * The condition language of alert rules, read by a hand-written tokenizer
 * and recursive-descent parser. Nothing in a condition runs as code.
 *
 * ```text
 * condition  = comparison { "and" comparison }
 * comparison = operand operator number
 * operand    = "up" | percentile "(" selector ")" | selector
 * percentile = "p50" | "p90" | "p95" | "p99"
 * selector   = metric-name [ "{" [ matcher { "," matcher } [ "," ] ] "}" ]
 * matcher    = label-name "=" string
 * operator   = ">" | ">=" | "<" | "<=" | "==" | "!="
 * ```
 *
 * Metric names follow the Prometheus text format (`[A-Za-z_:][A-Za-z0-9_:]*`),
 * strings are double- or single-quoted with backslash escapes, and numbers
 * are decimal floats with an optional sign and exponent. `and` is a reserved
 * word. Examples:
 *
 * - `vllm:kv_cache_usage_perc > 0.9`
 * - `p95(vllm:request_queue_time_seconds{model_name="org/model-7b"}) > 2`
 * - `vllm:generation_tokens_total < 1 and vllm:num_requests_running > 0`
 * - `up == 0`
 *
 * @module
 */

/** Comparison operators of a condition. */
export type ComparisonOperator = ">" | ">=" | "<" | "<=" | "==" | "!=";

/** Percentile functions over a histogram. */
export type PercentileFunction = "p50" | "p90" | "p95" | "p99";

/** The quantile that each percentile function estimates. */
export const PERCENTILE_QUANTILES: Readonly<
  Record<PercentileFunction, number>
> = {
  p50: 0.5,
  p90: 0.9,
  p95: 0.95,
  p99: 0.99,
};

/** Left-hand side of a comparison. */
export type Operand =
  | { kind: "up" }
  | { kind: "metric"; metric: string; matchers: Record<string, string> }
  | {
    kind: "percentile";
    function: PercentileFunction;
    quantile: number;
    metric: string;
    matchers: Record<string, string>;
  };

/** One `<operand> <operator> <number>` term of a condition. */
export interface Comparison {
  operand: Operand;
  operator: ComparisonOperator;
  threshold: number;
  /** One-based column of the operand in the condition text. */
  operandColumn: number;
  /** One-based column of the threshold in the condition text. */
  thresholdColumn: number;
}

/** A parsed condition: comparisons that must all hold. */
export interface Condition {
  /** The condition text without leading and trailing white space. */
  text: string;
  comparisons: Comparison[];
}

/** A condition that does not follow the grammar, with the column at fault. */
export class ConditionSyntaxError extends SyntaxError {
  /** One-based column of the character where the problem starts. */
  readonly column: number;

  constructor(message: string, column: number) {
    super(message);
    this.name = "ConditionSyntaxError";
    this.column = column;
  }
}

const COMPARISON_OPERATORS: readonly string[] = [
  ">",
  ">=",
  "<",
  "<=",
  "==",
  "!=",
];
const OPERATOR_LIST = ">, >=, <, <=, ==, !=";

type TokenKind =
  | "identifier"
  | "number"
  | "string"
  | "operator"
  | "punctuation"
  | "end";

interface Token {
  kind: TokenKind;
  /** The token as written. */
  text: string;
  /** Unescaped content of a string token. */
  value: string;
  /** Zero-based offset in the condition text. */
  offset: number;
}

const IDENTIFIER = /[A-Za-z_:][A-Za-z0-9_:]*/y;
const NUMBER = /[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
const WHOLE_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const OPERATOR = /=~|!~|[<>=!]=?/y;
const ESCAPES: Record<string, string> = {
  "\\": "\\",
  '"': '"',
  "'": "'",
  n: "\n",
  t: "\t",
};

/** Reads tokens one at a time, so an error is reported at the first fault. */
class Tokenizer {
  readonly #text: string;
  #offset = 0;
  #peeked: Token | null = null;

  constructor(text: string) {
    this.#text = text;
  }

  peek(): Token {
    this.#peeked ??= this.#read();
    return this.#peeked;
  }

  /** Returns the text right after a token, without skipping white space. */
  textAfter(token: Token): string {
    return this.#text.slice(token.offset + token.text.length);
  }

  next(): Token {
    const token = this.peek();
    this.#peeked = null;
    return token;
  }

  #read(): Token {
    while (/\s/.test(this.#text[this.#offset] ?? "")) this.#offset++;
    const start = this.#offset;
    const char = this.#text[start];
    if (char === undefined) return this.#token("end", start, start);
    if (/[A-Za-z_:]/.test(char)) {
      return this.#token("identifier", start, this.#match(IDENTIFIER));
    }
    if (/[0-9.+-]/.test(char)) return this.#readNumber(start);
    if (char === '"' || char === "'") return this.#readString(start, char);
    if ("{}(),".includes(char)) {
      return this.#token("punctuation", start, start + 1);
    }
    if ("<>=!".includes(char)) {
      return this.#token("operator", start, this.#match(OPERATOR));
    }
    const hint = char === "&" || char === "|"
      ? "; join comparisons with the word and"
      : "";
    throw new ConditionSyntaxError(
      `unexpected character "${char}"${hint}`,
      start + 1,
    );
  }

  #match(pattern: RegExp): number {
    pattern.lastIndex = this.#offset;
    const match = pattern.exec(this.#text);
    return this.#offset + (match?.[0].length ?? 1);
  }

  #readNumber(start: number): Token {
    const end = this.#match(NUMBER);
    const text = this.#text.slice(start, end);
    if (!WHOLE_NUMBER.test(text)) {
      throw new ConditionSyntaxError(
        `expected a number, found "${text}"`,
        start + 1,
      );
    }
    return this.#token("number", start, end);
  }

  #readString(start: number, quote: string): Token {
    let value = "";
    let index = start + 1;
    while (index < this.#text.length) {
      const char = this.#text[index]!;
      if (char === quote) {
        const token = this.#token("string", start, index + 1);
        token.value = value;
        return token;
      }
      if (char === "\\") {
        const escaped = ESCAPES[this.#text[index + 1] ?? ""];
        if (escaped === undefined) {
          throw new ConditionSyntaxError(
            "invalid escape in a label value; use \\\\, \\\", \\', \\n or \\t",
            index + 1,
          );
        }
        value += escaped;
        index += 2;
        continue;
      }
      value += char;
      index++;
    }
    throw new ConditionSyntaxError(
      `label value has no closing ${quote}`,
      start + 1,
    );
  }

  #token(kind: TokenKind, start: number, end: number): Token {
    this.#offset = end;
    const text = this.#text.slice(start, end);
    return { kind, text, value: text, offset: start };
  }
}

function describeToken(token: Token): string {
  return token.kind === "end" ? "the end of the condition" : `"${token.text}"`;
}

function fail(expected: string, token: Token, hint = ""): never {
  throw new ConditionSyntaxError(
    `expected ${expected}, found ${describeToken(token)}${hint}`,
    token.offset + 1,
  );
}

function isPunctuation(token: Token, text: string): boolean {
  return token.kind === "punctuation" && token.text === text;
}

function parseMatchers(tokens: Tokenizer): Record<string, string> {
  const matchers: Record<string, string> = {};
  tokens.next();
  while (!isPunctuation(tokens.peek(), "}")) {
    const name = tokens.next();
    if (name.kind !== "identifier" || !LABEL_NAME.test(name.text)) {
      fail('a label name such as model_name or "}"', name);
    }
    if (Object.hasOwn(matchers, name.text)) {
      throw new ConditionSyntaxError(
        `label "${name.text}" is matched twice`,
        name.offset + 1,
      );
    }
    const equals = tokens.next();
    if (equals.text === "=~" || equals.text === "!~" || equals.text === "!=") {
      fail(
        '"="',
        equals,
        '; only exact matchers such as model_name="org/model-7b" are supported',
      );
    }
    if (equals.text !== "=") fail(`"=" after ${name.text}`, equals);
    const value = tokens.next();
    if (value.kind !== "string") {
      fail(`a quoted label value after ${name.text}=`, value);
    }
    matchers[name.text] = value.value;
    const separator = tokens.peek();
    if (isPunctuation(separator, ",")) {
      tokens.next();
    } else if (!isPunctuation(separator, "}")) {
      fail('"," or "}"', separator);
    }
  }
  tokens.next();
  return matchers;
}

function parseSelector(
  tokens: Tokenizer,
): { metric: string; matchers: Record<string, string> } {
  const name = tokens.next();
  if (name.kind !== "identifier" || name.text === "and") {
    fail("a metric name such as vllm:request_queue_time_seconds", name);
  }
  const matchers = isPunctuation(tokens.peek(), "{")
    ? parseMatchers(tokens)
    : {};
  return { metric: name.text, matchers };
}

function isPercentileFunction(name: string): name is PercentileFunction {
  return Object.hasOwn(PERCENTILE_QUANTILES, name);
}

function parseOperand(tokens: Tokenizer): Operand {
  const first = tokens.peek();
  if (first.kind !== "identifier" || first.text === "and") {
    fail("a metric name, up, or p50(...), p90(...), p95(...), p99(...)", first);
  }
  if (first.text === "up") {
    tokens.next();
    const after = tokens.peek();
    if (isPunctuation(after, "{") || isPunctuation(after, "(")) {
      throw new ConditionSyntaxError(
        "up takes no labels or arguments: it is 1 when the scrape succeeded and 0 when it failed",
        after.offset + 1,
      );
    }
    return { kind: "up" };
  }
  tokens.next();
  if (!isPunctuation(tokens.peek(), "(")) {
    const matchers = isPunctuation(tokens.peek(), "{")
      ? parseMatchers(tokens)
      : {};
    return { kind: "metric", metric: first.text, matchers };
  }
  if (!isPercentileFunction(first.text)) {
    throw new ConditionSyntaxError(
      `unknown function "${first.text}"; use p50, p90, p95 or p99 over a histogram ` +
        "(a condition on a counter already compares its per-second rate)",
      first.offset + 1,
    );
  }
  tokens.next();
  const selector = parseSelector(tokens);
  const close = tokens.peek();
  if (!isPunctuation(close, ")")) fail(`")" after ${selector.metric}`, close);
  tokens.next();
  return {
    kind: "percentile",
    function: first.text,
    quantile: PERCENTILE_QUANTILES[first.text],
    metric: selector.metric,
    matchers: selector.matchers,
  };
}

function parseComparison(tokens: Tokenizer): Comparison {
  const operandColumn = tokens.peek().offset + 1;
  const operand = parseOperand(tokens);
  const operator = tokens.next();
  if (operator.text === "=") {
    fail(
      `a comparison operator (${OPERATOR_LIST})`,
      operator,
      "; use == to test equality",
    );
  }
  if (
    operator.kind !== "operator" ||
    !COMPARISON_OPERATORS.includes(operator.text)
  ) {
    fail(`a comparison operator (${OPERATOR_LIST})`, operator);
  }
  const threshold = tokens.next();
  if (threshold.kind !== "number") {
    fail(`a number after ${operator.text}`, threshold);
  }
  const suffix = /^[A-Za-z%]+/.exec(tokens.textAfter(threshold))?.[0];
  if (suffix !== undefined) {
    throw new ConditionSyntaxError(
      `a threshold has no unit: remove "${suffix}" and write the number in the metric's unit ` +
        "(seconds for latency histograms, a 0-1 fraction for *_perc gauges)",
      threshold.offset + threshold.text.length + 1,
    );
  }
  return {
    operand,
    operator: operator.text as ComparisonOperator,
    threshold: Number(threshold.text),
    operandColumn,
    thresholdColumn: threshold.offset + 1,
  };
}

/**
 * Parses a condition.
 *
 * @throws {ConditionSyntaxError} with the one-based column of the first
 * character that does not fit the grammar
 */
export function parseCondition(text: string): Condition {
  const trimmed = text.trim();
  const tokens = new Tokenizer(trimmed);
  const comparisons = [parseComparison(tokens)];
  for (;;) {
    const token = tokens.peek();
    if (token.kind === "end") break;
    if (token.kind === "identifier" && token.text === "and") {
      tokens.next();
      comparisons.push(parseComparison(tokens));
      continue;
    }
    if (token.text === "or" || token.text === "unless") {
      fail("and", token, "; only and can join comparisons");
    }
    fail("and or the end of the condition", token);
  }
  return { text: trimmed, comparisons };
}

function formatLabelValue(value: string): string {
  return JSON.stringify(value);
}

/** Formats an operand in the condition syntax, for example `p95(x{a="b"})`. */
export function formatOperand(operand: Operand): string {
  if (operand.kind === "up") return "up";
  const labels = Object.entries(operand.matchers).map(([name, value]) =>
    `${name}=${formatLabelValue(value)}`
  );
  const selector = labels.length === 0
    ? operand.metric
    : `${operand.metric}{${labels.join(",")}}`;
  return operand.kind === "percentile"
    ? `${operand.function}(${selector})`
    : selector;
}

/** Returns whether `value <operator> threshold` holds. */
export function compare(
  value: number,
  operator: ComparisonOperator,
  threshold: number,
): boolean {
  switch (operator) {
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
    case "==":
      return value === threshold;
    case "!=":
      return value !== threshold;
  }
}
