"""Schedules: the one thing an algorithm produces.

An algorithm describes a collective as a list of :class:`StepGroup`. A step
group is ``repeat`` steps that share one communication pattern (all 2(p-1)
steps of a ring are one group). Its ``build(i, ranks)`` function is written
once, vectorised over an array of ranks, and returns the :class:`Ops` those
ranks perform in repetition ``i``. From that single definition come both views
of the design:

* per rank (:meth:`Schedule.program`): call ``build(i, [r])`` for every step;
  O(steps) and what the executor runs;
* global (:meth:`Schedule.flows`): call ``build(0, arange(p))`` once per group;
  the (src, dst, bytes) arrays the model prices, with the repeat count.

Semantics of one step, for every rank: first the step's local copies run in
order, then all its sends and receives run concurrently; the next step starts
when they are all done. A send reads ``count`` elements of ``src_buf`` at
``src_off``. A receive writes ``dst_buf`` at ``dst_off`` (``RECV``) or reduces
into it with the collective's op (``RECV_REDUCE``: dst = dst op received).
Offsets and counts are in elements. Buffers are the user's input (``BUF_IN``,
read only), the output (``BUF_OUT``) and a scratch buffer of
``Schedule.tmp_count`` elements (``BUF_TMP``).

Within a step, the k-th send from a to b matches the k-th receive at b from a
(both sides list their ops to one peer in the same order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from . import _constants as _c

# the executor's codes (csrc/executor.h, through the compiled _constants)
SEND, RECV, RECV_REDUCE, COPY = _c.OP_SEND, _c.OP_RECV, _c.OP_RECV_REDUCE, _c.OP_COPY
BUF_IN, BUF_OUT, BUF_TMP = _c.BUF_IN, _c.BUF_OUT, _c.BUF_TMP

OP_KIND_NAMES = {SEND: "send", RECV: "recv", RECV_REDUCE: "recv_reduce", COPY: "copy"}
BUF_NAMES = {BUF_IN: "in", BUF_OUT: "out", BUF_TMP: "tmp"}

_FIELDS = ("rank", "kind", "peer", "src_buf", "src_off", "dst_buf", "dst_off", "count")

#: dtype of the per-rank program the executor consumes (one row per op).
PROGRAM_DTYPE = np.dtype([
    ("step", np.int64), ("kind", np.int64), ("peer", np.int64), ("tag", np.int64),
    ("src_buf", np.int64), ("src_off", np.int64),
    ("dst_buf", np.int64), ("dst_off", np.int64), ("count", np.int64),
])


@dataclass
class Ops:
    """A struct of arrays: one entry per operation, any number per rank.

    Unused fields are -1 (``peer`` of a copy, ``src_*`` of a receive,
    ``dst_*`` of a send).
    """

    rank: np.ndarray
    kind: np.ndarray
    peer: np.ndarray
    src_buf: np.ndarray
    src_off: np.ndarray
    dst_buf: np.ndarray
    dst_off: np.ndarray
    count: np.ndarray

    def __post_init__(self):
        n = None
        for name in _FIELDS:
            arr = np.asarray(getattr(self, name), dtype=np.int64)
            arr = np.atleast_1d(arr)
            if n is None:
                n = arr.shape[0]
            setattr(self, name, arr)
        n = max(getattr(self, f).shape[0] for f in _FIELDS)
        for name in _FIELDS:
            arr = getattr(self, name)
            if arr.shape[0] != n:
                arr = np.broadcast_to(arr, (n,)).copy()
                setattr(self, name, arr)

    def __len__(self) -> int:
        return int(self.rank.shape[0])

    @staticmethod
    def empty() -> "Ops":
        z = np.zeros(0, dtype=np.int64)
        return Ops(z, z, z, z, z, z, z, z)

    @staticmethod
    def send(rank, peer, buf, off, count) -> "Ops":
        """Sends of ``count`` elements at ``buf[off]`` from ``rank`` to ``peer`` (arrays broadcast)."""
        rank, peer, buf, off, count = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.int64))
                                                           for a in (rank, peer, buf, off, count)))
        m1 = np.full(rank.shape, -1, dtype=np.int64)
        return Ops(rank, np.full(rank.shape, SEND), peer, buf, off, m1, m1, count)

    @staticmethod
    def recv(rank, peer, buf, off, count, reduce: bool = False) -> "Ops":
        """Receives into ``buf[off]`` (reducing into it when ``reduce``)."""
        rank, peer, buf, off, count = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.int64))
                                                           for a in (rank, peer, buf, off, count)))
        m1 = np.full(rank.shape, -1, dtype=np.int64)
        kind = np.full(rank.shape, RECV_REDUCE if reduce else RECV)
        return Ops(rank, kind, peer, m1, m1, buf, off, count)

    @staticmethod
    def copy(rank, src_buf, src_off, dst_buf, dst_off, count) -> "Ops":
        """Local copies ``dst_buf[dst_off:+count] = src_buf[src_off:+count]``."""
        arrs = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.int64))
                                     for a in (rank, src_buf, src_off, dst_buf, dst_off, count)))
        rank, src_buf, src_off, dst_buf, dst_off, count = arrs
        m1 = np.full(rank.shape, -1, dtype=np.int64)
        return Ops(rank, np.full(rank.shape, COPY), m1, src_buf, src_off, dst_buf, dst_off, count)

    @staticmethod
    def concat(parts: Sequence["Ops"]) -> "Ops":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Ops.empty()
        return Ops(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def select(self, mask) -> "Ops":
        return Ops(*(getattr(self, f)[mask] for f in _FIELDS))

    def nonempty(self) -> "Ops":
        """Drop operations of zero elements (they move nothing)."""
        return self.select(self.count > 0)


@dataclass
class StepGroup:
    """``repeat`` consecutive steps with one communication pattern.

    ``build(i, ranks)`` returns the ops of ``ranks`` (an int64 array) in
    repetition ``i`` (0 <= i < repeat). It must depend on ``ranks`` only
    element-wise, so that ``build(i, [r])`` is rank r's share of
    ``build(i, arange(p))``.
    """

    repeat: int
    build: Callable[[int, np.ndarray], Ops]
    name: str = ""
    #: optional: ``build`` without the local copies (same sends and receives, same
    #: order). :meth:`Schedule.flows` uses it when given, so that a group whose
    #: copies are O(p) per rank (Bruck's rotations, hierarchical packing) stays
    #: cheap to price at large p.
    messages: Callable[[int, np.ndarray], Ops] | None = None
    #: optional: the elements each of ``ranks`` copies locally in repetition ``i`` (the sum of
    #: ``build``'s COPY rows per rank), without building them: the model prices a group's
    #: copies from it in O(p) where building them is O(p) per rank.
    copies: Callable[[int, np.ndarray], np.ndarray] | None = None

    def flows(self, i: int, nranks: int, itemsize: int = 1):
        """Every message of repetition ``i``, all ranks at once: ``(src, dst, nbytes, reduce_bytes)``.

        ``src``/``dst``/``nbytes`` are int64 arrays, one entry per message of
        a non-zero size; ``reduce_bytes[r]`` is how many bytes rank r reduces.
        """
        ops = (self.messages or self.build)(i, np.arange(nranks, dtype=np.int64)).nonempty()
        sends = ops.select(ops.kind == SEND)
        red = ops.select(ops.kind == RECV_REDUCE)
        reduce_bytes = np.bincount(red.rank, weights=red.count * itemsize,
                                   minlength=nranks).astype(np.int64)
        return sends.rank, sends.peer, sends.count * itemsize, reduce_bytes


@dataclass
class Schedule:
    """An algorithm's whole description of one collective call shape.

    ``count`` is the number of elements of each rank's input buffer;
    ``out_count`` of its output buffer; ``tmp_count`` of the scratch buffer.
    ``reduces`` says whether receives reduce with the call's op.
    """

    collective: str
    algorithm: str
    nranks: int
    count: int
    out_count: int
    groups: list[StepGroup]
    tmp_count: int = 0
    reduces: bool = False
    params: dict = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return sum(g.repeat for g in self.groups)

    def steps(self, ranks) -> Iterator[Ops]:
        """Every step's ops of ``ranks``, in order (one Ops per step)."""
        ranks = np.atleast_1d(np.asarray(ranks, dtype=np.int64))
        for g in self.groups:
            for i in range(g.repeat):
                yield g.build(i, ranks)

    def program(self, rank: int) -> np.ndarray:
        """Rank ``rank``'s program as a :data:`PROGRAM_DTYPE` array, ordered by step.

        Zero-count ops are dropped; tags number the ops between one pair of
        ranks in one step, so matching does not depend on posting order.
        """
        rows = []
        r = np.array([rank], dtype=np.int64)
        step = 0
        for g in self.groups:
            for i in range(g.repeat):
                ops = g.build(i, r).nonempty()
                if len(ops):
                    if np.any(ops.rank != rank):
                        raise AssertionError(f"{self.algorithm}: build returned ops of other ranks")
                    rows.append((step, ops))
                step += 1
        if not rows:
            return np.zeros(0, dtype=PROGRAM_DTYPE)
        total = sum(len(o) for _, o in rows)
        prog = np.zeros(total, dtype=PROGRAM_DTYPE)
        pos = 0
        for step, ops in rows:
            n = len(ops)
            sl = prog[pos:pos + n]
            sl["step"] = step
            for f in _FIELDS[1:]:
                sl[f] = getattr(ops, f)
            # tag = ordinal of this op among same-direction ops with the same peer in this step
            tags = np.zeros(n, dtype=np.int64)
            seen: dict = {}
            for j in range(n):
                k = int(ops.kind[j])
                if k == COPY:
                    continue
                key = (k == SEND, int(ops.peer[j]))
                tags[j] = seen.get(key, 0)
                seen[key] = tags[j] + 1
            sl["tag"] = tags
            pos += n
        return prog

    def flows(self, itemsize: int = 1) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The global view: per step group, ``(repeat, src, dst, nbytes, reduce_bytes)``.

        ``src``/``dst``/``nbytes`` describe every message of repetition 0 of
        the group (the pattern all its repetitions share); ``reduce_bytes[r]``
        is how many bytes rank r reduces in that step. The model prices other
        repetitions with :meth:`StepGroup.flows`.
        """
        for g in self.groups:
            yield (g.repeat, *g.flows(0, self.nranks, itemsize))

    def describe(self) -> str:
        return (f"{self.collective}/{self.algorithm}: {self.nranks} ranks, {self.count} elements, "
                f"{self.num_steps} steps in {len(self.groups)} groups")
