// palisade dashboard: the live event feed. Attacker-controlled strings are
// only ever inserted with textContent (never innerHTML).
(function () {
  "use strict";
  var body = document.getElementById("feed");
  if (!body || !window.EventSource) { return; }
  var MAX_ROWS = 200;
  var status = document.getElementById("feed-status");
  var count = document.getElementById("feed-count");
  var seen = 0;
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function time(us) {
    var d = new Date(Math.floor(us / 1000));
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function add(ev) {
    var tr = document.createElement("tr");
    tr.className = "live";
    cell(tr, time(ev.time_us));
    cell(tr, ev.kind, "k-" + String(ev.kind).replace(/[^a-z_]/g, ""));
    cell(tr, ev.client || "-");
    cell(tr, ev.route || "-");
    var what = ev.uri !== undefined ? (ev.method || "") + " " + ev.uri
      : (ev.detail || ev.reason || ev.net || ev.user || ev.error || "");
    cell(tr, what, "wrap");
    var ids = (ev.rules || []).map(function (r) { return r.id; }).join(" ");
    cell(tr, ids);
    var td = cell(tr, "");
    var a = document.createElement("a");
    a.textContent = "detail";
    a.href = ev.id ? "/dashboard/event?id=" + encodeURIComponent(String(ev.id)) :
      "/dashboard/event?t=" + encodeURIComponent(String(ev.time_us)) +
      "&c=" + encodeURIComponent(ev.client || "-") +
      "&k=" + encodeURIComponent(String(ev.kind));
    td.appendChild(a);
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > MAX_ROWS) { body.deleteRow(body.rows.length - 1); }
    seen += 1;
    if (count) { count.textContent = String(seen); }
  }
  var es = new EventSource("/dashboard/feed");
  es.onopen = function () { if (status) { status.textContent = "live"; } };
  es.onerror = function () { if (status) { status.textContent = "reconnecting…"; } };
  es.onmessage = function (m) {
    var ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    add(ev);
  };
  es.addEventListener("dropped", function (m) {
    if (status) { status.textContent = "live (" + String(parseInt(m.data, 10) || 0) + " events skipped: too fast)"; }
  });
}());
