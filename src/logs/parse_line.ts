/**
 * Parsing of one cleaned log line (see `cleanLine`) from a vLLM container:
 * its level, its message and the fields found in it.
 *
 * Recognised writers: vLLM's logger (current `[file.py:N]` and pre-2025
 * `file.py:N]` headers), uvicorn (lifecycle and access lines), torch/NCCL C++
 * logs, Python `warnings`, tqdm progress bars, and third-party Python loggers
 * (`[date] Name LEVEL:`, `date - [name - ]LEVEL - `, `LEVEL:name:`). Any line
 * may start with vLLM's process prefix `(APIServer pid=1) `.
 *
 * Field names are snake_case and stable. None is `timestamp`, `level`,
 * `container`, `stream` or `message`, because those keys belong to the JSON
 * record. Units are part of the name (`_pct` is percent 0-100,
 * `_tokens_per_s`, `_requests`, `_gib`).
 *
 * | field | type | from |
 * |---|---|---|
 * | `process` | string | process prefix name: `APIServer`, `EngineCore_DP0`, `VllmWorkerProcess`, `VllmWorker` |
 * | `pid` | number | process prefix `pid=` |
 * | `rank` | number | `rank=` of a `(VllmWorker rank=6 pid=9)` prefix, or torch's `[rank0]:` |
 * | `source_file` | string | file as the writer printed it: `serving.py` (vLLM), `ProcessGroupNCCL.cpp` (torch), a full path (Python warning), `autotuner.py` (third party) |
 * | `source_line` | number | line number next to `source_file` |
 * | `vllm_time` | string | vLLM's own `MM-DD HH:MM:SS` (container-local time, no year) |
 * | `source_time` | string | another writer's own time as printed: torch `1117 09:18:59.713459820`, LMCache `2026-06-04 15:12:14,668` |
 * | `logger` | string | third-party logger name (`LMCache`, `transformers`) |
 * | `client` | string | uvicorn access line: client address `127.0.0.1:40138` |
 * | `method` | string | access line: HTTP method |
 * | `path` | string | access line: request path with its query string |
 * | `http_version` | string | access line: `1.1` |
 * | `status` | number | access line: HTTP status code |
 * | `warning_category` | string | Python warning class: `UserWarning` |
 * | `engine` | string | stats line `Engine 000:`: `000` |
 * | `engines_aggregated` | number | stats line `N Engines Aggregated:`: N |
 * | `prompt_throughput_tokens_per_s` | number | stats `Avg prompt throughput` |
 * | `generation_throughput_tokens_per_s` | number | stats `Avg generation throughput` |
 * | `running_requests` | number | stats `Running` |
 * | `waiting_requests` | number | stats `Waiting` (V1) or `Pending` (V0, the same queue) |
 * | `deferred_requests` | number | stats `Deferred` |
 * | `swapped_requests` | number | stats `Swapped` (V0) |
 * | `preemptions` | number | stats `Preemptions` (printed only when non-zero) |
 * | `gpu_kv_cache_usage_pct` | number | stats `GPU KV cache usage` |
 * | `cpu_kv_cache_usage_pct` | number | stats `CPU KV cache usage` (V0) |
 * | `prefix_cache_hit_rate_pct` | number | stats `Prefix cache hit rate` (V1) |
 * | `gpu_prefix_cache_hit_rate_pct`, `cpu_prefix_cache_hit_rate_pct` | number | V0 stats `Prefix cache hit rate: GPU: a%, CPU: b%` |
 * | `external_prefix_cache_hit_rate_pct` | number | stats `External prefix cache hit rate` |
 * | `mm_cache_hit_rate_pct` | number | stats `MM cache hit rate` |
 * | `stats_<label>[_<unit>]` | number | any other `Label: N unit` item of a stats line, label and unit in snake_case (`tokens/s` → `tokens_per_s`, `reqs` → `requests`, `%` → `pct`) |
 * | `available_kv_cache_memory_gib` | number | `Available KV cache memory: 57.00 GiB` |
 * | `gpu_kv_cache_size_tokens` | number | `GPU KV cache size: 933,888 tokens` |
 * | `max_concurrency`, `max_concurrency_tokens_per_request` | number | `Maximum concurrency for 32,768 tokens per request: 28.50x` |
 * | `gpu_blocks`, `cpu_blocks` | number | V0 `# GPU blocks: 14732, # CPU blocks: 1024` |
 * | `progress_desc` | string | progress bar text before `: NN%` |
 * | `progress_pct` | number | progress bar percentage |
 * | `progress_current`, `progress_total` | number | progress bar `n/total` |
 * | `value_pct` | number | first percentage written as `at N%`, `usage N%`, `usage: N%` or `utilization N%` in a message that is not a stats, access or progress line |
 * | `kv_<key>` | string or number | each `key=value` pair in the message (see below) |
 * | `exception_type` | string | set by `EventGrouper`: type on the last line of a traceback |
 *
 * `key=value` pairs: the key is an identifier (`[A-Za-z_]\w*`) not preceded by
 * a word character, `.` or `-` (so `--max-model-len=N` and `a.b=c` are
 * skipped), the value is a quoted string (quotes removed) or a run of
 * `[\w.:/@+-]` with one trailing `.` removed. Values starting with `{`, `[`,
 * `(` or `<` are skipped. The field name is `kv_` plus the lower-cased key;
 * no other field starts with `kv_`, so a pair can never replace a parsed or
 * reserved field. Decimal numbers become numbers, everything else (`None`,
 * `True`, `fp8`) stays a string. The first occurrence of a key wins, and at
 * most 64 pairs are taken from one line. Access and progress lines get no
 * pairs because their text is a URL or a bar.
 *
 * Level: the writer's level word, mapped to `DEBUG`, `INFO`, `WARNING`,
 * `ERROR` or `CRITICAL` (`WARN` → `WARNING`, `FATAL` → `CRITICAL`, uvicorn's
 * `TRACE` → `DEBUG`, torch letters I/W/E/F → INFO/WARNING/ERROR/CRITICAL,
 * Python warnings → `WARNING`). A line without a level word, progress bars
 * included, gets `INFO` on both stdout and stderr: progress bars, uvicorn and
 * other libraries use stderr for ordinary output, so the stream alone does
 * not mean an error.
 *
 * @module
 */
