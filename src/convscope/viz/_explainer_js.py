"""The script of the HTML explainer (inlined; also served by the live mode, which re-runs it).

``window.convscopeExplainer.init(root)`` reads the JSON block ``#convscope-data`` inside
``root`` (numbers as little-endian float32/float64 in base64, so every value is bit-exact; an
array marked ``deflate`` is raw DEFLATE, inflated here by ``inflate``) and wires up the page:

* a click on any value of any layer (a feature-map pixel, an entry of a vector layer, a class
  bar) shows how it was computed, redone on the page from the embedded numbers next to the
  value convscope computed: convolution (window, filter, ``f . v + f_0``), max pooling (the
  window, the maximum and its ties), average and blur pooling (the weights), adaptive average
  and max pooling (the window from PyTorch's ``floor(i*n/out) .. ceil((i+1)*n/out)``; a global
  pooling's is the whole channel), ReLU, ReLU6, Hardsigmoid, Hardswish, SiLU, GELU (an erf of
  convscope's own algorithm) and the other activations (the input and the formula), Identity and
  Dropout (passed through), Normalize (``(x - mean) / std``), BatchNorm (mean, variance, scale, shift),
  Linear (the largest products of the dot product, the rest summed), Softmax (``exp / sum``
  over every class), Flatten (the channel and position a feature came from), Residual
  (``x + block(x)``) and a graph's merges: Add (the branches' sum), Concat (which input and
  which of its channels a value comes from), Mul (``x * s``, the broadcast factor of a
  squeeze-and-excitation gate), ChannelShuffle (the input channel of an output channel); the
  window is drawn on the previous layer's maps and, composed, on the input (the receptive field);
* play / pause / step slide the clicked layer's window over its output;
* backward: for the chosen class, every layer's gradient map ``dL/dy``, the ReLU mask and the
  max-pool routing, an elementwise layer's local derivative ``f'(z)`` and ``dL/dz = dL/dy f'(z)``
  (next to convscope's, when the input feeds this layer alone), and for a clicked filter its
  ``dL/dW`` in the notes' 9.31 form (the matrix of inputs against the upstream ``dL/dZ``) next
  to the library's; for a clicked merge
  value what each input gets (Add: ``dL/dy`` itself; Concat: the input whose slice it is; Mul:
  ``dL/dy`` times the other factor, the broadcast gate's summed over the axes it was stretched
  on), redone next to what convscope's backward sent, and for an output that feeds several
  layers (fan-out) its ``dL/dy`` as the sum of what they send back;
* the output-size playground (Key Equation 48).

Ids the tests read: ``calc-js``, ``calc-lib``, ``calc-diff``, ``calc-tol``, ``calc-verdict``,
``calc-kind``, ``rf-text`` (``data-region``), ``pixel-value``, ``win-text``, ``grad-value``,
``route-text``, ``local-grad``, ``local-verdict``, ``adaptive-window`` (``data-start``,
``data-size``), ``merge-source`` (``data-ref``, ``data-input``, ``data-channel``), ``.sent`` (one
per input of a merge: ``data-input``, ``data-ref``, ``data-at``, ``data-page``, ``data-lib``, and
``.sent-verdict`` inside), ``fanout`` (``data-count``, ``data-parts``, ``data-known``), ``dw-js``,
``dw-lib``, ``dw-verdict``, ``anim-pos``, ``pg-out``, ``pg-ceil``, ``pg-floor``;
``document.body.dataset.ready`` is "1" once the script has run.
"""

