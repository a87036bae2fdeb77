"""Metrics and History: values checked by hand, errors, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.errors import ConfigError, ShapeError
from convscope.train import History, accuracy, confusion_matrix, correct_count, top_k_accuracy
from convscope.train.metrics import class_labels, is_classification

SCORES = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
LABELS = np.array([1, 2, 2, 1])  # row 3 is a tie 0/1: the first maximum (0) counts


def test_accuracy_and_correct_count_by_hand():
    assert correct_count(SCORES, LABELS) == 2
    assert accuracy(SCORES, LABELS) == 0.5
    onehot = np.eye(3)[LABELS]
    assert accuracy(SCORES, onehot) == 0.5


def test_top_k_by_hand():
    assert top_k_accuracy(SCORES, LABELS, k=1) == 0.5
    # row 1: label 2 scores 0.2, beaten by 0.5 and 0.3 -> rank 2: only in top-3
    # row 3: label 1 ties 0.4 with class 0, which ranks first (argmax's rule) -> rank 1
    assert top_k_accuracy(SCORES, LABELS, k=2) == 0.75
    assert top_k_accuracy(SCORES, LABELS, k=3) == 1.0
    with pytest.raises(ConfigError, match="k must lie in 1..3"):
        top_k_accuracy(SCORES, LABELS, k=4)


def test_confusion_matrix_by_hand():
    m = confusion_matrix(SCORES, LABELS)
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[1, 1] = 1  # row 0
    expected[2, 0] = 1  # row 1
    expected[2, 2] = 1  # row 2
    expected[1, 0] = 1  # row 3 (tie -> 0)
    np.testing.assert_array_equal(m, expected)
    assert m.sum() == 4 and np.trace(m) == correct_count(SCORES, LABELS)


def test_metric_errors_name_the_shapes():
    with pytest.raises(ShapeError, match=r"\(N, C\)"):
        accuracy(np.zeros(4), LABELS)
    with pytest.raises(ShapeError, match="same number of samples"):
        accuracy(SCORES, LABELS[:3])
    with pytest.raises(ShapeError, match="class indices"):
        class_labels(np.array([0.5, 1.5]))
    with pytest.raises(ShapeError, match="no samples"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


def test_is_classification():
    assert is_classification(SCORES, LABELS)
    assert is_classification(SCORES, np.eye(3)[LABELS])
    assert not is_classification(SCORES[:, :1], SCORES[:, :1])
    assert not is_classification(SCORES, LABELS.astype(float))


def test_history_columns_best_and_json(tmp_path):
    h = History()
    h.append({"epoch": 1, "train_loss": np.float32(0.5), "val_loss": 0.4})
    h.append({"epoch": np.int64(2), "train_loss": 0.25})
    assert h["val_loss"] == [0.4, None]
    assert type(h.records[0]["train_loss"]) is float and type(h.records[1]["epoch"]) is int
    assert h.best("train_loss")["epoch"] == 2 and h.best("train_loss", "max")["epoch"] == 1
    with pytest.raises(KeyError, match="has no 'val_accuracy'"):
        h["val_accuracy"]
    with pytest.raises(ConfigError, match="mode"):
        h.best("train_loss", "lowest")
    h.info["stopped_early"] = False
    path = h.save(tmp_path / "history.json")
    data = json.loads(path.read_text())
    assert data["epochs"][1] == {"epoch": 2, "train_loss": 0.25} and data["info"] == {"stopped_early": False}
    assert History.load(path).records == h.records
    with pytest.raises(ConfigError, match="epochs"):
        History.from_dict({"records": []})
