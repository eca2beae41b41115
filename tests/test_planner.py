"""The planner, the decision-table and what-if commands, and bad input."""

import json

import numpy as np
import pytest

import collectives as cl
from collectives import topology as T
from collectives.errors import CollectivesError, ModelError, TopologyFileError
from collectives.model import predict
from collectives.planner import choose


def test_choose_picks_the_fastest_and_explains():
    t = T.fat_tree(4)
    plan = choose("allreduce", 1 << 20, t)
    priced = [c for c in plan.candidates if c.time is not None and c.executable]
    assert plan.predicted_time == min(c.time for c in priced)
    assert plan.algorithm in ("ring", "tree", "rhd", "hierarchical")
    text = plan.explain()
    assert "reason:" in text and plan.label in text
    for c in priced:
        assert c.label in text


def test_small_messages_prefer_log_latency_algorithms():
    t = T.star(32)
    assert choose("allreduce", 64, t).algorithm in ("rhd", "tree")
    assert choose("alltoall", 32 * 8, t).algorithm == "bruck"


def test_hierarchical_candidates_follow_group_levels():
    plan = choose("allreduce", 1 << 20, T.fat_tree(4))
    labels = {c.label for c in plan.candidates}
    assert {"hierarchical(groups=switch)", "hierarchical(groups=pod)"} <= labels


def test_torus_ring_order_is_priced():
    plan = choose("allreduce", 1 << 16, "torus:4x4")
    labels = {c.label: c for c in plan.candidates}
    assert "ring(order=snake)" in labels
    # a snake ring only uses neighbour links: never slower than rank order
    assert labels["ring(order=snake)"].time <= labels["ring"].time


def test_plan_cache_per_size_bucket():
    t = T.star(8)
    a = choose("allreduce", 3000, t)
    b = choose("allreduce", 4000, t)
    assert a is b
    assert choose("allreduce", 5000, t) is not a


class _FakeComm:
    def __init__(self, size, groups, topology=None):
        self.size, self.rank, self.groups, self.topology = size, 0, np.asarray(groups), topology
        self.segment_bytes = 1 << 20


def test_choose_for_a_communicator_without_topology_uses_two_level_default(monkeypatch):
    monkeypatch.delenv("COLLECTIVES_PROFILE", raising=False)
    comm = _FakeComm(8, [0, 0, 0, 0, 1, 1, 1, 1])
    plan = choose("allreduce", 1 << 20, comm)
    assert plan.algorithm in ("ring", "tree", "rhd", "hierarchical")
    assert plan.predicted_time > 0
    plan = choose("alltoall", 8 * 1024, comm)
    assert plan.algorithm in ("pairwise", "bruck", "hierarchical")


class _LiveComm(_FakeComm):
    """Shaped like a live Communicator: it has an MPI communicator to run MPI's own collective."""
    def __init__(self, size, groups, emulate=False):
        super().__init__(size, groups)
        self.mpi_comm, self.emulate = object(), emulate


@pytest.mark.parametrize("collective", ["allreduce", "alltoall", "reduce_scatter", "allgather",
                                        "broadcast"])
def test_latency_bound_calls_of_a_live_communicator_go_to_mpi(monkeypatch, collective):
    monkeypatch.delenv("COLLECTIVES_PROFILE", raising=False)
    comm = _LiveComm(2, [0, 0])
    small = choose(collective, 64, comm, cache=False)
    assert small.algorithm == "mpi" and small.label == "mpi" and small.params == {}
    # the rule's own terms: the fastest schedule costs at most LATENCY_BOUND x its one-element price
    priced = choose(collective, 64, _FakeComm(2, [0, 0]), cache=False)
    floor = choose(collective, 2 * 4, _FakeComm(2, [0, 0]), cache=False)
    assert priced.predicted_time <= cl.planner.LATENCY_BOUND * floor.predicted_time
    assert small.predicted_time == priced.predicted_time
    text = small.explain()
    assert "latency-bound" in text and priced.label in text and "* mpi" in text
    # bandwidth-bound sizes keep the model's fastest schedule
    big = choose(collective, 4 << 20, comm, cache=False)
    assert big.algorithm != "mpi"
    assert big.predicted_time > cl.planner.LATENCY_BOUND * floor.predicted_time
    assert big.algorithm == choose(collective, 4 << 20, _FakeComm(2, [0, 0]), cache=False).algorithm


