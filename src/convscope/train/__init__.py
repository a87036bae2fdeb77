"""Training (notes 9.4): the fit loop, metrics, history, callbacks and resume checkpoints.

* :func:`fit` trains a model and returns a :class:`History`; :func:`evaluate` scores it
  and :func:`predict` gives a :class:`Prediction` (probabilities and classes)
  (:mod:`.loop`, which also documents the call forms, what makes a run repeat bit for
  bit and how ``resume`` works).
* :class:`Callback`, :class:`EarlyStopping`, :class:`ModelCheckpoint`,
  :class:`LambdaCallback` (:mod:`.callbacks`).
* :func:`accuracy`, :func:`top_k_accuracy`, :func:`confusion_matrix` (:mod:`.metrics`).
* :func:`fit_torch` (``fit(..., engine="torch")``) trains the same recipe with PyTorch, on a
  GPU or over several processes, and :func:`evaluate_torch` scores with PyTorch
  (:mod:`.torch_engine`: how the batches, processes and checkpoints map).
* :func:`save_training_checkpoint` / :func:`load_training_checkpoint` (:mod:`.checkpoint`).
"""

from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from .checkpoint import TrainingCheckpoint, load_training_checkpoint, save_training_checkpoint
from .history import History
from .loop import Prediction, Run, blas_threads, evaluate, fit, predict
from .metrics import accuracy, confusion_matrix, correct_count, top_k_accuracy
from .torch_engine import evaluate_torch, fit_torch

__all__ = [
    "fit",
    "fit_torch",
    "evaluate",
    "evaluate_torch",
    "predict",
    "Prediction",
    "Run",
    "History",
    "blas_threads",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "LambdaCallback",
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "correct_count",
    "TrainingCheckpoint",
    "save_training_checkpoint",
    "load_training_checkpoint",
]
