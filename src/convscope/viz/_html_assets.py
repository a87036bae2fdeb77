"""The style sheet and script inlined into every HTML explainer (no network access needed).

The script reads the numbers embedded by :mod:`convscope.viz.html` (a JSON block whose
arrays are little-endian float32/float64 bytes in base64, so every value is bit-exact) and

* on a click on a feature-map pixel: draws the pixel's receptive field on the input (the
  exact box per axis, embedded by :func:`convscope.viz.fields.receptive_boxes`); for a
  convolution layer it cuts the window out of the layer's padded input, multiplies it by the
  filter entry by entry, sums, adds the offset ``f_0`` (Key Equation 15 with Definition 26),
  and shows that value next to the one convscope's forward computed, with the float
  rounding bound ``n * eps * (sum |f_i v_i| + |f_0|)`` within which they must agree;
* runs the padding / stride / kernel playground: both forms of Key Equation 48 (with the
  dilated window ``d*(k-1) + 1`` in place of ``k``) and a drawing of every window.

Element ids the tests read: ``calc-js``, ``calc-lib``, ``calc-diff``, ``calc-tol``,
``calc-verdict``, ``rf-text`` (``data-region``), ``pixel-value``, ``pg-out``, ``pg-ceil``,
``pg-floor``; ``document.body.dataset.ready`` is "1" once the script has run.
"""

CSS = r"""
:root { --ink: #1b1f24; --muted: #5b6570; --line: #d7dce1; --accent: #0b62c4; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
header { padding: 14px 22px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 2px 0; color: var(--muted); }
.wrap { display: flex; gap: 18px; padding: 16px 22px; align-items: flex-start; }
main { flex: 1 1 0; min-width: 0; }
aside {
  flex: 0 0 38%; max-width: 560px; position: sticky; top: 10px; max-height: calc(100vh - 20px);
  overflow: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
}
section.card {
  background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  margin-bottom: 14px;
}
section.card.nested { margin-left: 26px; border-left: 4px solid #c9d6e8; }
.card h2 { font-size: 16px; margin: 2px 0 6px; }
.card h2 .idx { color: var(--accent); }
.meta { color: var(--muted); font-size: 13px; margin: 2px 0; }
.meta b { color: var(--ink); font-weight: 600; }
pre {
  background: #f3f5f7; border-radius: 6px; padding: 6px 8px; font-size: 12px; overflow-x: auto;
  margin: 6px 0;
}
.maps { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
figure { margin: 0; text-align: center; font-size: 11px; color: var(--muted); }
figure .rf-host { display: block; }
figure img { display: block; image-rendering: pixelated; outline: 1px solid var(--line); }
img.fmap { cursor: crosshair; }
img.fmap:hover { outline: 2px solid var(--accent); }
.filters { display: grid; gap: 3px; margin-top: 4px; align-items: center; }
.filters span { font-size: 10px; color: var(--muted); text-align: right; padding-right: 3px; }
.filters img { image-rendering: pixelated; outline: 1px solid var(--line); display: block; }
details > summary { cursor: pointer; color: var(--accent); font-size: 13px; margin-top: 6px; }
.note {
  background: #fff7e0; border: 1px solid #f0d68a; border-radius: 6px; padding: 6px 10px;
  margin: 6px 0; font-size: 13px;
}
.rf-host { position: relative; display: inline-block; width: max-content; }
.rf-box {
  position: absolute; border: 2px solid #e8590c; background: rgba(232, 89, 12, 0.15);
  pointer-events: none; display: none;
}
.rf-pix { position: absolute; border: 2px solid #2f9e44; pointer-events: none; display: none; }
table.grid {
  border-collapse: collapse; margin: 2px 8px 6px 0;
  font: 11px/1.2 ui-monospace, Menlo, Consolas, monospace;
}
table.grid td { border: 1px solid var(--line); padding: 2px 4px; text-align: right; min-width: 2.6em; }
table.grid td.pad { background: #eceff3; color: #8a949e; }
table.grid caption { font-size: 11px; color: var(--muted); text-align: left; }
.grids { display: flex; flex-wrap: wrap; align-items: flex-start; }
.calc { font: 12px/1.5 ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
.ok { color: #2b8a3e; font-weight: 600; }
.bad { color: #c92a2a; font-weight: 600; }
.bars { margin-top: 4px; }
.bar { display: flex; align-items: center; gap: 8px; margin: 2px 0; font-size: 13px; }
.bar .lab { width: 90px; text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar .track { flex: 1; background: #edf0f3; border-radius: 3px; height: 14px; }
.bar .fill { background: #7aa6d8; height: 14px; border-radius: 3px; }
.bar.top .fill { background: var(--accent); }
.bar .num { width: 70px; font-variant-numeric: tabular-nums; }
#hover {
  position: fixed; pointer-events: none; background: #1b1f24; color: #fff; font-size: 12px;
  padding: 2px 6px; border-radius: 4px; display: none; z-index: 10;
}
.pg-inputs { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0; }
.pg-inputs label { font-size: 13px; }
.pg-inputs input { width: 58px; }
.pg-row { display: flex; gap: 1px; margin: 1px 0; align-items: center; }
.pg-row .cell {
  width: 16px; height: 16px; font-size: 9px; text-align: center; line-height: 16px;
  background: #f1f3f5; color: #868e96;
}
.pg-row .cell.real { background: #dde5ee; color: #333; }
.pg-row .cell.tap { background: #0b62c4; color: #fff; }
.pg-row .cell.left { background: #ffd8a8; }
.pg-row .lbl { width: 54px; font-size: 11px; color: var(--muted); text-align: right; padding-right: 4px; }
.muted { color: var(--muted); }
"""

