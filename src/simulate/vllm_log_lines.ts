/**
 * Text of the log lines a vLLM V1 container prints (early-2026 builds):
 * vLLM logger records with the `(APIServer pid=1)` process prefix, uvicorn
 * lifecycle and access lines, tqdm progress bars, the periodic engine stats
 * line and tracebacks. Each function returns physical lines without their
 * final `\n`. vLLM joins the lines of a multi-line record with `\r\n`, so
 * every line of such a record except the last ends with `\r`.
 *
 * @module
 */

import type { StreamName } from "../logs/types.ts";

/** One physical line and the stream it is written to. */
export interface LogLine {
  stream: StreamName;
  text: string;
}

/** vLLM log levels. */
export type VllmLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";

/** Names and process ids the prefixes show. */
export interface ProcessNames {
  /** Whether process prefixes carry cyan ANSI colour codes. */
  color: boolean;
  apiServerPid: number;
  engineCorePid: number;
}

const ESC = "\x1b";

/** Returns the `(APIServer pid=1) ` style prefix that vLLM puts before every line of a process. */
export function processPrefix(
  names: ProcessNames,
  process: "APIServer" | "EngineCore_DP0",
): string {
  const pid = process === "APIServer"
    ? names.apiServerPid
    : names.engineCorePid;
  const label = `(${process} pid=${pid})`;
  return names.color ? `${ESC}[0;36m${label}${ESC}[0;0m ` : `${label} `;
}

/** Formats a Unix time as vLLM's `MM-DD HH:MM:SS` header time, in UTC. */
export function formatVllmTime(timeMs: number): string {
  const iso = new Date(timeMs).toISOString();
  return `${iso.slice(5, 10)} ${iso.slice(11, 19)}`;
}

/**
 * Returns the lines of one vLLM logger record. A multi-line message repeats
 * the header on every line, and every line but the last ends with `\r`.
 */
export function vllmRecord(
  prefix: string,
  level: VllmLevel,
  timeMs: number,
  source: string,
  message: string,
): string[] {
  const header = `${prefix}${level} ${formatVllmTime(timeMs)} [${source}] `;
  const parts = message.split("\n");
  return parts.map((part, index) =>
    `${header}${part}${index < parts.length - 1 ? "\r" : ""}`
  );
}

/** Returns a uvicorn log line: the level and a colon padded to 9 columns, a space, then the message. */
export function uvicornLine(
  prefix: string,
  level: "INFO" | "WARNING" | "ERROR",
  message: string,
): string {
  return `${prefix}${`${level}:`.padEnd(9)} ${message}`;
}

const HTTP_REASON_PHRASES: Readonly<Record<number, string>> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  500: "Internal Server Error",
};

/** Returns a uvicorn access line such as `INFO:     127.0.0.1:40112 - "GET /health HTTP/1.1" 200 OK`. */
export function accessLine(
  prefix: string,
  client: string,
  method: string,
  path: string,
  status: number,
): string {
  const phrase = HTTP_REASON_PHRASES[status] ?? "";
  return uvicornLine(
    prefix,
    "INFO",
    `${client} - "${method} ${path} HTTP/1.1" ${status} ${phrase}`.trimEnd(),
  );
}

/** Figures of one periodic stats line. */
export interface StatsFigures {
  promptTokensPerSecond: number;
  generationTokensPerSecond: number;
  running: number;
  waiting: number;
  /** Preemptions during the interval; the field is printed only when non-zero. */
  preemptions: number;
  /** KV-cache usage as a fraction (0-1); printed as a percentage. */
  kvCacheUsage: number;
  /** Prefix-cache hit rate as a fraction (0-1); printed as a percentage. */
  prefixCacheHitRate: number;
}

