/**
 * Configuration of the `run` command: the YAML file
 * (`configs/vllm_logger.yaml`) or the supervisor's flag form, both turned
 * into one validated {@linkcode LoggerConfig}.
 *
 * @module
 */
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";

/** Container names become directory names, so only this shape is allowed. */
export const CONTAINER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Default `logs_stream` command; the container name is appended. */
export const DEFAULT_LOGS_STREAM = "docker logs -f";

/** A configuration file or flag set that cannot be used, with where and why. */
export class ConfigError extends Error {
  /** File the error is in, or `command line` for the flag form. */
  readonly file: string;
  /** Dotted key path such as `containers[0].name`; empty for the whole file. */
  readonly keyPath: string;

  constructor(file: string, keyPath: string, message: string) {
    const where = keyPath === "" ? file : `${file}: ${keyPath}`;
    super(`${where}: ${message}`);
    this.name = "ConfigError";
    this.file = file;
    this.keyPath = keyPath;
  }
}

const containerName = z.string().regex(
  CONTAINER_NAME_PATTERN,
  "must start with a letter or digit and contain only letters, digits, '_', '.' and '-' (it becomes a directory name)",
);

const endpointUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL such as http://localhost:8001/metrics");

const fileSchema = z.strictObject({
  log_capture: z.strictObject({
    output_dir: z.string().min(1).default("/data/vllm_logs"),
    rotation: z.literal("daily").default("daily"),
    compression: z.enum(["gzip", "none"]).default("gzip"),
    compress_after_days: z.number().int().min(1).default(7),
    retention_days: z.number().int().min(1).default(30),
  }).prefault({}),
  metrics_scraper: z.strictObject({
    interval_seconds: z.number().positive().max(3600).default(5),
    timeout_seconds: z.number().positive().optional(),
    db_path: z.string().min(1).default("/data/vllm_metrics.db"),
    batch_size: z.number().int().positive().default(100),
    retention_days: z.number().int().min(1).default(30),
  }).prefault({}),
  alerts_file: z.string().min(1).optional(),
  containers: z.array(z.strictObject({
    name: containerName,
    logs_stream: z.string().min(1).optional(),
    metrics_endpoint: endpointUrl.optional(),
  })).min(1, "list at least one container"),
});

/** One container to follow and scrape. */
export interface ContainerConfig {
  name: string;
  /** Directory of the daily JSONL files, or null when logs are not captured. */
  logDir: string | null;
  /** Command that streams the logs, already split into arguments (no shell). */
  logsCommand: string[];
  /** URL of the Prometheus endpoint, or null when metrics are not scraped. */
  metricsEndpoint: string | null;
}

/** Validated configuration of the `run` command. */
export interface LoggerConfig {
  /** Directory of `alerts.log` and of the per-container log directories, or null. */
  outputDir: string | null;
  compression: "gzip" | "none";
  compressAfterDays: number;
  retentionDays: number;
  intervalMs: number;
  timeoutMs: number;
  /** SQLite file, or null when no container is scraped. */
  dbPath: string | null;
  metricsRetentionDays: number;
  alertsFile: string | null;
  containers: ContainerConfig[];
}

/** Returns the scrape timeout: 80% of the interval, at most 10 s, unless set. */
function scrapeTimeoutMs(intervalMs: number, timeoutSeconds?: number): number {
  if (timeoutSeconds !== undefined) return timeoutSeconds * 1000;
  return Math.min(intervalMs * 0.8, 10_000);
}

/**
 * Splits a command line into arguments on white space, honouring single and
 * double quotes. No shell runs it: `;`, `|` and `$()` stay plain text.
 */
export function splitCommand(command: string): string[] {
  const args: string[] = [];
  let current = "";
  let quote: string | null = null;
  let inToken = false;
  for (const char of command) {
    if (quote !== null) {
      if (char === quote) quote = null;
      else current += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inToken = true;
    } else if (/\s/.test(char)) {
      if (inToken) args.push(current);
      current = "";
      inToken = false;
    } else {
      current += char;
      inToken = true;
    }
  }
  if (quote !== null) {
    throw new SyntaxError(`Unclosed ${quote} quote in "${command}"`);
  }
  if (inToken) args.push(current);
  return args;
}

function formatKeyPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? String(part) : `.${String(part)}`;
  }
  return text;
}

function firstIssueError(file: string, error: z.ZodError): ConfigError {
  const issue = error.issues[0];
  if (issue === undefined) {
    return new ConfigError(file, "", "invalid configuration");
  }
  if (issue.code === "unrecognized_keys") {
    const prefix = formatKeyPath(issue.path);
    const keys = issue.keys.map((key) =>
      prefix === "" ? key : `${prefix}.${key}`
    );
    return new ConfigError(
      file,
      keys[0] ?? prefix,
      `unknown key; remove it or check its spelling (known keys are listed in the README's configuration reference)`,
    );
  }
  return new ConfigError(file, formatKeyPath(issue.path), issueMessage(issue));
}

