"""Fuzz the classes of hostile input that a valid digest or a plausible size does not stop.

* hostile-fields: model metadata, resume-checkpoint header fields and run configs with every
  kind of wrong value, written with a correct SHA-256 (the digest proves nothing);
* nesting: specs and JSON nested from a few to thousands of levels;
* allocation: specs, model files, data files and image folders that describe far more memory
  than they hold, under the fuzz suite's small array limit;
* api-inputs: masked arrays, tensors that require grad, ragged lists and self-containing
  models through functional ops, modules and predict;
* training: learning rates from sane to absurd, where a finite but diverged loss must be
  reported with a TrainingWarning.
"""

from __future__ import annotations

import copy
import gzip
import json
import tarfile
import warnings

import numpy as np
import pytest

import convscope
from convscope import functional as F
from convscope import nn, optim
from convscope.cli import main
from convscope.data import read_idx, read_image_folder
from convscope.data.formats import read_cifar_tar
from convscope.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NumericalError,
    ResourceError,
    TrainingWarning,
)
from convscope.io import MODEL_FORMAT, load_checkpoint, save_checkpoint
from convscope.train import ModelCheckpoint, fit, load_training_checkpoint, predict

from ._harness import judge

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

#: Wrong values for any field: wrong types, out of range, deep, huge.
VALUES = [
    ("str", "abc"), ("null", None), ("negative", -5), ("zero", 0), ("float", 2.5), ("bool", True),
    ("huge int", 2**200), ("nan", float("nan")), ("inf", float("inf")), ("list", [1, "x"]),
    ("empty list", []), ("dict", {"x": 1}), ("empty dict", {}), ("nested", [[[[[[1]]]]]]),
    ("long str", "x" * 20_000),
]


def _tiny():
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5, rng=0), nn.Linear(4, 2, rng=0))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-ckpt") / "ckpt.npz"
    x = np.random.default_rng(0).standard_normal((8, 1, 2, 2)).astype(np.float32)
    model = _tiny()
    opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    fit(model, nn.CrossEntropyLoss(), opt, (x, np.arange(8) % 2), epochs=1, batch_size=4, seed=0,
        scheduler=optim.StepLR(opt, 1), progress=False, callbacks=[ModelCheckpoint(path)])
    return x, load_checkpoint(path)


# ----------------------------------------------------------------------------------------
# hostile-fields
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["image_shape", "classes", "normalize", "dataset", "arch"])
def test_model_metadata_fields(tmp_path, key):
    model = _tiny()
    for label, value in VALUES:
        path = save_checkpoint(tmp_path / "m.npz", model.state_dict(),
                               {"spec": nn.to_spec(model), "metadata": {key: value}}, format=MODEL_FORMAT)
        judge(lambda: convscope.load(path), (key,), category="hostile-fields", errors=(CheckpointError,),
              context=f"load(metadata {key} = {label})")
        np.save(tmp_path / "x.npy", np.zeros((2, 2), dtype=np.float32))
        judge(lambda: _quiet_main(["predict", str(path), str(tmp_path / "x.npy")]), category="hostile-fields",
              trace=False, context=f"predict(metadata {key} = {label})")


FIELDS = ["epoch", "seed", "spec", "optimizer", "optimizer.param_names", "optimizer.counters",
          "optimizer.hyperparameters", "scheduler", "scheduler.last_epoch", "scheduler.config",
          "loader", "loader.epoch", "loader.batch", "loader.rng", "loader.shuffle", "generators",
          "generators.1", "generators.1.state", "history", "history.epochs", "history.info",
          "callbacks", "callbacks.0"]


def _set(header, dotted, value):
    *parents, last = dotted.split(".")
    target = header
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[int(last) if isinstance(target, list) else last] = value


@pytest.mark.parametrize("field", FIELDS)
def test_checkpoint_header_fields(tmp_path, checkpoint, field):
    x, (arrays, header) = checkpoint
    last = field.rpartition(".")[2]
    for label, value in VALUES:
        hostile = copy.deepcopy(header)
        _set(hostile, field, value)
        path = save_checkpoint(tmp_path / "c.npz", arrays, hostile)

        def resume():
            model = _tiny()
            opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
            return fit(model, nn.CrossEntropyLoss(), opt, (x, np.arange(8) % 2), epochs=3, batch_size=4,
                       seed=0, scheduler=optim.StepLR(opt, 1), progress=False, resume=path)

        judge(lambda: load_training_checkpoint(path), (last, field.partition(".")[0]), category="hostile-fields",
              errors=(CheckpointError,), context=f"load_training_checkpoint({field} = {label})")
        out = judge(resume, category="hostile-fields", context=f"fit(resume, {field} = {label})")
        if out.ok:  # a value that happens to be valid: the run must still end at epoch 3
            assert len(out.value) == 3, f"{field} = {label}: {len(out.value)} epochs"


