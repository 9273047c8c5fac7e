/**
 * Parsing of durations (`--last 1h`) and time points (`--since`, `--until`)
 * into Unix milliseconds, done once at the edge of each command.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a duration such as `90s`, `15m`, `1h30m` or `7d` into milliseconds.
 *
 * @throws {SyntaxError} when the text is not such a duration
 */
export function parseDurationMs(text: string): number {
  const pattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(pattern)) {
    total += Number(match[1]) * UNIT_MS[match[2]!]!;
    consumed += match[0].length;
  }
  if (text === "" || consumed !== text.length || total <= 0) {
    throw new SyntaxError(
      `Invalid duration "${text}": use a number and a unit (ms, s, m, h, d, w), e.g. 15m or 1h30m`,
    );
  }
  return total;
}

/**
 * Parses a time point: RFC 3339 (`2026-11-17T10:00:00Z`), a date
 * (`2026-11-17`, UTC midnight), Unix seconds, or a duration ago (`2h`).
 *
 * @throws {SyntaxError} when the text is none of these
 */
export function parseTimePointMs(text: string, nowMs: number): number {
  if (/^\d{9,11}(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const ms = Date.parse(
      /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text,
    );
    if (!Number.isNaN(ms)) return ms;
  }
  try {
    return nowMs - parseDurationMs(text);
  } catch {
    throw new SyntaxError(
      `Invalid time "${text}": use RFC 3339 (2026-11-17T10:00:00Z), a date (2026-11-17), Unix seconds, or a duration ago (2h)`,
    );
  }
}

/** A closed time window in Unix milliseconds. */
export interface TimeWindow {
  startMs: number;
  endMs: number;
}

/** Options naming a window: `--last`, or `--since` and/or `--until`. */
export interface WindowFlags {
  last?: string;
  since?: string;
  until?: string;
}

/**
 * Resolves window flags. Without any flag the window is `defaultLast`
 * before now; `null` as default means "all time".
 *
 * @throws {SyntaxError} on an invalid value, on `--last` with `--since`, or an empty window
 */
export function resolveWindow(
  flags: WindowFlags,
  nowMs: number,
  defaultLast: string | null,
): TimeWindow {
  if (flags.last !== undefined && flags.since !== undefined) {
    throw new SyntaxError("--last conflicts with --since; pass one of them");
  }
  const endMs = flags.until === undefined
    ? nowMs
    : parseTimePointMs(flags.until, nowMs);
  let startMs: number;
  if (flags.since !== undefined) startMs = parseTimePointMs(flags.since, nowMs);
  else if (flags.last !== undefined) {
    startMs = endMs - parseDurationMs(flags.last);
  } else if (defaultLast !== null) {
    startMs = endMs - parseDurationMs(defaultLast);
  } else startMs = 0;
  if (startMs > endMs) {
    throw new SyntaxError(
      `The window is empty: its start ${
        new Date(startMs).toISOString()
      } is after its end`,
    );
  }
  return { startMs, endMs };
}