/**
 * Rewords zod's generic messages ("Invalid input: expected number, received
 * string") as what the key must be, with where to look for the fix.
 */
function issueMessage(issue: z.core.$ZodIssue): string {
  const reference = "see the configuration reference in README.md";
  // A message given in the schema is already specific; keep it.
  if (!/^(Invalid|Too small|Too big)/.test(issue.message)) return issue.message;
  switch (issue.code) {
    case "invalid_type":
      if (issue.message.includes("received undefined")) {
        return `is missing: it must be ${
          withArticle(issue.expected)
        }; ${reference}`;
      }
      return `must be ${withArticle(issue.expected)}, not ${
        withArticle(/received (\w+)/.exec(issue.message)?.[1] ?? "another type")
      }; ${reference}`;
    case "too_small":
      return `must be ${
        issue.inclusive === false ? "more than" : "at least"
      } ${issue.minimum}`;
    case "too_big":
      return `must be ${
        issue.inclusive === false ? "less than" : "at most"
      } ${issue.maximum}`;
    case "invalid_value":
      return `must be one of ${
        issue.values.map((value) => JSON.stringify(value)).join(", ")
      }`;
    default:
      return issue.message;
  }
}

function withArticle(word: string): string {
  const names: Record<string, string> = {
    array: "a list",
    object: "a mapping",
  };
  return names[word] ?? (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);
}

/** Builds the logs command for a container from its `logs_stream` text. */
function logsCommandFor(
  file: string,
  index: number,
  name: string,
  logsStream?: string,
): string[] {
  const keyPath = `containers[${index}].logs_stream`;
  let args: string[];
  try {
    args = logsStream === undefined
      ? [...splitCommand(DEFAULT_LOGS_STREAM), name]
      : splitCommand(logsStream);
  } catch (error) {
    throw new ConfigError(file, keyPath, (error as Error).message);
  }
  if (args.length === 0) {
    throw new ConfigError(
      file,
      keyPath,
      'is empty; use for example "docker logs -f NAME"',
    );
  }
  return args;
}

/**
 * Validates a parsed YAML document and resolves it into a configuration.
 *
 * @throws {ConfigError} naming the file, the key path and the fix
 */
export function configFromDocument(
  file: string,
  document: unknown,
): LoggerConfig {
  if (document === null || document === undefined) {
    throw new ConfigError(
      file,
      "",
      "the file is empty; see configs/vllm_logger.yaml for an example",
    );
  }
  const result = fileSchema.safeParse(document);
  if (!result.success) throw firstIssueError(file, result.error);
  const data = result.data;

  const seen = new Set<string>();
  const containers = data.containers.map((entry, index): ContainerConfig => {
    if (seen.has(entry.name)) {
      throw new ConfigError(
        file,
        `containers[${index}].name`,
        `"${entry.name}" is listed twice; give each container once`,
      );
    }
    seen.add(entry.name);
    return {
      name: entry.name,
      logDir: `${data.log_capture.output_dir}/${entry.name}`,
      logsCommand: logsCommandFor(file, index, entry.name, entry.logs_stream),
      metricsEndpoint: entry.metrics_endpoint ?? null,
    };
  });

  if (
    data.alerts_file !== undefined &&
    !containers.some((c) => c.metricsEndpoint !== null)
  ) {
    throw new ConfigError(
      file,
      "alerts_file",
      "needs at least one container with metrics_endpoint: rules are evaluated after each scrape",
    );
  }
  const intervalMs = data.metrics_scraper.interval_seconds * 1000;
  const timeoutMs = scrapeTimeoutMs(
    intervalMs,
    data.metrics_scraper.timeout_seconds,
  );
  if (timeoutMs >= intervalMs) {
    throw new ConfigError(
      file,
      "metrics_scraper.timeout_seconds",
      `must be shorter than interval_seconds (${data.metrics_scraper.interval_seconds}) so scrapes never overlap`,
    );
  }
  return {
    outputDir: data.log_capture.output_dir,
    compression: data.log_capture.compression,
    compressAfterDays: data.log_capture.compress_after_days,
    retentionDays: data.log_capture.retention_days,
    intervalMs,
    timeoutMs,
    dbPath: containers.some((c) => c.metricsEndpoint !== null)
      ? data.metrics_scraper.db_path
      : null,
    metricsRetentionDays: data.metrics_scraper.retention_days,
    alertsFile: data.alerts_file ?? null,
    containers,
  };
}

/**
 * Reads and validates a YAML configuration file.
 *
 * @throws {ConfigError} when the file is missing, is not YAML or is invalid
 */
export async function loadConfigFile(path: string): Promise<LoggerConfig> {
  const fail = (message: string) => new ConfigError(path, "", message);
  const text = await readConfigText(
    path,
    "file not found; pass an existing file with --config",
    fail,
  );
  return configFromDocument(path, parseYamlText(text, fail));
}

