"""Live mode of the HTML explainer: draw a digit or drop an image, see the model explain it.

:func:`create_app` builds a small web app (Flask, the ``serve`` extra) around a model: its page
has a drawing canvas and an image drop zone; each change is sent to the server, which runs
:func:`convscope.viz.html.explainer_parts` on it and sends back the explainer's body, which
the page shows with the same script as the static explainer (prediction, every layer's maps,
click-to-see arithmetic, the backward pass). :func:`serve` runs it; :class:`LiveServer` runs
it in a background thread (tests, notebooks).

Safety: the server listens on loopback (127.0.0.1) only unless ``allow_remote=True``; on
loopback it also refuses requests whose ``Host`` header is not a loopback name (DNS
rebinding). Uploads are capped in bytes (``max_upload_bytes``) and in image size
(``max_side`` pixels per side, checked from the header before decoding); only common image
formats are decoded. A bad upload gets a one-line message in the page, never a traceback.

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3, rng=1))
    >>> app = create_app(model, (1, 8, 8))
    >>> client = app.test_client()
    >>> client.get("/api/health").get_json()["ok"]
    True
    >>> client.post("/api/explain", data={"image": (io.BytesIO(b"not an image"), "x.txt")}).get_json()["error"]
    'The upload is not an image convscope can read (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM).'
"""

from __future__ import annotations

import html
import io
import ipaddress
import logging
import numbers
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ConvscopeError, DataError, MissingDependencyError
from ..nn import Module
from .html import explainer_parts, page_html

__all__ = ["create_app", "serve", "LiveServer", "check_host", "image_from_bytes", "MAX_UPLOAD_BYTES", "MAX_SIDE"]

#: Default cap on one upload (bytes).
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
#: Default cap on an uploaded image's width and height (pixels).
MAX_SIDE = 2048
_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
_log = logging.getLogger("convscope.serve")


def _is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(host: Any, allow_remote: bool = False) -> str:
    """``host`` if the server may listen on it: loopback always, anything else only when allowed.

    Raises:
        ArgumentTypeError: ``host`` is not a non-empty string.
        ConfigError: a non-loopback address without ``allow_remote``.

    >>> check_host("127.0.0.1"), check_host("0.0.0.0", allow_remote=True)
    ('127.0.0.1', '0.0.0.0')
    """
    if not isinstance(host, str) or not host.strip():
        raise ArgumentTypeError(f"serve: host must be an address such as 127.0.0.1; got {host!r}.")
    if not isinstance(allow_remote, bool):
        raise ArgumentTypeError(f"serve: allow_remote must be True or False; got {allow_remote!r}.")
    if not _is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"serve: refusing to listen on {host!r}: the explainer serves on loopback (127.0.0.1) only, "
            f"because anyone who can reach the port can upload images and run the model. Pass "
            f"allow_remote=True (--allow-remote) to listen on {host!r} anyway.")
    return host


