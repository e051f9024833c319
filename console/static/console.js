// duratask console: the live event timeline and @mention suggestions.
// Events arrive over SSE; after a dropped connection it reconnects from the last
// event id (?after=N); when streaming keeps failing it polls the same URL for JSON.
// Everything shown is set with textContent: nothing from a run is parsed as HTML.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function timeline(list) {
    var base = list.getAttribute("data-events");
    var tokens = document.getElementById("tokens");
    var mode = document.getElementById("events-mode");
    var last = -1, lastRelay = 0, failures = 0, done = false, source = null, polling = false;

    // Token text is live-only: it carries the offset of the durable event before it and
    // its own relay id in the SSE id (`12.345`), so it is deduplicated by that id.
    function showLive(ev, id) {
      var relay = parseInt(String(id || "").split(".")[1] || "0", 10);
      if (relay && relay <= lastRelay) return;
      if (relay) lastRelay = relay;
      if (ev.type === "llm.delta" && tokens) tokens.textContent += (ev.data && ev.data.text) || "";
    }

    function show(ev, id) {
      if (ev.type === "llm.delta" || ev.type === "llm.retry") { showLive(ev, id); return; }
      if (ev.offset <= last) return;
      last = ev.offset;
      var li = el("li", "ev ev-" + ev.type.replace(/[^a-z0-9]/gi, "-"));
      li.setAttribute("data-offset", String(ev.offset));
      var t = new Date(ev.time);
      li.appendChild(el("time", "muted", isNaN(t) ? "" : t.toLocaleTimeString()));
      li.appendChild(el("span", "type", ev.type));
      if (ev.step_id) li.appendChild(el("span", "step", ev.step_id));
      if (ev.message) li.appendChild(el("span", "msg", ev.message));
      if (ev.type === "drift.alert") li.setAttribute("role", "alert");
      list.appendChild(li);
      list.setAttribute("data-last", String(last));
      if (ev.type === "run.completed" || ev.type === "run.failed" || ev.type === "run.cancelled") {
        finish();
      }
    }

    function finish() {
      done = true;
      if (source) source.close();
      if (mode) mode.textContent = "(ended)";
      list.setAttribute("data-done", "true");
    }

    function connect() {
      if (done) return;
      if (mode) mode.textContent = "(live)";
      source = new EventSource(base + "&after=" + last);
      source.onmessage = function () {};
      var handler = function (m) {
        failures = 0;
        try { show(JSON.parse(m.data), m.lastEventId); } catch (e) { /* keep-alives and errors */ }
      };
      source.addEventListener("error", function (m) {
        if (m && m.data) {
          try { var d = JSON.parse(m.data); if (!d.reconnect) failures++; } catch (e) { failures++; }
        } else {
          failures++;
        }
        source.close();
        if (done) return;
        if (failures >= 3) { poll(); return; }
        setTimeout(connect, 500 * failures);
      });
      // every named event type: register lazily through a catch-all on the prototype list
      source.onmessage = handler;
      ["run.created", "run.scheduled", "run.queued", "run.started", "step.started",
       "step.completed", "step.failed", "step.skipped", "run.tool_requested",
       "run.tool_completed", "llm.delta", "llm.retry", "llm.completed",
       "run.awaiting_approval", "approval.decided", "intervention.received", "run.comment",
       "plan.updated", "drift.alert", "progress", "child.started", "child.completed",
       "run.completed", "run.failed", "run.cancelled"].forEach(function (t) {
        source.addEventListener(t, handler);
      });
    }

    function poll() {
      if (polling) return;
      polling = true;
      if (mode) mode.textContent = "(polling)";
      var tick = function () {
        if (done) return;
        fetch(base + "&poll=1&after=" + last, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (page) {
            if (page) {
              page.events.forEach(function (ev) { show(ev); });
              if (page.done) { finish(); return; }
            }
            setTimeout(tick, page && page.more ? 0 : 1500);
          })
          .catch(function () { setTimeout(tick, 3000); });
      };
      tick();
    }

    if (window.EventSource && !list.hasAttribute("data-poll")) connect(); else poll();
  }

  function mentions(area) {
    var list = document.getElementById("mention-list");
    var people = Array.prototype.map.call(
      document.querySelectorAll("#" + area.getAttribute("data-mentions") + " option"),
      function (o) { return o.value; });
    var active = 0, matches = [];

    function word() {
      var upto = area.value.slice(0, area.selectionStart);
      var m = /@([\w.\-@]*)$/.exec(upto);
      return m ? m[1] : null;
    }
    function render() {
      list.textContent = "";
      matches.forEach(function (p, i) {
        var li = el("li", i === active ? "active" : "", p);
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        li.addEventListener("mousedown", function (e) { e.preventDefault(); pick(p); });
        list.appendChild(li);
      });
      list.hidden = matches.length === 0;
    }
    function pick(p) {
      var pos = area.selectionStart, upto = area.value.slice(0, pos);
      var start = upto.lastIndexOf("@");
      area.value = area.value.slice(0, start) + "@" + p + " " + area.value.slice(pos);
      var at = start + p.length + 2;
      area.setSelectionRange(at, at);
      matches = []; render();
    }
    area.addEventListener("input", function () {
      var w = word();
      matches = w === null ? [] : people.filter(function (p) {
        return p.toLowerCase().indexOf(w.toLowerCase()) === 0;
      }).slice(0, 8);
      active = 0; render();
    });
    area.addEventListener("keydown", function (e) {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = (active + 1) % matches.length; render(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active + matches.length - 1) % matches.length; render(); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "Tab") { pick(matches[active]); e.preventDefault(); }
      else if (e.key === "Escape") { matches = []; render(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("timeline");
    if (list) timeline(list);
    var area = document.querySelector("textarea[data-mentions]");
    if (area) mentions(area);
  });
})();
