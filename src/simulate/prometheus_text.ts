/**
 * A small metrics registry that renders the Prometheus text format 0.0.4 the
 * way Python's `prometheus_client` (0.2x, `generate_latest`) does. The
 * simulator's `/metrics` body thus has the layout of a real vLLM server.
 * Counters are exposed with `_total`, and a separate `_created` gauge family
 * follows each counter, histogram and summary. Histogram samples come in
 * the order buckets, `_count`, `_sum`, and labels are sorted by name. Floats
 * are printed by Python's `repr`, with Go-style exponents for large values.
 *
 * @module
 */

/** Label names to values of one series. */
export type Labels = Readonly<Record<string, string>>;

/**
 * Formats a sample value like `prometheus_client`'s `floatToGoString`:
 * Python `repr`, except that positive values with seven or more integer
 * digits switch to an exponent (`5221789.0` becomes `5.221789e+06`).
 */
export function formatPrometheusValue(value: number): string {
  if (value === Infinity) {
    return "+Inf";
  }
  if (value === -Infinity) {
    return "-Inf";
  }
  if (Number.isNaN(value)) {
    return "NaN";
  }
  const repr = formatPythonFloat(value);
  const dot = repr.indexOf(".");
  if (value > 0 && dot > 6) {
    const digits = `${repr[0]}.${repr.slice(1, dot)}${repr.slice(dot + 1)}`;
    const mantissa = digits.replace(/[0.]+$/, "");
    // prometheus_client writes a literal "e+0" before the exponent, so a
    // value of 1e10 or more gets three exponent digits ("e+010").
    return `${mantissa}e+0${dot - 1}`;
  }
  return repr;
}

/**
 * Formats a finite number like Python's `repr(float)`: the shortest digits
 * that round-trip, fixed notation for decimal exponents from -4 to 15
 * (always with a fraction, `1.0`), scientific notation otherwise (`1e-05`).
 */
export function formatPythonFloat(value: number): string {
  if (value === 0) {
    return Object.is(value, -0) ? "-0.0" : "0.0";
  }
  const sign = value < 0 ? "-" : "";
  const [mantissa = "", exponentText = "0"] = Math.abs(value)
    .toExponential()
    .split("e");
  const digits = mantissa.replace(".", "");
  // Position of the decimal point relative to the first digit.
  const pointPosition = Number(exponentText) + 1;
  if (pointPosition > -4 && pointPosition <= 16) {
    if (pointPosition <= 0) {
      return `${sign}0.${"0".repeat(-pointPosition)}${digits}`;
    }
    if (pointPosition >= digits.length) {
      return `${sign}${digits}${"0".repeat(pointPosition - digits.length)}.0`;
    }
    return `${sign}${digits.slice(0, pointPosition)}.${
      digits.slice(pointPosition)
    }`;
  }
  const exponent = pointPosition - 1;
  const exponentSign = exponent < 0 ? "-" : "+";
  const exponentDigits = String(Math.abs(exponent)).padStart(2, "0");
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
  return `${sign}${digits[0]}${fraction}e${exponentSign}${exponentDigits}`;
}

/** Monotonic counter child. */
export class CounterChild {
  value = 0;
  constructor(readonly createdSeconds: number) {}

  /** Adds `amount` (default 1); a negative amount is rejected like in prometheus_client. */
  inc(amount = 1): void {
    if (amount < 0) {
      throw new RangeError(`Counters can only increase, got ${amount}`);
    }
    this.value += amount;
  }
}

/** Gauge child. */
export class GaugeChild {
  value = 0;
}

/** Histogram child with fixed upper bounds and a final `+Inf` bucket. */
export class HistogramChild {
  /** Observations per bucket (not cumulative); the last entry is the `+Inf` bucket. */
  readonly bucketCounts: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly upperBounds: readonly number[],
    readonly createdSeconds: number,
  ) {
    this.bucketCounts = new Array<number>(upperBounds.length + 1).fill(0);
  }

  /** Records one observation. */
  observe(value: number): void {
    let index = 0;
    while (
      index < this.upperBounds.length && value > this.upperBounds[index]!
    ) {
      index++;
    }
    this.bucketCounts[index] = this.bucketCounts[index]! + 1;
    this.sum += value;
    this.count += 1;
  }
}

/** Summary child without quantiles, as prometheus_client exposes it. */
export class SummaryChild {
  sum = 0;
  count = 0;
  constructor(readonly createdSeconds: number) {}

  /** Records one observation. */
  observe(value: number): void {
    this.sum += value;
    this.count += 1;
  }
}

type ChildOf<T extends MetricKind> = T extends "counter" ? CounterChild
  : T extends "gauge" ? GaugeChild
  : T extends "histogram" ? HistogramChild
  : SummaryChild;

/** Metric types this registry renders. */
export type MetricKind = "counter" | "gauge" | "histogram" | "summary";

