/**
 * Shared parts of the exposition-format corpus tests: the row type and the
 * checks every row runs.
 *
 * @module
 */
import assert from "node:assert/strict";

import type {
  MetricType,
  ParsedExposition,
  Sample,
} from "../../../src/metrics/exposition/types.ts";

/** One row of the corpus; fields left out are not checked, except errors and duplicates. */
export interface Case {
  name: string;
  body: string;
  /** Exact expected samples, in order. */
  samples?: Sample[];
  /** Expected errors; each fragment must occur in the message. Default: none. */
  errors?: Array<{ line: number; fragments: string[] }>;
  /** Expected `duplicateSamples`. Default: 0. */
  duplicates?: number;
  /** Exact expected families, in order. */
  families?: Array<[string, { type: MetricType; help?: string }]>;
}

export function sample(
  name: string,
  labels: Record<string, string>,
  value: number,
  family: string,
  type: MetricType,
  timestampMs?: number,
): Sample {
  return timestampMs === undefined
    ? { name, labels, value, family, type }
    : { name, labels, value, timestampMs, family, type };
}

export function lines(...text: string[]): string {
  return text.join("\n") + "\n";
}

export function checkCase(result: ParsedExposition, row: Case): void {
  if (row.samples !== undefined) {
    assert.deepStrictEqual(result.samples, row.samples);
  }
  const expectedErrors = row.errors ?? [];
  assert.equal(
    result.errors.length,
    expectedErrors.length,
    `errors: ${JSON.stringify(result.errors)}`,
  );
  for (const [index, expected] of expectedErrors.entries()) {
    const actual = result.errors[index]!;
    assert.equal(actual.line, expected.line, actual.message);
    for (const fragment of expected.fragments) {
      assert.ok(
        actual.message.includes(fragment),
        `message ${JSON.stringify(actual.message)} lacks ${
          JSON.stringify(fragment)
        }`,
      );
    }
  }
  assert.equal(result.duplicateSamples, row.duplicates ?? 0);
  if (row.families !== undefined) {
    assert.deepStrictEqual([...result.families], row.families);
  }
}
