import assert from "node:assert/strict";
import { readJsonl, startLogger, waitFor } from "./helpers.ts";

const noLeaks = { sanitizeOps: false, sanitizeResources: false };

function page(kvFraction: number): string {
  return [
    "# TYPE vllm:kv_cache_usage_perc gauge",
    `vllm:kv_cache_usage_perc{engine="0",model_name="org/model-7b"} ${kvFraction}`,
    "",
  ].join("\n");
}

Deno.test({
  name: "run fires and resolves an alert into alerts.log",
  ...noLeaks,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    let kv = 0.95;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () =>
        new Response(page(kv), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        }),
    );
    await Deno.writeTextFile(
      `${dir}/rules.yaml`,
      [
        "rules:",
        "  - name: kv_cache_saturated",
        "    condition: vllm:kv_cache_usage_perc > 0.9",
        "    duration: 1s",
        "    action: log_warning",
        "",
      ].join("\n"),
    );
    const alertsLog = `${dir}/logs/alerts.log`;
    const child = startLogger([
      "--container",
      "vllm-alerts",
      "--metrics-url",
      `http://127.0.0.1:${server.addr.port}/metrics`,
      "--db",
      `${dir}/metrics.db`,
      "--log-dir",
      `${dir}/logs`,
      "--alerts-file",
      `${dir}/rules.yaml`,
      "--interval-seconds",
      "0.3",
      "--logs-stream",
      "true",
    ], `${dir}/docker`);
    try {
      const events = async () => {
        try {
          return await readJsonl(alertsLog);
        } catch {
          return [];
        }
      };
      await waitFor(
        async () => (await events()).length >= 1,
        15_000,
        "a firing event",
      );
      kv = 0.1;
      await waitFor(
        async () => (await events()).length >= 2,
        15_000,
        "a resolved event",
      );
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      const [firing, resolved, ...rest] = await events();
      assert.equal(rest.length, 0);
      assert.equal(firing!.state, "firing");
      assert.equal(firing!.alert, "kv_cache_saturated");
      assert.equal(firing!.container, "vllm-alerts");
      assert.equal(firing!.value, 0.95);
      assert.equal(firing!.level, "WARNING");
      assert.equal(resolved!.state, "resolved");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "run refuses to start on an invalid rules file",
  ...noLeaks,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${dir}/rules.yaml`,
      "rules:\n  - name: kv\n    condition: vllm:kv_cache_usage_perc > 90\n    duration: 5m\n    action: log_warning\n",
    );
    const child = startLogger([
      "--container",
      "vllm-alerts",
      "--metrics-port",
      "1",
      "--db",
      `${dir}/metrics.db`,
      "--log-dir",
      `${dir}/logs`,
      "--alerts-file",
      `${dir}/rules.yaml`,
    ], `${dir}/docker`);
    const output = await child.output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 2, stderr);
    assert.match(stderr, /did you mean 0\.9/);
    assert.match(stderr, /rules\[0\]\.condition/);
    let created = true;
    try {
      await Deno.stat(`${dir}/metrics.db`);
    } catch {
      created = false;
    }
    assert.equal(created, false, "no database is created");
    await Deno.remove(dir, { recursive: true });
  },
});
