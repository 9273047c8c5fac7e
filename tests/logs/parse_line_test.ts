import assert from "node:assert/strict";
import {
  type LineKind,
  parseLine,
  processPrefixLength,
} from "../../src/logs/parse_line.ts";
import type { FieldValue, StreamName } from "../../src/logs/types.ts";

interface Row {
  name: string;
  stream?: StreamName;
  input: string;
  kind: LineKind;
  level: string;
  levelFound: boolean;
  message: string;
  fields: Record<string, FieldValue>;
  recordHeader?: string;
}

const API = { process: "APIServer", pid: 1 };
const ENGINE = { process: "EngineCore_DP0", pid: 267 };

const rows: Row[] = [
  {
    name: "vLLM record with brackets",
    input:
      "(APIServer pid=1) INFO 11-17 09:14:03 [api_server.py:1351] vLLM API server version 0.15.1",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "vLLM API server version 0.15.1",
    fields: {
      ...API,
      source_file: "api_server.py",
      source_line: 1351,
      vllm_time: "11-17 09:14:03",
    },
    recordHeader: "INFO 11-17 09:14:03 [api_server.py:1351]",
  },
  {
    name: "vLLM record without brackets (pre-2025)",
    input:
      "WARNING 03-08 14:02:17 multiproc_gpu_executor.py:53] Reducing Torch parallelism",
    kind: "vllm_record",
    level: "WARNING",
    levelFound: true,
    message: "Reducing Torch parallelism",
    fields: {
      source_file: "multiproc_gpu_executor.py",
      source_line: 53,
      vllm_time: "03-08 14:02:17",
    },
    recordHeader: "WARNING 03-08 14:02:17 multiproc_gpu_executor.py:53]",
  },
  {
    name: "vLLM DEBUG record with short path",
    input: "DEBUG 11-17 09:14:03 [v1/worker/gpu_model_runner.py:77] step done",
    kind: "vllm_record",
    level: "DEBUG",
    levelFound: true,
    message: "step done",
    fields: {
      source_file: "v1/worker/gpu_model_runner.py",
      source_line: 77,
      vllm_time: "11-17 09:14:03",
    },
    recordHeader: "DEBUG 11-17 09:14:03 [v1/worker/gpu_model_runner.py:77]",
  },
  {
    name: "vLLM record keeps indentation after header",
    input:
      '(APIServer pid=1) ERROR 11-17 09:16:07 [serving.py:1325]   File "x.py", line 3, in f',
    kind: "vllm_record",
    level: "ERROR",
    levelFound: true,
    message: '  File "x.py", line 3, in f',
    fields: {
      ...API,
      source_file: "serving.py",
      source_line: 1325,
      vllm_time: "11-17 09:16:07",
    },
    recordHeader: "ERROR 11-17 09:16:07 [serving.py:1325]",
  },
  {
    name: "worker prefix with rank",
    input:
      "(VllmWorker rank=6 pid=4242) CRITICAL 11-17 09:14:03 [worker.py:9] gone",
    kind: "vllm_record",
    level: "CRITICAL",
    levelFound: true,
    message: "gone",
    fields: {
      process: "VllmWorker",
      pid: 4242,
      rank: 6,
      source_file: "worker.py",
      source_line: 9,
      vllm_time: "11-17 09:14:03",
    },
    recordHeader: "CRITICAL 11-17 09:14:03 [worker.py:9]",
  },
  {
    name: "V1 stats line",
    input:
      "(APIServer pid=1) INFO 11-17 09:16:03 [loggers.py:259] Engine 000: Avg prompt throughput: 8795.0 tokens/s, Avg generation throughput: 611.9 tokens/s, Running: 31 reqs, Waiting: 17 reqs, Preemptions: 2, GPU KV cache usage: 97.6%, Prefix cache hit rate: 44.9%",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message:
      "Engine 000: Avg prompt throughput: 8795.0 tokens/s, Avg generation throughput: 611.9 tokens/s, Running: 31 reqs, Waiting: 17 reqs, Preemptions: 2, GPU KV cache usage: 97.6%, Prefix cache hit rate: 44.9%",
    fields: {
      ...API,
      source_file: "loggers.py",
      source_line: 259,
      vllm_time: "11-17 09:16:03",
      engine: "000",
      prompt_throughput_tokens_per_s: 8795,
      generation_throughput_tokens_per_s: 611.9,
      running_requests: 31,
      waiting_requests: 17,
      preemptions: 2,
      gpu_kv_cache_usage_pct: 97.6,
      prefix_cache_hit_rate_pct: 44.9,
    },
    recordHeader: "INFO 11-17 09:16:03 [loggers.py:259]",
  },
  {
    name: "V1 stats line with optional items",
    input:
      "INFO 11-17 09:16:03 [loggers.py:259] Engine 001: Avg prompt throughput: 1.5 tokens/s, Avg generation throughput: 2.0 tokens/s, Running: 3 reqs, Waiting: 4 reqs, Deferred: 1 reqs, GPU KV cache usage: 9.75010481363281e-06%, Prefix cache hit rate: 10.0%, External prefix cache hit rate: 20.5%, MM cache hit rate: 30.0%, Corrupted: 2 reqs",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message:
      "Engine 001: Avg prompt throughput: 1.5 tokens/s, Avg generation throughput: 2.0 tokens/s, Running: 3 reqs, Waiting: 4 reqs, Deferred: 1 reqs, GPU KV cache usage: 9.75010481363281e-06%, Prefix cache hit rate: 10.0%, External prefix cache hit rate: 20.5%, MM cache hit rate: 30.0%, Corrupted: 2 reqs",
    fields: {
      source_file: "loggers.py",
      source_line: 259,
      vllm_time: "11-17 09:16:03",
      engine: "001",
      prompt_throughput_tokens_per_s: 1.5,
      generation_throughput_tokens_per_s: 2,
      running_requests: 3,
      waiting_requests: 4,
      deferred_requests: 1,
      gpu_kv_cache_usage_pct: 9.75010481363281e-06,
      prefix_cache_hit_rate_pct: 10,
      external_prefix_cache_hit_rate_pct: 20.5,
      mm_cache_hit_rate_pct: 30,
      stats_corrupted_requests: 2,
    },
    recordHeader: "INFO 11-17 09:16:03 [loggers.py:259]",
  },
  {
    name: "aggregated stats line",
    input:
      "INFO 11-17 09:16:03 [loggers.py:259] 2 Engines Aggregated: Avg prompt throughput: 10.0 tokens/s, Avg generation throughput: 20.0 tokens/s, Running: 5 reqs, Waiting: 0 reqs, GPU KV cache usage: 12.5%, Prefix cache hit rate: 0.0%",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message:
      "2 Engines Aggregated: Avg prompt throughput: 10.0 tokens/s, Avg generation throughput: 20.0 tokens/s, Running: 5 reqs, Waiting: 0 reqs, GPU KV cache usage: 12.5%, Prefix cache hit rate: 0.0%",
    fields: {
      source_file: "loggers.py",
      source_line: 259,
      vllm_time: "11-17 09:16:03",
      engines_aggregated: 2,
      prompt_throughput_tokens_per_s: 10,
      generation_throughput_tokens_per_s: 20,
      running_requests: 5,
      waiting_requests: 0,
      gpu_kv_cache_usage_pct: 12.5,
      prefix_cache_hit_rate_pct: 0,
    },
    recordHeader: "INFO 11-17 09:16:03 [loggers.py:259]",
  },
  {
    name: "V0 stats line with prefix hit rates",
    input:
      "INFO 03-08 14:05:14 metrics.py:349] Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 1204.8 tokens/s, Running: 62 reqs, Swapped: 1 reqs, Pending: 9 reqs, GPU KV cache usage: 99.4%, CPU KV cache usage: 0.5%, Prefix cache hit rate: GPU: 12.5%, CPU: 0.0%.",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message:
      "Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 1204.8 tokens/s, Running: 62 reqs, Swapped: 1 reqs, Pending: 9 reqs, GPU KV cache usage: 99.4%, CPU KV cache usage: 0.5%, Prefix cache hit rate: GPU: 12.5%, CPU: 0.0%.",
    fields: {
      source_file: "metrics.py",
      source_line: 349,
      vllm_time: "03-08 14:05:14",
      prompt_throughput_tokens_per_s: 0,
      generation_throughput_tokens_per_s: 1204.8,
      running_requests: 62,
      swapped_requests: 1,
      waiting_requests: 9,
      gpu_kv_cache_usage_pct: 99.4,
      cpu_kv_cache_usage_pct: 0.5,
      gpu_prefix_cache_hit_rate_pct: 12.5,
      cpu_prefix_cache_hit_rate_pct: 0,
    },
    recordHeader: "INFO 03-08 14:05:14 metrics.py:349]",
  },
  {
    name: "message starting with Engine is not a stats line",
    input: "INFO 11-17 09:15:12 [core.py:1] Engine core ready: 5 reqs",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "Engine core ready: 5 reqs",
    fields: {
      source_file: "core.py",
      source_line: 1,
      vllm_time: "11-17 09:15:12",
    },
    recordHeader: "INFO 11-17 09:15:12 [core.py:1]",
  },
  {
    name: "key=value pairs",
    input:
      "(EngineCore_DP0 pid=267) INFO 11-17 09:14:21 [parallel_state.py:1411] world_size=1 rank=0 distributed_init_method=tcp://127.0.0.1:46231 backend=nccl model='org/model-7b' ratio=0.9 flag=None nested={'a': 1} --max-model-len=5 a.b=3 level=2 max_num_batched_tokens=8192.",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message:
      "world_size=1 rank=0 distributed_init_method=tcp://127.0.0.1:46231 backend=nccl model='org/model-7b' ratio=0.9 flag=None nested={'a': 1} --max-model-len=5 a.b=3 level=2 max_num_batched_tokens=8192.",
    fields: {
      ...ENGINE,
      source_file: "parallel_state.py",
      source_line: 1411,
      vllm_time: "11-17 09:14:21",
      kv_world_size: 1,
      kv_rank: 0,
      kv_distributed_init_method: "tcp://127.0.0.1:46231",
      kv_backend: "nccl",
      kv_model: "org/model-7b",
      kv_ratio: 0.9,
      kv_flag: "None",
      kv_level: 2,
      kv_max_num_batched_tokens: 8192,
    },
    recordHeader: "INFO 11-17 09:14:21 [parallel_state.py:1411]",
  },
  {
    name: "first occurrence of a key wins",
    input: "x=1 X=2 x=3",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "x=1 X=2 x=3",
    fields: { kv_x: 1 },
  },
  {
    name: "V0 preemption warning",
    input:
      "WARNING 03-08 14:05:11 scheduler.py:1481] Sequence group chat-3f is preempted by PreemptionMode.RECOMPUTE mode because there is not enough KV cache space. total_num_cumulative_preemption=1",
    kind: "vllm_record",
    level: "WARNING",
    levelFound: true,
    message:
      "Sequence group chat-3f is preempted by PreemptionMode.RECOMPUTE mode because there is not enough KV cache space. total_num_cumulative_preemption=1",
    fields: {
      source_file: "scheduler.py",
      source_line: 1481,
      vllm_time: "03-08 14:05:11",
      kv_total_num_cumulative_preemption: 1,
    },
    recordHeader: "WARNING 03-08 14:05:11 scheduler.py:1481]",
  },
  {
    name: "available KV cache memory",
    input:
      "INFO 11-17 09:15:07 [gpu_worker.py:358] Available KV cache memory: 57.00 GiB",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "Available KV cache memory: 57.00 GiB",
    fields: {
      source_file: "gpu_worker.py",
      source_line: 358,
      vllm_time: "11-17 09:15:07",
      available_kv_cache_memory_gib: 57,
    },
    recordHeader: "INFO 11-17 09:15:07 [gpu_worker.py:358]",
  },
  {
    name: "KV cache size with separators",
    input:
      "INFO 11-17 09:15:07 [kv_cache_utils.py:1305] GPU KV cache size: 933,888 tokens",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "GPU KV cache size: 933,888 tokens",
    fields: {
      source_file: "kv_cache_utils.py",
      source_line: 1305,
      vllm_time: "11-17 09:15:07",
      gpu_kv_cache_size_tokens: 933888,
    },
    recordHeader: "INFO 11-17 09:15:07 [kv_cache_utils.py:1305]",
  },
  {
    name: "maximum concurrency",
    input:
      "INFO 11-17 09:15:07 [kv_cache_utils.py:1310] Maximum concurrency for 32,768 tokens per request: 28.50x",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "Maximum concurrency for 32,768 tokens per request: 28.50x",
    fields: {
      source_file: "kv_cache_utils.py",
      source_line: 1310,
      vllm_time: "11-17 09:15:07",
      max_concurrency: 28.5,
      max_concurrency_tokens_per_request: 32768,
    },
    recordHeader: "INFO 11-17 09:15:07 [kv_cache_utils.py:1310]",
  },
  {
    name: "V0 block counts",
    input:
      "INFO 03-08 14:02:26 distributed_gpu_executor.py:57] # GPU blocks: 14732, # CPU blocks: 1024",
    kind: "vllm_record",
    level: "INFO",
    levelFound: true,
    message: "# GPU blocks: 14732, # CPU blocks: 1024",
    fields: {
      source_file: "distributed_gpu_executor.py",
      source_line: 57,
      vllm_time: "03-08 14:02:26",
      gpu_blocks: 14732,
      cpu_blocks: 1024,
    },
    recordHeader: "INFO 03-08 14:02:26 distributed_gpu_executor.py:57]",
  },
  {
    name: "percentage after at",
    input: "WARNING 11-17 09:16:03 [monitor.py:12] KV cache usage at 87%",
    kind: "vllm_record",
    level: "WARNING",
    levelFound: true,
    message: "KV cache usage at 87%",
    fields: {
      source_file: "monitor.py",
      source_line: 12,
      vllm_time: "11-17 09:16:03",
      value_pct: 87,
    },
    recordHeader: "WARNING 11-17 09:16:03 [monitor.py:12]",
  },
  {
    name: "percentage after usage colon",
    input: "GPU memory usage: 91.5% of 80 GiB",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "GPU memory usage: 91.5% of 80 GiB",
    fields: { value_pct: 91.5 },
  },
  {
    name: "uvicorn lifecycle line",
    stream: "stderr",
    input: "(APIServer pid=1) INFO:     Started server process [1]",
    kind: "uvicorn",
    level: "INFO",
    levelFound: true,
    message: "Started server process [1]",
    fields: { ...API },
  },
  {
    name: "uvicorn error line",
    stream: "stderr",
    input: "(APIServer pid=1) ERROR:    Exception in ASGI application",
    kind: "uvicorn",
    level: "ERROR",
    levelFound: true,
    message: "Exception in ASGI application",
    fields: { ...API },
  },
  {
    name: "uvicorn TRACE maps to DEBUG",
    input: "TRACE:    ASGI [1] Started scope",
    kind: "uvicorn",
    level: "DEBUG",
    levelFound: true,
    message: "ASGI [1] Started scope",
    fields: {},
  },
  {
    name: "uvicorn access line",
    input:
      '(APIServer pid=1) INFO:     127.0.0.1:40138 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
    kind: "uvicorn",
    level: "INFO",
    levelFound: true,
    message: '127.0.0.1:40138 - "POST /v1/chat/completions HTTP/1.1" 200 OK',
    fields: {
      ...API,
      client: "127.0.0.1:40138",
      method: "POST",
      path: "/v1/chat/completions",
      http_version: "1.1",
      status: 200,
    },
  },
  {
    name: "access line with query string and 400",
    input:
      'INFO:     127.0.0.1:50498 - "GET /v1/models?limit=5&usage=at%2090% HTTP/1.1" 400 Bad Request',
    kind: "uvicorn",
    level: "INFO",
    levelFound: true,
    message:
      '127.0.0.1:50498 - "GET /v1/models?limit=5&usage=at%2090% HTTP/1.1" 400 Bad Request',
    fields: {
      client: "127.0.0.1:50498",
      method: "GET",
      path: "/v1/models?limit=5&usage=at%2090%",
      http_version: "1.1",
      status: 400,
    },
  },
  {
    name: "torch C++ warning",
    stream: "stderr",
    input:
      "[rank0]:[W1117 09:18:59.713459820 ProcessGroupNCCL.cpp:1553] Warning: WARNING: destroy_process_group() was not called before program exit",
    kind: "torch",
    level: "WARNING",
    levelFound: true,
    message:
      "Warning: WARNING: destroy_process_group() was not called before program exit",
    fields: {
      rank: 0,
      source_time: "1117 09:18:59.713459820",
      source_file: "ProcessGroupNCCL.cpp",
      source_line: 1553,
    },
  },
  {
    name: "torch C++ fatal without rank",
    stream: "stderr",
    input: "[F1117 09:18:59.713459820 TCPStore.cpp:42] store gone",
    kind: "torch",
    level: "CRITICAL",
    levelFound: true,
    message: "store gone",
    fields: {
      source_time: "1117 09:18:59.713459820",
      source_file: "TCPStore.cpp",
      source_line: 42,
    },
  },
  {
    name: "torch C++ info with thread id",
    stream: "stderr",
    input: "[I1117 09:18:59.713459 12345 socket.cpp:7] connected",
    kind: "torch",
    level: "INFO",
    levelFound: true,
    message: "connected",
    fields: {
      source_time: "1117 09:18:59.713459",
      source_file: "socket.cpp",
      source_line: 7,
    },
  },
  {
    name: "Python warning",
    stream: "stderr",
    input:
      "/usr/lib/python3.12/multiprocessing/resource_tracker.py:279: UserWarning: resource_tracker: There appear to be 1 leaked shared_memory objects to clean up at shutdown",
    kind: "python_warning",
    level: "WARNING",
    levelFound: true,
    message:
      "resource_tracker: There appear to be 1 leaked shared_memory objects to clean up at shutdown",
    fields: {
      source_file: "/usr/lib/python3.12/multiprocessing/resource_tracker.py",
      source_line: 279,
      warning_category: "UserWarning",
    },
  },
  {
    name: "LMCache logger",
    input:
      "[2026-06-04 15:12:14,668] LMCache INFO: Creating LMCacheEngine with chunk_size=256",
    kind: "third_party",
    level: "INFO",
    levelFound: true,
    message: "Creating LMCacheEngine with chunk_size=256",
    fields: {
      source_time: "2026-06-04 15:12:14,668",
      logger: "LMCache",
      kv_chunk_size: 256,
    },
  },
  {
    name: "flashinfer logger",
    input:
      "(EngineCore_DP0 pid=267) 2026-02-02 18:25:03,837 - INFO - autotuner.py:256 - flashinfer.jit: Autotuning done",
    kind: "third_party",
    level: "INFO",
    levelFound: true,
    message: "flashinfer.jit: Autotuning done",
    fields: {
      ...ENGINE,
      source_time: "2026-02-02 18:25:03,837",
      source_file: "autotuner.py",
      source_line: 256,
    },
  },
  {
    name: "dated logger with name and WARN",
    input: "2026-02-02 18:25:03,837 - transformers - WARN - slow tokenizer",
    kind: "third_party",
    level: "WARNING",
    levelFound: true,
    message: "slow tokenizer",
    fields: { source_time: "2026-02-02 18:25:03,837", logger: "transformers" },
  },
  {
    name: "Python default logging format",
    stream: "stderr",
    input: "ERROR:root:something failed",
    kind: "third_party",
    level: "ERROR",
    levelFound: true,
    message: "something failed",
    fields: { logger: "root" },
  },
  {
    name: "weight loading progress",
    stream: "stderr",
    input:
      "(EngineCore_DP0 pid=267) Loading safetensors checkpoint shards:  50% Completed | 2/4 [00:05<00:05,  2.74s/it]",
    kind: "progress",
    level: "INFO",
    levelFound: false,
    message:
      "Loading safetensors checkpoint shards:  50% Completed | 2/4 [00:05<00:05,  2.74s/it]",
    fields: {
      ...ENGINE,
      progress_desc: "Loading safetensors checkpoint shards",
      progress_pct: 50,
      progress_current: 2,
      progress_total: 4,
    },
  },
  {
    name: "tqdm bar",
    stream: "stderr",
    input:
      "Capturing CUDA graphs (decode, FULL): 100%|██████████| 35/35 [00:01<00:00, 23.03it/s]",
    kind: "progress",
    level: "INFO",
    levelFound: false,
    message:
      "Capturing CUDA graphs (decode, FULL): 100%|██████████| 35/35 [00:01<00:00, 23.03it/s]",
    fields: {
      progress_desc: "Capturing CUDA graphs (decode, FULL)",
      progress_pct: 100,
      progress_current: 35,
      progress_total: 35,
    },
  },
  {
    name: "tqdm bar without description",
    stream: "stderr",
    input: " 40%|████      | 4/10 [00:01<00:02,  2.00it/s]",
    kind: "progress",
    level: "INFO",
    levelFound: false,
    message: " 40%|████      | 4/10 [00:01<00:02,  2.00it/s]",
    fields: { progress_pct: 40, progress_current: 4, progress_total: 10 },
  },
  {
    name: "traceback header",
    stream: "stderr",
    input: "(APIServer pid=1) Traceback (most recent call last):",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "Traceback (most recent call last):",
    fields: { ...API },
  },
  {
    name: "exception line",
    stream: "stderr",
    input: "(APIServer pid=1) anyio.ClosedResourceError",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "anyio.ClosedResourceError",
    fields: { ...API },
  },
  {
    name: "indented source line",
    stream: "stderr",
    input: "  warnings.warn('resource_tracker: There appear to be %d '",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "  warnings.warn('resource_tracker: There appear to be %d '",
    fields: {},
  },
  {
    name: "prefix only",
    stream: "stderr",
    input: "(EngineCore_DP0 pid=267) ",
    kind: "empty",
    level: "INFO",
    levelFound: false,
    message: "",
    fields: { ...ENGINE },
  },
  {
    name: "whitespace only",
    input: "   \t",
    kind: "empty",
    level: "INFO",
    levelFound: false,
    message: "",
    fields: {},
  },
  {
    name: "unrecognised stderr text",
    stream: "stderr",
    input: "Process EngineCore_DP0:",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "Process EngineCore_DP0:",
    fields: {},
  },
  {
    name: "parenthesis that is not a prefix",
    input: "(not a prefix) INFO 11-17 09:14:03 [x.py:1] y",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "(not a prefix) INFO 11-17 09:14:03 [x.py:1] y",
    fields: {},
  },
  {
    name: "level word without header",
    input: "INFO is a word too",
    kind: "text",
    level: "INFO",
    levelFound: false,
    message: "INFO is a word too",
    fields: {},
  },
];

