import assert from "node:assert/strict";
import {
  type Comparison,
  ConditionSyntaxError,
  parseCondition,
} from "../../src/alerts/condition.ts";
import {
  describeRule,
  loadRules,
  parseRules,
  RuleError,
} from "../../src/alerts/rules.ts";
import { ConfigError } from "../../src/config/config.ts";

const SHIPPED_RULES = new URL("../../configs/vllm_alerts.yaml", import.meta.url)
  .pathname;

/** Runs `fn` and returns what it throws; fails when it throws nothing. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

/** Drops the columns, so a table row states only the meaning. */
function withoutColumns(comparisons: Comparison[]): unknown[] {
  return comparisons.map(({ operand, operator, threshold }) => ({
    operand,
    operator,
    threshold,
  }));
}

Deno.test("parseCondition reads valid conditions", async (t) => {
  const cases: { text: string; expected: unknown[] }[] = [
    {
      text: "vllm:kv_cache_usage_perc > 0.9",
      expected: [{
        operand: {
          kind: "metric",
          metric: "vllm:kv_cache_usage_perc",
          matchers: {},
        },
        operator: ">",
        threshold: 0.9,
      }],
    },
    {
      text: "p95(vllm:request_queue_time_seconds) > 2",
      expected: [{
        operand: {
          kind: "percentile",
          function: "p95",
          quantile: 0.95,
          metric: "vllm:request_queue_time_seconds",
          matchers: {},
        },
        operator: ">",
        threshold: 2,
      }],
    },
    {
      text: "up == 0",
      expected: [{ operand: { kind: "up" }, operator: "==", threshold: 0 }],
    },
    {
      text:
        'vllm:num_requests_waiting{model_name="org/model-7b",engine="0"} >= 10',
      expected: [{
        operand: {
          kind: "metric",
          metric: "vllm:num_requests_waiting",
          matchers: { model_name: "org/model-7b", engine: "0" },
        },
        operator: ">=",
        threshold: 10,
      }],
    },
    {
      text:
        "p99( vllm:e2e_request_latency_seconds{ model_name = 'm' , } ) <= 1.5e1",
      expected: [{
        operand: {
          kind: "percentile",
          function: "p99",
          quantile: 0.99,
          metric: "vllm:e2e_request_latency_seconds",
          matchers: { model_name: "m" },
        },
        operator: "<=",
        threshold: 15,
      }],
    },
    {
      text: "p50(vllm:time_to_first_token_seconds) < .25",
      expected: [{
        operand: {
          kind: "percentile",
          function: "p50",
          quantile: 0.5,
          metric: "vllm:time_to_first_token_seconds",
          matchers: {},
        },
        operator: "<",
        threshold: 0.25,
      }],
    },
    {
      text:
        "vllm:generation_tokens_total < 1 and vllm:num_requests_running > 0",
      expected: [
        {
          operand: {
            kind: "metric",
            metric: "vllm:generation_tokens_total",
            matchers: {},
          },
          operator: "<",
          threshold: 1,
        },
        {
          operand: {
            kind: "metric",
            metric: "vllm:num_requests_running",
            matchers: {},
          },
          operator: ">",
          threshold: 0,
        },
      ],
    },
    {
      text: 'kv_cache_usage_perc{model_name="a \\"b\\" \\\\ c"} != -1',
      expected: [{
        operand: {
          kind: "metric",
          metric: "kv_cache_usage_perc",
          matchers: { model_name: 'a "b" \\ c' },
        },
        operator: "!=",
        threshold: -1,
      }],
    },
    {
      text: "  p90(vllm:inter_token_latency_seconds) > 0.1  ",
      expected: [{
        operand: {
          kind: "percentile",
          function: "p90",
          quantile: 0.9,
          metric: "vllm:inter_token_latency_seconds",
          matchers: {},
        },
        operator: ">",
        threshold: 0.1,
      }],
    },
  ];
  for (const { text, expected } of cases) {
    await t.step(text, () => {
      const condition = parseCondition(text);
      assert.equal(condition.text, text.trim());
      assert.deepEqual(withoutColumns(condition.comparisons), expected);
    });
  }
});

Deno.test("parseCondition rejects an empty condition", () => {
  const error = thrownBy(() => parseCondition("  "));
  assert.ok(error instanceof ConditionSyntaxError, String(error));
  assert.equal(error.column, 1);
  assert.ok(
    error.message.includes("found the end of the condition"),
    error.message,
  );
});

Deno.test("parseCondition records operand and threshold columns", () => {
  const condition = parseCondition("up == 0 and p95(x) > 2");
  assert.equal(condition.comparisons[0]!.operandColumn, 1);
  assert.equal(condition.comparisons[0]!.thresholdColumn, 7);
  assert.equal(condition.comparisons[1]!.operandColumn, 13);
  assert.equal(condition.comparisons[1]!.thresholdColumn, 22);
});

