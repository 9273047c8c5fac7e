import assert from "node:assert/strict";
import { cleanLine } from "../../src/logs/clean.ts";

const ESC = "\x1b";
const PREFIX = `${ESC}[0;36m(EngineCore_DP0 pid=267)${ESC}[0;0m `;

const cases: { name: string; input: string; expected: string }[] = [
  { name: "plain text", input: "INFO: ready", expected: "INFO: ready" },
  { name: "empty line", input: "", expected: "" },
  {
    name: "coloured process prefix",
    input: `${PREFIX}INFO 11-17 09:14:21 [x.py:1] hello`,
    expected: "(EngineCore_DP0 pid=267) INFO 11-17 09:14:21 [x.py:1] hello",
  },
  {
    name: "bold colour and reset",
    input: `${ESC}[1;36m(VllmWorkerProcess pid=212)${ESC}[0;0m text`,
    expected: "(VllmWorkerProcess pid=212) text",
  },
  {
    name: "coloured level and grey time",
    input: `${ESC}[32mINFO${ESC}[0m ${ESC}[90m11-17 09:14:03${ESC}[0m msg`,
    expected: "INFO 11-17 09:14:03 msg",
  },
  {
    name: "cursor movement CSI",
    input: `${ESC}[2K${ESC}[1Aline`,
    expected: "line",
  },
  {
    name: "OSC hyperlink ended by BEL",
    input: `see ${ESC}]8;;https://example.test\x07docs${ESC}]8;;\x07 now`,
    expected: "see docs now",
  },
  {
    name: "OSC title ended by ST",
    input: `${ESC}]0;title${ESC}\\body`,
    expected: "body",
  },
  { name: "charset escape", input: `${ESC}(Btext`, expected: "text" },
  { name: "lone ESC at end", input: `text${ESC}`, expected: "text" },
  {
    name: "trailing CR of continued record",
    input: "ERROR 11-17 09:16:07 [serving.py:1325] Traceback:\r",
    expected: "ERROR 11-17 09:16:07 [serving.py:1325] Traceback:",
  },
  {
    name: "leading CR after prefix",
    input: `${PREFIX}\rLoading shards:  50% Completed | 2/4`,
    expected: "(EngineCore_DP0 pid=267) Loading shards:  50% Completed | 2/4",
  },
  {
    name: "redraws keep last state",
    input: "\rbar  0%|\rbar 50%|\rbar 100%|",
    expected: "bar 100%|",
  },
  {
    name: "redraws after prefix keep prefix",
    input: `${PREFIX}\rbar  0%|\rbar 100%|`,
    expected: "(EngineCore_DP0 pid=267) bar 100%|",
  },
  {
    name: "whitespace redraw ignored",
    input: "\rbar 100%|\r     \r",
    expected: "bar 100%|",
  },
  {
    name: "text before CR without later text",
    input: "done\r   ",
    expected: "done",
  },
  { name: "only CR", input: "\r", expected: "" },
  {
    name: "prefix and CR only",
    input: `${PREFIX}\r`,
    expected: "(EngineCore_DP0 pid=267) ",
  },
  {
    name: "tab, U+FFFD and block characters kept",
    input: "a\tb\uFFFDc █▏▎",
    expected: "a\tb\uFFFDc █▏▎",
  },
];

Deno.test("cleanLine table", async (t) => {
  for (const row of cases) {
    await t.step(row.name, () => {
      assert.equal(cleanLine(row.input), row.expected);
    });
  }
});

Deno.test("cleanLine leaves no ESC in fixture lines", async () => {
  const text = await Deno.readTextFile(
    new URL("../testdata/vllm/logs-startup.txt", import.meta.url),
  );
  for (const line of text.split("\n")) {
    const cleaned = cleanLine(line);
    assert.equal(cleaned.includes(ESC), false, JSON.stringify(line));
    assert.equal(cleaned.includes("\r"), false, JSON.stringify(line));
  }
});
