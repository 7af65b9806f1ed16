// nautilus-hmm dashboard: plain JS, no libraries, no build step.
//
// Reads the public read routes and the unauthenticated /events/public stream. The admin
// token (kill / reduce / resume) lives in this tab's sessionStorage only; it is sent as a
// bearer header to the admin routes and never put in a URL. Every fetch failure is shown
// in its panel or the message bar: the page itself never breaks.
"use strict";

const TOKEN_KEY = "nautilus-hmm-admin-token";
const MAX_FILLS = 50;
const MAX_EVENTS = 100;
const REFRESH_MS = 5000;       // marks move without events: positions and status are re-read
const THROTTLE_MS = 250;       // a burst of events costs one re-read
const NS_PER_MS = 1e6;

const $ = (id) => document.getElementById(id);
const state = {
  fills: [],            // newest first: {key, ts_ns, instrument_id, side, qty, price, fee, fee_asset, trade_id, client_order_id, live}
  fillKeys: new Set(),
  equity: [],           // {t_ms, equity, peak, dd}
  equityCurrency: "",
  timers: {},
  source: null,
  reconnectMs: 500,
  pendingAction: null,
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function signClass(text) {
  const n = parseFloat(text);
  return !isFinite(n) || n === 0 ? "num" : (n > 0 ? "num pos" : "num neg");
}

function num(text, signed) {
  return el("td", { class: signed ? signClass(text) : "num" }, text == null ? "—" : text);
}

function fmtTime(tsNs) {
  if (tsNs == null) return "—";
  const d = new Date(Number(tsNs) / NS_PER_MS);
  return isNaN(d.getTime()) ? "—" : d.toISOString().replace("T", " ").replace("Z", "");
}

function fmtDuration(s) {
  if (s == null || !isFinite(s)) return "—";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + Math.floor(s % 60) + "s";
}

function showMessage(text, isError) {
  const m = $("message");
  m.textContent = text;
  m.className = "message" + (isError ? " error" : "");
  m.hidden = !text;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { status: r.status, ok: r.ok, body };
}

function throttle(name, fn, ms) {
  if (state.timers[name]) return;
  state.timers[name] = setTimeout(() => { state.timers[name] = null; fn(); }, ms == null ? THROTTLE_MS : ms);
}

function replaceRows(tbody, rows, emptyText, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colSpan: cols, class: "muted" }, emptyText))]));
}

// ------------------------------------------------------------------ panels

function renderTradingState(value, reason, source) {
  const badge = $("trading-state");
  badge.textContent = value || "?";
  badge.className = "badge " + (value || "");
  badge.setAttribute("data-state", value || "");
  $("state-value").textContent = value || "?";
  $("trading-reason").textContent = reason || "";
  if (source != null) $("state-source").textContent = source || "—";
}

async function loadStatus() {
  let r;
  try { r = await getJSON("/status"); } catch (e) { return setLive(false, "daemon unreachable"); }
  if (!r.ok || !r.body) return;
  const s = r.body;
  $("version").textContent = "v" + s.version + (s.mode && s.mode !== "trade" ? " · " + s.mode + " mode" : "");
  document.body.setAttribute("data-mode", s.mode || "trade");
  const risk = s.risk || {};
  renderTradingState(s.trading_state, s.trading_state_reason, risk.state_source);
  $("uptime-value").textContent = fmtDuration(s.uptime_s);
  $("lag-value").textContent = s.loop_lag_p99_s == null ? "—" : (s.loop_lag_p99_s * 1000).toFixed(1) + " ms";
  const venues = risk.venues || {};
  const breakers = risk.breakers || {};
  const tokens = risk.rate_tokens || {};
  const recon = s.reconciliation || {};
  const names = [...new Set([...Object.keys(venues), ...Object.keys(breakers), ...Object.keys(recon)])].sort();
  replaceRows($("venues-body"), names.map((v) => {
    const vs = (venues[v] || {}).state || "—";
    const rc = recon[v];
    return el("tr", { "data-venue": v }, el("td", {}, v),
      el("td", { class: vs === "ACTIVE" ? "pos" : (vs === "—" ? "" : "neg"), title: (venues[v] || {}).reason || "" }, vs),
      el("td", { class: breakers[v] == null ? "" : (String(breakers[v]).toUpperCase() === "CLOSED" ? "pos" : "neg") }, breakers[v] || "—"),
      el("td", { class: rc && rc.ok === false ? "neg" : "" }, rc == null ? "—" : (rc.ok ? "yes" : "no")),
      num(tokens[v] == null ? null : String(tokens[v])));
  }), "no venue", 5);
  const comps = s.components || {};
  replaceRows($("components-body"), Object.keys(comps).map((c) => {
    const x = comps[c];
    return el("tr", { "data-component": c }, el("td", {}, c),
      el("td", { class: x.healthy ? "pos" : "neg" }, x.healthy ? "yes" : "no"),
      el("td", { class: "muted" }, [x.state, x.detail, x.last_error].filter(Boolean).join(" · ")));
  }), "no component", 3);
}

