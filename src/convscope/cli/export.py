"""``convscope export``: write a saved model as an ONNX file or a PyTorch module.

::

    convscope export runs/mnist/model.npz --format onnx --out model.onnx
    convscope export runs/mnist/model.npz --format torch --out model.pt
    convscope export lenet --format onnx --out lenet.onnx          # untrained, to try it
    convscope export model.npz --format onnx --out m.onnx --input-shape 3,32,32

``MODEL`` is a model file written by ``convscope train`` (or :func:`convscope.save`), or the
name of a built-in architecture (``digits``, ``lenet``, ``cifar``: untrained, seed 0).
``--input-shape`` (one sample, no batch axis: ``C,H,W``, or ``C,L`` / ``C,D,H,W``) defaults
to the shape recorded in the model file; ONNX needs it because ``padding="same"`` and the
pooling windows are resolved for it (the batch axis stays dynamic).

Both exports describe the model in evaluation mode (Dropout off, BatchNorm on its running
statistics); the PyTorch module is saved whole with ``torch.save`` and loads with
``torch.load(PATH, weights_only=False)`` (its custom layers, if any, come from
``convscope.export.torch``). When ``onnxruntime`` is installed, the ONNX file is run once on
random input and the largest difference from convscope's output is printed.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ConvscopeError
from ..files import atomic_write
from ._common import add_command, model_or_architecture, sample_shape

__all__ = ["add_export", "run_export"]


def add_export(subparsers: Any) -> None:
    p = add_command(subparsers, "export", run_export, "write a model as an ONNX file or a PyTorch module")
    p.add_argument("model", metavar="MODEL",
                   help="a model file from convscope train, or digits, lenet, cifar, resnet "
                   "(untrained, seed 0)")
    p.add_argument("--format", required=True, choices=("onnx", "torch"), help="what to write")
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    p.add_argument("--input-shape", type=sample_shape(), metavar="C,H,W",
                   help="shape of one input sample (default: the one recorded in the model file)")
    p.add_argument("--opset", type=int, metavar="N",
                   help="ONNX opset (default 17, or 19 when circular padding needs it)")


def run_export(args: argparse.Namespace) -> int:
    """Export a saved model (or a built-in architecture, untrained) to ONNX (standard operators,
    dynamic batch; run it in ONNX Runtime) or to a PyTorch module with the same weights. Needs
    the extra convscope[onnx] or convscope[torch]."""

    model, metadata, _ = model_or_architecture(args.model)
    model.eval()
    out = Path(args.out)
    if args.format == "torch":
        from ..export.torch import import_torch, to_torch

        torch = import_torch("convscope export --format torch")
        module = to_torch(model)
        buffer = io.BytesIO()
        torch.save(module, buffer)
        atomic_write(out.expanduser(), lambda f: f.write(buffer.getvalue()), op="export")
        print(f"wrote {out} (PyTorch {type(module).__name__} in eval mode, "
              f"{sum(p.numel() for p in module.parameters())} parameters); load it with "
              f"torch.load({str(out)!r}, weights_only=False)")
        return 0
    from ..export import to_onnx

    shape = args.input_shape or metadata.get("image_shape")
    if not shape:
        raise ConfigError(
            f"export: {args.model} does not record its input shape, and ONNX needs it; pass "
            f"--input-shape C,H,W (one sample, without the batch axis)."
        )
    shape = tuple(int(v) for v in shape)
    to_onnx(model, out, shape, opset=args.opset)
    print(f"wrote {out} (ONNX, input 'input' of shape (batch, {', '.join(map(str, shape))}), "
          f"output 'output')")
    _check_with_onnxruntime(model, out, shape)
    return 0


def _check_with_onnxruntime(model: Any, path: Path, shape: tuple[int, ...]) -> None:
    try:
        import onnxruntime
    except ImportError:
        print("onnxruntime is not installed, so the file was not run; "
              'pip install "convscope[onnx]" to check it.', file=sys.stderr)
        return
    dtype = next((p.data.dtype for p in model.parameters()), np.dtype(np.float32))
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"input": x})
    except Exception as exc:  # onnxruntime raises its own classes
        raise ConvscopeError(
            f"export: onnxruntime {onnxruntime.__version__} could not run the exported file "
            f"{path}: {exc}"
        ) from exc
    diff = float(np.abs(got.astype(np.float64) - model(x.astype(dtype))).max())
    print(f"onnxruntime check on 2 random samples: largest |difference| from convscope = "
          f"{diff:.3g}")
