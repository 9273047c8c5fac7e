/**
 * Writing results to stdout. A closed pipe (`| head`) ends the output
 * quietly instead of failing the command.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Writes text to stdout; returns false when the reader has gone away. The
 * write is synchronous, so a large export never queues output in memory
 * faster than the reader takes it.
 */
export function writeStdout(text: string): Promise<boolean> {
  const bytes = encoder.encode(text);
  let offset = 0;
  try {
    while (offset < bytes.length) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return Promise.resolve(false);
    throw error;
  }
  return Promise.resolve(true);
}

/**
 * Writes text to stdout synchronously, for help and version output that
 * must be complete before the process exits.
 */
export function writeStdoutSync(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  try {
    while (offset < bytes.length) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/** Writes a message to stderr, for usage errors and warnings of one-shot commands. */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text.endsWith("\n") ? text : `${text}\n`);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stderr.writeSync(bytes.subarray(offset));
  }
}