def image_from_bytes(data: bytes, image_shape: Sequence[int], max_side: int = MAX_SIDE) -> np.ndarray:
    """An uploaded image as float32 ``(C, H, W)`` in [0, 1], converted and resized to ``image_shape``.

    The image's size is read from its header and refused past ``max_side`` before it is
    decoded; one channel is grey (``L``), three are RGB; transparency is composed on black
    (a drawing's background).

    Raises:
        MissingDependencyError: without Pillow.
        DataError: not an image of a common format, too large, or unreadable.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is in the serve extra
        raise MissingDependencyError("serve: reading uploaded images needs Pillow: "
                                     "pip install 'convscope[serve]'.") from None
    c, h, w = (int(v) for v in image_shape)
    if not data:
        raise DataError("The upload is empty: choose an image file or draw on the canvas.")
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as im:
            width, height = im.size
            if width > max_side or height > max_side:
                raise DataError(f"The image is {width}x{height} pixels; the server takes at most {max_side}x{max_side} "
                                f"(the model sees {w}x{h}).")
            im.load()
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(background, im)
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise DataError("The upload is not an image convscope can read (PNG, JPEG, GIF, BMP, WebP, TIFF, "
                        "PNM).") from None
    a = a[None] if c == 1 else a.transpose(2, 0, 1)
    if a.shape[0] != c:
        raise DataError(f"The model takes {c} channels; convscope can convert images to 1 (grey) or 3 (RGB) only.")
    return np.ascontiguousarray(a)


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"serve: {name} must be a positive int; got {value!r}.")
    return int(value)


def create_app(model: Module, image_shape: Sequence[int], class_names: Sequence[Any] | None = None,
               normalize: Callable[[np.ndarray], np.ndarray] | None = None, title: str | None = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, max_side: int = MAX_SIDE, allow_remote: bool = False,
               max_channels: int = 32):
    """The live explainer as a Flask app (see the module docstring).

    Args:
        model: the model to explain.
        image_shape: ``(C, H, W)`` the model takes; uploads and drawings are resized to it.
        class_names: names of the outputs.
        normalize: applied to the batch ``(1, C, H, W)`` in [0, 1] before the model (the
            training normalisation); None for none.
        title: the page title.
        max_upload_bytes, max_side: the caps on an upload.
        allow_remote: answer requests whatever their Host header (for a server on a public
            address); otherwise only loopback names are answered.
        max_channels: feature maps shown per layer.

    Raises:
        MissingDependencyError: Flask is not installed.
        ConfigError, ArgumentTypeError: bad arguments.
    """
    try:
        from flask import Flask, jsonify, request
    except ImportError:
        raise MissingDependencyError("serve: the live explainer needs Flask: pip install 'convscope[serve]'.") from None
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"serve: model must be a convscope Module; got {type(model).__name__}.")
    try:
        shape = tuple(int(v) for v in image_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or any(v < 1 for v in shape):
        raise ConfigError(f"serve: image_shape must be (C, H, W), three positive ints; got {image_shape!r}.")
    max_upload_bytes = _positive(max_upload_bytes, "max_upload_bytes")
    max_side = _positive(max_side, "max_side")
    names = None if class_names is None else [str(c) for c in class_names]
    heading = title or f"convscope live explainer: {type(model).__name__}, input {shape}"
    lock = threading.Lock()          # one forward/backward at a time: layers keep what their backward needs

    def explain(x: np.ndarray) -> dict[str, Any]:
        xb = x[None]
        if normalize is not None:
            xb = normalize(xb)
        with lock:
            parts = explainer_parts(model, xb, names, max_channels=max_channels, title=heading)
        return {"ok": True, "body": parts.body, "prediction": parts.prediction,
                "probabilities": parts.probabilities, "class_names": parts.class_names}

    blank = np.zeros(shape, dtype=np.float32)
    app = Flask("convscope.serve")
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes

    def error(message: str, status: int):
        return jsonify({"ok": False, "error": message}), status

    @app.before_request
    def only_loopback_names():
        if not allow_remote and not _is_loopback(request.host.rsplit(":", 1)[0] if "]" not in request.host
                                                  else request.host.split("]")[0] + "]"):
            return error("This server answers requests to 127.0.0.1 or localhost only.", 400)
        return None

    @app.get("/")
    def index():
        first = explain(blank)
        return page_html(heading, _LIVE.format(title=html.escape(heading), shape=html.escape(str(shape)),
                                               mb=f"{max_upload_bytes / 2**20:.1f}", side=max_side,
                                               body=first["body"], h=shape[1], w=shape[2],
                                               ink=_ink(shape[0])),
                         extra_head=f'<link rel="icon" href="data:,"><script>{_LIVE_JS}</script>',
                         body_attrs=' data-live="1"')

    @app.get("/api/health")
    def health():
        return jsonify({"ok": True, "image_shape": list(shape)})

    @app.post("/api/explain")
    def explain_upload():
        upload = request.files.get("image")
        if upload is None:
            return error("No image in the request (expected a form field named 'image').", 400)
        try:
            x = image_from_bytes(upload.read(max_upload_bytes + 1), shape, max_side)
            return jsonify(explain(x))
        except ConvscopeError as exc:
            return error(str(exc), 400)

    @app.errorhandler(413)
    def too_large(_exc):
        return error(f"The upload is larger than {max_upload_bytes / 2**20:.1f} MiB, the server's limit.", 413)

    @app.errorhandler(Exception)
    def internal(exc):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return error(exc.description or exc.name, exc.code or 400)
        _log.exception("convscope serve: the explainer failed on a request")
        return error("The explainer failed on this image (the server's console has the details).", 500)

    return app


class LiveServer:
    """The app served in a background thread (Werkzeug's threaded server); ``with`` stops it.

    Args:
        app: from :func:`create_app`.
        host: checked by :func:`check_host`.
        port: 0 picks a free port.

    >>> from convscope import nn
    >>> app = create_app(nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0)), (1, 2, 2))
    >>> with LiveServer(app) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    host: str
    port: int

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False) -> None:
        from werkzeug.serving import make_server

        check_host(host, allow_remote)
        if isinstance(port, bool) or not isinstance(port, numbers.Integral) or not 0 <= port <= 65535:
            raise ConfigError(f"serve: port must be an int from 0 to 65535; got {port!r}.")
        self._server: Any = make_server(host, int(port), app, threaded=True)
        self.host = host
        self.port = int(self._server.server_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> LiveServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="convscope-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(model: Module, image_shape: Sequence[int], host: str = "127.0.0.1", port: int = 8000,
          allow_remote: bool = False, **options: Any) -> None:
    """Serve the live explainer until interrupted (Ctrl-C).

    Args:
        model, image_shape: as :func:`create_app`; ``options`` go to it too.
        host: loopback by default; anything else needs ``allow_remote=True``.
        port: the port (0: a free one).
    """
    check_host(host, allow_remote)
    server = LiveServer(create_app(model, image_shape, allow_remote=allow_remote, **options), host, port,
                        allow_remote)
    print(f"convscope live explainer on {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)


def _ink(channels: int) -> str:
    """What the drawing pad gives the model: white strokes on black, grey in every channel."""
    if channels == 1:
        return "white on black, as MNIST and the built-in digits are written"
    return (f"white on black: a grey image, the same in all {channels} channels; "
            f"a photo suits this model better")


_LIVE = """<div class="live">
<div class="pad-box"><b>Draw</b> ({ink})<br>
<canvas id="draw" width="280" height="280"></canvas>
<div class="controls"><button type="button" id="clear">clear</button>
<label>pen <input type="range" id="pen" min="8" max="40" value="22"></label></div></div>
<div class="pad-box"><b>or drop an image</b>
<div id="drop">drop an image file here<br>or <input type="file" id="file" accept="image/*"></div>
<p class="muted">at most {mb} MiB and {side}x{side} pixels; the model sees {h}x{w}, shape {shape}</p>
<p id="message" role="status"></p><p id="live-status"></p>
<p>Prediction: <b id="live-prediction">-</b></p></div>
</div>
<div id="explainer">{body}</div>
"""

_LIVE_JS = r"""
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var canvas = document.getElementById("draw"), ctx = canvas.getContext("2d");
  var box = document.getElementById("explainer"), msg = document.getElementById("message");
  var status = document.getElementById("live-status"), busy = false, again = null;
  var drawing = false, last = null, lastSent = 0, requests = 0, encoding = 0;
  function clear() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
  function say(text, bad) { msg.textContent = text; msg.className = bad ? "error" : ""; }
  function show(reply) {
    if (!reply.ok) { say(reply.error, true); return; }
    say("", false);
    box.innerHTML = reply.body;
    window.convscopeExplainer.init(box);
    var names = reply.class_names, p = reply.prediction;
    var pred = document.getElementById("live-prediction");
    pred.textContent = p === null ? "-" : (names ? names[p] : String(p));
    pred.dataset.class = p === null ? "" : String(p);
    requests++; status.textContent = "updated (" + requests + ")"; status.dataset.count = String(requests);
  }
  function send(blob, name) {
    document.body.dataset.liveBusy = "1";
    if (busy) { again = [blob, name]; return; }
    busy = true;
    var form = new FormData(); form.append("image", blob, name || "drawing.png");
    fetch("api/explain", {method: "POST", body: form}).then(function (r) {
      return r.json().catch(function () { return {ok: false, error: "The server answered " + r.status + "."}; });
    }).then(show).catch(function () { say("The server could not be reached.", true); }).then(function () {
      busy = false;
      if (again) { var a = again; again = null; send(a[0], a[1]); } else if (!encoding) {
        document.body.dataset.liveBusy = "0";     // nothing in flight, queued or being encoded
      }
    });
  }
  function sendCanvas() {
    lastSent = Date.now(); encoding++; document.body.dataset.liveBusy = "1";
    canvas.toBlob(function (b) { encoding--; send(b, "drawing.png"); }, "image/png");
  }
  function point(ev) {
    var r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
  }
  function stroke(a, b) {
    ctx.strokeStyle = "#fff"; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.lineWidth = +document.getElementById("pen").value;
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
  canvas.addEventListener("pointerdown", function (ev) {
    drawing = true; last = point(ev); stroke(last, last); canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", function (ev) {
    if (!drawing) return;
    var p = point(ev); stroke(last, p); last = p;
    if (Date.now() - lastSent > 600) sendCanvas();
  });
  function end() { if (drawing) { drawing = false; sendCanvas(); } }
  canvas.addEventListener("pointerup", end); canvas.addEventListener("pointerleave", end);
  document.getElementById("clear").addEventListener("click", function () { clear(); sendCanvas(); });
  var file = document.getElementById("file"), drop = document.getElementById("drop");
  function useFile(f) { if (f) { say("explaining " + f.name + " ...", false); send(f, f.name); } }
  file.addEventListener("change", function () { useFile(file.files[0]); });
  drop.addEventListener("dragover", function (ev) { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (ev) {
    ev.preventDefault(); drop.classList.remove("over"); useFile(ev.dataTransfer.files[0]);
  });
  clear();
  window.convscopeExplainer.init(box);
  document.body.dataset.liveReady = "1";
});
"""
