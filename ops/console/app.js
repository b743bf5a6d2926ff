// Keel operator console. Plain JavaScript, no build step, no other origin.
//
// The API token is asked for once and kept in sessionStorage (this tab only).
// Every call sends `Authorization: Bearer` and `X-Keel-Client: web`; a 401
// brings the prompt back. Live updates come from GET /api/v1/events read with
// fetch() and a streaming body (EventSource cannot send the header, and the
// token must stay out of URLs); the page reconnects with backoff and re-reads
// the snapshots after a reconnect or a `lagged` event. Endpoints an older
// engine lacks (404) are shown as unavailable instead of failing the page.
'use strict';

(() => {
  const TOKEN_KEY = 'keel.console.token';
  const MAX_FILLS = 200;
  const MAX_LOG = 100;
  /** Most setup alerts the page keeps (the oldest go first). */
  const MAX_SETUP_ALERTS = 50;
  const FINAL = new Set(['filled', 'canceled', 'rejected', 'expired']);

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY);
  let tokenWaiters = [];

  const st = {
    status: null,
    orders: new Map(),
    fills: [],
    strategies: [],
    symbols: [],
    symbol: null,
    candles: [],
    interval: 60,
    eventsAvailable: true,
    equityServed: false,
    lastPrice: new Map(),
  };

  // ---------- formatting ----------

  /** ISO-8601 UTC to the second (`2026-12-06T07:31:37Z`). */
  function iso(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '–';
    return new Date(Number(ms)).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  /** "12 s ago", "3 min ago", "in 5 min". */
  function relative(ms) {
    if (!ms) return '';
    const d = Math.round((Date.now() - Number(ms)) / 1000);
    const a = Math.abs(d);
    const txt = a < 60 ? `${a} s` : a < 3600 ? `${Math.floor(a / 60)} min` : a < 86400 ? `${Math.floor(a / 3600)} h` : `${Math.floor(a / 86400)} d`;
    return d >= 0 ? `${txt} ago` : `in ${txt}`;
  }

  /** A decimal string for display: at most `dp` fraction digits (truncated,
   *  never through a float), trailing zeros dropped, thousands grouped. */
  function dec(s, dp = 8) {
    if (s === null || s === undefined || s === '') return '–';
    const str = String(s);
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(str);
    if (!m) return str;
    const frac = (m[3] || '').slice(0, dp).replace(/0+$/, '');
    const int = m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const neg = m[1] && (/[1-9]/.test(m[2]) || /[1-9]/.test(frac)) ? '-' : '';
    return neg + int + (frac ? '.' + frac : '');
  }

  function signClass(s) {
    const n = Number(s);
    return n > 0 ? 'pos' : n < 0 ? 'neg' : '';
  }

  /** An element with attributes and children (text is always textContent). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** A time cell: ISO UTC, with the relative age as its tooltip. */
  function timeCell(ms) {
    return el('td', { 'data-ts': ms, title: relative(ms) }, iso(ms));
  }

  function fillRows(tbody, rows, empty, cols) {
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colSpan: cols }, empty))]));
  }

  let toastTimer = null;
  function toast(msg, bad) {
    const t = $('toast');
    t.textContent = msg;
    t.className = bad ? 'toast bad' : 'toast';
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function headers(json) {
    const h = { 'Authorization': `Bearer ${token}`, 'X-Keel-Client': 'web' };
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  /** One API call. `optional`: a 404 answers null (an endpoint this engine lacks). */
  async function api(path, { method = 'GET', body, optional = false } = {}) {
    if (!token) { await waitForToken(); }
    const r = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body !== undefined ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    if (r.status === 401) {
      askToken('The engine refused the token; enter it again.');
      throw new ApiError(401, 'unauthorized');
    }
    if (r.status === 404 && optional) return null;
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new ApiError(r.status, (data && data.error) || `HTTP ${r.status}`);
    return data;
  }

  // ---------- token prompt ----------

  let eventsAbort = null;

  function askToken(error) {
    token = null;
    // The open event stream was authorised by the old token: close it.
    if (eventsAbort) eventsAbort.abort();
    sessionStorage.removeItem(TOKEN_KEY);
    const d = $('token-dialog');
    $('token-error').hidden = !error;
    $('token-error').textContent = error || '';
    $('token-input').value = '';
    if (!d.open) d.showModal();
    $('token-input').focus();
  }

  function waitForToken() {
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }

  async function submitToken() {
    const value = $('token-input').value.trim();
    if (!value) return;
    $('token-submit').disabled = true;
    try {
      const r = await fetch('/api/v1/status', { headers: { 'Authorization': `Bearer ${value}`, 'X-Keel-Client': 'web' }, cache: 'no-store' });
      if (r.status === 401 || r.status === 429) {
        $('token-error').hidden = false;
        $('token-error').textContent = r.status === 401 ? 'Wrong token: the engine refused it.' : 'Too many failed attempts from this address; wait and try again.';
        $('token-input').select();
        return;
      }
      token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      $('token-dialog').close();
      const waiters = tokenWaiters;
      tokenWaiters = [];
      waiters.forEach((w) => w());
      refreshAll();
    } catch (e) {
      $('token-error').hidden = false;
      $('token-error').textContent = `The engine did not answer: ${e.message}`;
    } finally {
      $('token-submit').disabled = false;
    }
  }

  // ---------- overview ----------

  function renderStatus(s) {
    st.status = s;
    const mode = String(s.venue_mode || 'unknown');
    const badge = $('venue-mode');
    const described = String(s.venue_description || mode);
    badge.textContent = mode === 'mainnet' ? 'MAINNET · real money' : described;
    badge.className = `badge mode mode-${mode}`;
    $('mainnet-banner').hidden = mode !== 'mainnet';
    document.title = mode === 'mainnet' ? 'MAINNET · Keel console' : `Keel console (${mode})`;
    $('venue-detail').textContent = `${s.venue || ''} · ${described} · up ${Math.floor((s.uptime_seconds || 0) / 60)} min`;

    const listener = s.listener || {};
    $('listener-banner').hidden = !listener.warning;
    $('listener-banner').textContent = listener.warning ? `Plain HTTP: ${listener.warning}` : '';

    const ts = s.trading_state || '?';
    const stateBadge = $('trading-state');
    stateBadge.textContent = ts;
    stateBadge.className = `badge state state-${ts}`;
    $('state-value').textContent = ts;
    $('state-value').className = `big state-text-${ts}`;
    $('state-reason').textContent = s.trading_state_reason || '';
    const since = s.risk && s.risk.snapshot && s.risk.snapshot.base_state && s.risk.snapshot.base_state.since_ms;
    $('state-since').textContent = since ? `since ${iso(since)} (${relative(since)})` : '';

    renderEmergency(s.emergency_stop || {});
    // Resume also clears latched protections (a HALTED or REDUCING state).
    $('btn-resume').disabled = !((s.emergency_stop && s.emergency_stop.active) || ts !== 'ACTIVE');

    const p = s.portfolio || {};
    $('equity-value').textContent = `${dec(p.equity, 2)} ${p.quote_asset || ''}`;
    $('pnl-realized').textContent = dec(p.realized_pnl, 2);
    $('pnl-realized').className = `mono ${signClass(p.realized_pnl)}`;
    $('pnl-unrealized').textContent = dec(p.unrealized_pnl, 2);
    $('pnl-unrealized').className = `mono ${signClass(p.unrealized_pnl)}`;
    $('pnl-fees').textContent = dec(p.fees, 2);
    renderPositions(p.positions || []);
    renderProtections(s.risk && s.risk.snapshot);
    if (!st.equityServed) renderDrawdownFromRisk(s.risk && s.risk.snapshot);
    renderLimits(s.risk && s.risk.snapshot);
    st.strategies = s.strategies || st.strategies;
    renderStrategies();
    renderUniverse(s.universe);

    const symbols = (s.risk && s.risk.snapshot && s.risk.snapshot.usage && s.risk.snapshot.usage.symbols || []).map((u) => u.symbol);
    const fromPositions = (p.positions || []).map((x) => x.symbol);
    setSymbols([...new Set([...symbols, ...fromPositions])]);
  }

  function renderEmergency(e) {
    const card = $('estop-card');
    card.classList.toggle('active', !!e.active);
    $('estop-value').textContent = e.active ? 'SET' : 'clear';
    $('estop-value').className = e.active ? 'big neg' : 'big pos';
    const d = $('estop-detail');
    if (e.active) {
      d.replaceChildren(
        el('div', {}, 'by ', el('code', { id: 'estop-by' }, e.set_by || e.by || '?')),
        el('div', { 'data-ts': e.set_at_ms }, `at ${iso(e.set_at_ms)} (${relative(e.set_at_ms)})`),
        el('div', {}, `reason: ${e.reason || '–'}`),
      );
    } else if (e.cleared_at_ms) {
      d.replaceChildren(el('div', { class: 'muted' }, `last cleared ${iso(e.cleared_at_ms)} by ${e.cleared_by || '?'}`));
    } else {
      d.replaceChildren(el('div', { class: 'muted' }, 'never set'));
    }
  }

  function renderProtections(snap) {
    const ul = $('protections');
    if (!snap || !snap.protections) { ul.replaceChildren(el('li', { class: 'muted' }, 'unknown')); return; }
    const p = snap.protections;
    const items = [
      el('li', {}, 'daily PnL ', el('span', { class: `mono ${signClass(p.daily_pnl)}` }, dec(p.daily_pnl, 2))),
      el('li', {}, `drawdown ${dec(p.drawdown_pct, 2)} % of the high-water mark`),
      el('li', { class: p.drawdown_trip ? 'neg' : '' }, `max drawdown: ${p.drawdown_trip ? 'TRIPPED ' + JSON.stringify(p.drawdown_trip) : 'ok'}`),
      el('li', { class: p.daily_loss_trip ? 'neg' : '' }, `daily loss: ${p.daily_loss_trip ? 'TRIPPED ' + JSON.stringify(p.daily_loss_trip) : 'ok'}`),
    ];
    for (const s of p.paused_strategies || []) {
      items.push(el('li', { class: 'lvl-WARN' }, `paused: ${typeof s === 'string' ? s : JSON.stringify(s)}`));
    }
    for (const l of p.losing_streaks || []) {
      items.push(el('li', { class: 'muted' }, `losing streak ${l.losses}: ${l.strategy}${l.symbol ? ' ' + l.symbol : ''}`));
    }
    ul.replaceChildren(...items);
  }

  function ratio(used, limit) {
    const u = Number(used); const l = Number(limit);
    return l > 0 && Number.isFinite(u) ? Math.min(Math.abs(u) / l, 1) : null;
  }

  function renderLimits(snap) {
    const tbody = $('limits').tBodies[0];
    if (!snap || !snap.limits) { fillRows(tbody, [], 'unknown', 4); return; }
    const L = snap.limits; const U = snap.usage || {}; const P = snap.protections || {};
    const maxOf = (xs, k) => xs.reduce((m, x) => Math.max(m, Math.abs(Number(x[k]) || 0)), 0);
    const syms = U.symbols || []; const strats = U.strategies || [];
    const dailyLossPct = P.day_start_equity && Number(P.daily_pnl) < 0 ? (-Number(P.daily_pnl) / Number(P.day_start_equity) * 100).toFixed(3) : '0';
    const rows = [
      ['Order notional', L.max_order_notional, null],
      ['Position notional (largest)', L.max_position_notional, maxOf(syms, 'position_notional')],
      ['Gross exposure', L.max_gross_exposure, U.gross_exposure],
      ['Open orders', L.max_open_orders, U.open_orders],
      ['Orders / s (all)', L.global_orders_per_second, U.orders_last_second],
      ['Orders / min (all)', L.global_orders_per_minute, U.orders_last_minute],
      ['Orders / min (busiest strategy)', L.strategy_orders_per_minute, maxOf(strats, 'orders_last_minute')],
      ['Max drawdown %', L.max_drawdown_pct, P.drawdown_pct],
      ['Daily loss %', L.daily_loss_limit_pct, dailyLossPct],
      ['Price band %', L.price_band_pct, null],
    ];
    fillRows(tbody, rows.map(([name, limit, used]) => {
      const r = ratio(used, limit);
      const meter = r === null ? '' : el('meter', { min: 0, max: 1, low: 0.7, high: 0.9, optimum: 0, value: r });
      return el('tr', {}, el('td', {}, name), el('td', {}, dec(limit, 4)), el('td', {}, used === null ? '–' : dec(String(used), 4)), el('td', {}, meter));
    }), 'none', 4);
  }

  // ---------- tables ----------

  function renderPositions(positions) {
    const rows = positions.filter((p) => Number(p.qty) !== 0 || Number(p.realized_pnl) !== 0).map((p) =>
      el('tr', { 'data-symbol': p.symbol },
        el('td', {}, p.symbol), el('td', {}, dec(p.qty)), el('td', {}, dec(p.avg_price, 4)), el('td', {}, dec(p.mark, 4)),
        el('td', { class: signClass(p.unrealized_pnl) }, dec(p.unrealized_pnl, 2)),
        el('td', { class: signClass(p.realized_pnl) }, dec(p.realized_pnl, 2)), el('td', {}, dec(p.fees, 4)),
        el('td', {}, Number(p.qty) !== 0 ? el('button', { class: 'small', type: 'button', onclick: () => flatten(p.symbol) }, 'Flatten') : '')));
    fillRows($('positions').tBodies[0], rows, 'no positions', 8);
  }

  function renderOrders() {
    const orders = [...st.orders.values()].sort((a, b) => (b.created_ms || 0) - (a.created_ms || 0));
    const rows = orders.map((o) => {
      const t = o.order_type || {};
      const kind = String(t.type || (typeof t === 'string' ? t : '?')).toUpperCase();
      const price = t.price === undefined ? 'market' : t.stop === undefined ? dec(t.price, 8) : `${dec(t.price, 8)} (stop ${dec(t.stop, 8)})`;
      return el('tr', { 'data-id': o.client_order_id },
        timeCell(o.created_ms), el('td', {}, o.strategy_id), el('td', {}, o.symbol),
        el('td', { class: `side-${o.side}` }, o.side), el('td', {}, kind), el('td', {}, price), el('td', {}, dec(o.qty)), el('td', {}, dec(o.filled_qty)),
        el('td', {}, o.status), el('td', { class: 'muted' }, o.client_order_id),
        el('td', {}, el('button', { class: 'small cancel', type: 'button', onclick: () => cancelOrder(o.client_order_id) }, 'Cancel')));
    });
    fillRows($('orders').tBodies[0], rows, 'no open orders', 11);
  }

  function fillRow(f, fresh) {
    return el('tr', { 'data-trade-id': String(f.trade_id), class: fresh ? 'fresh' : '' },
      timeCell(f.ts_ms), el('td', {}, f.strategy_id), el('td', {}, f.symbol), el('td', { class: `side-${f.side}` }, f.side),
      el('td', {}, dec(f.qty)), el('td', {}, dec(f.price, 4)), el('td', {}, `${dec(f.fee)} ${f.fee_asset || ''}`));
  }

  function renderFills() {
    fillRows($('fills').tBodies[0], st.fills.map((f) => fillRow(f, false)), 'no fills yet', 7);
  }

  /** A strategy's PnL as the engine keeps it (its own ledger over every
   *  fill, unrealized marked at the latest prices): realized + unrealized −
   *  fees, summed in floating point for display only. `null` when the engine
   *  does not know its realized PnL (a ledger not rebuilt yet). */
  function strategyPnl(s) {
    if (s.realized_pnl === null || s.realized_pnl === undefined || s.fees === null || s.fees === undefined) return null;
    return Number(s.realized_pnl) + Number(s.unrealized_pnl || 0) - Number(s.fees);
  }

  /** The strategy's PnL cell: the net figure, its parts in the tooltip, and
   *  since when it counts when that is not the strategy's first fill. */
  function pnlCell(s) {
    const pnl = strategyPnl(s);
    const parts = `realized ${dec(s.realized_pnl, 2)}, unrealized ${dec(s.unrealized_pnl, 2)}, fees ${dec(s.fees, 4)}`;
    const since = s.pnl_since ? ` — counted since ${s.pnl_since} (earlier history is not in the journal)` : '';
    return el('td', { class: `mono ${signClass(pnl || 0)}`, title: parts + since },
      pnl === null ? '–' : pnl.toFixed(2) + (s.pnl_since ? ' *' : ''));
  }

  /** The `[universe]` members (templates run one instance each) and the
   *  symbols whose instances only exit until they retire. */
  function renderUniverse(u) {
    const line = $('universe-line');
    line.hidden = !u;
    if (!u) return;
    const leaving = (u.leaving || []).length ? ` · leaving (exits only): ${u.leaving.join(', ')}` : '';
    line.textContent = `Universe (${(u.members || []).length}): ${(u.members || []).join(', ')}${leaving}`;
  }

  function renderStrategies() {
    const usage = new Map(((st.status && st.status.risk && st.status.risk.snapshot && st.status.risk.snapshot.usage && st.status.risk.snapshot.usage.strategies) || []).map((u) => [u.strategy, u]));
    const rows = st.strategies.map((s) => {
      const u = usage.get(s.id) || {};
      const state = s.failure ? `failed: ${s.failure}` : s.paused ? 'paused' : 'running';
      const cls = s.failure ? 'neg' : s.paused ? 'lvl-WARN' : 'pos';
      return el('tr', { 'data-strategy': s.id },
        el('td', {}, s.id), el('td', {}, s.kind), el('td', {}, (s.symbols || []).join(', ')),
        el('td', { class: cls }, state),
        pnlCell(s),
        el('td', {}, u.orders_last_minute ?? '–'), el('td', {}, u.open_orders ?? '–'),
        el('td', {}, s.paused
          ? el('button', { class: 'small', type: 'button', onclick: () => setPaused(s.id, false) }, 'Resume')
          : el('button', { class: 'small', type: 'button', onclick: () => setPaused(s.id, true) }, 'Pause')));
    });
    fillRows($('strategies').tBodies[0], rows, 'no strategies', 8);
  }

  /** Adds a line at the top of a list; the same text again (a rejection
   *  repeated every bar) counts up on its line, moved to the top, instead of
   *  flooding the list. */
  function pushLog(list, item, key) {
    const ul = $(list);
    const placeholder = ul.querySelector('li.muted');
    if (placeholder) placeholder.remove();
    const same = key ? [...ul.children].find((li) => li.dataset.key === key) : null;
    if (same) {
      const n = Number(same.dataset.n || 1) + 1;
      same.dataset.n = String(n);
      let badge = same.querySelector('.count');
      if (!badge) { badge = el('span', { class: 'count' }); same.append(badge); }
      badge.textContent = `×${n} (last ${iso(Date.now())})`;
      ul.prepend(same);
      return;
    }
    if (key) item.dataset.key = key;
    ul.prepend(item);
    while (ul.children.length > MAX_LOG) ul.lastChild.remove();
  }

  /** A scanner's setup alert as the table's row, placed by its time
   *  (newest first); the table keeps the newest MAX_SETUP_ALERTS. Every
   *  string from the engine goes in as text. */
  function onSetupAlert(a) {
    const values = Object.entries(a.values || {}).map(([k, v]) => `${k}=${v}`).join('  ');
    const row = el('tr', { 'data-ts': a.ts_ms, 'data-condition': a.condition },
      timeCell(a.ts_ms), el('td', {}, a.strategy_id), el('td', {}, a.symbol), el('td', {}, a.condition),
      el('td', { class: 'wrap' }, a.message), el('td', { class: 'wrap' }, values));
    const tbody = $('setup-alerts').tBodies[0];
    const empty = tbody.querySelector('td.empty');
    if (empty) tbody.replaceChildren();
    const older = [...tbody.rows].find((r) => Number(r.dataset.ts) < Number(a.ts_ms));
    tbody.insertBefore(row, older || null);
    while (tbody.rows.length > MAX_SETUP_ALERTS) tbody.lastChild.remove();
  }

  function renderAudit(records) {
    const items = records.map((r) => el('li', { class: r.ok ? '' : 'neg' },
      el('span', { class: 'mono', 'data-ts': r.ts, title: relative(r.ts) }, iso(r.ts)), ` ${r.action} by ${r.by}${r.remote ? ' (' + r.remote + ')' : ''}${r.detail ? ': ' + r.detail : ''}${r.ok ? '' : ' — failed'}`));
    $('audit').replaceChildren(...(items.length ? items : [el('li', { class: 'muted' }, 'none recorded')]));
  }

  // ---------- charts ----------

  const LW = window.LightweightCharts;
  // The library's own attribution logo injects a <style> element, which the
  // page's CSP (style-src 'self') refuses: the attribution and the link to
  // tradingview.com that its licence asks for are in the page footer instead.
  const chartOptions = {
    autoSize: true,
    layout: { background: { type: 'solid', color: '#161b22' }, textColor: '#8b949e', attributionLogo: false },
    grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: '#30363d' },
    rightPriceScale: { borderColor: '#30363d' },
    localization: { timeFormatter: (t) => iso(t * 1000).replace('T', ' ') },
  };
  let candleChart = null; let candleSeries = null; let fillMarkers = null;
  let equityChart = null; let equitySeries = null; let ddLine = null;

  function initCharts() {
    if (!LW) { $('candle-note').textContent = 'chart library missing'; return; }
    candleChart = LW.createChart($('candle-chart'), chartOptions);
    candleSeries = candleChart.addSeries(LW.CandlestickSeries, {
      upColor: '#3fb950', downColor: '#f85149', borderVisible: false, wickUpColor: '#3fb950', wickDownColor: '#f85149',
    });
    fillMarkers = LW.createSeriesMarkers(candleSeries, []);
    equityChart = LW.createChart($('equity-chart'), chartOptions);
    equitySeries = equityChart.addSeries(LW.AreaSeries, { lineColor: '#58a6ff', topColor: '#58a6ff55', bottomColor: '#58a6ff05', lineWidth: 2 });
  }

  function setSymbols(symbols) {
    symbols = symbols.filter(Boolean);
    if (symbols.join() === st.symbols.join()) return;
    st.symbols = symbols;
    const sel = $('symbol-select');
    sel.replaceChildren(...symbols.map((s) => el('option', { value: s }, s)));
    if (!st.symbol || !symbols.includes(st.symbol)) { st.symbol = symbols[0] || null; }
    sel.value = st.symbol || '';
    loadCandles();
  }

  async function loadCandles() {
    if (!candleSeries || !st.symbol) return;
    const sym = st.symbol;
    try {
      const c = await api(`/api/v1/candles?symbol=${encodeURIComponent(sym)}&interval=1m&limit=300`, { optional: true });
      if (sym !== st.symbol) return;
      if (c === null) {
        $('candle-note').textContent = 'candles not served by this engine: live prices only';
        st.candles = [];
      } else {
        $('candle-note').textContent = `${c.interval || '1m'} candles`;
        st.candles = (c.candles || []).map((k) => ({ time: Math.floor(k.t / 1000), open: +k.o, high: +k.h, low: +k.l, close: +k.c }));
      }
      candleSeries.setData(st.candles);
      candleChart.timeScale().scrollToRealTime();
      renderMarkers();
    } catch (e) {
      $('candle-note').textContent = `candles: ${e.message}`;
    }
  }

  function renderMarkers() {
    if (!fillMarkers) return;
    const bar = st.interval;
    const first = st.candles.length ? st.candles[0].time : 0;
    const markers = st.fills.filter((f) => f.symbol === st.symbol && f.ts_ms / 1000 >= first)
      .map((f) => ({
        time: Math.floor(f.ts_ms / 1000 / bar) * bar,
        position: f.side === 'BUY' ? 'belowBar' : 'aboveBar',
        color: f.side === 'BUY' ? '#3fb950' : '#f85149',
        shape: f.side === 'BUY' ? 'arrowUp' : 'arrowDown',
        text: `${f.side === 'BUY' ? 'B' : 'S'} ${dec(f.qty)}`,
      }))
      .sort((a, b) => a.time - b.time);
    fillMarkers.setMarkers(markers);
  }

  /** A throttled price from the event stream updates (or opens) the last candle. */
  function onPrice(p) {
    st.lastPrice.set(p.symbol, p.price);
    if (p.symbol !== st.symbol) return;
    $('last-price').textContent = dec(p.price, 4);
    if (!candleSeries) return;
    const price = Number(p.price);
    const t = Math.floor((p.ts || Date.now()) / 1000 / st.interval) * st.interval;
    const last = st.candles[st.candles.length - 1];
    if (last && last.time === t) {
      last.high = Math.max(last.high, price); last.low = Math.min(last.low, price); last.close = price;
      candleSeries.update(last);
    } else if (!last || t > last.time) {
      const bar = { time: t, open: price, high: price, low: price, close: price };
      st.candles.push(bar);
      candleSeries.update(bar);
    }
  }

  /** Drawdown from the risk guard (percent of the high-water mark), when the
   *  engine serves no equity history. */
  function renderDrawdownFromRisk(snap) {
    const p = snap && snap.protections; const l = snap && snap.limits;
    if (!p) return;
    const dd = Number(p.drawdown_pct || 0); const limit = Number(l && l.max_drawdown_pct || 0);
    $('dd-value').textContent = `${dd.toFixed(2)} %`;
    $('dd-meter').value = limit > 0 ? Math.min(dd / limit, 1) : 0;
    $('dd-limit').textContent = limit > 0 ? `limit ${limit.toFixed(2)} % · high-water ${dec(p.high_water_mark, 2)}` : 'no drawdown limit';
  }

  function renderEquity(e) {
    st.equityServed = e !== null;
    if (e === null) { $('equity-note').textContent = 'equity history not served by this engine'; return; }
    const pts = [];
    const add = (t, value) => {
      while (pts.length && pts[pts.length - 1].time >= t) pts.pop();
      pts.push({ time: t, value });
    };
    for (const p of e.points || []) add(Math.floor(p.ts / 1000), Number(p.equity));
    const stored = pts.length;
    // The equity now (from the status) ends the curve between stored points.
    const now = st.status && st.status.portfolio && st.status.portfolio.equity;
    if (now !== undefined && now !== null) add(Math.floor(Date.now() / 1000), Number(now));
    if (equitySeries) {
      equitySeries.setData(pts);
      if (ddLine) { equitySeries.removePriceLine(ddLine); ddLine = null; }
      if (e.max_drawdown !== null && e.max_drawdown !== undefined && e.peak) {
        const floor = Number(e.peak) * (1 - Number(e.max_drawdown));
        ddLine = equitySeries.createPriceLine({ price: floor, color: '#f85149', lineStyle: 2, lineWidth: 1, title: 'drawdown limit' });
      }
      equityChart.timeScale().fitContent();
    }
    const dd = Number(e.drawdown || 0);
    $('dd-value').textContent = `${(dd * 100).toFixed(2)} %`;
    if (e.max_drawdown !== null && e.max_drawdown !== undefined) {
      const limit = Number(e.max_drawdown);
      $('dd-limit').textContent = `limit ${(limit * 100).toFixed(2)} % · peak ${dec(e.peak, 2)} ${e.quote_asset || ''}`;
      $('dd-meter').value = limit > 0 ? Math.min(dd / limit, 1) : 0;
    } else {
      $('dd-limit').textContent = `no drawdown limit · peak ${dec(e.peak, 2)}`;
    }
    $('equity-note').textContent = stored ? `${stored} stored points and now` : 'no stored points yet (one every [store] equity_interval)';
  }

  function renderPnl(p) {
    if (p === null) return;
    $('pnl-today').textContent = dec(p.today && p.today.realized, 2);
    $('pnl-today').className = `mono ${signClass(p.today && p.today.realized)}`;
    $('pnl-today-fees').textContent = dec(p.today && p.today.fees, 2);
    if (p.total) {
      $('pnl-realized').textContent = dec(p.total.realized, 2);
      $('pnl-unrealized').textContent = dec(p.total.unrealized, 2);
      $('pnl-fees').textContent = dec(p.total.fees, 2);
    }
  }

  // ---------- snapshots ----------

  let refreshing = null;
  /** Re-reads every snapshot (on unlock, after a reconnect, after `lagged`). */
  function refreshAll() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const [status, orders, fills] = await Promise.all([
          api('/api/v1/status'), api('/api/v1/orders'), api(`/api/v1/trades?limit=${MAX_FILLS}`),
        ]);
        renderStatus(status);
        loadCandles(); // bars missed while disconnected
        st.orders = new Map(orders.map((o) => [o.client_order_id, o]));
        renderOrders();
        st.fills = fills.slice().sort((a, b) => b.ts_ms - a.ts_ms);
        renderFills();
        renderMarkers();
        await refreshSlow();
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) toast(`Refresh failed: ${e.message}`, true);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  /** The slower-moving parts: equity history, PnL, audit log. */
  async function refreshSlow() {
    const [equity, pnl, audit] = await Promise.all([
      api('/api/v1/equity?limit=1440', { optional: true }),
      api('/api/v1/pnl', { optional: true }),
      api('/api/v1/audit?limit=20', { optional: true }),
    ]);
    renderEquity(equity);
    renderPnl(pnl);
    if (audit !== null) renderAudit(audit.records || []);
    else $('audit').replaceChildren(el('li', { class: 'muted' }, 'audit log not served by this engine'));
  }

  /** Status and open orders between events (marks, usage, ages). */
  async function refreshLight() {
    if (!token || refreshing) return;
    try {
      const [status, orders] = await Promise.all([api('/api/v1/status'), api('/api/v1/orders')]);
      renderStatus(status);
      st.orders = new Map(orders.map((o) => [o.client_order_id, o]));
      renderOrders();
    } catch (_) { /* shown by the link badge / prompt */ }
  }

  // ---------- live events ----------

  /** When the page last heard from the engine (any frame, pings too). */
  let heardMs = null;
  /** While the link is lost: when the next connection attempt starts. */
  let retryAt = null;

  /** The link badge; any state but a lost link has no banner. */
  function setLink(text, cls) {
    const l = $('link');
    l.textContent = text;
    l.className = `badge link ${cls || ''}`;
    retryAt = null;
    $('link-banner').hidden = true;
    document.body.classList.remove('stale');
  }

  /** The stream to the engine is gone and the next try is at `at`: a
   *  full-width banner says so and the figures are dimmed, since nothing on
   *  the page moves until the engine is back. */
  function linkLost(at) {
    setLink('disconnected', 'bad');
    retryAt = at;
    $('link-banner').hidden = false;
    document.body.classList.add('stale');
    renderLinkLost();
  }

  /** The banner's text, counting down to the next try (called every second). */
  function renderLinkLost() {
    if (retryAt === null) return;
    const wait = Math.ceil((retryAt - Date.now()) / 1000);
    const asOf = heardMs ? `as of ${iso(heardMs)} (${relative(heardMs)})` : 'not loaded yet';
    $('link-banner').textContent = `Disconnected from the engine — reconnecting ${wait > 0 ? `in ${wait} s` : 'now'}. `
      + `The figures below are ${asOf} and may be out of date.`;
  }

  function onEvent(name, data) {
    switch (name) {
      case 'hello':
        setLink('live', 'ok');
        refreshAll();
        break;
      case 'fill': {
        if (st.fills.some((f) => String(f.trade_id) === String(data.trade_id))) break;
        st.fills.unshift(data);
        if (st.fills.length > MAX_FILLS) st.fills.pop();
        const tbody = $('fills').tBodies[0];
        const empty = tbody.querySelector('td.empty');
        if (empty) tbody.replaceChildren();
        tbody.prepend(fillRow(data, true));
        while (tbody.rows.length > MAX_FILLS) tbody.lastChild.remove();
        renderMarkers();
        scheduleLight();
        break;
      }
      case 'order':
        if (FINAL.has(String(data.status))) st.orders.delete(data.client_order_id);
        else st.orders.set(data.client_order_id, data);
        renderOrders();
        break;
      case 'state':
      case 'emergency_stop':
      case 'strategy':
        scheduleLight();
        if (name === 'emergency_stop' && data.active) toast(`EMERGENCY STOP set by ${data.by}: ${data.reason}`, true);
        break;
      case 'price':
        onPrice(data);
        break;
      case 'lagged':
        refreshAll();
        break;
      case 'log':
        pushLog('logs', el('li', { class: `lvl-${data.level}` },
          el('span', { class: 'mono', 'data-ts': data.ts, title: relative(data.ts) }, iso(data.ts)), ` ${data.level} ${data.target}: ${data.message}`),
        `log ${data.level} ${data.target} ${data.message}`);
        break;
      case 'rejected':
        pushLog('logs', el('li', { class: 'lvl-WARN' }, `${iso(Date.now())} order rejected (${data.strategy_id} ${data.symbol}): ${data.reason} [${data.code}]`),
          `rejected ${data.strategy_id} ${data.symbol} ${data.code} ${data.reason}`);
        break;
      case 'connectivity':
        if (!data.connected) pushLog('logs', el('li', { class: 'lvl-WARN' }, `${iso(Date.now())} ${data.stream} stream disconnected ${data.detail || ''}`));
        break;
      case 'alert':
        pushLog('logs', el('li', { class: 'lvl-ERROR' }, `${iso(Date.now())} venue alert ${JSON.stringify(data)}`));
        break;
      case 'universe':
        pushLog('logs', el('li', { class: 'lvl-INFO' },
          `${iso(Date.now())} universe changed: joined ${(data.joined || []).join(', ') || 'none'}; left ${(data.left || []).join(', ') || 'none'}`));
        scheduleLight();
        break;
      case 'setup_alert':
        onSetupAlert(data);
        break;
      case 'universe_retired':
        pushLog('logs', el('li', { class: 'lvl-INFO' }, `${iso(Date.now())} ${data.strategy_id} retired (${data.symbol} left the universe, flat)`));
        scheduleLight();
        break;
      default:
        break;
    }
  }

  /** One SSE frame: `event:` and `data:` lines; comments (`: ping`) ignored. */
  function onFrame(frame) {
    let name = 'message'; const data = [];
    for (const line of frame.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let parsed;
    try { parsed = JSON.parse(data.join('\n')); } catch (_) { return; }
    onEvent(name, parsed);
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /** A stream (or its request) silent this long is dead: the server pings
   *  every 15 s (PING_EVERY in ops/src/http/events.rs), so this is one ping
   *  missed by 10 s. A frozen engine, or a host or network gone without a
   *  reset, closes nothing: without this the page would say `live` for ever. */
  const SILENT_MS = 25000;

  /** Reads the event stream for ever, reconnecting with capped backoff. */
  async function streamEvents() {
    let backoff = 500;
    for (;;) {
      if (!token) { setLink('locked'); await waitForToken(); }
      const abort = new AbortController();
      let heard = Date.now();
      const watchdog = setInterval(() => { if (Date.now() - heard > SILENT_MS) abort.abort(); }, 1000);
      try {
        eventsAbort = abort;
        const r = await fetch('/api/v1/events', { headers: headers(false), cache: 'no-store', signal: abort.signal });
        if (r.status === 401) { askToken('The engine refused the token; enter it again.'); continue; }
        if (r.status === 404) {
          // An engine without the event stream: poll the snapshots instead.
          st.eventsAvailable = false;
          setLink('polling', 'amber');
          await refreshAll();
          await sleep(5000);
          continue;
        }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        st.eventsAvailable = true;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          heard = Date.now();
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            backoff = 500;
            heardMs = Date.now();
            onFrame(frame);
          }
        }
        throw new Error('the stream ended');
      } catch (e) {
        if (!token) continue; // locked: wait for the token, not the backoff
        linkLost(Date.now() + backoff);
        await sleep(backoff);
        renderLinkLost();
        backoff = Math.min(backoff * 2, 15000);
      } finally {
        clearInterval(watchdog);
      }
    }
  }

  let lightTimer = null;
  function scheduleLight() {
    if (lightTimer) return;
    lightTimer = setTimeout(() => { lightTimer = null; refreshLight(); }, 250);
  }

  // ---------- actions ----------

  function confirmAction(title, text) {
    return new Promise((resolve) => {
      const d = $('confirm-dialog');
      $('confirm-title').textContent = title;
      $('confirm-text').textContent = text;
      const done = (v) => { d.close(); $('confirm-yes').onclick = null; $('confirm-no').onclick = null; resolve(v); };
      $('confirm-yes').onclick = () => done(true);
      $('confirm-no').onclick = () => done(false);
      d.showModal();
    });
  }

  async function act(label, path, body) {
    try {
      const r = await api(path, { method: 'POST', body: body === undefined ? {} : body, optional: true });
      if (r === null) { toast(`${label}: not available on this engine (404)`, true); return null; }
      toast(`${label}: done`);
      scheduleLight();
      refreshSlow().catch(() => {});
      return r;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) toast(`${label} failed: ${e.message}`, true);
      return null;
    }
  }

  function openStop() {
    $('stop-reason').value = '';
    $('stop-flatten').checked = false;
    $('stop-error').hidden = true;
    $('stop-dialog').showModal();
    $('stop-reason').focus();
  }

  async function confirmStop() {
    const reason = $('stop-reason').value.trim();
    if (!reason) {
      $('stop-error').hidden = false;
      $('stop-error').textContent = 'Give a reason: it is recorded with the stop.';
      return;
    }
    $('stop-confirm').disabled = true;
    try {
      const r = await act('Emergency stop', '/api/v1/emergency-stop', { reason, flatten: $('stop-flatten').checked });
      if (r) {
        $('stop-dialog').close();
        if (r.emergency_stop) renderEmergency(r.emergency_stop);
      }
    } finally {
      $('stop-confirm').disabled = false;
    }
  }

  async function resume() {
    if (await confirmAction('Resume trading', 'Clear the emergency stop and let strategies trade again?')) {
      await act('Resume', '/api/v1/resume');
    }
  }

  async function flatten(symbol) {
    const what = symbol ? `the ${symbol} position` : 'every position';
    if (await confirmAction('Flatten', `Close ${what} with reduce-only market orders?`)) {
      await act('Flatten', '/api/v1/flatten', symbol ? { symbol } : {});
    }
  }

  async function setPaused(id, paused) {
    const verb = paused ? 'pause' : 'resume';
    const r = await act(`${paused ? 'Pause' : 'Resume'} ${id}`, `/api/v1/strategies/${encodeURIComponent(id)}/${verb}`);
    if (r === null && !paused) await act(`Resume ${id}`, `/api/v1/strategies/${encodeURIComponent(id)}/start`);
  }

  async function cancelOrder(id) {
    await act(`Cancel ${id}`, `/api/v1/orders/${encodeURIComponent(id)}/cancel`);
  }

  // ---------- start ----------

  function tick() {
    $('clock').textContent = iso(Date.now()).replace('T', ' ').replace('Z', ' UTC');
    renderLinkLost();
    for (const e of document.querySelectorAll('[data-ts]')) {
      const ts = Number(e.getAttribute('data-ts'));
      if (ts) e.title = relative(ts);
    }
    const s = st.status && st.status.emergency_stop;
    if (s && s.active) {
      const at = document.querySelector('#estop-detail [data-ts]');
      if (at) at.textContent = `at ${iso(s.set_at_ms)} (${relative(s.set_at_ms)})`;
    }
  }

  function start() {
    $('token-submit').addEventListener('click', submitToken);
    $('token-input').addEventListener('keydown', (e) => { if (e.key === 'Enter') submitToken(); });
    $('token-dialog').addEventListener('cancel', (e) => e.preventDefault());
    $('btn-stop').addEventListener('click', openStop);
    $('stop-cancel').addEventListener('click', () => $('stop-dialog').close());
    $('stop-confirm').addEventListener('click', confirmStop);
    $('stop-reason').addEventListener('input', () => { $('stop-error').hidden = true; });
    $('btn-resume').addEventListener('click', resume);
    $('btn-flatten').addEventListener('click', () => flatten(null));
    $('btn-lock').addEventListener('click', () => askToken(''));
    $('symbol-select').addEventListener('change', (e) => { st.symbol = e.target.value; $('last-price').textContent = ''; loadCandles(); });
    initCharts();
    tick();
    setInterval(tick, 1000);
    setInterval(refreshLight, 5000);
    setInterval(() => { if (token) refreshSlow().catch(() => {}); }, 30000);
    if (token) refreshAll(); else askToken('');
    streamEvents();
  }

  start();
})();
