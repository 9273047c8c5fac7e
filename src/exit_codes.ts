/**
 * Process exit codes, in one place so every command uses the same ones.
 *
 * @module
 */

/** The command did its work, or the daemon stopped cleanly on SIGTERM/SIGINT. */
export const EXIT_OK = 0;
/** A runtime failure: a file or database could not be read, a query failed. */
export const EXIT_FAILURE = 1;
/** A usage or configuration error: bad flag, invalid config or rules file. */
export const EXIT_USAGE = 2;
