/**
 * Values of alert conditions in one scrape, per label set. The rules are
 * stated in the header of `evaluator.ts`: the latest sample of a gauge, the
 * per-second rate of a counter, and the mean or a percentile of a
 * histogram's observations, all over the interval since the previous
 * successful scrape.
 *
 * @module
 */
import type { LogFields } from "../log.ts";
import type { Sample } from "../metrics/exposition/types.ts";
import { estimateHistogramQuantile } from "../metrics/histogram_quantile.ts";
import {
  type HistogramWindow,
  histogramWindow,
} from "../metrics/histogram_window.ts";
import { resolveMetricNames } from "../metrics/query.ts";
import { canonicalLabels } from "../metrics/store.ts";
import { counterRate, type WindowSample } from "../metrics/window_math.ts";
import { compare, type Operand } from "./condition.ts";
import type { AlertRule } from "./rules.ts";

/** Sample values of one scrape, by series. */
export interface ScrapeValues {
  /** Scrape start, Unix milliseconds. */
  timestampMs: number;
  /** Value by {@link seriesKey}; NaN where the endpoint reported NaN. */
  values: Map<string, number>;
}

/** A successful scrape, indexed for selector lookups. */
export interface IndexedScrape extends ScrapeValues {
  byName: Map<string, Sample[]>;
  byFamily: Map<string, Sample[]>;
}

/** Value of an operand for one label set. */
export interface LabelSetValue {
  labels: Record<string, string>;
  /** The value, or null when the operand has none in this scrape. */
  value: number | null;
}

/** Result of a whole condition for one label set. */
export interface Outcome extends LabelSetValue {
  holds: boolean;
}

/** Inputs of one evaluation. */
export interface EvaluationContext {
  up: boolean;
  /** The scrape being evaluated, or null when it failed. */
  current: IndexedScrape | null;
  /** The container's last successful scrape before this one, if any. */
  previous: ScrapeValues | null;
  /** Logs a warning once per `key` for the life of the engine. */
  warnOnce: (key: string, message: string, fields: LogFields) => void;
}

/** Returns the key of a series: its name and its canonical labels JSON. */
export function seriesKey(name: string, labelsJson: string): string {
  return `${name}\u0000${labelsJson}`;
}

function pushTo<T>(map: Map<string, T[]>, key: string, item: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [item]);
  else list.push(item);
}

/** Indexes a successful scrape's samples by series, name and family. */
export function indexScrape(
  timestampMs: number,
  samples: readonly Sample[],
): IndexedScrape {
  const scrape: IndexedScrape = {
    timestampMs,
    values: new Map(),
    byName: new Map(),
    byFamily: new Map(),
  };
  for (const sample of samples) {
    scrape.values.set(
      seriesKey(sample.name, canonicalLabels(sample.labels)),
      sample.value,
    );
    pushTo(scrape.byName, sample.name, sample);
    pushTo(scrape.byFamily, sample.family, sample);
  }
  return scrape;
}

/**
 * Returns whether labels pass exact matchers. A missing label matches "", as
 * in PromQL.
 */
function matches(
  labels: Record<string, string>,
  matchers: Record<string, string>,
): boolean {
  for (const [name, value] of Object.entries(matchers)) {
    if ((labels[name] ?? "") !== value) return false;
  }
  return true;
}

/** Returns whether two label sets agree on every label name both have. */
function labelsAgree(
  a: Record<string, string>,
  b: Record<string, string>,
): boolean {
  for (const [name, value] of Object.entries(a)) {
    if (Object.hasOwn(b, name) && b[name] !== value) return false;
  }
  return true;
}

function nanToNull(value: number): number | null {
  return Number.isNaN(value) ? null : value;
}

/** Returns whether a sample only grows between counter resets. */
function isCumulative(sample: Sample): boolean {
  if (sample.type === "counter") return !sample.name.endsWith("_created");
  // A histogram's or summary's `_bucket`, `_sum` and `_count` series are
  // cumulative; a summary's quantile series carries the family name and is
  // a gauge.
  return (sample.type === "histogram" || sample.type === "summary") &&
    sample.name !== sample.family;
}

/**
 * Returns the sample, preceded by its value in the previous successful scrape
 * when that is known.
 */
function samplePair(
  sample: Sample,
  labelsJson: string,
  context: EvaluationContext,
): WindowSample[] {
  const current = {
    timestampMs: context.current!.timestampMs,
    value: sample.value,
  };
  const previous = context.previous;
  const before = previous?.values.get(seriesKey(sample.name, labelsJson));
  if (previous === null || before === undefined) return [current];
  return [{ timestampMs: previous.timestampMs, value: before }, current];
}

function sampleValue(
  sample: Sample,
  context: EvaluationContext,
): number | null {
  if (!isCumulative(sample)) return nanToNull(sample.value);
  const pair = samplePair(sample, canonicalLabels(sample.labels), context);
  return nanToNull(counterRate(pair));
}

/** The series of one histogram label set (labels without `le`). */
interface HistogramGroup {
  labels: Record<string, string>;
  buckets: Map<string, WindowSample[]>;
  sum: WindowSample[];
  count: WindowSample[];
}

