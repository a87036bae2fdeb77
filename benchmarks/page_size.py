"""Size of the HTML explainer page of a ResNet-18 (tests/explain/resnet18.py) on a 224 x 224 input, by kind.

Run from the repository root (one core)::

    PYTHONPATH=src python -m benchmarks.page_size [out.html]

Writes the page (default /tmp/r18.html), prints the time to build and write it (wall and CPU:
the machine may be shared), and splits its
bytes into: feature-map PNGs (``img.fmap``, ``img.inmap``, ``img.fvec``), filter PNGs
(``img.ftile``), the JSON block of embedded numbers (by top-level part, and the base64 arrays in it),
the script, the style sheet, and the rest of the markup.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import convscope
from convscope.viz import explain_model_html

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "explain"))
from resnet18 import resnet18_graph  # noqa: E402


def _mb(n: int) -> str:
    return f"{n / 1e6:8.3f} MB"


def breakdown(text: str) -> Counter:
    """Bytes of the page by kind (UTF-8; the page is ASCII apart from a few symbols)."""
    parts: Counter = Counter()
    for m in re.finditer(r'<img class="(\w+)" src="(data:image/png;base64,[^"]*)"', text):
        kind = "filter PNGs" if m.group(1) == "ftile" else "feature-map PNGs"
        parts[kind] += len(m.group(2))
        parts[f"  count {kind}"] += 1
    blob = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', text, re.S)
    if blob:
        raw = blob.group(1)
        parts["JSON numbers (all)"] += len(raw)
        parts["  of which base64 arrays"] += sum(len(s) for s in re.findall(r'"b64":"([^"]*)"', raw))
        data = json.loads(raw.replace("<\\/", "</"))
        for key, value in data.items():
            parts[f"  JSON {key}"] += len(json.dumps(value, separators=(",", ":")))
        for lay in data["layers"]:
            for key, value in lay.items():
                parts[f"  JSON layers.*.{key}"] += len(json.dumps(value, separators=(",", ":")))
    parts["script"] = sum(len(s) for s in re.findall(r"<script>(.*?)</script>", text, re.S))
    parts["style"] = sum(len(s) for s in re.findall(r"<style>(.*?)</style>", text, re.S))
    return parts


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "/tmp/r18.html")
    convscope.set_num_threads(1)
    model = resnet18_graph().eval()
    x = np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    explain_model_html(model, x, out)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    text = out.read_text()
    total = len(text.encode())
    parts = breakdown(text)
    print(f"page {out}: {_mb(total)}, written in {seconds:.2f} s ({cpu:.2f} s CPU, one core)")
    known = 0
    for key, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        if key.startswith("  count"):
            print(f"  {key.strip():40s} {value}")
            continue
        if not key.startswith("  "):
            known += value
        print(f"{key:42s} {_mb(value)}")
    print(f"{'other markup':42s} {_mb(total - known)}")


if __name__ == "__main__":
    main(sys.argv[1:])
