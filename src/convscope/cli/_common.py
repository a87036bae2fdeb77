"""What every command of ``convscope`` shares: the parser class, argument types, models, images.

* :class:`CommandParser`: the parser of the program and of every command. It adds
  ``--debug``, records which command it parses, answers an unknown option or a NUL
  character with the usage of the command that got it, and for the commands built with
  ``one_line_errors=True`` reports a bad value as the command line's one error line
  (``convscope explain conv: error: --stride expects ...``) instead of usage + error.
* Argument types (``type=`` of ``add_argument``): each turns the text of one option into its
  value or raises :class:`argparse.ArgumentTypeError` saying what it expects, so every
  value is checked while parsing, before a command runs. Two wordings, as the commands
  print them: ``expected ...`` (:func:`positive_int` and the other types of train,
  evaluate, predict, summary and export) and ``expects ...`` (:func:`count`,
  :func:`axes`, ... of the explain commands).
  :func:`path_text` is the type of every path option (no empty text, no NUL character).
* Models and images: :func:`load_model` (a model file, a run folder or a run's
  checkpoint.npz), :func:`model_or_architecture`, :func:`model_and_input_shape`,
  :func:`normalizer`, :func:`read_image` (through :func:`convscope.files.check_readable`,
  with warnings for images unlike the training data), :func:`image_for_model`.
* Messages: :func:`error_text` (an exception as the command's one error line),
  :func:`plural`, :func:`err`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ..errors import ConfigError, DataError, MissingDependencyError, ShapeError

T = TypeVar("T")

#: ``--progress`` names and what :func:`convscope.train.fit` takes for each.
PROGRESS: dict[str, Any] = {"bar": True, "lines": "plain", "epochs": "epochs", "none": False}


# ------------------------------------------------------------------------------ parsing


class OptionError(ConfigError):
    """A bad option value of a command that reports it as one line.

    Attributes:
        prog: the command as typed, e.g. ``"convscope explain conv"``.
    """

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` for ``convscope`` and each of its commands.

    Every parser accepts ``--debug`` (show the traceback of an error). A command's parser
    sets ``command`` (``"train"``, ``"explain conv"``) for the error line of its handler.
    Sub-command parsers are of this class too (``add_subparsers`` uses the parent's class),
    and ``add_parser(name, one_line_errors=True)`` makes one whose bad values raise
    :class:`OptionError` (printed as one line by :func:`convscope.cli.main`).
    """

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show the full traceback of an error")
        _, _, command = self.prog.partition(" ")
        if command:
            self.set_defaults(command=command)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, but a command's parser refuses what it does not know itself.

        argparse hands a sub-command's unknown options up to the program's parser, which
        would answer ``convscope train --foo`` with the usage of ``convscope``; here the
        command that got them reports them with its own usage. Text with a NUL character
        (no file can be named so) is refused by the parser that reads it.
        """
        for text in [] if args is None or self._subparsers is not None else list(args):
            if isinstance(text, str) and "\0" in text:
                self.error(f"{text!r} contains a NUL character; no file or value can have one")
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and " " in self.prog:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str) -> NoReturn:
        """Usage and ``message`` on standard error, exit status 2; or :class:`OptionError`."""
        if not self.one_line_errors:
            super().error(message)
        # argparse words a bad value "argument --stride: <what the type said>".
        match = re.fullmatch(r"argument (\S+): (.*)", message, flags=re.S)
        raise OptionError(self.prog, f"{match[1]} {match[2]}" if match else message)


def checked(convert: Callable[[str], T], accept: Callable[[T], bool], expected: str,
            *, explain: bool = False) -> Callable[[str], T]:
    """An argument type: ``convert(text)`` if ``accept`` allows it, else ArgumentTypeError.

    The message says ``expected <expected>; got <text>``, or with ``explain=True``
    ``expects <expected>; got '<text>'.`` (the explain commands' wording; their parsers
    put the option's name in front).
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            pass
        else:
            if accept(value):
                return value
        if explain:
            raise argparse.ArgumentTypeError(f"expects {expected}; got {text!r}.")
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")

    return parse


positive_int = checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: v > 0 and math.isfinite(v), "a positive finite number")
fraction = checked(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
finite_number = checked(float, math.isfinite, "a finite number", explain=True)


def count(minimum: int) -> Callable[[str], int]:
    """An integer >= ``minimum`` (explain wording)."""
    return checked(int, lambda v: v >= minimum, f"an integer >= {minimum}", explain=True)


def _int_tuple(text: str) -> tuple[int, ...]:
    """``"2"``, ``"1,2"``, ``"1x28x28"``, ``"(1, 2)"`` -> ints; ValueError if malformed."""
    body = text.strip().strip("()[]").strip()
    return tuple(int(v) for v in re.split(r"\s*[,x]\s*|\s+", body))


def sample_shape(rank: int | None = None) -> Callable[[str], tuple[int, ...]]:
    """The shape of one sample without the batch axis: ``1,28,28`` (or ``1x28x28``).

    ``rank`` fixes the number of axes (3: C,H,W); None takes any number.
    """
    expected = ("three positive ints C,H,W such as 1,28,28" if rank == 3 else
                "the shape of one sample, positive ints such as 1,28,28 (C,H,W)")
    return checked(_int_tuple, lambda s: min(s) >= 1 and rank in (None, len(s)), expected)


def axes(minimum: int) -> Callable[[str], int | tuple[int, ...]]:
    """One int >= ``minimum`` for every axis (``2``) or one per axis (``1,2``); explain wording."""
    rule = "a positive integer" if minimum >= 1 else "an integer >= 0"
    parse = checked(_int_tuple, lambda v: min(v) >= minimum,
                    f"{rule} or one per axis separated by commas (2 or 1,2)", explain=True)

    def per_axis(text: str) -> int | tuple[int, ...]:
        values = parse(text)
        return values[0] if len(values) == 1 else values

    return per_axis


def padding(text: str) -> Any:
    """``same``, ``valid``, or an integer >= 0 for every axis or one per axis (explain wording)."""
    word = text.strip().lower()
    if word in ("same", "valid"):
        return word
    try:
        return axes(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expects an integer >= 0, one per axis (1,2), 'same' or "
                                         f"'valid'; got {text!r}.") from None


def choice(*names: str, listed: str | None = None) -> Callable[[str], str]:
    """One of ``names`` (explain wording: ``--kind expects max, avg or blur; got 'min'.``)."""
    listed = listed or (", ".join(names[:-1]) + " or " + names[-1])
    return checked(str, lambda v: v in names, listed, explain=True)


def path_text(text: str) -> str:
    """A file or folder path: any text but the empty one or one with a NUL character."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a file or folder path (not empty, no NUL character); "
                                         f"got {text!r}")
    return text


def layer_ref(text: str) -> int | str:
    """``--layer``: a layer number as ``convscope summary`` numbers them, or a dotted name."""
    return int(text) if text.isdigit() else text


def add_command(subparsers: Any, name: str, handler: Callable[[argparse.Namespace], int], help: str,
                **kwargs: Any) -> CommandParser:
    """Add the command ``name`` and return its parser, for the options.

    Args:
        subparsers: what ``add_subparsers()`` returned.
        name: the command's name.
        handler: ``handler(args) -> exit status`` runs the command; its docstring is the
            description that ``convscope NAME --help`` shows (unless ``description=`` is given).
        help: the one line that the list of commands shows.
        kwargs: more :class:`CommandParser` arguments, e.g. ``one_line_errors=True``.
    """
    kwargs.setdefault("description", handler.__doc__)
    p = subparsers.add_parser(name, help=help, **kwargs)
    p.set_defaults(handler=handler)
    return p


def add_data_options(p: argparse.ArgumentParser, dataset_help: str) -> None:
    """``--dataset`` and ``--data-dir`` (train, evaluate)."""
    p.add_argument("--dataset", type=path_text, metavar="NAME|PATH", help=dataset_help)
    p.add_argument(
        "--data-dir", type=path_text, metavar="DIR",
        help="folder holding the dataset's standard files (nothing is downloaded); without it "
        "MNIST, Fashion-MNIST and CIFAR-10 are downloaded once into a verified cache",
    )


#: the name of the library function that raised, in front of its message (``trace_conv: ``):
#: the command line says which command failed instead.
_FUNCTION_PREFIX = re.compile(r"^(?:[a-z_][a-z0-9_]*: )+")


def error_text(exc: BaseException, command: str = "") -> str:
    """The message of ``exc`` on one line, without a leading library function name.

    convscope numbers spatial axes from 1 everywhere (the notes' way: ``axis 1: n = 8, ...``
    in explain, ``along spatial axis 1`` in the library's errors); the explain commands say
    ``axis 1`` for both.
    """
    text = _FUNCTION_PREFIX.sub("", " ".join(str(exc).split())) or type(exc).__name__
    if command.startswith("convscope explain"):
        text = re.sub(r"\bspatial axis (\d+)", r"axis \1", text)
    return text


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def err(text: str) -> None:
    """One line on standard error (progress, notes)."""
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- models


MODEL_HELP = ("a model file from convscope train, or a built-in architecture name (digits, lenet, "
              "cifar: untrained, seed 0)")


def run_model_file(path: str) -> Path:
    """The file that ``path`` names as a model: itself, or in a run folder its model.npz
    (its checkpoint.npz when training ended before writing one)."""
    from ..files import check_readable

    p = Path(path)
    if p.is_dir():
        for name in ("model.npz", "checkpoint.npz"):
            if (p / name).is_file():
                return p / name
        raise ConfigError(f"{path} is a folder without model.npz or checkpoint.npz; expected a model "
                          f"file or the --out folder of convscope train.")
    if not p.exists() and Path(path + ".npz").exists():
        p = Path(path + ".npz")
    return check_readable(p, "model file", error=ConfigError)


def _model_from_checkpoint(p: Path, ckpt: Any) -> tuple[Any, dict]:
    """The model of the training checkpoint ``ckpt`` read from ``p``, with the metadata its
    run's config.json keeps."""
    import json

    from ..errors import CheckpointError
    from ..nn import from_spec

    if ckpt.spec is None:
        raise CheckpointError(f"{p} does not describe its architecture, so no model can be built from "
                              f"it; use the model.npz of the run.")
    model = from_spec(ckpt.spec)
    model.load_state_dict(ckpt.model_state)
    metadata: dict[str, Any] = {}
    config = p.parent / "config.json"
    if config.is_file():
        try:
            metadata = dict(json.loads(config.read_text(encoding="utf-8")).get("model_metadata") or {})
        except (json.JSONDecodeError, AttributeError):
            metadata = {}
    err(f"note: {p} is a training checkpoint; using its weights after epoch {ckpt.epoch}.")
    return model, metadata


def load_model(path: str) -> tuple[Any, dict]:
    """``(model, metadata)`` of a model file written by ``convscope train`` / ``convscope.save``,
    a run folder (its model.npz), or a run's training checkpoint (checkpoint.npz).

    A model from ``convscope train`` standardises its inputs itself (a Normalize layer
    first); a file of an earlier release records the statistics in
    ``metadata["normalize"]`` instead, which :func:`normalizer` applies (the commands
    do, so the warning of :func:`convscope.load` is not shown). ``metadata["image_shape"]``
    and ``["classes"]`` are the model's ``input_shape`` and ``classes``.
    """
    import warnings

    from ..errors import CheckpointError
    from ..io import load
    from ..train.checkpoint import load_training_checkpoint

    p = run_model_file(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="this model file .* metadata\\['normalize'\\]")
            model, metadata = load(p, return_metadata=True)
    except CheckpointError as exc:
        try:
            ckpt = load_training_checkpoint(p)
        except CheckpointError:
            raise exc from None  # not a training checkpoint either: the model file's error
        return _model_pipeline(*_model_from_checkpoint(p, ckpt))
    if metadata.get("interrupted"):
        err(f"note: {p} holds the weights of a run interrupted after "
            f"{plural(int(metadata.get('epochs_completed') or 0), 'complete epoch')}.")
    return _model_pipeline(model, metadata)


def _model_pipeline(model: Any, metadata: dict) -> tuple[Any, dict]:
    """The metadata the commands read, made to agree with the model's own input pipeline."""
    from ..nn import input_normalization

    norm = input_normalization(model)
    if norm is not None:
        metadata.pop("normalize", None)  # the model's own layer is the one normalisation
        metadata["input_mean"] = [float(v) for v in norm.mean]  # for predict's polarity check
    if getattr(model, "input_shape", None):
        metadata["image_shape"] = list(model.input_shape)
    if getattr(model, "classes", None):
        metadata["classes"] = list(model.classes)
    return model, metadata


def model_or_architecture(text: str) -> tuple[Any, dict[str, Any], str]:
    """``(model, metadata, description)`` for a model file or a built-in architecture name.

    An architecture is built untrained (seed 0), with a note on standard error; its
    metadata holds only the architecture's own ``image_shape``.
    """
    from ..models import ARCHITECTURES, build_model

    if Path(text).exists() or Path(text + ".npz").exists():
        model, metadata = load_model(text)
        return model, metadata, str(Path(text))
    key = text.lower()
    if key in ARCHITECTURES:
        err(f"note: {key} is a built-in architecture; its weights are untrained (seed 0).")
        return build_model(key, seed=0), {"image_shape": list(ARCHITECTURES[key].input_shape)}, f"untrained {key}"
    raise ConfigError(f"MODEL must be a model file (from convscope train) or one of "
                      f"{', '.join(sorted(ARCHITECTURES))}; no file {text!r} exists.")


def model_and_input_shape(model_path: str | None, arch: str | None, input_shape: Sequence[int] | None,
                          *, walk_misfits: bool = False) -> tuple[Any, tuple[int, ...]]:
    """The model of ``summary`` / ``explain shape`` and the shape of one input.

    Args:
        model_path: a model file, or None to build ``arch``.
        arch: a built-in architecture name or a JSON spec file (untrained, seed 0).
        input_shape: the input of one sample; default: the one the model file records,
            or the architecture's own (a spec file needs it).
        walk_misfits: an input too small for a built-in architecture's blocks gives the
            model built for its own input (to walk it and show where the input stops)
            instead of the ShapeError.
    """
    from ..models import ARCHITECTURES, build_model

    if model_path is not None:
        model, metadata = load_model(model_path)
        shape = input_shape or metadata.get("image_shape")
        if not shape:
            raise ConfigError(f"{model_path} does not record its input shape; pass --input-shape C,H,W.")
        return model, tuple(shape)
    key = str(arch).lower()
    if key in ARCHITECTURES:
        shape = tuple(input_shape or ARCHITECTURES[key].input_shape)
        try:
            return build_model(key, input_shape=shape, seed=0), shape
        except ShapeError:
            if not walk_misfits:
                raise
            return build_model(key, seed=0), shape
    model = build_model(str(arch), seed=0)
    if input_shape is None:
        raise ConfigError(f"pass --input-shape C,H,W for the spec file {arch}.")
    return model, tuple(input_shape)


def train_mean(metadata: dict) -> list[float] | None:
    """The training images' mean value per channel: the model's Normalize layer's (as
    :func:`load_model` reports it) or, for a file of an earlier release, its metadata's."""
    norm = metadata.get("normalize")
    mean = norm.get("mean") if isinstance(norm, dict) else metadata.get("input_mean")
    return [float(v) for v in mean] if isinstance(mean, list) and mean else None


def normalizer(metadata: dict) -> Any:
    """The Normalize transform a model file of an earlier release records (None if there is
    none: a model from ``convscope train`` normalises in its own first layer)."""
    norm = metadata.get("normalize")
    if not norm:
        return None
    from ..data import Normalize

    return Normalize(norm["mean"], norm["std"])


# ------------------------------------------------------------------------------- images


_MAX_PIXELS = 4096 * 4096


def read_image(path: Path, shape: Sequence[int], command: str = "predict",
               train_mean: Sequence[float] | None = None) -> Any:
    """One image as float32 (C, H, W) in [0, 1], converted and resized to ``shape``.

    PNG, JPEG, ... through Pillow (converted to gray or RGB, resized with a note on
    standard error naming ``command``), or a ``.npy`` array of shape (H, W), (C, H, W) or
    (H, W, C), float in [0, 1] or integers up to 255. The path is checked with
    :func:`convscope.files.check_readable` first (a FIFO is refused, not waited on).
    An image that clearly differs from the training images (colour for a grey model or
    grey for a colour one, a very different size, values outside [0, 1] or in a narrow
    band, the inverse polarity of ``train_mean``, the training images' mean value per
    channel) gets a warning line on standard error: the answer may be meaningless.
    """
    import numpy as np

    from ..files import check_readable

    check_readable(path, "image")
    c, h, w = (int(v) for v in shape)
    warn = _warner(path, command)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"could not read {path} as a .npy array: {exc}") from None
        if arr.dtype.kind not in "uif":
            raise DataError(f"{path}: expected a numeric image array; got dtype {arr.dtype}.")
        if arr.dtype.kind in "ui":
            arr = arr / (255.0 if arr.dtype == np.uint8 or arr.max(initial=0) <= 255 else float(arr.max()))
        if arr.shape == (h, w) and c == 1:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[-1] == c and arr.shape[:2] == (h, w) and c > 1:
            arr = arr.transpose(2, 0, 1)
        if arr.shape != (c, h, w):
            hint = (" It has no channel axis: save it as (1, H, W) or (H, W)." if arr.ndim == 2 and c > 1 else "")
            raise DataError(
                f"{path}: the model takes images of shape ({c}, {h}, {w}) (C, H, W); the array has "
                f"shape {arr.shape}.{hint}"
            )
        arr = arr.astype(np.float32)
        _check_values(arr, train_mean, warn)
        return arr
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            'reading image files needs Pillow: pip install "convscope[train]" (or give .npy arrays).'
        ) from None
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > _MAX_PIXELS:
                raise DataError(f"{path}: {im.size[0]}x{im.size[1]} pixels is too large an image.")
            colour = _is_colour(im)
            if c == 1 and colour:
                warn("is a colour image; the model was trained on grey images, so it is converted to grey")
            elif c == 3 and not colour:
                warn("is a grey image; the model was trained on colour images")
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                ratio = max(im.size[0] / w, w / im.size[0], im.size[1] / h, h / im.size[1])
                if ratio >= 4:
                    larger = im.size[0] * im.size[1] >= w * h
                    warn(f"is {im.size[0]}x{im.size[1]} pixels, {ratio:.0f} times "
                         f"{'the size of' if larger else 'smaller than'} the {w}x{h} "
                         f"training images; resized to {w}x{h}, which loses or invents detail")
                else:
                    err(f"convscope {command}: note: {path} is {im.size[0]}x{im.size[1]}; resized to {w}x{h}.")
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"could not read image {path}: {exc}") from None
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    _check_values(arr, train_mean, warn)
    return arr


