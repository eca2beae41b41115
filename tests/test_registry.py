"""The algorithm registry: one entry per algorithm is all the rest of the library needs."""

from __future__ import annotations

import numpy as np
import pytest

import collectives as cl
from collectives import algorithms as A
from collectives import interpreter, planner
from collectives.errors import InvalidArgument
from collectives.schedule import BUF_IN, BUF_OUT, Ops, Schedule, StepGroup


def direct_allgather(nranks: int, count: int, spread: int = 1) -> Schedule:
    """Every rank sends its buffer straight to every other rank in one step.

    ``spread`` does nothing; it lets a variant change a parameter.
    """
    p = nranks

    def build(i, ranks):
        peers = np.arange(p, dtype=np.int64)
        r = np.repeat(ranks, p)
        q = np.tile(peers, len(ranks))
        other = np.where(q != r, count, 0)
        return Ops.concat([
            Ops.copy(ranks, BUF_IN, 0, BUF_OUT, ranks * count, count),
            Ops.send(r, q, BUF_IN, 0, other),
            Ops.recv(r, q, BUF_OUT, q * count, other),
        ])

    return Schedule("allgather", "direct", p, count, p * count, [StepGroup(1, build, "direct")])


def direct_variants(topology, hosts, count, params):
    yield A.Variant(params=dict(params))
    if "spread" not in params:
        yield A.Variant("spread=2", dict(params, spread=2))


@pytest.fixture
def direct():
    """A throwaway all-gather, registered for one test and removed afterwards."""
    entry = A.register(A.Algorithm("allgather", "direct", direct_allgather, frozenset(),
                                   direct_variants, "one step, p-1 messages per rank"))
    planner._CACHE.clear()
    try:
        yield entry
    finally:
        A.unregister("allgather", "direct")
        planner._CACHE.clear()


def test_a_new_algorithm_is_one_registry_entry(direct):
    assert "direct" in A.algorithm_names("allgather")
    s = A.build_schedule("allgather", "direct", 4, 3)
    xs = [np.arange(3.0) + 10 * r for r in range(4)]
    got = interpreter.run(s, xs, "sum")
    assert all(np.array_equal(g, np.concatenate(xs)) for g in got)

    plan = planner.choose("allgather", 1 << 10, "star:n=4")
    labels = {c.label: c for c in plan.candidates}
    assert labels["direct"].time > 0 and labels["direct"].executable
    assert labels["direct(spread=2)"].params == {"spread": 2}
    # the model agrees with pricing the schedule directly
    assert labels["direct"].time == pytest.approx(
        cl.model.predict("allgather", "direct", 1 << 10, "star:n=4"))
    # the Communicator's name check accepts it, in any case
    assert A.accepted_name("allgather", "Direct") == "direct"


def test_unregistered_algorithm_is_gone(direct):
    A.unregister("allgather", "direct")
    try:
        assert "direct" not in A.algorithm_names("allgather")
        with pytest.raises(InvalidArgument, match="unknown allgather algorithm 'direct'"):
            A.build_schedule("allgather", "direct", 4, 3)
    finally:
        A.register(direct)


@pytest.mark.parametrize("bad", [
    A.Algorithm("allgather", "ring", direct_allgather),          # taken
    A.Algorithm("allgather", "auto", direct_allgather),          # reserved
    A.Algorithm("allgather", "Direct", direct_allgather),        # not lower case
    A.Algorithm("gather", "direct", direct_allgather),           # no such collective
    A.Algorithm("allgather", "direct", direct_allgather, frozenset({"wings"})),
    A.Algorithm("allgather", "direct", None),
])
def test_register_refuses_bad_entries(bad):
    with pytest.raises(InvalidArgument):
        A.register(bad)
    assert A.algorithm_names("allgather") == ("ring", "rhd")


def test_entries_say_what_they_need():
    for collective in A.COLLECTIVES:
        for entry in A.algorithms(collective):
            assert entry.needs <= A.NEEDS
            assert entry.collective == collective and entry.doc
            # what an entry needs, its schedule function takes
            takes = set(entry.params)
            assert entry.needs <= takes, (collective, entry.name)
    assert all("root" in e.needs for e in A.algorithms("broadcast"))
    assert "groups" in A.get("alltoall", "hierarchical").needs