@pytest.mark.parametrize("key", ["epochs", "batch_size", "lr", "optimizer", "seed", "threads",
                                 "val_fraction", "clip", "dataset", "arch"])
def test_run_config_fields(tmp_path, key):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "checkpoint.npz").write_bytes(b"junk")
    for label, value in VALUES[:10]:
        (run / "config.json").write_text(json.dumps({key: value}))
        judge(lambda: _quiet_main(["train", "--resume", str(run), "--progress", "none"]), category="hostile-fields",
              trace=False, context=f"train --resume (config {key} = {label})")


def _quiet_main(argv):
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    assert status in (0, 2), status
    return status


# ----------------------------------------------------------------------------------------
# nesting
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 10, 49, 50, 51, 100, 400, 490, 2000])
def test_nested_specs_and_spec_files(tmp_path, depth):
    spec: dict = {"type": "ReLU", "config": {}}
    for _ in range(depth):
        spec = {"type": "Sequential", "config": {}, "children": {"0": spec}}
    out = judge(lambda: nn.from_spec(spec), ("spec", "nested"), category="nesting",
                context=f"from_spec(nested {depth})")
    assert out.ok == (depth <= 49), depth
    path = tmp_path / "arch.json"
    path.write_text('{"type": "Sequential", "config": {}, "children": {"0": ' * depth
                    + '{"type": "ReLU"}' + "}}" * depth)
    judge(lambda: _quiet_main(["summary", "--arch", str(path), "--input-shape", "1,4,4"]), category="nesting",
          trace=False, context=f"summary --arch (nested {depth})")


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
                                  "[" * 200_000, '"' + "[" * 10_000 + '"'], ids=["list", "dict", "open", "string"])
def test_deep_json_headers(tmp_path, text):
    import io as _io
    import zipfile

    body = ('{"format": "convscope-model", "version": 1, "arrays": {}, "sha256": "' + "0" * 64
            + '", "header": {"x": ' + text + "}}").encode()
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(body, dtype=np.uint8))
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__convscope__.npy", buf.getvalue())
    judge(lambda: load_checkpoint(path, format=None), category="nesting", errors=(CheckpointError,),
          expect="error", context=f"load_checkpoint(header {text[:12]!r}...)")


# ----------------------------------------------------------------------------------------
# allocation (the fuzz suite's array limit is 64 MiB)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers, n", [(1, 3000), (4, 30_000), (100, 1000), (1, 2**31), (2, 4000)])
def test_specs_describing_too_much_memory(tmp_path, layers, n):
    spec = {"type": "Sequential", "config": {}, "children": {
        str(i): {"type": "Linear", "config": {"in_features": n, "out_features": n}} for i in range(layers)}}
    judge(lambda: nn.from_spec(spec), ("array limit", "limit"), category="allocation", expect="error",
          errors=(ResourceError,), context=f"from_spec({layers} x Linear({n}, {n}))")
    path = save_checkpoint(tmp_path / "m.npz", {}, {"spec": spec, "metadata": {}}, format=MODEL_FORMAT)
    judge(lambda: convscope.load(path), ("limit",), category="allocation", expect="error",
          errors=(ResourceError,), context=f"load({layers} x Linear({n}, {n}))")


@pytest.mark.parametrize("dims", [(2**20, 28, 28), (70_000, 128, 128), (2**31, 2**31), (1, 1 << 29)])
def test_idx_headers_that_promise_more_than_they_hold(tmp_path, dims):
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    for compress in (False, True):
        data = header + bytes(1 << 20)
        path = tmp_path / "x-idx.gz"
        path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
        judge(lambda: read_idx(path), ("max_bytes", "truncated", "items", "bytes"), category="allocation",
              expect="error", errors=(DataError, ResourceError), context=f"read_idx({dims}, gzip={compress})")


@pytest.mark.parametrize("kind, size", [(tarfile.GNUTYPE_LONGNAME, 1 << 17), (tarfile.GNUTYPE_LONGNAME, 1_500_000_000),
                                        (tarfile.XHDTYPE, 1 << 30), (tarfile.GNUTYPE_LONGLINK, 1 << 20)])
