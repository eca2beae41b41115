"""Builders: sizes, link counts, diameters and bisection bandwidths against the
published formulas, and closed forms against brute force on small instances."""

import itertools
import math

import pytest

from collectives.errors import TopologyError
from collectives.topology import (Topology, dragonfly, fat_tree, full_mesh, hypercube, leaf_spine,
                                  multi_node, ring, star, torus)

BW = 12.5e9


def generic(t):
    """The same graph without the builder's closed forms: BFS / cut methods."""
    return Topology(t.graph, t.hosts).describe()


def brute_bisection(t):
    """Exact bisection: every balanced host split, every switch assignment."""
    G = t.graph
    hosts, fabric = t.hosts, [n for n in G if G.nodes[n]["kind"] != "host"]
    H = len(hosts)
    best = math.inf
    for a in itertools.combinations(hosts, H // 2):
        side = dict.fromkeys(hosts, False)
        side.update(dict.fromkeys(a, True))
        for bits in itertools.product((False, True), repeat=len(fabric)):
            side.update(zip(fabric, bits))
            cut = sum(d["bandwidth"] for u, v, d in G.edges(data=True) if side[u] != side[v])
            best = min(best, cut)
    return best


# ---------------------------------------------------------------- fat-tree
@pytest.mark.parametrize("k", [2, 4, 6, 8, 10, 12])
def test_fat_tree_al_fares_formulas(k):
    t = fat_tree(k)
    d = t.describe()
    assert d["hosts"] == k ** 3 // 4
    assert d["switches"] == 5 * k * k // 4
    assert d["links"] == 3 * k ** 3 // 4            # host, edge-agg and agg-core levels
    assert d["diameter"] == 6
    assert d["bisection_bandwidth"] == pytest.approx(k ** 3 / 8 * BW)
    assert d["bisection_ratio"] == pytest.approx(1.0)
    assert d["radix"] == k and d["ports_per_switch"] == {"min": k, "max": k}
    assert len(t.host_groups()) == k * k // 2           # one group per edge switch
    assert len(t.host_groups("pod")) == k


@pytest.mark.parametrize("k", [4, 6])
def test_fat_tree_closed_forms_match_bfs(k):
    t = fat_tree(k)
    d, g = t.describe(), generic(t)
    assert d["diameter"] == g["diameter"]
    assert d["mean_distance"] == pytest.approx(g["mean_distance"])


@pytest.mark.parametrize("k, r", [(8, 2), (8, 4), (12, 3), (12, 2)])
def test_fat_tree_oversubscription(k, r):
    t = fat_tree(k, oversubscription=r)
    d = t.describe()
    u = k // 2 // r
    assert d["hosts"] == k ** 3 // 4
    assert d["switches"] == k * k // 2 + k * u + u * k // 2
    assert d["bisection_bandwidth"] == pytest.approx(k ** 3 / (8 * r) * BW)
    assert d["bisection_ratio"] == pytest.approx(1 / r)
    edge = "e0_0"
    assert sum(1 for n in t.graph.adj[edge] if t.graph.nodes[n]["kind"] == "switch") == u


def test_fat_tree_bad_input():
    for k in (3, 7, 0, -4, 2.5, "8"):
        with pytest.raises(TopologyError):
            fat_tree(k)
    with pytest.raises(TopologyError, match="k must be even"):
        fat_tree(7)
    with pytest.raises(TopologyError, match=r"valid: \[1, 2, 4\]"):
        fat_tree(8, oversubscription=3)


def test_small_closed_forms_are_exact():
    for t in (fat_tree(2), star(5), leaf_spine(2, 2, 2), leaf_spine(2, 3, 1),
              hypercube(3), torus((4, 2)), ring(6), full_mesh(5), leaf_spine(1, 4, 2)):
        assert t.describe()["bisection_bandwidth"] == pytest.approx(brute_bisection(t)), t.name


# ---------------------------------------------------------------- dragonfly
@pytest.mark.parametrize("a, p, h", [(2, 1, 1), (4, 2, 2), (6, 3, 3), (8, 4, 4), (4, 1, 1)])
@pytest.mark.parametrize("arrangement", ["absolute", "relative", "circulant"])
def test_dragonfly_kim_formulas(a, p, h, arrangement):
    t = dragonfly(a, p, h, arrangement=arrangement)
    g = a * h + 1
    d = t.describe() if a * p * g <= 300 else None
    G = t.graph
    assert len(t.hosts) == a * p * g
    assert len(t.switches) == a * g
    kinds = {}
    for _, _, k in G.edges(data="kind"):
        kinds[k] = kinds.get(k, 0) + 1
    assert kinds["host"] == a * p * g
    assert kinds["local"] == g * a * (a - 1) // 2
    assert kinds["global"] == g * (g - 1) // 2       # one global link per pair of groups
    pairs = set()
    for u, v, k in G.edges(data="kind"):
        if k == "global":
            pairs.add(frozenset((G.nodes[u]["group"], G.nodes[v]["group"])))
    assert len(pairs) == g * (g - 1) // 2
    for r in t.switches:                               # every router: p + (a-1) + h ports
        assert G.degree(r) == p + a - 1 + h
    if d is not None:
        assert d["diameter"] == 5
        assert generic(t)["diameter"] == 5
    assert len(t.host_groups()) == g
    assert len(t.host_groups("router")) == a * g


def test_dragonfly_fewer_groups():
    t = dragonfly(4, 2, 2, groups=5)
    G = t.graph
    assert len(t.switches) == 20 and len(t.hosts) == 40
    links = {}
    for u, v, d in G.edges(data=True):
        if d["kind"] == "global":
            key = frozenset((G.nodes[u]["group"], G.nodes[v]["group"]))
            links[key] = links.get(key, 0) + d["cables"]
    assert len(links) == 10 and set(links.values()) == {2}   # 8 ports, 4 peers: 2 each
    assert t.describe()["diameter"] == generic(t)["diameter"]


@pytest.mark.parametrize("groups", [0, 1, 10, 100, -3, 2.5])
def test_dragonfly_impossible_groups(groups):
    with pytest.raises(TopologyError, match="impossible|groups"):
        dragonfly(4, 2, 2, groups=groups)


def test_dragonfly_bandwidths_apart():
    t = dragonfly(4, 2, 2, local_bandwidth="200Gbps", global_bandwidth="50Gbps",
                  global_latency="2us")
    by = {}
    for _, _, d in t.graph.edges(data=True):
        by.setdefault(d["kind"], set()).add((d["bandwidth"], d["latency"]))
    assert by["local"] == {(25e9, 5e-7)}
    assert by["global"] == {(6.25e9, 2e-6)}
    assert by["host"] == {(BW, 5e-7)}
    with pytest.raises(TopologyError):
        dragonfly(4, 2, 2, arrangement="random")


def test_dragonfly_bisection_full_size_even_groups():
    # a=1,h=3 -> g=4 groups of one router: bisection = 2*2 global links
    t = dragonfly(1, 2, 3)
    assert t.describe()["bisection_bandwidth"] == pytest.approx(4 * BW)
    assert brute_bisection(dragonfly(1, 2, 3)) == pytest.approx(4 * BW)


# ---------------------------------------------------------------- direct
@pytest.mark.parametrize("dims", [(4, 4, 4), (8, 8), (2, 2, 2), (6, 4), (4, 2, 6), (16,)])
def test_torus_formulas(dims):
    t = torus(dims)
    d = t.describe()
    N = math.prod(dims)
    assert d["hosts"] == N and d["switches"] == 0
    assert d["links"] == sum(N if k > 2 else N // 2 for k in dims)
    assert d["diameter"] == sum(k // 2 for k in dims)
    kmax = max(dims)
    expect = N // 2 if kmax == 2 else 2 * N // kmax
    assert d["bisection_bandwidth"] == pytest.approx(expect * BW)
    g = generic(t)
    assert g["diameter"] == d["diameter"]
    assert g["mean_distance"] == pytest.approx(d["mean_distance"])
    assert g["bisection_bandwidth"] >= d["bisection_bandwidth"] - 1e-6   # heuristic: upper bound


def test_torus_odd_and_spec_dims():
    t = torus("3x5")
    assert len(t.hosts) == 15
    assert "upper bound" in t.describe()["methods"]["bisection_bandwidth"]
    assert torus((3, 3)).describe()["bisection_bandwidth"] >= brute_bisection(torus((3, 3))) - 1e-6
    for bad in ((), (1, 4), (4, 0), "4xx4", "axb"):
        with pytest.raises(TopologyError):
            torus(bad)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 7])
def test_hypercube_formulas(d):
    t = hypercube(d)
    x = t.describe()
    N = 2 ** d
    assert x["hosts"] == N and x["links"] == d * N // 2
    assert x["diameter"] == d
    assert x["mean_distance"] == pytest.approx(d * 2 ** (d - 1) / (N - 1))
    assert x["bisection_bandwidth"] == pytest.approx(N // 2 * BW)
    g = generic(t)
    assert (g["diameter"], g["mean_distance"]) == (d, pytest.approx(x["mean_distance"]))


@pytest.mark.parametrize("n", [2, 3, 8, 15])
def test_full_mesh_and_ring(n):
    m = full_mesh(n).describe()
    assert m["links"] == n * (n - 1) // 2 and m["diameter"] == 1
    assert m["bisection_bandwidth"] == pytest.approx((n // 2) * ((n + 1) // 2) * BW)
    r = ring(n)
    x = r.describe()
    assert x["links"] == (n if n > 2 else 1)
    assert x["diameter"] == n // 2
    assert x["bisection_bandwidth"] == pytest.approx((2 if n > 2 else 1) * BW)
    assert generic(r)["mean_distance"] == pytest.approx(x["mean_distance"])
    assert len(r.host_groups()) == n          # direct-connect: each host alone


# ---------------------------------------------------------------- star, leaf-spine, multi-node
def test_star_and_leaf_spine():
    s = star(8).describe()
    assert (s["hosts"], s["switches"], s["links"], s["diameter"]) == (8, 1, 8, 2)
    assert s["bisection_bandwidth"] == pytest.approx(4 * BW) and s["radix"] == 8
    t = leaf_spine(4, 8, 2)
    d = t.describe()
    assert (d["hosts"], d["switches"], d["links"], d["diameter"]) == (32, 6, 40, 4)
    # 8 hosts x 100G down, 2 x 100G up: 4:1 oversubscribed
    assert d["bisection_bandwidth"] == pytest.approx(2 * 2 * BW)
    assert t.host_groups()[0] == [f"h{i}" for i in range(8)]
    g = generic(t)
    assert (g["diameter"], g["mean_distance"]) == (4, pytest.approx(d["mean_distance"]))
    odd = leaf_spine(3, 2, 2)
    assert odd.describe()["bisection_bandwidth"] >= brute_bisection(odd) - 1e-6


def test_multi_node():
    t = multi_node(4, 8)
    d = t.describe()
    assert d["hosts"] == 32 and d["nics"] == 4
    assert d["switches"] == 4 + 1                       # node switches + the network switch
    assert t.host_groups() == [[f"n{i}d{j}" for j in range(8)] for i in range(4)]
    assert d["diameter"] == 6                           # d-sw-nic-net-nic-sw-d
    m = multi_node(2, 4, intra="mesh", nics_per_node=2, inter="fat-tree:k=4")
    assert len(m.hosts) == 8 and len(m.nics) == 4
    assert [n for n in m.graph.adj["n0d0"] if m.graph.nodes[n]["kind"] == "nic"] == ["n0nic0"]
    assert [n for n in m.graph.adj["n0d3"] if m.graph.nodes[n]["kind"] == "nic"] == ["n0nic1"]
    assert m.router().paths("n0d0", "n0d1") == [["n0d0", "n0d1"]]
    assert generic(m)["hosts"] == 8
    with pytest.raises(TopologyError, match="need"):
        multi_node(8, 2, inter="star:n=4")
    with pytest.raises(TopologyError, match="intra"):
        multi_node(2, 2, intra="ring")
    single = multi_node(1, 8)
    assert single.describe()["diameter"] == 2 and not single.nics


@pytest.mark.parametrize("make", [lambda: star(3), lambda: leaf_spine(2, 2, 2), lambda: fat_tree(4),
                                  lambda: dragonfly(2, 1, 1), lambda: full_mesh(4), lambda: ring(5),
                                  lambda: torus((3, 3)), lambda: hypercube(2),
                                  lambda: multi_node(2, 2, inter="fat-tree:k=2")])
def test_describe_is_json_and_has_the_design_keys(make):
    import json

    d = make().describe()
    json.dumps(d)
    for key in ("hosts", "switches", "links", "cables", "ports", "diameter",
                "bisection_bandwidth", "mean_distance", "radix", "cost", "methods", "groups"):
        assert key in d
    assert d["cost"]["total"] == pytest.approx(d["cost"]["switch_ports"] + d["cost"]["host_ports"]
                                               + d["cost"]["cables"])


def test_describe_prices():
    d = fat_tree(4).describe(port_cost=100, cable_cost=10, nic_port_cost=0)
    assert d["cost"]["total"] == 80 * 100 + 48 * 10
    from collectives.errors import InvalidArgument
    for bad in (-1, float("nan"), "x"):
        with pytest.raises(InvalidArgument):
            fat_tree(4).describe(port_cost=bad)
