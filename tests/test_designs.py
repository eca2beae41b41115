"""Design builders made of scale-up domains (rail-optimized, rail-only, torus of
nodes) and multi-plane fat-trees: sizes, links, describe(), spec round trips,
bad arguments, and what the model makes of them."""

import pytest

import collectives as cl
from collectives.errors import TopologyError
from collectives.topology import (Topology, fat_tree, from_spec, rail_only, rail_optimized,
                                  scaleup_torus)

NIC = 50e9          # 400 Gb/s
SCALEUP = 450e9


def generic(t):
    """describe() of the same graph without the builder's closed forms."""
    return Topology(t.graph, t.hosts).describe()


def edges_of(t, kind):
    return [(u, v, d) for u, v, d in t.graph.edges(data=True) if d.get("kind") == kind]


# ---------------------------------------------------------------- rail-optimized
def test_rail_optimized_counts_and_wiring():
    t = rail_optimized(8, 4, nodes_per_leaf=4)
    assert len(t.hosts) == 32
    # 8 node switches, 4 rails x 2 leaves, 4 spines (one per leaf uplink)
    assert len(t.switches) == 8 + 8 + 4
    nics = edges_of(t, "nic")
    assert len(nics) == 8 * 4
    for u, v, d in nics:        # NIC r of a node goes to rail r's leaf of its unit
        node, leaf = (u, v) if u.endswith("sw") else (v, u)
        i = int(node[1:-2])
        assert t.graph.nodes[leaf]["rail"] in range(4)
        assert t.graph.nodes[leaf]["unit"] == i // 4
        assert d["bandwidth"] == NIC
    rails = {t.graph.nodes[v if u.endswith("sw") else u]["rail"]
             for u, v, _ in nics if u.startswith("n0sw") or v.startswith("n0sw")}
    assert rails == {0, 1, 2, 3}
    up = edges_of(t, "uplink")
    assert len(up) == 8 * 4                           # every leaf to every spine
    assert all(d["bandwidth"] == NIC for *_, d in up)
    su = edges_of(t, "scaleup")
    assert len(su) == 32 and all(d["bandwidth"] == SCALEUP for *_, d in su)


def test_rail_optimized_describe_matches_bfs():
    t = rail_optimized(8, 4, nodes_per_leaf=4)
    d, g = t.describe(), generic(t)
    assert d["diameter"] == g["diameter"] == 6
    assert d["hosts"] == 32 and d["groups"]["count"] == 8 and d["groups"]["level"] == "node"
    assert d["cables"] == 32 + 32 + 32
    assert d["bisection_bandwidth"] > 0
    assert len(t.host_groups("unit")) == 2


def test_rail_optimized_oversubscription_thins_uplinks():
    full = rail_optimized(8, 2, nodes_per_leaf=4)
    thin = rail_optimized(8, 2, nodes_per_leaf=4, oversubscription=2)
    cap = lambda t: sum(d["bandwidth"] for *_, d in edges_of(t, "uplink"))
    assert cap(thin) == pytest.approx(cap(full) / 2)
    # all-to-all across units crosses the spine: the thin one is slower
    n = 16 * 4096
    assert cl.model.predict("alltoall", "pairwise", n, thin) > \
        cl.model.predict("alltoall", "pairwise", n, full)


def test_rail_optimized_same_unit_stays_below_the_spine():
    t = rail_optimized(8, 2, nodes_per_leaf=4)
    path = t.paths("n0d0", "n1d0")[0]
    assert not any(p.startswith("spine") for p in path)
    assert any(p.startswith("spine") for p in t.paths("n0d0", "n7d0")[0])


# ---------------------------------------------------------------- rail-only
def test_rail_only_has_no_spine_and_crosses_rails_in_the_node():
    t = rail_only(4, 4)
    assert len(t.hosts) == 16 and len(t.switches) == 4 + 4
    assert not edges_of(t, "uplink")
    assert {t.graph.nodes[s]["tier"] for s in t.switches} == {"node", "rail"}
    d, g = t.describe(), generic(t)
    assert d["diameter"] == g["diameter"] == 4
    assert d["bisection_bandwidth"] == pytest.approx(g["bisection_bandwidth"])
    # accelerator 0 of node 0 to accelerator 3 of node 1: through the node switch onto a rail
    for p in t.paths("n0d0", "n1d3"):
        assert p[1] == "n0sw" and p[2].startswith("rail") and p[3] == "n1sw"