import type { FieldValue, StreamName } from "./types.ts";

/** Writer or shape of a line, as far as one line shows it. */
export type LineKind =
  /** `LEVEL MM-DD HH:MM:SS [file.py:N] message` or its pre-2025 form. */
  | "vllm_record"
  /** uvicorn `INFO:     message`, access lines included. */
  | "uvicorn"
  /** torch/NCCL C++ log `[rank0]:[W1117 09:18:59.713 File.cpp:N] message`. */
  | "torch"
  /** Python warning `path.py:N: Category: message`. */
  | "python_warning"
  /** Another Python logger's format. */
  | "third_party"
  /** A tqdm-style progress bar state. */
  | "progress"
  /** Anything else, traceback lines included. */
  | "text"
  /** Nothing but whitespace after the process prefix. */
  | "empty";

/** Result of `parseLine`. */
export interface ParsedLine {
  kind: LineKind;
  /** `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`. */
  level: string;
  /** Whether the text named the level; `false` when it is the stream default. */
  levelFound: boolean;
  /** The text after the process prefix and the writer's header. */
  message: string;
  fields: Record<string, FieldValue>;
  /**
   * vLLM record header as printed (`ERROR 11-17 09:16:07 [serving.py:1325]`),
   * or `""` for other kinds. Lines of one multi-line record repeat it.
   */
  recordHeader: string;
}

/** Level of a line that names none, per stream (see the module notes). */
const DEFAULT_LEVEL: Readonly<Record<StreamName, string>> = {
  stdout: "INFO",
  stderr: "INFO",
};

const PROCESS_PREFIX = /^\(([A-Za-z_][\w.-]*)(?: rank=(\d+))? pid=(\d+)\) ?/;

/**
 * Returns the length of vLLM's process prefix (`(EngineCore_DP0 pid=267) `,
 * trailing space included) at the start of `text`, or 0 when there is none.
 */
export function processPrefixLength(text: string): number {
  if (text.charCodeAt(0) !== 0x28) return 0;
  const match = PROCESS_PREFIX.exec(text);
  return match === null ? 0 : match[0].length;
}