async function loadPositions() {
  let r;
  try { r = await getJSON("/positions"); } catch (e) { return; }
  if (!r.ok || !r.body) return;
  const positions = r.body.positions || [];
  replaceRows($("positions-body"), positions.map((p) => el("tr", { "data-instrument": p.instrument_id },
    el("td", {}, p.instrument_id), num(p.qty), num(p.avg_px), num(p.mark), num(p.unrealized_pnl, true),
    num(p.realized_pnl, true), num(p.fees), num(p.exposure))), "no position", 8);
  const pnl = r.body.pnl;
  if (pnl) {
    const cur = " " + pnl.currency;
    $("equity-value").textContent = pnl.equity + cur;
    $("peak-value").textContent = pnl.peak_equity + cur;
    $("drawdown-value").textContent = pnl.drawdown_pct + " %";
    $("pnl-value").textContent = pnl.realized_pnl + " / " + pnl.unrealized_pnl + cur;
    $("fees-value").textContent = pnl.fees + cur;
    $("day-pnl-value").textContent = pnl.day_realized_pnl + cur;
    addEquityPoint(Date.now(), pnl.equity, pnl.peak_equity, pnl.drawdown_pct, pnl.currency);
  }
}

async function loadOrders() {
  let r;
  try { r = await getJSON("/orders?open=true&limit=200"); } catch (e) { return; }
  if (!r.ok || !r.body) return;
  replaceRows($("orders-body"), (r.body.orders || []).map((o) => el("tr", { "data-order": o.client_order_id },
    el("td", {}, o.client_order_id), el("td", {}, o.instrument_id), el("td", { class: o.side === "BUY" ? "pos" : "neg" }, o.side),
    el("td", {}, o.order_type), num(o.quantity), num(o.filled_qty), num(o.price), el("td", {}, o.status),
    el("td", {}, o.strategy_id))), "no open order", 9);
}

function fillKey(f) { return f.instrument_id + "|" + f.trade_id; }

function addFill(f, live) {
  const key = fillKey(f);
  if (state.fillKeys.has(key)) return false;
  state.fillKeys.add(key);
  state.fills.push({ ...f, key, live, source: live ? "live" : "journal" });
  state.fills.sort((a, b) => Number(b.ts_ns) - Number(a.ts_ns));
  while (state.fills.length > MAX_FILLS) state.fillKeys.delete(state.fills.pop().key);
  return true;
}

function renderFills() {
  replaceRows($("fills-body"), state.fills.map((f) => {
    const row = el("tr", { "data-trade-id": f.trade_id, "data-source": f.source, class: f.live ? "live-row" : "" },
      el("td", {}, fmtTime(f.ts_ns)), el("td", {}, f.instrument_id),
      el("td", { class: f.side === "BUY" ? "pos" : "neg" }, f.side), num(f.qty), num(f.price),
      num(f.fee == null ? null : f.fee + " " + (f.fee_asset || "")), el("td", {}, f.trade_id),
      el("td", { class: "muted" }, f.client_order_id));
    return row;
  }), "no fill in the last 24 h", 8);
  for (const f of state.fills) f.live = false;  // flash once
}

async function loadFills() {
  // /fills pages oldest first from `since`: walk the last 24 h, keep the newest MAX_FILLS.
  let since = (Date.now() - 86400e3) * NS_PER_MS;
  for (let page = 0; page < 20; page++) {
    let r;
    try { r = await getJSON("/fills?limit=1000&since=" + BigInt(Math.floor(since)).toString()); } catch (e) { return; }
    if (!r.ok || !r.body) return;
    for (const f of r.body.fills || []) addFill(f, false);
    if ((r.body.fills || []).length < 1000) break;
    since = Number(r.body.next_since) - 1000;  // ns above 2^53 are rounded: overlap, de-duplicated by trade id
  }
  renderFills();
}