/** Builds a rules file with one rule made of `fields` (YAML lines under `- `). */
function oneRule(fields: string): string {
  return `rules:\n  - ${fields.trim().split("\n").join("\n    ")}\n`;
}

function ruleWithCondition(condition: string): string {
  return oneRule(
    `name: r\ncondition: '${
      condition.replaceAll("'", "''")
    }'\nduration: 1m\naction: log_info`,
  );
}

Deno.test("invalid conditions point at the column", async (t) => {
  const cases: { condition: string; column: number; fragment: string }[] = [
    {
      condition: "9vllm:x > 1",
      column: 1,
      fragment: "expected a metric name, up, or p50(...)",
    },
    {
      condition: "vllm:num_requests_running = 1",
      column: 27,
      fragment: "use == to test equality",
    },
    {
      condition: "vllm:num_requests_running => 1",
      column: 27,
      fragment: "expected a comparison operator (>, >=, <, <=, ==, !=)",
    },
    {
      condition: "vllm:num_requests_running ~ 1",
      column: 27,
      fragment: 'unexpected character "~"',
    },
    {
      condition: "vllm:num_requests_running 1",
      column: 27,
      fragment:
        'expected a comparison operator (>, >=, <, <=, ==, !=), found "1"',
    },
    {
      condition: "vllm:num_requests_running >",
      column: 28,
      fragment: "expected a number after >, found the end of the condition",
    },
    {
      condition: "p75(vllm:request_queue_time_seconds) > 2",
      column: 1,
      fragment: 'unknown function "p75"; use p50, p90, p95 or p99',
    },
    {
      condition: "rate(vllm:generation_tokens_total) > 1",
      column: 1,
      fragment: "already compares its per-second rate",
    },
    {
      condition: "p95(vllm:request_queue_time_seconds > 2",
      column: 37,
      fragment: 'expected ")" after vllm:request_queue_time_seconds, found ">"',
    },
    {
      condition: 'vllm:num_requests_running{model_name=~"a.*"} > 1',
      column: 37,
      fragment: "only exact matchers",
    },
    {
      condition: 'vllm:num_requests_running{model_name="a" > 1',
      column: 42,
      fragment: 'expected "," or "}", found ">"',
    },
    {
      condition: 'vllm:num_requests_running{model_name="a} > 1',
      column: 38,
      fragment: "label value has no closing",
    },
    {
      condition: 'vllm:num_requests_running{engine="0",engine="1"} > 1',
      column: 38,
      fragment: 'label "engine" is matched twice',
    },
    {
      condition: "p95(vllm:request_queue_time_seconds) > 2s",
      column: 41,
      fragment: 'a threshold has no unit: remove "s"',
    },
    {
      condition: "vllm:kv_cache_usage_perc > 0.9%",
      column: 31,
      fragment: 'remove "%"',
    },
    {
      condition: "vllm:num_requests_running > 1 or up == 0",
      column: 31,
      fragment: "only and can join comparisons",
    },
    {
      condition: "vllm:num_requests_running > 1 && up == 0",
      column: 31,
      fragment: "join comparisons with the word and",
    },
    {
      condition: "vllm:num_requests_running > 1 up == 0",
      column: 31,
      fragment: "expected and or the end of the condition",
    },
    {
      condition: 'up{instance="a"} == 0',
      column: 3,
      fragment: "up takes no labels",
    },
    {
      condition: "vllm:kv_cache_usage_perc > 90",
      column: 28,
      fragment: "vllm:kv_cache_usage_perc is a 0-1 fraction; did you mean 0.9?",
    },
    {
      condition: "vllm:gpu_cache_usage_perc >= 95.5",
      column: 30,
      fragment: "is a 0-1 fraction; did you mean 0.955?",
    },
    {
      condition: "vllm:num_requests_running > 0 and kv_cache_usage_perc < 250",
      column: 57,
      fragment: "is a 0-1 fraction; use a value between 0 and 1",
    },
    {
      condition: "p95(vllm:kv_cache_usage_perc) > 0.5",
      column: 1,
      fragment:
        "p95() needs a histogram, and vllm:kv_cache_usage_perc is a gauge",
    },
    {
      condition: "p99(vllm:generation_tokens_total) > 5",
      column: 1,
      fragment: "is a counter",
    },
    {
      condition: 'p95(vllm:e2e_request_latency_seconds{le="1"}) > 1',
      column: 1,
      fragment: "remove the le matcher",
    },
    {
      condition: "up == 2",
      column: 7,
      fragment: "compare it with 0 or 1",
    },
  ];
  for (const { condition, column, fragment } of cases) {
    await t.step(condition, () => {
      const error = thrownBy(() =>
        parseRules("rules.yaml", ruleWithCondition(condition))
      );
      assert.ok(error instanceof RuleError, String(error));
      assert.ok(error instanceof ConfigError);
      assert.equal(error.file, "rules.yaml");
      assert.equal(error.keyPath, "rules[0].condition");
      assert.equal(error.rule, "r");
      assert.equal(error.column, column);
      assert.ok(error.message.includes(fragment), error.message);
      assert.ok(
        error.message.startsWith('rules.yaml: rules[0].condition: rule "r": '),
        error.message,
      );
      assert.ok(
        error.message.includes(` (column ${column})\n`),
        error.message,
      );
      const lines = error.message.split("\n");
      assert.equal(lines.at(-2), `    ${condition}`);
      assert.equal(lines.at(-1), `    ${" ".repeat(column - 1)}^`);
    });
  }
});