/**
 * Parses one line that `cleanLine` has already cleaned. `stream` selects the
 * level used when the line names none. A line that matches no known format
 * becomes kind `text` with its whole text (after the process prefix) as
 * message.
 */
export function parseLine(cleanText: string, stream: StreamName): ParsedLine {
  const fields: Record<string, FieldValue> = {};
  let text = cleanText;
  if (text.charCodeAt(0) === 0x28) {
    const prefix = PROCESS_PREFIX.exec(text);
    if (prefix !== null) {
      fields.process = prefix[1] ?? "";
      fields.pid = Number(prefix[3]);
      if (prefix[2] !== undefined) fields.rank = Number(prefix[2]);
      text = text.slice(prefix[0].length);
    }
  }
  const line: ParsedLine = {
    kind: "text",
    level: DEFAULT_LEVEL[stream],
    levelFound: false,
    message: text,
    fields,
    recordHeader: "",
  };
  if (isBlank(text)) {
    line.kind = "empty";
    line.message = "";
    return line;
  }

  let scanPairs = true;
  switch (text.charCodeAt(0)) {
    case 0x43: // C
    case 0x44: // D
    case 0x45: // E
    case 0x49: // I
    case 0x54: // T
    case 0x57: // W
      if (parseVllmRecord(text, line)) {
        scanPairs = line.fields.prompt_throughput_tokens_per_s === undefined;
      } else if (parseUvicorn(text, line)) {
        scanPairs = line.fields.status === undefined;
      } else {
        scanPairs = parseUntagged(text, line);
      }
      break;
    case 0x5b: // [
      if (!parseTorch(text, line) && !parseBracketedLogger(text, line)) {
        scanPairs = parseUntagged(text, line);
      }
      break;
    default:
      if (!parseDatedLogger(text, line)) scanPairs = parseUntagged(text, line);
  }
  if (scanPairs) {
    addPercentValue(line.message, fields);
    addKeyValuePairs(line.message, fields);
  }
  return line;
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0d) return false;
  }
  return true;
}

// --- vLLM logger records -----------------------------------------------------

/** Groups: 1 header, 2 level, 3 time, 4/5 file and line with `[`, 6/7 without. */
const VLLM_RECORD =
  /^((DEBUG|INFO|WARNING|ERROR|CRITICAL) (\d\d-\d\d \d\d:\d\d:\d\d) (?:\[([^\]\s]+):(\d+)\]|([^\s\]]+):(\d+)\]))(?: |$)/;

function parseVllmRecord(text: string, line: ParsedLine): boolean {
  const match = VLLM_RECORD.exec(text);
  if (match === null) return false;
  const fields = line.fields;
  line.kind = "vllm_record";
  line.level = match[2] ?? "INFO";
  line.levelFound = true;
  line.recordHeader = match[1] ?? "";
  line.message = text.slice(match[0].length);
  fields.source_file = match[4] ?? match[6] ?? "";
  fields.source_line = Number(match[5] ?? match[7]);
  fields.vllm_time = match[3] ?? "";
  if (!parseStatsLine(line.message, fields)) {
    addStartupFacts(line.message, fields);
  }
  return true;
}

const STATS_FIELD_BY_LABEL: ReadonlyMap<string, string> = new Map([
  ["Avg prompt throughput", "prompt_throughput_tokens_per_s"],
  ["Avg generation throughput", "generation_throughput_tokens_per_s"],
  ["Running", "running_requests"],
  ["Waiting", "waiting_requests"],
  ["Pending", "waiting_requests"],
  ["Swapped", "swapped_requests"],
  ["Deferred", "deferred_requests"],
  ["Preemptions", "preemptions"],
  ["GPU KV cache usage", "gpu_kv_cache_usage_pct"],
  ["CPU KV cache usage", "cpu_kv_cache_usage_pct"],
  ["Prefix cache hit rate", "prefix_cache_hit_rate_pct"],
  ["External prefix cache hit rate", "external_prefix_cache_hit_rate_pct"],
  ["MM cache hit rate", "mm_cache_hit_rate_pct"],
]);

const STATS_UNIT_SUFFIX: ReadonlyMap<string, string> = new Map([
  ["tokens/s", "_tokens_per_s"],
  ["reqs", "_requests"],
  ["%", "_pct"],
  ["", ""],
]);

