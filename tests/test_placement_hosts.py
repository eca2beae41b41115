"""Placement from where ranks run: machine names matched to a topology's hosts.

The matching is a pure function (tested without MPI); the Communicator gathers
every rank's machine name once and places ranks with it. Tests fake the names
with COLLECTIVES_HOSTNAME, which each rank reads when its Communicator is made.
"""

import networkx as nx
import numpy as np
import pytest

import collectives as cl
from collectives.topology import leaf_spine, star
from collectives.topology.placement import match_hosts, place_by_name
from collectives.topology.slurm import parse_slurm

SLURM_CONF = """
SwitchName=leaf0 Nodes=node[01-02]
SwitchName=leaf1 Nodes=node[03-04]
SwitchName=spine Switches=leaf[0-1]
"""


# ---------------------------------------------------------------- the pure function
def test_exact_case_and_short_names():
    t = parse_slurm(SLURM_CONF)
    names = ["node03", "NODE01", "node02.cluster.example.org", "Node04.Cluster"]
    assert match_hosts(t, names) == ["node03", "node01", "node02", "node04"]


def test_fqdn_in_the_topology_matches_a_short_machine_name():
    t = star(2)
    t = cl.topology.Topology(nx.relabel_nodes(t.graph, {"h0": "h0.lab.org", "h1": "h1.lab.org"}))
    assert match_hosts(t, ["h1", "H0", "h1.lab.org"]) == ["h1.lab.org", "h0.lab.org", "h1.lab.org"]
    # two different full names are two machines, even with one short name
    with pytest.raises(cl.TopologyError, match="h1.other.org"):
        match_hosts(t, ["h0", "h1.other.org"])


def test_several_ranks_share_a_host():
    t = leaf_spine(2, 2, 1)
    p = place_by_name(t, ["h3", "h3", "h0", "h3"])
    assert p.hosts == ["h3", "h3", "h0", "h3"]
    assert p.host_index.tolist() == [3, 3, 0, 3]
    assert p.rank_groups() == [[0, 1, 3], [2]]


def test_slots_attribute_limits_ranks_per_host():
    t = star(2)
    t.graph.nodes["h1"]["slots"] = 2
    assert match_hosts(t, ["h1", "h1", "h0", "h0", "h0"]) == ["h1", "h1", "h0", "h0", "h0"]
    with pytest.raises(cl.TopologyError, match=r"3 ranks \(0, 1, 2\) run on host 'h1', which has slots=2"):
        match_hosts(t, ["h1", "h1", "h1"])


def test_unknown_machine_lists_the_hosts_that_are():
    t = leaf_spine(4, 4, 2)
    with pytest.raises(cl.TopologyError) as info:
        match_hosts(t, ["h0", "gpu17", "gpu17", "h5"])
    text = str(info.value)
    assert "'gpu17' (ranks 1, 2)" in text
    assert "h0, h1, h2, h3, h4, ... (11 more)" in text
    assert 'placement="linear"' in text
    assert isinstance(info.value, ValueError)


def test_ambiguous_short_name():
    g = nx.relabel_nodes(star(2).graph, {"h0": "n1.a.org", "h1": "n1.b.org"})
    with pytest.raises(cl.TopologyError, match="matches several hosts"):
        match_hosts(cl.topology.Topology(g), ["n1", "n1"])


def test_one_machine_that_is_no_host_falls_back_to_linear():
    t = cl.topology.fat_tree(4)
    assert match_hosts(t, ["laptop"] * 3) is None
    assert place_by_name(t, ["laptop"] * 3).hosts == ["h0", "h1", "h2"]
    # a single machine that is a host of the topology takes every rank
    assert match_hosts(t, ["h7"] * 3) == ["h7"] * 3
    # two machines, neither a host: an error, not a guess
    with pytest.raises(cl.TopologyError, match="2 machine"):
        match_hosts(t, ["laptop", "desktop"])


# ---------------------------------------------------------------- the Communicator, under mpiexec
def _fake_names(monkeypatch, names):
    from mpi4py import MPI

    monkeypatch.setenv("COLLECTIVES_HOSTNAME", names[MPI.COMM_WORLD.Get_rank()])


