"""Saving and loading: one ``.npz`` file per model or checkpoint, no pickle, atomic writes.

``convscope.save(model, path)`` / ``convscope.load(path)`` store a whole model
(architecture spec + weights + metadata); :func:`save_checkpoint` / :func:`load_checkpoint`
store any named arrays plus a JSON header (what training uses for resume files). See
:mod:`convscope.io.npz` for the file layout and every check a load performs.
"""

from .npz import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MODEL_FORMAT,
    CheckpointNotFoundError,
    load,
    load_checkpoint,
    save,
    save_checkpoint,
)

__all__ = [
    "save",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointNotFoundError",
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "CHECKPOINT_FORMAT",
]