function posteriorBars(p) {
  const wrap = el("div", { class: "posteriors" });
  if (!p || !p.posteriors) return wrap;
  for (const [label, v] of Object.entries(p.posteriors)) {
    const bar = el("span", { class: "bar", title: label });
    bar.style.width = Math.max(1, Math.round(v * 120)) + "px";
    wrap.append(el("div", { "data-label": label }, bar, label + " " + (v * 100).toFixed(1) + "%" + (label === p.state ? " ◀" : "")));
  }
  return wrap;
}

async function loadRegimes() {
  const box = $("regimes-body");
  let r;
  try { r = await getJSON("/regimes"); } catch (e) { return; }
  if (r.status === 404) { box.replaceChildren(el("p", { class: "muted" }, "no regime model runs (no hmm strategy)")); return; }
  if (!r.ok || !r.body) { box.replaceChildren(el("p", { class: "muted" }, "regimes unavailable")); return; }
  const inst = r.body.instruments || {};
  const parts = [el("p", { class: "muted" }, "production " + (r.body.production || "—") + " · canary " + (r.body.canary || "—"))];
  for (const [iid, lane] of Object.entries(inst)) {
    const prod = lane.production;
    const block = el("div", { class: "regime", "data-instrument": iid }, el("h3", {}, iid));
    if (!prod) block.append(el("p", { class: "muted" }, "no model"));
    else if (!prod.ready) block.append(el("p", { class: "muted" }, "warming up: " + prod.warmup_bars_left + " bars left"));
    else {
      block.append(el("p", {}, "macro: " + prod.macro.state), posteriorBars(prod.macro),
        el("p", {}, "micro: " + prod.micro.state), posteriorBars(prod.micro));
      if (prod.decision) block.append(el("p", { class: "muted" }, "decision " + prod.decision.action + " → exposure " + prod.decision.target_exposure));
    }
    parts.push(block);
  }
  if (!Object.keys(inst).length) parts.push(el("p", { class: "muted" }, "no instrument yet"));
  box.replaceChildren(...parts);
}

async function loadModels() {
  const box = $("models-body");
  let r;
  try { r = await getJSON("/models"); } catch (e) { return; }
  if (r.status === 404) { box.replaceChildren(el("p", { class: "muted" }, "no model registry (no hmm strategy)")); return; }
  if (!r.ok || !r.body) { box.replaceChildren(el("p", { class: "muted" }, "models unavailable")); return; }
  const b = r.body;
  const rows = (b.models || []).slice(0, 20).map((m) => {
    const id = m.id || "?";
    const status = m.error ? "unreadable: " + m.error : (m.status || m.tag || "");
    return el("tr", { "data-model": id }, el("td", {}, id),
      el("td", { class: m.tag === "production" ? "pos" : (m.error ? "neg" : "") }, status),
      el("td", {}, m.instrument || "—"), num(m.n_bars == null ? null : String(m.n_bars)),
      el("td", { class: "muted" }, m.created_at || ""));
  });
  const table = el("table", {}, el("thead", {}, el("tr", {}, ...["model", "status", "instrument", "bars", "created"].map((h) => el("th", {}, h)))));
  const body = el("tbody", {});
  replaceRows(body, rows, "no model registered", 5);
  table.append(body);
  const t = b.training;
  if (!t) { box.replaceChildren(table); return; }
  // A training runs in its worker: show its restarts and look again in 5 s (no event marks progress).
  const p = t.progress;
  const line = "training " + (t.id || "?") + " (" + (t.mode || "") + ", " + (t.bars || 0) + " bars): " +
    (p ? "restart " + p.restarts_done + " of " + p.restarts_total + ", " + p.fitting : "starting");
  box.replaceChildren(el("p", { id: "models-training", class: "muted" }, line), table);
  throttle("models", loadModels, 5000);
}

