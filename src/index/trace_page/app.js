// Quill's trace page: plain JavaScript, no build step, no dependencies. Reads this server's
// /api/search and /api/neighbours. Every value from the logs goes into the page as text
// (textContent), never as markup.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const view = () => $("#view");
  const state = { entries: [], selected: -1, items: [], servers: new Set() };

  // ---------- small helpers ----------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "style") e.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const pad = (n, w) => String(n).padStart(w, "0");
  function fmtTime(ms) {
    const d = new Date(ms);
    if (isNaN(d)) return String(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
      pad(d.getUTCMilliseconds(), 3);
  }
  function fmtDur(ms) {
    if (ms < 1) return (Math.round(ms * 1000) / 1000) + " ms";
    if (ms < 1000) return (Math.round(ms * 10) / 10) + " ms";
    return (Math.round(ms / 10) / 100) + " s";
  }
  function setStatus(text, isError) {
    const s = $("#status");
    s.textContent = text || "";
    s.className = isError ? "error" : "";
  }
  const traceUrl = (id) => "/trace/" + encodeURIComponent(id);
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);

  // ---------- the API ----------
  async function api(path, params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem("quill-token");
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path + "?" + qs.toString(), { headers, credentials: "same-origin" });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (r.status === 401) {
      $("#token-box").hidden = false;
      $("#token").focus();
      throw new Error("This server needs a token: enter it above.");
    }
    if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
    if (body && body.server) state.servers.add(body.server);
    $("#servers").textContent = state.servers.size ? "from " + [...state.servers].join(", ") : "";
    return body;
  }
  function decode(hit) {
    let g = {};
    try { g = JSON.parse(hit.gelf); } catch (_) { g = { short_message: hit.gelf }; }
    return { ts: hit.timestamp_ms, seq: hit.seq, server: hit.server || "", g };
  }
  const service = (g) => g._category || g._program || g._frontend || "-";
  const laneKey = (e) => (e.g.host || "?") + " · " + service(e.g);

  // ---------- timing: what each entry's bar shows ----------
  // HAProxy: the date is the accept; Th and Ti (when logged) come first, then TR, Tw, Tc, Tr and
  // the data transfer up to Ta. Apache: %D (microseconds) from the request's start; Apache's
  // own time has whole seconds only, so its bar is aligned to HAProxy's connect to the server
  // when an HAProxy entry of the same transaction shows one in that second.
  function timing(e, all) {
    const g = e.g;
    const ta = num(g._time_active_ms);
    if (ta !== null && ta >= 0 && g._log_format && String(g._log_format).startsWith("haproxy")) {
      const pre = Math.max(0, num(g._time_handshake_ms) || 0) + Math.max(0, num(g._time_idle_ms) || 0);
      const segs = [];
      let used = 0;
      for (const [name, key] of [["TR", "_time_request_ms"], ["Tw", "_time_queue_ms"], ["Tc", "_time_connect_ms"], ["Tr", "_time_response_ms"]]) {
        const v = num(g[key]);
        if (v !== null && v >= 0) { segs.push({ name, ms: v }); used += v; }
      }
      if (ta - used > 0) segs.push({ name: "Td", ms: ta - used });
      return { kind: "haproxy", start: e.ts + pre, dur: ta, segs, label: "Ta " + fmtDur(ta) };
    }
    const us = num(g._request_time_us);
    const dms = us !== null ? us / 1000 : num(g._request_time_ms);
    if (dms !== null && dms >= 0) {
      let start = e.ts;
      let note = "";
      if (e.ts % 1000 === 0) {
        for (const o of all) {
          if (o === e || !o.t || o.t.kind !== "haproxy") continue;
          const before = o.t.segs.filter((s) => s.name === "TR" || s.name === "Tw" || s.name === "Tc").reduce((a, s) => a + s.ms, 0);
          const connect = o.t.start + before;
          if (Math.floor(connect / 1000) * 1000 === e.ts) {
            start = connect;
            note = " (placed at HAProxy's connect to the server: Apache logs whole seconds)";
            break;
          }
        }
      }
      return { kind: "apache", start, dur: dms, segs: [{ name: "D", ms: dms }], label: "D " + fmtDur(dms), note };
    }
    return { kind: "point", start: e.ts, dur: 0, segs: [], label: "" };
  }

  // ---------- views ----------
  function empty(title, detail) {
    return el("div", { class: "empty", id: "empty" }, el("h1", { text: title }), el("p", {}, ...detail));
  }

  async function showTrace(id) {
    document.title = "Trace " + id + " · Quill";
    $("#txn").value = id;
    setStatus("Loading " + id + " …");
    view().replaceChildren();
    let res;
    try { res = await api("/api/search", { txn: id, order: "oldest", limit: 2000 }); }
    catch (err) { setStatus(err.message, true); return; }
    setStatus("");
    const entries = res.hits.map(decode);
    if (!entries.length) {
      view().replaceChildren(empty("No entries for this transaction id", [
        "Nothing indexed on ", el("b", { text: res.server || "this server" }), " has the txn id ",
        el("code", { text: id }), ". Check the id (it is case-sensitive), or search by query and time range above.",
      ]));
      return;
    }
    for (const e of entries) e.t = timing(e, entries);
    for (const e of entries) if (e.t.kind === "apache") e.t = timing(e, entries);
    state.entries = entries;
    state.items = [];
    const t0 = Math.min(...entries.map((e) => e.t.start));
    const t1 = Math.max(...entries.map((e) => e.t.start + e.t.dur));
    const lanes = [...new Set(entries.map(laneKey))];
    const servers = [...new Set(entries.map((e) => e.server).filter(Boolean))];
    view().replaceChildren(
      el("h1", { id: "trace-id", text: id }),
      el("div", { class: "summary" },
        el("b", { text: entries.length + (entries.length === 1 ? " entry" : " entries") }), " on ",
        el("b", { text: lanes.length + (lanes.length === 1 ? " lane" : " lanes") }), " over ",
        el("b", { id: "span", text: fmtDur(t1 - t0) }), ", from " + fmtTime(t0),
        servers.length ? " · source server " + servers.join(", ") : "",
        res.more ? " · more entries exist than shown" : ""),
      timeline(entries, lanes, t0, t1),
      el("h2", { text: "Entries in order" }),
      entryList(entries),
      el("h2", { text: "Just before and after, on the same hosts" }),
      el("div", { id: "neighbours", class: "neighbours" }, el("p", { class: "side", text: "Loading…" })),
    );
    select(0, false);
    loadNeighbours(id);
  }

  function timeline(entries, lanes, t0, t1) {
    const span = Math.max(t1 - t0, 1);
    const pct = (ms) => ((ms - t0) / span) * 100;
    const ticks = el("div", { class: "ticks" });
    for (let i = 0; i <= 4; i++) {
      const at = t0 + (span * i) / 4;
      const shift = i === 0 ? "0" : i === 4 ? "-100%" : "-50%";
      ticks.append(el("span", { class: "tick", style: "left:" + (i * 25) + "%;transform:translateX(" + shift + ")", text: "+" + fmtDur(at - t0) }));
    }
    const box = el("div", { class: "timeline", id: "timeline" }, el("div", { class: "axis" }, el("span", { class: "lane-name" }, el("small", { text: "host · service" })), ticks));
    for (const lane of lanes) {
      const track = el("div", { class: "track" });
      entries.forEach((e, i) => {
        if (laneKey(e) !== lane) return;
        const left = pct(e.t.start);
        const width = (e.t.dur / span) * 100;
        const bar = el("div", {
          class: "bar" + (e.t.kind === "point" ? " point" : ""),
          style: "left:" + left + "%;" + (e.t.kind === "point" ? "" : "width:" + width + "%"),
          "data-entry": i, "data-kind": e.t.kind, "data-duration-ms": e.t.dur,
          title: fmtTime(e.ts) + "  " + (e.t.label || "event") + (e.t.note || "") + "\n" + (e.g.short_message || ""),
          onclick: () => select(i, true),
        });
        for (const s of e.t.segs) {
          bar.append(el("span", { class: "seg " + s.name, style: "flex:" + Math.max(s.ms, 0.0001) + " 0 0", "data-seg": s.name, title: s.name + " " + fmtDur(s.ms) }));
        }
        track.append(bar);
        if (e.t.label) {
          const at = Math.min(left + width, 88);
          track.append(el("span", { class: "bar-label", style: "left:" + at + "%", text: e.t.label }));
        }
      });
      const [host, svc] = lane.split(" · ");
      box.append(el("div", { class: "lane", "data-lane": lane }, el("span", { class: "lane-name", title: lane }, host, el("small", { text: " · " + svc })), track));
    }
    const legend = el("div", { class: "legend" });
    for (const [cls, text] of [["TR", "TR request"], ["Tw", "Tw queue"], ["Tc", "Tc connect"], ["Tr", "Tr response headers"], ["Td", "data (to Ta)"], ["D", "Apache %D"]]) {
      legend.append(el("span", {}, el("i", { class: "seg " + cls }), text));
    }
    box.append(legend);
    return box;
  }

  function bytesLine(g) {
    if (g._bytes_sent === undefined) return null;
    const basis = g._bytes_sent_basis;
    return el("div", { class: "bytes" }, "bytes sent: ", el("b", { text: String(g._bytes_sent) }),
      basis ? " " : "", basis ? el("span", { class: "basis", "data-basis": basis, text: basis }) : null,
      g._bytes_sent_reason ? " " + g._bytes_sent_reason : "");
  }

  function fieldsTable(e) {
    const rows = [["timestamp", fmtTime(e.ts) + " UTC"], ["server", e.server]];
    if (e.t && e.t.label) rows.push(["duration", e.t.label + (e.t.note || "")]);
    for (const [k, v] of Object.entries(e.g)) rows.push([k, typeof v === "string" ? v : JSON.stringify(v)]);
    return el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v }))));
  }

  function entryList(entries) {
    const ol = el("ol", { class: "entries", id: "entries" });
    entries.forEach((e, i) => {
      const g = e.g;
      const li = el("li", { "data-entry": i, tabindex: -1 });
      const st = g._status !== undefined ? String(g._status) : "";
      const head = el("div", { class: "entry-head", onclick: () => { select(i, false); li.classList.toggle("open"); } },
        el("span", { class: "time", text: fmtTime(e.ts) }),
        el("span", { class: "where", text: laneKey(e) }),
        el("span", { class: st.startsWith("5") ? "status-5" : "", text: st }),
        el("span", { class: "msg", text: (e.t && e.t.label ? "[" + e.t.label + "] " : "") + (g.short_message || "") }));
      li.append(head, el("div", { class: "fields" }, bytesLine(g), fieldsTable(e)));
      ol.append(li);
      state.items.push(li);
    });
    return ol;
  }

  function select(i, scroll) {
    if (!state.items.length) return;
    i = Math.max(0, Math.min(state.items.length - 1, i));
    state.selected = i;
    state.items.forEach((li, j) => li.classList.toggle("selected", j === i));
    document.querySelectorAll(".bar").forEach((b) => b.classList.toggle("selected", Number(b.dataset.entry) === i));
    if (scroll) state.items[i].scrollIntoView({ block: "nearest" });
  }

  async function loadNeighbours(id) {
    const box = $("#neighbours");
    let res;
    try { res = await api("/api/neighbours", { txn: id, n: 3 }); }
    catch (err) { box.replaceChildren(el("p", { class: "side", text: "Neighbours unavailable: " + err.message })); return; }
    box.replaceChildren();
    for (const h of res.hosts) {
      const list = (hits, side) => {
        const ul = el("ul", { "data-side": side });
        if (!hits.length) ul.append(el("li", { class: "side", text: "nothing " + side }));
        for (const e of hits.map(decode)) {
          const txn = e.g._txn_id;
          const text = fmtTime(e.ts) + "  " + service(e.g) + "  " + (e.g.short_message || "");
          ul.append(el("li", { title: text }, txn ? el("a", { href: traceUrl(txn), "data-neighbour": side, text }) : text));
        }
        return ul;
      };
      box.append(el("section", { "data-host": h.host }, el("h3", { text: h.host }),
        el("div", { class: "side", text: "before" }), list(h.before, "before"),
        el("div", { class: "side", text: "after" }), list(h.after, "after")));
    }
    if (!res.hosts.length) box.append(el("p", { class: "side", text: "No neighbours." }));
  }

  function parseTime(s) {
    if (!s) return undefined;
    if (/^\d+$/.test(s)) return Number(s);
    const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
    if (isNaN(t)) throw new Error("Cannot read the time `" + s + "`: use 2026-11-23T01:09:00Z");
    return t;
  }

  async function showSearch(params) {
    const q = params.get("q") || "", since = params.get("since") || "", until = params.get("until") || "";
    const cursor = params.get("cursor") || "";
    $("#q").value = q; $("#since").value = since; $("#until").value = until;
    document.title = "Search " + q + " · Quill";
    view().replaceChildren();
    let res;
    try {
      setStatus("Searching …");
      res = await api("/api/search", { q, since_ms: parseTime(since), until_ms: parseTime(until), limit: 100, cursor });
    } catch (err) { setStatus(err.message, true); return; }
    setStatus("");
    const entries = res.hits.map(decode).reverse();
    if (!entries.length) {
      view().replaceChildren(empty("No entries match", ["Nothing matches ", el("code", { text: q || "(everything)" }), " in that time range."]));
      return;
    }
    state.entries = entries;
    state.items = [];
    const table = el("table", { class: "results", id: "results" },
      el("tr", {}, ...["time (UTC)", "host · service", "status", "txn id", "message"].map((h) => el("th", { text: h }))));
    entries.forEach((e) => {
      const txn = e.g._txn_id;
      const tr = el("tr", { "data-txn": txn || "" },
        el("td", { text: fmtTime(e.ts) }), el("td", { text: laneKey(e) }),
        el("td", { text: e.g._status !== undefined ? String(e.g._status) : "" }),
        el("td", {}, txn ? el("a", { href: traceUrl(txn), text: txn }) : "-"),
        el("td", { class: "msg", title: e.g.short_message || "", text: e.g.short_message || "" }));
      table.append(tr);
      state.items.push(tr);
    });
    const pager = el("div", { class: "pager" }, el("span", { class: "side", text: entries.length + (entries.length === 1 ? " entry" : " entries") + ", newest first" + (res.limit < 100 ? " (capped at " + res.limit + ")" : "") }));
    if (res.next) {
      const next = new URLSearchParams(params);
      next.set("cursor", res.next);
      pager.append(el("a", { href: "/search?" + next.toString(), id: "older", text: "Older entries →" }));
    }
    view().replaceChildren(el("h1", { text: q ? "Query " + q : "All entries" }), table, pager);
    select(0, false);
  }

  // ---------- routing ----------
  function route() {
    state.items = []; state.selected = -1;
    const path = location.pathname;
    if (path.startsWith("/trace/")) return showTrace(decodeURIComponent(path.slice(7)));
    if (path === "/search") return showSearch(new URLSearchParams(location.search));
    document.title = "Quill traces";
    setStatus("");
    view().replaceChildren(el("div", { class: "empty" }, el("h1", { text: "Look up a transaction" }),
      el("p", { text: "Paste a transaction id above (or open /trace/ID), or search by query and time range." })));
  }
  function go(url) { history.pushState(null, "", url); route(); }

  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a");
    if (!a || a.origin !== location.origin || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
    ev.preventDefault();
    go(a.pathname + a.search);
  });
  window.addEventListener("popstate", route);
  $("#trace-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("#txn").value.trim();
    if (id) go(traceUrl(id));
  });
  $("#search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ["q", "since", "until"]) { const v = $("#" + k).value.trim(); if (v) p.set(k, v); }
    go("/search?" + p.toString());
  });
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("quill-token", $("#token").value);
    $("#token-box").hidden = true;
    route();
  });

  document.addEventListener("keydown", (ev) => {
    const typing = ev.target.matches && ev.target.matches("input, textarea");
    if (ev.key === "Escape" && typing) { ev.target.blur(); return; }
    if (typing || ev.metaKey || ev.ctrlKey || ev.altKey) return;
    const key = ev.key;
    if (key === "/") { ev.preventDefault(); $("#txn").focus(); $("#txn").select(); }
    else if (key === "s") { ev.preventDefault(); $("#q").focus(); }
    else if (key === "g") { go("/"); }
    else if (key === "j" || key === "ArrowDown") { ev.preventDefault(); select(state.selected + 1, true); }
    else if (key === "k" || key === "ArrowUp") { ev.preventDefault(); select(state.selected - 1, true); }
    else if (key === "Enter" && state.selected >= 0) {
      const item = state.items[state.selected];
      const link = item.querySelector("a");
      if (item.tagName === "TR" && link) go(link.pathname);
      else item.classList.toggle("open");
    } else if (key === "[" || key === "]") {
      const links = document.querySelectorAll("#neighbours a[data-neighbour='" + (key === "[" ? "before" : "after") + "']");
      const link = key === "[" ? links[links.length - 1] : links[0];
      if (link) go(link.pathname);
    }
  });

  route();
})();
