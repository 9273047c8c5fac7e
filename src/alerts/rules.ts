/**
 * Alert rules files (`configs/vllm_alerts.yaml`): loading, validation and a
 * plain-language description of each rule.
 *
 * ```yaml
 * rules:
 *   - name: kv_cache_saturated                 # unique; names the alert
 *     condition: vllm:kv_cache_usage_perc > 0.9 # see condition.ts
 *     duration: 5m                             # how long it must hold
 *     action: log_warning                      # log_error | log_warning | log_info
 *     container: vllm-vision                   # optional: only this container
 *     labels: { model_name: org/model-7b }     # optional: exact label matchers
 * ```
 *
 * Every error is a {@linkcode RuleError}: a `ConfigError` naming the file,
 * the key path (`rules[2].condition`), the rule and, for a condition, the
 * column with a caret line under the text.
 *
 * @module
 */
import { parseDurationMs } from "../cli/time_window.ts";
import {
  ConfigError,
  CONTAINER_NAME_PATTERN,
  parseYamlText,
  readConfigText,
} from "../config/config.ts";
import {
  type Comparison,
  type ComparisonOperator,
  type Condition,
  ConditionSyntaxError,
  formatOperand,
  type Operand,
  parseCondition,
} from "./condition.ts";

/** Action of a rule when it fires, which sets the level of its events. */
export type AlertAction = "log_error" | "log_warning" | "log_info";

/** Level written in `alerts.log` for each action. */
export type AlertLevel = "ERROR" | "WARNING" | "INFO";

/** The level of each action. */
export const ACTION_LEVELS: Readonly<Record<AlertAction, AlertLevel>> = {
  log_error: "ERROR",
  log_warning: "WARNING",
  log_info: "INFO",
};

/** One validated rule. */
export interface AlertRule {
  name: string;
  condition: Condition;
  /** Time the condition must hold before the rule fires, in milliseconds. */
  durationMs: number;
  /** The duration as written, such as `5m`. */
  duration: string;
  action: AlertAction;
  level: AlertLevel;
  /** Only this container is evaluated, or every container when null. */
  container: string | null;
  /** Exact label matchers added to every metric selector of the condition. */
  labels: Record<string, string>;
}

/** A validated rules file. */
export interface AlertRules {
  file: string;
  rules: AlertRule[];
}

/** A rules file that cannot be used, with the rule and column at fault. */
export class RuleError extends ConfigError {
  /** Name of the rule at fault, or null when the error is not in one rule. */
  readonly rule: string | null;
  /** One-based column in the condition, or null when not in a condition. */
  readonly column: number | null;

  constructor(
    file: string,
    keyPath: string,
    message: string,
    rule: string | null = null,
    column: number | null = null,
  ) {
    super(
      file,
      keyPath,
      rule === null ? message : `rule "${rule}": ${message}`,
    );
    this.name = "RuleError";
    this.rule = rule;
    this.column = column;
  }
}

const RULE_KEYS = [
  "name",
  "condition",
  "duration",
  "action",
  "container",
  "labels",
];
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Histogram families of vLLM, without the `vllm:` prefix. The list serves
 * load-time checks and descriptions only: at evaluation the scraped
 * `# TYPE` line decides.
 */
const VLLM_HISTOGRAMS = new Set([
  "time_to_first_token_seconds",
  "inter_token_latency_seconds",
  "time_per_output_token_seconds",
  "request_time_per_output_token_seconds",
  "e2e_request_latency_seconds",
  "request_queue_time_seconds",
  "request_inference_time_seconds",
  "request_prefill_time_seconds",
  "request_decode_time_seconds",
  "request_prompt_tokens",
  "request_generation_tokens",
  "request_max_num_generation_tokens",
  "request_params_max_tokens",
  "request_params_n",
  "request_prefill_kv_computed_tokens",
  "request_num_preemptions",
  "iteration_tokens_total",
]);

/** Gauges of vLLM, without the `vllm:` prefix; `_perc` gauges are found by suffix. */
const VLLM_GAUGES = new Set([
  "num_requests_running",
  "num_requests_waiting",
  "num_requests_waiting_by_reason",
  "engine_sleep_state",
]);

