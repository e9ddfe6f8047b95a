// The dashboard's power chart (PV, base load, EV, grid import of the latest plan), redrawn after each refresh.
(function () {
  "use strict";
  var chart = null;

  function draw() {
    var box = document.getElementById("site-chart");
    var node = document.getElementById("site-chart-data");
    if (!box || !node || typeof uPlot === "undefined") return;
    var data;
    try { data = JSON.parse(node.textContent); } catch (e) { return; }
    if (chart) { chart.destroy(); chart = null; }
    if (!data || !data.t.length) return;
    chart = new uPlot({
      width: Math.max(320, box.clientWidth || 800),
      height: 240,
      scales: { y: { range: function (u, min, max) { return [Math.min(0, min), Math.max(1, max * 1.1)]; } } },
      axes: [{}, { label: "kW", size: 50 }],
      series: [
        {},
        { label: "PV", stroke: "#d9a400", width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
        { label: "Base load", stroke: "#7b4fb0", width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
        { label: "EV", stroke: "#1763c6", width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
        { label: "Grid import", stroke: "#b3261e", width: 2, paths: uPlot.paths.stepped({ align: 1 }) }
      ]
    }, [data.t, data.pv_kw, data.base_load_kw, data.ev_kw, data.grid_import_kw], box);
  }

  document.addEventListener("htmx:afterSettle", draw);
  document.addEventListener("DOMContentLoaded", draw);
})();