async function loadStrategies() {
  const box = $("strategies-body");
  let r;
  try { r = await getJSON("/strategies"); } catch (e) { return; }
  if (!r.ok || !r.body) { box.replaceChildren(el("p", { class: "muted" }, "strategies unavailable")); return; }
  const table = el("table", {}, el("thead", {}, el("tr", {}, ...["strategy", "kind", "state", "share", "equity", "PnL", "drawdown %", "fills", "denials"].map((h) => el("th", {}, h)))));
  const body = el("tbody", {});
  replaceRows(body, (r.body.strategies || []).map((s) => el("tr", { "data-strategy": s.strategy_id },
    el("td", {}, s.strategy_id), el("td", {}, s.kind), el("td", {}, s.state), num(s.share == null ? null : (s.share * 100).toFixed(1) + "%"),
    num(s.equity_usd == null ? null : s.equity_usd.toFixed(2)), num(s.pnl_usd == null ? null : s.pnl_usd.toFixed(2), true),
    num(s.drawdown_pct == null ? null : s.drawdown_pct.toFixed(2)), num(String(s.fills ?? "—")), num(String(s.denials ?? "—")))),
  "no strategy", 9);
  table.append(body);
  box.replaceChildren(table);
}

// ------------------------------------------------------------------ equity chart

function addEquityPoint(tMs, equity, peak, dd, currency) {
  const e = parseFloat(equity), p = parseFloat(peak), d = parseFloat(dd);
  if (!isFinite(e)) return;
  if (currency) state.equityCurrency = currency;
  const last = state.equity[state.equity.length - 1];
  if (last && tMs <= last.t_ms) return;
  state.equity.push({ t_ms: tMs, equity: e, peak: isFinite(p) ? p : e, dd: isFinite(d) ? d : 0 });
  if (state.equity.length > 5000) state.equity.splice(0, state.equity.length - 5000);
  throttle("chart", drawChart, 100);
}

async function loadEquity() {
  const range = Number($("equity-range").value);
  const q = range > 0 ? "?since=" + Math.floor(Date.now() / 1000 - range) : "";
  let r;
  try { r = await getJSON("/equity" + q); } catch (e) { return; }
  if (!r.ok || !r.body) { $("equity-note").textContent = (r.body && r.body.error) || "equity unavailable"; return; }
  const b = r.body;
  state.equityCurrency = b.currency;
  state.equity = b.samples.map((s) => ({ t_ms: Number(s.ts_ns) / NS_PER_MS, equity: parseFloat(s.equity),
    peak: parseFloat(s.peak_equity), dd: parseFloat(s.drawdown_pct) }));
  const c = b.current;
  addEquityPoint(Number(c.ts_ns) / NS_PER_MS, c.equity, c.peak_equity, c.drawdown_pct, b.currency);
  $("equity-note").textContent = b.samples.length + " journaled samples (position snapshots)" +
    (b.skipped ? ", " + b.skipped + " unreadable skipped" : "") + "; live points added while the page is open";
  $("equity-chart").setAttribute("data-samples", String(b.samples.length));
  drawChart();
}

function drawChart() {
  const canvas = $("equity-chart");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 900, h = canvas.clientHeight || 260;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue("--muted").trim() || "#888";
  const accent = css.getPropertyValue("--accent").trim() || "#2f6fdd";
  const bad = css.getPropertyValue("--bad").trim() || "#c62828";
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = fg;
  const pts = state.equity;
  if (pts.length === 0) { g.fillText("no equity sample yet", 10, 20); return; }
  const left = 80, right = w - 10, top = 10, split = Math.round(h * 0.68), bottom = h - 22;
  const t0 = pts[0].t_ms, t1 = Math.max(pts[pts.length - 1].t_ms, t0 + 1);
  let lo = Infinity, hi = -Infinity, ddMax = 0;
  for (const p of pts) { lo = Math.min(lo, p.equity); hi = Math.max(hi, p.equity, p.peak); ddMax = Math.max(ddMax, p.dd); }
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const x = (t) => left + (right - left) * (t - t0) / (t1 - t0);
  const y = (v) => top + (split - 10 - top) * (hi - v) / (hi - lo);
  const yd = (d) => split + (bottom - split) * (ddMax > 0 ? d / ddMax : 0);
  // axes labels
  g.fillText(hi.toFixed(2), 4, top + 8);
  g.fillText(lo.toFixed(2), 4, split - 10);
  g.fillText("DD " + ddMax.toFixed(2) + "%", 4, bottom);
  g.fillText(new Date(t0).toISOString().slice(0, 16).replace("T", " "), left, h - 6);
  const endLabel = new Date(t1).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  g.fillText(endLabel, right - g.measureText(endLabel).width, h - 6);
  g.strokeStyle = fg; g.globalAlpha = 0.3; g.beginPath();
  g.moveTo(left, split); g.lineTo(right, split); g.stroke(); g.globalAlpha = 1;
  // peak (dashed) and equity lines
  g.setLineDash([4, 4]); g.strokeStyle = fg; g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(x(p.t_ms), y(p.peak)) : g.moveTo(x(p.t_ms), y(p.peak)))); g.stroke();
  g.setLineDash([]); g.strokeStyle = accent; g.lineWidth = 1.5; g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(x(p.t_ms), y(p.equity)) : g.moveTo(x(p.t_ms), y(p.equity)))); g.stroke();
  const lastPt = pts[pts.length - 1];  // the newest value as a dot (a single sample has no line)
  g.fillStyle = accent; g.beginPath(); g.arc(x(lastPt.t_ms), y(lastPt.equity), 3, 0, 2 * Math.PI); g.fill();
  // drawdown area below the split
  g.fillStyle = bad; g.globalAlpha = 0.35; g.beginPath(); g.moveTo(x(pts[0].t_ms), split);
  for (const p of pts) g.lineTo(x(p.t_ms), yd(p.dd));
  g.lineTo(x(pts[pts.length - 1].t_ms), split); g.closePath(); g.fill(); g.globalAlpha = 1;
  canvas.setAttribute("data-points", String(pts.length));
}

