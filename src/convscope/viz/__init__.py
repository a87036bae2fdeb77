"""Pictures of what a model computes: PNG figures and a self-contained HTML explainer.

* :mod:`.png` (matplotlib): :func:`plot_filters`, :func:`plot_feature_maps`,
  :func:`plot_weight_gradients`.
* :mod:`.curves` (matplotlib): :func:`plot_curves` (training history),
  :func:`plot_shift_curve` and :func:`save_shift_curve` (Concept 59).
* :mod:`.demo` (matplotlib): :func:`plot_filter_bank_demo`, :func:`save_filter_bank_demo`
  (the notes' filter-bank story, 9.1.11-9.1.12).
* :mod:`.html` (NumPy only): :func:`explain_model_html` writes one HTML file that walks an
  input through a model layer by layer; clicking a feature-map pixel shows its receptive
  field and the window, filter and dot product behind it.
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
from .figure import Animation, Figure, HTMLPage
from .notes_conv import plot_conv1d, plot_conv2d, plot_filter_bank, plot_output_size
from .notes_jacobian import plot_chain, plot_jacobian
from .notes_pool import plot_pool, plot_pool_derivative, plot_pool_shift
from .architecture import plot_architecture
from .animation import animate_conv, animate_pool
from .explorer import pixel_arithmetic, plot_feature_pixel

__all__ = [
    "plot_filters", "plot_feature_maps", "plot_weight_gradients",
    "plot_curves", "plot_shift_curve", "save_shift_curve",
    "plot_filter_bank_demo", "save_filter_bank_demo",
    "explain_model_html",
    "forward_layers", "prepare_input", "LayerActivation",
    "Figure", "Animation", "HTMLPage",
    "plot_conv1d", "plot_conv2d", "plot_filter_bank", "plot_output_size",
    "plot_pool", "plot_pool_shift", "plot_pool_derivative", "plot_jacobian", "plot_chain",
    "plot_architecture", "animate_conv", "animate_pool", "plot_feature_pixel", "pixel_arithmetic",
]
