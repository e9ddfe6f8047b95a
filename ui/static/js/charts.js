// The dashboards' power charts, redrawn after each refresh: a site's (PV, base load, EV, grid
// import of the latest plan) and a group's (its import, the limit in force dashed, each site's).
(function () {
  "use strict";
  var charts = {};
  var SITE_SERIES = [
    { label: "PV", stroke: "#d9a400", key: "pv_kw" },
    { label: "Base load", stroke: "#7b4fb0", key: "base_load_kw" },
    { label: "EV", stroke: "#1763c6", key: "ev_kw" },
    { label: "Grid import", stroke: "#b3261e", key: "grid_import_kw" }
  ];

  function draw(boxId, dataId) {
    var box = document.getElementById(boxId);
    var node = document.getElementById(dataId);
    if (charts[boxId]) { charts[boxId].destroy(); charts[boxId] = null; }
    if (!box || !node || typeof uPlot === "undefined") return;
    var data;
    try { data = JSON.parse(node.textContent); } catch (e) { return; }
    if (!data || !data.t.length) return;
    // a group's chart names its series; a site's has fixed ones
    var lines = data.series || SITE_SERIES.map(function (s) {
      return { label: s.label, stroke: s.stroke, values: data[s.key] };
    });
    charts[boxId] = new uPlot({
      width: Math.max(320, box.clientWidth || 800),
      height: 240,
      scales: { y: { range: function (u, min, max) { return [Math.min(0, min), Math.max(1, max * 1.1)]; } } },
      axes: [{}, { label: "kW", size: 50 }],
      series: [{}].concat(lines.map(function (s) {
        return { label: s.label, stroke: s.stroke, width: 2, dash: s.dash ? [6, 4] : undefined,
                 paths: uPlot.paths.stepped({ align: 1 }) };
      }))
    }, [data.t].concat(lines.map(function (s) { return s.values; })), box);
  }

  function drawAll() {
    draw("site-chart", "site-chart-data");
    draw("group-chart", "group-chart-data");
  }

  document.addEventListener("htmx:afterSettle", drawAll);
  document.addEventListener("DOMContentLoaded", drawAll);
})();
