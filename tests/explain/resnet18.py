"""ResNet-18 (He et al. 2016; torchvision's layer geometry) for the receptive-field and explainer tests.

Until graph models land this is the Sequential + Residual form: the six stride-1 BasicBlocks
are ``Residual`` (identity shortcut) and the three downsampling blocks (layer2.0, layer3.0,
layer4.0) keep their main path, conv3x3 stride 2 - BN - relu - conv3x3 - BN - relu, without
their 1x1 stride-2 projection shortcut (a Residual adds only tensors of the same shape). Every
window of the main path - the longest path, which sets the receptive field - is torchvision's.
``width`` scales the channels (64 in torchvision; the geometry does not depend on it), and
``relu=False`` leaves the ReLUs out (a linear network: its input gradient is nonzero on the
whole receptive field, generically).
"""

from __future__ import annotations

import numpy as np

from convscope import nn


def resnet18_chain(width: int = 64, num_classes: int = 1000, relu: bool = True, seed: int = 0,
                   dtype=np.float32) -> nn.Sequential:
    rng = np.random.default_rng(seed)

    def act() -> list[nn.Module]:
        return [nn.ReLU()] if relu else []

    def conv_bn(c_in: int, c_out: int, k: int, stride: int, padding: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False, rng=rng, dtype=dtype),
                nn.BatchNorm2d(c_out, dtype=dtype)]

    layers: list[nn.Module] = [*conv_bn(3, width, 7, 2, 3), *act(), nn.MaxPool2d(3, stride=2, padding=1)]
    c_in = width
    for stage in range(4):
        c_out = width * 2 ** stage
        for block in range(2):
            stride = 2 if stage and not block else 1
            body = [*conv_bn(c_in, c_out, 3, stride, 1), *act(), *conv_bn(c_out, c_out, 3, 1, 1)]
            layers += [nn.Residual(nn.Sequential(*body)) if stride == 1 and c_in == c_out else nn.Sequential(*body),
                       *act()]
            c_in = c_out
    layers += [nn.AvgPool2d(7), nn.Flatten(), nn.Linear(c_in, num_classes, rng=rng, dtype=dtype)]
    return nn.Sequential(*layers)


def resnet18_graph(width: int = 64, num_classes: int = 1000, relu: bool = True, seed: int = 0,
                   dtype=np.float32) -> nn.Graph:
    """torchvision's ResNet-18 as a Graph, node names as torchvision's modules ("layer2.0.conv1"),
    with the 1x1 stride-2 projection shortcuts ("layer2.0.downsample.0") of the downsampling blocks."""
    rng = np.random.default_rng(seed)
    g = nn.GraphBuilder()

    def conv_bn(prefix: str, conv: str, bn: str, ref: str, c_in: int, c_out: int, k: int, stride: int,
                padding: int) -> str:
        h = g.add(f"{prefix}{conv}", nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False,
                                               rng=rng, dtype=dtype), ref)
        return g.add(f"{prefix}{bn}", nn.BatchNorm2d(c_out, dtype=dtype), h)

    def act(name: str, ref: str) -> str:
        return g.add(name, nn.ReLU(), ref) if relu else ref

    h = act("relu", conv_bn("", "conv1", "bn1", g.input, 3, width, 7, 2, 3))
    h = g.add("maxpool", nn.MaxPool2d(3, stride=2, padding=1), h)
    c_in = width
    for stage in range(4):
        c_out = width * 2 ** stage
        for block in range(2):
            p = f"layer{stage + 1}.{block}."
            stride = 2 if stage and not block else 1
            y = act(f"{p}relu1", conv_bn(p, "conv1", "bn1", h, c_in, c_out, 3, stride, 1))
            y = conv_bn(p, "conv2", "bn2", y, c_out, c_out, 3, 1, 1)
            skip = h if stride == 1 else conv_bn(p, "downsample.0", "downsample.1", h, c_in, c_out, 1, stride, 0)
            h = act(f"{p}relu", g.add(f"{p}add", nn.Add(), y, skip))
            c_in = c_out
    h = g.add("avgpool", nn.AvgPool2d(7), h)
    h = g.add("flatten", nn.Flatten(), h)
    return g.build(outputs=g.add("fc", nn.Linear(c_in, num_classes, rng=rng, dtype=dtype), h))