// ------------------------------------------------------------------ live stream

function setLive(on, text) {
  $("live-status").className = "dot " + (on ? "on" : "off");
  $("live-text").textContent = text;
  document.body.setAttribute("data-live", on ? "1" : "0");
}

function logEvent(type, data) {
  const list = $("events-list");
  const t = fmtTime(data.ts_event_ns);
  const brief = type === "Fill" ? `${data.side} ${data.qty} ${data.instrument_id} @ ${data.price}`
    : type === "TradingStateChanged" ? `${data.old} → ${data.new} (${data.source}: ${data.reason})`
    : type === "OrderEvent" ? `${data.client_order_id} ${data.status}`
    : type === "PositionChanged" ? `${data.instrument_id} qty ${data.qty}`
    : type === "ComponentStateChanged" ? `${data.component} ${data.state} ${data.detail || ""}`
    : type === "RegimeUpdate" ? `${data.instrument_id} ${data.level} state ${data.state}`
    : type === "BalanceUpdate" ? `${data.venue} ${data.asset} free ${data.free} locked ${data.locked}`
    : JSON.stringify(data).slice(0, 160);
  list.prepend(el("li", { "data-type": type }, t + "  " + type + "  " + brief));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

const HANDLERS = {
  Fill(d) {
    if (addFill({ ts_ns: d.ts_event_ns, instrument_id: d.instrument_id, side: d.side, qty: d.qty, price: d.price,
      fee: d.fee, fee_asset: d.fee_asset, trade_id: d.trade_id, client_order_id: d.client_order_id }, true)) renderFills();
    throttle("positions", loadPositions); throttle("orders", loadOrders); throttle("strategies", loadStrategies, 1000);
  },
  OrderEvent() { throttle("orders", loadOrders); },
  PositionChanged() { throttle("positions", loadPositions); },
  BalanceUpdate() { throttle("positions", loadPositions); },
  TradingStateChanged(d) { renderTradingState(d.new, d.reason, d.source); throttle("status", loadStatus); },
  VenueTradingStateChanged() { throttle("status", loadStatus); },
  BreakerStateChanged() { throttle("status", loadStatus); },
  ComponentStateChanged() { throttle("status", loadStatus); },
  RegimeUpdate() { throttle("regimes", loadRegimes, 2000); },
  ModelChanged() { throttle("models", loadModels); throttle("regimes", loadRegimes); },
  StrategyStateChanged() { throttle("strategies", loadStrategies); },
  AllocationChanged() { throttle("strategies", loadStrategies); },
};

function connect() {
  if (state.source) state.source.close();
  const es = new EventSource("/events/public");
  state.source = es;
  es.onopen = () => {
    setLive(true, "live");
    state.reconnectMs = 500;
    loadAll();  // whatever happened while disconnected
  };
  es.onerror = () => {
    // Our own backoff (0.5 s doubling to 30 s) instead of the browser's: it also covers the
    // cases where the browser gives up for good (a 503 when the public streams are full).
    if (state.source !== es) return;
    es.close();
    state.source = null;
    setLive(false, "disconnected, retrying in " + (state.reconnectMs / 1000) + " s");
    setTimeout(connect, state.reconnectMs);
    state.reconnectMs = Math.min(state.reconnectMs * 2, 30000);
  };
  for (const [type, fn] of Object.entries(HANDLERS)) {
    es.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      logEvent(type, data);
      fn(data);
    });
  }
}

