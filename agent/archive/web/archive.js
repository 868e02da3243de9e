// Sorting and filtering for the archive's paper tables. Vanilla JS, works from file://.
// All behaviour lives here, bound with addEventListener: the pages have no inline script or
// handler, so they run under a Content-Security-Policy of script-src 'self'.
(function () {
  "use strict";

  function setup(table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var state = { key: "score", dir: -1 }; // rows arrive ranked by score, best first

    function value(row, key) {
      if (key === "score" || key === "human") {
        var s = parseFloat(row.dataset[key]);
        return isNaN(s) ? -Infinity : s;
      }
      return row.dataset.date || "";
    }

    function renumber() {
      var n = 0;
      rows.forEach(function (r) {
        if (!r.hidden) { n += 1; r.querySelector(".rank").textContent = String(n); }
      });
      var shown = document.getElementById("shown");
      if (shown && table.id === "papers") shown.textContent = n + " of " + rows.length + " shown";
    }

    function sortBy(key) {
      state.dir = state.key === key ? -state.dir : -1; // first click: highest score / newest first
      state.key = key;
      rows.sort(function (a, b) {
        var x = value(a, key), y = value(b, key);
        var c = x < y ? -1 : x > y ? 1 : 0;
        if (c === 0) c = a.dataset.date < b.dataset.date ? -1 : a.dataset.date > b.dataset.date ? 1 : 0;
        return c * state.dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
      var th = table.querySelector('button.sort[data-key="' + key + '"]').parentNode;
      th.setAttribute("aria-sort", state.dir < 0 ? "descending" : "ascending");
      renumber();
    }

    table.querySelectorAll("button.sort").forEach(function (b) {
      b.addEventListener("click", function () { sortBy(b.dataset.key); });
    });
    return { rows: rows, renumber: renumber };
  }

  function field(id) { var el = document.getElementById(id); return el ? el.value : ""; }

  // Writing back needs `archive serve`: it fills this token in; from disk it stays empty.
  var tokenTag = document.querySelector('meta[name="ai-scientist-token"]');
  var token = tokenTag ? tokenTag.content : "";

  var rateForm = document.getElementById("rate-form");
  if (rateForm && token) {
    rateForm.hidden = false;
    document.getElementById("rate-offline").hidden = true;
    rateForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var mark = rateForm.querySelector('input[name="mark"]:checked');
      var status = document.getElementById("rate-status");
      status.textContent = "saving…";
      fetch("../api/rate", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-AI-Scientist-Token": token },
        body: JSON.stringify({
          paper_id: rateForm.dataset.paper,
          score: parseInt(document.getElementById("rate-score").value, 10),
          note: document.getElementById("rate-note").value,
          mark: mark && mark.value ? mark.value : null
        })
      }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (!res.ok) { status.textContent = "not saved: " + (res.body.error || "refused"); return; }
          var v = res.body.verdict;
          var now = document.getElementById("verdict-now");
          now.textContent = v.score + "/10" + (v.mark ? " · " + v.mark : "") + (v.note ? " · " + v.note : "");
          status.textContent = "saved";
        })
        .catch(function () { status.textContent = "not saved: the server did not answer"; });
    });
  }

  var compareBar = document.getElementById("compare-bar");
  if (compareBar && token) {
    var picks = Array.prototype.slice.call(document.querySelectorAll("input.compare-pick"));
    picks.forEach(function (p) {
      p.parentNode.hidden = false;
      p.addEventListener("change", function () {
        var chosen = picks.filter(function (q) { return q.checked; }).map(function (q) { return q.value; });
        compareBar.hidden = chosen.length !== 2;
        if (chosen.length === 2) {
          document.getElementById("compare-link").href = "compare.html?a=" + encodeURIComponent(chosen[0]) +
            "&b=" + encodeURIComponent(chosen[1]);
        }
      });
    });
  }

  var main = document.getElementById("papers");
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.papers"))
    .filter(function (t) { return t.querySelector("button.sort"); })
    .map(setup);
  if (!main) return;
  var list = tables[0];

  function applyFilters() {
    var template = field("f-template"), decision = field("f-decision");
    var from = field("f-from"), to = field("f-to"), q = field("f-q").trim().toLowerCase();
    list.rows.forEach(function (r) {
      var day = (r.dataset.date || "").slice(0, 10);
      r.hidden = Boolean(
        (template && r.dataset.template !== template) ||
        (decision && r.dataset.decision !== decision) ||
        (from && day < from) || (to && day > to) ||
        (q && r.dataset.search.indexOf(q) < 0)
      );
    });
    list.renumber();
  }

  var form = document.getElementById("filters");
  if (form) form.addEventListener("submit", function (e) { e.preventDefault(); }); // filtering is live

  ["f-template", "f-decision", "f-from", "f-to", "f-q"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("input", applyFilters); el.addEventListener("change", applyFilters); }
  });
})();

// The search tree of a paper page: clicking a node shows its plan, diff, metric and log.
(function () {
  "use strict";
  var tree = document.querySelector(".search-tree");
  if (!tree) return;
  tree.addEventListener("click", function (e) {
    var button = e.target.closest("button.node");
    if (!button) return;
    document.querySelectorAll(".node-detail").forEach(function (d) {
      d.hidden = d.id !== "node-" + button.dataset.node;
    });
    tree.querySelectorAll("button.node").forEach(function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
  });
})();
