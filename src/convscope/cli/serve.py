"""``convscope explain serve MODEL``: the live explainer on 127.0.0.1 (the ``serve`` extra).

::

    convscope explain serve runs/digits/model.npz            # http://127.0.0.1:8000/
    convscope explain serve lenet --port 8050
    convscope explain serve model.npz --host 0.0.0.0 --allow-remote   # reachable by others: on purpose only

Draw a digit or drop an image; the page shows the prediction, every layer's maps and the
click-to-see arithmetic, computed by convscope on each change (:mod:`convscope.viz.serve`).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import MODEL_HELP, add_command, checked, image_shape_of, model_or_architecture, normalizer, positive_int

__all__ = ["add_serve", "run_serve"]

port_type = checked(int, lambda v: 0 <= v <= 65535, "a port number from 0 to 65535 (0: a free one)")


def add_serve(sub: Any) -> None:
    p = add_command(sub, "serve", run_serve, "the live explainer in the browser: draw or drop an image",
                    one_line_errors=True)
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--port", type=port_type, default=8000, metavar="P", help="default 8000 (0: a free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                   help="default 127.0.0.1 (loopback); another address needs --allow-remote")
    p.add_argument("--allow-remote", action="store_true",
                   help="listen on a non-loopback --host: anyone who reaches it can upload images")
    p.add_argument("--max-upload-mb", type=positive_int, default=4, metavar="MB", help="upload cap (default 4 MiB)")
    p.add_argument("--max-side", type=positive_int, default=2048, metavar="PX",
                   help="largest accepted image width and height (default 2048)")


def run_serve(args: argparse.Namespace) -> int:
    """Start the live explainer: a page on http://127.0.0.1:PORT/ with a drawing canvas and an image
    drop zone; each change is explained by the model (prediction, feature maps, click-to-see
    arithmetic, the backward pass). Listens on loopback only unless --host and --allow-remote say
    otherwise. Ctrl-C stops it."""
    from ..viz.serve import check_host, serve

    check_host(args.host, args.allow_remote)
    model, metadata, described = model_or_architecture(args.model)
    shape = image_shape_of(metadata, args.model)
    serve(model, shape, host=args.host, port=args.port, allow_remote=args.allow_remote,
          class_names=metadata.get("classes"), normalize=normalizer(metadata),
          title=f"convscope live explainer: {described}", max_upload_bytes=args.max_upload_mb * 2**20,
          max_side=args.max_side)
    return 0
