import assert from "node:assert/strict";

const UNIT =
  new URL("../../deploy/horos-vllm-logger.service", import.meta.url).pathname;

function findSystemdAnalyze(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/systemd-analyze`).isFile) {
        return `${dir}/systemd-analyze`;
      }
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

const systemdAnalyze = findSystemdAnalyze();

Deno.test({
  name: systemdAnalyze === null
    ? "systemd unit verifies (ignored: systemd-analyze not on PATH)"
    : "systemd unit verifies with systemd-analyze",
  ignore: systemdAnalyze === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    // verify checks that ExecStart exists, so point it at a stand-in executable.
    const binary = `${dir}/horos_vllm_logger`;
    await Deno.writeTextFile(binary, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const unit = (await Deno.readTextFile(UNIT)).replaceAll(
      "/usr/local/bin/horos_vllm_logger",
      binary,
    );
    await Deno.writeTextFile(`${dir}/horos-vllm-logger.service`, unit);
    const output = await new Deno.Command(systemdAnalyze!, {
      args: ["verify", `${dir}/horos-vllm-logger.service`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const messages = new TextDecoder().decode(output.stderr) +
      new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, messages);
    assert.equal(messages.trim(), "");
    await Deno.remove(dir, { recursive: true });
  },
});