Deno.test("parseLine table", async (t) => {
  for (const row of rows) {
    await t.step(row.name, () => {
      const parsed = parseLine(row.input, row.stream ?? "stdout");
      assert.equal(parsed.kind, row.kind);
      assert.equal(parsed.level, row.level);
      assert.equal(parsed.levelFound, row.levelFound);
      assert.equal(parsed.message, row.message);
      assert.deepEqual(parsed.fields, row.fields);
      assert.equal(parsed.recordHeader, row.recordHeader ?? "");
    });
  }
});

Deno.test("parseLine never emits reserved field names", () => {
  const reserved = ["timestamp", "level", "container", "stream", "message"];
  const input =
    "INFO 11-17 09:14:03 [x.py:1] timestamp=1 level=2 container=c stream=s message=m";
  const parsed = parseLine(input, "stdout");
  for (const name of reserved) {
    assert.equal(name in parsed.fields, false, name);
  }
  assert.equal(parsed.fields.kv_level, 2);
});

Deno.test("parseLine caps key=value pairs per line", () => {
  const pairs = Array.from({ length: 100 }, (_, i) => `k${i}=${i}`).join(" ");
  const parsed = parseLine(pairs, "stdout");
  assert.equal(Object.keys(parsed.fields).length, 64);
});

Deno.test("processPrefixLength", async (t) => {
  const cases: [string, number][] = [
    ["(APIServer pid=1) x", 18],
    ["(ApiServer_2 pid=33) ", 21],
    ["(Worker_DP0_TP1_EP1 pid=9)", 26],
    ["(VllmWorker rank=6 pid=12) y", 27],
    ["APIServer pid=1) x", 0],
    ["(APIServer) x", 0],
    ["", 0],
  ];
  for (const [input, expected] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.equal(processPrefixLength(input), expected);
    });
  }
});
