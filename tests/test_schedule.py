"""The schedule representation: the two views agree, and the interpreter catches bad schedules."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from collectives import interpreter
from collectives.algorithms import ALGORITHMS, build_schedule
from collectives.algorithms._blocks import block_bounds, make_groups
from collectives.schedule import (BUF_IN, BUF_OUT, BUF_TMP, COPY, PROGRAM_DTYPE, RECV, RECV_REDUCE, SEND,
                                  Ops, Schedule, StepGroup)

ALL = [(c, a) for c in ALGORITHMS for a in ALGORITHMS[c]]


def _count(collective, p, c):
    return c * p if collective == "alltoall" else c


@pytest.mark.parametrize("collective,algorithm", ALL, ids=[f"{c}-{a}" for c, a in ALL])
def test_views_agree(collective, algorithm):
    """Global flows of every step group == union of the per-rank programs' sends (repetition 0)."""
    for p in range(1, 10):
        for c in (0, 1, 7, 100):
            s = build_schedule(collective, algorithm, p, _count(collective, p, c))
            flows = list(s.flows(itemsize=4))
            assert len(flows) == len(s.groups)
            for (repeat, src, dst, nbytes, red), g in zip(flows, s.groups):
                assert repeat == g.repeat >= 1
                glob = Counter(zip(src.tolist(), dst.tolist(), nbytes.tolist()))
                local, local_red = Counter(), np.zeros(p, dtype=np.int64)
                for r in range(p):
                    ops = g.build(0, np.array([r])).nonempty()
                    assert np.all(ops.rank == r)
                    snd = ops.select(ops.kind == SEND)
                    local.update(zip(snd.rank.tolist(), snd.peer.tolist(), (snd.count * 4).tolist()))
                    rr = ops.select(ops.kind == RECV_REDUCE)
                    local_red[r] = int(rr.count.sum()) * 4
                    if g.messages is not None:  # the copy-free builder has the same messages
                        m = g.messages(0, np.array([r])).nonempty()
                        nc = ops.select(ops.kind != COPY)
                        for f in ("kind", "peer", "count", "src_buf", "src_off", "dst_buf", "dst_off"):
                            assert np.array_equal(getattr(m, f), getattr(nc, f)), (g.name, f)
                assert glob == local, (collective, algorithm, p, c, g.name)
                assert np.array_equal(red, local_red)
            # the per-rank program has num_steps steps, in order
            for r in range(p):
                assert sum(1 for _ in s.steps([r])) == s.num_steps
                prog = s.program(r)
                assert prog.dtype == PROGRAM_DTYPE
                if len(prog):
                    assert np.all(np.diff(prog["step"]) >= 0)
                    assert prog["step"].max() < s.num_steps
                    assert np.all(prog["count"] > 0)


@pytest.mark.parametrize("collective,algorithm", ALL, ids=[f"{c}-{a}" for c, a in ALL])
def test_build_is_elementwise_in_ranks(collective, algorithm):
    """build(i, ranks) restricted to rank r equals build(i, [r]) in every repetition (p = 7)."""
    p = 7
    s = build_schedule(collective, algorithm, p, _count(collective, p, 13))
    for g in s.groups:
        for i in range(g.repeat):
            every = g.build(i, np.arange(p)).nonempty()
            for r in range(p):
                one = g.build(i, np.array([r])).nonempty()
                mine = every.select(every.rank == r)
                for f in ("kind", "peer", "src_buf", "src_off", "dst_buf", "dst_off", "count"):
                    assert np.array_equal(getattr(one, f), getattr(mine, f)), (g.name, i, r, f)


def test_ring_is_two_groups_and_rhd_steps():
    for p in (2, 5, 8, 31):
        s = build_schedule("allreduce", "ring", p, 1000)
        assert len(s.groups) == 2 and s.num_steps == 2 * (p - 1)
    assert build_schedule("allreduce", "rhd", 8, 100).num_steps == 6
    assert build_schedule("allreduce", "rhd", 6, 100).num_steps == 2 * 2 + 2
    assert build_schedule("alltoall", "pairwise", 6, 60).num_steps == 5
    assert len(build_schedule("alltoall", "pairwise", 6, 60).groups) == 1
    assert build_schedule("alltoall", "bruck", 6, 60).num_steps == 3 + 1
    assert build_schedule("broadcast", "binomial", 9, 10).num_steps == 4


def test_large_what_if_is_vectorised():
    """The global view at 4096 ranks is a handful of numpy calls per group."""
    import time

    t = time.perf_counter()
    for c, a in [("allreduce", "ring"), ("allreduce", "rhd"), ("allreduce", "tree"),
                 ("allreduce", "hierarchical"), ("alltoall", "pairwise"), ("alltoall", "bruck")]:
        s = build_schedule(c, a, 4096, 4096 * 16)
        total = sum(len(src) for _, src, _, _, _ in s.flows(4))
        assert total > 0
    assert time.perf_counter() - t < 10


