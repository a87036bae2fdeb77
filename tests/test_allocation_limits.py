"""Sizes are counted and refused before anything is allocated, with a convscope error that
names the limit and how to raise it.

Each hostile input runs in a child process whose address space is capped
(``resource.setrlimit(RLIMIT_AS)``): without the check, the allocation fails there with a raw
MemoryError (or gets far with a large one) instead of filling this machine's memory.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.data import read_image_folder
from convscope.errors import CheckpointError, ResourceError
from convscope.functional.windows import get_array_limit, set_array_limit
from convscope.io import MODEL_FORMAT, save_checkpoint

SRC = str(Path(convscope.__file__).resolve().parents[1])

#: Run in the child before the body: imports, then the cap (current size + CAP_MIB).
PRELUDE = """
import json, resource, sys
import numpy as np
import convscope
from convscope.cli import main
current = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (current + {cap} * 2**20, resource.RLIM_INFINITY))

def outcome(call):
    try:
        value = call()
    except BaseException as exc:  # the parent judges what came out
        return {{"type": type(exc).__name__, "convscope": isinstance(exc, convscope.errors.ConvscopeError),
                 "message": str(exc)}}
    return {{"type": None, "value": repr(value)[:200]}}
"""


@contextlib.contextmanager
def memory_cap(extra_mib: int = 512):
    """Cap this process's address space at its current size plus ``extra_mib`` for a block
    that must not allocate much, so a regression fails with MemoryError instead of
    exhausting the machine."""
    current = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (current + extra_mib * 2**20, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def run_capped(body: str, cap_mib: int = 512, timeout: float = 120) -> list[dict]:
    """Run ``body`` in a child with a memory cap; it prints one JSON outcome per line."""
    code = PRELUDE.format(cap=cap_mib) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def big_spec(layers: int = 4, n: int = 20_000) -> dict:
    # Each weight (1.49 GiB) is under the default array limit of 2 GiB; the model is not.
    return {"type": "Sequential", "config": {}, "children": {
        str(i): {"type": "Linear", "config": {"in_features": n, "out_features": n}} for i in range(layers)}}


# ----------------------------------------------------------------------------------------
# Model files and specs: the whole model is counted (parameters, gradients, buffers)
# ----------------------------------------------------------------------------------------
def test_a_tiny_file_describing_gigabytes_of_layers_is_refused_by_load_summary_and_train(tmp_path):
    model_file = save_checkpoint(tmp_path / "bomb.npz", {}, {"spec": big_spec(), "metadata": {}},
                                 format=MODEL_FORMAT)
    assert model_file.stat().st_size < 4096
    spec_file = tmp_path / "bomb.json"
    spec_file.write_text(json.dumps(big_spec()))
    results = run_capped(f"""
        print(json.dumps(outcome(lambda: convscope.load({str(model_file)!r}))))
        for argv in (["summary", "--arch", {str(spec_file)!r}, "--input-shape", "1,8,8"],
                     ["train", "--arch", {str(spec_file)!r}, "--epochs", "1", "--out", {str(tmp_path / "run")!r},
                      "--progress", "none"]):
            import io, contextlib
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                status = outcome(lambda: main(argv))
            status["stderr"] = err.getvalue()
            print(json.dumps(status))
    """)
    loaded, summary, train = results
    assert loaded["type"] == "ResourceError", loaded
    for text in (loaded["message"], summary["stderr"], train["stderr"]):
        assert "array limit of 2.00 GiB" in text and "set_array_limit" in text, text
        assert "nothing was allocated" in text, text
    assert summary["value"] == "2" and train["value"] == "2"


def test_load_compares_the_spec_with_the_arrays_before_building(tmp_path):
    # 1.6 GB of parameters and gradients (under the array limit) that the file does not hold
    path = save_checkpoint(tmp_path / "m.npz", {}, {"spec": big_spec(2, 10_000), "metadata": {}},
                           format=MODEL_FORMAT)
    tracemalloc.start()
    try:
        with memory_cap(256), pytest.raises(CheckpointError, match="do not fit the stored architecture: missing"):
            convscope.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20


def test_from_spec_counts_the_model_against_the_array_limit():
    with memory_cap(256), pytest.raises(ResourceError,
                                        match=r"spec.children.0 \(Linear\).*2.98 GiB in all.*set_array_limit"):
        nn.from_spec(big_spec())
    old = set_array_limit(2**20)
    try:
        with pytest.raises(ResourceError, match="over the array limit of 0.00 GiB"):
            nn.from_spec(big_spec(1, 400))
    finally:
        set_array_limit(old)
    model = nn.from_spec(big_spec(2, 40))  # small models build as before
    assert [p.shape for p in model.parameters()] == [(40, 40), (40,), (40, 40), (40,)]


def test_the_dry_run_leaves_the_default_generator_where_it_was():
    spec = {"type": "Sequential", "config": {}, "children": {
        "0": {"type": "Linear", "config": {"in_features": 3, "out_features": 2}},
        "1": {"type": "Dropout", "config": {"p": 0.5}}}}
    nn.init.manual_seed(7)
    a = nn.from_spec(spec)
    nn.init.manual_seed(7)
    b = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    assert np.array_equal(a[0].weight.data, b[0].weight.data)
    assert a[1].generator.random() == b[1].generator.random()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initialisation_draws_into_the_target_dtype_with_the_same_values(dtype):
    shape = (300, 700)  # more than one draw chunk
    w = nn.init.fan_in_uniform(shape, 700, rng=3, dtype=dtype)
    reference = np.random.default_rng(3).uniform(-700 ** -0.5, 700 ** -0.5, size=shape).astype(dtype)
    assert w.dtype == dtype and np.array_equal(w, reference)
    tracemalloc.start()
    try:
        nn.init.kaiming_normal((1000, 1000), rng=0, dtype=dtype)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the result plus one draw chunk, never a float64 copy of the whole array
    assert peak < 1000 * 1000 * np.dtype(dtype).itemsize + 4 * nn.init.DRAW_CHUNK * 8


# ----------------------------------------------------------------------------------------
# Data files
# ----------------------------------------------------------------------------------------
def test_a_gzip_idx_bomb_at_the_default_max_bytes_is_a_resource_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    items = (1 << 30) // 784  # just under the default max_bytes of 1 GiB
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 3]) + items.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        f.write(bytes(80 * 2**20))  # enough for the reader to need more than the cap
    assert path.stat().st_size < 2 * 2**20
    (result,) = run_capped(f"""
        from convscope.data import read_idx
        print(json.dumps(outcome(lambda: read_idx({str(path)!r}))))
    """, cap_mib=160)
    assert result["type"] == "ResourceError", result
    assert "max_bytes" in result["message"] and "refused" in result["message"]


def test_a_cifar_tar_with_a_huge_long_name_header_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "cifar-10-binary.tar"
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, 1_500_000_000
    with open(path, "wb") as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT)[:512])
        f.truncate(512 + info.size + 3 * 512)  # sparse: nothing is written to disk
    (result,) = run_capped(f"""
        from convscope.data.formats import read_cifar_tar
        print(json.dumps(outcome(lambda: read_cifar_tar({str(path)!r}, ["test_batch.bin"]))))
    """, cap_mib=256)
    assert result["type"] == "DataError", result
    assert "1500000000 bytes" in result["message"] and "65536" in result["message"]


def _folder_of_big_pngs(root: Path, count: int, side: int = 4096) -> Path:
    from PIL import Image

    (root / "a").mkdir(parents=True)
    first = root / "a" / "0.png"
    Image.new("L", (side, side), 0).save(first)
    for i in range(1, count):
        shutil.copyfile(first, root / "a" / f"{i}.png")
    return root


def test_an_image_folder_of_many_huge_images_is_refused_before_decoding(tmp_path):
    pytest.importorskip("PIL")
    root = _folder_of_big_pngs(tmp_path / "folder", 40)  # 40 x 16.8 M pixels, 0.7 GB decoded
    (result,) = run_capped(f"""
        from convscope.data import read_image_folder
        print(json.dumps(outcome(lambda: read_image_folder({str(root)!r}))))
    """, cap_mib=300)
    assert result["type"] == "ResourceError", result
    assert "40 images" in result["message"] and "nothing was decoded" in result["message"]
    old = set_array_limit(64 * 2**20)
    try:
        with memory_cap(256), pytest.raises(ResourceError, match="array limit.*set_array_limit"):
            read_image_folder(root)
    finally:
        set_array_limit(old)
    assert get_array_limit() == old


def test_predict_with_a_model_for_huge_images_is_refused_before_reading(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    # convscope.save refuses an input shape the model does not take: a file written by hand
    path = save_checkpoint(tmp_path / "m.npz", model.state_dict(),
                           {"spec": nn.to_spec(model), "metadata": {"image_shape": [1, 100_000, 100_000]}},
                           format=MODEL_FORMAT)
    Image.new("L", (2, 2), 0).save(tmp_path / "x.png")
    (result,) = run_capped(f"""
        import io, contextlib
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = outcome(lambda: main(["predict", {str(path)!r}, {str(tmp_path / "x.png")!r}]))
        status["stderr"] = err.getvalue()
        print(json.dumps(status))
    """)
    assert result["value"] == "2", result
    assert "100000 x 100000" in result["stderr"] and "set_array_limit" in result["stderr"]


def test_a_custom_module_that_writes_its_initial_weights_still_builds(tmp_path):
    @nn.spec.register
    class ScaledLinear(nn.Linear):
        def __init__(self, in_features: int, out_features: int) -> None:
            super().__init__(in_features, out_features, rng=0)
            self.weight.data *= 0.5  # a read-only placeholder in the dry run

        def config(self):
            return {"in_features": self.in_features, "out_features": self.out_features}

    try:
        model = nn.Sequential(ScaledLinear(3, 2))
        assert nn.spec.state_shapes(nn.to_spec(model)) is None
        again = convscope.load(convscope.save(model, tmp_path / "m"))
        assert np.array_equal(again[0].weight.data, model[0].weight.data)
    finally:
        nn.spec._REGISTRY.pop("ScaledLinear", None)
