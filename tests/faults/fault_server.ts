/**
 * A raw HTTP/1.1 server on 127.0.0.1 that responds to each request
 * according to the current fault mode: good bodies, error statuses, HTML,
 * bodies cut short, stalled chunked bodies, endless bodies and connections
 * that never get a response. It works on raw TCP so that a test controls
 * every byte and every close. Every response has `Connection: close`.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes a whole response; the connection is closed afterwards by the server. */
export type Reply = (conn: Deno.Conn, server: FaultServer) => Promise<void>;

/** Writes all of `bytes`; returns false when the client has gone away. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<boolean> {
  let offset = 0;
  try {
    while (offset < bytes.length) {
      offset += await conn.write(bytes.subarray(offset));
    }
    return true;
  } catch {
    return false;
  }
}

function head(status: string, headers: Record<string, string>): Uint8Array {
  const lines = [`HTTP/1.1 ${status}`];
  for (const [name, value] of Object.entries(headers)) {
    lines.push(`${name}: ${value}`);
  }
  lines.push("Connection: close", "", "");
  return encoder.encode(lines.join("\r\n"));
}

/** Returns a reply that sends a complete response with Content-Length. */
export function reply(
  body: string | Uint8Array,
  options: { status?: string; contentType?: string } = {},
): Reply {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  return async (conn) => {
    const headers: Record<string, string> = {
      "Content-Length": String(bytes.length),
    };
    headers["Content-Type"] = options.contentType ??
      "text/plain; version=0.0.4; charset=utf-8";
    await writeAll(conn, head(options.status ?? "200 OK", headers));
    await writeAll(conn, bytes);
  };
}

/** Announces `declaredBytes` with Content-Length, sends `body`, then closes. */
export function shortBody(body: string, declaredBytes: number): Reply {
  return async (conn) => {
    await writeAll(
      conn,
      head("200 OK", {
        "Content-Type": "text/plain; version=0.0.4",
        "Content-Length": String(declaredBytes),
      }),
    );
    await writeAll(conn, encoder.encode(body));
  };
}

function chunk(bytes: Uint8Array): Uint8Array {
  const size = encoder.encode(`${bytes.length.toString(16)}\r\n`);
  const out = new Uint8Array(size.length + bytes.length + 2);
  out.set(size);
  out.set(bytes, size.length);
  out.set(encoder.encode("\r\n"), size.length + bytes.length);
  return out;
}

/**
 * Returns a reply with a chunked body that sends `first` and then either
 * stalls until the server closes (`"stall"`) or closes without the final
 * chunk (`"cut"`).
 */
export function chunkedThen(first: string, then: "stall" | "cut"): Reply {
  return async (conn, server) => {
    await writeAll(
      conn,
      head("200 OK", {
        "Content-Type": "text/plain; version=0.0.4",
        "Transfer-Encoding": "chunked",
      }),
    );
    await writeAll(conn, chunk(encoder.encode(first)));
    if (then === "stall") await server.closed;
  };
}

/**
 * Returns a reply with a chunked body of valid sample lines, `totalBytes`
 * long, sent in 64 KiB chunks until done or until the client closes. It
 * adds the bytes the client accepted to `sent.bytes`.
 */
export function endlessBody(
  totalBytes: number,
  sent: { bytes: number },
): Reply {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < 64 * 1024; i++) {
    const line = `huge_metric{index="${i}"} ${i}\n`;
    lines.push(line);
    length += line.length;
  }
  const block = chunk(encoder.encode(lines.join("")));
  return async (conn) => {
    await writeAll(
      conn,
      head("200 OK", {
        "Content-Type": "text/plain; version=0.0.4",
        "Transfer-Encoding": "chunked",
      }),
    );
    let written = 0;
    while (written < totalBytes) {
      if (!(await writeAll(conn, block))) return;
      written += block.length;
      sent.bytes += block.length;
    }
    await writeAll(conn, encoder.encode("0\r\n\r\n"));
  };
}

/** Reads the request and sends no response until the server closes. */
export async function hang(
  _conn: Deno.Conn,
  server: FaultServer,
): Promise<void> {
  await server.closed;
}

/** Serves requests with the reply of the current mode. */
export class FaultServer {
  readonly port: number;
  /** Requests received per mode. */
  readonly requests = new Map<string, number>();
  /** Resolves when {@linkcode close} is called. */
  readonly closed: Promise<void>;
  mode: string;
  readonly #replies: Record<string, Reply>;
  readonly #connections = new Set<Deno.Conn>();
  #listener: Deno.Listener | null;
  #accepting: Promise<void> = Promise.resolve();
  #resolveClosed!: () => void;

  private constructor(
    listener: Deno.Listener,
    replies: Record<string, Reply>,
    mode: string,
  ) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#replies = replies;
    this.mode = mode;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#accepting = this.#accept(listener);
  }

  /** Listens on an ephemeral port of 127.0.0.1. */
  static start(replies: Record<string, Reply>, mode: string): FaultServer {
    if (!(mode in replies)) throw new RangeError(`unknown mode ${mode}`);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new FaultServer(listener, replies, mode);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/metrics`;
  }

  /** Requests of `mode` so far. */
  count(mode: string): number {
    return this.requests.get(mode) ?? 0;
  }

  /** Stops listening, so that connections are refused, until {@linkcode listen}. */
  async refuse(): Promise<void> {
    this.#listener?.close();
    this.#listener = null;
    await this.#accepting;
  }

  /** Listens again on the same port after {@linkcode refuse}. */
  listen(): void {
    if (this.#listener !== null) return;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.#listener = listener;
    this.#accepting = this.#accept(listener);
  }

  /** Stops listening and closes every open connection. */
  async close(): Promise<void> {
    this.#resolveClosed();
    await this.refuse();
    for (const conn of this.#connections) {
      try {
        conn.close();
      } catch {
        // Already closed by the reply.
      }
    }
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        this.#connections.add(conn);
        this.#serve(conn).finally(() => {
          this.#connections.delete(conn);
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        });
      }
    } catch {
      // The listener was closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    let received = "";
    const decoder = new TextDecoder();
    while (!received.includes("\r\n\r\n")) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        return;
      }
      if (n === null) return;
      received += decoder.decode(buffer.subarray(0, n));
    }
    const mode = this.mode;
    this.requests.set(mode, this.count(mode) + 1);
    await this.#replies[mode]!(conn, this);
  }
}
