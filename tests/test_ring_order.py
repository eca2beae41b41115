"""Ring all-reduce in any ring order: correct everywhere, and the planner can now run the order it prices."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import collectives as cl
from collectives import interpreter
from collectives.algorithms import build_schedule


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12).flatmap(lambda p: st.tuples(st.just(p), st.permutations(range(p)))),
       st.integers(0, 300))
def test_any_order_gives_the_sum_on_every_rank(p_perm, count):
    p, perm = p_perm
    sched = build_schedule("allreduce", "ring", p, count, order=list(perm))
    inputs = [(np.arange(count) % 7 + r).astype(np.float64) for r in range(p)]
    outs = interpreter.run(sched, inputs, "sum")
    want = np.sum(inputs, axis=0)
    for o in outs:
        assert np.array_equal(o, want)


def test_order_sets_the_neighbours():
    sched = build_schedule("allreduce", "ring", 4, 8, order=[0, 2, 1, 3])
    prog = sched.program(2)
    sends = prog[prog["kind"] == 0]
    recvs = prog[(prog["kind"] == 1) | (prog["kind"] == 2)]
    assert set(sends["peer"]) == {1} and set(recvs["peer"]) == {0}


def test_bad_order():
    with pytest.raises(cl.InvalidArgument, match="permutation of the 4 ranks"):
        build_schedule("allreduce", "ring", 4, 8, order=[0, 1, 1, 3])


def test_planner_runs_the_ring_order_it_prices():
    # ranks dealt round-robin over 4 leaves: rank order crosses the spine at every step,
    # the hierarchy order crosses it once per leaf
    topo = cl.topology.leaf_spine(4, 4, 1)
    plan = cl.planner.choose("allreduce", 64 << 20, topo, placement="round-robin")
    assert plan.algorithm == "ring" and "order" in plan.params
    by_label = {c.label: c for c in plan.candidates}
    assert by_label["ring(order=hierarchy)"].executable
    # the network part: the host terms (copies, reductions) are the same work in either order
    hier, linear = by_label["ring(order=hierarchy)"], by_label["ring"]
    assert hier.breakdown["network"] * 2 < linear.breakdown["network"]
    assert hier.time < linear.time
    # the order the planner chose builds and runs correctly
    sched = build_schedule("allreduce", "ring", 16, 1000, **plan.params)
    inputs = [np.full(1000, float(r)) for r in range(16)]
    for out in interpreter.run(sched, inputs, "sum"):
        assert np.all(out == sum(range(16)))
