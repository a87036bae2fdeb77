"""A short run on real MNIST (the staged files): LeNet learns to >= 0.9 on 2,000 test images.

5,000 training images (a fixed random subset), 2 epochs, one BLAS thread: a few seconds.
Measured when written: 0.925 test accuracy (seed 0). Skips where the staged data is absent.
"""

from __future__ import annotations

import numpy as np

from convscope import nn, optim
from convscope.data import Normalize, load_dataset
from convscope.models import build_model
from convscope.train import evaluate, fit


def test_lenet_learns_real_mnist_digits(shared_data):
    folder = shared_data / "mnist"
    train = load_dataset("mnist", data_dir=folder, split="train")
    test = load_dataset("mnist", data_dir=folder, split="test")
    train = train.subset(np.random.default_rng(0).permutation(len(train))[:5000])
    test = test.subset(np.arange(2000))
    norm = Normalize(*train.channel_stats())
    model = build_model("lenet", seed=0)
    opt = optim.Adam(model.named_parameters(), lr=2e-3)
    history = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=2, batch_size=64, seed=0,
                  transform=norm, progress=False, threads=1)
    scores = evaluate(model, nn.CrossEntropyLoss(), test, transform=norm)
    assert history["train_loss"][1] < history["train_loss"][0]
    assert scores["samples"] == 2000
    assert scores["accuracy"] >= 0.9, scores