def test_latency_rule_threshold_moves_with_the_profile(tmp_path, monkeypatch):
    """Slower links (higher latency x bandwidth) keep more sizes latency-bound."""
    def largest_native(profile):
        path = tmp_path / "p.json"
        path.write_text(json.dumps({"format": "collectives-profile", "version": 1, **profile,
                                    "reduce_bandwidth": 8e9, "overhead": 5e-7}))
        monkeypatch.setenv("COLLECTIVES_PROFILE", str(path))
        sizes = [1 << k for k in range(3, 25)]
        picks = [choose("allreduce", n, _LiveComm(2, [0, 0]), cache=False).algorithm for n in sizes]
        assert picks[0] == "mpi" and picks[-1] != "mpi"
        return max(n for n, a in zip(sizes, picks) if a == "mpi")

    fast = largest_native({"intra": {"latency": 4e-7, "bandwidth": 1e10},
                           "inter": {"latency": 1.5e-6, "bandwidth": 1.25e10}})
    slow = largest_native({"intra": {"latency": 2e-5, "bandwidth": 1e10},
                           "inter": {"latency": 1.5e-6, "bandwidth": 1.25e10}})
    assert slow > fast


def test_emulated_links_and_topologies_never_go_to_mpi(monkeypatch):
    monkeypatch.delenv("COLLECTIVES_PROFILE", raising=False)
    # emulation holds messages to the model: the MPI library's collective would bypass it
    assert choose("allreduce", 8, _LiveComm(2, [0, 0], emulate=True), cache=False).algorithm != "mpi"
    # a bare topology or model-only communicator has no MPI library to hand the call to
    assert choose("allreduce", 8, T.star(2), cache=False).algorithm != "mpi"
    assert choose("allreduce", 8, _FakeComm(2, [0, 0]), cache=False).algorithm != "mpi"


def test_choose_for_a_communicator_with_profile(tmp_path, monkeypatch):
    prof = {"format": "collectives-profile", "version": 1,
            "intra": {"latency": 1e-6, "bandwidth": 5e9},
            "inter": {"latency": 3e-6, "bandwidth": 1e9},
            "reduce_bandwidth": 4e9, "overhead": 0.0}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prof))
    monkeypatch.setenv("COLLECTIVES_PROFILE", str(path))
    comm = _FakeComm(4, [0, 0, 1, 1])
    plan = choose("allreduce", 1 << 20, comm)
    assert plan.predicted_time > 0
    assert "two-level" in plan.topology


def test_two_level_model_reproduces_profile_constants():
    from collectives.model.calibrate import Link, Profile, two_level_topology

    prof = Profile(Link(1e-6, 5e9), Link(4e-6, 1e9), float("inf"))
    t = two_level_topology([0, 0, 1, 1], prof)
    n = 1 << 20
    # one message inside a node and one across: alpha + n / bandwidth
    from collectives.algorithms import build_schedule
    from collectives.model import HOST_TERMS_OFF, simulate

    s = build_schedule("allgather", "ring", 2, n)
    # the link constants alone: host terms (the copy of the own block) off
    intra = simulate(s, t, placement=np.array([0, 1]), itemsize=1, **HOST_TERMS_OFF).time
    inter = simulate(s, t, placement=np.array([0, 2]), itemsize=1, **HOST_TERMS_OFF).time
    assert intra == pytest.approx(1e-6 + n / 5e9)
    assert inter == pytest.approx(4e-6 + n / 1e9)