Deno.test("invalid rules name the key path and the rule", async (t) => {
  const good = "condition: up == 0\nduration: 1m\naction: log_error";
  const cases: {
    name: string;
    yaml: string;
    keyPath: string;
    rule: string | null;
    fragment: string;
  }[] = [
    {
      name: "missing duration",
      yaml: oneRule("name: r\ncondition: up == 0\naction: log_error"),
      keyPath: "rules[0].duration",
      rule: "r",
      fragment: "is missing; add for example 5m",
    },
    {
      name: "bad duration",
      yaml: oneRule(
        "name: r\ncondition: up == 0\nduration: 5 minutes\naction: log_error",
      ),
      keyPath: "rules[0].duration",
      rule: "r",
      fragment: 'Invalid duration "5 minutes"',
    },
    {
      name: "duration without unit",
      yaml: oneRule(
        "name: r\ncondition: up == 0\nduration: 300\naction: log_error",
      ),
      keyPath: "rules[0].duration",
      rule: "r",
      fragment: "300 has no unit; write for example 300s or 300m",
    },
    {
      name: "unknown action",
      yaml: oneRule(
        "name: r\ncondition: up == 0\nduration: 1m\naction: log_critical",
      ),
      keyPath: "rules[0].action",
      rule: "r",
      fragment:
        'unknown action "log_critical"; use log_error, log_warning or log_info',
    },
    {
      name: "missing action",
      yaml: oneRule("name: r\ncondition: up == 0\nduration: 1m"),
      keyPath: "rules[0].action",
      rule: "r",
      fragment: "is missing",
    },
    {
      name: "missing condition",
      yaml: oneRule("name: r\nduration: 1m\naction: log_info"),
      keyPath: "rules[0].condition",
      rule: "r",
      fragment: "is missing",
    },
    {
      name: "empty condition",
      yaml: oneRule("name: r\ncondition: ''\nduration: 1m\naction: log_info"),
      keyPath: "rules[0].condition",
      rule: "r",
      fragment: "must be a non-empty string",
    },
    {
      name: "missing name",
      yaml: oneRule(good),
      keyPath: "rules[0].name",
      rule: null,
      fragment: "is missing",
    },
    {
      name: "invalid name",
      yaml: oneRule(`name: "two words"\n${good}`),
      keyPath: "rules[0].name",
      rule: null,
      fragment: '"two words" is not a valid rule name',
    },
    {
      name: "duplicate name",
      yaml: `rules:\n  - name: down\n    ${good.replaceAll("\n", "\n    ")}\n` +
        `  - name: down\n    ${good.replaceAll("\n", "\n    ")}\n`,
      keyPath: "rules[1].name",
      rule: "down",
      fragment: "is defined twice (first at rules[0])",
    },
    {
      name: "unknown rule key",
      yaml: oneRule(`name: r\n${good}\nfor: 5m`),
      keyPath: "rules[0].for",
      rule: "r",
      fragment: "unknown key; a rule has name, condition, duration, action",
    },
    {
      name: "label value not a string",
      yaml: oneRule(
        "name: r\ncondition: vllm:num_requests_running > 1\nduration: 1m\naction: log_info\nlabels: {engine: 0}",
      ),
      keyPath: "rules[0].labels.engine",
      rule: "r",
      fragment: 'must be a string; quote it: "0"',
    },
    {
      name: "label conflicts with the condition",
      yaml: oneRule(
        'name: r\ncondition: vllm:num_requests_running{model_name="a"} > 1\nduration: 1m\naction: log_info\nlabels: {model_name: b}',
      ),
      keyPath: "rules[0].labels.model_name",
      rule: "r",
      fragment: 'conflicts with model_name="a" in the condition',
    },
    {
      name: "invalid container",
      yaml: oneRule(`name: r\n${good}\ncontainer: ../etc`),
      keyPath: "rules[0].container",
      rule: "r",
      fragment: '"../etc" is not a container name',
    },
    {
      name: "unknown top-level key",
      yaml: "rule: []\n",
      keyPath: "rule",
      rule: null,
      fragment: "unknown key; the file has only rules:",
    },
    {
      name: "rules not a list",
      yaml: "rules: {}\n",
      keyPath: "rules",
      rule: null,
      fragment: "must be a list of rules",
    },
    {
      name: "empty file",
      yaml: "",
      keyPath: "",
      rule: null,
      fragment: "the file is empty",
    },
    {
      name: "invalid YAML",
      yaml: "rules:\n  - name: [\n",
      keyPath: "",
      rule: null,
      fragment: "invalid YAML at line",
    },
  ];
  for (const { name, yaml, keyPath, rule, fragment } of cases) {
    await t.step(name, () => {
      const error = thrownBy(() => parseRules("rules.yaml", yaml));
      assert.ok(error instanceof RuleError, String(error));
      assert.equal(error.keyPath, keyPath);
      assert.equal(error.rule, rule);
      assert.equal(error.column, null);
      assert.ok(error.message.includes(fragment), error.message);
      if (rule !== null) {
        assert.ok(error.message.includes(`rule "${rule}": `), error.message);
      }
    });
  }
});