def test_block_bounds():
    for n in (0, 1, 7, 100, 65537):
        for p in (1, 2, 3, 7, 16):
            off, size = block_bounds(n, p)
            parts = np.array_split(np.arange(n), p)
            assert size.tolist() == [len(x) for x in parts]
            assert off.tolist() == [int(x[0]) if len(x) else int(o) for x, o in zip(parts, off)]
            assert int(size.sum()) == n


def test_groups_forms():
    g = make_groups([[0, 3], [1, 2, 4]], 5)
    assert g.describe() == [[0, 3], [1, 2, 4]] and not g.consecutive
    g = make_groups(np.array([1, 1, 0, 0, 2]), 5)
    assert g.describe() == [[2, 3], [0, 1], [4]]
    assert make_groups(None, 10).describe() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert make_groups(3, 7).describe() == [[0, 1, 2], [3, 4, 5], [6]]


# ---- the interpreter refuses what the executor could not run -------------------------------------

def _sched(build, count=4, out=4, tmp=0, reduces=False):
    return Schedule("allreduce", "handmade", 2, count, out, [StepGroup(1, build)], tmp_count=tmp,
                    reduces=reduces)


def _inputs(n=4):
    return [np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64) + 10]


def test_interpreter_unmatched_send():
    s = _sched(lambda i, r: Ops.send(r, 1 - r, BUF_IN, 0, np.where(r == 0, 2, 0)))
    with pytest.raises(AssertionError, match="without a matching receive"):
        interpreter.run(s, _inputs())


def test_interpreter_unmatched_recv():
    s = _sched(lambda i, r: Ops.recv(r, 1 - r, BUF_OUT, 0, 2))
    with pytest.raises(AssertionError, match="sends nothing matching"):
        interpreter.run(s, _inputs())


def test_interpreter_count_mismatch():
    s = _sched(lambda i, r: Ops.concat([Ops.send(r, 1 - r, BUF_IN, 0, 2), Ops.recv(r, 1 - r, BUF_OUT, 0, 3)]))
    with pytest.raises(AssertionError, match="sent 2 elements, receive expects 3"):
        interpreter.run(s, _inputs())


def test_interpreter_out_of_range():
    s = _sched(lambda i, r: Ops.concat([Ops.send(r, 1 - r, BUF_IN, 3, 2), Ops.recv(r, 1 - r, BUF_OUT, 0, 2)]))
    with pytest.raises(AssertionError, match="outside the in buffer"):
        interpreter.run(s, _inputs())
    s = _sched(lambda i, r: Ops.copy(r, BUF_IN, 0, BUF_TMP, 0, 1))
    with pytest.raises(AssertionError, match="outside the tmp buffer"):
        interpreter.run(s, _inputs())


def test_interpreter_overlap():
    s = _sched(lambda i, r: Ops.concat([Ops.send(r, 1 - r, BUF_OUT, 0, 2), Ops.recv(r, 1 - r, BUF_OUT, 1, 2)]))
    with pytest.raises(AssertionError, match="overlaps a send"):
        interpreter.run(s, _inputs())
    # in place, the input and the output are one memory
    s = _sched(lambda i, r: Ops.concat([Ops.send(r, 1 - r, BUF_IN, 0, 2), Ops.recv(r, 1 - r, BUF_OUT, 1, 2)]))
    interpreter.run(s, _inputs())
    with pytest.raises(AssertionError, match="overlaps a send"):
        interpreter.run(s, _inputs(), in_place=True)
    # two plain receives into one region race; two reductions are ordered
    two = lambda kind: lambda i, r: Ops.concat([  # noqa: E731
        Ops.send(r, 1 - r, BUF_IN, 0, 2), Ops.send(r, 1 - r, BUF_IN, 2, 2),
        Ops.recv(r, 1 - r, BUF_OUT, 0, 2, reduce=kind), Ops.recv(r, 1 - r, BUF_OUT, 1, 2, reduce=kind)])
    with pytest.raises(AssertionError, match="overlap in the same step"):
        interpreter.run(_sched(two(False)), _inputs())
    interpreter.run(_sched(two(True), reduces=True), _inputs(), "sum")


def test_interpreter_tags_match_in_order():
    """k-th send a->b matches the k-th receive at b from a."""
    def build(i, r):
        return Ops.concat([
            Ops.send(r, 1 - r, BUF_IN, 0, 1), Ops.send(r, 1 - r, BUF_IN, 1, 1),
            Ops.recv(r, 1 - r, BUF_OUT, 2, 1), Ops.recv(r, 1 - r, BUF_OUT, 3, 1),
            Ops.copy(r, BUF_IN, 0, BUF_OUT, 0, 2)])
    out = interpreter.run(_sched(build), _inputs())
    assert out[0].tolist() == [0, 1, 10, 11] and out[1].tolist() == [10, 11, 0, 1]
    prog = _sched(build).program(0)
    assert prog["tag"][prog["kind"] == SEND].tolist() == [0, 1]
    assert prog["tag"][prog["kind"] == RECV].tolist() == [0, 1]
