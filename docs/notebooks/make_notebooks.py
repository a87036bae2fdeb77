"""Write the notebooks of docs/notebooks/ and execute them, so they are saved with their outputs.

Run from the repository root after changing a notebook's cells here:

    python docs/notebooks/make_notebooks.py

The test-suite (tests/docs/test_notebooks.py) executes the saved notebooks again with a real
Jupyter kernel and checks that every cell runs and that the pictures and tables are there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


CHAPTER = [
    md("""
# The CNN chapter, walked through with pictures

Every worked example of the notes (chapter 9), computed by `convscope.explain` and drawn by
`convscope.viz` from the same numbers. Each result shows itself: a trace as a table, a picture
inline. Colours: blue < 0, white = 0, red > 0 for signed values; grey for images; the window
purple, the strongest match orange, padding grey, entries never read hatched red.
"""),
    code("""
import numpy as np
from convscope import explain as E, viz
x = [1, 1, -1, -1, -1, 1, -1, 1, 1, 1]          # the notes' signal (9.1.4)
f = [1, -1, 1]                                  # the bright-spot filter
"""),
    md("## 9.1.4 The 1-D example: every window, its dot product, the output (Key Equation 15)"),
    code("t = E.trace_conv(x, f)\nt"),
    code("viz.plot_conv1d(t)"),
    md("## 9.1.7 Padding: the pad cells are filler, not signal (9.7)"),
    code("viz.plot_conv1d([1, 2, 3, 4], [1, 1, 1], padding=2)"),
    md("## 9.1.20 Stride: skipped windows, and the bright spot the stride steps over"),
    code("print(E.trace_conv(x, f, stride=2).text().splitlines()[-2:])\nviz.plot_conv1d(x, f, stride=2)"),
    md("## Clarification 16: centred indexing"),
    code("E.centred_indexing(x, f)"),
    md("## 9.1.8-9.1.10 2-D convolution: window, filter, element-wise products, sum"),
    code("""
cross = np.array([[-1, 1, -1], [1, 1, 1], [-1, 1, -1]])
image = -np.ones((6, 6))
image[1:4, 2] = 1
image[2, 1:4] = 1
image[4, 4] = 1
viz.plot_conv2d(image, cross)
"""),
    md("## 9.1.12-9.1.13 A tensor filter over two channels"),
    code("viz.plot_conv2d(np.stack([image, -image]), np.stack([cross, np.eye(3)]), b=-2)"),
    md("## 9.1.11 A filter bank: several filters, several output channels"),
    code("""
bank = np.stack([cross, np.array([[-1, 2, -1]] * 3), np.array([[-1, 2, -1]] * 3).T])
viz.plot_filter_bank(E.trace_filter_bank(image, bank))
"""),
    md("## Key Equation 48 and Key Equation 54: output size, and entries never read when s > k"),
    code("E.explain_shape(11, 3, s=4)"),
    code("viz.plot_output_size(11, 3, s=4)"),
    md("## 9.2.2 Max-pooling (example 9.12)"),
    code("""
grid = [[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]]
pool = E.trace_pool(grid, 2)
pool
"""),
    code("viz.plot_pool(pool)"),
    code("viz.plot_pool([5., 1., 7., 2., 9., 3., 4., 8.], 2, stride=3)      # s > k: the 7 is never seen"),
    md("## 9.2.6 The shift problem: two images one pixel apart"),
    code("viz.plot_pool_shift()"),
    md("## 9.4.6 The max-pool derivative as routing (Key Equation 69, 9.35)"),
    code("viz.plot_pool_derivative(pool, dy=[[0.5, -1], [2, 3]])"),
    md("## 9.4 Jacobians (9.26, 9.31, 9.35) and the chain rule (9.32)"),
    code("viz.plot_jacobian(E.conv_weight_jacobian([1., 2., 3., 4., 5., 6.], 4))"),
    code("viz.plot_jacobian(E.relu_jacobian([0.5, 2, -1, 3]))"),
    code("viz.plot_jacobian(E.maxpool_jacobian([1., 0, 2, 5, -1, 3]))"),
    code("chain = E.chain_9_32([1., -2, 3, 1, 0, 2], [1., 0, 1, -1], [1., -1, 2], 1.0)\nviz.plot_chain(chain)"),
    md("## 9.3 The typical architecture"),
    code("from convscope import models\nviz.plot_architecture(models.build_model('digits', seed=0), (1, 8, 8))"),
    md("## The window sliding, frame by frame"),
    code("viz.animate_conv(x, f)"),
    md("## Playground: move the sliders (needs `pip install 'convscope[notebook]'`)"),
    code("from convscope.viz.notebook import playground\nplayground(n=11, k=3, p=0, s=4)"),
]

OWN_MODEL = [
    md("""