def test_fit_alpha_beta_recovers_a_line():
    from collectives.model.calibrate import fit_alpha_beta

    sizes = [8, 1024, 65536, 1 << 20]
    a, bw = fit_alpha_beta(sizes, [2e-6 + s / 3e9 for s in sizes])
    assert a == pytest.approx(2e-6, rel=1e-6) and bw == pytest.approx(3e9, rel=1e-6)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, kw", [
    (("allreduce_x", "ring", 1024), {}),
    (("allreduce", "bogus", 1024), {}),
    (("allreduce", "ring", -8), {}),
    (("allreduce", "ring", 10.5), {}),
    (("allreduce", "ring", "1024"), {}),
    (("allreduce", "ring", 1024), {"ranks": 9}),
    (("allreduce", "ring", 1024), {"overhead": -1.0}),
    (("allreduce", "ring", 1024), {"reduce_bandwidth": 0}),
    (("allreduce", "ring", 1024), {"routing": "valiant"}),
    (("allreduce", "ring", 1023), {}),
])
def test_predict_bad_input(args, kw):
    with pytest.raises(CollectivesError) as info:
        predict(*args, T.star(8), **kw)
    assert isinstance(info.value, (ValueError, TypeError))
    assert len(str(info.value)) > 20


def test_missing_and_malformed_profiles(tmp_path):
    from collectives.model.calibrate import load_profile

    with pytest.raises(TopologyFileError, match="cannot read profile"):
        load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_profile(bad)
    bad.write_text(json.dumps({"format": "collectives-profile", "intra": {"latency": 1e-6}}))
    with pytest.raises(ModelError, match="bandwidth"):
        load_profile(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelError, match="not a collectives profile"):
        load_profile(bad)


# ---------------------------------------------------------------------- CLI
def test_cli_plan_table_json_csv(tmp_path, capsys):
    from collectives.cli import main

    assert main(["plan", "--topology", "fat-tree:k=4", "--sizes", "8:1M:16"]) == 0
    out = capsys.readouterr().out
    assert "allreduce on 16 ranks of fat-tree:k=4" in out
    f = tmp_path / "t.json"
    assert main(["plan", "-t", "star:n=8", "-s", "1K,1M", "-c", "alltoall", "-f", "json",
                 "-o", str(f)]) == 0
    doc = json.loads(f.read_text())
    assert doc["collective"] == "alltoall" and doc["rules"] and len(doc["sizes"]) == 2
    assert main(["plan", "-t", "star:n=8", "-s", "1K", "-f", "csv"]) == 0
    assert capsys.readouterr().out.startswith("bytes,algorithm")


def test_cli_user_errors_exit_2(capsys):
    from collectives.cli import main

    assert main(["plan", "-t", "fat-tree:k=4", "-c", "nope"]) == 2
    assert main(["plan", "-t", "fat-tree:k=4", "--ranks", "99"]) == 2
    assert main(["whatif", "--ranks", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("collectives: error:") == 3


def test_cli_whatif_small(capsys):
    from collectives.cli import main

    assert main(["whatif", "--ranks", "16", "-t", "full-mesh,fat-tree,dragonfly", "-s", "1K,1M",
                 "-f", "csv", "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("design,collective,bytes,time")
    assert len(lines) == 1 + 3 * 2 * 2
    designs = {l.split(",")[0] for l in lines[1:]}
    assert designs == {"full-mesh:n=16", "fat-tree:k=4", "dragonfly:a=2,p=1,h=1"} or \
        len(designs) == 3


def test_bad_routing_is_one_error_not_one_per_candidate():
    from collectives.errors import CollectivesError

    with pytest.raises(CollectivesError) as info:
        cl.planner.choose("allreduce", 1 << 20, "fat-tree:k=4", routing="valient")
    text = str(info.value)
    assert text.count("valient") == 1, text
    assert "not applicable" not in text
