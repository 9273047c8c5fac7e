/**
 * Option parsers and the usage error shared by the subcommands.
 *
 * @module
 */
import { InvalidArgumentError } from "commander";

/** A usage error found by a command after option parsing; exits with 2. */
export class UsageError extends Error {
  /** A complete example command that does work, printed on a second line. */
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.name = "UsageError";
    this.hint = hint;
  }
}

/** Parses a positive integer option value for commander. */
export function parsePositiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) {
    throw new InvalidArgumentError(
      `expected a positive whole number, got "${value}"`,
    );
  }
  return number;
}

/** Parses a positive number option value for commander. */
export function parsePositiveNumber(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new InvalidArgumentError(
      `expected a positive number, got "${value}"`,
    );
  }
  return number;
}
