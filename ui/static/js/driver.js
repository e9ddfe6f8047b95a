// The driver's planned curve: redrawn with uPlot whenever the polled status brings a new plan.
(function () {
  "use strict";
  var chart = null;

  function readPlan() {
    var node = document.getElementById("plan-data");
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function series(plan) {
    var t = plan.t.slice(), p = plan.power_kw.slice();
    var end = plan.departure || (t.length ? t[t.length - 1] + plan.step_s : null);
    if (t.length && end && end > t[t.length - 1]) { t.push(end); p.push(p[p.length - 1]); }
    var energy = [], e = plan.delivered_kwh || 0;
    for (var i = 0; i < t.length; i++) {
      energy.push(Math.round(e * 100) / 100);
      if (i + 1 < t.length) e += p[i] * (t[i + 1] - t[i]) / 3600;
    }
    return [t, p, energy];
  }

  function draw() {
    var box = document.getElementById("plan-chart");
    var plan = readPlan();
    if (!box || typeof uPlot === "undefined") return;
    if (!plan || !plan.t.length) {
      if (chart) { chart.destroy(); chart = null; }
      box.dataset.planId = "";
      return;
    }
    var key = plan.plan_id + ":" + plan.departure;
    if (chart && box.dataset.drawn === key) return;
    if (chart) { chart.destroy(); chart = null; }
    var width = Math.max(260, box.clientWidth || 320);
    var opts = {
      width: width,
      height: 210,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), plan.tz); },
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { kw: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } },
                kwh: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [
        {},
        { scale: "kw", label: "kW", size: 44 },
        { scale: "kwh", label: "kWh", side: 1, grid: { show: false }, size: 44 }
      ],
      series: [
        {},
        { label: "Power", scale: "kw", stroke: "#0b6bcb", width: 2, fill: "rgba(11,107,203,0.15)",
          paths: uPlot.paths.stepped({ align: 1 }) },
        { label: "Energy", scale: "kwh", stroke: "#16794a", width: 2, dash: [6, 4] }
      ]
    };
    chart = new uPlot(opts, series(plan), box);
    box.dataset.drawn = key;
    box.dataset.planId = String(plan.plan_id);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () {
    var box = document.getElementById("plan-chart");
    if (chart && box) chart.setSize({ width: Math.max(260, box.clientWidth), height: 210 });
  });
})();