@pytest.mark.parametrize("collective", A.COLLECTIVES)
def test_one_rank_plans_an_algorithm_of_the_collective(collective):
    plan = cl.planner.choose(collective, 1024, "star:n=4", ranks=1)
    assert plan.algorithm in A.algorithm_names(collective)
    assert plan.predicted_time == 0.0
    A.build_schedule(collective, plan.algorithm, 1, 256)


def test_planner_leaves_out_variants_over_its_flow_budget(monkeypatch):
    monkeypatch.setattr(planner, "MAX_FLOWS", 10)
    plan = planner.choose("alltoall", 16 * 64, "fat-tree:k=4", cache=False)
    skipped = [c for c in plan.candidates if c.note.startswith("skipped")]
    assert skipped and all(c.algorithm == "hierarchical" and c.time is None for c in skipped)
    assert plan.algorithm != "hierarchical"


def test_fixed_parameters_are_not_varied():
    plan = planner.choose("allreduce", 1 << 20, "fat-tree:k=4", groups=4, cache=False)
    hier = [c for c in plan.candidates if c.algorithm == "hierarchical"]
    assert [c.label for c in hier] == ["hierarchical"] and hier[0].params == {"groups": 4}


def test_choose_for_a_communicator_takes_its_size():
    class FakeComm:
        size, rank, topology = 4, 0, None
        groups = np.array([0, 0, 1, 1])

    comm = FakeComm()
    plan = planner.choose("allreduce", 1 << 16, comm)
    assert plan.ranks == 4 and plan.algorithm in A.algorithm_names("allreduce")
    with pytest.raises(InvalidArgument, match="size"):
        planner.choose("allreduce", 1 << 16, comm, ranks=8)


def test_two_level_defaults_live_beside_the_two_level_model(monkeypatch):
    from collectives.model.calibrate import DEFAULT_TWO_LEVEL, two_level_model

    topo, params = two_level_model([0, 0, 1, 1])
    machines = params.pop("machines")
    assert params == {"overhead": DEFAULT_TWO_LEVEL["overhead"],
                      "reduce_bandwidth": DEFAULT_TWO_LEVEL["reduce_bandwidth"]}
    # the ranks of one node share its machine (its memory and cores)
    assert machines.tolist() == [0, 0, 1, 1]
    assert len(topo.hosts) == 4


def test_one_bus_bandwidth_factor():
    from collectives.busbw import busbw_factor

    assert busbw_factor("allreduce", 4) == pytest.approx(1.5)
    assert busbw_factor("alltoall", 4) == pytest.approx(0.75)
    assert busbw_factor("broadcast", 4) == 1.0
    assert busbw_factor("allreduce", 1) == 1.0
    with pytest.raises(InvalidArgument):
        busbw_factor("gather", 4)


def test_algorithm_with_parameters_in_its_name():
    from collectives.algorithms import parse_algorithm
    from collectives.errors import InvalidArgument

    assert parse_algorithm("allreduce", "rhd") == ("rhd", {})
    assert parse_algorithm("allreduce", "RHD(pairing=near-first)") == ("rhd", {"pairing": "near-first"})
    assert parse_algorithm("allreduce", "tree(chunk=4096)") == ("tree", {"chunk": 4096})
    with pytest.raises(InvalidArgument, match="its parameters: pairing"):
        parse_algorithm("allreduce", "rhd(paring=near-first)")
    with pytest.raises(InvalidArgument, match="takes no parameters"):
        parse_algorithm("allreduce", "mpi(x=1)")
    with pytest.raises(InvalidArgument, match="not one of far-first, near-first"):
        cl.algorithms.build_schedule("allreduce", "rhd", 4, 16, pairing="nearest")


def test_planner_prices_both_rhd_pairings_and_near_first_wins_across_dragonfly_groups():
    # ranks placed group by group: far-first sends half the buffer across global links first
    topo = cl.topology.dragonfly(a=4, p=2, h=2)
    plan = cl.planner.choose("allreduce", 16 << 20, topo)
    times = {c.label: c.time for c in plan.candidates}
    assert "rhd" in times and "rhd(pairing=near-first)" in times
    assert times["rhd(pairing=near-first)"] < times["rhd"]