const STATS_THROUGHPUT_START = "Avg prompt throughput: ";
const ENGINE_LABEL = /^Engine (\d+): /;
const ENGINES_AGGREGATED_LABEL = /^(\d+) Engines Aggregated: /;
const STATS_VALUE = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?) ?(.*)$/;

/**
 * Reads the periodic stats line: V1 `Engine 000: Avg prompt throughput: ...`
 * (or `N Engines Aggregated: ...`) and V0 `Avg prompt throughput: ...` with
 * its trailing `.`. Returns false, adding nothing, for any other message.
 */
function parseStatsLine(
  message: string,
  fields: Record<string, FieldValue>,
): boolean {
  let body = message;
  let engine: string | undefined;
  let enginesAggregated: number | undefined;
  const first = message.charCodeAt(0);
  if (first === 0x45 /* E */) {
    const match = ENGINE_LABEL.exec(message);
    if (match === null) return false;
    engine = match[1];
    body = message.slice(match[0].length);
  } else if (first >= 0x30 && first <= 0x39) {
    const match = ENGINES_AGGREGATED_LABEL.exec(message);
    if (match === null) return false;
    enginesAggregated = Number(match[1]);
    body = message.slice(match[0].length);
  }
  if (!body.startsWith(STATS_THROUGHPUT_START)) return false;

  if (engine !== undefined) fields.engine = engine;
  if (enginesAggregated !== undefined) {
    fields.engines_aggregated = enginesAggregated;
  }
  if (body.endsWith(".")) body = body.slice(0, -1);
  // V0 prints `Prefix cache hit rate: GPU: a%, CPU: b%`, which the split on
  // ", " cuts into `Prefix cache hit rate: GPU: a%` and `CPU: b%`.
  let inV0PrefixRate = false;
  for (const item of body.split(", ")) {
    const colon = item.indexOf(": ");
    if (colon === -1) continue;
    let label = item.slice(0, colon);
    let valueText = item.slice(colon + 2);
    let name: string | undefined;
    if (label === "Prefix cache hit rate" && valueText.startsWith("GPU: ")) {
      inV0PrefixRate = true;
      label = "GPU";
      valueText = valueText.slice(5);
    }
    if (inV0PrefixRate && (label === "GPU" || label === "CPU")) {
      name = label === "GPU"
        ? "gpu_prefix_cache_hit_rate_pct"
        : "cpu_prefix_cache_hit_rate_pct";
    }
    const value = STATS_VALUE.exec(valueText);
    if (value === null) continue;
    name ??= STATS_FIELD_BY_LABEL.get(label) ??
      unknownStatsFieldName(label, value[2] ?? "");
    fields[name] = Number(value[1]);
  }
  return true;
}

function unknownStatsFieldName(label: string, unit: string): string {
  const suffix = STATS_UNIT_SUFFIX.get(unit) ?? `_${toSnakeCase(unit)}`;
  return `stats_${toSnakeCase(label)}${suffix}`;
}

function toSnakeCase(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(
    /^_+|_+$/g,
    "",
  );
}

const AVAILABLE_KV_MEMORY = /^Available KV cache memory: (\d+(?:\.\d+)?) GiB/;
const GPU_KV_CACHE_SIZE = /^GPU KV cache size: ([\d,]+) tokens/;
const MAX_CONCURRENCY =
  /^Maximum concurrency for ([\d,]+) tokens per request: (\d+(?:\.\d+)?)x/;
const V0_BLOCKS = /^# GPU blocks: (\d+), # CPU blocks: (\d+)/;

/** Reads the KV-cache capacity facts that vLLM logs once at start. */
function addStartupFacts(
  message: string,
  fields: Record<string, FieldValue>,
): void {
  switch (message.charCodeAt(0)) {
    case 0x41: { // A
      const match = AVAILABLE_KV_MEMORY.exec(message);
      if (match !== null) {
        fields.available_kv_cache_memory_gib = Number(match[1]);
      }
      break;
    }
    case 0x47: { // G
      const match = GPU_KV_CACHE_SIZE.exec(message);
      if (match !== null) {
        fields.gpu_kv_cache_size_tokens = parseGroupedInteger(match[1]);
      }
      break;
    }
    case 0x4d: { // M
      const match = MAX_CONCURRENCY.exec(message);
      if (match !== null) {
        fields.max_concurrency = Number(match[2]);
        fields.max_concurrency_tokens_per_request = parseGroupedInteger(
          match[1],
        );
      }
      break;
    }
    case 0x23: { // #
      const match = V0_BLOCKS.exec(message);
      if (match !== null) {
        fields.gpu_blocks = Number(match[1]);
        fields.cpu_blocks = Number(match[2]);
      }
      break;
    }
  }
}

