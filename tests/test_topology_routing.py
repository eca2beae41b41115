"""Routing (ECMP, dragonfly minimal and Valiant) and placement."""

import math

import numpy as np
import pytest

from collectives.errors import TopologyError, TopologyFileError
from collectives.topology import (dragonfly, fat_tree, full_mesh, hypercube, leaf_spine,
                                  multi_node, place, star, torus)
from collectives.topology.routing import Router


@pytest.mark.parametrize("k", [4, 6, 8])
def test_fat_tree_ecmp_path_counts(k):
    t = fat_tree(k)
    r = t.router()
    half = k // 2
    other_pod = t.hosts[-1]
    same_pod = f"h{half}"                  # second edge switch of pod 0
    assert r.num_paths("h0", other_pod) == half ** 2
    paths = r.paths("h0", other_pod)
    assert len(paths) == half ** 2 and len({tuple(p) for p in paths}) == half ** 2
    assert all(len(p) == 7 for p in paths)             # 6 hops
    assert r.num_paths("h0", same_pod) == half
    assert r.paths("h0", "h1") == [["h0", "e0_0", "h1"]]
    ids, frac = r.link_fractions("h0", other_pod)
    assert frac.sum() == pytest.approx(6.0)            # every path crosses 6 links
    tab = t.links
    core = [f for l, f in zip(ids, frac)
            if t.nodes[tab.src[l]].startswith("c") or t.nodes[tab.dst[l]].startswith("c")]
    assert len(core) == 2 * half ** 2 and all(f == pytest.approx(1 / half ** 2) for f in core)


def test_link_paths_are_directed_link_ids_with_weights():
    t = fat_tree(4)
    r = t.router()
    paths, w = r.link_paths("h0", "h15")
    assert w.sum() == pytest.approx(1.0) and len(paths) == 4
    tab = t.links
    for p in paths:
        assert t.nodes[tab.src[p[0]]] == "h0" and t.nodes[tab.dst[p[-1]]] == "h15"
        assert all(tab.dst[a] == tab.src[b] for a, b in zip(p, p[1:]))
        assert np.all(tab.bandwidth[p] == 12.5e9)
    assert r.latency("h0", "h15") == pytest.approx(6 * 500e-9)
    assert r.hops("h0", "h15") == 6


def test_torus_paths_without_enumeration():
    t = torus((4, 4))
    r = t.router()
    # (0,0) -> (2,2): 2 hops each way in each ring: C(4,2) orders x 2 x 2 directions
    assert r.num_paths("h0", "h10") == 24
    assert len(r.paths("h0", "h10")) == 24
    big = torus((16, 16, 16))
    rb = big.router()
    far = "h" + str(8 * 256 + 8 * 16 + 8)
    n = rb.num_paths("h0", far)
    assert n == math.factorial(24) // math.factorial(8) ** 3 * 8
    with pytest.raises(TopologyError, match="link_fractions"):
        rb.paths("h0", far)
    ids, frac = rb.link_fractions("h0", far)
    assert frac.sum() == pytest.approx(24.0)
    out = frac[big.links.src[ids] == 0].sum()
    assert out == pytest.approx(1.0)                   # all of the flow leaves h0


def test_hypercube_and_mesh_routes():
    r = hypercube(4).router()
    assert r.num_paths("h0", "h15") == math.factorial(4)
    assert full_mesh(6).router().paths("h0", "h5") == [["h0", "h5"]]


def test_dragonfly_minimal_and_valiant():
    t = dragonfly(4, 2, 2)
    g = 9
    mini = t.router()                       # the dragonfly default
    assert mini.mode == "minimal"
    val = t.router("valiant")
    kinds = t.graph.edges
    for dst in ("h9", "h40", "h71"):
        for path in mini.paths("h0", dst):
            glob = sum(1 for a, b in zip(path, path[1:]) if kinds[a, b]["kind"] == "global")
            assert glob == (1 if t.graph.nodes[dst]["group"] else 0)
            assert len(path) - 1 <= 5
    routes = val.routes("h0", "h71")
    assert sum(w for _, w in routes) == pytest.approx(1.0)
    inter = set()
    for path, _ in routes:
        glob = [(a, b) for a, b in zip(path, path[1:]) if kinds[a, b]["kind"] == "global"]
        assert len(glob) == 2
        inter.add(t.graph.nodes[glob[0][1]]["group"])
    assert len(inter) == g - 2
    assert val.paths("h0", "h3") == mini.paths("h0", "h3")      # inside a group: minimal
    ids, frac = val.link_fractions("h0", "h71")
    assert frac.max() == pytest.approx(1.0)
    with pytest.raises(TopologyError, match="dragonfly"):
        fat_tree(4).router("valiant")
    with pytest.raises(TopologyError, match="unknown routing"):
        fat_tree(4).router("adaptive")


def test_routing_is_lazy_at_16k_hosts():
    t = dragonfly(16, 8, 8)
    assert len(t.hosts) == 16512
    r = Router(t, "ecmp", source_cache=4, cache_size=16)
    for dst in ("h100", "h5000", "h9000", "h16511", "h8000", "h12000"):
        assert r.hops("h0", dst) <= 5
    assert len(r._dist) <= 1 and len(r._pairs) <= 16      # one source switch, a few pairs
    m = t.router()
    assert len(m.paths("h0", "h16511")) == 1


