"""Helpers shared by the schedule generators: block partitions, groups, the first copy.

Everything here is vectorised over numpy arrays of indices or ranks.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InvalidArgument
from ..schedule import BUF_IN, BUF_OUT, Ops, StepGroup

I64 = np.int64


def block_bounds(count: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, sizes)`` of ``numpy.array_split(range(count), p)``.

    The first ``count % p`` blocks hold one element more than the others.
    """
    idx = np.arange(p, dtype=I64)
    return block_off(idx, count, p), block_size(idx, count, p)


def block_off(idx, count: int, p: int) -> np.ndarray:
    """Offset of block ``idx`` (array) of the array_split partition of ``count`` into ``p``.

    ``idx`` may be ``p`` (the end of the buffer).
    """
    idx = np.asarray(idx, dtype=I64)
    base, extra = divmod(int(count), int(p))
    return idx * base + np.minimum(idx, extra)


def block_size(idx, count: int, p: int) -> np.ndarray:
    idx = np.asarray(idx, dtype=I64)
    base, extra = divmod(int(count), int(p))
    return base + (idx < extra).astype(I64)


def block_owner(k, n: int, parts: np.ndarray | int) -> np.ndarray:
    """Which part of ``array_split(range(n), parts)`` holds index ``k`` (arrays broadcast)."""
    k = np.asarray(k, dtype=I64)
    parts = np.asarray(parts, dtype=I64)
    base = n // parts
    extra = n % parts
    big = extra * (base + 1)
    small = extra + (k - big) // np.maximum(base, 1)
    return np.where(k < big, k // (base + 1), small)


def ilog2(p: int) -> int:
    """floor(log2 p) for p >= 1."""
    return int(p).bit_length() - 1


def ceil_log2(p: int) -> int:
    return (int(p) - 1).bit_length()


def with_first_copy(groups: list[StepGroup], copy: Callable[[np.ndarray], Ops]) -> list[StepGroup]:
    """Prepend ``copy(ranks)`` (the BUF_IN -> BUF_OUT copies) to the first step.

    Copies run before the step's messages, so the first step's sends already
    read the copied data. With no steps at all, one copy-only step is made.
    """
    if not groups:
        return [StepGroup(1, lambda i, ranks: copy(ranks), "copy")]
    first = groups[0]
    inner = first.build

    def build(i, ranks, _inner=inner):
        ops = _inner(i, ranks)
        return Ops.concat([copy(ranks), ops]) if i == 0 else ops

    head = StepGroup(first.repeat, build, first.name, first.messages)
    return [head] + list(groups[1:])


def copy_whole(count: int) -> Callable[[np.ndarray], Ops]:
    """``out[0:count] = in[0:count]`` on every rank."""
    return lambda ranks: Ops.copy(ranks, BUF_IN, 0, BUF_OUT, 0, count)


def split_runs(repeat: int, signature: Callable[[int], object], make: Callable[[int, int], StepGroup]
               ) -> list[StepGroup]:
    """Cut ``repeat`` steps into maximal runs of equal ``signature(i)``.

    ``make(start, length)`` returns the StepGroup for steps start..start+length-1.
    """
    out = []
    start = 0
    while start < repeat:
        sig = signature(start)
        end = start + 1
        while end < repeat and signature(end) == sig:
            end += 1
        out.append(make(start, end - start))
        start = end
    return out


# ---- groups ---------------------------------------------------------------------------------

class Groups:
    """A partition of ranks 0..p-1 into groups, as flat arrays.

    ``members`` lists the ranks group by group (``start[j]:start[j]+size[j]``);
    ``group[r]`` and ``local[r]`` are rank r's group and its index in it.
    Groups are ordered by their label (or their position in a given list);
    members keep the order they were given in (ascending for a label array).
    """

    def __init__(self, members: np.ndarray, size: np.ndarray, p: int):
        self.p = p
        self.members = members.astype(I64)
        self.size = size.astype(I64)
        self.start = np.concatenate([[0], np.cumsum(self.size)[:-1]]).astype(I64)
        self.count = len(self.size)
        self.group = np.empty(p, dtype=I64)
        self.local = np.empty(p, dtype=I64)
        gid = np.repeat(np.arange(self.count, dtype=I64), self.size)
        self.group[self.members] = gid
        self.local[self.members] = np.arange(p, dtype=I64) - self.start[gid]
        # position of each rank in `members` (the group-major order)
        self.pos = np.empty(p, dtype=I64)
        self.pos[self.members] = np.arange(p, dtype=I64)
        self.consecutive = bool(np.array_equal(self.members, np.arange(p)))

    def member(self, j, l) -> np.ndarray:
        return self.members[self.start[j] + l]

    def describe(self) -> list[list[int]]:
        return [self.members[s:s + n].tolist() for s, n in zip(self.start, self.size)]


def default_group_size(p: int) -> int:
    """Groups of consecutive ranks of ceil(sqrt(p)) (the last one may be smaller)."""
    return max(1, int(np.ceil(np.sqrt(p))))


def make_groups(groups, p: int) -> Groups:
    """Accept None, a sequence of rank lists, or an int array ``group_of_rank`` of length p."""
    if groups is None:
        g = default_group_size(p)
        labels = np.arange(p, dtype=I64) // g
        return _from_labels(labels, p)
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool):
        g = int(groups)
        if g < 1:
            raise InvalidArgument(f"groups={groups}: a group size must be at least 1")
        return _from_labels(np.arange(p, dtype=I64) // g, p)
    arr = None
    try:
        arr = np.asarray(groups)
    except Exception:  # ragged lists
        arr = None
    if arr is not None and arr.dtype != object and arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if arr.shape[0] != p:
            raise InvalidArgument(
                f"groups: an array of group labels needs one entry per rank ({p}), got {arr.shape[0]}; "
                "or pass a list of rank lists")
        return _from_labels(arr.astype(I64), p)
    try:
        lists = [np.asarray(list(g), dtype=I64).reshape(-1) for g in groups]
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"groups must be None, a group size, a list of rank lists or an int array group_of_rank; "
            f"got {groups!r} ({e})") from None
    lists = [g for g in lists if g.size]
    flat = np.concatenate(lists) if lists else np.zeros(0, dtype=I64)
    if flat.size != p or not np.array_equal(np.sort(flat), np.arange(p)):
        raise InvalidArgument(
            f"groups must partition ranks 0..{p - 1}: every rank exactly once, got {groups!r}")
    return Groups(flat, np.array([g.size for g in lists], dtype=I64), p)


def _from_labels(labels: np.ndarray, p: int) -> Groups:
    uniq, inv = np.unique(labels, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    size = np.bincount(inv, minlength=len(uniq))
    return Groups(order.astype(I64), size.astype(I64), p)


def split_off(idx, n, parts) -> np.ndarray:
    """Like :func:`block_off` with array-valued ``n`` and ``parts`` (broadcast)."""
    idx = np.asarray(idx, dtype=I64)
    n = np.asarray(n, dtype=I64)
    parts = np.maximum(np.asarray(parts, dtype=I64), 1)
    return idx * (n // parts) + np.minimum(idx, n % parts)


def topology_groups(topology, hosts, level=None) -> np.ndarray:
    """Group index of each rank: the topology's host groups at ``level`` under the placement.

    ``hosts[r]`` is rank r's host index; groups are numbered in order of their
    first rank, so group numbers follow ranks.
    """
    label = np.asarray(topology.group_index(level), dtype=I64)[np.asarray(hosts, dtype=I64)]
    _, first, inverse = np.unique(label, return_index=True, return_inverse=True)
    number = np.empty(len(first), dtype=I64)
    number[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=I64)
    return number[inverse.reshape(-1)]

