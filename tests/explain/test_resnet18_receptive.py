"""The receptive field of ResNet-18's last stage, derived by hand, computed by convscope, and
seen in an input gradient."""

from __future__ import annotations

import numpy as np

from convscope import nn
from convscope.explain import receptive_field

from .resnet18 import resnet18_chain, resnet18_graph


def _main_path_windows(module):
    """(kernel, stride, padding) of every window on the longest path, in forward order - read from
    the layers' own attributes, not from convscope's walker or its receptive-field code."""
    for child in (module.block if isinstance(module, nn.Residual) else module):
        if isinstance(child, (nn.Sequential, nn.Residual)):
            yield from _main_path_windows(child)
        elif isinstance(child, (nn.Conv2d, nn.MaxPool2d)):     # padding: (before, after) per axis
            yield child.kernel_size[0], child.stride[0], child.padding[0][0]


def _last_stage(model):
    """ResNet-18 up to the output of layer4 (the 7x7 map of a 224x224 input), without the head."""
    return nn.Sequential(*list(model)[:-3])


def test_resnet18_last_stage_receptive_field_is_435_by_hand_and_by_convscope():
    model = _last_stage(resnet18_chain(width=2))
    rf, jump, start = 1, 1, 0
    for k, s, p in _main_path_windows(model):        # rf += (k-1)*jump; start -= p*jump; jump *= s
        rf, start, jump = rf + (k - 1) * jump, start - p * jump, jump * s
    assert (rf, jump, start) == (435, 32, -217)      # the known value for torchvision's ResNet-18
    got = receptive_field(model, (3, 224, 224)).rows[-1]
    assert got.out_shape == (1, 16, 7, 7)
    assert (got.rf, got.jump, got.start) == ((435, 435), (32, 32), (-217, -217))


def test_the_input_gradient_of_one_last_stage_pixel_is_nonzero_exactly_on_its_receptive_field():
    # Output pixel (0, 0) spans input rows/columns -217 .. 217, i.e. 0 .. 217 of a 224x224 image
    # (the rest is zero padding); pixel (6, 6) spans -25 .. 409, the whole image. Without ReLUs
    # the network is linear but for the max pooling (which routes each gradient to one entry of
    # its window), so with random weights the gradient reaches every row and column of the
    # field, and nothing outside it.
    model = _last_stage(resnet18_chain(width=2, relu=False, dtype=np.float64)).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224))
    y = model(x)
    dy = np.zeros_like(y)
    dy[0, :, 0, 0] = 1.0
    dx = model.backward(dy)
    rows, cols = np.nonzero(np.abs(dx[0]).sum(axis=0))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 217, 0, 217)
    box = receptive_field(model, (3, 224, 224), pixel=(0, 0)).region
    assert box == (slice(0, 218), slice(0, 218))
    assert set(rows) == set(cols) == set(range(218))
    mask = receptive_field(model, (3, 224, 224), pixel=(0, 0)).mask
    assert not np.any(np.abs(dx[0]).sum(axis=0)[~mask])      # convscope's exact region holds it


def test_the_graph_resnet18_is_torchvisions_and_its_last_stage_field_is_435():
    # the Graph form has the three 1x1 stride-2 projection shortcuts: torchvision's 11,689,512
    # parameters; its field is the largest over paths, the main path's 435 (the shortcut's is smaller)
    assert resnet18_graph().num_parameters() == 11_689_512
    model = resnet18_graph(width=2, relu=False, dtype=np.float64).eval()
    row = [r for r in receptive_field(model, (3, 224, 224)).rows if r.name == "layer4.1.add"][0]
    assert (row.rf, row.jump, row.start) == ((435, 435), (32, 32), (-217, -217))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224))
    y = model(x)
    assert y.shape == (1, 1000)
