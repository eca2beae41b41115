"""A reference interpreter: every rank's program, run in one process with numpy.

It follows the executor's semantics exactly, so the algorithms can be checked
without MPI:

* a step's local copies run first, in program order;
* then every send of the step reads its source (a snapshot taken after the
  copies), and every receive writes (``RECV``) or reduces (``RECV_REDUCE``:
  ``dst = dst op received``) its target, in program order;
* the k-th send from a to b in a step matches the receive at b from a with the
  same ``tag`` (the k-th one), and the counts must agree.

Anything the executor could not run safely is an ``AssertionError`` naming the
algorithm, the step and the ranks: an unmatched message, a count mismatch, an
offset outside its buffer, a write into the input buffer, or a receive whose
target overlaps a send source or another receive of the same step (only
reductions may overlap each other: the executor reduces them in program
order).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .schedule import BUF_IN, BUF_NAMES, BUF_OUT, BUF_TMP, COPY, OP_KIND_NAMES, RECV, RECV_REDUCE, SEND

_OPS = {
    "sum": np.add,
    "prod": np.multiply,
    "min": np.minimum,
    "max": np.maximum,
}


def _poison(dtype, n):
    a = np.empty(n, dtype=dtype)
    if a.dtype.kind == "f":
        a.fill(np.nan)
    elif a.dtype.kind in "iu":
        a.fill(np.iinfo(a.dtype).max // 3)
    else:
        a.fill(0)
    return a


def run(schedule, inputs, op: str = "sum", *, in_place: bool = False, programs=None):
    """Run ``schedule`` on ``inputs`` (one 1-D array per rank) and return every rank's output.

    ``op`` is one of sum, prod, min, max (only used when the schedule reduces).
    With ``in_place`` the input and output buffers are the same memory (as for
    ``comm.allreduce(x, out=x)``); broadcast is always in place. Output and
    scratch buffers start poisoned (NaN, or a large integer), so reading data
    that was never written shows up in the result.
    """
    p = schedule.nranks
    if len(inputs) != p:
        raise AssertionError(f"{schedule.algorithm}: {len(inputs)} inputs for {p} ranks")
    if schedule.reduces and op not in _OPS:
        raise AssertionError(f"unknown op {op!r}: the interpreter knows {sorted(_OPS)}")
    ufunc = _OPS.get(op)
    name = f"{schedule.collective}/{schedule.algorithm} (p={p}, count={schedule.count})"
    dtype = np.asarray(inputs[0]).dtype
    broadcast = schedule.collective == "broadcast"
    alias = in_place or broadcast
    if alias and schedule.out_count != schedule.count:
        raise AssertionError(f"{name}: in place needs out_count == count")

    def out_size(r):  # reduce_scatter: the caller's output holds only this rank's block
        if schedule.collective == "reduce_scatter":
            return len(np.array_split(np.empty(schedule.count, dtype=np.int8), p)[r])
        return schedule.out_count

    bufs = []
    for r in range(p):
        x = np.array(inputs[r], dtype=dtype, copy=True).reshape(-1)
        if x.shape[0] != schedule.count:
            raise AssertionError(f"{name}: rank {r} input has {x.shape[0]} elements, expected {schedule.count}")
        if alias:
            out = x
        else:
            out = _poison(dtype, out_size(r))
        bufs.append([x, out, _poison(dtype, schedule.tmp_count)])
    sizes_of = [{BUF_IN: schedule.count, BUF_OUT: out_size(r), BUF_TMP: schedule.tmp_count} for r in range(p)]

    if programs is None:
        programs = [schedule.program(r) for r in range(p)]
    nsteps = schedule.num_steps
    # rows of each rank, split by step
    by_step = []
    for r, prog in enumerate(programs):
        if len(prog) and (prog["step"].min() < 0 or prog["step"].max() >= nsteps):
            raise AssertionError(f"{name}: rank {r} has a step outside 0..{nsteps - 1}")
        if len(prog) and np.any(np.diff(prog["step"]) < 0):
            raise AssertionError(f"{name}: rank {r}'s program is not ordered by step")
        bounds = np.searchsorted(prog["step"], np.arange(nsteps + 1))
        by_step.append((prog, bounds))

    def region(r, step, row, which):
        buf = int(row[f"{which}_buf"])
        off = int(row[f"{which}_off"])
        n = int(row["count"])
        sizes = sizes_of[r]
        if buf not in sizes:
            raise AssertionError(f"{name}: step {step} rank {r}: bad buffer id {buf}")
        if n <= 0 or off < 0 or off + n > sizes[buf]:
            raise AssertionError(
                f"{name}: step {step} rank {r}: {OP_KIND_NAMES[int(row['kind'])]} "
                f"{BUF_NAMES[buf]}[{off}:{off + n}] is outside the {BUF_NAMES[buf]} buffer "
                f"of {sizes[buf]} elements")
        return buf, off, n

    def mem(buf):  # which memory a buffer id names (in == out when in place)
        return BUF_OUT if (alias and buf == BUF_IN) else buf

    for step in range(nsteps):
        rows = [prog[b[step]:b[step + 1]] for prog, b in by_step]
        # 1. copies, in order
        for r in range(p):
            for row in rows[r]:
                if row["kind"] != COPY:
                    continue
                sb, so, n = region(r, step, row, "src")
                db, do, _ = region(r, step, row, "dst")
                if db == BUF_IN:
                    raise AssertionError(f"{name}: step {step} rank {r}: a copy writes the input buffer")
                bufs[r][db][do:do + n] = bufs[r][sb][so:so + n]
        # 2. sends snapshot their source; check overlaps
        sent = defaultdict(dict)  # (src, dst) -> tag -> data
        for r in range(p):
            sends, recvs = [], []
            for row in rows[r]:
                kind = int(row["kind"])
                if kind == SEND:
                    sb, so, n = region(r, step, row, "src")
                    peer = int(row["peer"])
                    if not 0 <= peer < p or peer == r:
                        raise AssertionError(f"{name}: step {step} rank {r}: send to bad peer {peer}")
                    tag = int(row["tag"])
                    if tag in sent[(r, peer)]:
                        raise AssertionError(f"{name}: step {step}: two sends {r}->{peer} with tag {tag}")
                    sent[(r, peer)][tag] = bufs[r][sb][so:so + n].copy()
                    sends.append((mem(sb), so, so + n))
                elif kind in (RECV, RECV_REDUCE):
                    db, do, n = region(r, step, row, "dst")
                    if db == BUF_IN:
                        raise AssertionError(f"{name}: step {step} rank {r}: a receive writes the input buffer")
                    recvs.append((mem(db), do, do + n, kind))
                elif kind != COPY:
                    raise AssertionError(f"{name}: step {step} rank {r}: unknown op kind {kind}")
            for a, (b, lo, hi, kind) in enumerate(recvs):
                for sb, slo, shi in sends:
                    if sb == b and lo < shi and slo < hi:
                        raise AssertionError(
                            f"{name}: step {step} rank {r}: receive into {BUF_NAMES[b]}[{lo}:{hi}] overlaps "
                            f"a send from {BUF_NAMES[sb]}[{slo}:{shi}] of the same step")
                for b2, lo2, hi2, kind2 in recvs[:a]:
                    if b2 == b and lo < hi2 and lo2 < hi and not (kind == kind2 == RECV_REDUCE):
                        raise AssertionError(
                            f"{name}: step {step} rank {r}: receives into {BUF_NAMES[b]}[{lo}:{hi}] and "
                            f"[{lo2}:{hi2}] overlap in the same step")
        # 3. receives, in program order
        for r in range(p):
            for row in rows[r]:
                kind = int(row["kind"])
                if kind not in (RECV, RECV_REDUCE):
                    continue
                peer = int(row["peer"])
                tag = int(row["tag"])
                db, do, n = region(r, step, row, "dst")
                msgs = sent.get((peer, r), {})
                if tag not in msgs:
                    raise AssertionError(
                        f"{name}: step {step}: rank {r} receives {n} elements from {peer} (tag {tag}) "
                        f"but {peer} sends nothing matching")
                data = msgs.pop(tag)
                if data.shape[0] != n:
                    raise AssertionError(
                        f"{name}: step {step}: {peer}->{r} tag {tag}: sent {data.shape[0]} elements, "
                        f"receive expects {n}")
                dst = bufs[r][db][do:do + n]
                if kind == RECV:
                    dst[...] = data
                else:
                    ufunc(dst, data, out=dst)
        left = [(a, b, t) for (a, b), m in sent.items() for t in m]
        if left:
            a, b, t = left[0]
            raise AssertionError(
                f"{name}: step {step}: {len(left)} sends without a matching receive, e.g. {a}->{b} tag {t}")
    return [bufs[r][BUF_OUT] for r in range(p)]


def expected(collective: str, inputs, op: str = "sum", *, root: int = 0):
    """What each rank must hold after the collective, computed with numpy (for tests)."""
    p = len(inputs)
    xs = [np.asarray(x).reshape(-1) for x in inputs]
    if collective in ("allreduce", "reduce_scatter"):
        acc = xs[0].copy()
        for x in xs[1:]:
            _OPS[op](acc, x, out=acc)
        if collective == "allreduce":
            return [acc.copy() for _ in range(p)]
        return [b.copy() for b in np.array_split(acc, p)]
    if collective == "allgather":
        full = np.concatenate(xs)
        return [full.copy() for _ in range(p)]
    if collective == "alltoall":
        blocks = [np.split(x, p) if x.size else [x[:0]] * p for x in xs]
        return [np.concatenate([blocks[s][d] for s in range(p)]) for d in range(p)]
    if collective == "broadcast":
        return [xs[root].copy() for _ in range(p)]
    raise AssertionError(f"unknown collective {collective!r}")
