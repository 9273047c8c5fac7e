/**
 * Types shared by the exposition-format parsers (Prometheus text 0.0.4 and
 * OpenMetrics text).
 *
 * @module
 */

/** Metric family types named by `# TYPE` lines in either format. */
export type MetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "gaugehistogram"
  | "summary"
  | "info"
  | "stateset"
  | "unknown"
  | "untyped";

/** One sample line: a series (name plus labels) and its value. */
export interface Sample {
  /** Series name as exposed, for example `vllm:e2e_request_latency_seconds_bucket`. */
  name: string;
  /** Label names to unescaped values, in the order they appeared. */
  labels: Record<string, string>;
  /** The value; `NaN`, `+Inf` and `-Inf` are kept as the numbers they name. */
  value: number;
  /** Explicit timestamp of the sample in Unix milliseconds, when the line had one. */
  timestampMs?: number;
  /** Name of the family the sample belongs to (`vllm:e2e_request_latency_seconds`). */
  family: string;
  /** Type of that family; `untyped` when no `# TYPE` line covered it. */
  type: MetricType;
}

/** A line that could not be parsed; the rest of the body is still used. */
export interface ExpositionLineError {
  /** One-based line number in the body. */
  line: number;
  /** What was expected and what was found. */
  message: string;
}

/** Result of parsing one scrape body. */
export interface ParsedExposition {
  /** Samples in body order, first occurrence of each series only. */
  samples: Sample[];
  /** Family name to its type and help text. */
  families: Map<string, { type: MetricType; help?: string }>;
  /** Malformed lines that were skipped. */
  errors: ExpositionLineError[];
  /** Number of sample lines that repeated a series already seen in the body. */
  duplicateSamples: number;
}
