"""The branches of a model, found from what each layer reads: the layout the explainer page and
the architecture picture share.

A *block* is a fork, the branches that start from it and the merge that joins them (a ResNet
block: the main path conv-bn-relu-conv-bn and the shortcut, identity or conv1x1-bn, joined by
an add; a SqueezeNet fire module: two expand convs joined by a concat; a squeeze-and-excitation
gate: the identity and the gate path joined by a multiply; a ``Residual``: its block and the
identity). :func:`branch_layout` turns the layers, in the walker's order, into a list of layer
numbers and :class:`Block` items, nested when a branch holds a block of its own.

Only clean blocks are grouped: every layer strictly between the fork and the merge lies on
exactly one branch, reads only its own branch (or the fork) and feeds only its own branch (or
the merge). Anything else (a DenseNet's concat chain, where later layers read earlier
branches) stays a plain list, so nothing is drawn as parallel that is not.

Example:
    >>> from convscope import nn
    >>> from convscope.nn import walk
    >>> m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0),
    ...                   nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=1), nn.ReLU())))
    >>> branch_layout(walk(m, (1, 1, 6, 6)))
    [1, Block(fork=1, branches=((2, 3), ()), merge=4)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, Union

__all__ = ["Block", "Item", "branch_layout", "predecessors"]


@dataclass(frozen=True)
class Block:
    """Branches from ``fork`` (a layer number, 0 for the input) joined by the layer ``merge``.

    ``branches`` holds one tuple of items per input of the merge, in the merge's input order;
    an empty tuple is the identity (the fork's output itself).
    """

    fork: int
    branches: tuple[tuple[Item, ...], ...]
    merge: int

    def layers(self) -> set[int]:
        """Every layer number inside the block (its branches and the merge; not the fork)."""
        out = {self.merge}
        for branch in self.branches:
            for item in branch:
                out |= item.layers() if isinstance(item, Block) else {item}
        return out


Item: TypeAlias = Union[int, "Block"]  # noqa: UP007 (a runtime alias: py310 needs Union for a forward name)


def predecessors(records: Iterable[Any]) -> dict[int, list[int]]:
    """Layer number -> the layer numbers it reads (0 = the model's input), from walk records.

    A record names its inputs (``inputs``: record names, ``"name:k"`` for output ``k`` of a
    multi-output node, anything else a model input).
    """
    by_name: dict[str, int] = {}
    preds: dict[int, list[int]] = {}
    for r in records:
        preds[r.index] = [by_name.get(str(ref).split(":")[0], 0) for ref in (r.inputs or ("input",))]
        by_name[r.name] = r.index
    return preds


def _block_at(merge: int, preds: dict[int, list[int]], ancestors: dict[int, set[int]],
              consumers: dict[int, set[int]], order: list[int]) -> tuple[int, list[set[int]]] | None:
    """``(fork, branch layer sets)`` when the layers feeding ``merge`` form a clean block, else None."""
    ins = preds.get(merge, [])
    if len(ins) < 2 or len(set(ins)) < len(ins):
        return None
    common = set.intersection(*(ancestors.get(p, {p}) for p in ins))
    fork = max(common)
    branches = [{i for i in ancestors.get(p, {p}) if i > fork} for p in ins]
    inside = set().union(*branches)
    if sum(len(b) for b in branches) != len(inside):
        return None                                   # two branches share a layer
    if inside != {i for i in order if fork < i < merge}:
        return None                                   # a layer between them is on no branch
    for branch in branches:
        for i in branch:
            if not set(preds.get(i, [])) <= branch | {fork} or not consumers.get(i, set()) <= branch | {merge}:
                return None                           # it reads or feeds another branch
    return fork, branches


def branch_layout(records: Iterable[Any]) -> list[Item]:
    """The layers of ``records`` (walk records, in order) as layer numbers and :class:`Block` s.

    Layers outside any block are listed as their numbers; a block's merge is not listed
    again after it (it is ``Block.merge``); the fork stays in the list before its block.
    """
    records = list(records)
    preds = predecessors(records)
    order = [r.index for r in records]
    ancestors: dict[int, set[int]] = {0: {0}}
    consumers: dict[int, set[int]] = {}
    for i in order:
        ancestors[i] = {i}.union(*(ancestors.get(p, {p}) for p in preds[i]))
        for p in preds[i]:
            consumers.setdefault(p, set()).add(i)
    out: list[Item] = []
    for i in order:
        found = _block_at(i, preds, ancestors, consumers, order)
        if found is None:
            out.append(i)
            continue
        fork, sets = found
        taken: list[Item] = []
        while out and _last_layer(out[-1]) > fork:
            taken.insert(0, out.pop())
        columns: list[list[Item]] = [[] for _ in sets]
        ok = True
        for item in taken:
            members = item.layers() if isinstance(item, Block) else {item}
            where = [j for j, s in enumerate(sets) if members <= s]
            if not where:
                ok = False
                break
            columns[where[0]].append(item)
        if not ok:                                    # a nested block straddles branches: keep it flat
            out.extend(taken)
            out.append(i)
            continue
        out.append(Block(fork, tuple(tuple(c) for c in columns), i))
    return out


def _last_layer(item: Item) -> int:
    return item.merge if isinstance(item, Block) else item