/** Kind of a metric as guessed from its name, before any scrape. */
export type NameKind = "fraction" | "gauge" | "counter" | "histogram" | null;

/**
 * Guesses a metric's kind from its name. Names ending in `_perc` or
 * `_fraction`, or containing `kv_cache_usage`, are 0-1 `fraction` gauges.
 * The vLLM gauges and histograms listed above come next, then `counter` for
 * other names ending in `_total`, `_sum`, `_count` or `_bucket`. Any other
 * name returns null.
 */
export function kindFromName(metric: string): NameKind {
  const bare = metric.startsWith("vllm:") ? metric.slice(5) : metric;
  if (
    bare.endsWith("_perc") || bare.endsWith("_fraction") ||
    bare.includes("kv_cache_usage")
  ) {
    return "fraction";
  }
  if (VLLM_HISTOGRAMS.has(bare)) return "histogram";
  if (VLLM_GAUGES.has(bare)) return "gauge";
  if (/_(total|sum|count|bucket)$/.test(bare)) return "counter";
  return null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Formats the text with a caret line under the one-based column. */
function caret(text: string, column: number): string {
  return `\n    ${text}\n    ${" ".repeat(column - 1)}^`;
}

/** Suggests the fraction a percentage threshold probably meant. */
function fractionHint(threshold: number): string {
  if (threshold > 100) return "use a value between 0 and 1";
  const suggestion = Number((threshold / 100).toPrecision(6));
  return `did you mean ${suggestion}?`;
}

interface RuleContext {
  file: string;
  keyPath: string;
  rule: string;
  text: string;
}

function conditionError(
  context: RuleContext,
  message: string,
  column: number,
): RuleError {
  return new RuleError(
    context.file,
    context.keyPath,
    `${message} (column ${column})${caret(context.text, column)}`,
    context.rule,
    column,
  );
}

/** Rejects comparisons whose threshold cannot fit the metric's unit or type. */
function checkComparison(context: RuleContext, comparison: Comparison): void {
  const { operand, threshold } = comparison;
  if (operand.kind === "up") {
    if (threshold < 0 || threshold > 1) {
      throw conditionError(
        context,
        "up is 1 when the scrape succeeded and 0 when it failed; compare it with 0 or 1",
        comparison.thresholdColumn,
      );
    }
    return;
  }
  const kind = kindFromName(operand.metric);
  if (operand.kind === "percentile") {
    if (kind !== null && kind !== "histogram") {
      const kindName = kind === "fraction" ? "gauge" : kind;
      throw conditionError(
        context,
        `${operand.function}() needs a histogram, and ${operand.metric} is a ${kindName}`,
        comparison.operandColumn,
      );
    }
    if (Object.hasOwn(operand.matchers, "le")) {
      throw conditionError(
        context,
        `${operand.function}() uses every bucket; remove the le matcher`,
        comparison.operandColumn,
      );
    }
    return;
  }
  if (kind === "fraction" && threshold > 1) {
    throw conditionError(
      context,
      `${operand.metric} is a 0-1 fraction; ${fractionHint(threshold)}`,
      comparison.thresholdColumn,
    );
  }
}

function parseRuleCondition(context: RuleContext): Condition {
  let condition: Condition;
  try {
    condition = parseCondition(context.text);
  } catch (error) {
    if (error instanceof ConditionSyntaxError) {
      throw conditionError(
        { ...context, text: context.text.trim() },
        error.message,
        error.column,
      );
    }
    throw error;
  }
  const trimmedContext = { ...context, text: condition.text };
  for (const comparison of condition.comparisons) {
    checkComparison(trimmedContext, comparison);
  }
  return condition;
}

function parseLabels(
  file: string,
  keyPath: string,
  rule: string,
  value: unknown,
  condition: Condition,
): Record<string, string> {
  if (value === undefined) return {};
  if (!isRecord(value)) {
    throw new RuleError(
      file,
      keyPath,
      "must be a map of label names to values, such as { model_name: org/model-7b }",
      rule,
    );
  }
  const labels: Record<string, string> = {};
  for (const [name, labelValue] of Object.entries(value)) {
    const path = `${keyPath}.${name}`;
    if (!LABEL_NAME.test(name)) {
      throw new RuleError(
        file,
        path,
        "is not a label name: use letters, digits and _, not starting with a digit",
        rule,
      );
    }
    if (typeof labelValue !== "string") {
      throw new RuleError(
        file,
        path,
        `must be a string; quote it: "${String(labelValue)}"`,
        rule,
      );
    }
    for (const comparison of condition.comparisons) {
      const operand = comparison.operand;
      if (operand.kind === "up") continue;
      const inCondition = operand.matchers[name];
      if (inCondition !== undefined && inCondition !== labelValue) {
        throw new RuleError(
          file,
          path,
          `conflicts with ${name}="${inCondition}" in the condition; the rule could never match`,
          rule,
        );
      }
    }
    labels[name] = labelValue;
  }
  return labels;
}

function requireString(
  file: string,
  keyPath: string,
  rule: string | null,
  value: unknown,
  example: string,
): string {
  if (value === undefined || value === null) {
    throw new RuleError(
      file,
      keyPath,
      `is missing; add for example ${example}`,
      rule,
    );
  }
  if (typeof value !== "string" || value.trim() === "") {
    throw new RuleError(
      file,
      keyPath,
      `must be a non-empty string such as ${example}`,
      rule,
    );
  }
  return value;
}

function parseRule(file: string, index: number, entry: unknown): AlertRule {
  const base = `rules[${index}]`;
  if (!isRecord(entry)) {
    throw new RuleError(
      file,
      base,
      "must be a map with name, condition, duration and action",
    );
  }
  const name = requireString(
    file,
    `${base}.name`,
    null,
    entry.name,
    "kv_cache_saturated",
  );
  if (!RULE_NAME.test(name)) {
    throw new RuleError(
      file,
      `${base}.name`,
      `"${name}" is not a valid rule name: start with a letter or digit and use only letters, digits, _, ., : and -`,
    );
  }
  for (const key of Object.keys(entry)) {
    if (!RULE_KEYS.includes(key)) {
      throw new RuleError(
        file,
        `${base}.${key}`,
        `unknown key; a rule has ${RULE_KEYS.join(", ")}`,
        name,
      );
    }
  }

  const conditionPath = `${base}.condition`;
  const conditionText = requireString(
    file,
    conditionPath,
    name,
    entry.condition,
    "vllm:kv_cache_usage_perc > 0.9",
  );
  const condition = parseRuleCondition({
    file,
    keyPath: conditionPath,
    rule: name,
    text: conditionText,
  });

  const durationPath = `${base}.duration`;
  if (typeof entry.duration === "number") {
    throw new RuleError(
      file,
      durationPath,
      `${entry.duration} has no unit; write for example ${entry.duration}s or ${entry.duration}m`,
      name,
    );
  }
  const duration = requireString(
    file,
    durationPath,
    name,
    entry.duration,
    "5m",
  );
  let durationMs: number;
  try {
    durationMs = parseDurationMs(duration.trim());
  } catch (error) {
    throw new RuleError(file, durationPath, (error as Error).message, name);
  }

  const actionPath = `${base}.action`;
  const action = requireString(
    file,
    actionPath,
    name,
    entry.action,
    "log_warning",
  );
  if (!Object.hasOwn(ACTION_LEVELS, action)) {
    throw new RuleError(
      file,
      actionPath,
      `unknown action "${action}"; use log_error, log_warning or log_info`,
      name,
    );
  }

  let container: string | null = null;
  if (entry.container !== undefined) {
    container = requireString(
      file,
      `${base}.container`,
      name,
      entry.container,
      "vllm-vision",
    );
    if (!CONTAINER_NAME_PATTERN.test(container)) {
      throw new RuleError(
        file,
        `${base}.container`,
        `"${container}" is not a container name: start with a letter or digit and use only letters, digits, _, . and -`,
        name,
      );
    }
  }

  return {
    name,
    condition,
    durationMs,
    duration: duration.trim(),
    action: action as AlertAction,
    level: ACTION_LEVELS[action as AlertAction],
    container,
    labels: parseLabels(file, `${base}.labels`, name, entry.labels, condition),
  };
}

/**
 * Validates a parsed rules document.
 *
 * @throws {RuleError} naming the file, the key path, the rule and the fix
 */
export function rulesFromDocument(file: string, document: unknown): AlertRules {
  if (document === null || document === undefined) {
    throw new RuleError(
      file,
      "",
      "the file is empty; see configs/vllm_alerts.yaml for an example",
    );
  }
  if (!isRecord(document)) {
    throw new RuleError(file, "", "must be a map with a rules: list");
  }
  for (const key of Object.keys(document)) {
    if (key !== "rules") {
      throw new RuleError(file, key, "unknown key; the file has only rules:");
    }
  }
  if (!Array.isArray(document.rules)) {
    throw new RuleError(
      file,
      "rules",
      document.rules === undefined ? "is missing" : "must be a list of rules",
    );
  }
  const rules: AlertRule[] = [];
  const firstIndex = new Map<string, number>();
  document.rules.forEach((entry, index) => {
    const rule = parseRule(file, index, entry);
    const earlier = firstIndex.get(rule.name);
    if (earlier !== undefined) {
      throw new RuleError(
        file,
        `rules[${index}].name`,
        `is defined twice (first at rules[${earlier}]); give each rule its own name`,
        rule.name,
      );
    }
    firstIndex.set(rule.name, index);
    rules.push(rule);
  });
  return { file, rules };
}

/**
 * Parses and validates the YAML text of a rules file.
 *
 * @throws {RuleError} when the text is not YAML or a rule is invalid
 */
export function parseRules(file: string, text: string): AlertRules {
  const document = parseYamlText(
    text,
    (message) => new RuleError(file, "", message),
  );
  return rulesFromDocument(file, document);
}

/**
 * Reads and validates a rules file. The logger must not start when this
 * throws.
 *
 * @throws {RuleError} when the file is missing, is not YAML or is invalid
 */
export async function loadRules(path: string): Promise<AlertRules> {
  const text = await readConfigText(
    path,
    "file not found; pass an existing rules file such as configs/vllm_alerts.yaml",
    (message) => new RuleError(path, "", message),
  );
  return parseRules(path, text);
}

const OPERATOR_WORDS: Record<ComparisonOperator, string> = {
  ">": "is above",
  ">=": "is at least",
  "<": "is below",
  "<=": "is at most",
  "==": "equals",
  "!=": "differs from",
};

function describeOperand(operand: Operand): string {
  if (operand.kind === "up") {
    return "up (1 when the scrape succeeded, 0 when it failed)";
  }
  const selector = formatOperand({ ...operand, kind: "metric" });
  if (operand.kind === "percentile") {
    const percent = Math.round(operand.quantile * 100);
    return `the ${percent}th percentile of ${selector} observed during the last scrape interval`;
  }
  switch (kindFromName(operand.metric)) {
    case "fraction":
      return `the latest value of ${selector} (a 0-1 fraction)`;
    case "gauge":
      return `the latest value of ${selector}`;
    case "counter":
      return `the per-second rate of ${selector} over the last scrape interval`;
    case "histogram":
      return `the mean of ${selector} observed during the last scrape interval`;
    case null:
      return `${selector} (the latest value of a gauge, the per-second rate of a counter, ` +
        "or the mean observation of a histogram, as its # TYPE line says)";
  }
}

/** Describes one comparison in words, for `alerts check`. */
export function describeComparison(comparison: Comparison): string {
  const words = OPERATOR_WORDS[comparison.operator];
  return `${
    describeOperand(comparison.operand)
  } ${words} ${comparison.threshold}`;
}

/** Describes a rule in words, for `alerts check`. */
export function describeRule(rule: AlertRule): string {
  const terms = rule.condition.comparisons.map(describeComparison);
  const scope = rule.container === null
    ? "each container"
    : `container ${rule.container}`;
  const labels = Object.entries(rule.labels).map(([name, value]) =>
    `${name}="${value}"`
  );
  const labelScope = labels.length === 0
    ? ""
    : `, series with ${labels.join(", ")}`;
  return `Fires with level ${rule.level} when ${terms.join(", and ")}, ` +
    `continuously for ${rule.duration}; evaluated for ${scope}${labelScope}, ` +
    "one alert per label set.";
}
