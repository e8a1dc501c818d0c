/**
 * The viewer page's own script and styles, inline in the page (nothing is fetched from elsewhere).
 * The same script renders the live viewer (data from the `api/…` routes beside the page, updates
 * from `api/events`) and a report (data embedded in the page, no requests at all). Text reaches
 * the page as text nodes only, never as markup.
 *
 * @internal
 */

/** The page's styles. */
export const styles = String.raw`
:root{--fg:#111;--muted:#666;--line:#e2e2e2;--bad:#b91c1c;--good:#15803d;--bg:#fff}
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:1rem;padding:1rem 1.5rem;border-bottom:1px solid var(--line)}
header h1{font-size:1.2rem;margin:0}#live{font-size:.8rem;color:var(--muted)}#live.on::before{content:"● ";color:var(--good)}#live.off::before{content:"● ";color:var(--bad)}
nav a{margin-right:.8rem;font-size:.85rem;color:#2563eb;text-decoration:none}
main{padding:0 1.5rem 3rem;max-width:1200px}section{margin-top:2rem}h2{font-size:1.05rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}
h3{font-size:.95rem;margin:1rem 0 .3rem}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border-bottom:1px solid var(--line);padding:.25rem .6rem;text-align:left;vertical-align:top}th{font-weight:600;white-space:nowrap}
th.sortable{cursor:pointer;user-select:none}th.sortable:hover{text-decoration:underline}
td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:var(--muted)}.bad{color:var(--bad)}.good{color:var(--good)}
.tier{font-size:.75rem;padding:0 .35rem;border-radius:.6rem;background:#eef}.tier.non_viewable{background:#fde68a}.tier.no_access{background:#fecaca}
.status-failed{color:var(--bad);font-weight:600}.status-running{color:#b45309}.status-completed{color:var(--good)}
.controls{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.5rem 0;font-size:.85rem}
.controls select,.controls input,.controls button,td button{font:inherit;font-size:.85rem}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.chart{border:1px solid var(--line);border-radius:6px;padding:.5rem}
.chart svg{display:block}.legend{font-size:.8rem}.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
.cell{max-width:28rem;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:.8rem}
.note{font-size:.85rem;color:var(--muted)}pre{white-space:pre-wrap}
`