JS = r"""
(function () {
"use strict";
var D, LAYERS, cache, ROOT, cur = null, timer = null, gradClass = null;

// ---------------------------------------------------------------- numbers and text
// raw DEFLATE (RFC 1951), as Python's zlib writes the arrays marked "deflate"; after zlib's puff.c
var LBASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163,
  195, 227, 258], LEXT = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
var DBASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
  4097, 6145, 8193, 12289, 16385, 24577], DEXT = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9,
  10, 10, 11, 11, 12, 12, 13, 13];
var CLORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15], FIXED = null;
function huffman(lengths) {         // a canonical code: how many codes of each length, symbols in code order
  var counts = new Uint16Array(16), offs = new Uint16Array(16), symbols = new Uint16Array(lengths.length), i;
  for (i = 0; i < lengths.length; i++) counts[lengths[i]]++;
  counts[0] = 0;
  for (i = 1; i < 16; i++) offs[i] = offs[i - 1] + counts[i - 1];
  for (i = 0; i < lengths.length; i++) if (lengths[i]) symbols[offs[lengths[i]]++] = i;
  return {counts: counts, symbols: symbols};
}
function inflate(src, size) {
  var out = new Uint8Array(size), op = 0, pos = 0, bitbuf = 0, bitcnt = 0, last, type, i;
  function bits(n) {
    while (bitcnt < n) {
      if (pos >= src.length) throw new Error("deflate data ends early");
      bitbuf |= src[pos++] << bitcnt; bitcnt += 8;
    }
    var v = bitbuf & ((1 << n) - 1);
    bitbuf >>>= n; bitcnt -= n;
    return v;
  }
  function symbol(h) {
    var code = 0, first = 0, index = 0;
    for (var len = 1; len < 16; len++) {
      code |= bits(1);
      var count = h.counts[len];
      if (code - count < first) return h.symbols[index + (code - first)];
      index += count; first = (first + count) << 1; code <<= 1;
    }
    throw new Error("bad deflate code");
  }
  if (!FIXED) {
    var fl = new Uint8Array(288), fd = new Uint8Array(30).fill(5);
    for (i = 0; i < 288; i++) fl[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    FIXED = [huffman(fl), huffman(fd)];
  }
  do {
    last = bits(1); type = bits(2);
    if (type === 0) {                                  // stored: byte-aligned length, its complement, bytes
      bitbuf = 0; bitcnt = 0;
      var n = src[pos] | (src[pos + 1] << 8);
      pos += 4;
      out.set(src.subarray(pos, pos + n), op); pos += n; op += n;
      continue;
    }
    var lit = FIXED[0], dist = FIXED[1];
    if (type === 2) {                                  // dynamic: the code lengths come first, coded too
      var nlen = bits(5) + 257, ndist = bits(5) + 1, ncode = bits(4) + 4, cl = new Uint8Array(19);
      for (i = 0; i < ncode; i++) cl[CLORDER[i]] = bits(3);
      var ch = huffman(cl), lens = new Uint8Array(nlen + ndist);
      for (i = 0; i < nlen + ndist;) {
        var c = symbol(ch);
        if (c < 16) { lens[i++] = c; continue; }
        var rep = c === 16 ? 3 + bits(2) : c === 17 ? 3 + bits(3) : 11 + bits(7), v = c === 16 ? lens[i - 1] : 0;
        while (rep--) lens[i++] = v;
      }
      lit = huffman(lens.subarray(0, nlen)); dist = huffman(lens.subarray(nlen));
    } else if (type !== 1) throw new Error("bad deflate block");
    for (;;) {
      var s = symbol(lit);
      if (s < 256) { out[op++] = s; continue; }
      if (s === 256) break;
      s -= 257;
      var length = LBASE[s] + bits(LEXT[s]), d = symbol(dist), from = op - DBASE[d] - bits(DEXT[d]);
      while (length--) out[op++] = out[from++];
    }
  } while (!last);
  if (op !== size) throw new Error("deflate data gives " + op + " bytes, not " + size);
  return out;
}
function decode(b) {
  var bin = atob(b.b64), bytes = new Uint8Array(bin.length), size = b.dtype === "f8" ? 8 : 4;
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (b.deflate) bytes = inflate(bytes, size * prod(b.shape));
  var dv = new DataView(bytes.buffer), n = bytes.length / size;
  var out = new Float64Array(n);
  for (var j = 0; j < n; j++) out[j] = size === 8 ? dv.getFloat64(j * 8, true) : dv.getFloat32(j * 4, true);
  return out;
}
function arr(b) {
  if (!b) return null;
  if (!cache.has(b)) cache.set(b, decode(b));
  return cache.get(b);
}
function prod(a) { return a.reduce(function (x, y) { return x * y; }, 1); }
function flat(pos, shape) { var f = 0; for (var a = 0; a < shape.length; a++) f = f * shape[a] + pos[a]; return f; }
function unflat(f, shape) {
  var pos = new Array(shape.length);
  for (var a = shape.length - 1; a >= 0; a--) { pos[a] = f % shape[a]; f = Math.floor(f / shape[a]); }
  return pos;
}
var ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
function esc(t) { return String(t).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; }); }
function fmt(v) {
  if (v === -Infinity) return "-inf";
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
function note(t) { return tag("p", "class='note'", t); }
function sub(name, pos) { return name + tag("sub", "", pos.map(function (p) { return p + 1; }).join(",")); }
function el(id) { return document.getElementById(id); }
function $$(sel) { return Array.prototype.slice.call(ROOT.querySelectorAll(sel)); }

// ---------------------------------------------------------------- embedded values
function spatialOf(shape) { return shape.slice(2); }
function outValues(l) {
  if (!l || !l.values) return null;
  return {data: arr(l.values.data), channels: l.values.channels, shape: l.out_shape.slice(1),
          start: l.values.start || null, tile: l.values.tile || null};
}
function sliceVals(s, shape) {   // an embedded block: channels, start and size per spatial axis
  return s && s.data ? {data: arr(s.data), channels: s.channels, shape: shape, start: s.start || null,
                        tile: s.tile || null} : null;
}
function valuesOf(ref) {          // the output of layer `ref` (0: the model's input)
  if (ref === 0) {
    return {data: arr(D.input), channels: null, shape: D.input_shape.slice(1)};
  }
  return ref === null || ref === undefined ? null : outValues(LAYERS[ref]);
}
function at(vals, c, pos) {       // one value of (C, *spatial) or (features,) values; null if not embedded
  if (!vals) return null;
  if (vals.shape.length === 1) return vals.data[pos[0]];
  var ci = vals.channels ? vals.channels.indexOf(c) : c;
  if (ci < 0) return null;
  var tile = vals.tile || vals.shape.slice(1), rel = pos;
  if (vals.start) {
    rel = [];
    for (var a = 0; a < pos.length; a++) {
      var r = pos[a] - vals.start[a];
      if (r < 0 || r >= tile[a]) return null;       // outside the embedded block
      rel.push(r);
    }
  }
  return vals.data[ci * prod(tile) + flat(rel, tile)];
}
function inputVals(l, i) {        // input i of layer l: its own slice, else the producer's tile
  var s = l.inputs ? l.inputs[i || 0] : null;
  if (s && s.data) return sliceVals(s, s.shape);
  if (s) return valuesOf(s.ref);
  return i ? null : valuesOf(l.input_ref);
}
function tiled(l) {               // the layer embeds a block of its positions, not the whole map
  if (!l.values || !l.values.tile) return false;
  var n = l.out_shape.slice(2);
  return l.values.tile.some(function (t, a) { return t !== n[a]; });
}
function inTile(l, pos) {
  if (!tiled(l)) return true;
  return pos.every(function (p, a) { return p >= l.values.start[a] && p < l.values.start[a] + l.values.tile[a]; });
}
function tileText(l) {
  var axes = l.values.tile.length === 1 ? ["entries"] : ["rows", "columns"];
  return l.values.tile.map(function (t, a) {
    return axes[a] + " " + l.values.start[a] + ".." + (l.values.start[a] + t - 1);
  }).join(", ");
}
function libValue(l, c, pos) { return at(outValues(l), c, pos); }

function verdict(js, lib, tol, kind) {
  var h = calc("computed on this page: " + tag("b", "id='calc-js' data-value='" + js + "' data-kind='" + kind + "'",
                                                 fmt(js)));
  if (lib === null) return h + note("convscope's value of this entry is not embedded.");
  var diff = Math.abs(js - lib), ok = diff <= tol || (js === lib);
  h += calc("convscope forward: " + tag("b", "id='calc-lib' data-value='" + lib + "'", fmt(lib)) + " (" +
      esc(D.dtype) + ")");
  h += calc("|difference| = " + tag("span", "id='calc-diff' data-value='" + diff + "'", diff.toExponential(2)) +
            "; rounding bound " + tag("span", "id='calc-tol' data-value='" + tol + "'", tol.toExponential(2)) +
            " &rarr; " + tag("span", "id='calc-verdict' class='" + (ok ? "ok" : "bad") + "'", ok ? "agree" :
                "DISAGREE"));
  return h;
}

// ---------------------------------------------------------------- boxes on pictures
function place(elm, rows, cols, H, W) {
  elm.style.left = (cols[0] / W * 100) + "%";
  elm.style.width = ((cols[1] - cols[0] + 1) / W * 100) + "%";
  elm.style.top = (rows[0] / H * 100) + "%";
  elm.style.height = ((rows[1] - rows[0] + 1) / H * 100) + "%";
  elm.style.display = "block";
}
function boxOn(img, cls, ranges) {   // ranges per spatial axis [first, last] in the picture's pixels
  var host = img.parentNode, box = host.querySelector("." + cls);
  if (!box) { box = document.createElement("div"); box.className = cls; host.appendChild(box); }
  if (ranges.length === 1) place(box, [0, 0], ranges[0], 1, img.naturalWidth);
  else place(box, ranges[0], ranges[1], img.naturalHeight, img.naturalWidth);
}
function clearBoxes(cls) { $$("." + cls).forEach(function (b) { b.style.display = "none"; }); }

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
function drawRegion(reg) {
  var n = D.input_shape.slice(2), one = n.length === 1;
  $$(".rf-box").forEach(function (box) {
    if (!reg || reg === "padding") { box.style.display = "none"; return; }
    place(box, one ? [0, 0] : [reg[0][0], reg[0][1]], reg[reg.length - 1], one ? 1 : n[0], n[n.length - 1]);
  });
}
function markPixel(img, pos) {
  clearBoxes("rf-pix");
  if (!img) return;
  var mark = img.parentNode.querySelector(".rf-pix");
  if (!mark) { mark = document.createElement("div"); mark.className = "rf-pix"; img.parentNode.appendChild(mark); }
  var r = pos.length === 1 ? 0 : pos[0], c = pos[pos.length - 1];
  place(mark, [r, r], [c, c], img.naturalHeight, img.naturalWidth);
}
function fieldText(l, reg) {
  if (reg === "padding") {
    return tag("p", "id='rf-text' data-region='none'",
        "This value's windows lie entirely in the zero padding: no input entry reaches it.");
  }
  if (!reg) return tag("p", "id='rf-text' data-region=''", "This value can depend on the whole input (" +
      esc(l.field_reason || "after Flatten or Linear") + ").");
  var txt = reg.map(function (r) { return r[0] + ":" + (r[1] + 1); }).join(", ");
  var axes = D.spatial_ndim === 1 ? ["entries"] : ["rows", "columns"];
  var ranges = reg.map(function (r, a) { return axes[a] + " " + r[0] + ".." + r[1]; }).join(", ");
  var inPad = reg.some(function (r) { return r[2] < r[0] || r[3] > r[1]; });
  return tag("p", "", "Receptive field on the input (orange): " + tag("b", "id='rf-text' data-region='" + txt + "'",
      "x[..., " + txt + "]") +
             " (" + ranges + (l.rf && l.jump ? "; field " + l.rf.join("x") + ", jump " + l.jump.join("x") : "") +
             (inPad ? "; the rest of the field lies in the padding" : "") + ")");
}
// the window of layer l at output pos, drawn on the maps of the layer it reads (blue)
function drawWindow(l, win, chans) {
  clearBoxes("win-box");
  if (!win) return "";
  var ref = l.input_ref, n = l.in_shape.slice(2), ranges = [], txt = [];
  for (var a = 0; a < n.length; a++) {
    var lo = win.start[a] - win.p[a], hi = lo + win.d[a] * (win.k[a] - 1);
    var f = Math.max(0, lo), t = Math.min(n[a] - 1, hi);
    if (f > t) return tag("p", "id='win-text' data-window='none'", "The window lies in the padding only.");
    ranges.push([f, t]); txt.push(f + ":" + (t + 1));
  }
  var sel = ref === 0 ? "#input img.inmap" : "img.fmap[data-layer='" + ref + "']";
  $$(sel).forEach(function (img) {
    var c = ref === 0 ? +img.dataset.channel : +img.dataset.channel;
    if (ref === 0 && isNaN(c)) { boxOn(img, "win-box", ranges); return; }
    if (chans.indexOf(c) >= 0) boxOn(img, "win-box", ranges);
  });
  var where = ref === 0 ? "the input" : ref == null ? (l.input_label || "its input") :
      "layer " + ref + "'s maps";
  var chtxt = chans.length === 1 ? "channel " + (chans[0] + 1) : "channels " + (chans[0] + 1) + ".." +
      (chans[chans.length - 1] + 1);
  return tag("p", "", "Window on " + where + " (" + (ref == null ? "its maps are not drawn; " : "blue box, ") +
             chtxt + "): " +
             tag("b", "id='win-text' data-window='" + txt.join(", ") + "'", "[" + txt.join(", ") + "]") +
             (win.d.some(function (d) { return d !== 1; }) ? " every " + tuple(win.d) + "-th entry" : ""));
}

// ---------------------------------------------------------------- small tables
function gridTable(caption, cells, shape, classes) {
  var rows = shape.length === 1 ? 1 : shape[0], cols = shape[shape.length - 1], h = "";
  for (var r = 0; r < rows; r++) {
    var tr = "";
    for (var c = 0; c < cols; c++) {
      var i = r * cols + c, cl = classes ? classes[i] : "";
      tr += tag("td", cl ? "class='" + cl + "'" : "", typeof cells[i] === "string" ? cells[i] : fmt(cells[i]));
    }
    h += tag("tr", "", tr);
  }
  return tag("table", "class='grid'", tag("caption", "", esc(caption)) + h);
}
// taps of a window: padded positions and real input positions per tap (row-major over k)
function taps(start, k, d, pBefore, n, pAfter) {
  var out = [], nk = prod(k);
  for (var t = 0; t < nk; t++) {
    var ka = unflat(t, k), q = [], r = [], real = true, inside = true;
    for (var a = 0; a < k.length; a++) {
      q.push(start[a] + ka[a] * d[a]);
      r.push(q[a] - pBefore[a]);
      if (r[a] < 0 || r[a] >= n[a]) real = false;
      if (pAfter && q[a] >= n[a] + pBefore[a] + pAfter[a]) inside = false;
    }
    out.push({q: q, r: r, real: real, inside: inside});
  }
  return out;
}

// ---------------------------------------------------------------- forward: one panel per kind
function convPanel(l, c, pos, lib) {
  var cv = l.conv;
  if (!cv.padded) return note(esc(cv.note || "The numbers of this layer are not embedded."));
  var wi = cv.channels.indexOf(c);
  if (wi < 0) return note("The filter of channel " + (c + 1) + " is not embedded. " + esc(cv.note || ""));
  var P = arr(cv.padded), W = arr(cv.weights), k = cv.k, p0 = cv.padded_start || k.map(function () { return 0; });
  var pshape = cv.padded_shape.slice(1), psize = prod(pshape), ksize = prod(k);
  var gsize = cv.c_in / cv.groups, g = Math.floor(c / (cv.c_out / cv.groups));
  var b = cv.bias ? cv.bias[wi] : 0;
  var start = pos.map(function (p, a) { return p * cv.s[a]; });
  var total = 0, absTotal = Math.abs(b), nterms = 0, subtotals = [], shown = 0, html = "";
  var chans = [];
  for (var q = 0; q < gsize; q++) chans.push(g * gsize + q);
  html += drawWindow(l, {start: start, p: cv.p_before, d: cv.d, k: k}, chans);
  html += calc("y = f . v + f_0 (Key Equation 15, Definition 26): v = x_p[" + (g * gsize) + ":" + ((g + 1) * gsize) +
      ", " +
               start.map(function (st, a) { var e = st + cv.d[a] * (k[a] - 1) + 1; return st + ":" + e +
                   (cv.d[a] !== 1 ? ":" + cv.d[a] : ""); }).join(", ") +
               "] of this layer's input" + (cv.p_before.some(function (p) { return p > 0; }) ?
               " padded by p = " + tuple(cv.p_before) + " (" + esc(cv.padding_mode) + ")" : "") + ", stride " +
                   tuple(cv.s));
  for (var ch = 0; ch < gsize; ch++) {
    var cin = g * gsize + ch, vs = [], ws = [], ps = [], cls = [], s = 0, terms = [];
    var tp = taps(start, k, cv.d, cv.p_before, cv.n);
    for (var t = 0; t < ksize; t++) {
      var v = P[cin * psize + flat(tp[t].q.map(function (q, a) { return q - p0[a]; }), pshape)],
          w = W[wi * gsize * ksize + ch * ksize + t];
      vs.push(v); ws.push(w); ps.push(w * v); cls.push(tp[t].real ? "" : "pad");
      s += w * v; absTotal += Math.abs(w * v); nterms++;
      if (terms.length < 27) terms.push(paren(w) + "*" + paren(v));
    }
    total += s; subtotals.push(s);
    if (shown < 4) {
      shown++;
      html += tag("div", "", tag("b", "", "input channel " + (cin + 1)) +
        tag("div", "class='grids'", gridTable("window v", vs, k, cls) + gridTable("filter f", ws, k, null) +
            gridTable("f * v", ps, k, null)) +
        calc(terms.join(" + ") + (ksize > terms.length ? " + ... (" + ksize + " products)" : "") + " = " + fmt(s)));
    }
  }
  if (gsize > shown) html += tag("p", "class='muted'", "(" + (gsize - shown) +
      " more input channels: their sums are below.)");
  var y = total + b;
  var parts = gsize > 1 ? subtotals.slice(0, 12).map(paren).join(" + ") + (gsize > 12 ? " + ..." : "") + " = " : "";
  html += calc("f . v = " + parts + fmt(total));
  html += calc("y = f . v + f_0 = " + fmt(total) + " + " + paren(b) + " = " + fmt(y) + " (" + nterms + " products)");
  return html + verdict(y, lib, (nterms + 1) * D.eps * absTotal + 1e-300, "conv");
}

function poolPanel(l, c, pos, lib) {
  var pl = l.pool, vals = inputVals(l), isMax = pl.op === "max";
  var start = pos.map(function (p, a) { return p * pl.s[a]; });
  var html = drawWindow(l, {start: start, p: pl.p_before, d: pl.d, k: pl.k}, [c]);
  if (!vals) return html + note("The input of this layer is not embedded.");
  var tp = taps(start, pl.k, pl.d, pl.p_before, pl.n, pl.p_after), cells = [], cls = [], best = -Infinity, bi = -1;
  var counted = 0, realCount = 0, sum = 0, absSum = 0, terms = [];
  for (var t = 0; t < tp.length; t++) {
    var v;
    if (!tp[t].inside) { cells.push("-"); cls.push("off"); continue; }
    if (tp[t].real) { v = at(vals, c, tp[t].r); realCount++; } else { v = isMax ? -Infinity : 0; }
    if (v === null) return html + note("The input channel " + (c + 1) + " is not embedded.");
    counted++;
    cells.push(v); cls.push(tp[t].real ? "" : "pad");
    if (v > best) { best = v; bi = t; }
    sum += v; absSum += Math.abs(v); terms.push(paren(v));
  }
  if (isMax) {
    var ties = [];
    tp.forEach(function (x, t) { if (cells[t] === best && x.inside) ties.push(t); });
    ties.forEach(function (t) { cls[t] = t === bi ? "hit" : "tie"; });
    html += tag("div", "class='grids'", gridTable("receptive field r (padding -inf)", cells, pl.k, cls));
    html += calc("y = max(" + terms.join(", ") + ") = " + fmt(best) + " (Definition 51)");
    var where = tp[bi].real ? "position " + tuple(tp[bi].r) + " of channel " + (c + 1) : "the padding";
    html += tag("p", "", "The maximum is at " + tag("b", "id='pool-argmax' data-pos='" + tp[bi].r.join(",") + "'",
        where) +
                " of this layer's input (0-based)" +
                (ties.length > 1 ? "; it is reached " + ties.length +
                    " times (a tie): the first in row-major order is chosen, " +
                 "as in convscope and PyTorch, and it alone receives the gradient" : "") + ".");
    return html + verdict(best, lib, 0, "max_pool");
  }
  var count = pl.count_include_pad ? counted : realCount;
  var w = 1 / count;
  html += tag("div", "class='grids'", gridTable("receptive field r (padding 0)", cells, pl.k, cls) +
              gridTable("weights", cls.map(function (x) { return x === "off" || (!pl.count_include_pad &&
                  x === "pad") ? "0" : "1/" + count; }), pl.k, null));
  html += calc("y = (" + terms.join(" + ") + ") / " + count + " = " + fmt(sum) + " / " + count + " = " +
      fmt(sum / count) +
               (pl.count_include_pad ? " (padded cells count)" : " (only real entries count)"));
  return html + verdict(sum / count, lib, (counted + 2) * D.eps * absSum * w + 1e-300, "avg_pool");
}

function blurPanel(l, c, pos, lib) {
  var bl = l.blur, html = "", start = pos.map(function (p, a) { return p * bl.s[a]; });
  html += drawWindow(l, {start: start, p: bl.p_before, d: bl.k.map(function () { return 1; }), k: bl.k}, [c]);
  if (!bl.padded) return html + note("The padded input of this layer is not embedded (max_layer_numbers).");
  var ci = bl.channels.indexOf(c);
  if (ci < 0) return html + note("Channel " + (c + 1) + " is not embedded.");
  var P = arr(bl.padded), pshape = bl.padded_shape.slice(1), psize = prod(pshape);
  var p0 = bl.padded_start || bl.k.map(function () { return 0; });
  var tp = taps(start, bl.k, bl.k.map(function () { return 1; }), bl.p_before, bl.n);
  var vs = [], cls = [], y = 0, abs = 0, terms = [];
  tp.forEach(function (t, i) {
    var v = P[ci * psize + flat(t.q.map(function (q, a) { return q - p0[a]; }), pshape)];
    vs.push(v); cls.push(t.real ? "" : "pad"); y += bl.weights[i] * v; abs += Math.abs(bl.weights[i] * v);
    if (terms.length < 16) terms.push(fmt(bl.weights[i]) + "*" + paren(v));
  });
  html += tag("div", "class='grids'", gridTable("window (" + esc(bl.padding_mode) + " padding)", vs, bl.k, cls) +
              gridTable("binomial weights (sum 1)", bl.weights, bl.k, null));
  html += calc("y = sum of weight * value = " + terms.join(" + ") + (tp.length > terms.length ? " + ..." : "") +
      " = " + fmt(y) +
               " (blur pooling, notes 9.2.6: low-pass filter, then keep every s-th value)");
  return html + verdict(y, lib, (tp.length + 1) * D.eps * abs + 1e-300, "blur_pool");
}

function activationPanel(l, c, pos, lib) {
  var z = at(inputVals(l), c, pos);
  if (z === null) return note("The input of this value is not embedded.");
  var y, h, kind = l.kind;
  if (kind === "relu") {
    y = Math.max(0, z);
    h = calc("y = ReLU(z) = max(0, z) = max(0, " + fmt(z) + ") = " + fmt(y)) +
        tag("p", "", "z = " + fmt(z) + " is the value at the same position of layer " + l.input_ref + "'s output; " +
            (z > 0 ? "it is positive, so it passes unchanged (the derivative is 1, Key Equation 66)." :
             "it is not positive, so the output is 0 (the derivative is 0: this position is masked in the " +
             "backward pass)."));
  } else if (kind === "leaky_relu") {
    var a = l.act.negative_slope;
    y = z > 0 ? z : a * z;
    h = calc("y = z if z > 0 else " + fmt(a) + " * z = " + (z > 0 ? fmt(z) : fmt(a) + " * " + paren(z)) + " = " +
        fmt(y));
  } else if (kind === "sigmoid") {
    y = 1 / (1 + Math.exp(-z));
    h = calc("y = 1 / (1 + exp(-z)) = 1 / (1 + exp(" + fmt(-z) + ")) = " + fmt(y));
  } else if (kind === "tanh") {
    y = Math.tanh(z);
    h = calc("y = tanh(z) = tanh(" + fmt(z) + ") = " + fmt(y));
  } else if (kind === "relu6") {
    y = Math.min(Math.max(z, 0), 6);
    h = calc("y = ReLU6(z) = min(max(0, z), 6) = min(max(0, " + fmt(z) + "), 6) = " + fmt(y)) +
        tag("p", "", z <= 0 ? "z is not positive: the output is 0." : z >= 6 ? "z is at least 6: the output is " +
            "capped at 6." : "0 < z < 6: it passes unchanged.");
  } else if (kind === "hardsigmoid") {
    y = Math.min(Math.max(z + 3, 0), 6) / 6;
    h = calc("y = hardsigmoid(z) = min(max(0, z + 3), 6) / 6 = min(max(0, " + fmt(z) + " + 3), 6) / 6 = " +
             fmt(Math.min(Math.max(z + 3, 0), 6)) + " / 6 = " + fmt(y)) +
        tag("p", "", "A piecewise-linear sigmoid: 0 for z &le; -3, 1 for z &ge; 3, z/6 + 1/2 in between.");
  } else if (kind === "hardswish") {
    var r6 = Math.min(Math.max(z + 3, 0), 6);
    y = z * r6 / 6;
    h = calc("y = hardswish(z) = z * min(max(0, z + 3), 6) / 6 = " + paren(z) + " * min(max(0, " + fmt(z) +
             " + 3), 6) / 6 = " + paren(z) + " * " + fmt(r6) + " / 6 = " + fmt(y)) +
        tag("p", "", "z times its hard sigmoid (MobileNetV3): 0 for z &le; -3, z for z &ge; 3.");
  } else if (kind === "silu") {
    var sg = 1 / (1 + Math.exp(-z));
    y = z * sg;
    h = calc("y = SiLU(z) = z * sigmoid(z) = " + paren(z) + " * 1 / (1 + exp(" + fmt(-z) + ")) = " + paren(z) +
             " * " + fmt(sg) + " = " + fmt(y));
  } else if (kind === "gelu") {
    var ph = phiOf(z, l.act ? l.act.approximate : "none");
    y = z * ph.phi;
    h = calc("y = GELU(z) = z * &Phi;(z), " + ph.text + " = " + fmt(ph.phi)) +
        calc("y = " + paren(z) + " * " + fmt(ph.phi) + " = " + fmt(y));
  } else {
    y = z;
    h = calc("y = z = " + fmt(z) + " (" + (kind === "identity" ? "Identity passes its input through" :
             esc(kind) + " in evaluation mode passes its input through") + ")");
  }
  return h + verdict(y, lib, actTol(kind, z, y), kind);
}
function actTol(kind, z, y) {     // float rounding of the library's formula in its dtype
  var a = Math.abs(z), e = D.eps;
  if (kind === "relu" || kind === "relu6" || kind === "dropout" || kind === "identity") return 0;
  if (kind === "hardsigmoid") return 8 * e * ((a + 3) / 6 + Math.abs(y)) + 1e-300;
  if (kind === "hardswish") return 8 * e * (a * (a + 3) / 6 + Math.abs(y)) + 1e-300;
  if (kind === "gelu") return 16 * e * (Math.abs(y) + a) + 1e-300;
  return 16 * e * (Math.abs(y) + 1e-30);
}
// the error function (NumPy has none): convscope's own algorithm (convscope.functional.erf), in float64
function erf(x) {
  var a = Math.abs(x), v2 = a * a, t, total, k;
  if (isNaN(x)) return NaN;
  if (a <= 3) {
    t = a; total = a;
    for (k = 1; k < 200; k++) { t = t * (2 * v2) / (2 * k + 1); total += t; if (!(t > 1e-17 * total)) break; }
    return (x < 0 ? -1 : 1) * (2 / Math.sqrt(Math.PI) * Math.exp(-v2) * total);
  }
  if (a < 6) {
    var frac = 0;
    for (k = 60; k > 0; k--) frac = (k / 2) / (a + frac);
    return (x < 0 ? -1 : 1) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + frac));
  }
  return x < 0 ? -1 : 1;
}
var GELU_C = 0.044715, SQRT_2_PI = Math.sqrt(2 / Math.PI);
function phiOf(z, approximate) {  // the normal CDF Phi(z) of GELU, or its tanh approximation
  if (approximate === "tanh") {
    var u = SQRT_2_PI * (z + GELU_C * z * z * z), T = Math.tanh(u);
    return {phi: 0.5 * (1 + T), T: T, text: "&Phi;(z) &asymp; (1 + tanh(sqrt(2/&pi;) (z + 0.044715 z&sup3;))) / 2 " +
            "(approximate='tanh') = (1 + tanh(" + fmt(u) + ")) / 2"};
  }
  var e = erf(z / Math.SQRT2);
  return {phi: 0.5 * (1 + e), text: "&Phi;(z) = (1 + erf(z / sqrt 2)) / 2 (the standard normal CDF) = " +
          "(1 + erf(" + fmt(z / Math.SQRT2) + ")) / 2 = (1 + " + paren(e) + ") / 2"};
}
// the local derivative dy/dz of an elementwise layer at z: its formula and value (the backward view)
function slopeOf(l, c, z) {
  var k = l.kind, s;
  if (k === "relu6") return {f: "ReLU6'(z) = [0 < z < 6]", d: z > 0 && z < 6 ? 1 : 0};
  if (k === "hardsigmoid") return {f: "hardsigmoid'(z) = 1/6 on -3 < z < 3, else 0", d: z > -3 && z < 3 ? 1 / 6 : 0};
  if (k === "hardswish") {
    return {f: "hardswish'(z) = 0 for z &le; -3, z/3 + 1/2 for -3 < z < 3, 1 for z &ge; 3" +
            (z > -3 && z < 3 ? " = " + paren(z) + "/3 + 1/2" : ""), d: z <= -3 ? 0 : z < 3 ? z / 3 + 0.5 : 1};
  }
  if (k === "silu") {
    s = 1 / (1 + Math.exp(-z));
    return {f: "SiLU'(z) = s (1 + z (1 - s)), s = sigmoid(z) = " + fmt(s), d: s * (1 + z * (1 - s))};
  }
  if (k === "sigmoid") { s = 1 / (1 + Math.exp(-z)); return {f: "sigmoid'(z) = s (1 - s), s = " + fmt(s),
                                                              d: s * (1 - s)}; }
  if (k === "tanh") { s = Math.tanh(z); return {f: "tanh'(z) = 1 - tanh(z)&sup2; = 1 - " + paren(s) + "&sup2;",
                                                d: 1 - s * s}; }
  if (k === "leaky_relu") return {f: "LeakyReLU'(z) = 1 for z > 0, else " + fmt(l.act.negative_slope),
                                  d: z > 0 ? 1 : l.act.negative_slope};
  if (k === "gelu") {
    var approx = l.act ? l.act.approximate : "none", ph = phiOf(z, approx);
    if (approx === "tanh") {
      var du = SQRT_2_PI * (1 + 3 * GELU_C * z * z);
      return {f: "GELU'(z) = (1 + T)/2 + z/2 (1 - T&sup2;) sqrt(2/&pi;) (1 + 3*0.044715 z&sup2;), T = " + fmt(ph.T),
              d: 0.5 * (1 + ph.T) + 0.5 * z * (1 - ph.T * ph.T) * du};
    }
    var dens = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    return {f: "GELU'(z) = &Phi;(z) + z &phi;(z), &Phi;(z) = " + fmt(ph.phi) + ", &phi;(z) = exp(-z&sup2;/2) / " +
            "sqrt(2&pi;) = " + fmt(dens), d: ph.phi + z * dens};
  }
  if (k === "normalize") return {f: "d/dx (x - &mu;) / &sigma; = 1/&sigma; = 1/" + fmt(l.norm.std[c]),
                                 d: 1 / l.norm.std[c]};
  if (k === "identity" || k === "dropout") return {f: "dy/dz = 1 (" + esc(k) + " passes its input through)", d: 1};
  return null;
}
function localGrad(l, c, pos, g) {   // dL/dz = dL/dy * f'(z), next to convscope's dL/dz when it is the input's own
  var z = at(inputVals(l), c, pos), sl = z === null ? null : slopeOf(l, c, z);
  if (!sl) return "";
  var js = g * sl.d, ref = l.input_ref, h = calc("local derivative: " + sl.f + " = " + fmt(sl.d) +
      (l.kind === "normalize" ? "" : " at z = " + fmt(z)));
  h += calc("dL/dz = dL/dy * dy/dz = " + fmt(g) + " * " + paren(sl.d) + " = " +
            tag("b", "id='local-grad' data-value='" + js + "'", fmt(js)) + " (the chain rule)");
  var src = ref === null || ref === undefined ? null : ref === 0 ? null : LAYERS[ref];
  if (ref === null || ref === undefined || (src && src.consumers)) return h;   // fan-out: it gets a sum
  var lib = at(gradVals(ref), c, pos);
  if (lib === null) return h;
  var tol = 16 * D.eps * Math.abs(g) * (Math.abs(sl.d) + Math.abs(z) + 1) + 1e-300,
      ok = Math.abs(js - lib) <= tol || js === lib;
  return h + calc("convscope's backward: dL/dz = " + fmt(lib) + " (" + refLink(ref) + "'s dL/dy) &rarr; " +
                  tag("span", "id='local-verdict' class='" + (ok ? "ok" : "bad") + "'", ok ? "agree" : "DISAGREE"));
}

function normalizePanel(l, c, pos, lib) {
  var nm = l.norm, z = at(inputVals(l), c, pos);
  if (z === null) return note("The input of this value is not embedded.");
  var m = nm.mean[c], sd = nm.std[c], y = (z - m) / sd;
  var h = tag("p", "", "Channel " + (c + 1) + ": mean &mu; = " + fmt(m) + ", std &sigma; = " + fmt(sd) +
              " (the input standardisation kept in the model: the statistics of the training images, not trained).");
  h += calc("y = (x - &mu;) / &sigma; = (" + fmt(z) + " - " + paren(m) + ") / " + fmt(sd) + " = " + fmt(z - m) +
            " / " + fmt(sd) + " = " + fmt(y));
  return h + verdict(y, lib, 4 * D.eps * ((Math.abs(z) + Math.abs(m)) / sd + Math.abs(y)) + 1e-300, "normalize");
}

function adaptiveWindow(ad, pos) {   // PyTorch's window of output pos: start floor(i*n/out), end ceil((i+1)*n/out)
  var lo = pos.map(function (i, a) { return Math.floor(i * ad.n[a] / ad.out[a]); });
  var size = pos.map(function (i, a) { return Math.ceil((i + 1) * ad.n[a] / ad.out[a]) - lo[a]; });
  return {lo: lo, size: size, cells: function (vals, c) {      // its values, row-major; null if not embedded
    var out = [];
    for (var t = 0; t < prod(size); t++) {
      var v = at(vals, c, unflat(t, size).map(function (u, a) { return u + lo[a]; }));
      if (v === null) return null;
      out.push(v);
    }
    return out;
  }};
}
function adaptiveGrad(l, c, pos, g) {  // the derivative of an adaptive pooling: spread evenly, or routed
  var win = adaptiveWindow(l.adaptive, pos), count = prod(win.size);
  if (l.adaptive.op === "avg") {
    return tag("p", "id='spread-text' data-value='" + g / count + "' data-count='" + count + "'",
               "Adaptive average pooling's derivative: y is the mean of the " + count + " entries of its window, so " +
               "dy/dx = 1/" + count + " for each; every entry of the window gets dL/dy / " + count + " = " + fmt(g) +
               " / " + count + " = " + fmt(g / count) + " from this value (where windows overlap, the shares add up).");
  }
  var cells = win.cells(inputVals(l), c), bi = 0;
  if (!cells) return "";
  cells.forEach(function (v, t) { if (v > cells[bi]) bi = t; });
  var at0 = unflat(bi, win.size).map(function (u, a) { return u + win.lo[a]; });
  return tag("p", "id='route-text' data-pos='" + at0.join(",") + "' data-value='" + g + "'",
             "Adaptive max pooling's derivative: one-hot (Key Equation 69). The whole dL/dy = " + fmt(g) +
             " goes to position " + tuple(at0) + " of channel " + (c + 1) + ", the window's first maximum; the " +
             "other " + (count - 1) + " entries of this window get 0 from it.");
}
function adaptivePanel(l, c, pos, lib) {   // adaptive pooling: the window follows from the sizes
  var ad = l.adaptive, vals = inputVals(l), isMax = ad.op === "max";
  var win = adaptiveWindow(ad, pos), lo = win.lo, size = win.size, lines = [];
  var axes = ad.n.length === 1 ? ["entries"] : ["rows", "columns"];
  for (var a = 0; a < ad.n.length; a++) {
    var n = ad.n[a], o = ad.out[a], i = pos[a];
    lines.push(axes[a] + ": floor(" + i + "*" + n + "/" + o + ") = " + lo[a] + " to ceil(" + (i + 1) + "*" + n +
               "/" + o + ") = " + (lo[a] + size[a]) + " (exclusive), " + size[a] + " entr" +
               (size[a] === 1 ? "y" : "ies"));
  }
  var global = ad.out.every(function (v) { return v === 1; });
  var html = tag("p", "", "Adaptive " + (isMax ? "max" : "average") + " pooling to " + tuple(ad.out) + " from " +
                 tuple(ad.n) + (global ? " (global pooling: one window, the whole channel)" : "") +
                 ": output i of an axis of n inputs and out outputs reads inputs floor(i*n/out) to " +
                 "ceil((i+1)*n/out) (PyTorch's windows).") + lines.map(function (t) { return calc(t); }).join("");
  html += drawWindow(l, {start: lo, p: lo.map(function () { return 0; }), d: lo.map(function () { return 1; }),
                         k: size}, [c]);
  if (!vals) return html + note("The input of this layer is not embedded.");
  var count = prod(size), cells = win.cells(vals, c), sum = 0, abs = 0, best = -Infinity, bi = -1, terms = [];
  if (!cells) return html + note("The input channel " + (c + 1) + " is not embedded on this window.");
  cells.forEach(function (v, t) {
    sum += v; abs += Math.abs(v);
    if (v > best || bi < 0) { best = v; bi = t; }
    if (terms.length < 12) terms.push(paren(v));
  });
  var more = count > terms.length ? " + ... (" + count + " values)" : "";
  var cls = cells.map(function (v, t) { return isMax && v === best ? (t === bi ? "hit" : "tie") : ""; });
  if (count <= 36 && size[size.length - 1] <= 6) {       // a small window as a grid; a large one by its sum
    html += tag("div", "class='grids'", gridTable("window (" + size.join("x") + ")", cells, size, cls));
  }
  html += tag("span", "id='adaptive-window' data-start='" + lo.join(",") + "' data-size='" + size.join(",") + "'", "");
  if (isMax) {
    var at0 = unflat(bi, size).map(function (v, ax) { return v + lo[ax]; });
    html += calc("y = max(" + terms.join(", ") + (count > terms.length ? ", ... (" + count + " values)" : "") +
                 ") = " + fmt(best));
    html += tag("p", "", "The maximum is at " + tag("b", "id='pool-argmax' data-pos='" + at0.join(",") + "'",
                "position " + tuple(at0) + " of channel " + (c + 1)) + " of this layer's input (0-based; the first " +
                "in row-major order on a tie, as in convscope and PyTorch).");
    return html + verdict(best, lib, 0, "adaptive_max_pool");
  }
  html += calc("y = (" + terms.join(" + ") + more + ") / " + count + " = " + fmt(sum) + " / " + count + " = " +
               fmt(sum / count));
  return html + verdict(sum / count, lib, (count + 2) * D.eps * abs / count + 1e-300, "adaptive_avg_pool");
}

function bnPanel(l, c, pos, lib) {
  var bn = l.bn, z = at(inputVals(l), c, pos);
  if (z === null) return note("The input of this value is not embedded.");
  if (!bn.mean) {
    return note("This BatchNorm keeps no running statistics: it normalises with the statistics of the batch itself.");
  }
  var m = bn.mean[c], v = bn.var[c], g = bn.weight[c], b = bn.bias[c], sd = Math.sqrt(v + bn.eps);
  var xh = (z - m) / sd, y = g * xh + b;
  var h = tag("p", "", "Channel " + (c + 1) + ": running mean &mu; = " + fmt(m) +
      ", running variance &sigma;&sup2; = " + fmt(v) +
              ", eps = " + fmt(bn.eps) + ", scale &gamma; = " + fmt(g) + ", shift &beta; = " + fmt(b) +
              " (evaluation mode: the statistics recorded in training).");
  h += calc("x&#770; = (z - &mu;) / sqrt(&sigma;&sup2; + eps) = (" + fmt(z) + " - " + paren(m) + ") / sqrt(" +
      fmt(v) + " + " +
            fmt(bn.eps) + ") = " + fmt(z - m) + " / " + fmt(sd) + " = " + fmt(xh));
  h += calc("y = &gamma; x&#770; + &beta; = " + fmt(g) + " * " + paren(xh) + " + " + paren(b) + " = " + fmt(y));
  return h + verdict(y, lib, 32 * D.eps * (Math.abs(g * xh) + Math.abs(g * m / sd) + Math.abs(b) +
      Math.abs(g * z / sd)) + 1e-30, "batch_norm");
}

function linearPanel(l, c, pos, lib) {
  var li = l.linear, j = pos[0], xv = inputVals(l);
  var row = li.rows ? li.rows.indexOf(j) : j;
  if (!li.weights || row < 0) return note("The weights of output " + (j + 1) + " are not embedded. " +
                                          esc(li.note || ""));
  if (!xv) return note("The input of this layer is not embedded.");
  var W = arr(li.weights), n = li["in"], contrib = [], total = 0, abs = 0;
  for (var i = 0; i < n; i++) {
    var x = xv.data[i], w = W[row * n + i], p = w * x;
    contrib.push({i: i, w: w, x: x, p: p}); total += p; abs += Math.abs(p);
  }
  var b = li.bias ? li.bias[j] : 0, y = total + b;
  var order = contrib.slice().sort(function (a, bb) { return Math.abs(bb.p) - Math.abs(a.p); });
  var top = order.slice(0, 8), rest = order.slice(8), restSum = 0;
  rest.forEach(function (t) { restSum += t.p; });
  var rows = top.map(function (t) {
    return tag("tr", "", tag("td", "", "x" + tag("sub", "", t.i + 1)) + tag("td", "", fmt(t.w)) + tag("td", "",
        fmt(t.x)) + tag("td", "", fmt(t.p)));
  }).join("");
  var h = tag("p", "", "y" + tag("sub", "", j + 1) + " = w" + tag("sub", "", (j + 1) + ",:") + " . x + b" + tag("sub",
      "", j + 1) +
              ": a dot product over all " + n + " inputs (the notes' linear layer). The " + top.length +
                  " largest products |w x|:");
  h += tag("table", "class='grid' id='linear-top'", tag("tr", "",
      "<th>input</th><th>w</th><th>x</th><th>w * x</th>") + rows);
  h += calc("y = " + top.map(function (t) { return paren(t.p); }).join(" + ") +
            (rest.length ? " + (the other " + rest.length + " products: " + fmt(restSum) + ")" : "") + " + b = " +
            fmt(total) + " + " + paren(b) + " = " + fmt(y));
  return h + verdict(y, lib, (n + 1) * D.eps * (abs + Math.abs(b)) + 1e-300, "linear");
}

function softmaxOver(z, j) {
  var m = Math.max.apply(null, z), e = z.map(function (v) { return Math.exp(v - m); }), s = 0;
  e.forEach(function (v) { s += v; });
  return {m: m, e: e, s: s, p: e[j] / s};
}
function softmaxText(z, j, names) {
  var r = softmaxOver(z, j);
  var rows = z.map(function (v, i) {
    return tag("tr", i === j ? "style='font-weight:700'" : "", tag("td", "", esc(names ? names[i] : String(i))) +
        tag("td", "", fmt(v)) +
               tag("td", "", fmt(r.e[i])) + tag("td", "", fmt(r.e[i] / r.s)));
  }).join("");
  var name = esc(names ? names[j] : String(j));
  var h = tag("p", "", "p(" + name + ") = exp(z(" + name + ")) / sum over every class i of exp(z(i)); computed as " +
              "exp(z - max z) with max z = " + fmt(r.m) + ", which leaves p unchanged:");
  h += tag("table", "class='grid' id='softmax-table'", tag("tr", "",
      "<th>class</th><th>z</th><th>exp(z - max)</th><th>p</th>") + rows);
  h += calc("p = " + fmt(r.e[j]) + " / " + fmt(r.s) + " = " + fmt(r.p));
  return {html: h, p: r.p};
}
function softmaxPanel(l, c, pos, lib) {
  var xv = inputVals(l);
  if (!xv) return note("The input of this layer is not embedded.");
  if (xv.shape.length !== 1) return note("Click a class bar at the top for the softmax of the scores.");
  var z = Array.prototype.slice.call(xv.data), r = softmaxText(z, pos[0], D.classes);
  return r.html + verdict(r.p, lib, 8 * z.length * D.eps + 1e-300, "softmax");
}

function flattenPanel(l, c, pos, lib) {
  var shape = l.in_shape.slice(1), src = unflat(pos[0], shape), v = at(inputVals(l), src[0], src.slice(1));
  var h = tag("p", "", "Feature " + (pos[0] + 1) + " of " + prod(shape) + " comes from " +
              tag("b", "id='flatten-source' data-source='" + src.join(",") + "'", "channel " + (src[0] + 1) +
                  ", position " +
                  tuple(src.slice(1))) + " of layer " + l.input_ref + "'s output " + tuple(shape) +
              ": Flatten lays the maps out channel by channel, row by row (index = c*" + prod(shape.slice(1)) +
                  " + row-major position).");
  if (v === null) return h + note("That value is not embedded.");
  h += calc("y = x[" + src.join(", ") + "] = " + fmt(v));
  var img = l.input_ref === 0 ? null : ROOT.querySelector("img.fmap[data-layer='" + l.input_ref +
      "'][data-channel='" + src[0] + "']");
  clearBoxes("win-box");
  if (img) boxOn(img, "win-box", src.slice(1).map(function (p) { return [p, p]; }));
  return h + verdict(v, lib, 0, "flatten");
}

function residualPanel(l, c, pos, lib) {
  var a = at(inputVals(l), c, pos),
      b = at(l.inputs && l.inputs[1] ? inputVals(l, 1) : valuesOf(l.residual ? l.residual.block_ref : null), c, pos);
  if (a === null || b === null) return note("The two addends are not both embedded.");
  var y = a + b;
  return calc("y = x + block(x) = " + fmt(a) + " + " + paren(b) + " = " + fmt(y) +
      " (the skip connection adds the block's input to its output)") +
         verdict(y, lib, 2 * D.eps * (Math.abs(a) + Math.abs(b)) + 1e-300, "residual");
}

function addPanel(l, c, pos, lib) {   // a graph's merge: the sum of its branches
  var terms = [], y = 0, abs = 0;
  for (var i = 0; i < l.inputs.length; i++) {
    var v = at(inputVals(l, i), c, pos);
    if (v === null) return note("Branch " + (i + 1) + "'s value (layer " + l.inputs[i].ref + ") is not embedded.");
    terms.push({ref: l.inputs[i].ref, v: v}); y += v; abs += Math.abs(v);
  }
  var h = tag("p", "", "The branches meet here: y is the sum, position by position, of " + terms.map(function (t) {
    return "layer " + t.ref + "'s output";
  }).join(" and ") + " (the skip connection adds the shortcut to the main path).");
  h += calc("y = " + terms.map(function (t, i) { return (i ? paren(t.v) : fmt(t.v)); }).join(" + ") + " = " + fmt(y));
  return h + verdict(y, lib, (terms.length + 1) * D.eps * abs + 1e-300, "add");
}

function refLink(ref) {              // a link to the card of layer `ref` (0: the input)
  return ref === 0 ? "<a href='#input'>the input</a>" :
      ref === null || ref === undefined ? "an unrecorded layer" : "<a href='#layer-" + ref + "'>layer " + ref + "</a>";
}
function markSource(sources) {        // the values a merge reads, [ref, channel, pos]: boxed on their maps
  clearBoxes("win-box");
  sources.forEach(function (s) {
    var img = s[0] === 0 ? null : ROOT.querySelector("img.fmap[data-layer='" + s[0] + "'][data-channel='" + s[1] +
                                                      "']");
    if (img) boxOn(img, "win-box", s[2].map(function (p) { return [p, p]; }));
  });
}
function sourceTag(i, ref, c, text) {
  return tag("b", "id='merge-source' data-input='" + i + "' data-ref='" + ref + "' data-channel='" + c + "'", text);
}
var FROM0 = tag("span", "class='muted'", " &nbsp;(indices from 0)");
function ranges(offsets, sizes) {
  return offsets.map(function (o, i) { return (o + 1) + ".." + (o + sizes[i]); });
}

function concatPanel(l, c, pos, lib) {   // a graph's merge: the inputs side by side
  var ct = l.concat;
  if (!ct || ct.axis < 0) return note("This concatenation's layout is not embedded.");
  var q = ct.axis === 0 ? c : pos[ct.axis - 1], i = 0;
  while (i < ct.offsets.length - 1 && q >= ct.offsets[i] + ct.sizes[i]) i++;
  var ci = ct.axis === 0 ? c - ct.offsets[i] : c, pin = pos.slice();
  if (ct.axis > 0) pin[ct.axis - 1] -= ct.offsets[i];
  var ref = l.inputs[i].ref, along = ct.axis === 0 ? "channels" : ["rows", "columns"][ct.axis - 1];
  var parts = ranges(ct.offsets, ct.sizes).map(function (r, j) {
    return r + " are " + refLink(l.inputs[j].ref) + "'s " + along + " 1.." + ct.sizes[j];
  });
  var h = tag("p", "", "Concatenation lays its " + ct.sizes.length + " inputs side by side along the " + along +
              ": output " + along + " " + parts.join(", ") + ". So " + (ct.axis === 0 ? "output channel " + (c + 1) :
              along.slice(0, -1) + " " + q) + " is " +
              sourceTag(i, ref, ci, "input " + (i + 1) + " (" + refLink(ref) + "), " +
                        (ct.axis === 0 ? "its channel " + (ci + 1) + " (" + (c + 1) + " - " + ct.offsets[i] + ")" :
                         along.slice(0, -1) + " " + pin[ct.axis - 1] + " (" + q + " - " + ct.offsets[i] + ")")) +
              ", read at the same " + (ct.axis === 0 ? "pixel " + tuple(pos) : "place") +
              "; nothing is computed, the value is copied.");
  var v = at(inputVals(l, i), ci, pin);
  if (v === null) return h + note("That value of " + refLink(ref) + " is not embedded.");
  markSource([[ref, ci, pin]]);
  h += calc("y[" + [c].concat(pos).join(", ") + "] = x" + tag("sub", "", i + 1) + "[" + [ci].concat(pin).join(", ") +
            "] = " + fmt(v) + FROM0);
  return h + verdict(v, lib, 0, "concat");
}

function mulPanel(l, c, pos, lib) {      // a graph's merge: the product, broadcast (the SE gate x * s)
  var vec = l.out_shape.length === 2, out = vec ? pos.slice() : [c].concat(pos), terms = [];
  var axes = vec ? ["entries"] : ["channels", "rows", "columns"].slice(0, out.length);
  for (var i = 0; i < l.inputs.length; i++) {
    var shape = l.inputs[i].shape;
    if (shape.length !== out.length) return note("Input " + (i + 1) + " broadcasts over the batch axis; the " +
                                                 "page does not redo that.");
    var q = out.map(function (p, a) { return shape[a] === 1 ? 0 : p; });
    var v = vec ? at(inputVals(l, i), 0, q) : at(inputVals(l, i), q[0], q.slice(1));
    if (v === null) return note("Input " + (i + 1) + "'s value (" + refLink(l.inputs[i].ref) + ") is not embedded.");
    var stretched = axes.filter(function (n, a) { return shape[a] === 1 && l.out_shape[a + 1] !== 1; });
    terms.push({i: i, ref: l.inputs[i].ref, q: q, v: v, shape: shape, bc: stretched});
  }
  var full = terms.filter(function (t) { return !t.bc.length; }), y = terms[0].v * terms[1].v;
  var name = function (t) { return t.bc.length ? "s" : "x"; };
  var idx = function (t) { return name(t) + "[" + t.q.join(", ") + "]"; };
  var h = tag("p", "", "Elementwise product of " + terms.map(function (t) {
    return refLink(t.ref) + "'s output " + name(t) + " " + tuple(t.shape);
  }).join(" and ") + "." + terms.filter(function (t) { return t.bc.length; }).map(function (t) {
    return " s has size 1 on its " + t.bc.join(" and ") + ", so broadcasting stretches it: " +
        (vec ? "every entry" : "every position of channel " + (c + 1)) + " is multiplied by the same factor " +
        idx(t) + (full.length && !vec && t.bc.indexOf("channels") < 0 ?
                  " (the squeeze-and-excitation gate: one factor per channel scales x)" : "") + ".";
  }).join(""));
  h += tag("p", "", terms.map(function (t) {
    return sourceTag(t.i, t.ref, vec ? 0 : t.q[0], idx(t)) + " is read from " + refLink(t.ref);
  }).join("; ") + ".");
  if (!vec) markSource(terms.map(function (t) { return [t.ref, t.q[0], t.q.slice(1)]; }));
  h += calc("y[" + out.join(", ") + "] = " + terms.map(idx).join(" &times; ") + " = " +
            terms.map(function (t, j) { return j ? paren(t.v) : fmt(t.v); }).join(" &times; ") + " = " + fmt(y) +
            FROM0);
  return h + verdict(y, lib, D.eps * Math.abs(y) + 1e-300, "mul");
}

function shufflePanel(l, c, pos, lib) {  // plumbing: ShuffleNet's channel shuffle
  var g = l.shuffle ? l.shuffle.groups : 1, C = l.in_shape[1], per = C / g;
  var j = Math.floor(c / g), i = c % g, src = i * per + j, ref = l.inputs[0].ref;
  var h = tag("p", "", "ChannelShuffle(" + g + ") views the " + C + " input channels as " + g + " groups of " + per +
              ", a " + g + " x " + per + " table read out column by column (transposed to " + per + " x " + g +
              "), so the next grouped convolution sees every group. Output channel " + (c + 1) + " = " +
              j + " x " + g + " + " + (i + 1) + " is channel " + (j + 1) + " of group " + (i + 1) + ": " +
              sourceTag(0, ref, src, "input channel " + (src + 1) + " (" + i + " x " + per + " + " + (j + 1) + ")") +
              " of " + refLink(ref) + ", at the same pixel " + tuple(pos) + ".");
  var v = at(inputVals(l, 0), src, pos);
  if (v === null) return h + note("That value of " + refLink(ref) + " is not embedded.");
  markSource([[ref, src, pos]]);
  h += calc("y[" + [c].concat(pos).join(", ") + "] = x[" + [src].concat(pos).join(", ") + "] = " + fmt(v) + FROM0);
  return h + verdict(v, lib, 0, "channel_shuffle");
}

// a Split's card shows its first piece: the input's first part along the split axis, so the
// value is the input's at the same index (a copy)
function splitPanel(l, c, pos, lib) {
  var ref = l.input_ref, sp = l.split || {};
  var h = tag("p", "", "A Split cuts its input into pieces along " + esc(sp.along || "an axis") + " (sizes " +
              tuple(sp.sizes || []) + "); this card shows piece 1, the first " + (sp.sizes ? sp.sizes[0] : "") +
              ", so each value is a copy of the input's at the same index (the other pieces are read by " +
              "the layers they feed).");
  var v = at(inputVals(l, 0), c, pos);
  if (v === null) return h + note("That value of " + refLink(ref) + " is not embedded.");
  markSource([[ref, c, pos]]);
  h += calc("y[" + [c].concat(pos).join(", ") + "] = x[" + [c].concat(pos).join(", ") + "] = " + fmt(v) + FROM0);
  return h + verdict(v, lib, 0, "split");
}

var PANELS = {conv: convPanel, add: addPanel, max_pool: poolPanel, avg_pool: poolPanel, blur_pool: blurPanel,
              split: splitPanel, concat: concatPanel, mul: mulPanel, channel_shuffle: shufflePanel,
              relu: activationPanel, relu6: activationPanel, hardsigmoid: activationPanel,
              hardswish: activationPanel, silu: activationPanel, gelu: activationPanel, identity: activationPanel,
              normalize: normalizePanel, adaptive_avg_pool: adaptivePanel, adaptive_max_pool: adaptivePanel,
              leaky_relu: activationPanel, sigmoid: activationPanel, tanh: activationPanel, dropout: activationPanel,
              batch_norm: bnPanel, linear: linearPanel, softmax: softmaxPanel, flatten: flattenPanel,
                  residual: residualPanel};

// ---------------------------------------------------------------- backward
function pass() {
  if (!D.backward || gradClass === null) return null;
  return D.backward.passes[String(gradClass)] || null;
}
function gradVals(index) {
  var p = pass();
  if (!p) return null;
  var l = LAYERS[index], b = index === 0 ? p.input : p.layers[String(index)];
  if (!b) return null;
  var shape = index === 0 ? D.input_shape.slice(1) : l.out_shape.slice(1);
  var chans = index === 0 ? null : (l.values ? l.values.channels : null);
  var start = index === 0 || !l.values ? null : l.values.start || null;
  return {data: arr(b), channels: shape.length === 1 ? null : chans, shape: shape, start: start,
          tile: start ? l.values.tile : null};
}
// ---------------------------------------------------------------- backward of a merge: what each input gets
function sentVals(l, i) {          // the gradient merge l sends to its input i, where that input is read
  var p = pass(), s = l.sent_at ? l.sent_at[i] : null;
  var b = p && p.sent && p.sent[String(l.index)] ? p.sent[String(l.index)][i] : null;
  if (!s || !b) return null;
  var shape = l.inputs[i].shape, data;
  if (b.same_as_dy) {              // bit for bit these output channels of dL/dy (embedded once)
    var dv = gradVals(l.index), per = prod(s.tile);
    if (!dv) return null;
    data = new Float64Array(b.same_as_dy.length * per);
    b.same_as_dy.forEach(function (oc, r) {
      var k = dv.channels ? dv.channels.indexOf(oc) : oc;
      data.set(dv.data.subarray(k * per, (k + 1) * per), r * per);
    });
  } else {
    data = arr(b);
  }
  return {data: data, channels: shape.length === 1 ? null : s.channels, shape: shape, same: !!b.same_as_dy,
          start: shape.length === 1 ? null : s.start, tile: shape.length === 1 ? null : s.tile};
}
function atFull(vals, q) { return vals ? (vals.shape.length === 1 ? at(vals, 0, q) : at(vals, q[0], q.slice(1))) :
                           null; }
function layerName(ref) {          // "layer 7 (layer1.0.bn2)", linked; the input
  if (ref === 0 || ref === null || ref === undefined) return refLink(ref);
  return refLink(ref) + esc(LAYERS[ref] ? LAYERS[ref].name : "");
}
function sentCheck(l, i, q, js, tol) {   // the page's value next to what convscope's backward sent
  var sv = sentVals(l, i), lib = atFull(sv, q), ref = l.inputs[i].ref;
  var attrs = "class='sent' data-input='" + i + "' data-ref='" + ref + "' data-at='" + q.join(",") + "'";
  if (lib === null) return tag("div", attrs + " data-page='" + js + "'", note("convscope's gradient for this input " +
      "is not embedded here."));
  var ok = js !== null && (Math.abs(js - lib) <= tol || js === lib);
  return tag("div", attrs + " data-page='" + (js === null ? "" : js) + "' data-lib='" + lib + "'",
             calc("convscope's backward sends " + tag("b", "", fmt(lib)) + (sv.same ? " (bit for bit the " +
                  "embedded dL/dy, so it is embedded once)" : "") + (js === null ? "" : " &rarr; " +
                  tag("span", "class='sent-verdict " + (ok ? "ok" : "bad") + "'", ok ? "agree" : "DISAGREE"))));
}
function sentPanel(l, c, pos, g) {
  var vec = l.out_shape.length === 2, out = vec ? pos.slice() : [c].concat(pos), n = l.inputs.length;
  var ix = function (name, q) { return name + "[" + q.join(", ") + "]"; }, h = "";
  var head = function (i) {
    return tag("b", "", "to input " + (i + 1) + ", " + layerName(l.inputs[i].ref) + " " + tuple(l.inputs[i].shape));
  };
  if (l.kind === "add") {
    h += tag("p", "", "y = " + l.inputs.map(function (s, i) { return "x" + tag("sub", "", i + 1); }).join(" + ") +
             ", so dy/dx" + tag("sub", "", "i") + " = 1 for every input (the identity, position by position), and " +
             "the chain rule dL/dx" + tag("sub", "", "i") + " = dL/dy &middot; dy/dx" + tag("sub", "", "i") +
             " passes dL/dy unchanged to every input:");
    for (var i = 0; i < n; i++) {
      h += tag("div", "class='sent-to'", head(i) + calc("dL/d" + ix("x" + tag("sub", "", i + 1), out) + " = dL/d" +
               ix("y", out) + " &middot; 1 = " + fmt(g) + FROM0) + sentCheck(l, i, out, g, 0));
    }
    return h;
  }
  if (l.kind === "concat") {
    var ct = l.concat, along = ct.axis === 0 ? "channels" : ["rows", "columns"][ct.axis - 1];
    var qa = ct.axis === 0 ? c : pos[ct.axis - 1], k = 0;
    while (k < ct.offsets.length - 1 && qa >= ct.offsets[k] + ct.sizes[k]) k++;
    var qin = out.slice();
    qin[ct.axis] -= ct.offsets[k];
    h += tag("p", "", "Concatenation only copies: dy/dx" + tag("sub", "", "i") + " is 1 where a value of input i " +
             "was copied and 0 elsewhere, so the chain rule gives each input its own slice of dL/dy: " +
             ranges(ct.offsets, ct.sizes).map(function (r, j) {
               return "output " + along + " " + r + " go back to " + refLink(l.inputs[j].ref) + " (its " + along +
                   " 1.." + ct.sizes[j] + ")";
             }).join(", ") + ". This value's gradient goes to input " + (k + 1) + " alone:");
    for (var j = 0; j < n; j++) {
      if (j !== k) {
        h += tag("div", "class='sent-to'", head(j) + calc("nothing from this value (input " + (j + 1) + " fills " +
                 along + " " + ranges(ct.offsets, ct.sizes)[j] + ")"));
        continue;
      }
      h += tag("div", "class='sent-to'", head(k) + calc("dL/d" + ix("x" + tag("sub", "", k + 1), qin) + " = dL/d" +
               ix("y", out) + " = " + fmt(g) + FROM0) + sentCheck(l, k, qin, g, 0));
    }
    return h;
  }
  if (l.kind !== "mul" || n !== 2) return "";
  var axes = vec ? ["entries"] : ["channels", "rows", "columns"].slice(0, out.length);
  var osh = l.out_shape.slice(1), info = l.inputs.map(function (s) {
    var bc = [];
    s.shape.forEach(function (m, a) { if (m === 1 && osh[a] !== 1) bc.push(a); });
    return {shape: s.shape, bc: bc, q: out.map(function (p, a) { return s.shape[a] === 1 ? 0 : p; })};
  });
  var names = info.map(function (t) { return t.bc.length ? "s" : "x"; });
  if (names[0] === names[1]) names = ["a", "b"];
  var dyv = gradVals(l.index);
  h += tag("p", "", "y = " + names[0] + " &times; " + names[1] + ", so dy/d" + names[0] + " = " + names[1] +
           " and dy/d" + names[1] + " = " + names[0] + " (the product rule): each input's gradient is dL/dy times " +
           "the other factor" + (info.some(function (t) { return t.bc.length; }) ? "; a factor that broadcasting " +
           "used at many positions adds up the gradient of every one of them (the chain rule sums over every " +
           "path)" : "") + ":");
  for (var m = 0; m < 2; m++) {
    var me = info[m], other = info[1 - m], on = names[1 - m], terms = [], js = 0, abs = 0, missing = false;
    var spans = me.bc.map(function (a) { return osh[a]; }), count = prod(spans);
    for (var t = 0; t < count; t++) {          // every output position that used this factor
      var qq = out.slice(), u = unflat(t, spans.length ? spans : [1]);
      me.bc.forEach(function (a, b) { qq[a] = u[b]; });
      var dy = atFull(dyv, qq), ov = atFull(inputVals(l, 1 - m), qq.map(function (p, a) {
        return other.shape[a] === 1 ? 0 : p; }));
      if (dy === null || ov === null) { missing = true; break; }
      js += dy * ov; abs += Math.abs(dy * ov);
      if (terms.length < 4) terms.push(paren(dy) + "&times;" + paren(ov));
    }
    var lhs = "dL/d" + ix(names[m], me.q), oq = out.map(function (p, a) { return other.shape[a] === 1 ? 0 : p; });
    var body;
    if (!me.bc.length) {
      body = calc(lhs + " = dL/d" + ix("y", out) + " &times; " + ix(on, oq) + " = " +
                  (missing ? "?" : paren(g) + " &times; " + paren(atFull(inputVals(l, 1 - m), oq)) + " = " + fmt(js)) +
                  FROM0);
    } else {
      var over = me.bc.map(function (a) { return axes[a]; }).join(" and ");
      var sumIx = out.map(function (p, a) { return me.bc.indexOf(a) >= 0 ? "ijk".charAt(me.bc.indexOf(a)) : p; });
      body = tag("p", "", ix(names[m], me.q) + " multiplies all " + count + " positions of " +
                 (vec ? "the output" : "channel " + (c + 1)) + " (broadcast over the " + over + "), so its gradient " +
                 "is summed over the " + over + ":") +
             calc(lhs + " = sum over " + me.bc.map(function (a, b) { return "ijk".charAt(b); }).join(", ") +
                  " of dL/d" + ix("y", sumIx) + " &times; " + ix(on, sumIx.map(function (p, a) {
                    return other.shape[a] === 1 ? 0 : p; })) +
                  (missing ? "" : " = " + terms.join(" + ") + (count > terms.length ? " + ..." : "") + " = " +
                   fmt(js)) + " (" + count + " products)" + FROM0);
      if (missing) body += note("This layer's numbers are a block of its positions, so the sum over all " + count +
                                " is not redone on the page; convscope's value is below.");
    }
    h += tag("div", "class='sent-to'", head(m) + body +
             sentCheck(l, m, me.q, missing ? null : js, (count + 1) * D.eps * abs + 1e-300));
  }
  return h;
}
function fanoutText(l, c, pos, g) {  // dL/dy of an output read by several layers: the sum of what each sends
  var vec = l.out_shape.length === 2, q = vec ? pos.slice() : [c].concat(pos), known = 0, unknown = [];
  var parts = l.consumers.map(function (ci) {
    var m = LAYERS[ci[0]], v = m && m.sent_at ? atFull(sentVals(m, ci[1]), q) : null;
    var who = layerName(ci[0]) + " (" + esc(m ? m.kind : "?") + (m && m.inputs.length > 1 ? ", its input " +
        (ci[1] + 1) : "") + ")";
    if (v === null) { unknown.push(who); return null; }
    known += v;
    return who + " sends " + tag("b", "", fmt(v));
  }).filter(function (t) { return t !== null; });
  var h = "Fan-out: this output feeds " + l.consumers.length + " layers, so its dL/dy is the sum of what each of " +
      "them sends back (the chain rule adds one term per path to the loss)";
  if (parts.length) {
    h += ": " + parts.join("; ") + (unknown.length === 1 ? "; " + unknown[0] + " sends the rest, " + fmt(g) +
        " - " + paren(known) + " = " + fmt(g - known) : unknown.length ? "; " + unknown.join(", ") +
        " send the rest, " + fmt(g - known) + " together" : " (sum " + fmt(known) + ")");
  } else {
    h += ": " + unknown.join(", ");
  }
  return tag("p", "id='fanout' data-count='" + l.consumers.length + "' data-known='" + known + "' data-parts='" +
             parts.length + "'", h + ".");
}
function className(c) { return D.classes ? D.classes[c] : String(c); }
function backwardPanel(l, c, pos) {
  var p = pass();
  if (!p || !document.body.classList.contains("grads")) return "";
  var g = at(gradVals(l.index), c, pos), h = tag("h4", "", "Backward: class " + esc(className(gradClass)) +
            ", L = -log p = " + fmt(p.loss));
  if (g === null) return h + note("The gradient of this value is not embedded.");
  h += calc("dL/dy at this value = " + tag("b", "id='grad-value' data-value='" + g + "'", fmt(g)));
  if (l.consumers) h += fanoutText(l, c, pos, g);
  if (l.sent_at) h += sentPanel(l, c, pos, g);
  if (l.kind === "relu") {
    var z = at(inputVals(l), c, pos);
    h += calc("ReLU's derivative (Key Equation 66): dL/dz = dL/dy * [z > 0] = " + fmt(g) + " * " + (z > 0 ? 1 : 0) +
        " = " +
              fmt(z > 0 ? g : 0) + tag("span", "id='relu-mask' data-value='" + (z > 0 ? 1 : 0) + "'", ""));
  } else if (l.kind === "max_pool" && l.pool) {
    var start = pos.map(function (q, a) { return q * l.pool.s[a]; });
    var tp = taps(start, l.pool.k, l.pool.d, l.pool.p_before, l.pool.n, l.pool.p_after), vals = inputVals(l),
        best = -Infinity, bi = -1;
    tp.forEach(function (t, i) {
      if (!t.inside) return;
      var v = t.real ? at(vals, c, t.r) : -Infinity;
      if (v !== null && v > best) { best = v; bi = i; }
    });
    if (bi >= 0) {
      h += tag("p", "id='route-text' data-pos='" + tp[bi].r.join(",") + "' data-value='" + g + "'",
               "Max-pool derivative (Key Equation 69, 9.35): one-hot. The whole dL/dy = " + fmt(g) +
                   " goes to position " +
               tuple(tp[bi].r) + " of channel " + (c + 1) + ", the window's maximum; the other " + (tp.length - 1) +
                   (tp.length === 2 ? " entry" : " entries") + " of this window get 0 " +
               "from it (the routing map below the layer shows every window's).");
    }
  } else if (l.adaptive) {
    h += adaptiveGrad(l, c, pos, g);
  } else if (l.kind !== "relu" && slopeOf(l, c, 0) !== null) {
    h += localGrad(l, c, pos, g);
  } else if (l.kind === "conv") {
    h += tag("p", "", tag("button", "type='button' class='show-dw' data-layer='" + l.index + "' data-filter='" + c +
        "'",
                         "dL/dW of filter " + (c + 1)) + " in the notes' 9.31 form");
  }
  return h;
}

function dwSource(l) {      // the inputs dL/dW multiplies: get(input channel, padded position)
  var cv = l.conv;
  if (!cv.dw) {             // the whole map: the embedded patch is the padded input
    var P = arr(cv.padded), pshape = cv.padded_shape.slice(1), psize = prod(pshape), p0 = cv.padded_start;
    return {get: function (cin, q) {
      return P[cin * psize + flat(q.map(function (v, a) { return v - p0[a]; }), pshape)];
    }};
  }
  var dw = cv.dw, n = cv.n, nsz = prod(n), X = dw.from_input ? arr(D.input) : arr(dw.planes);
  return {get: function (cin, q) {     // the whole planes, padded with zeros here
    var r = q.map(function (v, a) { return v - cv.p_before[a]; });
    for (var a = 0; a < r.length; a++) if (r[a] < 0 || r[a] >= n[a]) return 0;
    return X[(dw.from_input ? cin : dw.channels.indexOf(cin)) * nsz + flat(r, n)];
  }};
}
function showFilterGrad(index, f) {
  var l = LAYERS[index], cv = l.conv, p = pass(), h = tag("h3", "", "Layer " + index + esc(l.name) +
      ": dL/dW of filter " + (f + 1));
  var detail = el("detail");
  if (!p) { detail.innerHTML = h + note("No backward pass is embedded in this page."); return; }
  if (!cv || !cv.padded) { detail.innerHTML = h + note("The numbers of this layer are not embedded."); return; }
  if (cv.dw === null) {
    detail.innerHTML = h + note("dL/dW is not re-derived on this layer: its numbers are a block of positions and " +
                                "its padding (" + esc(cv.padding_mode) + ") is not zeros.");
    return;
  }
  var src = dwSource(l), filters = cv.dw ? cv.dw.filters : cv.channels, wi = filters.indexOf(f),
      dwl = p.dw[String(index)];
  if (wi < 0 || !dwl) {
    detail.innerHTML = h + note("Filter " + (f + 1) + "'s dL/dW is not embedded" + (cv.dw ?
        " (dL/dW sums over every output position, so on this layer, whose numbers are a block of positions, " +
        "it is re-derived for filters " + filters.map(function (v) { return v + 1; }).join(", ") + ")." : "."));
    return;
  }
  var k = cv.k, ksize = prod(k);
  var out = l.out_shape.slice(2), nout = prod(out), gsize = cv.c_in / cv.groups,
      g = Math.floor(f / (cv.c_out / cv.groups));
  var chs = [];
  if (cv.dw) chs = cv.dw.channels; else for (var q0 = 0; q0 < gsize; q0++) chs.push(g * gsize + q0);
  var dyv = gradVals(index), dy = [], dysrc = cv.dw ? arr(p.dy_full[String(index)]) : dyv.data,
      dyi = cv.dw ? wi : (l.values.channels ? l.values.channels.indexOf(f) : f);
  for (var i = 0; i < nout; i++) dy.push(dysrc[dyi * nout + i]);
  var DW = arr(dwl), js = [], lib = [], worst = 0, ok = true;
  h += tag("p", "", "Class " + esc(className(gradClass)) + ". Key Equation 68: dZ" + tag("sub", "", "i") + "/dW" +
      tag("sub", "", "j") +
           " is the input under tap j of window i, so dL/dW = (dZ/dW) . dL/dZ: the (k x n) matrix of inputs of 9.31 " +
           "(one row per tap, " +
           "one column per output) times the upstream gradient dL/dZ of this filter's map (n = " + nout +
               " outputs).");
  for (var ch = 0; ch < chs.length; ch++) {
    var cin = chs[ch], M = [], dw = [], absTot = [];
    for (var t = 0; t < ksize; t++) {
      var ka = unflat(t, k), row = [], s = 0, a = 0;
      for (var o = 0; o < nout; o++) {
        var oa = unflat(o, out), q = oa.map(function (v, ax) { return v * cv.s[ax] + ka[ax] * cv.d[ax]; });
        var x = src.get(cin, q);
        row.push(x); s += x * dy[o]; a += Math.abs(x * dy[o]);
      }
      M.push(row); dw.push(s); absTot.push(a);
    }
    var libc = [];
    for (var t2 = 0; t2 < ksize; t2++) {
      var lv = DW[(wi * chs.length + ch) * ksize + t2], tol = (nout + 1) * D.eps * absTot[t2] + 1e-300;
      libc.push(lv);
      if (Math.abs(lv - dw[t2]) > tol) ok = false;
      worst = Math.max(worst, Math.abs(lv - dw[t2]));
    }
    js.push(dw); lib.push(libc);
    if (ch < 2) {
      var cols = Math.min(nout, 6), hdr = "<th></th>";
      for (var o2 = 0; o2 < cols; o2++) hdr += "<th>Z" + tag("sub", "", unflat(o2, out).map(function (v) { return v +
          1; }).join(",")) + "</th>";
      if (nout > cols) hdr += "<th>...</th>";
      var body = "";
      for (var t3 = 0; t3 < ksize; t3++) {
        var tr = tag("th", "", "W" + tag("sub", "", unflat(t3, k).map(function (v) { return v + 1; }).join(",")));
        for (var o3 = 0; o3 < cols; o3++) tr += tag("td", "", fmt(M[t3][o3]));
        if (nout > cols) tr += tag("td", "", "...");
        body += tag("tr", "", tr);
      }
      var dyrow = tag("th", "", "dL/dZ");
      for (var o4 = 0; o4 < cols; o4++) dyrow += tag("td", "", fmt(dy[o4]));
      if (nout > cols) dyrow += tag("td", "", "...");
      h += tag("h4", "", "input channel " + (cin + 1) + ": dZ/dW (" + ksize + " x " + nout + ")" + (nout > cols ?
          ", first " + cols + " columns" : ""));
      h += tag("table", "class='grid dzdw'", body + tag("tr", "style='border-top:2px solid #999'", dyrow));
      var terms = [];
      for (var o5 = 0; o5 < Math.min(nout, 6); o5++) terms.push(paren(M[0][o5]) + "*" + paren(dy[o5]));
      h += calc("dL/dW" + tag("sub", "", unflat(0, k).map(function (v) { return v + 1; }).join(",")) + " = " +
          terms.join(" + ") +
                (nout > 6 ? " + ... (" + nout + " products)" : "") + " = " + fmt(dw[0]));
      h += tag("div", "class='grids'", gridTable("dL/dW (page)", dw, k, null) + gridTable("convscope backward", libc,
          k, null));
    }
  }
  if (chs.length > 2) h += tag("p", "class='muted'", "(" + (chs.length - 2) +
      " more input channels compared, not drawn.)");
  if (chs.length < gsize) h += tag("p", "class='muted'", "(This layer's numbers are a block of positions; dL/dW, " +
      "a sum over all " + nout + " outputs, is re-derived on input channels " + chs.map(function (v) { return v + 1; })
      .join(", ") + " of " + gsize + " from their whole input planes.)");
  h += calc(tag("span", "id='dw-js' data-value='" + JSON.stringify(js) + "'", "") + tag("span",
      "id='dw-lib' data-value='" + JSON.stringify(lib) + "'", "") +
            "largest |difference| " + worst.toExponential(2) + " &rarr; " +
            tag("span", "id='dw-verdict' class='" + (ok ? "ok" : "bad") + "'", ok ? "agree" : "DISAGREE"));
  detail.innerHTML = h;
  stopAnim(); hideAnim(); cur = null;
}

// ---------------------------------------------------------------- gradient maps (canvas)
function diverging(t) {     // t in [-1, 1]: blue - white - red, the pictures' diverging map
  var a = Math.min(1, Math.abs(t)), r, g, b;
  if (t >= 0) { r = 255; g = Math.round(255 * (1 - a * 0.85)); b = Math.round(255 * (1 - a * 0.9)); }
  else { r = Math.round(255 * (1 - a * 0.9)); g = Math.round(255 * (1 - a * 0.75)); b = 255; }
  return [r, g, b];
}
function paint(canvas, data, offset, h, w, scale, mask) {
  canvas.width = w; canvas.height = h;
  var ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (var i = 0; i < h * w; i++) {
    var rgb = mask ? (data[offset + i] > 0 ? [30, 30, 30] : [240, 240, 240]) : diverging(scale ? data[offset +
        i] / scale : 0);
    img.data[4 * i] = rgb[0]; img.data[4 * i + 1] = rgb[1]; img.data[4 * i + 2] = rgb[2]; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
function mapsRow(vals, caption, scaleOf, mask, widthLike) {
  var shape = vals.shape, one = shape.length === 1, nd = one ? 0 : shape.length - 1;
  var sp = one ? [shape[0]] : (vals.tile || shape.slice(1));
  var h = one || nd === 1 ? 1 : sp[0], w = sp[sp.length - 1], per = prod(sp);
  var frac = one ? [1, 1] : [nd === 1 ? 1 : sp[0] / shape[1], w / shape[shape.length - 1]];
  var chans = one ? [0] : (vals.channels || shape.slice(0, 1).map(function () { return 0; }));
  if (!one && !vals.channels) { chans = []; for (var c = 0; c < shape[0]; c++) chans.push(c); }
  var scale = 0;
  for (var i = 0; i < vals.data.length; i++) scale = Math.max(scale, Math.abs(vals.data[i]));
  var row = document.createElement("div"); row.className = "maps";
  chans.forEach(function (c, ci) {
    var fig = document.createElement("figure"), cv = document.createElement("canvas");
    paint(cv, vals.data, ci * per, h, w, scale, mask);
    var like = widthLike ? widthLike(c) : null;
    if (like) {
      cv.style.width = like.clientWidth * frac[1] + "px";
      cv.style.height = like.clientHeight * frac[0] + "px";
    }
    fig.appendChild(cv);
    var capt = document.createElement("figcaption"); capt.textContent = one ? "" : String(c + 1);
    fig.appendChild(capt); row.appendChild(fig);
  });
  var wrap = document.createElement("div");
  var p = document.createElement("p"); p.className = "meta";
  p.textContent = caption + (vals.start ? " (the embedded block: " + vals.start.map(function (s0, a) {
    return s0 + ".." + (s0 + sp[a] - 1); }).join(" x ") + ")" : "") +
      (mask ? "" : "; |largest| " + fmt(scale) + " (blue negative, white 0, red positive)");
  wrap.appendChild(p); wrap.appendChild(row);
  return wrap;
}
function drawGrads() {
  var p = pass();
  $$(".gmaps").forEach(function (box) {
    box.innerHTML = "";
    if (!p) { box.innerHTML = "<p class='muted'>No backward pass embedded.</p>"; return; }
    var index = +box.dataset.layer, l = LAYERS[index];
    var like = function (c) {
      return ROOT.querySelector(index === 0 ? "#input img.inmap[data-channel='" + c + "']" :
                                "img[data-layer='" + index + "'][data-channel='" + c + "']") ||
             ROOT.querySelector("img.fvec[data-layer='" + index + "']");
    };
    var gv = gradVals(index);
    if (!gv) {
      box.innerHTML = "<p class='muted'>The gradient of this layer is not embedded (max_numbers).</p>";
      return;
    }
    var what = index === 0 ? "dL/dx of the input" : "dL/dy of this layer's output";
    box.appendChild(mapsRow(gv, what + " for class " + className(gradClass), null, false, like));
    if (!l) return;
    if (l.kind === "relu") {
      var iv = inputVals(l);
      if (iv) box.appendChild(mapsRow(iv,
          "ReLU mask z > 0 (dark: passes the gradient, light: blocked; Key Equation 66)", null, true, like));
    }
    if (l.kind === "relu" || l.kind === "max_pool") {
      var prev = gradVals(l.input_ref);
      if (prev) {
        var inLike = function (c) {
          return ROOT.querySelector(l.input_ref === 0 ? "#input img.inmap[data-channel='" + c + "']" :
                                    "img[data-layer='" + l.input_ref + "'][data-channel='" + c + "']") ||
                 ROOT.querySelector("img.fvec[data-layer='" + l.input_ref + "']");
        };
        box.appendChild(mapsRow(prev, l.kind === "max_pool" ?
          "routing: dL/dx of this layer's input, each window's dL/dy sent whole to its maximum " +
          "(one-hot, Key Equation 69)" :
          "dL/dz = dL/dy * mask, the gradient this ReLU passes back", null, false, inLike));
      }
    }
    (l.sent_at || []).forEach(function (s, i) {     // a merge: what its backward sends to each input
      var sv = sentVals(l, i), ref = l.inputs[i].ref;
      if (!sv) return;
      box.appendChild(mapsRow(sv, "sent back to input " + (i + 1) + " (layer " + ref + (LAYERS[ref] ?
          LAYERS[ref].name : "") + "): dL/dx" + (i + 1), null, false, function (c) {
        return ROOT.querySelector(ref === 0 ? "#input img.inmap[data-channel='" + c + "']" :
                                  "img[data-layer='" + ref + "'][data-channel='" + c + "']") ||
               ROOT.querySelector("img.fvec[data-layer='" + ref + "']");
      }));
    });
  });
}

// ---------------------------------------------------------------- one clicked value
function imgFor(index, c) {
  return ROOT.querySelector("img.fmap[data-layer='" + index + "'][data-channel='" + c + "']") ||
         ROOT.querySelector("img.fvec[data-layer='" + index + "']");
}
function showValue(index, c, pos) {
  var l = LAYERS[index], lib = libValue(l, c, pos), reg = region(l, pos), img = imgFor(index, c);
  cur = {index: index, c: c, pos: pos.slice()};
  var vec = l.out_shape.length === 2;
  var h = tag("h3", "id='pixel-title'", "Layer " + l.index + esc(l.name) + ": " + esc(l.repr));
  h += tag("p", "", (vec ? "entry " + (pos[0] + 1) + " of " + l.out_shape[1] + " (y" + tag("sub", "", pos[0] + 1) +
      ")" :
                     "channel " + (c + 1) + " of " + l.out_shape[1] + ", pixel " + tuple(pos) +
                         " (0-based; the notes' y" +
                     tag("sub", "", pos.map(function (p) { return p + 1; }).join(",")) + ")") +
                (lib !== null ? " = " + tag("b", "id='pixel-value' data-value='" + lib + "'", fmt(lib)) : "") +
                tag("span", "id='calc-kind' data-kind='" + esc(l.kind) + "'", ""));
  h += fieldText(l, reg);
  drawRegion(reg);
  markPixel(img, pos);
  clearBoxes("win-box");
  var panel = PANELS[l.kind];
  if (!inTile(l, pos)) {
    h += tag("p", "class='note' id='tile-note'", "This layer's numbers are embedded for the block " + tileText(l) +
             " (the dashed box on its maps; each layer embeds at most " + (D.max_layer_numbers || 0) +
             " numbers, max_layer_numbers): click inside it to see the arithmetic.");
  } else {
    h += panel ? panel(l, c, pos, lib) :
         note("convscope does not know the arithmetic of this kind of layer (" + esc(l.kind) +
             "); its value is shown as computed.");
  }
  h += backwardPanel(l, c, pos);
  el("detail").innerHTML = h;
  var anim = el("anim"), ap = el("anim-pos");
  if (anim) anim.style.display = "flex";
  if (ap) {
    ap.dataset.pos = pos.join(",");
    ap.textContent = "window at output " + tuple(pos) + " of layer " + index + ": slide it over the layer's output";
  }
  var b = ROOT.querySelector(".show-dw");
  if (b) b.addEventListener("click", function () { showFilterGrad(+b.dataset.layer, +b.dataset.filter); });
}
function step(dir) {
  if (!cur) return;
  var l = LAYERS[cur.index], sp = l.out_shape.length === 2 ? [l.out_shape[1]] : l.out_shape.slice(2), n = prod(sp);
  var f = (flat(cur.pos, sp) + dir + n) % n;
  showValue(cur.index, cur.c, unflat(f, sp));
}
function startAnim() {
  if (timer) return;
  timer = setInterval(function () { step(1); }, 700);
  var b = el("anim-play");
  if (b) b.innerHTML = "&#10074;&#10074; pause";
}
function hideAnim() { var a = el("anim"); if (a) a.style.display = "none"; }
function stopAnim() {
  if (timer) { clearInterval(timer); timer = null; }
  var b = el("anim-play");
  if (b) b.innerHTML = "&#9654; play";
}

function pixelOf(img, ev) {
  var r = img.getBoundingClientRect(), W = img.naturalWidth, H = img.naturalHeight;
  var x = ev.clientX - r.left - img.clientLeft, y = ev.clientY - r.top - img.clientTop;
  var col = Math.min(W - 1, Math.max(0, Math.floor(x / img.clientWidth * W)));
  var row = Math.min(H - 1, Math.max(0, Math.floor(y / img.clientHeight * H)));
  return img.classList.contains("fvec") || D.spatial_ndim === 1 ? [col] : [row, col];
}

function showClass(j) {
  var pr = D.probs;
  if (!pr) return;
  stopAnim(); cur = null;
  var r = softmaxText(pr.z, j, D.classes);
  var h = tag("h3", "id='pixel-title'", "Class " + esc(className(j)) + ": probability") +
          tag("span", "id='calc-kind' data-kind='probability'", "") +
          tag("p", "", pr.own ?
              "The model's own Softmax layer turns the scores z of the layer before it into probabilities." :
                             "The model outputs scores z (logits); the page applies the softmax to show " +
                             "probabilities.");
  h += r.html + verdict(r.p, pr.p[j], 8 * pr.z.length * D.eps + 1e-300, "probability");
  el("detail").innerHTML = h;
  hideAnim();
  clearBoxes("win-box"); clearBoxes("rf-pix"); drawRegion(null);
}

// ---------------------------------------------------------------- wiring
function wire() {
  var hover = el("hover");
  $$("img.fmap, img.fvec").forEach(function (img) {
    var index = +img.dataset.layer, c = img.dataset.channel === undefined ? 0 : +img.dataset.channel;
    img.addEventListener("click", function (ev) { stopAnim(); showValue(index, c, pixelOf(img, ev)); });
    if (!hover) return;
    img.addEventListener("mousemove", function (ev) {
      var pos = pixelOf(img, ev), v = libValue(LAYERS[index], c, pos);
      hover.textContent = (img.classList.contains("fvec") ? "entry " + (pos[0] + 1) : "channel " + (c + 1) + " " +
          tuple(pos)) +
                          (v !== null ? " = " + fmt(v) : "");
      hover.style.left = (ev.clientX + 12) + "px"; hover.style.top = (ev.clientY + 12) +
          "px"; hover.style.display = "block";
    });
    img.addEventListener("mouseleave", function () { hover.style.display = "none"; });
  });
  $$("img.ftile").forEach(function (img) {
    img.addEventListener("click", function () {
      if (!document.body.classList.contains("grads")) { setGrads(true); }
      showFilterGrad(+img.dataset.layer, +img.dataset.filter);
    });
  });
  $$(".bar[data-class]").forEach(function (b) {
    b.addEventListener("click", function () { showClass(+b.dataset.class); });
  });
  var sel = el("grad-class"), box = el("show-grads");
  if (sel) sel.addEventListener("change", function () { gradClass = +sel.value; drawGrads(); refresh(); });
  if (box) box.addEventListener("change", function () { setGrads(box.checked); });
  var back = el("anim-back"), play = el("anim-play"), fwd = el("anim-step");
  if (fwd) fwd.addEventListener("click", function () { stopAnim(); step(1); });
  if (back) back.addEventListener("click", function () { stopAnim(); step(-1); });
  if (play) play.addEventListener("click", function () { if (timer) stopAnim(); else startAnim(); });
  var fold = el("collapse-all"), open = el("expand-all");
  if (fold) fold.addEventListener("click",
      function () { $$("section.card.layer > details").forEach(function (d) { d.open = false; }); });
  if (open) open.addEventListener("click",
      function () { $$("section.card.layer > details").forEach(function (d) { d.open = true; }); });
}
function setGrads(on) {
  document.body.classList.toggle("grads", on);
  var box = el("show-grads");
  if (box) box.checked = on;
  if (on) drawGrads();
  refresh();
}
function refresh() { if (cur) showValue(cur.index, cur.c, cur.pos); }

// ---------------------------------------------------------------- the playground
function playground() {
  var ids = ["pg-n", "pg-k", "pg-p", "pg-s", "pg-d"];
  if (!el("pg-n")) return;
  function val(id) { return Number(el(id).value); }
  function diagram(n, k, p, s, d, o, ke) {
    var total = n + 2 * p, lastRead = (o - 1) * s + ke - 1;
    if (total > 60 || o > 30) return tag("p", "class='muted'",
        "(drawing shown for n + 2p &le; 60 and at most 30 outputs)");
    var g = "<span class='lbl'>x_p</span>";
    for (var i = 0; i < total; i++) {
      var real = i >= p && i < p + n;
      var read = false;
      for (var j = 0; j < o && !read; j++) { var off = i - j * s; if (off >= 0 && off % d === 0 &&
          off / d < k) read = true; }
      g += tag("span", "class='cell" + (real ? " real" : "") + (!read ? " left" : "") + "'", real ? i - p : "p");
    }
    var rows = tag("div", "class='pg-row'", g);
    for (var j2 = 0; j2 < o; j2++) {
      var cells = "<span class='lbl'>y_" + (j2 + 1) + "</span>";
      for (var q = 0; q < total; q++) {
        var off2 = q - j2 * s, tap = off2 >= 0 && off2 % d === 0 && off2 / d < k;
        cells += tag("span", "class='cell" + (tap ? " tap" : "") + "'", "");
      }
      rows += tag("div", "class='pg-row'", cells);
    }
    return rows;
  }
  function update() {
    var n = val("pg-n"), k = val("pg-k"), p = val("pg-p"), s = val("pg-s"), d = val("pg-d");
    var res = el("pg-result"), out = el("pg-out"), dia = el("pg-diagram");
    var whole = [n, k, s, d].every(function (v) { return Number.isInteger(v) && v >= 1; });
    if (!whole || !Number.isInteger(p) || p < 0) {
      res.innerHTML = tag("p", "class='bad'",
          "n, k, s and d must be whole numbers of at least 1, and p a whole number of at least 0.");
      out.dataset.value = ""; out.textContent = "?"; dia.innerHTML = "";
      return;
    }
    var ke = d * (k - 1) + 1, kname = d !== 1 ? "d(k-1)+1" : "k";
    var cnum = n - (ke - 1) + 2 * p, cval = Math.ceil(cnum / s);
    var fnum = n - ke + 2 * p, fval = Math.floor(fnum / s + 1);
    var fits = fnum >= 0, o = fits ? fval : 0, h = "";
    if (d !== 1) h += calc("dilated window: d(k-1)+1 = " + d + "*" + (k - 1) + "+1 = " + ke +
        " entries, used for k below");
    h += calc("ceiling form: ceil((n - (" + kname + " - 1) + 2p) / s) = ceil((" + n + " - " + (ke - 1) + " + " +
        2 * p + ") / " + s +
              ") = ceil(" + fmt(cnum / s) + ") = " + tag("span", "id='pg-ceil'", cval));
    h += calc("floor form: floor((n - " + kname + " + 2p) / s + 1) = floor((" + n + " - " + ke + " + " + 2 * p +
        ") / " + s +
              " + 1) = floor(" + fmt(fnum / s + 1) + ") = " + tag("span", "id='pg-floor'", fval));
    if (!fits) {
      h += tag("p", "class='bad'", "does not fit: the window (" + ke +
          " entries) is larger than the padded input (n + 2p = " + (n + 2 * p) + ").");
    } else {
      var used = (o - 1) * s + ke, left = n + 2 * p - used;
      h += tag("p", "", "The last window ends at padded position " + (used - 1) + (left > 0 ? "; the last " + left +
          " padded entr" +
               (left === 1 ? "y is" : "ies are") + " never read (shown in orange)." : ".") +
               (s > ke ? " The stride is larger than the window, so entries between windows are never read " +
                         "either (Key Equation 54)." : ""));
    }
    out.textContent = fits ? String(o) : "0 (does not fit)";
    out.dataset.value = String(o);
    res.innerHTML = h;
    dia.innerHTML = fits ? diagram(n, k, p, s, d, o, ke) : "";
  }
  ids.forEach(function (id) { el(id).addEventListener("input", update); });
  $$("button[data-preset]").forEach(function (b) {
    b.addEventListener("click", function () {
      var v = b.dataset.preset.split(",");
      ids.forEach(function (id, i) { el(id).value = v[i]; });
      update();
    });
  });
  update();
}

function tileBoxes() {     // the dashed box of the positions a tiled layer embeds
  D.layers.forEach(function (l) {
    if (!tiled(l)) return;
    var ranges = l.values.tile.map(function (t, a) { return [l.values.start[a], l.values.start[a] + t - 1]; });
    $$("img.fmap[data-layer='" + l.index + "']").forEach(function (img) { boxOn(img, "tile-box", ranges); });
  });
}
// a link can open the page on one value: #value=LAYER,CHANNEL,ROW,COL (+ &grads=1 for the backward pass),
// #filter=LAYER,FILTER for a filter's dL/dW; LAYER and CHANNEL as the page numbers them (channels from 0)
function fromHash() {
  var hash = (window.location.hash || "").replace(/^#/, ""), parts = {};
  hash.split("&").forEach(function (kv) {
    var i = kv.indexOf("=");
    if (i > 0) parts[kv.slice(0, i)] = kv.slice(i + 1);
  });
  if (parts.grads === "1" && D.backward) setGrads(true);
  var nums = function (t) { return t.split(",").map(Number); };
  if (parts.value) {
    var v = nums(parts.value), l = LAYERS[v[0]];
    if (!l || v.some(isNaN)) return;
    var vec = l.out_shape.length === 2, pos = vec ? v.slice(1, 2) : v.slice(2);
    var card = el("layer-" + v[0]);
    if (card) card.scrollIntoView({block: "start"});
    showValue(v[0], vec ? 0 : v[1], pos);
  } else if (parts.filter) {
    var fv = nums(parts.filter);
    if (LAYERS[fv[0]] && LAYERS[fv[0]].conv) { if (D.backward) setGrads(true); showFilterGrad(fv[0], fv[1]); }
  }
}
function init(root) {
  ROOT = root || document;
  var blob = ROOT.querySelector("#convscope-data");
  D = JSON.parse(blob.textContent);
  LAYERS = {}; cache = new Map(); cur = null; stopAnim();
  D.layers.forEach(function (l) { LAYERS[l.index] = l; });
  gradClass = D.backward ? D.backward["default"] : null;
  var sel = el("grad-class"), box = el("show-grads");
  if (sel && gradClass !== null) sel.value = String(gradClass);
  if (box) box.checked = document.body.classList.contains("grads");
  wire();
  tileBoxes();
  playground();
  if (document.body.classList.contains("grads")) drawGrads();
  document.body.dataset.ready = "1";
}
window.convscopeExplainer = {init: init, showValue: function (i, c, p) { showValue(i, c, p); },
                             showFilterGrad: function (i, f) { showFilterGrad(i, f); }, setGrads: setGrads};
if (document.getElementById("convscope-data") && !document.body.dataset.live) { init(document); fromHash(); }
})();
"""
