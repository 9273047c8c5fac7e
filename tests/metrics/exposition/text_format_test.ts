import assert from "node:assert/strict";

import { parseTextFormat } from "../../../src/metrics/exposition/text_format.ts";
import { type Case, checkCase, lines, sample } from "./_corpus.ts";

const LONG_VALUE = "x".repeat(200);

const CASES: Case[] = [
  // Metadata and family types.
  {
    name: "gauge with HELP and TYPE",
    body: lines(
      "# HELP vllm:num_requests_running Requests in the running batch.",
      "# TYPE vllm:num_requests_running gauge",
      'vllm:num_requests_running{engine="0",model_name="org/model-7b"} 43.0',
    ),
    samples: [
      sample(
        "vllm:num_requests_running",
        { engine: "0", model_name: "org/model-7b" },
        43,
        "vllm:num_requests_running",
        "gauge",
      ),
    ],
    families: [["vllm:num_requests_running", {
      type: "gauge",
      help: "Requests in the running batch.",
    }]],
  },
  {
    name: "HELP unescapes backslash and newline only",
    body: lines(
      String
        .raw`# HELP foo Line one\nline two, a backslash \\ and a quote \" kept`,
      "# TYPE foo gauge",
      "foo 1",
    ),
    families: [["foo", {
      type: "gauge",
      help: 'Line one\nline two, a backslash \\ and a quote \\" kept',
    }]],
  },
  {
    name: "HELP without text",
    body: lines("# HELP foo", "foo 1"),
    families: [["foo", { type: "untyped", help: "" }]],
  },
  {
    name: "counter declared with _total",
    body: lines(
      "# HELP vllm:generation_tokens_total Output tokens.",
      "# TYPE vllm:generation_tokens_total counter",
      'vllm:generation_tokens_total{engine="0"} 432806.0',
    ),
    samples: [
      sample(
        "vllm:generation_tokens_total",
        { engine: "0" },
        432806,
        "vllm:generation_tokens",
        "counter",
      ),
    ],
    families: [["vllm:generation_tokens", {
      type: "counter",
      help: "Output tokens.",
    }]],
  },
  {
    name: "counter declared without _total",
    body: lines(
      "# TYPE vllm:prompt_tokens counter",
      "vllm:prompt_tokens_total 5.221789e+06",
    ),
    samples: [
      sample(
        "vllm:prompt_tokens_total",
        {},
        5221789,
        "vllm:prompt_tokens",
        "counter",
      ),
    ],
  },
  {
    name: "counter _total name kept when base is taken",
    body: lines(
      "# TYPE foo gauge",
      "foo 1",
      "# TYPE foo_total counter",
      "foo_total 2",
    ),
    samples: [
      sample("foo", {}, 1, "foo", "gauge"),
      sample("foo_total", {}, 2, "foo_total", "counter"),
    ],
  },
  {
    name: "_created declared as its own gauge",
    body: lines(
      "# TYPE vllm:prompt_tokens counter",
      "vllm:prompt_tokens_total 10",
      "# TYPE vllm:prompt_tokens_created gauge",
      "vllm:prompt_tokens_created 1.794902496782212e+09",
    ),
    samples: [
      sample(
        "vllm:prompt_tokens_total",
        {},
        10,
        "vllm:prompt_tokens",
        "counter",
      ),
      sample(
        "vllm:prompt_tokens_created",
        {},
        1794902496.782212,
        "vllm:prompt_tokens_created",
        "gauge",
      ),
    ],
  },
  {
    name: "_created of an undeclared stamp joins counter",
    body: lines("# TYPE foo counter", "foo_total 1", "foo_created 1.7e9"),
    samples: [
      sample("foo_total", {}, 1, "foo", "counter"),
      sample("foo_created", {}, 1.7e9, "foo", "counter"),
    ],
  },
  {
    name: "histogram keeps le as written",
    body: lines(
      "# TYPE vllm:e2e_request_latency_seconds histogram",
      'vllm:e2e_request_latency_seconds_bucket{le="0.3"} 19.0',
      'vllm:e2e_request_latency_seconds_bucket{le="1.0"} 21.0',
      'vllm:e2e_request_latency_seconds_bucket{le="+Inf"} 22.0',
      "vllm:e2e_request_latency_seconds_sum 46.9263796665",
      "vllm:e2e_request_latency_seconds_count 22.0",
    ),
    samples: [
      sample(
        "vllm:e2e_request_latency_seconds_bucket",
        { le: "0.3" },
        19,
        "vllm:e2e_request_latency_seconds",
        "histogram",
      ),
      sample(
        "vllm:e2e_request_latency_seconds_bucket",
        { le: "1.0" },
        21,
        "vllm:e2e_request_latency_seconds",
        "histogram",
      ),
      sample(
        "vllm:e2e_request_latency_seconds_bucket",
        { le: "+Inf" },
        22,
        "vllm:e2e_request_latency_seconds",
        "histogram",
      ),
      sample(
        "vllm:e2e_request_latency_seconds_sum",
        {},
        46.9263796665,
        "vllm:e2e_request_latency_seconds",
        "histogram",
      ),
      sample(
        "vllm:e2e_request_latency_seconds_count",
        {},
        22,
        "vllm:e2e_request_latency_seconds",
        "histogram",
      ),
    ],
  },
  {
    name: "histogram whose name ends in _total",
    body: lines(
      "# TYPE vllm:iteration_tokens_total histogram",
      'vllm:iteration_tokens_total_bucket{le="+Inf"} 3.0',
      "vllm:iteration_tokens_total_sum 70.0",
      "vllm:iteration_tokens_total_count 3.0",
      "# TYPE vllm:iteration_tokens_total_created gauge",
      "vllm:iteration_tokens_total_created 1.79e+09",
    ),
    samples: [
      sample(
        "vllm:iteration_tokens_total_bucket",
        { le: "+Inf" },
        3,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_sum",
        {},
        70,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_count",
        {},
        3,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_created",
        {},
        1.79e9,
        "vllm:iteration_tokens_total_created",
        "gauge",
      ),
    ],
    families: [
      ["vllm:iteration_tokens_total", { type: "histogram" }],
      ["vllm:iteration_tokens_total_created", { type: "gauge" }],
    ],
  },
  {
    name: "multiprocess histogram with _sum first",
    body: lines(
      "# TYPE h histogram",
      'h_sum{model_name="m"} 3.5',
      'h_bucket{le="1.0",model_name="m"} 1.0',
      'h_bucket{le="+Inf",model_name="m"} 2.0',
      'h_count{model_name="m"} 2.0',
    ),
    samples: [
      sample("h_sum", { model_name: "m" }, 3.5, "h", "histogram"),
      sample("h_bucket", { le: "1.0", model_name: "m" }, 1, "h", "histogram"),
      sample("h_bucket", { le: "+Inf", model_name: "m" }, 2, "h", "histogram"),
      sample("h_count", { model_name: "m" }, 2, "h", "histogram"),
    ],
  },
  {
    name: "summary with quantiles",
    body: lines(
      "# TYPE rpc_seconds summary",
      'rpc_seconds{quantile="0.5"} 0.05',
      'rpc_seconds{quantile="0.99"} 0.2',
      "rpc_seconds_sum 17.5",
      "rpc_seconds_count 300",
    ),
    samples: [
      sample(
        "rpc_seconds",
        { quantile: "0.5" },
        0.05,
        "rpc_seconds",
        "summary",
      ),
      sample(
        "rpc_seconds",
        { quantile: "0.99" },
        0.2,
        "rpc_seconds",
        "summary",
      ),
      sample("rpc_seconds_sum", {}, 17.5, "rpc_seconds", "summary"),
      sample("rpc_seconds_count", {}, 300, "rpc_seconds", "summary"),
    ],
  },
  {
    name: "sample without TYPE is untyped",
    body: lines('some_metric{a="b"} 7'),
    samples: [sample("some_metric", { a: "b" }, 7, "some_metric", "untyped")],
    families: [["some_metric", { type: "untyped" }]],
  },
  {
    name: "declared untyped family",
    body: lines("# TYPE foo untyped", "foo 1"),
    samples: [sample("foo", {}, 1, "foo", "untyped")],
  },
  {
    name: "suffix the type does not own",
    body: lines("# TYPE foo gauge", "foo 1", "foo_sum 2", "foo_total 3"),
    samples: [
      sample("foo", {}, 1, "foo", "gauge"),
      sample("foo_sum", {}, 2, "foo_sum", "untyped"),
      sample("foo_total", {}, 3, "foo_total", "untyped"),
    ],
    families: [
      ["foo", { type: "gauge" }],
      ["foo_sum", { type: "untyped" }],
      ["foo_total", { type: "untyped" }],
    ],
  },
  {
    name: "histogram name used without suffix",
    body: lines("# TYPE h histogram", "h 1"),
    samples: [sample("h", {}, 1, "h", "untyped")],
    families: [["h", { type: "histogram" }]],
  },

  // Labels and names.
  {
    name: "label value escapes",
    body: lines(
      String.raw`foo{path="C:\\dir",quote="say \"hi\"",multi="a\nb"} 1`,
    ),
    samples: [
      sample(
        "foo",
        { path: "C:\\dir", quote: 'say "hi"', multi: "a\nb" },
        1,
        "foo",
        "untyped",
      ),
    ],
  },
  {
    name: "unknown escape kept as written",
    body: lines(String.raw`foo{a="x\ty"} 1`),
    samples: [sample("foo", { a: "x\\ty" }, 1, "foo", "untyped")],
  },
  {
    name: "empty label value",
    body: lines('foo{a="",b="x"} 1'),
    samples: [sample("foo", { a: "", b: "x" }, 1, "foo", "untyped")],
  },
  {
    name: "trailing comma in label set",
    body: lines('foo{a="1",} 1'),
    samples: [sample("foo", { a: "1" }, 1, "foo", "untyped")],
  },
  {
    name: "empty label set",
    body: lines("foo{} 1"),
    samples: [sample("foo", {}, 1, "foo", "untyped")],
  },
  {
    name: "blanks and tabs between tokens",
    body: lines('  foo { a = "1" ,\tb="2" }   3\t1700000000000  '),
    samples: [
      sample("foo", { a: "1", b: "2" }, 3, "foo", "untyped", 1700000000000),
    ],
  },
  {
    name: "metric names with colons",
    body: lines(
      "# TYPE vllm:cache_config_info gauge",
      'vllm:cache_config_info{block_size="16",cache_dtype="fp8"} 1.0',
    ),
    samples: [
      sample(
        "vllm:cache_config_info",
        { block_size: "16", cache_dtype: "fp8" },
        1,
        "vllm:cache_config_info",
        "gauge",
      ),
    ],
  },
  {
    name: "quoted metric name in braces",
    body: lines('# TYPE "my.metric" gauge', '{"my.metric",label="x"} 1'),
    samples: [sample("my.metric", { label: "x" }, 1, "my.metric", "gauge")],
  },
  {
    name: "UTF-8 quoted metric and label names",
    body: lines('{"温度.celsius","host.name"="a"} 20.5'),
    samples: [
      sample(
        "温度.celsius",
        { "host.name": "a" },
        20.5,
        "温度.celsius",
        "untyped",
      ),
    ],
  },
  {
    name: "quoted metric name alone in braces",
    body: lines('{"my.metric"} 2'),
    samples: [sample("my.metric", {}, 2, "my.metric", "untyped")],
  },
  {
    name: "label named __proto__",
    body: lines('foo{__proto__="x"} 1'),
    samples: [sample("foo", { ["__proto__"]: "x" }, 1, "foo", "untyped")],
  },

  // Values, timestamps and line handling.
  {
    name: "integer millisecond timestamps",
    body: lines("foo 1 1700000000123", "bar -2 -5"),
    samples: [
      sample("foo", {}, 1, "foo", "untyped", 1700000000123),
      sample("bar", {}, -2, "bar", "untyped", -5),
    ],
  },
  {
    name: "NaN and infinities",
    body: lines("a NaN", "b +Inf", "c -Inf", "d Inf", "e nan", "f -inf"),
    samples: [
      sample("a", {}, NaN, "a", "untyped"),
      sample("b", {}, Infinity, "b", "untyped"),
      sample("c", {}, -Infinity, "c", "untyped"),
      sample("d", {}, Infinity, "d", "untyped"),
      sample("e", {}, NaN, "e", "untyped"),
      sample("f", {}, -Infinity, "f", "untyped"),
    ],
  },
  {
    name: "Go-style floats",
    body: lines(
      "a 5.221789e+06",
      "b 1.048576e+06",
      "c -1.0",
      "d .5",
      "e 1E-3",
      "f 7.",
    ),
    samples: [
      sample("a", {}, 5221789, "a", "untyped"),
      sample("b", {}, 1048576, "b", "untyped"),
      sample("c", {}, -1, "c", "untyped"),
      sample("d", {}, 0.5, "d", "untyped"),
      sample("e", {}, 0.001, "e", "untyped"),
      sample("f", {}, 7, "f", "untyped"),
    ],
  },
  {
    name: "CRLF line endings",
    body: '# TYPE foo gauge\r\nfoo{a="1"} 1\r\nfoo{a="2"} 2 1000\r\n',
    samples: [
      sample("foo", { a: "1" }, 1, "foo", "gauge"),
      sample("foo", { a: "2" }, 2, "foo", "gauge", 1000),
    ],
  },
  {
    name: "blank lines and comments ignored",
    body: "\n# just a comment\n#\n   \n# HELPER is not HELP\nfoo 1\n\n",
    samples: [sample("foo", {}, 1, "foo", "untyped")],
    families: [["foo", { type: "untyped" }]],
  },
  {
    name: "empty body",
    body: "",
    samples: [],
    families: [],
  },
  {
    name: "body without final newline",
    body: "foo 1",
    samples: [sample("foo", {}, 1, "foo", "untyped")],
  },

  // Repeated series.
  {
    name: "repeated series keeps first value",
    body: lines(
      'foo{a="1",b="2"} 1',
      'foo{b="2",a="1"} 9',
      'foo{a="1",b="2"} 10',
      'foo{a="1",b="3"} 11',
    ),
    samples: [
      sample("foo", { a: "1", b: "2" }, 1, "foo", "untyped"),
      sample("foo", { a: "1", b: "3" }, 11, "foo", "untyped"),
    ],
    duplicates: 2,
  },
  {
    name: "repeated series in other spellings",
    body: lines(
      'foo{a="1"} 1',
      '{"foo",a="1"} 2',
      '{"foo", "a"="1",} 3',
      'foo { a = "1" } 4',
      "bar 5",
      "bar{} 6",
    ),
    samples: [
      sample("foo", { a: "1" }, 1, "foo", "untyped"),
      sample("bar", {}, 5, "bar", "untyped"),
    ],
    duplicates: 4,
  },
  {
    name: "escaped values compared unescaped",
    body: lines(String.raw`foo{a="x\"y"} 1`, String.raw`foo{a="x\"y"} 2`),
    samples: [sample("foo", { a: 'x"y' }, 1, "foo", "untyped")],
    duplicates: 1,
  },

  // Malformed lines.
  {
    name: "duplicate label name",
    body: lines("foo 0", 'foo{a="1",a="2"} 1', "bar 2"),
    samples: [
      sample("foo", {}, 0, "foo", "untyped"),
      sample("bar", {}, 2, "bar", "untyped"),
    ],
    errors: [{
      line: 2,
      fragments: [
        "expected each label name once",
        '"a" again',
        'foo{a="1",a="2"} 1',
      ],
    }],
  },
  {
    name: "missing value",
    body: lines('foo{a="1"}'),
    samples: [],
    errors: [{
      line: 1,
      fragments: [
        "expected a blank and the sample value",
        "found end of line",
        'foo{a="1"}',
      ],
    }],
  },
  {
    name: "invalid value",
    body: lines("foo 12abc"),
    errors: [{
      line: 1,
      fragments: ["expected sample value", 'found "12abc"', "column 5"],
    }],
  },
  {
    name: "hexadecimal value rejected",
    body: lines("foo 0x10"),
    errors: [{ line: 1, fragments: ["expected sample value", 'found "0x10"'] }],
  },
  {
    name: "float timestamp rejected",
    body: lines("foo 1 1700000000.5"),
    errors: [{
      line: 1,
      fragments: [
        "timestamp in integer milliseconds",
        'found "1700000000.5"',
        "foo 1 1700000000.5",
      ],
    }],
  },
  {
    name: "extra token after timestamp",
    body: lines("foo 1 1000 extra"),
    errors: [{
      line: 1,
      fragments: ["expected end of line after the timestamp", 'found "e"'],
    }],
  },
  {
    name: "unterminated label value",
    body: lines('foo{a="1} 1'),
    errors: [{
      line: 1,
      fragments: [
        'expected closing double quote of the value of label "a"',
        "found end of line",
      ],
    }],
  },
  {
    name: "label without equals sign",
    body: lines("foo{a} 1"),
    errors: [{
      line: 1,
      fragments: ['expected "=" after label name "a"', 'found "}"'],
    }],
  },
  {
    name: "unquoted label value",
    body: lines("foo{a=1} 1"),
    errors: [{
      line: 1,
      fragments: [
        'expected label value in double quotes for label "a"',
        'found "1"',
      ],
    }],
  },
  {
    name: "missing comma between labels",
    body: lines('foo{a="1" b="2"} 1'),
    errors: [{
      line: 1,
      fragments: ['expected "," or "}" after label value', 'found "b"'],
    }],
  },
  {
    name: "label set without metric name",
    body: lines('{a="1"} 1'),
    errors: [{
      line: 1,
      fragments: ["expected a metric name before", 'found "{"'],
    }],
  },
  {
    name: "value glued to the name",
    body: lines("foo-1"),
    errors: [{
      line: 1,
      fragments: ["expected a blank and the sample value", 'found "-"'],
    }],
  },
  {
    name: "exemplar not allowed in text format",
    body: lines('foo_total 1 # {trace_id="a"} 1'),
    errors: [{
      line: 1,
      fragments: ["timestamp in integer milliseconds", 'found "#"'],
    }],
  },
  {
    name: "OpenMetrics type rejected",
    body: lines("# TYPE foo info", "foo_info 1"),
    samples: [sample("foo_info", {}, 1, "foo_info", "untyped")],
    errors: [{
      line: 1,
      fragments: [
        "expected metric type counter, gauge, histogram, summary or untyped",
        'found "info"',
      ],
    }],
  },
  {
    name: "TYPE without type",
    body: lines("# TYPE foo"),
    errors: [{
      line: 1,
      fragments: ["expected a blank and the metric type", "found end of line"],
    }],
  },
  {
    name: "second TYPE line for a family",
    body: lines("# TYPE foo gauge", "# TYPE foo counter", "foo 1"),
    samples: [sample("foo", {}, 1, "foo", "gauge")],
    errors: [{
      line: 2,
      fragments: [
        "expected one # TYPE line per family",
        '"foo" (declared gauge on line 1)',
        "# TYPE foo counter",
      ],
    }],
  },
  {
    name: "TYPE after the first sample",
    body: lines("foo 1", "# TYPE foo gauge", 'foo{a="b"} 2'),
    samples: [
      sample("foo", {}, 1, "foo", "untyped"),
      sample("foo", { a: "b" }, 2, "foo", "untyped"),
    ],
    errors: [{
      line: 2,
      fragments: ['expected # TYPE before the first sample of "foo"', "line 1"],
    }],
  },
  {
    name: "second HELP line for a family",
    body: lines("# HELP foo First.", "# HELP foo Second.", "foo 1"),
    families: [["foo", { type: "untyped", help: "First." }]],
    errors: [{
      line: 2,
      fragments: ["expected one # HELP line per family", "# HELP foo Second."],
    }],
  },
  {
    name: "HELP without metric name",
    body: lines("# HELP"),
    errors: [{
      line: 1,
      fragments: ["expected metric name after # HELP", "found end of line"],
    }],
  },
  {
    name: "errors keep the rest of the body",
    body: lines("a 1", "b{ 2", "c 3", "d{x=} 4", "e 5"),
    samples: [
      sample("a", {}, 1, "a", "untyped"),
      sample("c", {}, 3, "c", "untyped"),
      sample("e", {}, 5, "e", "untyped"),
    ],
    errors: [
      { line: 2, fragments: ['expected label name or "}"', 'found "2"'] },
      { line: 4, fragments: ["expected label value in double quotes"] },
    ],
  },
  {
    name: "long line shortened in message",
    body: lines(`foo{a="${LONG_VALUE}"} nope`),
    errors: [{
      line: 1,
      fragments: ['found "nope"', ": …xxx", `${"x".repeat(30)}"} nope`],
    }],
  },
];

Deno.test("parseTextFormat specification corpus", async (t) => {
  for (const row of CASES) {
    await t.step(row.name, () => {
      checkCase(parseTextFormat(row.body), row);
    });
  }
});

Deno.test("parseTextFormat error message length bounded", () => {
  const result = parseTextFormat(lines(`foo{a="${LONG_VALUE}"} nope`));
  const message = result.errors[0]?.message ?? "";
  assert.ok(message.length < 200, message);
});
