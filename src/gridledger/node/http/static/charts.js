// Two small SVG charts drawn with the DOM: no library, nothing fetched.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 480, H = 220, PAD = { l: 44, r: 12, t: 24, b: 28 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, s, anchor) {
    const t = el("text", { x, y, "text-anchor": anchor || "middle" }, parent);
    t.textContent = s;
    return t;
  }
  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }
  function empty(svg, message) {
    clear(svg);
    text(svg, W / 2, H / 2, message);
  }
  function axes(svg, xmin, xmax, ymax, xlabel, ylabel) {
    el("line", { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, stroke: "#98a2b3" }, svg);
    el("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, stroke: "#98a2b3" }, svg);
    text(svg, PAD.l, H - 10, String(xmin));
    text(svg, W - PAD.r, H - 10, String(xmax), "end");
    text(svg, (PAD.l + W - PAD.r) / 2, H - 4, xlabel);
    text(svg, PAD.l - 4, PAD.t + 4, String(ymax), "end");
    text(svg, PAD.l - 4, H - PAD.b, "0", "end");
    text(svg, PAD.l, PAD.t - 10, ylabel, "start");
  }

  // Cumulative bid and ask quantity against price (a step chart per side).
  function drawDepth(svg, bids, asks) {
    if (!bids.length && !asks.length) { empty(svg, "no open orders"); return; }
    clear(svg);
    const prices = bids.concat(asks).map((l) => l.price);
    let lo = Math.min(...prices), hi = Math.max(...prices);
    if (lo === hi) { lo -= 1; hi += 1; }
    const cum = (levels) => { let s = 0; return levels.map((l) => ({ price: l.price, q: (s += l.quantity) })); };
    const cb = cum(bids), ca = cum(asks);
    const ymax = Math.max(1, ...cb.map((p) => p.q), ...ca.map((p) => p.q));
    const x = (p) => PAD.l + ((p - lo) / (hi - lo)) * (W - PAD.l - PAD.r);
    const y = (q) => H - PAD.b - (q / ymax) * (H - PAD.t - PAD.b);
    axes(svg, lo, hi, ymax, "price", "Wh");
    const side = (points, color, cls) => {
      if (!points.length) return;
      let d = `M ${x(points[0].price)} ${y(0)}`;
      for (const p of points) d += ` L ${x(p.price)} ${y(p.q)}`;
      d += ` L ${x(points[points.length - 1].price)} ${y(0)} Z`;
      el("path", { d, fill: color, "fill-opacity": 0.25, stroke: color, "stroke-width": 1.5, class: cls }, svg);
    };
    side(cb, "#1f9d55", "depth-bids");
    side(ca, "#c0392b", "depth-asks");
  }

  // Volume per slot as bars, the volume-weighted price as a line with dots.
  function drawSlots(svg, slots) {
    if (!slots.length) { empty(svg, "no trades yet"); return; }
    clear(svg);
    const rows = slots.slice().sort((a, b) => a.slot - b.slot);
    const vmax = Math.max(1, ...rows.map((r) => r.volume));
    const pmin = Math.min(...rows.map((r) => r.low)), pmax = Math.max(...rows.map((r) => r.high));
    const span = Math.max(1, pmax - pmin);
    const bw = (W - PAD.l - PAD.r) / rows.length;
    const yv = (v) => H - PAD.b - (v / vmax) * (H - PAD.t - PAD.b);
    const yp = (p) => H - PAD.b - ((p - pmin + span * 0.1) / (span * 1.2)) * (H - PAD.t - PAD.b);
    axes(svg, rows[0].slot, rows[rows.length - 1].slot, vmax, "delivery slot", "Wh");
    rows.forEach((r, i) => {
      el("rect", { x: PAD.l + i * bw + bw * 0.15, y: yv(r.volume), width: bw * 0.7,
        height: H - PAD.b - yv(r.volume), fill: "#7fb3e0", class: "slot-bar" }, svg);
    });
    let d = "";
    rows.forEach((r, i) => {
      const cx = PAD.l + i * bw + bw / 2, cy = yp(r.vwap);
      d += (i ? " L " : "M ") + cx + " " + cy;
      el("circle", { cx, cy, r: 3, fill: "#102a43", class: "slot-price" }, svg);
      text(svg, cx, cy - 6, String(r.vwap));
    });
    el("path", { d, fill: "none", stroke: "#102a43", "stroke-width": 1.5 }, svg);
    text(svg, W - PAD.r, PAD.t - 10, "bars: volume; dots: price (VWAP)", "end");
  }

  window.GridCharts = { drawDepth, drawSlots };
})();
