"""Paired difference of shift consistency (same images, same shifts) between the two models
saved by `convscope explain shift --train-compare --out /tmp/shiftlong`."""
import numpy as np
from convscope.cli._common import load_model, normalizer
from convscope.data import load_dataset
from convscope.explain.shift import shift_images
from convscope.train import predict
test = load_dataset("cifar10", split="test", data_dir="../shared/data/cifar-10", download=False)
images, labels = test.images, test.labels
res = {}
for name in ("maxpool", "blurpool"):
    model, meta = load_model(f"/tmp/shiftlong/{name}.npz")
    norm = normalizer(meta)
    for mode in ("crop", "circular"):
        gen = np.random.default_rng(0)
        n = len(images)
        s1 = gen.integers(-4, 5, size=(n, 2)); s2 = gen.integers(-4, 5, size=(n, 2))
        p1 = predict(model, shift_images(images, s1, mode), transform=norm).argmax(1)
        p2 = predict(model, shift_images(images, s2, mode), transform=norm).argmax(1)
        res[(name, mode)] = (p1 == p2)
        print(name, mode, f"{100 * np.mean(p1 == p2):.2f}%", flush=True)
for mode in ("crop", "circular"):
    a, b = res[("maxpool", mode)].astype(float), res[("blurpool", mode)].astype(float)
    d = b - a
    se = d.std(ddof=1) / np.sqrt(len(d))
    print(f"{mode}: {100*a.mean():.2f}% -> {100*b.mean():.2f}%, paired difference {100*d.mean():+.2f} points, "
          f"95% interval +-{196*se:.2f}; images consistent only with BlurPool {int((d>0).sum())}, only without {int((d<0).sum())}")