/** Parses `933,888` (thousands separators) as 933888. */
function parseGroupedInteger(text: string | undefined): number {
  return Number((text ?? "").replaceAll(",", ""));
}

// --- uvicorn -------------------------------------------------------------------

/** uvicorn pads `LEVEL:` with spaces to 9 columns, then one space. */
const UVICORN_PREFIX = /^(DEBUG|INFO|WARNING|ERROR|CRITICAL|TRACE):(?: +|$)/;
const ACCESS_LINE = /^(\S+) - "([A-Z]+) (\S+) HTTP\/([\d.]+)" (\d{3})(?: |$)/;
/** Python's default `logging` format `LEVEL:logger:message`. */
const PYTHON_DEFAULT_FORMAT =
  /^(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL):([\w.]+):/;

function parseUvicorn(text: string, line: ParsedLine): boolean {
  const match = UVICORN_PREFIX.exec(text);
  if (match === null) {
    const python = PYTHON_DEFAULT_FORMAT.exec(text);
    if (python === null) return false;
    line.kind = "third_party";
    setLevel(line, python[1]);
    line.fields.logger = python[2] ?? "";
    line.message = text.slice(python[0].length);
    return true;
  }
  line.kind = "uvicorn";
  setLevel(line, match[1]);
  const message = text.slice(match[0].length);
  line.message = message;
  const access = ACCESS_LINE.exec(message);
  if (access !== null) {
    const fields = line.fields;
    fields.client = access[1] ?? "";
    fields.method = access[2] ?? "";
    fields.path = access[3] ?? "";
    fields.http_version = access[4] ?? "";
    fields.status = Number(access[5]);
  }
  return true;
}

// --- torch C++ and bracketed third-party loggers -----------------------------

const TORCH_LINE =
  /^(?:\[rank(\d+)\]:)?\[([IWEF])(\d{4} \d\d:\d\d:\d\d(?:\.\d+)?)(?: +\d+)? ([^\s\]]+):(\d+)\] ?/;
const TORCH_LEVEL: ReadonlyMap<string, string> = new Map([
  ["I", "INFO"],
  ["W", "WARNING"],
  ["E", "ERROR"],
  ["F", "CRITICAL"],
]);

function parseTorch(text: string, line: ParsedLine): boolean {
  const match = TORCH_LINE.exec(text);
  if (match === null) return false;
  const fields = line.fields;
  line.kind = "torch";
  line.level = TORCH_LEVEL.get(match[2] ?? "") ?? "INFO";
  line.levelFound = true;
  line.message = text.slice(match[0].length);
  if (match[1] !== undefined) fields.rank = Number(match[1]);
  fields.source_time = match[3] ?? "";
  fields.source_file = match[4] ?? "";
  fields.source_line = Number(match[5]);
  return true;
}

const DATE_TIME = String.raw`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?`;
const LEVEL_WORD = "DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL";
/** LMCache style: `[2026-06-04 15:12:14,668] LMCache INFO: message`. */
const BRACKETED_LOGGER = new RegExp(
  `^\\[(${DATE_TIME})\\] (\\S+) (${LEVEL_WORD}):? `,
);
/**
 * `2026-02-02 18:25:03,837 - INFO - autotuner.py:256 - message` (flashinfer)
 * and `date - name - LEVEL - message` (Python's common format).
 */
const DATED_LOGGER = new RegExp(
  `^(${DATE_TIME}) - (?:([\\w.]+) - )?(${LEVEL_WORD}) - (?:([^\\s:]+):(\\d+) - )?`,
);

function parseBracketedLogger(text: string, line: ParsedLine): boolean {
  const match = BRACKETED_LOGGER.exec(text);
  if (match === null) return false;
  line.kind = "third_party";
  setLevel(line, match[3]);
  line.message = text.slice(match[0].length);
  line.fields.source_time = match[1] ?? "";
  line.fields.logger = match[2] ?? "";
  return true;
}

