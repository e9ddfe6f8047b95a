// The diagram editor: show which element the side panel is editing.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var node = event.target.closest && event.target.closest("svg.diagram .node");
    if (!node) return;
    document.querySelectorAll("svg.diagram .node.selected").forEach(function (n) { n.classList.remove("selected"); });
    node.classList.add("selected");
  });
  document.addEventListener("keydown", function (event) {
    var node = event.target.closest && event.target.closest("svg.diagram .node");
    if (node && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); htmx.trigger(node, "click"); }
  });
})();