Deno.test("parseRules reads optional keys", () => {
  const { rules } = parseRules(
    "rules.yaml",
    oneRule(
      "name: vision_waiting\ncondition: vllm:num_requests_waiting > 10\nduration: 1h30m\n" +
        "action: log_info\ncontainer: vllm-vision\nlabels: {model_name: org/model-7b}",
    ),
  );
  const rule = rules[0]!;
  assert.equal(rule.name, "vision_waiting");
  assert.equal(rule.durationMs, 5_400_000);
  assert.equal(rule.duration, "1h30m");
  assert.equal(rule.action, "log_info");
  assert.equal(rule.level, "INFO");
  assert.equal(rule.container, "vllm-vision");
  assert.deepEqual(rule.labels, { model_name: "org/model-7b" });
});

Deno.test("loadRules reports a missing file", async () => {
  await assert.rejects(
    loadRules("/nonexistent/vllm_alerts.yaml"),
    (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.ok(error.message.includes("file not found"), error.message);
      return true;
    },
  );
});

Deno.test("shipped rules file loads", async () => {
  const { rules } = await loadRules(SHIPPED_RULES);
  const summary = rules.map((rule) => [
    rule.name,
    rule.condition.text,
    rule.duration,
    rule.action,
  ]);
  assert.deepEqual(summary, [
    [
      "kv_cache_saturated",
      "vllm:kv_cache_usage_perc > 0.9",
      "5m",
      "log_warning",
    ],
    [
      "queue_time_high",
      "p95(vllm:request_queue_time_seconds) > 2",
      "2m",
      "log_warning",
    ],
    [
      "generation_stalled",
      "vllm:generation_tokens_total < 1 and vllm:num_requests_running > 0",
      "5m",
      "log_warning",
    ],
    ["scrape_down", "up == 0", "1m", "log_error"],
  ]);
});

Deno.test("describeRule states the value of each operand", async (t) => {
  const { rules } = await loadRules(SHIPPED_RULES);
  const byName = new Map(rules.map((rule) => [rule.name, describeRule(rule)]));
  await t.step("gauge", () => {
    const text = byName.get("kv_cache_saturated")!;
    assert.ok(
      text.includes(
        "the latest value of vllm:kv_cache_usage_perc (a 0-1 fraction) is above 0.9",
      ),
      text,
    );
    assert.ok(text.includes("continuously for 5m"), text);
    assert.ok(text.includes("level WARNING"), text);
  });
  await t.step("percentile", () => {
    const text = byName.get("queue_time_high")!;
    assert.ok(
      text.includes(
        "the 95th percentile of vllm:request_queue_time_seconds observed during the last scrape interval is above 2",
      ),
      text,
    );
  });
  await t.step("counter and gauge", () => {
    const text = byName.get("generation_stalled")!;
    assert.ok(
      text.includes(
        "the per-second rate of vllm:generation_tokens_total over the last scrape interval is below 1, and the latest value of vllm:num_requests_running is above 0",
      ),
      text,
    );
  });
  await t.step("up", () => {
    const text = byName.get("scrape_down")!;
    assert.ok(
      text.includes(
        "up (1 when the scrape succeeded, 0 when it failed) equals 0",
      ),
      text,
    );
    assert.ok(text.includes("level ERROR"), text);
  });
});
