// The diagram editor: fit, zoom and pan the diagram; move an element onto a new parent by
// dragging it (pointer events: HTML drag-and-drop does not work on SVG) or by keyboard; show
// which element the side panel is editing. #diagram's content is swapped by htmx on every
// `site-changed`, so all listeners live on #diagram itself or the document, and the state
// (the user's zoom, the selection, the focused node) is put back after each swap.
(function () {
  "use strict";
  var DRAG_START_PX = 5; // a shorter press-and-move is a click
  var ZOOM_STEP = 1.25;
  var WHEEL_ZOOM_PER_PX = 1.0015;
  var MIN_VIEW_W = 160; // SVG units: about one box across the panel
  var MAX_VIEW_OVER_FIT = 4;

  var host = document.getElementById("diagram");
  var statusLine = document.getElementById("diagram-status");
  if (!host) return;

  var view = null; // the user's viewBox [x, y, w, h]; null while the diagram is fitted
  var gesture = null; // a press on the diagram: a pan, or maybe a drag of a node
  var suppressClick = false;
  var marked = null; // testid of the node picked up with "m"
  var selected = null; // testid of the node whose panel is open
  var refocus = null; // testid to focus once the diagram is swapped

  function svg() { return host.querySelector("svg.diagram"); }
  function box(s, attr) { return s.getAttribute(attr).split(/[\s,]+/).map(Number); }
  function applyView() {
    var s = svg();
    if (s) s.setAttribute("viewBox", (view || box(s, "data-fit-box")).join(" "));
  }
  function say(text, refused) {
    if (!statusLine) return;
    statusLine.textContent = text;
    statusLine.classList.toggle("refused", !!refused);
  }
  function testid(node) { return node.getAttribute("data-testid"); }
  function byTestid(id) {
    return id ? host.querySelector('svg.diagram .node[data-testid="' + CSS.escape(id) + '"]') : null;
  }
  function nodes() { return Array.prototype.slice.call(host.querySelectorAll("svg.diagram .node")); }
  function name(node) { return node.getAttribute("data-kind").replace("_", " ") + " " + node.getAttribute("data-id"); }
  function children(node) {
    var id = testid(node);
    return nodes().filter(function (n) { return n.getAttribute("data-parent") === id; });
  }
  function parentOf(node) { return byTestid(node.getAttribute("data-parent")); }

  // ---- fit, zoom, pan ---------------------------------------------------------------------

  function zoom(factor, cx, cy) {
    var s = svg();
    if (!s) return;
    var b = box(s, "viewBox");
    var fit = box(s, "data-fit-box");
    var w = b[2] / factor;
    if ((factor > 1 && w < MIN_VIEW_W) || (factor < 1 && w > fit[2] * MAX_VIEW_OVER_FIT)) return;
    if (cx === undefined) { cx = b[0] + b[2] / 2; cy = b[1] + b[3] / 2; }
    view = [cx - (cx - b[0]) / factor, cy - (cy - b[1]) / factor, w, b[3] / factor];
    applyView();
  }
  function toSvg(s, clientX, clientY) {
    var point = s.createSVGPoint();
    point.x = clientX;
    point.y = clientY;
    return point.matrixTransform(s.getScreenCTM().inverse());
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-zoom]");
    if (!button) return;
    var how = button.getAttribute("data-zoom");
    if (how === "fit") { view = null; applyView(); say("Whole diagram shown."); }
    else zoom(how === "in" ? ZOOM_STEP : 1 / ZOOM_STEP);
  });
  host.addEventListener("wheel", function (event) {
    var s = svg();
    if (!s || !s.contains(event.target)) return;
    event.preventDefault();
    var p = toSvg(s, event.clientX, event.clientY);
    var px = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    zoom(Math.pow(WHEEL_ZOOM_PER_PX, -px), p.x, p.y);
  }, { passive: false });

  // ---- drag to re-parent (and pan on the background) ---------------------------------------

  function clearTargets() {
    nodes().forEach(function (n) { n.classList.remove("drop-target", "drop-refused"); });
  }
  // Why `source` cannot go under `target` ("" if it can, null if it is there already).
  function refusal(source, target) {
    if (!target.hasAttribute("data-drop-target")) return "drop onto a protection";
    if (target === source) return "a protection cannot be its own parent";
    if (target === parentOf(source)) return null;
    var kind = source.getAttribute("data-kind");
    if (target.getAttribute("data-kind") === "grid" && kind !== "protection") {
      return "a " + kind.replace("_", " ") + " hangs under a protection, not on the grid itself";
    }
    for (var n = parentOf(target); n; n = parentOf(n)) {
      if (n === source) return target.getAttribute("data-id") + " is fed by " + source.getAttribute("data-id");
    }
    return "";
  }
  function markTarget(source, target) {
    clearTargets();
    if (!target) { say("Moving " + name(source) + ": drop it onto a protection."); return; }
    var why = refusal(source, target);
    if (why === null) { say(name(source) + " is already under " + target.getAttribute("data-id") + "."); return; }
    target.classList.add(why ? "drop-refused" : "drop-target");
    say(why ? name(source) + " cannot go under " + target.getAttribute("data-id") + ": " + why
            : "Drop to move " + name(source) + " under " + name(target) + ".", !!why);
  }
  function targetAt(clientX, clientY) {
    var hit = document.elementFromPoint(clientX, clientY);
    var node = hit && hit.closest && hit.closest("svg.diagram .node");
    return node && !node.classList.contains("ghost") ? node : null;
  }
  function translation(node) {
    var m = /translate\(\s*([-\d.]+)[ ,]+([-\d.]+)\s*\)/.exec(node.getAttribute("transform") || "");
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  }

  host.addEventListener("pointerdown", function (event) {
    var s = svg();
    if (event.button !== 0 || !s || !s.contains(event.target)) return;
    var node = event.target.closest(".node");
    gesture = {
      x: event.clientX, y: event.clientY, moved: false, node: node,
      drag: !!(node && node.hasAttribute("data-draggable")),
      box: box(s, "viewBox"), scale: s.getScreenCTM().a, target: null, ghost: null,
    };
  });
  window.addEventListener("pointermove", function (event) {
    if (!gesture) return;
    var dx = event.clientX - gesture.x, dy = event.clientY - gesture.y;
    if (!gesture.moved && Math.sqrt(dx * dx + dy * dy) < DRAG_START_PX) return;
    var s = svg();
    if (!s) { gesture = null; return; }
    if (!gesture.moved) {
      gesture.moved = true;
      if (gesture.drag) {
        var ghost = gesture.node.cloneNode(true);
        ["data-testid", "hx-get", "tabindex", "role", "aria-label", "data-draggable", "data-drop-target"]
          .forEach(function (a) { ghost.removeAttribute(a); });
        ghost.setAttribute("class", gesture.node.getAttribute("class") + " ghost");
        ghost.setAttribute("aria-hidden", "true");
        s.appendChild(ghost);
        gesture.ghost = ghost;
        gesture.origin = translation(gesture.node);
        gesture.node.classList.add("dragging");
      } else {
        host.querySelector(".diagram-view").classList.add("panning");
      }
    }
    event.preventDefault();
    if (gesture.drag) {
      var o = gesture.origin;
      gesture.ghost.setAttribute("transform", "translate(" + (o[0] + dx / gesture.scale) + "," + (o[1] + dy / gesture.scale) + ")");
      var target = targetAt(event.clientX, event.clientY);
      if (target === gesture.node) target = null;
      if (target !== gesture.target) { gesture.target = target; markTarget(gesture.node, target); }
    } else {
      var b = gesture.box;
      view = [b[0] - dx / gesture.scale, b[1] - dy / gesture.scale, b[2], b[3]];
      applyView();
    }
  });
  function endGesture(drop) {
    var g = gesture;
    gesture = null;
    if (!g || !g.moved) return;
    suppressClick = true;
    setTimeout(function () { suppressClick = false; }, 0);
    var panning = host.querySelector(".diagram-view.panning");
    if (panning) panning.classList.remove("panning");
    if (!g.drag) return;
    if (g.ghost) g.ghost.remove();
    g.node.classList.remove("dragging");
    clearTargets();
    if (!drop || !g.target) { say(drop ? "Not moved: drop onto a protection." : "Move cancelled."); return; }
    if (refusal(g.node, g.target) === null) { say(name(g.node) + " is already there: nothing to change."); return; }
    postMove(g.node, g.target, false);
  }
  window.addEventListener("pointerup", function () { endGesture(true); });
  window.addEventListener("pointercancel", function () { endGesture(false); });
  document.addEventListener("click", function (event) {
    if (suppressClick && host.contains(event.target)) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; }
    catch (e) { return ""; }
  }
  function postMove(source, target, byKeyboard) {
    var form = new URLSearchParams();
    form.set("kind", source.getAttribute("data-kind"));
    form.set("id", source.getAttribute("data-id"));
    form.set("to_kind", target.getAttribute("data-kind"));
    form.set("to", target.getAttribute("data-kind") === "grid" ? "" : target.getAttribute("data-id"));
    if (byKeyboard) refocus = testid(source);
    selected = testid(source);
    say("Moving " + name(source) + " under " + name(target) + "…");
    fetch(host.getAttribute("data-move-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    }).then(function (reply) {
      return reply.text().then(function (html) { showReply(reply, html); });
    }).catch(function () { say("Not moved: the server could not be reached.", true); });
  }
  function showReply(reply, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var body = doc.querySelector(".panel-body");
    var panel = document.getElementById("panel");
    if (body && panel) {
      panel.innerHTML = html;
      htmx.process(panel);
    }
    var message = doc.querySelector('[data-testid="panel-message"]');
    var problems = doc.querySelectorAll('[data-testid="panel-problems"] li');
    if (reply.ok) {
      say(message ? message.textContent : "Moved.");
      if (reply.headers.get("HX-Trigger")) htmx.trigger(document.body, "site-changed");
      return;
    }
    var why = Array.prototype.map.call(problems, function (li) { return li.textContent; }).join("; ");
    if (!why) {
      var error = doc.querySelector('[data-testid="error"] p');
      why = error ? error.textContent : "the server answered " + reply.status;
    }
    say("Not moved, nothing was stored: " + why, true);
  }

  // ---- keyboard ----------------------------------------------------------------------------

  function focusNode(node) { if (node) node.focus(); }
  function sibling(node, step) {
    var family = node.getAttribute("data-parent");
    var row = nodes().filter(function (n) { return n.getAttribute("data-parent") === family; });
    return row[row.indexOf(node) + step] || null;
  }
  function mark(node) {
    unmark();
    marked = testid(node);
    node.classList.add("move-source");
    say("Picked up " + name(node) + ": go to a protection and press M or Enter to move it there, Esc to cancel.");
  }
  function unmark() {
    var node = byTestid(marked);
    if (node) node.classList.remove("move-source");
    marked = null;
    clearTargets();
  }
  function drop(target) {
    var source = byTestid(marked);
    if (!source) { unmark(); return; }
    var why = refusal(source, target);
    if (why === null) { unmark(); say(name(source) + " is already under " + target.getAttribute("data-id") + ": nothing to change."); return; }
    if (why === "drop onto a protection") { say("Choose a protection to put " + name(source) + " under (Esc cancels).", true); return; }
    unmark();
    postMove(source, target, true);
  }
  host.addEventListener("keydown", function (event) {
    var node = event.target.closest && event.target.closest("svg.diagram .node");
    if (!node) return;
    var key = event.key;
    if (key === "ArrowUp") focusNode(parentOf(node));
    else if (key === "ArrowDown") focusNode(children(node)[0]);
    else if (key === "ArrowLeft") focusNode(sibling(node, -1));
    else if (key === "ArrowRight") focusNode(sibling(node, 1));
    else if (key === "m" || key === "M") {
      if (marked) drop(node);
      else if (node.hasAttribute("data-draggable")) mark(node);
      else say("A " + node.getAttribute("data-kind").replace("_", " ") + " cannot be moved" +
               (node.getAttribute("data-kind") === "connector" ? ": move its charge point." : "."), true);
    } else if (key === "Enter" || key === " ") {
      if (marked) drop(node);
      else openPanel(node);
    } else if (key === "Escape" && marked) { unmark(); say("Move cancelled."); }
    else return;
    event.preventDefault();
  });
  host.addEventListener("focusin", function (event) {
    var node = event.target.closest && event.target.closest("svg.diagram .node");
    var source = byTestid(marked);
    if (node && source && node !== source) markTarget(source, node);
  });

  // ---- selection, and the state put back after htmx swaps the diagram ----------------------

  function select(node) {
    nodes().forEach(function (n) { n.classList.remove("selected"); });
    node.classList.add("selected");
    selected = testid(node);
  }
  // A click or Enter asks for the panel here rather than through an hx-get on the node: htmx
  // binds a swapped-in node's hx-get only when the swap settles, and a key pressed or a click
  // made before that was lost.
  function openPanel(node) {
    select(node);
    htmx.ajax("GET", node.getAttribute("data-panel-url"), { source: node, target: "#panel", swap: "innerHTML" });
  }
  document.addEventListener("click", function (event) {
    var node = event.target.closest && event.target.closest("svg.diagram .node");
    if (node) openPanel(node);
  });
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target !== host) return;
    var active = document.activeElement;
    if (!refocus && active && host.contains(active) && active.classList.contains("node")) refocus = testid(active);
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== host) return;
    applyView();
    var chosen = byTestid(selected);
    if (chosen) chosen.classList.add("selected");
    var source = byTestid(marked);
    if (source) source.classList.add("move-source"); else marked = null;
    focusNode(byTestid(refocus));
    refocus = null;
  });
  applyView();
})();