function parseDatedLogger(text: string, line: ParsedLine): boolean {
  const first = text.charCodeAt(0);
  if (first < 0x30 || first > 0x39) return false;
  const match = DATED_LOGGER.exec(text);
  if (match === null) return false;
  const fields = line.fields;
  line.kind = "third_party";
  setLevel(line, match[3]);
  line.message = text.slice(match[0].length);
  fields.source_time = match[1] ?? "";
  if (match[2] !== undefined) fields.logger = match[2];
  if (match[4] !== undefined) {
    fields.source_file = match[4];
    fields.source_line = Number(match[5]);
  }
  return true;
}

const LEVEL_ALIASES: ReadonlyMap<string, string> = new Map([
  ["WARN", "WARNING"],
  ["FATAL", "CRITICAL"],
  ["TRACE", "DEBUG"],
]);

function setLevel(line: ParsedLine, word: string | undefined): void {
  const level = word ?? "INFO";
  line.level = LEVEL_ALIASES.get(level) ?? level;
  line.levelFound = true;
}

// --- lines without a header ---------------------------------------------------

const PYTHON_WARNING = /^(\S+?\.py):(\d+): ([A-Za-z_]\w*Warning): /;
/**
 * tqdm states: `desc:  13%|██▎       | 7/51 [...]` and vLLM's weight loader
 * `desc:  50% Completed | 2/4 [...]`.
 */
const PROGRESS_BAR =
  /^(?:(.*?): *)? *(\d{1,3})%(?:\|[^|]*\|| Completed \|) *(\d+)\/(\d+)/;

/**
 * Recognises Python warnings and progress bars among lines without a level
 * header. Returns whether `key=value` pairs and percentages should still be
 * read from the message (false for progress bars).
 */
function parseUntagged(text: string, line: ParsedLine): boolean {
  if (text.indexOf("Warning: ") !== -1) {
    const match = PYTHON_WARNING.exec(text);
    if (match !== null) {
      const fields = line.fields;
      line.kind = "python_warning";
      line.level = "WARNING";
      line.levelFound = true;
      line.message = text.slice(match[0].length);
      fields.source_file = match[1] ?? "";
      fields.source_line = Number(match[2]);
      fields.warning_category = match[3] ?? "";
      return true;
    }
  }
  if (text.indexOf("%") !== -1) {
    const match = PROGRESS_BAR.exec(text);
    if (match !== null) {
      const fields = line.fields;
      line.kind = "progress";
      if (match[1] !== undefined && match[1] !== "") {
        fields.progress_desc = match[1];
      }
      fields.progress_pct = Number(match[2]);
      fields.progress_current = Number(match[3]);
      fields.progress_total = Number(match[4]);
      return false;
    }
  }
  return true;
}

// --- values inside any message ------------------------------------------------

const PERCENT_VALUE = /\b(?:at|usage|utili[sz]ation):? (\d+(?:\.\d+)?) ?%/;

function addPercentValue(
  message: string,
  fields: Record<string, FieldValue>,
): void {
  if (message.indexOf("%") === -1) return;
  const match = PERCENT_VALUE.exec(message);
  if (match !== null) fields.value_pct = Number(match[1]);
}

const KEY_VALUE_PAIR =
  /(?<![\w.-])([A-Za-z_]\w*)=(?:'([^']*)'|"([^"]*)"|([\w.:/@+-]+))/g;
const DECIMAL_NUMBER = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const MAX_PAIRS_PER_LINE = 64;

function addKeyValuePairs(
  message: string,
  fields: Record<string, FieldValue>,
): void {
  if (message.indexOf("=") === -1) return;
  let count = 0;
  for (const match of message.matchAll(KEY_VALUE_PAIR)) {
    const name = `kv_${(match[1] ?? "").toLowerCase()}`;
    if (name in fields) continue;
    let value = match[2] ?? match[3];
    if (value === undefined) {
      value = match[4] ?? "";
      if (value.endsWith(".")) value = value.slice(0, -1);
    }
    fields[name] = DECIMAL_NUMBER.test(value) ? Number(value) : value;
    if (++count === MAX_PAIRS_PER_LINE) break;
  }
}