/**
 * Reads a configuration or rules file as text.
 *
 * @throws the error `fail` builds, with `notFound` when the file is missing
 */
export async function readConfigText(
  path: string,
  notFound: string,
  fail: (message: string) => Error,
): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw fail(notFound);
    throw fail(`cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Parses YAML text into a document.
 *
 * @throws the error `fail` builds, naming the line, when the text is not YAML
 */
export function parseYamlText(
  text: string,
  fail: (message: string) => Error,
): unknown {
  try {
    return parseYaml(text);
  } catch (error) {
    if (!(error instanceof YAMLParseError)) throw error;
    const line = error.linePos?.[0]?.line;
    const where = line === undefined ? "" : ` at line ${line}`;
    throw fail(`invalid YAML${where}: ${error.message.split("\n")[0]}`);
  }
}

/** Flags of the supervisor's form: one container, logs half and metrics half each optional. */
export interface FlagOptions {
  container?: string;
  metricsPort?: number;
  metricsUrl?: string;
  logDir?: string;
  db?: string;
  intervalSeconds?: number;
  logsStream?: string;
  alertsFile?: string;
}

/**
 * Builds a configuration from the supervisor's flags.
 *
 * @throws {ConfigError} when a flag is missing, invalid or without its partner
 */
export function configFromFlags(flags: FlagOptions): LoggerConfig {
  const file = "command line";
  if (flags.container === undefined) {
    throw new ConfigError(
      file,
      "--container",
      "is required with the flag form, or pass --config FILE",
    );
  }
  if (!CONTAINER_NAME_PATTERN.test(flags.container)) {
    throw new ConfigError(
      file,
      "--container",
      `"${flags.container}" is not a valid container name: use letters, digits, '_', '.' and '-', starting with a letter or digit`,
    );
  }
  if (flags.metricsPort !== undefined && flags.metricsUrl !== undefined) {
    throw new ConfigError(
      file,
      "--metrics-url",
      "conflicts with --metrics-port; pass one of them",
    );
  }

  const wantsMetrics = flags.metricsPort !== undefined ||
    flags.metricsUrl !== undefined;
  if (wantsMetrics && flags.db === undefined) {
    throw new ConfigError(
      file,
      "--db",
      "is required with --metrics-port: it names the SQLite file to write",
    );
  }
  if (!wantsMetrics && flags.db !== undefined) {
    throw new ConfigError(
      file,
      "--metrics-port",
      "is required with --db: it names the port of the /metrics endpoint",
    );
  }
  if (!wantsMetrics && flags.logDir === undefined) {
    throw new ConfigError(
      file,
      "",
      "nothing to do: pass --log-dir to capture logs and/or --metrics-port with --db to scrape metrics",
    );
  }
  if (
    flags.alertsFile !== undefined &&
    (!wantsMetrics || flags.logDir === undefined)
  ) {
    throw new ConfigError(
      file,
      "--alerts-file",
      "needs --metrics-port with --db (rules are evaluated after each scrape) and --log-dir (alerts.log is written there)",
    );
  }

  let metricsEndpoint: string | null = null;
  if (flags.metricsPort !== undefined) {
    if (flags.metricsPort > 65535) {
      throw new ConfigError(
        file,
        "--metrics-port",
        `${flags.metricsPort} is not a TCP port: use 1 to 65535`,
      );
    }
    metricsEndpoint = `http://localhost:${flags.metricsPort}/metrics`;
  } else if (flags.metricsUrl !== undefined) {
    const parsed = endpointUrl.safeParse(flags.metricsUrl);
    if (!parsed.success) {
      throw new ConfigError(
        file,
        "--metrics-url",
        parsed.error.issues[0]?.message ?? "is invalid",
      );
    }
    metricsEndpoint = flags.metricsUrl;
  }

  let logsCommand: string[];
  try {
    logsCommand = flags.logsStream === undefined
      ? [...splitCommand(DEFAULT_LOGS_STREAM), flags.container]
      : splitCommand(flags.logsStream);
  } catch (error) {
    throw new ConfigError(file, "--logs-stream", (error as Error).message);
  }
  if (logsCommand.length === 0) {
    throw new ConfigError(
      file,
      "--logs-stream",
      'is empty; use for example "docker logs -f NAME", or leave the flag out',
    );
  }

  const intervalMs = (flags.intervalSeconds ?? 5) * 1000;
  return {
    outputDir: flags.logDir ?? null,
    compression: "gzip",
    compressAfterDays: 7,
    retentionDays: 30,
    intervalMs,
    timeoutMs: scrapeTimeoutMs(intervalMs),
    dbPath: flags.db ?? null,
    metricsRetentionDays: 30,
    alertsFile: flags.alertsFile ?? null,
    containers: [{
      name: flags.container,
      logDir: flags.logDir ?? null,
      logsCommand,
      metricsEndpoint,
    }],
  };
}
