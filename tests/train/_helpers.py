"""Tiny models and data shared by the training tests (seconds, not minutes)."""

from __future__ import annotations

import numpy as np

from convscope import nn


def toy_images(n: int = 48, seed: int = 0, size: int = 6, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 images (1, size, size) whose class is where a bright bar sits, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 1, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, :, (c * size) // classes] += 2.0
    return x, y.astype(np.int64)


def tiny_cnn(seed: int = 0, dropout: float = 0.25, batch_norm: bool = True) -> nn.Sequential:
    """conv(-BN)-relu-pool, flatten, dropout, fc: every kind of state a run carries."""
    rng = np.random.default_rng(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1, rng=rng)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout, rng=0))
    layers.append(nn.Linear(4 * 3 * 3, 3, rng=rng))
    return nn.Sequential(*layers)


def weights(model: nn.Module) -> dict[str, np.ndarray]:
    return model.state_dict()


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert wa[key].dtype == wb[key].dtype, key
        assert np.array_equal(wa[key], wb[key]), (
            f"{key}: largest difference {np.max(np.abs(wa[key].astype(float) - wb[key].astype(float)))}"
        )


TIME_KEYS = ("seconds", "train_seconds", "images_per_second")


def without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]