@pytest.mark.mpi(ranks=[2, 3])
def test_ranks_land_where_their_names_say(comm, monkeypatch):
    from mpi4py import MPI

    p = comm.size
    topo = leaf_spine(2, 2, 1)     # h0 h1 under one leaf, h2 h3 under the other
    names = [f"H{3 - r}.cluster.example.org" for r in range(p)]   # rank r on h(3-r)
    _fake_names(monkeypatch, names)
    c = cl.Communicator(MPI.COMM_WORLD, topology=topo)
    try:
        assert c.placement.hosts == [f"h{3 - r}" for r in range(p)]
        # the hierarchy follows the real hosts: ranks 0, 1 share h3/h2's leaf
        expect = [0, 0, 1][:p]
        assert c.groups.tolist() == expect
        x = np.full(5, c.rank + 1.0)
        assert np.array_equal(c.allreduce(x, algorithm="hierarchical"), np.full(5, p * (p + 1) / 2))
    finally:
        c.free()


@pytest.mark.mpi(ranks=[3])
def test_two_ranks_on_one_host(comm, monkeypatch):
    from mpi4py import MPI

    _fake_names(monkeypatch, ["h2", "h2", "h0"])
    c = cl.Communicator(MPI.COMM_WORLD, topology=star(3))
    try:
        assert c.placement.hosts == ["h2", "h2", "h0"]
        assert np.array_equal(c.allreduce(np.ones(4)), np.full(4, 3.0))
    finally:
        c.free()


@pytest.mark.mpi(ranks=[2, 3])
def test_slurm_node_name_is_used(comm, monkeypatch):
    from mpi4py import MPI

    monkeypatch.delenv("COLLECTIVES_HOSTNAME", raising=False)
    monkeypatch.setenv("SLURMD_NODENAME", f"node0{4 - MPI.COMM_WORLD.Get_rank()}")
    c = cl.Communicator(MPI.COMM_WORLD, topology=parse_slurm(SLURM_CONF))
    try:
        assert c.placement.hosts == [f"node0{4 - r}" for r in range(c.size)]
    finally:
        c.free()


@pytest.mark.mpi(ranks=[2, 3])
def test_a_machine_outside_the_topology_fails_on_every_rank(comm, monkeypatch):
    from mpi4py import MPI

    names = ["h0", "h1", "h2"][:comm.size]
    names[-1] = "gpu-node-17"
    _fake_names(monkeypatch, names)
    with pytest.raises(cl.TopologyError, match=r"'gpu-node-17' \(rank \d\).*Its hosts are h0, h1"):
        cl.Communicator(MPI.COMM_WORLD, topology="fat-tree:k=4")
    # the ranks are still in step: a plain communicator works afterwards
    assert np.array_equal(comm.allreduce(np.ones(2)), np.full(2, float(comm.size)))


@pytest.mark.mpi(ranks=[2, 3])
def test_a_topology_one_rank_cannot_load_fails_on_every_rank(comm):
    from mpi4py import MPI

    spec = "fat-tree:k=3" if comm.rank == 1 else "fat-tree:k=4"   # k must be even
    with pytest.raises(cl.TopologyError, match="rank" if comm.rank != 1 else "k"):
        cl.Communicator(MPI.COMM_WORLD, topology=spec)
    assert np.array_equal(comm.allreduce(np.ones(2)), np.full(2, float(comm.size)))


@pytest.mark.mpi(ranks=[2, 3])
def test_emulation_on_one_machine_needs_no_placement(comm, monkeypatch):
    """Every rank on one computer whose name is no host: ranks go on h0, h1, ... in order."""
    from mpi4py import MPI

    monkeypatch.delenv("COLLECTIVES_HOSTNAME", raising=False)
    monkeypatch.delenv("SLURMD_NODENAME", raising=False)
    c = cl.Communicator(MPI.COMM_WORLD, topology="fat-tree:k=4", emulate=True)
    try:
        assert c.placement.hosts == [f"h{r}" for r in range(c.size)]
        assert np.array_equal(c.allreduce(np.ones(3)), np.full(3, float(c.size)))
    finally:
        c.free()
    _fake_names(monkeypatch, ["laptop"] * comm.size)
    c = cl.Communicator(MPI.COMM_WORLD, topology="fat-tree:k=4")
    try:
        assert c.placement.hosts == [f"h{r}" for r in range(c.size)]
    finally:
        c.free()


@pytest.mark.mpi(ranks=[2])
def test_linear_placement_ignores_names(comm, monkeypatch):
    from mpi4py import MPI

    _fake_names(monkeypatch, ["h9", "h4"])
    c = cl.Communicator(MPI.COMM_WORLD, topology=star(10), placement="linear")
    try:
        assert c.placement.hosts == ["h0", "h1"]
    finally:
        c.free()
