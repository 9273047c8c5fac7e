/**
 * The script of the report page, as text. It reads the JSON block
 * `#report-data`, draws one uPlot chart per `.chart` element, draws the alert
 * events of the chart's container (and model, when the alert names one) as
 * vertical lines, and draws every chart
 * again when the colour scheme changes. Colours come from the CSS custom
 * properties of the page, so light and dark mode are styled in CSS only.
 *
 * The array `window.reportCharts` lists every chart with its uPlot instance
 * (null when the chart has no data) and series colours, for inspection from
 * the browser console and for the browser test.
 *
 * The text is plain ES2020 for the browser and is not type-checked.
 *
 * @module
 */

/** Script run by the report page after uPlot's script. */
export const PAGE_SCRIPT = String.raw`"use strict";
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var charts = [];
  window.reportCharts = charts;

  function cssColor(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function significant(value, digits) {
    return String(Number(value.toPrecision(digits)));
  }

  function formatValue(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (unit === "s") {
      if (value !== 0 && Math.abs(value) < 1) return significant(value * 1000, 3) + " ms";
      return significant(value, 3) + " s";
    }
    if (unit === "%") return value.toFixed(1) + " %";
    if (unit === "tokens/s") return (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1)) + " tokens/s";
    return (Number.isInteger(value) ? String(value) : value.toFixed(1)) + " " + unit;
  }

  function formatTick(value, unit) {
    if (unit === "s") {
      if (value !== 0 && Math.abs(value) < 1) return significant(value * 1000, 3) + " ms";
      return significant(value, 3) + " s";
    }
    if (Math.abs(value) >= 1e6) return significant(value / 1e6, 3) + "M";
    if (Math.abs(value) >= 1e3) return significant(value / 1e3, 3) + "k";
    return significant(value, 3);
  }

  function pad(number) {
    return String(number).padStart(2, "0");
  }

  // Tick labels in UTC: the time, and the date under the first tick of each day.
  function timeTicks(u, splits, axisIndex, space, increment) {
    var previousDay = null;
    return splits.map(function (seconds) {
      var date = new Date(seconds * 1000);
      var day = date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate());
      if (increment >= 86400) return day;
      var time = pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes());
      if (increment < 60) time += ":" + pad(date.getUTCSeconds());
      var label = day === previousDay ? time : time + "\n" + day;
      previousDay = day;
      return label;
    });
  }

  function alertPlugin(events) {
    return {
      hooks: {
        draw: [function (u) {
          if (events.length === 0) return;
          var box = u.bbox;
          var ratio = window.devicePixelRatio || 1;
          var ctx = u.ctx;
          ctx.save();
          ctx.lineWidth = 2 * ratio;
          ctx.setLineDash([5 * ratio, 4 * ratio]);
          events.forEach(function (event) {
            var x = u.valToPos(event.timestampMs / 1000, "x", true);
            if (x < box.left || x > box.left + box.width) return;
            ctx.strokeStyle = cssColor(event.state === "resolved" ? "--resolved" : "--firing");
            ctx.beginPath();
            ctx.moveTo(x, box.top);
            ctx.lineTo(x, box.top + box.height);
            ctx.stroke();
          });
          ctx.restore();
        }],
      },
    };
  }

  function scaleRange(unit) {
    if (unit === "%") return function () { return [0, 100]; };
    return function (u, min, max) {
      if (max === null || !(max > 0)) return [0, 1];
      return [Math.min(0, min), max * 1.08];
    };
  }

  // One y axis per unit: the first on the left with grid lines, a second on the right.
  function axesFor(units) {
    var text = cssColor("--text");
    var grid = cssColor("--grid");
    var axes = [{
      stroke: text,
      space: 70,
      values: timeTicks,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
    }];
    units.forEach(function (unit, i) {
      axes.push({
        scale: unit,
        side: i === 0 ? 3 : 1,
        label: unit === "s" ? "" : unit,
        labelSize: unit === "s" ? 0 : 20,
        size: 62,
        stroke: text,
        grid: { show: i === 0, stroke: grid, width: 1 },
        ticks: { stroke: grid, width: 1 },
        values: function (u, splits) {
          return splits.map(function (v) { return v === null ? "" : formatTick(v, unit); });
        },
      });
    });
    return axes;
  }

  function seriesFor(chart, colors) {
    var series = [{ label: "time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }];
    chart.series.forEach(function (entry, i) {
      series.push({
        label: entry.label,
        scale: entry.unit,
        stroke: colors[i],
        fill: chart.series.length === 1 ? colors[i] + "26" : undefined,
        width: 1.5,
        spanGaps: false,
        value: function (u, v) { return formatValue(v, entry.unit); },
      });
    });
    return series;
  }

  function chartOptions(chart, element, events, syncKey) {
    var units = [];
    chart.series.forEach(function (series) {
      if (units.indexOf(series.unit) < 0) units.push(series.unit);
    });
    var scales = { x: { time: true } };
    units.forEach(function (unit) { scales[unit] = { range: scaleRange(unit) }; });
    var colors = chart.series.map(function (_, i) { return cssColor("--series-" + ((i % 4) + 1)); });

    return {
      options: {
        width: Math.max(element.clientWidth, 240),
        height: 220,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        scales: scales,
        axes: axesFor(units),
        series: seriesFor(chart, colors),
        legend: { live: true },
        // Charts of one container share the cursor, so hovering one shows
        // the values of all of them at that time.
        cursor: { points: { size: 7 }, sync: { key: syncKey } },
        plugins: [alertPlugin(events)],
      },
      colors: colors,
    };
  }

  function hasData(chart) {
    return chart.series.some(function (series) {
      return series.values.some(function (v) { return v !== null; });
    });
  }

  function drawAll() {
    charts.forEach(function (entry) { if (entry.plot !== null) entry.plot.destroy(); });
    charts.length = 0;
    data.containers.forEach(function (container, containerIndex) {
      var times = container.timestampsMs.map(function (ms) { return ms / 1000; });
      var containerEvents = data.alerts.filter(function (event) {
        return event.container === null || event.container === container.container;
      });
      container.charts.forEach(function (chart) {
        var element = document.getElementById(chart.id);
        if (element === null) return;
        var target = element.querySelector(".plot");
        target.textContent = "";
        if (!hasData(chart)) {
          var empty = document.createElement("p");
          empty.className = "empty";
          empty.textContent = "no data in this window";
          target.appendChild(empty);
          charts.push({ id: chart.id, title: chart.title, plot: null, colors: [] });
          return;
        }
        // An alert with a model_name label marks that model's charts only;
        // the scrape health chart (model null) shows every alert of its container.
        var events = containerEvents.filter(function (event) {
          var model = event.labels ? event.labels.model_name : undefined;
          return chart.model === null || model === undefined || model === chart.model;
        });
        var built = chartOptions(chart, target, events, "container-" + containerIndex);
        var values = [times].concat(chart.series.map(function (series) { return series.values; }));
        var plot = new uPlot(built.options, values, target);
        charts.push({ id: chart.id, title: chart.title, plot: plot, colors: built.colors });
      });
    });
  }

  drawAll();

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      charts.forEach(function (entry) {
        if (entry.plot === null) return;
        var width = Math.max(entry.plot.root.parentElement.clientWidth, 240);
        entry.plot.setSize({ width: width, height: 220 });
      });
    }, 100);
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawAll);
})();
`;
