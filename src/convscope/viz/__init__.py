"""Pictures of what a model computes: PNG figures and a self-contained HTML explainer.

* :mod:`.png` (matplotlib): :func:`plot_filters`, :func:`plot_feature_maps`,
  :func:`plot_weight_gradients`, :func:`plot_curves`, :func:`plot_shift_curve`,
  :func:`plot_filter_bank_demo`.
* :mod:`.html` (no dependency beyond NumPy): :func:`explain_model_html` writes one HTML file
  that walks an input through a model layer by layer; clicking a feature-map pixel shows its
  receptive field and the window, filter and dot product behind it.
* :mod:`.activations`: :func:`forward_layers`, every layer's input and output for one sample.
* :mod:`.image`: colour maps and PNG encoding in NumPy (used by the HTML explainer).
"""

from .activations import LayerActivation, forward_layers, prepare_input
from .html import explain_model_html
from .png import (
    plot_curves,
    plot_feature_maps,
    plot_filter_bank_demo,
    plot_filters,
    plot_shift_curve,
    plot_weight_gradients,
)

__all__ = [
    "plot_filters", "plot_feature_maps", "plot_weight_gradients", "plot_curves",
    "plot_shift_curve", "plot_filter_bank_demo",
    "explain_model_html",
    "forward_layers", "prepare_input", "LayerActivation",
]
