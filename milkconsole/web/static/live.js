/* Keeps a live-view page current from the console's event stream (Server-Sent Events).
   The server renders every page complete; this only replaces stall cards, figures and the
   alert count as they change, and shows whether the stream is live. No libraries. */
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  if (page === "refused") { return; }
  var WORDS = { idle: "EMPTY", milking: "MILKING", done: "DONE", incomplete: "INCOMPLETE",
    alert: "ALERT", offline: "METER OFFLINE" };
  var DIGITS = { total_yield_l: 1, average_yield_l: 1, milking_yield_l: 1 };
  var conn = document.getElementById("conn");
  // Seconds from the meter reading to this page, newest last (the benchmark reads them).
  window.mcLatencies = [];
  window.mcMessages = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function fixed(v, d) { return (v === null || v === undefined) ? "\u2014" : Number(v).toFixed(d); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock() {
    var d = new Date();
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function setConn(state, text) {
    if (!conn) { return; }
    conn.setAttribute("data-state", state);
    conn.textContent = text;
  }

  function card(s) {
    var a = el("article", "stall s-" + s.state);
    a.id = "stall-" + s.stall;
    a.setAttribute("data-stall", String(s.stall));
    var band = el("div", "band");
    band.appendChild(el("span", "num", String(s.stall)));
    band.appendChild(el("span", "word", WORDS[s.state] || String(s.state).toUpperCase()));
    a.appendChild(band);
    var divert = el("div", "divert", s.divert ? "DIVERT \u00b7 " + s.divert : "");
    divert.hidden = !s.divert;
    a.appendChild(divert);
    var cow = el("div", "cow" + ((s.cow_status === "unknown_tag" || s.cow_status === "no_id") ? " warn" : ""));
    if (s.animal_id !== null && s.animal_id !== undefined) {
      var link = el("a", "", s.cow);
      link.href = "/cows/" + s.animal_id;
      cow.appendChild(link);
    } else {
      cow.textContent = s.cow || "\u00a0";
    }
    a.appendChild(cow);
    var y = el("div", "yield");
    y.appendChild(el("span", "v", fixed(s.yield_l, 1)));
    y.appendChild(el("span", "u", s.yield_l === null ? "" : " L"));
    a.appendChild(y);
    var meta = el("div", "meta");
    meta.appendChild(el("span", "flow", s.session_state === "milking" ? fixed(s.flow_l_min, 1) + " L/min" : ""));
    meta.appendChild(el("span", "exp", s.expected_l ? "of " + Number(s.expected_l).toFixed(0) + " L" : ""));
    a.appendChild(meta);
    var chips = el("div", "chips");
    (s.alerts || []).forEach(function (t) { chips.appendChild(el("span", "chip", t)); });
    a.appendChild(chips);
    return a;
  }

  function applyStalls(list, now) {
    if (page !== "stalls") { return; }
    list.forEach(function (s) {
      var old = document.getElementById("stall-" + s.stall);
      if (old) { old.replaceWith(card(s)); }
      if (s.read_at) {
        window.mcLatencies.push(now - s.read_at);
        if (window.mcLatencies.length > 2000) { window.mcLatencies.shift(); }
      }
    });
    var all = document.querySelectorAll(".stall");
    var busy = document.querySelectorAll(".stall:not(.s-idle)").length;
    var label = document.getElementById("busy");
    if (label) { label.textContent = busy + " of " + all.length + " in use"; }
  }

  function applyProduction(p) {
    if (!p) { return; }
    var changed = false;
    Object.keys(p).forEach(function (k) {
      var node = document.querySelector('[data-fig="' + k + '"]');
      if (!node) { return; }
      var text = fixed(p[k], DIGITS[k] || 0);
      if (node.textContent !== text) { node.textContent = text; changed = true; }
    });
    var stale = document.getElementById("stale");
    if (changed && stale && page === "today") { stale.hidden = false; }
  }

  function setAlerts(n, fromEvent) {
    var b = document.getElementById("alert-count");
    if (!b || n === null || n === undefined) { return; }
    if (fromEvent && page === "alerts" && b.textContent !== String(n)) {
      var stale = document.getElementById("stale");
      if (stale) { stale.hidden = false; }
    }
    b.textContent = String(n);
    b.hidden = !n;
  }

  var onlyBusy = document.getElementById("only-busy");
  if (onlyBusy) {
    var on = false;
    try { on = window.localStorage.getItem("mcOnlyBusy") === "1"; } catch (e) { on = false; }
    var show = function () {
      document.body.classList.toggle("only-busy", on);
      onlyBusy.setAttribute("aria-pressed", on ? "true" : "false");
    };
    show();
    onlyBusy.addEventListener("click", function () {
      on = !on;
      try { window.localStorage.setItem("mcOnlyBusy", on ? "1" : "0"); } catch (e) { /* private mode */ }
      show();
    });
  }

  if (!window.EventSource) { setConn("down", "NOT LIVE"); return; }
  setConn("down", "CONNECTING");
  var es = new EventSource("/events");
  function message(handler) {
    return function (e) {
      var now = Date.now() / 1000;
      var data = JSON.parse(e.data);
      window.mcMessages += 1;
      handler(data, now);
      setConn("live", "LIVE " + clock());
    };
  }
  es.addEventListener("open", function () { setConn("live", "LIVE " + clock()); });
  es.addEventListener("error", function () {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (access revoked) or the console is gone: the page itself says which.
      setConn("down", "OFFLINE");
      window.setTimeout(function () { window.location.reload(); }, 5000);
    } else {
      setConn("down", "RECONNECTING");
    }
  });
  es.addEventListener("snapshot", message(function (d, now) {
    applyStalls(d.stalls, now);
    applyProduction(d.production);
    setAlerts(d.alerts_open, false);
  }));
  es.addEventListener("stalls", message(function (d, now) { applyStalls(d.stalls, now); }));
  es.addEventListener("production", message(function (d) { applyProduction(d); }));
  es.addEventListener("alerts", message(function (d) { setAlerts(d.open, true); }));
}());