# ---------------------------------------------------------------- torus of nodes
@pytest.mark.parametrize("dims", [(2, 2, 2), (3, 3, 2), (4, 2, 3)])
def test_scaleup_torus(dims):
    t = scaleup_torus(dims, 4, link_bandwidth="800Gbps")
    n = dims[0] * dims[1] * dims[2]
    assert len(t.hosts) == 4 * n and len(t.switches) == n
    torus_links = edges_of(t, "torus")
    assert len(torus_links) == sum(n // k * (1 if k == 2 else k) for k in dims)
    assert all(d["bandwidth"] == 100e9 for *_, d in torus_links)
    d, g = t.describe(), generic(t)
    assert d["diameter"] == g["diameter"]
    if d["methods"]["bisection_bandwidth"].startswith("closed"):
        # the generic cut is an upper bound; the closed form is the torus's own
        assert d["bisection_bandwidth"] <= g["bisection_bandwidth"] * (1 + 1e-12)
        kmax = max(dims)
        cut = n // 2 if kmax == 2 else 2 * n // kmax
        assert d["bisection_bandwidth"] == pytest.approx(cut * 100e9)


# ---------------------------------------------------------------- multi-plane fat-tree
@pytest.mark.parametrize("k, r, planes", [(4, 1, 2), (6, 3, 3), (4, 2, 4)])
def test_multi_plane_fat_tree(k, r, planes):
    one, t = fat_tree(k, r), fat_tree(k, r, planes=planes)
    assert len(t.hosts) == len(one.hosts) == k ** 3 // 4
    assert len(t.switches) == planes * len(one.switches)
    d, d1, g = t.describe(), one.describe(), generic(t)
    assert d["bisection_bandwidth"] == pytest.approx(planes * d1["bisection_bandwidth"])
    assert d["bisection_bandwidth"] == pytest.approx(g["bisection_bandwidth"])
    assert (d["diameter"], d["mean_distance"]) == (g["diameter"], pytest.approx(g["mean_distance"]))
    assert t.injection_bandwidth() == planes * one.injection_bandwidth()
    assert len(t.host_groups()) == len(one.host_groups())
    # each host reaches every plane
    nic = next(iter(t.graph.adj["h0"]))
    assert len(t.graph.adj[nic]) == planes + 1


def test_multi_plane_fat_tree_halves_a_bandwidth_bound_time():
    n = 16 * (1 << 20)
    one = cl.model.predict("alltoall", "pairwise", n, fat_tree(4), reduce_bandwidth=float("inf"))
    two = cl.model.predict("alltoall", "pairwise", n, fat_tree(4, planes=2),
                           reduce_bandwidth=float("inf"))
    assert two < 0.6 * one


def test_single_plane_fat_tree_unchanged():
    t = fat_tree(4)
    assert "planes" not in t.params and t.name == "fat-tree:k=4"
    assert set(t.graph.adj["h0"]) == {"e0_0"}


# ---------------------------------------------------------------- specs
@pytest.mark.parametrize("spec", [
    "rail-optimized:nodes=8,g=4,leaf=4", "rail-optimized:nodes=8,g=8,leaf=4,oversubscription=2",
    "rail-optimized:nodes=4,g=2,rails=4", "rail-only:nodes=4,g=8", "rail-only:nodes=3,g=2,rails=1",
    "scaleup-torus:2x2x2,g=4", "scaleup-torus:3x2,g=1", "fat-tree:k=4,planes=2",
    "fat-tree:k=6,oversubscription=3,planes=2",
])
def test_spec_round_trip(spec):
    t = from_spec(spec)
    assert t.name == spec
    again = from_spec(t.name)
    assert (len(again.hosts), len(again.switches), again.graph.number_of_edges()) == \
        (len(t.hosts), len(t.switches), t.graph.number_of_edges())


def test_spec_options():
    t = from_spec("rail-optimized:nodes=4,accelerators=2,scaleup-bw=900GB/s,bw=800Gbps,"
                  "spines=2,leaf=4")
    assert t.params["scaleup_bandwidth"] == 900e9 and t.params["link_bandwidth"] == 100e9
    assert t.params["spines"] == 2
    t = from_spec("scaleup-torus:dims=2x2,g=2,cables=4,bw=1.6Tbps")
    assert t.params["cables_per_link"] == 4 and t.describe()["cables"] == 8 + 4 * 4
    assert from_spec("rail:nodes=2").family == "rail-optimized"


@pytest.mark.parametrize("call, match", [
    (lambda: rail_optimized(0), "nodes must be an integer >= 1"),
    (lambda: rail_optimized(8, 0), "accelerators_per_node"),
    (lambda: rail_optimized(8, 8, nodes_per_leaf=4, oversubscription=3), "valid: \\[1, 2, 4\\]"),
    (lambda: rail_optimized(8, 8, nodes_per_leaf=4, spines=3), "valid spine counts"),
    (lambda: rail_optimized(8, 8, scaleup_bandwidth="fast"), "scaleup_bandwidth"),
    (lambda: rail_only(4, rails=0), "rails must be"),
    (lambda: scaleup_torus("4xq"), "expected sizes"),
    (lambda: scaleup_torus((4, 1)), "torus dimension size"),
    (lambda: scaleup_torus((2, 2), cables_per_link=0), "cables_per_link"),
    (lambda: fat_tree(4, planes=0), "planes must be"),
    (lambda: from_spec("rail-optimized:g=8"), "needs nodes"),
    (lambda: from_spec("rail-only:nodes=4,spines=2"), "unknown option 'spines'"),
])
def test_bad_arguments(call, match):
    with pytest.raises(TopologyError, match=match):
        call()


@pytest.mark.parametrize("make", [lambda: cl.topology.torus((4, 4, 4)),
                                  lambda: cl.topology.torus((3, 4, 2)),
                                  lambda: scaleup_torus((4, 3, 2), 2)])
def test_torus_routes_by_translation_equal_pair_counting(make):
    import numpy as np

    from collectives.model.maxmin import incidence
    from collectives.model.network import Network

    t = make()
    fast, slow = Network(t), Network(t)
    assert fast.method.endswith("once per torus offset")
    slow._fast = None
    H = len(t.hosts)
    rng = np.random.default_rng(3)
    s, d = rng.integers(0, H, 300), rng.integers(0, H, 300)
    a, b = fast.route(s, d), slow.route(s, d)
    np.testing.assert_allclose(incidence(a, fast.capacity).dense(),
                               incidence(b, slow.capacity).dense(), atol=1e-12)
    np.testing.assert_allclose(a.latency, b.latency, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("make", [lambda: rail_optimized(8, 4, nodes_per_leaf=4),
                                  lambda: rail_optimized(6, 2, nodes_per_leaf=4, spines=2),
                                  lambda: rail_optimized(8, 2, rails=3, nodes_per_leaf=2,
                                                         oversubscription=2),
                                  lambda: rail_only(5, 3),
                                  lambda: rail_only(4, 2, rails=4)])
def test_rail_routes_closed_form_equal_pair_counting(make):
    import numpy as np

    from collectives.model.maxmin import incidence
    from collectives.model.network import Network

    t = make()
    fast, slow = Network(t, switch_latency=1e-7), Network(t, switch_latency=1e-7)
    assert fast.method.startswith("closed form")
    slow._fast = None
    H = len(t.hosts)
    rng = np.random.default_rng(5)
    s, d = rng.integers(0, H, 300), rng.integers(0, H, 300)
    a, b = fast.route(s, d), slow.route(s, d)
    np.testing.assert_allclose(incidence(a, fast.capacity).dense(),
                               incidence(b, slow.capacity).dense(), atol=1e-12)
    np.testing.assert_allclose(a.latency, b.latency, rtol=1e-12)
