/**
 * Renders {@linkcode ReportData} as one self-contained HTML file: styles,
 * uPlot, the page script and the chart data are all inline, and a Content
 * Security Policy forbids the page any network request, so the file opens
 * offline and shows the same thing everywhere.
 *
 * @module
 */
import { NO_MODEL, type QuantileFigure } from "../metrics/stats.ts";
import type { ModelStats } from "../metrics/stats.ts";
import { PAGE_SCRIPT } from "./page_script.ts";
import type {
  ChartData,
  ContainerReport,
  ReportAlertEvent,
  ReportData,
} from "./report_data.ts";
import {
  UPLOT_CSS,
  UPLOT_JS,
  UPLOT_LICENSE,
  UPLOT_VERSION,
} from "./vendor/uplot.ts";

/**
 * Allows inline scripts and styles and nothing else: no fetch, image, font
 * or frame from anywhere, not even from the file's own directory.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
  "base-uri 'none'; form-action 'none'";

const PAGE_CSS = `
:root {
  color-scheme: light dark;
  --background: #ffffff;
  --surface: #f6f8fa;
  --border: #d8dee4;
  --text: #1f2328;
  --muted: #59636e;
  --grid: #e3e6ea;
  --series-1: #2563eb;
  --series-2: #d97706;
  --series-3: #7c3aed;
  --series-4: #0d9488;
  --firing: #dc2626;
  --resolved: #16a34a;
}
@media (prefers-color-scheme: dark) {
  :root {
    --background: #0f1216;
    --surface: #171b21;
    --border: #2d333b;
    --text: #e6edf3;
    --muted: #9198a1;
    --grid: #2a3038;
    --series-1: #60a5fa;
    --series-2: #fbbf24;
    --series-3: #a78bfa;
    --series-4: #2dd4bf;
    --firing: #f87171;
    --resolved: #4ade80;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0 auto;
  max-width: 1500px;
  padding: 24px;
  background: var(--background);
  color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
}
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 4px; padding-top: 12px; border-top: 2px solid var(--border); }
h3 { font-size: 16px; margin: 24px 0 8px; }
h4 { font-size: 14px; margin: 0; }
code { font: 13px ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.meta, .note, .empty { color: var(--muted); }
.note { font-size: 12px; margin: 2px 0 6px; }
nav a { color: var(--series-1); margin-right: 12px; }
.figures {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
  gap: 8px;
  margin: 0 0 12px;
}
.figure { background: var(--surface); border: 1px solid var(--border); border-radius: 6px; padding: 6px 10px; }
.figure dt { color: var(--muted); font-size: 12px; }
.figure dd { margin: 0; font-variant-numeric: tabular-nums; }
.charts {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(440px, 1fr));
  gap: 12px;
}
.chart { margin: 0; min-width: 0; background: var(--surface); border: 1px solid var(--border); border-radius: 6px; padding: 8px; }
.plot { width: 100%; min-height: 40px; }
.empty { padding: 60px 0; text-align: center; }
.uplot { font-family: inherit; }
.u-legend { font-size: 12px; }
.u-legend .u-marker { border-radius: 2px; }
table { border-collapse: collapse; margin: 4px 0 12px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--border); }
th { color: var(--muted); font-weight: 600; }
.state-firing { color: var(--firing); font-weight: 600; }
.state-resolved { color: var(--resolved); font-weight: 600; }
.error { color: var(--firing); }
`;

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * Serialises data for a `<script type="application/json">` block. `<` is
 * written as `\u003c`, so no text in the data can close the element.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function formatDurationMs(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = seconds / 3600;
  if (hours < 48) return `${Number(hours.toFixed(1))} h`;
  return `${Number((hours / 24).toFixed(1))} d`;
}

function formatNumber(value: number, digits: number): string {
  if (Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function formatSeconds(value: number): string {
  if (Number.isNaN(value)) return "–";
  if (value < 1) return `${Number((value * 1000).toPrecision(3))} ms`;
  return `${Number(value.toPrecision(4))} s`;
}

function formatQuantile(figure: QuantileFigure): string {
  const text = formatSeconds(figure.value);
  return figure.atLeast ? `≥ ${text}` : text;
}

function figure(label: string, value: string): string {
  return `<div class="figure"><dt>${escapeHtml(label)}</dt><dd>${
    escapeHtml(value)
  }</dd></div>`;
}

function latencyFigure(
  label: string,
  stats: ModelStats["queueTimeSeconds"],
  countUnit: string,
): string {
  if (!(stats.count > 0)) {
    return figure(
      label,
      Number.isNaN(stats.count) ? "no data" : `no ${countUnit}`,
    );
  }
  return figure(
    label,
    `p50 ${formatQuantile(stats.p50)} · p95 ${
      formatQuantile(stats.p95)
    } · p99 ${formatQuantile(stats.p99)} (${
      formatNumber(stats.count, 0)
    } ${countUnit})`,
  );
}

function modelFigures(stats: ModelStats): string {
  const finished = Object.entries(stats.finishedRequestsByReason)
    .map(([reason, count]) => `${reason} ${formatNumber(count, 0)}`)
    .join(", ");
  const gauge = (
    avg: number,
    max: number,
    unit: string,
    digits: number,
  ): string =>
    `avg ${formatNumber(avg, digits)}${unit} · max ${
      formatNumber(max, digits)
    }${unit}`;
  return `<dl class="figures">${
    [
      figure(
        "KV-cache usage",
        gauge(
          stats.kvCacheUsagePercent.avg,
          stats.kvCacheUsagePercent.max,
          " %",
          1,
        ),
      ),
      figure(
        "Running requests",
        gauge(stats.runningRequests.avg, stats.runningRequests.max, "", 1),
      ),
      figure(
        "Waiting requests",
        gauge(stats.waitingRequests.avg, stats.waitingRequests.max, "", 1),
      ),
      figure(
        "Generation tokens/s",
        gauge(
          stats.generationTokensPerSecond.avg,
          stats.generationTokensPerSecond.max,
          "",
          1,
        ),
      ),
      figure(
        "Prompt tokens/s",
        gauge(
          stats.promptTokensPerSecond.avg,
          stats.promptTokensPerSecond.max,
          "",
          1,
        ),
      ),
      latencyFigure("Queue time", stats.queueTimeSeconds, "requests"),
      latencyFigure(
        "Time to first token",
        stats.timeToFirstTokenSeconds,
        "requests",
      ),
      latencyFigure("End-to-end latency", stats.e2eLatencySeconds, "requests"),
      latencyFigure(
        "Inter-token latency",
        stats.interTokenLatencySeconds,
        "tokens",
      ),
      figure("Preemptions", formatNumber(stats.preemptions, 0)),
      figure("Finished requests", finished === "" ? "–" : finished),
    ].join("")
  }</dl>`;
}

function chartFigure(chart: ChartData): string {
  return `<figure class="chart" id="${escapeHtml(chart.id)}"><figcaption><h4>${
    escapeHtml(chart.title)
  }</h4><p class="note">${
    escapeHtml(chart.note)
  }</p></figcaption><div class="plot"></div></figure>`;
}

function alertRow(event: ReportAlertEvent): string {
  const stateClass = /^[a-z]+$/.test(event.state)
    ? ` class="state-${event.state}"`
    : "";
  const labels = Object.entries(event.labels)
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
  const cells = [
    isoTime(event.timestampMs),
    escapeHtml(event.container ?? "(any)"),
    `<code>${escapeHtml(event.alert)}</code>`,
    escapeHtml(event.state),
    event.value === null ? "–" : escapeHtml(String(event.value)),
    event.threshold === null ? "–" : escapeHtml(String(event.threshold)),
    event.condition === null
      ? "–"
      : `<code>${escapeHtml(event.condition)}</code>`,
    labels === "" ? "–" : escapeHtml(labels),
  ];
  return `<tr>${
    cells.map((cell, i) =>
      i === 3 ? `<td${stateClass}>${cell}</td>` : `<td>${cell}</td>`
    ).join("")
  }</tr>`;
}

function alertTable(events: readonly ReportAlertEvent[]): string {
  const header = [
    "time (UTC)",
    "container",
    "alert",
    "state",
    "value",
    "threshold",
    "condition",
    "labels",
  ].map((name) => `<th>${name}</th>`).join("");
  return `<table><thead><tr>${header}</tr></thead><tbody>${
    events.map(alertRow).join("")
  }</tbody></table>`;
}

function alertsSection(data: ReportData): string {
  const log = data.alerts;
  if (log === null) {
    return `<h2>Alerts</h2><p class="meta">No alerts.log was read; pass --alerts-log FILE, or --config with log_capture.output_dir set.</p>`;
  }
  const invalid = log.invalidLines === 0
    ? ""
    : ` ${log.invalidLines} line(s) were not valid alert events and were skipped.`;
  const source = `From <code>${escapeHtml(log.path)}</code>.${invalid}`;
  if (log.events.length === 0) {
    return `<h2>Alerts</h2><p class="meta">No alert events in this window. ${source}</p>`;
  }
  return `<h2>Alerts</h2><p class="meta">${log.events.length} event(s), drawn as dashed vertical lines in their table colours on the charts of their container, and of their model when the alert has a model_name label. ${source}</p>${
    alertTable(log.events)
  }`;
}

function containerSection(entry: ContainerReport, index: number): string {
  const health = entry.stats.scrapeHealth;
  const points = entry.bucketWidthMs === null
    ? "one chart point per scrape"
    : `one chart point per ${
      formatDurationMs(entry.bucketWidthMs)
    } time bucket (${entry.scrapeCount} scrapes)`;
  const parts: string[] = [
    `<section class="container" id="container-${index}">`,
    `<h2>Container <code>${escapeHtml(entry.container)}</code></h2>`,
    `<p class="meta">${health.scrapes} scrapes (up ${health.up}, down ${health.down}), scrape duration avg ${
      formatSeconds(health.avgDurationSeconds)
    }, max ${
      formatSeconds(health.maxDurationSeconds)
    }, parse errors ${health.parseErrors}; ${points}.</p>`,
  ];
  if (health.lastError !== null) {
    parts.push(
      `<p class="error">Last scrape error: ${escapeHtml(health.lastError)}</p>`,
    );
  }
  if (entry.scrapeCount === 0) {
    parts.push(`<p class="meta">No scrapes in this window.</p></section>`);
    return parts.join("\n");
  }
  parts.push(`<div class="charts">${chartFigure(entry.healthChart)}</div>`);
  if (entry.models.length === 0) {
    parts.push(`<p class="meta">No vLLM samples in this window.</p>`);
  }
  for (const model of entry.models) {
    const stats = entry.stats.models.find((candidate) =>
      candidate.model === model.model
    );
    const name = model.model === NO_MODEL
      ? "(no model_name label)"
      : model.model;
    const engines = model.engines.length === 0
      ? ""
      : ` <span class="meta">engine ${
        escapeHtml(model.engines.join(", "))
      }</span>`;
    parts.push(`<h3>Model <code>${escapeHtml(name)}</code>${engines}</h3>`);
    if (stats !== undefined) parts.push(modelFigures(stats));
    parts.push(
      `<div class="charts">${model.charts.map(chartFigure).join("")}</div>`,
    );
  }
  parts.push("</section>");
  return parts.join("\n");
}

/** Selects the part of the report data that the page script reads. */
function pagePayload(data: ReportData): unknown {
  return {
    containers: data.containers.map((entry) => ({
      container: entry.container,
      timestampsMs: entry.timestampsMs,
      charts: [
        { model: null, chart: entry.healthChart },
        ...entry.models.flatMap((model) =>
          model.charts.map((chart) => ({ model: model.model, chart }))
        ),
      ].map(({ model, chart }) => ({
        id: chart.id,
        title: chart.title,
        model,
        series: chart.series,
      })),
    })),
    alerts: data.alerts?.events ?? [],
  };
}