/** Returns the message of vLLM V1's periodic `loggers.py` stats record for engine 0. */
export function statsMessage(figures: StatsFigures): string {
  const parts = [
    `Avg prompt throughput: ${
      formatOneDecimal(figures.promptTokensPerSecond)
    } tokens/s`,
    `Avg generation throughput: ${
      formatOneDecimal(figures.generationTokensPerSecond)
    } tokens/s`,
    `Running: ${figures.running} reqs`,
    `Waiting: ${figures.waiting} reqs`,
  ];
  if (figures.preemptions > 0) {
    parts.push(`Preemptions: ${figures.preemptions}`);
  }
  parts.push(
    `GPU KV cache usage: ${formatOneDecimal(figures.kvCacheUsage * 100)}%`,
  );
  parts.push(
    `Prefix cache hit rate: ${
      formatOneDecimal(figures.prefixCacheHitRate * 100)
    }%`,
  );
  return `Engine 000: ${parts.join(", ")}`;
}

/**
 * Formats like Python's `f"{x:.1f}"`. Both round the exact binary value.
 * They differ on exact ties, which at one decimal a double has only for
 * fractions .25 and .75: Python rounds them to the even digit (0.25 gives
 * 0.2), whereas `toFixed` rounds them up.
 */
export function formatOneDecimal(value: number): string {
  const quarters = value * 4;
  const isExactTie = Number.isInteger(quarters) && quarters % 2 !== 0;
  if (isExactTie) {
    const lower = Math.floor(value * 10);
    const even = lower % 2 === 0 ? lower : lower + 1;
    return (even / 10).toFixed(1);
  }
  return value.toFixed(1);
}

/** Settings the startup sequence mentions. */
export interface StartupFacts {
  modelName: string;
  vllmVersion: string;
  /** Port the API server listens on inside the container. */
  containerPort: number;
  maxModelLen: number;
  maxNumBatchedTokens: number;
  kvCacheBlocks: number;
  blockSize: number;
}

