// The node's dashboard: reads the node's own HTTP API, updates live from its event stream.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const state = { token: null, publicKey: null, signKey: null, pendingRefresh: null };
  const SIGN_IN_TAG = "gridledger/node/http-sign-in/1";

  function hex(bytes) { return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join(""); }
  function unhex(s) {
    if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error("not hex");
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
    return out;
  }
  function short(h) { return h ? h.slice(0, 10) + "…" : ""; }
  function when(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 19); }
  function cell(tr, value, cls) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "–" : String(value);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function fill(tbodySel, rows, render) {
    const tbody = $(tbodySel + " tbody");
    tbody.textContent = "";
    rows.forEach((r) => tbody.appendChild(render(r)));
  }
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers.Authorization = "Bearer " + state.token;
    const r = await fetch(path, opts);
    const body = await r.json();
    if (!r.ok) throw new Error(body.detail || body.code || r.status);
    return body;
  }

  // -- pages --------------------------------------------------------------------------
  function show(page) {
    document.querySelectorAll(".page").forEach((s) => { s.hidden = s.id !== "page-" + page; });
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
    document.body.dataset.page = page;
    ({ chain: loadChain, market: loadMarket, identity: loadIdentity, household: loadHousehold })[page]();
  }
  function route() { show((location.hash || "#chain").slice(1).split("?")[0] || "chain"); }

  // -- chain --------------------------------------------------------------------------
  function blockRow(b, isNew) {
    const tr = document.createElement("tr");
    tr.dataset.height = b.height;
    tr.className = "block" + (isNew ? " new" : "");
    cell(tr, b.height);
    cell(tr, short(b.hash), "mono");
    cell(tr, when(b.timestamp_ms));
    cell(tr, b.tx_count);
    cell(tr, b.view);
    cell(tr, b.final ? "final" : "committed", b.final ? "ok" : "muted");
    tr.addEventListener("click", () => showBlock(b.height));
    return tr;
  }
  async function loadStatus() {
    const s = await api("/v1/status");
    $("#st-height").textContent = s.height;
    $("#st-view").textContent = s.view + " / " + s.primary;
    $("#st-chain").textContent = s.chain_id + " (" + s.engine + ", n=" + s.n + ", f=" + s.f + ")";
    $("#st-txs").textContent = s.executed_txs;
    fill("#replicas", s.replicas || [], (r) => {
      const tr = document.createElement("tr");
      cell(tr, "replica " + r.replica_id + (r.self ? " (this node)" : ""));
      cell(tr, r.connected ? "connected" : "unreachable", r.connected ? "ok" : "bad");
      cell(tr, r.height);
      cell(tr, r.primary ? "primary" : "backup");
      return tr;
    });
  }
  async function loadChain() {
    await loadStatus();
    const b = await api("/v1/blocks?limit=20");
    fill("#blocks", b.blocks, (x) => blockRow(x, false));
  }
  async function showBlock(height) {
    const b = await api("/v1/blocks/" + height);
    const box = $("#block-detail");
    box.hidden = false;
    box.textContent = "";
    const h = document.createElement("h3");
    h.textContent = "Block " + b.height + (b.certificate ? " — finality proof stored" : "");
    box.appendChild(h);
    const pre = document.createElement("pre");
    pre.textContent = b.transactions.map((t) => `${t.index}  ${t.kind}  ${t.status}  ${t.tx_hash}`).join("\n") || "(no transactions)";
    box.appendChild(pre);
  }

  // -- market -------------------------------------------------------------------------
  function tradeRow(t, isNew) {
    const tr = document.createElement("tr");
    tr.className = "trade" + (isNew ? " new" : "");
    tr.dataset.height = t.height;
    cell(tr, t.height); cell(tr, t.slot); cell(tr, t.price); cell(tr, t.quantity); cell(tr, when(t.timestamp_ms));
    return tr;
  }
  async function loadMarket() {
    const [book, trades, slots] = await Promise.all([
      api("/v1/market/book"), api("/v1/market/trades?limit=50"), api("/v1/market/slots?limit=24"),
    ]);
    const first = book.slots[0] || { bids: [], asks: [], slot: null };
    $("#book-slot").textContent = first.slot === null ? "" : "slot " + first.slot;
    window.GridCharts.drawDepth($("#depth-chart"), first.bids, first.asks);
    window.GridCharts.drawSlots($("#slot-chart"), slots.slots);
    fill("#trades", trades.trades, (t) => tradeRow(t, false));
    fill("#slots", slots.slots, (s) => {
      const tr = document.createElement("tr");
      cell(tr, s.slot); cell(tr, s.trades); cell(tr, s.volume); cell(tr, s.low); cell(tr, s.vwap); cell(tr, s.high);
      return tr;
    });
  }

  // -- identity -----------------------------------------------------------------------
  async function loadIdentity() {
    const [events, revs, traces] = await Promise.all([
      api("/v1/identity/events"), api("/v1/identity/revocations"), api("/v1/identity/traces"),
    ]);
    fill("#id-events", events.events, (e) => {
      const tr = document.createElement("tr");
      cell(tr, e.height); cell(tr, e.kind); cell(tr, short(e.tx_hash), "mono");
      cell(tr, e.ok ? "accepted" : "refused: " + e.reason, e.ok ? "ok" : "bad");
      return tr;
    });
    fill("#id-revp", revs.pseudonyms, (p) => {
      const tr = document.createElement("tr");
      cell(tr, p.pseudonym_key, "mono"); cell(tr, short(p.evidence_id), "mono");
      return tr;
    });
    const ul = $("#id-revc");
    ul.textContent = "";
    revs.certificates.forEach((c) => { const li = document.createElement("li"); li.textContent = c; ul.appendChild(li); });
    if (!revs.certificates.length) ul.textContent = "none";
    fill("#id-traces", traces.traces, (t) => {
      const tr = document.createElement("tr");
      cell(tr, short(t.evidence_id), "mono"); cell(tr, short(t.pseudonym_key), "mono"); cell(tr, t.round);
      cell(tr, t.member ? "yes" : "no");
      return tr;
    });
  }
  async function lookUpPseudonym(ev) {
    ev.preventDefault();
    try {
      $("#pc-out").textContent = JSON.stringify(await api("/v1/identity/pseudonyms/" + $("#pc-key").value.trim()), null, 2);
    } catch (e) { $("#pc-out").textContent = String(e.message); }
  }

  // -- household: sign in with the key, in this browser --------------------------------
  function pkcs8FromSeed(seed) {
    const prefix = unhex("302e020100300506032b657004220420");
    const der = new Uint8Array(prefix.length + 32);
    der.set(prefix); der.set(seed, prefix.length);
    return der;
  }
  function b64urlToBytes(s) {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - (s.length % 4)) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0));
  }
  async function signIn(ev) {
    ev.preventDefault();
    $("#signin-error").textContent = "";
    const field = $("#signin-key");
    try {
      const seed = unhex(field.value.trim());
      if (seed.length !== 32) throw new Error("a key is 32 bytes (64 hex digits)");
      const extractable = await crypto.subtle.importKey("pkcs8", pkcs8FromSeed(seed), { name: "Ed25519" }, true, ["sign"]);
      const jwk = await crypto.subtle.exportKey("jwk", extractable);
      const publicKey = hex(b64urlToBytes(jwk.x));
      // the key used from now on cannot be read back out of WebCrypto
      state.signKey = await crypto.subtle.importKey("pkcs8", pkcs8FromSeed(seed), { name: "Ed25519" }, false, ["sign"]);
      seed.fill(0);
      field.value = "";
      const ch = await api("/v1/auth/challenge", { method: "POST" });
      const message = unhex(ch.message);
      const tag = new TextEncoder().encode(SIGN_IN_TAG);
      // sign only a sign-in message: the domain tag first, the challenge last
      if (message[0] !== tag.length || hex(message.slice(1, 1 + tag.length)) !== hex(tag)
          || hex(message.slice(message.length - 32)) !== ch.challenge) {
        throw new Error("the node asked to sign something that is not a sign-in challenge");
      }
      const signature = hex(await crypto.subtle.sign({ name: "Ed25519" }, state.signKey, message));
      const session = await api("/v1/auth/session", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ public_key: publicKey, challenge: ch.challenge, signature }),
      });
      state.token = session.token;
      state.publicKey = publicKey;
      await loadHousehold();
    } catch (e) {
      $("#signin-error").textContent = "Sign-in failed: " + e.message;
    }
  }
  function signOut() { state.token = null; state.publicKey = null; state.signKey = null; loadHousehold(); }
  async function loadHousehold() {
    const signedIn = Boolean(state.token);
    $("#signin").hidden = signedIn;
    $("#mine").hidden = !signedIn;
    if (!signedIn) return;
    $("#me-key").textContent = state.publicKey;
    const period = Math.max(0, parseInt($("#me-period").value || "0", 10));
    const [wallet, orders] = await Promise.all([api("/v1/me/wallet?period=" + period), api("/v1/me/orders")]);
    $("#me-credit").textContent = wallet.open_credit ? "open" : "none";
    $("#me-wd").textContent = wallet.withdrawn.value;
    $("#me-dep").textContent = wallet.deposited.value;
    $("#me-bill").textContent = wallet.bill ? wallet.bill.total : "open";
    fill("#me-orders", orders.orders, (o) => {
      const tr = document.createElement("tr");
      tr.className = "my-order";
      cell(tr, short(o.order_id), "mono"); cell(tr, o.quantity > 0 ? "sell" : "buy");
      cell(tr, o.slot); cell(tr, o.price); cell(tr, Math.abs(o.quantity)); cell(tr, o.filled); cell(tr, o.open);
      return tr;
    });
  }

  // -- live ---------------------------------------------------------------------------
  function prepend(tbodySel, row, keep) {
    const tbody = $(tbodySel + " tbody");
    tbody.insertBefore(row, tbody.firstChild);
    while (tbody.children.length > keep) tbody.removeChild(tbody.lastChild);
  }
  function refreshSoon() {
    if (state.pendingRefresh) return;
    state.pendingRefresh = setTimeout(() => {
      state.pendingRefresh = null;
      const page = document.body.dataset.page;
      if (page === "market") loadMarket();
      if (page === "chain") loadChain();
      if (page === "household" && state.token) loadHousehold();
    }, 700);
  }
  function connect() {
    const source = new EventSource("/v1/stream?topics=blocks,trades");
    source.onopen = () => { $("#live").textContent = "live"; $("#live").classList.remove("off"); };
    source.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").classList.add("off"); };
    source.addEventListener("block", (ev) => {
      const b = JSON.parse(ev.data);
      $("#st-height").textContent = b.height;
      prepend("#blocks", blockRow(b, true), 20);
      refreshSoon();
    });
    source.addEventListener("trade", (ev) => {
      prepend("#trades", tradeRow(JSON.parse(ev.data), true), 50);
      refreshSoon();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#signin-form").addEventListener("submit", signIn);
    $("#signout").addEventListener("click", signOut);
    $("#period-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadHousehold(); });
    $("#pc-form").addEventListener("submit", lookUpPseudonym);
    window.addEventListener("hashchange", route);
    connect();
    route();
  });
})();