/** Renders the report as one HTML document with everything inline. */
export function renderReportHtml(data: ReportData): string {
  const window = data.window;
  const navigation = data.containers.length > 1
    ? `<nav>${
      data.containers.map((entry, i) =>
        `<a href="#container-${i}">${escapeHtml(entry.container)}</a>`
      ).join("")
    }</nav>`
    : "";
  const licenseComment = UPLOT_LICENSE.replace(/\*\//g, "* /");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(data.title)}</title>
<style>${UPLOT_CSS}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(data.title)}</h1>
<p class="meta">Window ${isoTime(window.startMs)} to ${
    isoTime(window.endMs)
  } (${formatDurationMs(window.endMs - window.startMs)}), generated ${
    isoTime(data.generatedAtMs)
  } by horos_vllm_logger. Times are UTC. Hover a chart for the values at that time.</p>
${navigation}
</header>
<main>
${alertsSection(data)}
${
    data.containers.length === 0
      ? `<p class="meta">No containers with scrapes in the database.</p>`
      : data.containers.map(containerSection).join("\n")
  }
</main>
<script type="application/json" id="report-data">${
    jsonForScript(pagePayload(data))
  }</script>
<script>
/* uPlot ${UPLOT_VERSION}, a charting library by Leon Sorokin.
${licenseComment}
*/
${UPLOT_JS}
</script>
<script>
${PAGE_SCRIPT}
</script>
</body>
</html>
`;
}