/** Returns the lines of a short vLLM V1 start: config, weight loading, KV-cache sizing, routes, uvicorn start. */
export function startupLines(
  names: ProcessNames,
  facts: StartupFacts,
  timeMs: number,
): LogLine[] {
  const api = processPrefix(names, "APIServer");
  const engine = processPrefix(names, "EngineCore_DP0");
  const lines: LogLine[] = [];
  const record = (
    prefix: string,
    level: VllmLevel,
    source: string,
    message: string,
  ): void => {
    for (const text of vllmRecord(prefix, level, timeMs, source, message)) {
      lines.push({ stream: "stdout", text });
    }
  };
  const model = facts.modelName;
  const kvTokens = facts.kvCacheBlocks * facts.blockSize;
  // 128 KiB of KV per token: 32 layers x 8 KV heads x 128 dims x 2 (K and V) x 2 bytes.
  const kvGib = (kvTokens * 128 * 1024) / 2 ** 30;
  const concurrency = kvTokens / facts.maxModelLen;

  record(
    api,
    "INFO",
    "api_server.py:1351",
    `vLLM API server version ${facts.vllmVersion}`,
  );
  record(
    api,
    "INFO",
    "utils.py:253",
    `non-default args: {'model_tag': '${model}', 'host': '0.0.0.0', 'port': ${facts.containerPort}, 'model': '${model}', 'max_model_len': ${facts.maxModelLen}, 'enable_prefix_caching': True}`,
  );
  record(
    api,
    "INFO",
    "model.py:541",
    "Resolved architecture: LlamaForCausalLM",
  );
  record(
    api,
    "INFO",
    "model.py:1561",
    `Using max model len ${facts.maxModelLen}`,
  );
  record(
    api,
    "INFO",
    "scheduler.py:226",
    `Chunked prefill is enabled with max_num_batched_tokens=${facts.maxNumBatchedTokens}.`,
  );
  record(
    engine,
    "INFO",
    "core.py:93",
    `Initializing a V1 LLM engine (v${facts.vllmVersion}) with config: model='${model}', tokenizer='${model}', dtype=torch.bfloat16, max_seq_len=${facts.maxModelLen}, tensor_parallel_size=1, pipeline_parallel_size=1, data_parallel_size=1, quantization=None, kv_cache_dtype=auto, device_config=cuda, seed=0, served_model_name=${model}, enable_prefix_caching=True, enable_chunked_prefill=True`,
  );
  record(
    engine,
    "INFO",
    "parallel_state.py:1411",
    "world_size=1 rank=0 local_rank=0 distributed_init_method=tcp://127.0.0.1:46231 backend=nccl",
  );
  record(
    engine,
    "INFO",
    "gpu_model_runner.py:3562",
    `Starting to load model ${model}...`,
  );
  record(
    engine,
    "INFO",
    "cuda.py:351",
    "Using FLASH_ATTN attention backend out of potential backends: ['FLASH_ATTN', 'FLASHINFER', 'TRITON_ATTN']",
  );
  // The weight-loading bar ends every refresh with \n, so each state is its
  // own line starting with \r. The last state repeats, then comes an empty
  // line.
  const shardStates = [
    "  0% Completed | 0/4 [00:00<?, ?it/s]",
    " 25% Completed | 1/4 [00:02<00:08,  2.81s/it]",
    " 50% Completed | 2/4 [00:05<00:05,  2.77s/it]",
    " 75% Completed | 3/4 [00:08<00:02,  2.74s/it]",
    "100% Completed | 4/4 [00:10<00:00,  2.70s/it]",
    "100% Completed | 4/4 [00:10<00:00,  2.71s/it]",
  ];
  for (const state of shardStates) {
    lines.push({
      stream: "stderr",
      text: `${engine}\rLoading safetensors checkpoint shards: ${state}`,
    });
  }
  lines.push({ stream: "stderr", text: engine });
  record(
    engine,
    "INFO",
    "default_loader.py:308",
    "Loading weights took 10.84 seconds",
  );
  record(
    engine,
    "INFO",
    "gpu_model_runner.py:3661",
    "Model loading took 14.99 GiB memory and 12.517304 seconds",
  );
  record(
    engine,
    "INFO",
    "gpu_worker.py:358",
    `Available KV cache memory: ${kvGib.toFixed(2)} GiB`,
  );
  record(
    engine,
    "INFO",
    "kv_cache_utils.py:1305",
    `GPU KV cache size: ${kvTokens.toLocaleString("en-US")} tokens`,
  );
  record(
    engine,
    "INFO",
    "kv_cache_utils.py:1310",
    `Maximum concurrency for ${
      facts.maxModelLen.toLocaleString("en-US")
    } tokens per request: ${concurrency.toFixed(2)}x`,
  );
  // The CUDA-graph bar redraws in place: one physical line holding every
  // state, separated by \r.
  const graphStates = [0, 9, 18, 27, 35].map((done) => {
    const percent = String(Math.round((done / 35) * 100)).padStart(3);
    const filled = Math.round((done / 35) * 10);
    const bar = "\u2588".repeat(filled) + " ".repeat(10 - filled);
    return `\rCapturing CUDA graphs (decode, FULL): ${percent}%|${bar}| ${done}/35 [00:01<00:00, 23.10it/s]`;
  });
  lines.push({ stream: "stderr", text: `${engine}${graphStates.join("")}` });
  record(
    engine,
    "INFO",
    "gpu_model_runner.py:4587",
    "Graph capturing finished in 4 secs, took 0.58 GiB",
  );
  record(
    engine,
    "INFO",
    "core.py:273",
    "init engine (profile, create kv cache, warmup model) took 37.42 seconds",
  );
  record(api, "INFO", "api_server.py:1084", "Supported tasks: ['generate']");
  record(
    api,
    "INFO",
    "api_server.py:946",
    `Starting vLLM API server 0 on http://0.0.0.0:${facts.containerPort}`,
  );
  record(api, "INFO", "launcher.py:38", "Available routes are:");
  const routes: [string, string][] = [
    ["/health", "GET"],
    ["/metrics", "GET"],
    ["/v1/models", "GET"],
    ["/v1/chat/completions", "POST"],
    ["/v1/completions", "POST"],
  ];
  for (const [route, methods] of routes) {
    record(
      api,
      "INFO",
      "launcher.py:46",
      `Route: ${route}, Methods: ${methods}`,
    );
  }
  for (
    const message of [
      `Started server process [${names.apiServerPid}]`,
      "Waiting for application startup.",
      "Application startup complete.",
    ]
  ) {
    lines.push({ stream: "stderr", text: uvicornLine(api, "INFO", message) });
  }
  return lines;
}