/** Definition of one metric family. */
export interface FamilyDefinition<T extends MetricKind> {
  /** Family name; counters are given without `_total`, as prometheus_client stores them. */
  name: string;
  help: string;
  type: T;
  /** Histogram upper bounds in ascending order, without `+Inf`. */
  buckets?: readonly number[];
  /**
   * Whether the family gets a `_created` gauge family. True for metrics
   * declared with prometheus_client's Counter/Histogram/Summary classes;
   * false for collector output such as `python_gc_*` and `process_*`.
   * @default true
   */
  created?: boolean;
}

/** One metric family: its definition and its children in creation order. */
export class MetricFamily<T extends MetricKind> {
  readonly #children = new Map<string, { labels: Labels; child: ChildOf<T> }>();

  constructor(
    readonly definition: FamilyDefinition<T>,
    readonly clockSeconds: () => number,
  ) {}

  /** Returns the child for `labels`, creating it on first use like `.labels()` in prometheus_client. */
  labels(labels: Labels = {}): ChildOf<T> {
    const key = labelKey(labels);
    const existing = this.#children.get(key);
    if (existing !== undefined) {
      return existing.child;
    }
    const child = this.#createChild();
    this.#children.set(key, { labels: { ...labels }, child });
    return child;
  }

  /** Children with their labels, in creation order. */
  children(): { labels: Labels; child: ChildOf<T> }[] {
    return [...this.#children.values()];
  }

  #createChild(): ChildOf<T> {
    const created = this.clockSeconds();
    switch (this.definition.type) {
      case "counter":
        return new CounterChild(created) as ChildOf<T>;
      case "gauge":
        return new GaugeChild() as ChildOf<T>;
      case "histogram":
        return new HistogramChild(
          this.definition.buckets ?? [],
          created,
        ) as ChildOf<T>;
      default:
        return new SummaryChild(created) as ChildOf<T>;
    }
  }
}

/** Ordered set of metric families that renders as one exposition body. */
export class MetricRegistry {
  readonly #families: MetricFamily<MetricKind>[] = [];

  /** @param clockSeconds Unix time in seconds, used for `_created` values. */
  constructor(readonly clockSeconds: () => number) {}

  /** Registers a family; families render in registration order. */
  register<T extends MetricKind>(
    definition: FamilyDefinition<T>,
  ): MetricFamily<T> {
    const family = new MetricFamily(definition, this.clockSeconds);
    this.#families.push(family as unknown as MetricFamily<MetricKind>);
    return family;
  }

  /** Renders every family in the Prometheus text format 0.0.4. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.#families) {
      renderFamily(family, lines);
    }
    lines.push("");
    return lines.join("\n");
  }
}

function renderFamily(
  family: MetricFamily<MetricKind>,
  lines: string[],
): void {
  const { name, help, type } = family.definition;
  const exposedName = type === "counter" ? `${name}_total` : name;
  lines.push(`# HELP ${exposedName} ${escapeHelp(help)}`);
  lines.push(`# TYPE ${exposedName} ${type}`);
  const createdLines: string[] = [];
  for (const { labels, child } of family.children()) {
    if (child instanceof CounterChild) {
      lines.push(sampleLine(exposedName, labels, child.value));
      createdLines.push(
        sampleLine(`${name}_created`, labels, child.createdSeconds),
      );
    } else if (child instanceof GaugeChild) {
      lines.push(sampleLine(name, labels, child.value));
    } else if (child instanceof HistogramChild) {
      renderHistogram(name, labels, child, lines);
      createdLines.push(
        sampleLine(`${name}_created`, labels, child.createdSeconds),
      );
    } else {
      lines.push(sampleLine(`${name}_count`, labels, child.count));
      lines.push(sampleLine(`${name}_sum`, labels, child.sum));
      createdLines.push(
        sampleLine(`${name}_created`, labels, child.createdSeconds),
      );
    }
  }
  if (family.definition.created !== false && createdLines.length > 0) {
    lines.push(`# HELP ${name}_created ${escapeHelp(help)}`);
    lines.push(`# TYPE ${name}_created gauge`);
    lines.push(...createdLines);
  }
}

function renderHistogram(
  name: string,
  labels: Labels,
  child: HistogramChild,
  lines: string[],
): void {
  let cumulative = 0;
  child.bucketCounts.forEach((count, index) => {
    cumulative += count;
    const bound = child.upperBounds[index];
    const le = bound === undefined ? "+Inf" : formatPrometheusValue(bound);
    lines.push(sampleLine(`${name}_bucket`, { ...labels, le }, cumulative));
  });
  lines.push(sampleLine(`${name}_count`, labels, child.count));
  lines.push(sampleLine(`${name}_sum`, labels, child.sum));
}

function sampleLine(name: string, labels: Labels, value: number): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) {
    return `${name} ${formatPrometheusValue(value)}`;
  }
  const pairs = names.map((label) =>
    `${label}="${escapeLabelValue(labels[label] ?? "")}"`
  );
  return `${name}{${pairs.join(",")}} ${formatPrometheusValue(value)}`;
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll(
    '"',
    '\\"',
  );
}

function escapeHelp(help: string): string {
  return help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function labelKey(labels: Labels): string {
  return JSON.stringify(
    Object.keys(labels).sort().map((name) => [name, labels[name]]),
  );
}
