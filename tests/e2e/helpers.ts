/**
 * Helpers for end-to-end tests: the program as a real subprocess, a fake
 * `docker` on PATH backed by files, and a metrics endpoint on 127.0.0.1.
 *
 * @module
 */

export const REPO = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
export const DENO = Deno.env.get("HOROS_DENO") ?? Deno.execPath();
export const FAKE_DOCKER_DIR = `${REPO}/scripts/fake-docker`;

/** Appends entries to a fake container's log store, as Docker's json-file driver would. */
export async function appendContainerLog(
  root: string,
  container: string,
  entries: { time: string; stream: "stdout" | "stderr"; log: string }[],
): Promise<void> {
  await Deno.mkdir(`${root}/${container}`, { recursive: true });
  const text = entries.map((entry) => JSON.stringify(entry)).join("\n") + "\n";
  await Deno.writeTextFile(`${root}/${container}/log.jsonl`, text, {
    append: true,
  });
}

/** Marks a fake container as running or stopped. */
export async function setRunning(
  root: string,
  container: string,
  running: boolean,
): Promise<void> {
  await Deno.mkdir(`${root}/${container}`, { recursive: true });
  const marker = `${root}/${container}/running`;
  if (running) await Deno.writeTextFile(marker, "");
  else await Deno.remove(marker).catch(() => {});
}

/** Starts `main.ts` with arguments, the fake docker first on PATH. */
export function startLogger(
  args: string[],
  dockerRoot: string,
): Deno.ChildProcess {
  return new Deno.Command(DENO, {
    args: ["run", "--allow-all", `${REPO}/main.ts`, ...args],
    env: {
      PATH: `${FAKE_DOCKER_DIR}:${Deno.env.get("PATH") ?? ""}`,
      FAKE_DOCKER_ROOT: dockerRoot,
      HOROS_DENO: DENO,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Polls `condition` every 50 ms until it holds or `timeoutMs` passes. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Reads a JSONL file into parsed records; fails on any invalid line. */
export async function readJsonl(
  path: string,
): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  if (!text.endsWith("\n")) {
    throw new Error(`${path} does not end with a newline`);
  }
  return text.slice(0, -1).split("\n").map((line) => JSON.parse(line));
}

/** Serves the given bodies in turn (cycling) on 127.0.0.1; counts requests. */
export function serveMetrics(
  bodies: string[],
): {
  url: string;
  port: number;
  requests: () => number;
  close: () => Promise<void>;
} {
  let count = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      if (new URL(request.url).pathname !== "/metrics") {
        return new Response(
          "not found",
          { status: 404 },
        );
      }
      const body = bodies[count % bodies.length]!;
      count++;
      return new Response(body, {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/metrics`,
    port: server.addr.port,
    requests: () => count,
    close: () => server.shutdown(),
  };
}