/** Returns the lines of a graceful stop (SIGTERM): vLLM's message, a torch C++ warning, uvicorn's shutdown lines. */
export function shutdownLines(names: ProcessNames, timeMs: number): LogLine[] {
  const api = processPrefix(names, "APIServer");
  const lines: LogLine[] = vllmRecord(
    api,
    "INFO",
    timeMs,
    "launcher.py:110",
    "Shutting down FastAPI HTTP server.",
  ).map((text) => ({ stream: "stdout", text }));
  // torch's C++ logger writes around Python, so the line has no process prefix.
  const iso = new Date(timeMs).toISOString();
  const torchTime = `${iso.slice(5, 7)}${iso.slice(8, 10)} ${
    iso.slice(11, 23)
  }000000`;
  lines.push({
    stream: "stderr",
    text:
      `[rank0]:[W${torchTime} ProcessGroupNCCL.cpp:1553] Warning: WARNING: destroy_process_group() was not called before program exit, which can leak resources.`,
  });
  for (
    const message of [
      "Shutting down",
      "Waiting for application shutdown.",
      "Application shutdown complete.",
    ]
  ) {
    lines.push({ stream: "stderr", text: uvicornLine(api, "INFO", message) });
  }
  return lines;
}

/** Returns a runtime WARNING record of the API server about ignored request fields. */
export function requestWarningLines(
  names: ProcessNames,
  timeMs: number,
  field: string,
): LogLine[] {
  return vllmRecord(
    processPrefix(names, "APIServer"),
    "WARNING",
    timeMs,
    "protocol.py:91",
    `The following fields were present in the request but ignored: {'${field}'}`,
  ).map((text) => ({ stream: "stdout", text }));
}

/**
 * Returns an ERROR record whose message is a Python traceback: the header
 * repeats on every line and the lines are joined with `\r\n`.
 */
export function streamErrorLines(
  names: ProcessNames,
  timeMs: number,
): LogLine[] {
  const message = [
    "Error in chat completion stream generator.",
    "Traceback (most recent call last):",
    '  File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/openai/chat_completion/serving.py", line 1187, in chat_completion_stream_generator',
    "    delta_message = tool_parser.extract_tool_calls_streaming(",
    "                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    '  File "/usr/lib/python3.12/json/decoder.py", line 353, in raw_decode',
    "    obj, end = self.scan_once(s, idx)",
    "               ^^^^^^^^^^^^^^^^^^^^^^",
    "json.decoder.JSONDecodeError: Unterminated string starting at: line 1 column 12 (char 11)",
  ].join("\n");
  return vllmRecord(
    processPrefix(names, "APIServer"),
    "ERROR",
    timeMs,
    "serving.py:1325",
    message,
  ).map((text) => ({ stream: "stdout", text }));
}

/**
 * Returns uvicorn's `Exception in ASGI application` line and the raw
 * traceback after it, all on stderr. Each line carries only the process
 * prefix. uvicorn responds with 500 itself, so no access line follows.
 */
export function asgiErrorLines(names: ProcessNames): LogLine[] {
  const api = processPrefix(names, "APIServer");
  const traceback = [
    "Traceback (most recent call last):",
    '  File "/usr/local/lib/python3.12/dist-packages/uvicorn/protocols/http/httptools_impl.py", line 416, in run_asgi',
    "    result = await app(  # type: ignore[func-returns-value]",
    "             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    '  File "/usr/local/lib/python3.12/dist-packages/starlette/middleware/errors.py", line 186, in __call__',
    "    raise exc",
    "anyio.ClosedResourceError",
  ];
  return [
    {
      stream: "stderr",
      text: uvicornLine(api, "ERROR", "Exception in ASGI application"),
    },
    ...traceback.map((line): LogLine => ({
      stream: "stderr",
      text: `${api}${line}`,
    })),
  ];
}
