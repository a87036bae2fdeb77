"""Pictures: the notes' worked examples, a model's filters and feature maps, and the HTML explainer.

Picture functions return a :class:`Figure`: it shows inline in Jupyter, ``fig.save("w.png")``
or ``fig.save("w.svg")`` writes it (PNG at least 1600 px wide, cropped to what was drawn; SVG
is vector), ``fig.mpl`` is the matplotlib figure. The model-level functions that always took a
``path`` (``plot_filters``, ``plot_feature_maps``, ``plot_weight_gradients``, ``plot_curves``,
``plot_shift_curve``, ``plot_filter_bank_demo``) still write it and return the path when one
is given (PNG, or SVG for a ``.svg`` name); without a path they return the Figure, as a
matplotlib user expects. One colour convention everywhere: :mod:`.colors`.

* :mod:`.notes_conv`: :func:`plot_conv1d` (9.1.4), :func:`plot_conv2d` (9.8-9.13),
  :func:`plot_filter_bank` (9.11), :func:`plot_output_size` (Key Equations 48 and 54).
* :mod:`.notes_pool`: :func:`plot_pool` (9.12), :func:`plot_pool_shift` (9.2.6),
  :func:`plot_pool_derivative` (9.35).
* :mod:`.notes_jacobian`: :func:`plot_jacobian` (9.26, 9.31, 9.35), :func:`plot_chain` (9.32).
* :mod:`.architecture`: :func:`plot_architecture` (9.3) for any model.
* :mod:`.animation`: :func:`animate_conv`, :func:`animate_pool` (an :class:`Animation`: GIF or an
  HTML player).
* :mod:`.explorer`: :func:`plot_feature_pixel`, :func:`pixel_arithmetic`; :mod:`.notebook`: the
  ipywidgets playground and click-a-pixel explorer (``convscope[notebook]``).
* :mod:`.png` (matplotlib): :func:`plot_filters`, :func:`plot_feature_maps`,
  :func:`plot_weight_gradients`; :mod:`.curves`: :func:`plot_curves`, :func:`plot_shift_curve`,
  :func:`save_shift_curve`; :mod:`.demo`: :func:`plot_filter_bank_demo`, :func:`save_filter_bank_demo`.
* :mod:`.html` (NumPy only): :func:`explain_model_html` writes one HTML file that walks an input
  through a model; :func:`explain_model_page` returns it as an :class:`HTMLPage`. Clicking any
  value of any layer shows how it was computed (the window on the previous layer, the receptive
  field on the input), the window slides on request, and the backward view shows every layer's
  gradient and a filter's dL/dW.
* :mod:`.serve` (Flask, the ``serve`` extra): the same explainer live on a drawing or an
  uploaded image, on 127.0.0.1 (:func:`convscope.viz.serve.serve`).
* :mod:`.activations`: :func:`forward_layers`, every layer's input and output for one sample.
* :mod:`.image`: colour maps and PNG encoding in NumPy (used by the HTML explainer).

Every number in a picture of the notes comes from a :mod:`convscope.explain` trace. Without
matplotlib the pictures raise :class:`~convscope.errors.MissingDependencyError` (install
``convscope[train]``); the HTML explainer still works.
"""

from .activations import LayerActivation, forward_layers, prepare_input
from .animation import animate_conv, animate_pool
from .architecture import plot_architecture
from .curves import plot_curves, plot_shift_curve, save_shift_curve
from .demo import plot_filter_bank_demo, save_filter_bank_demo
from .explorer import pixel_arithmetic, plot_feature_pixel
from .figure import Animation, Figure, HTMLPage
from .html import explain_model_html, explain_model_page
from .notes_conv import plot_conv1d, plot_conv2d, plot_filter_bank, plot_output_size
from .notes_jacobian import plot_chain, plot_jacobian
from .notes_pool import plot_pool, plot_pool_derivative, plot_pool_shift
from .png import plot_feature_maps, plot_filters, plot_weight_gradients

__all__ = [
    "plot_filters", "plot_feature_maps", "plot_weight_gradients",
    "plot_curves", "plot_shift_curve", "save_shift_curve",
    "plot_filter_bank_demo", "save_filter_bank_demo",
    "explain_model_html", "explain_model_page",
    "forward_layers", "prepare_input", "LayerActivation",
    "Figure", "Animation", "HTMLPage",
    "plot_conv1d", "plot_conv2d", "plot_filter_bank", "plot_output_size",
    "plot_pool", "plot_pool_shift", "plot_pool_derivative", "plot_jacobian", "plot_chain",
    "plot_architecture", "animate_conv", "animate_pool", "plot_feature_pixel", "pixel_arithmetic",
]