JS = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("convscope-data").textContent);
var LAYERS = {};
D.layers.forEach(function (l) { LAYERS[l.index] = l; });
var cache = new Map();

// ---------------------------------------------------------------- numbers and text
function decode(b) {
  var bin = atob(b.b64), bytes = new Uint8Array(bin.length);
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  var dv = new DataView(bytes.buffer), size = b.dtype === "f8" ? 8 : 4, n = bytes.length / size;
  var out = new Float64Array(n);
  for (var j = 0; j < n; j++) {
    out[j] = size === 8 ? dv.getFloat64(j * 8, true) : dv.getFloat32(j * 4, true);
  }
  return out;
}
function arr(b) {
  if (!b) return null;
  if (!cache.has(b)) cache.set(b, decode(b));
  return cache.get(b);
}
function prod(a) { return a.reduce(function (x, y) { return x * y; }, 1); }
function flat(pos, shape) {
  var f = 0;
  for (var a = 0; a < shape.length; a++) f = f * shape[a] + pos[a];
  return f;
}
function unflat(f, shape) {
  var pos = new Array(shape.length);
  for (var a = shape.length - 1; a >= 0; a--) { pos[a] = f % shape[a]; f = Math.floor(f / shape[a]); }
  return pos;
}
var ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
function esc(t) { return String(t).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; }); }
function fmt(v) {
  if (!isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  var t = v.toPrecision(6);
  if (t.indexOf("e") < 0 && t.indexOf(".") >= 0) t = t.replace(/0+$/, "").replace(/\.$/, "");
  return t;
}
function paren(v) { var t = fmt(v); return t.charAt(0) === "-" ? "(" + t + ")" : t; }
function tuple(a) { return "(" + a.join(", ") + (a.length === 1 ? "," : "") + ")"; }
function tag(name, attrs, body) { return "<" + name + (attrs ? " " + attrs : "") + ">" + body + "</" + name + ">"; }
function calc(body) { return tag("p", "class='calc'", body); }

// ---------------------------------------------------------------- where a click lands
function pixelOf(img, ev) {
  // the content box: the picture without any border, scaled from W x H pixels
  var r = img.getBoundingClientRect(), W = img.naturalWidth, H = img.naturalHeight;
  var x = ev.clientX - r.left - img.clientLeft, y = ev.clientY - r.top - img.clientTop;
  var col = Math.min(W - 1, Math.max(0, Math.floor(x / img.clientWidth * W)));
  var row = Math.min(H - 1, Math.max(0, Math.floor(y / img.clientHeight * H)));
  return D.spatial_ndim === 1 ? [col] : [row, col];
}
function valueAt(l, c, pos) {
  if (!l.values) return null;
  var ci = l.values.channels.indexOf(c);
  if (ci < 0) return null;
  var sp = l.out_shape.slice(2);
  return arr(l.values.data)[ci * prod(sp) + flat(pos, sp)];
}

// [first, last, span first, span last] per axis: the exact box of the input entries that can
// influence the pixel (embedded per axis), and the simple span start + i*jump .. + rf - 1,
// which also counts padding; "padding" when the windows see padding only
function region(l, pos) {
  if (!l.field) return null;
  var out = [];
  for (var a = 0; a < pos.length; a++) {
    var first = l.field[a][0][pos[a]], last = l.field[a][1][pos[a]];
    if (first < 0) return "padding";
    var span = l.start ? l.start[a] + pos[a] * l.jump[a] : first;
    out.push([first, last, span, l.rf ? span + l.rf[a] - 1 : last]);
  }
  return out;
}
function place(el, rows, cols, H, W) {
  el.style.left = (cols[0] / W * 100) + "%";
  el.style.width = ((cols[1] - cols[0] + 1) / W * 100) + "%";
  el.style.top = (rows[0] / H * 100) + "%";
  el.style.height = ((rows[1] - rows[0] + 1) / H * 100) + "%";
  el.style.display = "block";
}
function drawRegion(reg) {
  var n = D.input_shape.slice(2), one = n.length === 1;
  document.querySelectorAll(".rf-box").forEach(function (box) {
    if (!reg) { box.style.display = "none"; return; }
    place(box, one ? [0, 0] : [reg[0][0], reg[0][1]], reg[reg.length - 1], one ? 1 : n[0], n[n.length - 1]);
  });
}
function markPixel(img, pos) {
  document.querySelectorAll(".rf-pix").forEach(function (m) { m.style.display = "none"; });
  var mark = img.parentNode.querySelector(".rf-pix");
  if (!mark) return;
  var r = pos.length === 1 ? 0 : pos[0], c = pos[pos.length - 1];
  place(mark, [r, r], [c, c], img.naturalHeight, img.naturalWidth);
}

// ---------------------------------------------------------------- the dot product
function gridTable(caption, values, shape, padMask) {
  var rows = shape.length === 1 ? 1 : shape[0], cols = shape[shape.length - 1], h = "";
  for (var r = 0; r < rows; r++) {
    var cells = "";
    for (var c = 0; c < cols; c++) {
      var i = r * cols + c, pad = padMask && padMask[i];
      cells += tag("td", pad ? "class='pad' title='padding'" : "", fmt(values[i]));
    }
    h += tag("tr", "", cells);
  }
  return tag("table", "class='grid'", tag("caption", "", esc(caption)) + h);
}

function windowText(cv, g, gsize, start) {
  var k = cv.k, spans = start.map(function (st, a) {
    var stop = st + cv.d[a] * (k[a] - 1) + 1;
    return st + ":" + stop + (cv.d[a] !== 1 ? ":" + cv.d[a] : "");
  });
  var padded = cv.p_before.some(function (p) { return p > 0; });
  var dilated = cv.d.some(function (d) { return d !== 1; });
  return calc("window v = x_p[" + (g * gsize) + ":" + ((g + 1) * gsize) + ", " + spans.join(", ") +
              "] of this layer's input" +
              (padded ? " padded by p = " + tuple(cv.p_before) + " (" + esc(cv.padding_mode) + ")" : "") +
              "; stride s = " + tuple(cv.s) + (dilated ? ", dilation d = " + tuple(cv.d) : ""));
}

function convArithmetic(l, c, pos, lib) {
  var cv = l.conv;
  if (!cv.padded) return tag("p", "class='note'", esc(cv.note || "The numbers of this layer are not embedded."));
  var wi = cv.channels.indexOf(c);
  if (wi < 0) {
    return tag("p", "class='note'", "The filter of channel " + (c + 1) + " is not embedded (only the first " +
               cv.channels.length + " channels are).");
  }
  var P = arr(cv.padded), W = arr(cv.weights), k = cv.k, nd = k.length;
  var pshape = cv.padded_shape.slice(1), psize = prod(pshape), ksize = prod(k);
  var gsize = cv.c_in / cv.groups, g = Math.floor(c / (cv.c_out / cv.groups));
  var b = cv.bias ? cv.bias[wi] : 0;
  var start = pos.map(function (p, a) { return p * cv.s[a]; });
  var total = 0, absTotal = Math.abs(b), nterms = 0, subtotals = [], shown = 0;
  var html = windowText(cv, g, gsize, start);
  for (var ch = 0; ch < gsize; ch++) {
    var cin = g * gsize + ch, vs = [], ws = [], ps = [], pad = [], sub = 0, terms = [];
    for (var t = 0; t < ksize; t++) {
      var ka = unflat(t, k), pa = [], isPad = false;
      for (var a = 0; a < nd; a++) {
        pa.push(start[a] + ka[a] * cv.d[a]);
        if (pa[a] < cv.p_before[a] || pa[a] >= cv.p_before[a] + cv.n[a]) isPad = true;
      }
      var v = P[cin * psize + flat(pa, pshape)], w = W[wi * gsize * ksize + ch * ksize + t];
      vs.push(v); ws.push(w); ps.push(w * v); pad.push(isPad);
      sub += w * v; absTotal += Math.abs(w * v); nterms++;
      if (terms.length < 27) terms.push(paren(w) + "*" + paren(v));
    }
    total += sub; subtotals.push(sub);
    if (shown < 4) {
      shown++;
      var more = ksize > terms.length ? " + ... (" + ksize + " products)" : "";
      html += tag("div", "", tag("b", "", "input channel " + (cin + 1)) +
        tag("div", "class='grids'", gridTable("window v", vs, k, pad) + gridTable("filter f", ws, k, null) +
                                     gridTable("f * v", ps, k, null)) +
        calc(terms.join(" + ") + more + " = " + fmt(sub)));
    }
  }
  if (gsize > shown) {
    html += tag("p", "class='muted'", "(" + (gsize - shown) +
                " more input channels: grids not drawn; their sums are below.)");
  }
  var y = total + b;
  var parts = gsize > 1 ? subtotals.slice(0, 12).map(paren).join(" + ") + (gsize > 12 ? " + ..." : "") + " = " : "";
  html += calc("f . v = " + parts + fmt(total));
  html += calc("y = f . v + f_0 = " + fmt(total) + " + " + paren(b) + " = " +
               tag("b", "id='calc-js' data-value='" + y + "'", fmt(y)) +
               " " + tag("span", "class='muted'", "(computed on this page, " + nterms + " products)"));
  if (lib !== null) {
    var tol = (nterms + 1) * D.eps * absTotal + 1e-300, diff = Math.abs(y - lib), ok = diff <= tol;
    html += calc("convscope forward: " + tag("b", "id='calc-lib' data-value='" + lib + "'", fmt(lib)) +
                 " (" + esc(D.dtype) + ")");
    html += calc("|difference| = " + tag("span", "id='calc-diff' data-value='" + diff + "'", diff.toExponential(2)) +
                 "; rounding bound n*eps*(sum|f_i v_i| + |f_0|) = " +
                 tag("span", "id='calc-tol' data-value='" + tol + "'", tol.toExponential(2)) + " &rarr; " +
                 tag("span", "id='calc-verdict' class='" + (ok ? "ok" : "bad") + "'", ok ? "agree" : "DISAGREE"));
  }
  return html;
}

// ---------------------------------------------------------------- one clicked pixel
function fieldText(l, reg) {
  if (reg === "padding") {
    return tag("p", "id='rf-text' data-region='none'",
               "This pixel's windows lie entirely in the zero padding: no input entry reaches it.");
  }
  if (!reg) {
    return tag("p", "id='rf-text' data-region=''", "This pixel sees the whole input (after Flatten or Linear).");
  }
  var txt = reg.map(function (r) { return r[0] + ":" + (r[1] + 1); }).join(", ");
  var axes = D.spatial_ndim === 1 ? ["entries"] : ["rows", "columns"];
  var ranges = reg.map(function (r, a) { return axes[a] + " " + r[0] + ".." + r[1]; }).join(", ");
  var inPad = reg.some(function (r) { return r[2] < r[0] || r[3] > r[1]; });
  return tag("p", "", "Receptive field on the input: " +
             tag("b", "id='rf-text' data-region='" + txt + "'", "x[..., " + txt + "]") + " (" + ranges +
             (l.rf && l.jump ? "; field " + l.rf.join("x") + ", jump " + l.jump.join("x") : "") +
             (inPad ? "; the rest of the field lies in the padding" : "") + ")");
}

function showPixel(img, index, c, pos) {
  var l = LAYERS[index], lib = valueAt(l, c, pos), reg = region(l, pos);
  var notes = pos.map(function (p) { return p + 1; }).join(",");
  var h = tag("h3", "id='pixel-title'", "Layer " + l.index + esc(l.name) + ": " + esc(l.repr));
  h += tag("p", "", "channel " + (c + 1) + " of " + l.out_shape[1] + ", pixel " + tuple(pos) +
           " (0-based; the notes' y" + tag("sub", "", notes) + ")" +
           (lib !== null ? " = " + tag("b", "id='pixel-value' data-value='" + lib + "'", fmt(lib)) : ""));
  h += fieldText(l, reg);
  drawRegion(reg === "padding" ? null : reg);
  markPixel(img, pos);
  if (l.conv) h += convArithmetic(l, c, pos, lib);
  else h += tag("p", "class='muted'", "Click a pixel of a convolution layer's map to see its window, " +
                "filter and dot product.");
  document.getElementById("detail").innerHTML = h;
}

var hover = document.getElementById("hover");
document.querySelectorAll("img.fmap").forEach(function (img) {
  var index = +img.dataset.layer, c = +img.dataset.channel;
  img.addEventListener("click", function (ev) { showPixel(img, index, c, pixelOf(img, ev)); });
  img.addEventListener("mousemove", function (ev) {
    var pos = pixelOf(img, ev), v = valueAt(LAYERS[index], c, pos);
    hover.textContent = "channel " + (c + 1) + " " + tuple(pos) + (v !== null ? " = " + fmt(v) : "");
    hover.style.left = (ev.clientX + 12) + "px";
    hover.style.top = (ev.clientY + 12) + "px";
    hover.style.display = "block";
  });
  img.addEventListener("mouseleave", function () { hover.style.display = "none"; });
});

// ---------------------------------------------------------------- the playground
function playground() {
  var ids = ["pg-n", "pg-k", "pg-p", "pg-s", "pg-d"];
  function val(id) { return Number(document.getElementById(id).value); }
  function diagram(n, k, p, s, d, o, ke) {
    var total = n + 2 * p, lastRead = (o - 1) * s + ke - 1;
    if (total > 60 || o > 30) return tag("p", "class='muted'", "(drawing shown for n + 2p &le; 60 and at most 30 outputs)");
    var g = "<span class='lbl'>x_p</span>";
    for (var i = 0; i < total; i++) {
      var real = i >= p && i < p + n;
      g += tag("span", "class='cell" + (real ? " real" : "") + (i > lastRead ? " left" : "") + "'", real ? i - p : "p");
    }
    var rows = tag("div", "class='pg-row'", g);
    for (var j = 0; j < o; j++) {
      var cells = "<span class='lbl'>y_" + (j + 1) + "</span>";
      for (var q = 0; q < total; q++) {
        var off = q - j * s, tap = off >= 0 && off % d === 0 && off / d < k;
        cells += tag("span", "class='cell" + (tap ? " tap" : "") + "'", "");
      }
      rows += tag("div", "class='pg-row'", cells);
    }
    return rows;
  }
  function update() {
    var n = val("pg-n"), k = val("pg-k"), p = val("pg-p"), s = val("pg-s"), d = val("pg-d");
    var res = document.getElementById("pg-result"), out = document.getElementById("pg-out");
    var dia = document.getElementById("pg-diagram");
    var whole = [n, k, s, d].every(function (v) { return Number.isInteger(v) && v >= 1; });
    if (!whole || !Number.isInteger(p) || p < 0) {
      res.innerHTML = tag("p", "class='bad'", "n, k, s and d must be whole numbers of at least 1, and p a whole " +
                          "number of at least 0.");
      out.dataset.value = ""; out.textContent = "?"; dia.innerHTML = "";
      return;
    }
    var ke = d * (k - 1) + 1, kname = d !== 1 ? "d(k-1)+1" : "k";
    var cnum = n - (ke - 1) + 2 * p, cval = Math.ceil(cnum / s);
    var fnum = n - ke + 2 * p, fval = Math.floor(fnum / s + 1);
    var fits = fnum >= 0, o = fits ? fval : 0, h = "";
    if (d !== 1) h += calc("dilated window: d(k-1)+1 = " + d + "*" + (k - 1) + "+1 = " + ke + " entries, used for k below");
    h += calc("ceiling form: ceil((n - (" + kname + " - 1) + 2p) / s) = ceil((" + n + " - " + (ke - 1) + " + " +
              2 * p + ") / " + s + ") = ceil(" + fmt(cnum / s) + ") = " + tag("span", "id='pg-ceil'", cval));
    h += calc("floor form: floor((n - " + kname + " + 2p) / s + 1) = floor((" + n + " - " + ke + " + " + 2 * p +
              ") / " + s + " + 1) = floor(" + fmt(fnum / s + 1) + ") = " + tag("span", "id='pg-floor'", fval));
    if (!fits) {
      h += tag("p", "class='bad'", "does not fit: the window (" + ke + " entries) is larger than the padded input " +
               "(n + 2p = " + (n + 2 * p) + ").");
    } else {
      var used = (o - 1) * s + ke, left = n + 2 * p - used;
      h += tag("p", "", "The last window ends at padded position " + (used - 1) + (left > 0 ?
               "; the last " + left + " padded entr" + (left === 1 ? "y is" : "ies are") +
               " never read (stride skips them, shown in orange)." : ": every padded entry is read."));
    }
    out.textContent = fits ? String(o) : "0 (does not fit)";
    out.dataset.value = String(o);
    res.innerHTML = h;
    dia.innerHTML = fits ? diagram(n, k, p, s, d, o, ke) : "";
  }
  ids.forEach(function (id) { document.getElementById(id).addEventListener("input", update); });
  document.querySelectorAll("button[data-preset]").forEach(function (b) {
    b.addEventListener("click", function () {
      var v = b.dataset.preset.split(",");
      ids.forEach(function (id, i) { document.getElementById(id).value = v[i]; });
      update();
    });
  });
  update();
}
playground();
document.body.dataset.ready = "1";
})();
"""
