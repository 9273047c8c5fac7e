/**
 * Cleaning of one physical log line before it is parsed: ANSI escape
 * sequences are removed and `\r` redraws are reduced to the state a terminal
 * would show last.
 *
 * @module
 */
import { processPrefixLength } from "./parse_line.ts";

/**
 * ANSI escape sequences: CSI (`ESC [ params final`, colours and cursor moves),
 * OSC (`ESC ] ... BEL` or `ESC ] ... ESC \`, window titles and hyperlinks; an
 * unterminated one runs to the end of the line), other two-byte or
 * intermediate-byte escapes (`ESC ( B`), and a lone `ESC`.
 */
const ANSI_ESCAPE =
  // deno-lint-ignore no-control-regex
  /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])?/g;

/**
 * Removes ANSI escape sequences and resolves carriage-return redraws.
 *
 * Of a line holding `\r`, the text after the last `\r` that is followed by
 * visible (non-whitespace) text is kept, so a tqdm bar redrawn in place keeps
 * its final state. A `\r` with nothing visible after it, such as the `\r` that
 * ends each continued line of a multi-line vLLM record, is removed. vLLM's
 * process prefix (`(APIServer pid=1) `) is written once per `\n`, not per
 * redraw, so a prefix at the start of the line stays in front of the kept
 * state. Everything else, including other control characters and U+FFFD, is
 * kept.
 */
export function cleanLine(text: string): string {
  let cleaned = text.indexOf("\x1b") === -1
    ? text
    : text.replace(ANSI_ESCAPE, "");
  if (cleaned.indexOf("\r") !== -1) cleaned = keepLastRedraw(cleaned);
  return cleaned;
}

function keepLastRedraw(text: string): string {
  let end = text.length;
  let cr = text.lastIndexOf("\r", end - 1);
  while (cr !== -1) {
    if (hasVisibleChar(text, cr + 1, end)) {
      const firstCr = text.indexOf("\r");
      const prefixLength = processPrefixLength(text.slice(0, firstCr));
      return text.slice(0, prefixLength) + text.slice(cr + 1, end);
    }
    end = cr;
    cr = end === 0 ? -1 : text.lastIndexOf("\r", end - 1);
  }
  // No redraw has visible text: the text before the first `\r` is the state.
  return text.slice(0, end);
}

function hasVisibleChar(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x20 && code !== 0x7f && code !== 0xa0) return true;
  }
  return false;
}
