"""Pictures of what a model computes: PNG figures and a self-contained HTML explainer.

* :mod:`.png` (matplotlib): :func:`plot_filters`, :func:`plot_feature_maps`,
  :func:`plot_weight_gradients`.
* :mod:`.curves` (matplotlib): :func:`plot_curves` (training history),
  :func:`plot_shift_curve` and :func:`save_shift_curve` (Concept 59).
* :mod:`.demo` (matplotlib): :func:`plot_filter_bank_demo`, :func:`save_filter_bank_demo`
  (the notes' filter-bank story, 9.1.11-9.1.12).
* :mod:`.html` (NumPy only): :func:`explain_model_html` writes one HTML file that walks an
  input through a model layer by layer; clicking any value of any layer shows how it was
  computed (the window on the previous layer, the receptive field on the input), the window
  slides on request, and the backward view shows every layer's gradient and a filter's dL/dW.
* :mod:`.serve` (Flask, the ``serve`` extra): the same explainer live on a drawing or an
  uploaded image, on 127.0.0.1 (:func:`convscope.viz.serve.serve`).
* :mod:`.activations`: :func:`forward_layers`, every layer's input and output for one sample.
* :mod:`.image`: colour maps and PNG encoding in NumPy (used by the HTML explainer).

Every drawing function writes its file and returns its path. Without matplotlib the PNG
functions raise :class:`~convscope.errors.MissingDependencyError` (install
``convscope[train]``); the HTML explainer still works.
"""

from .activations import LayerActivation, forward_layers, prepare_input
from .curves import plot_curves, plot_shift_curve, save_shift_curve
from .demo import plot_filter_bank_demo, save_filter_bank_demo
from .html import explain_model_html
from .png import plot_feature_maps, plot_filters, plot_weight_gradients

__all__ = [
    "plot_filters", "plot_feature_maps", "plot_weight_gradients",
    "plot_curves", "plot_shift_curve", "save_shift_curve",
    "plot_filter_bank_demo", "save_filter_bank_demo",
    "explain_model_html",
    "forward_layers", "prepare_input", "LayerActivation",
]