def _warner(path: Path, command: str) -> Callable[[str], None]:
    def warn(text: str) -> None:
        err(f"convscope {command}: warning: {path} {text}.")

    return warn


def _is_colour(im: Any) -> bool:
    """Whether a Pillow image has visibly different colour channels."""
    import numpy as np

    if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    return bool(np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean() > 4.0)


def _check_values(arr: Any, train_mean: Sequence[float] | None, warn: Callable[[str], None]) -> None:
    """Warnings for values outside [0, 1], in a narrow band, or of inverted polarity."""
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -0.01 or hi > 1.01:
        warn(f"has values from {lo:g} to {hi:g}; the model was trained on values in [0, 1] "
             f"(divide 0..255 pixels by 255)")
        return
    if hi - lo < 0.25:
        warn(f"has values only from {lo:.2f} to {hi:.2f}; the training images span [0, 1], "
             f"so the answer may mean little")
        return
    if train_mean:
        mean, trained = float(arr.mean()), float(sum(train_mean) / len(train_mean))
        if abs(mean - trained) > 0.3 and abs(mean - (1.0 - trained)) < abs(mean - trained):
            warn(f"looks inverted: its mean value is {mean:.2f} where the training images average "
                 f"{trained:.2f} (light on dark vs dark on light); invert it (1 - x) if so")


def image_shape_of(metadata: dict[str, Any], model_text: str) -> list[int]:
    """The image shape a model file records; ConfigError when it records none."""
    shape = metadata.get("image_shape")
    if not shape:
        raise ConfigError(f"{model_text} does not record the image shape it takes; save it with "
                          f"convscope.save(model, path, input_shape=(C, H, W)) or convscope train.")
    return shape


def image_for_model(path: str, model_text: str, metadata: dict[str, Any], command: str) -> tuple[Any, str]:
    """The image as the model sees it (a batch of one, normalised as in training) and a
    sentence on how it was prepared."""
    shape = image_shape_of(metadata, model_text)
    x = read_image(Path(path), shape, command, train_mean(metadata))[None]
    note = f"Input: {path}, read as {tuple(int(v) for v in shape)} with values in [0, 1]"
    norm = normalizer(metadata)
    if norm is not None:
        x = norm(x)
        note += f", then normalised as in training (mean {norm.mean.tolist()}, std {norm.std.tolist()})"
    return x, note + "."
