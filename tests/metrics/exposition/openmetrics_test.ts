import assert from "node:assert/strict";

import { parseOpenMetrics } from "../../../src/metrics/exposition/openmetrics.ts";
import {
  isOpenMetricsContentType,
  parseExposition,
  SCRAPE_ACCEPT_HEADER,
} from "../../../src/metrics/exposition/parse.ts";
import { type Case, checkCase, lines, sample } from "./_corpus.ts";

const CASES: Case[] = [
  // Family types.
  {
    name: "counter with _total and _created",
    body: lines(
      "# TYPE vllm:prompt_tokens counter",
      "# HELP vllm:prompt_tokens Prompt tokens.",
      'vllm:prompt_tokens_total{engine="0"} 5221789.0',
      'vllm:prompt_tokens_created{engine="0"} 1794902496.782212',
      "# EOF",
    ),
    samples: [
      sample(
        "vllm:prompt_tokens_total",
        { engine: "0" },
        5221789,
        "vllm:prompt_tokens",
        "counter",
      ),
      sample(
        "vllm:prompt_tokens_created",
        { engine: "0" },
        1794902496.782212,
        "vllm:prompt_tokens",
        "counter",
      ),
    ],
    families: [["vllm:prompt_tokens", {
      type: "counter",
      help: "Prompt tokens.",
    }]],
  },
  {
    name: "counter sample without _total",
    body: lines("# TYPE c counter", "c 1", "# EOF"),
    samples: [sample("c", {}, 1, "c", "untyped")],
    families: [["c", { type: "counter" }]],
  },
  {
    name: "histogram with _created",
    body: lines(
      "# TYPE vllm:iteration_tokens_total histogram",
      'vllm:iteration_tokens_total_bucket{le="+Inf"} 1',
      "vllm:iteration_tokens_total_count 1",
      "vllm:iteration_tokens_total_sum 0.5",
      "vllm:iteration_tokens_total_created 1.7e9",
      "# EOF",
    ),
    samples: [
      sample(
        "vllm:iteration_tokens_total_bucket",
        { le: "+Inf" },
        1,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_count",
        {},
        1,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_sum",
        {},
        0.5,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
      sample(
        "vllm:iteration_tokens_total_created",
        {},
        1.7e9,
        "vllm:iteration_tokens_total",
        "histogram",
      ),
    ],
  },
  {
    name: "summary with _created",
    body: lines(
      "# TYPE s summary",
      's{quantile="0.5"} 1',
      "s_sum 2",
      "s_count 3",
      "s_created 1.7e9",
      "# EOF",
    ),
    samples: [
      sample("s", { quantile: "0.5" }, 1, "s", "summary"),
      sample("s_sum", {}, 2, "s", "summary"),
      sample("s_count", {}, 3, "s", "summary"),
      sample("s_created", {}, 1.7e9, "s", "summary"),
    ],
  },
  {
    name: "info family",
    body: lines(
      "# TYPE build info",
      'build_info{version="1.2"} 1',
      "# EOF",
    ),
    samples: [sample("build_info", { version: "1.2" }, 1, "build", "info")],
    families: [["build", { type: "info" }]],
  },
  {
    name: "stateset family",
    body: lines(
      "# TYPE state stateset",
      'state{state="a"} 1',
      'state{state="b"} 0',
      "# EOF",
    ),
    samples: [
      sample("state", { state: "a" }, 1, "state", "stateset"),
      sample("state", { state: "b" }, 0, "state", "stateset"),
    ],
  },
  {
    name: "gaugehistogram family",
    body: lines(
      "# TYPE queue gaugehistogram",
      'queue_bucket{le="1"} 2',
      'queue_bucket{le="+Inf"} 3',
      "queue_gcount 3",
      "queue_gsum 1.5",
      "# EOF",
    ),
    samples: [
      sample("queue_bucket", { le: "1" }, 2, "queue", "gaugehistogram"),
      sample("queue_bucket", { le: "+Inf" }, 3, "queue", "gaugehistogram"),
      sample("queue_gcount", {}, 3, "queue", "gaugehistogram"),
      sample("queue_gsum", {}, 1.5, "queue", "gaugehistogram"),
    ],
  },
  {
    name: "gaugehistogram does not own _sum",
    body: lines("# TYPE queue gaugehistogram", "queue_sum 1", "# EOF"),
    samples: [sample("queue_sum", {}, 1, "queue_sum", "untyped")],
  },
  {
    name: "unknown family",
    body: lines("# TYPE u unknown", "u 4", "# EOF"),
    samples: [sample("u", {}, 4, "u", "unknown")],
  },
  {
    name: "UNIT line accepted",
    body: lines(
      "# TYPE t_seconds gauge",
      "# UNIT t_seconds seconds",
      "t_seconds 1",
      "# EOF",
    ),
    samples: [sample("t_seconds", {}, 1, "t_seconds", "gauge")],
  },
  {
    name: "HELP unescapes quotes too",
    body: lines(
      String.raw`# HELP foo A \"quoted\" word\\path\nnext`,
      "# TYPE foo gauge",
      "# EOF",
    ),
    families: [["foo", {
      type: "gauge",
      help: 'A "quoted" word\\path\nnext',
    }]],
  },

  // Timestamps, values and exemplars.
  {
    name: "timestamps in seconds",
    body: lines(
      "foo 1 1520879607.789",
      "bar 2 1520879607",
      "baz 3 -1.5",
      "# EOF",
    ),
    samples: [
      sample("foo", {}, 1, "foo", "untyped", 1520879607789),
      sample("bar", {}, 2, "bar", "untyped", 1520879607000),
      sample("baz", {}, 3, "baz", "untyped", -1500),
    ],
  },
  {
    name: "NaN and infinities",
    body: lines("a NaN", "b +Inf", "c -Inf", "# EOF"),
    samples: [
      sample("a", {}, NaN, "a", "untyped"),
      sample("b", {}, Infinity, "b", "untyped"),
      sample("c", {}, -Infinity, "c", "untyped"),
    ],
  },
  {
    name: "infinite timestamp rejected",
    body: lines("a 1 +Inf", "# EOF"),
    samples: [],
    errors: [{
      line: 1,
      fragments: ["a timestamp in seconds", 'found "+Inf"', "a 1 +Inf"],
    }],
  },
  {
    name: "exemplar on a counter discarded",
    body: lines(
      "# TYPE foo counter",
      'foo_total 17 # {trace_id="KOO5S4vxi0o"} 0.67',
      "# EOF",
    ),
    samples: [sample("foo_total", {}, 17, "foo", "counter")],
  },
  {
    name: "exemplar after sample timestamp",
    body: lines(
      "# TYPE h histogram",
      'h_bucket{le="0.5"} 3 1520879607.789 # {trace_id="x"} 0.4 1520879607.7',
      "# EOF",
    ),
    samples: [
      sample("h_bucket", { le: "0.5" }, 3, "h", "histogram", 1520879607789),
    ],
  },
  {
    name: "exemplar with empty label set",
    body: lines('h_bucket{le="1"} 3 # {} 1', "# EOF"),
    samples: [sample("h_bucket", { le: "1" }, 3, "h_bucket", "untyped")],
  },
  {
    name: "exemplar without label set",
    body: lines('foo_total 1 # trace_id="x" 1', "# EOF"),
    samples: [],
    errors: [{
      line: 1,
      fragments: ['expected the exemplar label set "{...}"', 'found "t"'],
    }],
  },
  {
    name: "exemplar without value",
    body: lines('foo_total 1 # {a="b"}', "# EOF"),
    errors: [{
      line: 1,
      fragments: ["expected a blank and the exemplar value", "end of line"],
    }],
  },
  {
    name: "exemplar with bad label set",
    body: lines("foo_total 1 # {a=b} 1", "# EOF"),
    errors: [{
      line: 1,
      fragments: ['expected label value in double quotes for label "a"'],
    }],
  },

  // Names, labels and repeated series.
  {
    name: "quoted metric name",
    body: lines(
      '# TYPE "http.requests" counter',
      '{"http.requests_total",code="200"} 3',
      "# EOF",
    ),
    samples: [
      sample(
        "http.requests_total",
        { code: "200" },
        3,
        "http.requests",
        "counter",
      ),
    ],
  },
  {
    name: "label escapes and empty values",
    body: lines(String.raw`foo{a="x\"y\\z\n",b=""} 1`, "# EOF"),
    samples: [sample("foo", { a: 'x"y\\z\n', b: "" }, 1, "foo", "untyped")],
  },
  {
    name: "repeated series keeps first value",
    body: lines('foo{a="1",b="2"} 1', 'foo{b="2",a="1"} 2', "# EOF"),
    samples: [sample("foo", { a: "1", b: "2" }, 1, "foo", "untyped")],
    duplicates: 1,
  },
  {
    name: "duplicate label name",
    body: lines('foo{a="1",a="1"} 1', "# EOF"),
    errors: [{ line: 1, fragments: ["expected each label name once"] }],
  },
  {
    name: "untyped is not an OpenMetrics type",
    body: lines("# TYPE foo untyped", "# EOF"),
    errors: [{
      line: 1,
      fragments: [
        "expected metric type counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown",
        'found "untyped"',
      ],
    }],
  },

  // Line endings and # EOF.
  {
    name: "CRLF line endings",
    body: "# TYPE foo gauge\r\nfoo 1\r\n# EOF\r\n",
    samples: [sample("foo", {}, 1, "foo", "gauge")],
  },
  {
    name: "EOF without final newline",
    body: "foo 1\n# EOF",
    samples: [sample("foo", {}, 1, "foo", "untyped")],
  },
  {
    name: "missing EOF keeps samples",
    body: lines("foo 1", "bar 2"),
    samples: [
      sample("foo", {}, 1, "foo", "untyped"),
      sample("bar", {}, 2, "bar", "untyped"),
    ],
    errors: [{
      line: 3,
      fragments: [
        'expected "# EOF" as the last line',
        "found end of body after line 2",
      ],
    }],
  },
  {
    name: "empty body lacks EOF",
    body: "",
    samples: [],
    errors: [{ line: 1, fragments: ['expected "# EOF"', "empty body"] }],
  },
  {
    name: "content after EOF",
    body: lines("foo 1", "# EOF", "bar 2", "baz 3"),
    samples: [sample("foo", {}, 1, "foo", "untyped")],
    errors: [{
      line: 3,
      fragments: [
        'expected end of body after "# EOF" on line 2',
        "found more content",
        "bar 2",
      ],
    }],
  },
  {
    name: "blank lines after EOF ignored",
    body: lines("foo 1", "# EOF", "", "  "),
    samples: [sample("foo", {}, 1, "foo", "untyped")],
  },
  {
    name: "EOF followed by text",
    body: lines("foo 1", "# EOF now"),
    samples: [sample("foo", {}, 1, "foo", "untyped")],
    errors: [
      {
        line: 2,
        fragments: ['expected end of line after "# EOF"', 'found "n"'],
      },
      { line: 3, fragments: ['expected "# EOF" as the last line'] },
    ],
  },
];

Deno.test("parseOpenMetrics specification corpus", async (t) => {
  for (const row of CASES) {
    await t.step(row.name, () => {
      checkCase(parseOpenMetrics(row.body), row);
    });
  }
});

Deno.test("parseExposition picks parser by Content-Type", async (t) => {
  // Without "# EOF" the OpenMetrics parser reports an error and the text
  // parser does not, which shows which parser ran.
  const body = lines("foo 1");
  const rows: Array<[string | null, boolean]> = [
    ["application/openmetrics-text; version=1.0.0; charset=utf-8", true],
    ["application/openmetrics-text;version=0.0.1", true],
    [" Application/OpenMetrics-Text ", true],
    ["text/plain; version=0.0.4; charset=utf-8", false],
    ["text/plain", false],
    ["application/json", false],
    [null, false],
  ];
  for (const [contentType, openMetrics] of rows) {
    await t.step(String(contentType), () => {
      assert.equal(isOpenMetricsContentType(contentType), openMetrics);
      const result = parseExposition(body, contentType);
      assert.equal(result.samples.length, 1);
      assert.equal(result.errors.length, openMetrics ? 1 : 0);
    });
  }
});

Deno.test("SCRAPE_ACCEPT_HEADER prefers OpenMetrics 1.0.0", () => {
  assert.equal(
    SCRAPE_ACCEPT_HEADER,
    "application/openmetrics-text;version=1.0.0;q=0.5," +
      "application/openmetrics-text;version=0.0.1;q=0.4," +
      "text/plain;version=0.0.4;q=0.3," +
      "*/*;q=0.2",
  );
  const weights = new Map<string, number>();
  for (const entry of SCRAPE_ACCEPT_HEADER.split(",")) {
    const parameters = entry.split(";");
    const quality = parameters.pop() ?? "";
    assert.match(quality, /^q=0\.\d$/);
    weights.set(parameters.join(";"), Number(quality.slice(2)));
  }
  const openMetrics = weights.get("application/openmetrics-text;version=1.0.0");
  const text = weights.get("text/plain;version=0.0.4");
  assert.ok(openMetrics !== undefined);
  assert.ok(text !== undefined);
  assert.ok(openMetrics > text);
});