/** The page's script. */
export const script = String.raw`
(function () {
  "use strict";
  var dataNode = document.getElementById("holdout-data");
  var embedded = dataNode === null ? null : JSON.parse(dataNode.textContent);
  // the routes are beside the page: at /, or under /view of the sidecar (also when asked as /view)
  var base = /\/$/.test(location.pathname) ? location.pathname : location.pathname + "/";
  var palette = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4d7c0f", "#be185d"];
  var state = { overview: null, run: null, rows: [], next: null, sort: { key: "sampleId", dir: 1 } };

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    setAll(node, attrs, children);
    return node;
  }
  function s(tag, attrs, children) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAll(node, attrs, children);
    return node;
  }
  function setAll(node, attrs, children) {
    if (attrs) for (var key in attrs) {
      if (attrs[key] === null || attrs[key] === undefined) continue;
      if (key === "onclick" || key === "onchange" || key === "oninput") node.addEventListener(key.slice(2), attrs[key]);
      else node.setAttribute(key, String(attrs[key]));
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
  }
  function clear(id) {
    var node = document.getElementById(id);
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }
  function pct(value) { return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + "%"; }
  function interval(i) { return i ? "[" + pct(i.lower) + ", " + pct(i.upper) + "]" : "–"; }
  function time(ms) { return ms === null ? "–" : new Date(ms).toISOString().replace("T", " ").slice(0, 19); }
  function splitName(x) { return x.datasetId + "/" + x.split; }
  function tier(t) { return h("span", { "class": "tier " + t }, [t]); }
  var colors = {};
  function color(candidate) {
    if (!(candidate in colors)) colors[candidate] = palette[Object.keys(colors).length % palette.length];
    return colors[candidate];
  }

  function request(path) {
    return fetch(base + path, { headers: { accept: "application/json" }, credentials: "same-origin" }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body && body.message ? body.message : "HTTP " + response.status);
        return body;
      });
    });
  }
  function matches(row, filter) {
    var failed = row.error !== null || row.evalError !== null;
    if (filter.status === "errors" && !failed) return false;
    if (filter.status === "wrong" && !(failed || (row.score === null ? 0 : row.score) < 1)) return false;
    if (filter.status === "right" && (failed || row.score !== 1)) return false;
    if (filter.text === "") return true;
    var needle = filter.text.toLowerCase();
    return [row.output, row.input, row.error, row.evalError, row.feedback].some(function (text) {
      return text !== null && text.toLowerCase().indexOf(needle) >= 0;
    });
  }
  var source = embedded !== null ? {
    overview: function () { return Promise.resolve(embedded.overview); },
    samples: function (runId, after, filter) {
      var page = embedded.samples[runId];
      if (!page) return Promise.reject(new Error("This report holds no samples of run " + runId + "."));
      return Promise.resolve({ samples: page.samples.filter(function (row) { return matches(row, filter); }), next: null, partial: page.next !== null });
    },
    compare: function (runA, runB) {
      var found = embedded.comparisons.filter(function (c) { return c.runA === runA && c.runB === runB; })[0] ||
        embedded.comparisons.filter(function (c) { return c.runA === runB && c.runB === runA; })[0];
      return found ? Promise.resolve(found) : Promise.reject(new Error("This report holds no comparison of these runs; holdout view compares any two."));
    }
  } : {
    overview: function () { return request("api/overview"); },
    samples: function (runId, after, filter) {
      var query = "limit=100&status=" + encodeURIComponent(filter.status) + "&text=" + encodeURIComponent(filter.text) +
        (after === null ? "" : "&after=" + after);
      return request("api/runs/" + encodeURIComponent(runId) + "/samples?" + query);
    },
    compare: function (runA, runB) {
      return request("api/compare?runA=" + encodeURIComponent(runA) + "&runB=" + encodeURIComponent(runB));
    }
  };

  // ---- charts
  function scale(from, to, range0, range1) {
    var span = to - from || 1;
    return function (value) { return range0 + (value - from) / span * (range1 - range0); };
  }
  function runsOverTime(runs) {
    var width = 520, height = 220, left = 44, right = 12, top = 12, bottom = 28;
    var times = runs.map(function (r) { return r.createdAt; });
    var t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    if (t1 - t0 < 1000) { t0 -= 1000; t1 += 1000; }
    var lows = runs.map(function (r) { return r.interval ? r.interval.lower : r.metrics.avgFilledScore; });
    var highs = runs.map(function (r) { return r.interval ? r.interval.upper : r.metrics.avgFilledScore; });
    var y0 = Math.min(0, Math.min.apply(null, lows)), y1 = Math.max(1, Math.max.apply(null, highs));
    var x = scale(t0, t1, left, width - right), y = scale(y0, y1, height - bottom, top);
    var svg = s("svg", { width: width, height: height, "class": "runs-over-time", role: "img", "aria-label": "mean score of each run over time" });
    [0, 0.5, 1].forEach(function (tick) {
      svg.appendChild(s("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), stroke: "#e5e5e5" }));
      svg.appendChild(s("text", { x: 4, y: y(tick) + 4, "font-size": 10 }, [tick * 100 + "%"]));
    });
    svg.appendChild(s("text", { x: left, y: height - 8, "font-size": 10 }, [time(t0)]));
    svg.appendChild(s("text", { x: width - right, y: height - 8, "font-size": 10, "text-anchor": "end" }, [time(t1)]));
    runs.forEach(function (run) {
      var cx = x(run.createdAt), mean = run.metrics.avgFilledScore, fill = color(run.candidateId);
      if (run.interval) svg.appendChild(s("line", { x1: cx, x2: cx, y1: y(run.interval.lower), y2: y(run.interval.upper), stroke: fill, "stroke-width": 1.5, "class": "whisker" }));
      svg.appendChild(s("circle", { cx: cx, cy: y(mean), r: 4, fill: run.status === "failed" ? "#fff" : fill, stroke: fill, "stroke-width": 2 }, [
        s("title", null, [run.candidateId + " " + run.status + ": " + pct(mean) + " " + interval(run.interval) + " at " + time(run.createdAt) + " (" + run.runId + ")"])
      ]));
    });
    return svg;
  }
  function burnDown(budget) {
    var width = 420, height = 140, left = 44, right = 12, top = 12, bottom = 24;
    var byRuns = budget.limits.runs !== null || budget.limits.samples === null;
    var limit = byRuns ? budget.limits.runs : budget.limits.samples;
    var pointsOf = function (p) { return limit === null ? (byRuns ? p.runsSpent : p.samplesSpent) : (byRuns ? p.runsLeft : p.samplesLeft); };
    var burn = budget.burn;
    var t0 = burn.length ? burn[0].at : state.overview.generatedAt - 60000;
    var t1 = Math.max(state.overview.generatedAt, t0 + 1000);
    var top0 = limit === null ? Math.max(1, burn.length ? pointsOf(burn[burn.length - 1]) : 1) : Math.max(1, limit);
    var x = scale(t0, t1, left, width - right), y = scale(0, top0, height - bottom, top);
    var svg = s("svg", { width: width, height: height, "class": "burndown", role: "img", "aria-label": "budget left over time for " + splitName(budget) });
    [0, top0].forEach(function (tick) {
      svg.appendChild(s("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), stroke: "#e5e5e5" }));
      svg.appendChild(s("text", { x: 4, y: y(tick) + 4, "font-size": 10 }, [String(tick)]));
    });
    var value = limit === null ? 0 : limit;
    var d = "M" + x(t0) + " " + y(value);
    burn.forEach(function (p) {
      d += "H" + x(p.at) + "V" + y(pointsOf(p));
      value = pointsOf(p);
    });
    d += "H" + x(t1);
    svg.appendChild(s("path", { d: d, fill: "none", stroke: limit === null ? "#9333ea" : "#16a34a", "stroke-width": 2 }));
    burn.forEach(function (p) {
      svg.appendChild(s("circle", { cx: x(p.at), cy: y(pointsOf(p)), r: 2.5, fill: "#111" }, [
        s("title", null, [time(p.at) + ": run " + p.runId + " charged " + p.samples + " samples"])
      ]));
    });
    svg.appendChild(s("text", { x: left, y: height - 6, "font-size": 10 }, [(limit === null ? (byRuns ? "runs spent" : "samples spent") : (byRuns ? "runs left" : "samples left")) + " since " + time(t0)]));
    return svg;
  }
  function scoreBar(score) {
    var width = 160, height = 16, x = scale(0, 1, 2, width - 2);
    var clamp = function (v) { return Math.max(0, Math.min(1, v)); };
    var svg = s("svg", { width: width, height: height, "class": "score-bar" });
    svg.appendChild(s("rect", { x: 2, y: 4, width: width - 4, height: 8, fill: "#f1f1f1" }));
    svg.appendChild(s("rect", { x: 2, y: 4, width: Math.max(1, x(clamp(score.mean)) - 2), height: 8, fill: color(score.candidateId) }));
    if (score.interval) svg.appendChild(s("path", { d: "M" + x(clamp(score.interval.lower)) + " 8H" + x(clamp(score.interval.upper)) + "M" + x(clamp(score.interval.lower)) + " 3V13M" + x(clamp(score.interval.upper)) + " 3V13", stroke: "#111", fill: "none", "class": "whisker" }));
    return svg;
  }

  // ---- views
  function renderRunsOverTime(o) {
    var root = clear("runs-over-time-body");
    var groups = {};
    o.runs.forEach(function (run) {
      if (run.metrics === null || run.metrics.numSamples === 0) return;
      // subset runs on a chart of their own: a subset's mean is not the split's
      var key = splitName(run) + (run.admin ? " (verifier)" : "") + (run.subset ? " (subsets)" : "");
      (groups[key] = groups[key] || []).push(run);
    });
    var keys = Object.keys(groups);
    if (keys.length === 0) { root.appendChild(h("p", { "class": "note" }, ["No runs with results yet."])); return; }
    var charts = h("div", { "class": "charts" });
    keys.forEach(function (key) {
      charts.appendChild(h("div", { "class": "chart" }, [h("h3", null, [key + " "]), runsOverTime(groups[key])]));
    });
    root.appendChild(charts);
    var legend = h("div", { "class": "legend" }, ["Candidates:"]);
    Object.keys(colors).forEach(function (c) { legend.appendChild(h("i", { style: "background:" + colors[c] })); legend.appendChild(document.createTextNode(c)); });
    root.appendChild(legend);
    root.appendChild(h("p", { "class": "note" }, ["Each dot is a run's mean score (hollow: failed), its line the 95% interval of the mean."]));
  }
  function renderScores(o) {
    var root = clear("scores-body");
    if (o.scores.length === 0) { root.appendChild(h("p", { "class": "note" }, ["No finished runs yet."])); return; }
    var body = h("tbody");
    o.scores.slice().sort(function (a, b) { return splitName(a).localeCompare(splitName(b)) || b.mean - a.mean; }).forEach(function (score) {
      body.appendChild(h("tr", null, [
        h("td", null, [score.candidateId]),
        h("td", null, [splitName(score) + (score.admin ? " (verifier)" : "") + (score.subset ? " (subset)" : ""), " ", tier(score.tier)]),
        h("td", { "class": "num" }, [score.runs + (score.failedRuns ? " (" + score.failedRuns + " failed)" : "")]),
        h("td", { "class": "num" }, [pct(score.mean)]),
        h("td", { "class": "num interval" }, [interval(score.interval)]),
        h("td", { "class": "num" }, [pct(score.standardError)]),
        h("td", null, [scoreBar(score)]),
        h("td", { "class": "num muted" }, [pct(score.meanOfRuns)])
      ]));
    });
    root.appendChild(h("table", { id: "scores-table" }, [
      h("thead", null, [h("tr", null, ["candidate", "split", "runs", "mean (newest run)", "95% interval", "SE", "", "mean of runs"].map(function (t) { return h("th", null, [t]); }))]),
      body
    ]));
  }
  function renderBudgets(o) {
    var root = clear("budgets-body");
    if (o.budgets.length === 0) { root.appendChild(h("p", { "class": "note" }, ["No split is budgeted."])); return; }
    var charts = h("div", { "class": "charts" });
    o.budgets.forEach(function (b) {
      var left = (b.remaining.runs === null ? "unlimited" : b.remaining.runs + " of " + b.limits.runs) + " runs, " +
        (b.remaining.samples === null ? "unlimited" : b.remaining.samples + " of " + b.limits.samples) + " samples left";
      var overfit = b.overfit ? "; overfitting budget " + (b.overfit.remaining === null ? "unlimited" : b.overfit.remaining + " of " + b.overfit.limit) + " left" : "";
      charts.appendChild(h("div", { "class": "chart budget", "data-split": splitName(b) }, [
        h("h3", null, [splitName(b) + " ", tier(b.tier)]),
        h("div", { "class": "note" }, [left + overfit + " (spent " + b.spent.runs + " runs, " + b.spent.samples + " samples)"]),
        burnDown(b)
      ]));
    });
    root.appendChild(charts);
  }
  function renderVerifier(o) {
    var root = clear("verifier-body");
    var v = o.verifier;
    root.appendChild(h("p", null, ["Mode: " + (v.mode === null ? "unknown to the viewer" : v.mode) + ". Submission: " +
      (v.submission === null ? "none" : v.submission.candidate + (v.submission.at === null ? "" : " at " + time(v.submission.at))) + "."]));
    if (v.answer === null) { root.appendChild(h("p", { id: "verifier-answer", "class": "note" }, ["Not finalized yet."])); return; }
    var a = v.answer;
    root.appendChild(h("p", { id: "verifier-answer" }, ["Answer: " + (a.candidate === null ? "no candidate" : a.candidate) + ", finalized " + time(a.finalizedAt) + ". " + a.reason]));
    var rewards = h("tbody");
    Object.keys(a.rewards).forEach(function (key) {
      rewards.appendChild(h("tr", null, [h("td", null, [key]), h("td", { "class": "num" }, [String(Math.round(a.rewards[key] * 10000) / 10000)]), h("td", { "class": "bad" }, [a.targetErrors[key] || ""])]));
    });
    root.appendChild(h("table", null, [h("thead", null, [h("tr", null, [h("th", null, ["reward"]), h("th", null, ["score"]), h("th", null, [""])])]), rewards]));
    if (a.shortlist.length) {
      var body = h("tbody");
      a.shortlist.forEach(function (entry) {
        body.appendChild(h("tr", null, [h("td", null, [entry.candidate]), h("td", { "class": "num" }, [pct(entry.pooled)]), h("td", { "class": "num" }, [pct(entry.rescored)]), h("td", { "class": "num" }, [interval(entry.interval)])]));
      });
      root.appendChild(h("table", null, [h("thead", null, [h("tr", null, ["shortlist", "pooled", "re-scored", "95% interval"].map(function (t) { return h("th", null, [t]); }))]), body]));
    }
    if (a.baseline !== null) root.appendChild(h("p", null, ["Baseline re-score " + pct(a.baseline) + " " + interval(a.baselineInterval) + "."]));
  }
  function renderFailed(o) {
    var root = clear("failed-body");
    if (o.failed.length === 0) { root.appendChild(h("p", { "class": "note" }, ["No failed runs."])); return; }
    var list = h("ul");
    o.failed.forEach(function (f) {
      var errors = f.firstErrors === null
        ? h("div", { "class": "note" }, ["Error messages are per-sample detail: the " + f.tier + " split shows aggregates only."])
        : h("ul", null, f.firstErrors.map(function (e) { return h("li", { "class": "cell bad" }, ["sample " + e.sampleId + ": " + e.message]); }));
      list.appendChild(h("li", { "class": "failed-run", "data-run": f.runId }, [
        h("strong", null, [f.runId]), " " + f.candidateId + " on " + splitName(f) + " ", tier(f.tier),
        " — " + f.numErrors + " of " + f.numSamples + " samples failed", errors
      ]));
    });
    root.appendChild(list);
  }
  function renderRuns(o) {
    var root = clear("runs-body");
    if (o.runs.length === 0) { root.appendChild(h("p", { "class": "note" }, ["No runs yet."])); return; }
    var body = h("tbody");
    o.runs.slice().reverse().forEach(function (run) {
      var m = run.metrics;
      body.appendChild(h("tr", { "data-run": run.runId, "data-tier": run.tier }, [
        h("td", { "class": "muted" }, [time(run.createdAt)]),
        h("td", { "class": "cell" }, [run.runId]),
        h("td", null, [run.candidateId + (run.admin ? " (verifier)" : "")]),
        h("td", null, [splitName(run) + (run.subset ? " (subset)" : "") + " ", tier(run.tier)]),
        h("td", { "class": "status-" + run.status }, [run.status]),
        h("td", { "class": "num" }, [run.stored + "/" + run.planned]),
        h("td", { "class": "num" }, [String(run.charged)]),
        h("td", { "class": "num" }, [m === null ? "–" : pct(m.avgFilledScore)]),
        h("td", { "class": "num interval" }, [interval(run.interval)]),
        h("td", { "class": "num" + (m !== null && m.numErrors ? " bad" : "") }, [m === null ? "–" : String(m.numErrors)]),
        h("td", null, [run.tier === "viewable"
          ? h("button", { type: "button", "class": "open-samples", onclick: function () { showSamples(run.runId); } }, ["samples"])
          : h("span", { "class": "note" }, ["aggregate only"])])
      ]));
    });
    root.appendChild(h("table", { id: "runs-table" }, [
      h("thead", null, [h("tr", null, ["created", "run", "candidate", "split", "status", "samples", "charged", "mean", "95% interval", "errors", ""].map(function (t) { return h("th", null, [t]); }))]),
      body
    ]));
  }

  // ---- samples of a viewable run
  function viewableRuns() { return state.overview.runs.filter(function (r) { return r.tier === "viewable"; }).slice().reverse(); }
  function renderSampleControls() {
    var select = document.getElementById("sample-run");
    var runs = viewableRuns();
    var current = state.run;
    while (select.firstChild) select.removeChild(select.firstChild);
    select.appendChild(h("option", { value: "" }, [runs.length ? "choose a run of a viewable split" : "no runs of viewable splits"]));
    runs.forEach(function (run) {
      select.appendChild(h("option", { value: run.runId }, [run.candidateId + " on " + splitName(run) + " — " + run.runId + " (" + run.status + ")"]));
    });
    select.value = current === null ? "" : current;
  }
  function filter() {
    return { status: document.getElementById("sample-status").value, text: document.getElementById("sample-text").value };
  }
  function showSamples(runId) {
    state.run = runId;
    document.getElementById("sample-run").value = runId;
    loadSamples(false);
    document.getElementById("samples").scrollIntoView();
  }
  function loadSamples(more) {
    var note = clear("samples-note");
    if (!state.run) { clear("samples-table-body"); renderSampleTable(); return; }
    var runId = state.run;
    source.samples(runId, more ? state.next : null, filter()).then(function (page) {
      if (state.run !== runId) return;
      state.rows = more ? state.rows.concat(page.samples) : page.samples;
      state.next = page.next;
      renderSampleTable();
      var text = state.rows.length + " samples shown" + (page.next !== null ? "; more with ‘load more’" : "") +
        (page.partial ? "; this report holds the first samples of the run only (holdout view shows all)" : "");
      note.appendChild(document.createTextNode(text));
      document.getElementById("samples-more").disabled = page.next === null;
    }, function (error) {
      state.rows = []; state.next = null; renderSampleTable();
      note.appendChild(h("span", { "class": "bad" }, [error.message]));
    });
  }
  var sampleColumns = [["sampleId", "id"], ["score", "score"], ["error", "error"], ["output", "output"], ["input", "input"], ["feedback", "feedback"], ["attempts", "attempts"], ["ms", "ms"]];
  function renderSampleTable() {
    var table = document.getElementById("samples-table");
    var head = table.querySelector("thead tr");
    while (head.firstChild) head.removeChild(head.firstChild);
    sampleColumns.forEach(function (column) {
      var arrow = state.sort.key === column[0] ? (state.sort.dir > 0 ? " ▲" : " ▼") : "";
      head.appendChild(h("th", { "class": "sortable", "data-key": column[0], onclick: function () {
        state.sort = { key: column[0], dir: state.sort.key === column[0] ? -state.sort.dir : 1 };
        renderSampleTable();
      } }, [column[1] + arrow]));
    });
    var body = clear("samples-table-body");
    var key = state.sort.key, dir = state.sort.dir;
    var value = function (row) { return key === "error" ? (row.error || row.evalError || "") : row[key]; };
    state.rows.slice().sort(function (a, b) {
      var x = value(a), y = value(b);
      if (x === y) return a.sampleId - b.sampleId;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
    }).forEach(function (row) {
      var failed = row.error !== null || row.evalError !== null;
      body.appendChild(h("tr", { "data-sample": row.sampleId }, [
        h("td", { "class": "num" }, [String(row.sampleId)]),
        h("td", { "class": "num " + (failed ? "bad" : row.score === 1 ? "good" : "") }, [row.score === null ? "–" : String(row.score)]),
        h("td", { "class": "cell bad" }, [row.error || row.evalError || ""]),
        h("td", { "class": "cell" }, [row.output]),
        h("td", { "class": "cell muted" }, [row.input === null ? "" : row.input]),
        h("td", { "class": "cell" }, [row.feedback || ""]),
        h("td", { "class": "num" }, [String(row.attempts)]),
        h("td", { "class": "num" }, [String(row.ms)])
      ]));
    });
  }

  // ---- comparison of two candidates on a viewable split
  function renderCompareControls(o) {
    var splitSelect = document.getElementById("compare-split");
    var splits = o.splits.filter(function (x) { return x.tier === "viewable"; });
    var current = splitSelect.value;
    while (splitSelect.firstChild) splitSelect.removeChild(splitSelect.firstChild);
    splits.forEach(function (x) { splitSelect.appendChild(h("option", { value: splitName(x) }, [splitName(x)])); });
    if (current) splitSelect.value = current;
    renderCandidates();
  }
  function candidatesOf(split) {
    return state.overview.scores.filter(function (score) { return splitName(score) === split && !score.admin; });
  }
  function renderCandidates() {
    var split = document.getElementById("compare-split").value;
    ["compare-a", "compare-b"].forEach(function (id, index) {
      var select = document.getElementById(id);
      var current = select.value;
      while (select.firstChild) select.removeChild(select.firstChild);
      candidatesOf(split).forEach(function (score) { select.appendChild(h("option", { value: score.newestRunId }, [score.candidateId + (score.subset ? " (newest subset run)" : " (newest run)")])); });
      if (current && select.querySelector("option[value='" + CSS.escape(current) + "']")) select.value = current;
      else if (select.options.length > index) select.selectedIndex = index;
    });
  }
  function runCompare() {
    var root = clear("compare-body");
    var a = document.getElementById("compare-a").value, b = document.getElementById("compare-b").value;
    if (!a || !b || a === b) { root.appendChild(h("p", { "class": "note" }, ["Choose two different candidates of one viewable split."])); return; }
    source.compare(a, b).then(function (r) {
      var c = r.comparison;
      root.appendChild(h("p", { id: "compare-summary" }, [
        r.candidateA + " − " + r.candidateB + " on " + r.datasetId + "/" + r.split + ": " + (c.difference >= 0 ? "+" : "") + pct(c.difference) +
        " over " + c.shared + " shared samples, 95% bootstrap interval " + interval(c.interval) +
        ", p = " + (c.pValue === null ? "–" : c.pValue.toFixed(4)) + " (means " + pct(c.meanA) + " and " + pct(c.meanB) + ")"
      ]));
      var body = h("tbody");
      r.differing.forEach(function (d) {
        body.appendChild(h("tr", null, [h("td", { "class": "num" }, [String(d.sampleId)]), h("td", { "class": "num" }, [String(d.scoreA)]), h("td", { "class": "num" }, [String(d.scoreB)]), h("td", { "class": "cell bad" }, [d.errorA || ""]), h("td", { "class": "cell bad" }, [d.errorB || ""])]));
      });
      root.appendChild(h("p", { "class": "note" }, [r.differingTotal + " samples differ" + (r.differingTotal > r.differing.length ? " (the first " + r.differing.length + " shown)" : "")]));
      root.appendChild(h("table", { id: "compare-table" }, [h("thead", null, [h("tr", null, ["sample", "score " + r.candidateA, "score " + r.candidateB, "error " + r.candidateA, "error " + r.candidateB].map(function (t) { return h("th", null, [t]); }))]), body]));
    }, function (error) { root.appendChild(h("p", { "class": "bad" }, [error.message])); });
  }

  function render(o) {
    state.overview = o;
    document.getElementById("generated").textContent = (embedded ? "Report of " : "As of ") + time(o.generatedAt) + " UTC";
    o.runs.forEach(function (run) { color(run.candidateId); });
    renderRunsOverTime(o); renderScores(o); renderBudgets(o); renderVerifier(o); renderFailed(o); renderRuns(o);
    renderSampleControls(); renderCompareControls(o);
  }
  function refresh() {
    return source.overview().then(render, function (error) {
      clear("errors").appendChild(h("p", { "class": "bad" }, ["Could not read the stack: " + error.message]));
    });
  }
  var pending = null;
  function scheduleRefresh() {
    if (pending !== null) return;
    pending = setTimeout(function () {
      pending = null;
      refresh().then(function () {
        var run = state.run && state.overview.runs.filter(function (r) { return r.runId === state.run; })[0];
        if (run && run.status === "running") loadSamples(false);
      });
    }, 400);
  }

  document.getElementById("sample-run").addEventListener("change", function (event) { state.run = event.target.value || null; loadSamples(false); });
  document.getElementById("sample-status").addEventListener("change", function () { loadSamples(false); });
  document.getElementById("sample-text").addEventListener("input", function () { clearTimeout(state.typing); state.typing = setTimeout(function () { loadSamples(false); }, 250); });
  document.getElementById("samples-more").addEventListener("click", function () { loadSamples(true); });
  document.getElementById("compare-split").addEventListener("change", renderCandidates);
  document.getElementById("compare-run").addEventListener("click", runCompare);

  var live = document.getElementById("live");
  if (embedded !== null) {
    live.textContent = "report (self-contained)";
  } else if (typeof EventSource === "function") {
    var events = new EventSource(base + "api/events");
    events.addEventListener("open", function () { live.className = "on"; live.textContent = "live"; });
    events.addEventListener("error", function () { live.className = "off"; live.textContent = "reconnecting"; });
    events.addEventListener("change", scheduleRefresh);
  }
  refresh().then(function () { document.body.setAttribute("data-ready", "true"); });
})();
`