function loadAll() {
  loadStatus(); loadPositions(); loadOrders(); loadFills(); loadEquity();
  loadRegimes(); loadModels(); loadStrategies();
}

// ------------------------------------------------------------------ admin (token)

function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }

function renderAdmin() {
  const has = !!token();
  $("admin-controls").hidden = !has;
  $("token-clear").hidden = !has;
  $("token-input").value = "";
  $("token-input").placeholder = has ? "token set for this tab" : "read-only without a token";
}

async function checkToken(candidate) {
  // The token-guarded /events answers 200 (then we hang up) or 401: no side effect, nothing audited.
  const ctl = new AbortController();
  try {
    const r = await fetch("/events?types=TradingStateChanged", { headers: { Authorization: "Bearer " + candidate }, signal: ctl.signal });
    return r.status;
  } catch (e) {
    return 0;
  } finally {
    ctl.abort();
  }
}

async function saveToken(ev) {
  ev.preventDefault();
  const candidate = $("token-input").value.trim();
  if (!candidate) return;
  const status = await checkToken(candidate);
  if (status === 200) {
    sessionStorage.setItem(TOKEN_KEY, candidate);
    showMessage("admin token accepted (kept in this tab only)", false);
  } else if (status === 401) {
    showMessage("token refused by the daemon (401): the dashboard stays read-only", true);
  } else {
    showMessage("could not check the token (HTTP " + status + ")", true);
  }
  renderAdmin();
}

function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  renderAdmin();
  showMessage("admin token forgotten: read-only", false);
}

const ACTIONS = {
  kill: { path: "/admin/kill", text: "Halt trading now? No new order is sent until someone resumes." },
  reduce: { path: "/admin/reduce", text: "Allow only exposure-reducing orders (REDUCING)?" },
  resume: { path: "/admin/resume", text: "Resume trading (ACTIVE)? Strategies will trade again." },
};

function askConfirm(action) {
  const a = ACTIONS[action];
  state.pendingAction = action;
  let text = a.text;
  if (action === "kill" && $("kill-cancel-orders").checked) text += " Every open order is cancelled.";
  $("confirm-text").textContent = text;
  $("confirm-dialog").setAttribute("data-action", action);
  $("confirm-dialog").showModal();
}

async function runConfirmed() {
  const action = state.pendingAction;
  state.pendingAction = null;
  $("confirm-dialog").close();
  if (!action) return;
  const body = { reason: $("confirm-reason").value || "dashboard" };
  if (action === "kill" && $("kill-cancel-orders").checked) body.cancel_orders = true;
  let r;
  try {
    r = await fetch(ACTIONS[action].path, { method: "POST", headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
      body: JSON.stringify(body) });
  } catch (e) {
    showMessage(action + " failed: daemon unreachable", true);
    return;
  }
  let answer = null;
  try { answer = await r.json(); } catch (e) { answer = null; }
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    renderAdmin();
    showMessage(action + " refused: the token is no longer valid (401); read-only", true);
  } else if (!r.ok) {
    showMessage(action + " refused (" + r.status + "): " + ((answer && answer.error) || "no detail"), true);
  } else {
    showMessage(action + " done" + (answer && answer.trading_state ? ": " + answer.trading_state : ""), false);
  }
  loadStatus();
}

// ------------------------------------------------------------------ start

function start() {
  $("token-form").addEventListener("submit", saveToken);
  $("token-clear").addEventListener("click", clearToken);
  for (const b of document.querySelectorAll("#admin-controls button[data-action]")) {
    b.addEventListener("click", () => askConfirm(b.getAttribute("data-action")));
  }
  $("confirm-ok").addEventListener("click", runConfirmed);
  $("confirm-cancel").addEventListener("click", () => { state.pendingAction = null; $("confirm-dialog").close(); });
  $("confirm-dialog").addEventListener("cancel", () => { state.pendingAction = null; });
  $("equity-range").addEventListener("change", loadEquity);
  window.addEventListener("resize", () => throttle("chart", drawChart, 100));
  renderAdmin();
  setLive(false, "connecting");
  loadAll();
  connect();
  setInterval(() => { loadStatus(); loadPositions(); }, REFRESH_MS);
  document.body.setAttribute("data-ready", "1");
}

document.addEventListener("DOMContentLoaded", start);