function histogramGroups(
  family: string,
  samples: readonly Sample[],
  matchers: Record<string, string>,
  context: EvaluationContext,
): Map<string, HistogramGroup> {
  const groups = new Map<string, HistogramGroup>();
  for (const sample of samples) {
    const { le, ...labels } = sample.labels;
    if (!matches(labels, matchers)) continue;
    const key = canonicalLabels(labels);
    let group = groups.get(key);
    if (group === undefined) {
      group = { labels, buckets: new Map(), sum: [], count: [] };
      groups.set(key, group);
    }
    const pair = samplePair(sample, canonicalLabels(sample.labels), context);
    if (sample.name === `${family}_bucket` && le !== undefined) {
      group.buckets.set(le, pair);
    } else if (sample.name === `${family}_sum`) {
      group.sum = pair;
    } else if (sample.name === `${family}_count`) {
      group.count = pair;
    }
  }
  return groups;
}

/** Returns what the group observed in the interval, or null on a bad `le`. */
function groupWindow(
  family: string,
  group: HistogramGroup,
  context: EvaluationContext,
): HistogramWindow | null {
  try {
    return histogramWindow(group.buckets, group.sum, group.count);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    context.warnOnce(
      `le:${family}`,
      "Histogram has an invalid bucket bound; it has no value in alert rules",
      { metric: family, err: error.message },
    );
    return null;
  }
}

/** Values of a metric selector: gauges, counter rates or histogram means. */
function metricValues(
  operand: Extract<Operand, { kind: "metric" }>,
  matchers: Record<string, string>,
  context: EvaluationContext,
): Map<string, LabelSetValue> {
  const result = new Map<string, LabelSetValue>();
  const current = context.current!;
  // The first name that has series wins, so a vLLM version that exposes
  // both the old and the new name of a quantity yields one value.
  for (const name of resolveMetricNames(operand.metric)) {
    // A family name such as `vllm:generation_tokens` selects its counter
    // series; `_created` series hold a creation time, not the count.
    const series = current.byName.get(name) ??
      current.byFamily.get(name)?.filter((sample) =>
        sample.type !== "histogram" && sample.type !== "summary" &&
        !sample.name.endsWith("_created")
      ) ?? [];
    for (const sample of series) {
      if (!matches(sample.labels, matchers)) continue;
      const key = canonicalLabels(sample.labels);
      if (result.has(key)) continue;
      result.set(key, {
        labels: sample.labels,
        value: sampleValue(sample, context),
      });
    }
    const family = current.byFamily.get(name)?.filter((sample) =>
      sample.type === "histogram"
    ) ?? [];
    const groups = histogramGroups(name, family, matchers, context);
    for (const [key, group] of groups) {
      if (result.has(key)) {
        continue;
      }
      const window = groupWindow(name, group, context);
      const value = window !== null && window.count > 0
        ? nanToNull(window.mean)
        : null;
      result.set(key, { labels: group.labels, value });
    }
  }
  return result;
}

/** Values of `pNN(histogram)`: quantiles of the interval's observations. */
function percentileValues(
  operand: Extract<Operand, { kind: "percentile" }>,
  matchers: Record<string, string>,
  context: EvaluationContext,
): Map<string, LabelSetValue> {
  const result = new Map<string, LabelSetValue>();
  const current = context.current!;
  for (const name of resolveMetricNames(operand.metric)) {
    const family = current.byFamily.get(name) ?? [];
    const histogram = family.filter((sample) => sample.type === "histogram");
    if (family.length > 0 && histogram.length === 0) {
      context.warnOnce(
        `type:${name}`,
        `${operand.function}() needs a histogram; the rule never holds`,
        { metric: name, type: family[0]!.type },
      );
    }
    const groups = histogramGroups(name, histogram, matchers, context);
    for (const [key, group] of groups) {
      if (result.has(key)) continue;
      const window = groupWindow(name, group, context);
      let value: number | null = null;
      if (window !== null && window.count > 0) {
        const estimate = estimateHistogramQuantile(
          operand.quantile,
          window.buckets,
        );
        value = nanToNull(estimate.value);
      }
      result.set(key, { labels: group.labels, value });
    }
  }
  return result;
}

function operandValues(
  operand: Operand,
  ruleLabels: Record<string, string>,
  context: EvaluationContext,
): Map<string, LabelSetValue> {
  if (operand.kind === "up") {
    return new Map([["{}", { labels: {}, value: context.up ? 1 : 0 }]]);
  }
  const matchers = { ...ruleLabels, ...operand.matchers };
  return operand.kind === "metric"
    ? metricValues(operand, matchers, context)
    : percentileValues(operand, matchers, context);
}

/** Evaluates a rule's condition for each label set of its first comparison. */
export function evaluateCondition(
  rule: AlertRule,
  context: EvaluationContext,
): Map<string, Outcome> {
  const [first, ...rest] = rule.condition.comparisons;
  const outcomes = new Map<string, Outcome>();
  if (first === undefined) return outcomes;
  const firstValues = operandValues(first.operand, rule.labels, context);
  const restValues = rest.map((comparison) => ({
    comparison,
    values: [
      ...operandValues(comparison.operand, rule.labels, context).values(),
    ],
  }));
  for (const [key, entry] of firstValues) {
    let holds = entry.value !== null &&
      compare(entry.value, first.operator, first.threshold);
    for (const { comparison, values } of restValues) {
      if (!holds) break;
      holds = values.some((other) =>
        other.value !== null && labelsAgree(entry.labels, other.labels) &&
        compare(other.value, comparison.operator, comparison.threshold)
      );
    }
    outcomes.set(key, { ...entry, holds });
  }
  return outcomes;
}
