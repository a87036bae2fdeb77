"""The page's raw-DEFLATE decoder (the script's ``inflate``) against Python's zlib, run by Node.js.

The embedded arrays are deflated by :func:`convscope.viz._explainer_data.b64` when that pays; the
browser tests check the arithmetic of pages that use it, this checks the decoder on its own, on
every kind of block (stored, fixed and dynamic Huffman codes) and on data that is cut short."""

import base64
import json
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from convscope.viz._explainer_data import b64, unb64
from convscope.viz._explainer_js import JS

NODE = shutil.which("node")


def _deflate(raw: bytes, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(raw) + packer.flush()


def _cases():
    rng = np.random.default_rng(0)
    relu = rng.standard_normal(30_000).astype("<f4")
    relu[relu < 0] = 0
    raws = [b"", b"a", rng.standard_normal(20_000).astype("<f4").tobytes(), relu.tobytes(),
            bytes(rng.integers(0, 3, 70_000, dtype=np.uint8)), b"abc" * 40_000,
            rng.standard_normal(3_000).astype("<f8").tobytes()]
    return [(raw, level) for raw in raws for level in (0, 1, 6, 9)]


@pytest.mark.skipif(NODE is None, reason="Node.js runs the page's script outside a browser")
def test_the_pages_inflate_gives_zlibs_bytes_for_every_kind_of_block(tmp_path):
    start, end = JS.index("// raw DEFLATE"), JS.index("function decode(b)")
    cases = [{"z": base64.b64encode(_deflate(raw, level)).decode(), "n": len(raw),
              "raw": base64.b64encode(raw).decode()} for raw, level in _cases()]
    cut = _deflate(b"abc" * 40_000, 6)
    cases.append({"z": base64.b64encode(cut[: len(cut) // 2]).decode(), "n": 120_000, "raw": None})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = JS[start:end] + r"""
var cases = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8")), out = [];
cases.forEach(function (c) {
  try {
    var got = inflate(new Uint8Array(Buffer.from(c.z, "base64")), c.n);
    out.push(Buffer.from(got).toString("base64"));
  } catch (e) { out.push("error: " + e.message); }
});
console.log(JSON.stringify(out));
"""
    (tmp_path / "inflate.js").write_text(script)
    run = subprocess.run([NODE, str(tmp_path / "inflate.js"), str(tmp_path / "cases.json")],
                         capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(run.stdout)
    for case, result in zip(cases[:-1], got[:-1]):
        assert result == case["raw"], (case["n"], result[:40])
    assert got[-1].startswith("error: deflate data ends early")


def test_b64_deflates_only_when_it_pays_and_unb64_reads_it_back_bit_for_bit():
    rng = np.random.default_rng(1)
    relu = np.maximum(rng.standard_normal((8, 9, 10)), 0).astype(np.float32)
    relu[0, 0, 0] = -0.0
    noise = rng.standard_normal((4, 5)).astype(np.float32)
    packed, plain = b64(relu, np.float32), b64(noise, np.float32)
    assert packed["deflate"] is True and "deflate" not in plain
    assert len(base64.b64decode(packed["b64"])) <= relu.nbytes * 7 // 8
    for entry, a in ((packed, relu), (plain, noise)):
        back = unb64(entry)
        assert back.dtype == np.float32 and back.shape == a.shape
        assert back.tobytes() == a.tobytes()                 # bit for bit, -0.0 included
    wide = b64(np.zeros((3, 3)), np.float64)
    assert wide["dtype"] == "f8" and unb64(wide).tobytes() == np.zeros((3, 3)).tobytes()


def test_unb64_says_what_it_expected():
    from convscope.errors import ConfigError

    with pytest.raises(ConfigError, match="expected an embedded array"):
        unb64({"b64": ""})
    with pytest.raises(ConfigError, match=r"needs 16 bytes; the entry holds 8"):
        unb64({"dtype": "f4", "shape": [4], "b64": base64.b64encode(bytes(8)).decode()})