# Explain your own trained model

Train a small CNN on the built-in digits (1,797 real 8x8 images, shipped with scikit-learn) in
a few seconds, then look inside it: its architecture, filters, feature maps, and the arithmetic
behind any pixel.
"""),
    code("""
import numpy as np
import convscope
from convscope import models, nn, optim, viz
from convscope.data import load_digits
from convscope.train import fit

train, test = load_digits("train"), load_digits("test")
model = models.build_model("digits", seed=0)
history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3), train, test,
              epochs=2, batch_size=64, seed=0, progress=False)
print(history.last)
"""),
    code("convscope.summary(model, (1, 8, 8))"),
    code("viz.plot_architecture(model, (1, 8, 8))"),
    code("viz.plot_curves(history)"),
    code("viz.plot_filters(model)"),
    code("x = test.images[0]\nviz.plot_feature_maps(model, x, class_names=test.classes)"),
    md("Pick one pixel of a feature map: where it looks, and how it was computed."),
    code("viz.plot_feature_pixel(model, x, layer=4, channel=0)"),
    code("viz.pixel_arithmetic(model, x, layer=4, channel=0)"),
    code("viz.plot_weight_gradients(model, x=test.images[:16], target=test.labels[:16])"),
    md("Click a pixel yourself (needs `pip install 'convscope[notebook]'`):"),
    code("from convscope.viz.notebook import feature_explorer\nfeature_explorer(model, x)"),
]

SHIFT = [
    md("""
# Max-pool versus BlurPool: shift invariance (notes 9.2.6, Concept 59)

A max-pool with stride 2 skips receptive fields, so moving the input by one pixel can change
what it outputs. BlurPool (Zhang 2019) takes the max with stride 1, blurs, then subsamples.
"""),
    code("""
import numpy as np
from convscope import explain as E, nn, optim, viz
from convscope.data import load_digits
from convscope.train import fit
viz.plot_pool_shift()
"""),
    md("The same row through a blur pool: the binomial filter spreads each pixel before keeping every 2nd."),
    code("display(E.trace_pool([0, 1, 1, 0, 0, 0], 3, kind='blur'))\n"
         "display(E.trace_pool([0, 0, 1, 1, 0, 0], 3, kind='blur'))"),
    md("Two small models that differ only in the pooling, trained the same way on the digits:"),
    code("""
train, test = load_digits("train"), load_digits("test")

def make(pool):
    rng = np.random.default_rng(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.ReLU(), *pool,
                         nn.Flatten(), nn.Linear(16 * 4 * 4, 10, rng=rng))

models = {"MaxPool2d(2)": make([nn.MaxPool2d(2)]),
          "BlurPool": make([nn.MaxPool2d(2, stride=1), nn.BlurPool2d(16, filter_size=3, stride=2)])}
for m in models.values():
    fit(m, nn.CrossEntropyLoss(), optim.Adam(m.parameters(), lr=3e-3), train, epochs=3, batch_size=64,
        seed=0, progress=False)
"""),
    code("""
from convscope.functional import softmax
def predictor(m):
    return lambda batch: softmax(m.eval()(batch.astype(np.float32)), axis=1)

for name, m in models.items():
    print(name)
    display(E.shift_consistency(predictor(m), test.images, test.labels, max_shift=2, rng=0))
"""),
    code("""
curves = {name: E.per_shift_probability(predictor(m), test.images[3], int(test.labels[3]), range(-3, 4))
          for name, m in models.items()}
viz.plot_shift_curve(curves)
"""),
]

NOTEBOOKS = {"chapter.ipynb": CHAPTER, "explain_your_model.ipynb": OWN_MODEL, "shift_invariance.ipynb": SHIFT}


def build(name: str, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    path = HERE / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for name in (sys.argv[1:] or NOTEBOOKS):
        print("wrote", build(name, NOTEBOOKS[name]))