def test_tar_headers_that_would_be_read_into_memory(tmp_path, kind, size):
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, size
    path = tmp_path / "cifar-10-binary.tar"
    with open(path, "wb") as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT)[:512])
        f.truncate(512 + size + 1024)
    judge(lambda: read_cifar_tar(path, ["test_batch.bin"]), ("header",), category="allocation", expect="error",
          errors=(DataError,), context=f"read_cifar_tar(header type {kind!r} of {size} bytes)")


@pytest.mark.parametrize("count, side", [(5, 4096), (300, 512), (1, 4096)])
def test_image_folders_larger_than_the_limit(tmp_path, count, side):
    import shutil

    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.new("RGB", (side, side), 0).save(tmp_path / "a" / "0.png")
    for i in range(1, count):
        shutil.copyfile(tmp_path / "a" / "0.png", tmp_path / "a" / f"{i}.png")
    fits = count * 3 * side * side <= 64 * 2**20
    out = judge(lambda: read_image_folder(tmp_path), ("limit",), category="allocation",
                errors=(ResourceError,), context=f"read_image_folder({count} x {side}x{side})")
    assert out.ok == fits


# ----------------------------------------------------------------------------------------
# api-inputs
# ----------------------------------------------------------------------------------------
def _inputs():
    x = np.ones((2, 1, 4, 4), dtype=np.float32)
    out = [("masked", np.ma.masked_array(x, mask=x > 2)), ("ragged", [[1.0], [1.0, 2.0]]),
           ("masked 2-d", np.ma.masked_array(x.reshape(2, 16)))]
    try:
        import torch
    except ImportError:
        return out
    return out + [("torch requires_grad", torch.ones(2, 1, 4, 4, requires_grad=True)),
                  ("torch 2-d requires_grad", torch.ones(2, 16, requires_grad=True))]


CALLS = [
    ("linear", lambda x: F.linear(x, np.ones((3, 16), np.float32))),
    ("relu", F.relu),
    ("softmax", lambda x: F.softmax(x, axis=-1)),
    ("flatten", F.flatten),
    ("conv", lambda x: F.conv(x, np.ones((2, 1, 3, 3), np.float32))),
    ("max_pool", lambda x: F.max_pool(x, 2)),
    ("Conv2d", lambda x: nn.Conv2d(1, 2, 3, rng=0)(x)),
    ("Linear", lambda x: nn.Linear(16, 3, rng=0)(x)),
    ("predict", lambda x: predict(nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0)), x)),
]


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0] for c in CALLS])
def test_inputs_numpy_would_take_the_wrong_way(name, call):
    for label, value in _inputs():
        out = judge(lambda: call(value), ("x",), category="api-inputs", context=f"{name}({label})")
        assert not out.ok, f"{name}({label}) returned a result"


def test_models_that_would_contain_themselves():
    for label, build in [("itself", lambda s: s), ("in a Sequential", lambda s: nn.Sequential(s)),
                         ("in a Residual", lambda s: nn.Residual(s)),
                         ("two levels down", lambda s: nn.Sequential(nn.ReLU(), nn.Residual(nn.Sequential(s))))]:
        model = nn.Sequential(nn.ReLU())
        judge(lambda: model.append(build(model)), ("contains",), category="api-inputs", expect="error",
              errors=(ConfigError,), context=f"Sequential.append({label})")


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_class", [optim.SGD, optim.Adam])
def test_learning_rates_from_sane_to_absurd(opt_class):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    for lr in (1e-3, 1e4, 1e8, 1e10, 1e12, 1e30):
        model = nn.Sequential(nn.Linear(8, 2, rng=0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrainingWarning)
            out = judge(lambda: fit(model, nn.CrossEntropyLoss(), opt_class(model.named_parameters(), lr=lr),
                                    (x, y), epochs=2, batch_size=16, seed=0, progress=False),
                        category="training", errors=(NumericalError,), context=f"{opt_class.__name__}(lr={lr})")
        if out.ok:  # the first batch's loss is about ln 2 = 0.69
            losses = [r["train_loss"] for r in out.value.records]
            reported = any(issubclass(w.category, TrainingWarning) for w in caught)
            if max(losses) > 1000:
                assert reported, (opt_class.__name__, lr, losses)
            if reported:
                assert max(losses) > 1.0, (opt_class.__name__, lr, losses)
