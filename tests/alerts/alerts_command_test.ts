import assert from "node:assert/strict";
import { Command } from "commander";
import type { AlertStateRow } from "../../src/alerts/alert_state.ts";
import { loadRules, RuleError } from "../../src/alerts/rules.ts";
import { openStore } from "../../src/metrics/store.ts";
import {
  addAlertsCommands,
  alertStatuses,
  formatRulesCheck,
  statusesToJson,
  statusesToTable,
} from "../../src/cli/alerts_command.ts";

const SHIPPED_RULES = new URL("../../configs/vllm_alerts.yaml", import.meta.url)
  .pathname;

Deno.test("formatRulesCheck explains each shipped rule", async () => {
  const text = formatRulesCheck(await loadRules(SHIPPED_RULES));
  assert.ok(
    text.includes(
      "kv_cache_saturated: vllm:kv_cache_usage_perc > 0.9 for 5m (log_warning)\n",
    ),
    text,
  );
  assert.ok(text.includes("scrape_down: up == 0 for 1m (log_error)\n"), text);
  assert.ok(text.endsWith(`${SHIPPED_RULES}: 4 rules, valid\n`), text);
});

Deno.test("alerts check rejects an invalid file", async () => {
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(
      path,
      "rules:\n  - name: kv\n    condition: vllm:kv_cache_usage_perc > 90\n    duration: 5m\n    action: log_warning\n",
    );
    const program = new Command().exitOverride();
    addAlertsCommands(program, { value: 0 });
    await assert.rejects(
      program.parseAsync(["alerts", "check", "--rules", path], {
        from: "user",
      }),
      (error: unknown) => {
        assert.ok(error instanceof RuleError, String(error));
        assert.equal(error.keyPath, "rules[0].condition");
        return true;
      },
    );
  } finally {
    await Deno.remove(path);
  }
});

const FIRING_ROW: AlertStateRow = {
  container: "vllm-vision",
  rule: "kv_cache_saturated",
  labels: '{"engine":"0","model_name":"org/model-7b"}',
  condition: "vllm:kv_cache_usage_perc > 0.9",
  threshold: 0.9,
  level: "WARNING",
  pendingSinceMs: Date.parse("2026-11-17T10:00:00Z"),
  firedAtMs: Date.parse("2026-11-17T10:05:00Z"),
  value: 0.95,
  evaluatedAtMs: Date.parse("2026-11-17T10:07:00Z"),
};

const PENDING_ROW: AlertStateRow = {
  ...FIRING_ROW,
  rule: "queue_time_high",
  condition: "p95(vllm:request_queue_time_seconds) > 2",
  threshold: 2,
  firedAtMs: null,
  pendingSinceMs: Date.parse("2026-11-17T10:06:00Z"),
  value: 4.5,
};

Deno.test("alertStatuses adds inactive rules and firing times", async () => {
  const rules = await loadRules(SHIPPED_RULES);
  const statuses = alertStatuses([FIRING_ROW, PENDING_ROW], rules);
  assert.deepEqual(
    statuses.map((status) => [status.rule, status.state]),
    [
      ["kv_cache_saturated", "firing"],
      ["queue_time_high", "pending"],
      ["generation_stalled", "inactive"],
      ["scrape_down", "inactive"],
    ],
  );
  assert.equal(statuses[0]!.sinceMs, FIRING_ROW.firedAtMs);
  assert.equal(statuses[0]!.firesAtMs, null);
  assert.equal(
    statuses[1]!.firesAtMs,
    Date.parse("2026-11-17T10:08:00Z"),
  );
  const json = JSON.parse(statusesToJson(statuses));
  assert.equal(json[1].fires_at, "2026-11-17T10:08:00.000Z");
  assert.deepEqual(json[0].labels, {
    engine: "0",
    model_name: "org/model-7b",
  });
});

Deno.test("statusesToTable aligns columns", () => {
  const table = statusesToTable(alertStatuses([FIRING_ROW], null));
  const [header, row] = table.trimEnd().split("\n");
  assert.ok(header?.startsWith("CONTAINER    RULE "), header);
  assert.equal(row?.indexOf("kv_cache_saturated"), header?.indexOf("RULE"));
  assert.equal(row?.indexOf("firing"), header?.indexOf("STATE"));
  assert.equal(
    statusesToTable([]),
    "no pending or firing alerts\n",
  );
});

Deno.test("alerts check --db reports metrics with no series", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rulesPath = `${dir}/rules.yaml`;
    await Deno.writeTextFile(
      rulesPath,
      [
        "rules:",
        "  - name: kv",
        "    condition: vllm:kv_cache_usage_perc > 0.9",
        "    duration: 5m",
        "    action: log_warning",
        "  - name: typo",
        "    condition: vllm:kv_cache_usage_pct > 0.9",
        "    duration: 5m",
        "    action: log_warning",
        "",
      ].join("\n"),
    );
    const store = openStore(`${dir}/m.db`);
    store.writeScrape({
      container: "c",
      timestampMs: 1000,
      durationSeconds: 0,
      up: true,
      samplesScraped: 1,
      parseErrors: 0,
      duplicateSamples: 0,
      error: null,
    }, [{
      name: "vllm:gpu_cache_usage_perc",
      labels: {},
      value: 0.5,
      family: "vllm:gpu_cache_usage_perc",
      type: "gauge",
    }]);
    store.close();
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        "alerts",
        "check",
        "--rules",
        rulesPath,
        "--db",
        `${dir}/m.db`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 1, stderr);
    // The older vLLM name counts as the same quantity, so only the typo is reported.
    assert.match(
      stderr,
      /rule "typo": no series named vllm:kv_cache_usage_pct/,
    );
    assert.doesNotMatch(stderr, /rule "kv"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