def test_unknown_hosts():
    r = star(4).router()
    with pytest.raises(TopologyError, match="'sw0' is not a host"):
        r.paths("sw0", "h1")
    with pytest.raises(TopologyError, match="not a host"):
        r.paths("h0", "zz")


def test_multi_node_routes_through_nics():
    t = multi_node(2, 4)
    r = t.router()
    assert r.paths("n0d0", "n0d3") == [["n0d0", "n0sw", "n0d3"]]
    assert r.paths("n0d0", "n1d0") == [["n0d0", "n0sw", "n0nic0", "sw0", "n1nic0", "n1sw", "n1d0"]]


# ---------------------------------------------------------------- placement
def test_placement_strategies():
    t = fat_tree(4)
    lin = place(t, 8)
    assert lin.hosts == [f"h{i}" for i in range(8)]
    assert lin.rank_groups() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    rr = t.place(8, "round-robin")
    assert rr.hosts == [f"h{2 * i}" for i in range(8)]            # one per edge switch
    assert rr.rank_groups() == [[i] for i in range(8)]
    pod = t.place(4, "round-robin", level="pod")
    assert [t.graph.nodes[h]["pod"] for h in pod] == [0, 1, 2, 3]
    a, b, c = t.place(10, "random", seed=1), t.place(10, "random", seed=1), t.place(10, "random", seed=2)
    assert a.hosts == b.hosts != c.hosts and len(set(a.hosts)) == 10
    assert t.place(None).nranks == 16
    slots = t.place(6, "linear", slots=2)
    assert slots.hosts == ["h0", "h0", "h1", "h1", "h2", "h2"]
    explicit = t.place(None, ["h5", "h3", "h3"])
    assert explicit.host_index.tolist() == [5, 3, 3]
    assert explicit.group_index().tolist() == [2, 1, 1]


def test_placement_errors():
    t = star(4)
    with pytest.raises(TopologyError, match="5 ranks do not fit"):
        t.place(5)
    with pytest.raises(TopologyError, match="unknown host 'h9'"):
        t.place(None, ["h0", "h9"])
    with pytest.raises(TopologyError, match="unknown placement"):
        t.place(2, "spread")
    with pytest.raises(TopologyError):
        t.place(0)


def test_hostfile(tmp_path):
    t = leaf_spine(2, 4, 1)
    hf = tmp_path / "hosts"
    hf.write_text("# my job\nh4 slots=2\nh0:3\n\nh1   # trailing comment\n")
    p = t.place(None, str(hf))
    assert p.hosts == ["h4", "h4", "h0", "h0", "h0", "h1"]
    assert t.place(4, hf).hosts == ["h4", "h4", "h0", "h0"]
    hf.write_text("h0\nnode17 slots=4\n")
    with pytest.raises(TopologyError, match=r"hosts:2: unknown host 'node17'"):
        t.place(None, str(hf))
    hf.write_text("h0 slots=zero\n")
    with pytest.raises(TopologyError, match=r"hosts:1: bad slot count"):
        t.place(None, str(hf))
    with pytest.raises(TopologyFileError):
        t.place(None, str(tmp_path / "nope" / "hosts"))


# ---------------------------------------------------------------- flow conservation (property)
from hypothesis import given, settings, strategies as st  # noqa: E402

_NETS = {"fat-tree": fat_tree(4), "torus": torus((4, 3)), "dragonfly": dragonfly(2, 2, 2),
         "multi-node": multi_node(3, 2, intra="mesh", inter="leaf-spine:leaves=3,hosts=1,spines=2"),
         "hypercube": hypercube(3)}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(_NETS)), st.sampled_from(["default", "ecmp", "valiant"]),
       st.integers(0, 10 ** 6), st.integers(0, 10 ** 6))
def test_link_fractions_conserve_flow(name, mode, i, j):
    t = _NETS[name]
    if mode == "valiant" and name != "dragonfly":
        return
    r = t.router(None if mode == "default" else mode)
    a, b = t.hosts[i % len(t.hosts)], t.hosts[j % len(t.hosts)]
    ids, frac = r.link_fractions(a, b)
    assert len(np.unique(ids)) == len(ids)
    assert np.all(frac > 0) and np.all(frac <= 1 + 1e-12)
    net = np.zeros(len(t.nodes))
    np.add.at(net, t.links.src[ids], -frac)
    np.add.at(net, t.links.dst[ids], frac)
    expect = np.zeros(len(t.nodes))
    if a != b:
        expect[t.node_index[a]] = -1
        expect[t.node_index[b]] = 1
    assert np.allclose(net, expect)
    # the enumerated paths give the same per-link shares
    paths, w = r.link_paths(a, b)
    acc = {}
    for p, x in zip(paths, w):
        for l in p.tolist():
            acc[l] = acc.get(l, 0.0) + x
    assert set(acc) == set(ids.tolist())
    assert np.allclose([acc[l] for l in ids.tolist()], frac)


def test_incidence_many_pairs():
    t = fat_tree(4)
    r = t.router()
    flow, link, frac = r.incidence([0, 0, 3, 5], [15, 1, 3, 4])
    assert set(flow.tolist()) == {0, 1, 3}
    assert np.isclose(frac[flow == 0].sum(), 6.0) and np.isclose(frac[flow == 1].sum(), 2.0)
    ids, f = r.link_fractions("h0", "h15")
    assert np.array_equal(link[flow == 0], ids)
    with pytest.raises(TopologyError):
        r.incidence([0], [16])
