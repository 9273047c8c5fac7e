/**
 * Entry point of horos_vllm_logger: captures vLLM container logs into daily
 * JSONL files, scrapes vLLM's Prometheus endpoint into SQLite, and answers
 * questions about both from the command line.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
