"""Files: JSON node-link, GraphML, Slurm topology.conf and hostlists; validation errors."""

import json
import os

import networkx as nx
import pytest
from hypothesis import given, strategies as st

from collectives.errors import CollectivesError, TopologyError, TopologyFileError
from collectives.topology import (Topology, compress_hostlist, dragonfly, expand_hostlist,
                                  fat_tree, leaf_spine, load, multi_node, parse_slurm, star, torus,
                                  write)
from collectives.topology.io import from_node_link, to_node_link


def same(a, b):
    assert a.hosts == b.hosts
    assert set(a.switches) == set(b.switches)
    assert {frozenset(e) for e in a.graph.edges} == {frozenset(e) for e in b.graph.edges}
    for u, v, d in a.graph.edges(data=True):
        e = b.graph.edges[u, v]
        assert e["bandwidth"] == pytest.approx(d["bandwidth"])
        assert e["latency"] == pytest.approx(d["latency"])
        assert e.get("cables", 1) == d.get("cables", 1)
    assert a.host_groups() == b.host_groups()


TOPOS = [lambda: fat_tree(4), lambda: dragonfly(4, 2, 2, groups=5), lambda: torus((3, 4)),
         lambda: multi_node(2, 4, intra="mesh"), lambda: leaf_spine(3, 2, 2, uplink_bandwidth="400Gbps")]


def _plain(value):
    """Parameters as JSON would give them back (tuples as lists), for exact comparison."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("make", TOPOS)
@pytest.mark.parametrize("ext", ["json", "graphml"])
def test_round_trip(tmp_path, make, ext):
    t = make()
    p = tmp_path / f"t.{ext}"
    write(t, p)
    u = load(p)
    same(t, u)
    if ext == "json":
        assert u.family == t.family and _plain(u.params) == _plain(t.params)
    assert u.describe()["diameter"] == t.describe()["diameter"]
    if t.family == "torus":
        assert u.graph.nodes["h5"]["coord"] == t.graph.nodes["h5"]["coord"]


def test_json_uses_edges_key_and_reads_old_links_key(tmp_path):
    t = star(3)
    data = to_node_link(t)
    assert "edges" in data and "links" not in data
    data["links"] = data.pop("edges")
    p = tmp_path / "old.json"
    p.write_text(json.dumps(data))
    same(t, load(p))
    # networkx's own writer, either key
    nl = nx.node_link_data(t.graph, edges="links")
    same(t, from_node_link(nl))


def test_json_units_in_strings_and_host_order():
    data = {"graph": {"hosts": ["b", "a"]},
            "nodes": [{"id": "a", "kind": "host"}, {"id": "b", "kind": "host"},
                      {"id": "s", "kind": "switch"}],
            "edges": [{"source": "a", "target": "s", "bandwidth": "100Gbps", "latency": "1us"},
                      {"source": "b", "target": "s", "bandwidth": 25e9, "latency": 1e-6}]}
    t = from_node_link(data)
    assert t.hosts == ["b", "a"]
    assert t.graph.edges["a", "s"]["bandwidth"] == 12.5e9
    assert t.graph.edges["a", "s"]["latency"] == 1e-6


def test_custom_host_order_round_trips(tmp_path):
    t = Topology(star(4).graph, ["h3", "h1", "h0", "h2"])
    for ext in ("json", "graphml"):
        write(t, tmp_path / f"x.{ext}")
        assert load(tmp_path / f"x.{ext}").hosts == ["h3", "h1", "h0", "h2"]


def _graph(edges, kinds=None):
    G = nx.Graph()
    for n, k in (kinds or {}).items():
        G.add_node(n, kind=k)
    for u, v, d in edges:
        G.add_edge(u, v, **d)
    for n in G:
        G.nodes[n].setdefault("kind", "host" if n.startswith("h") else "switch")
    return G


OK = {"bandwidth": 1e9, "latency": 1e-6}


@pytest.mark.parametrize("edges, kinds, match", [
    ([("h0", "s0", OK), ("h1", "s1", OK)], None, "disconnected"),
    ([("h0", "s0", OK)], {"h9": "host"}, "'h9' has no link"),
    ([("h0", "s0", {"bandwidth": 0, "latency": 1e-6})], None, "bandwidth 0"),
    ([("h0", "s0", {"bandwidth": -1e9, "latency": 1e-6})], None, "bandwidth -1"),
    ([("h0", "s0", {"latency": 1e-6})], None, "has no bandwidth"),
    ([("h0", "s0", {"bandwidth": 1e9})], None, "has no latency"),
    ([("h0", "s0", {"bandwidth": 1e9, "latency": 0})], None, "latency 0"),
    ([("h0", "s0", {"bandwidth": float("nan"), "latency": 1e-6})], None, "bandwidth nan"),
    ([("h0", "s0", {"bandwidth": 1e9, "latency": float("inf")})], None, "latency inf"),
    ([("h0", "s0", {"bandwidth": "100Gbpx", "latency": 1e-6})], None, "100Gbpx"),
    ([("h0", "s0", OK)], {"s0": "router"}, "kind 'router'"),
    ([("h0", "h1", OK), ("h1", "s0", OK)], None, "'h0' links only to other hosts"),
    ([("s0", "s1", OK)], None, "no host"),
])
def test_validation_errors_name_the_culprit(edges, kinds, match):
    with pytest.raises(TopologyError, match=match) as e:
        Topology(_graph(edges, kinds))
    assert isinstance(e.value, ValueError) and isinstance(e.value, CollectivesError)


def test_direct_graph_disconnected():
    G = _graph([("h0", "h1", OK), ("h2", "h3", OK)])
    with pytest.raises(TopologyError, match="disconnected"):
        Topology(G)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(TopologyFileError) as e:
        load(tmp_path / "missing.json")
    assert isinstance(e.value, OSError) and "missing.json" in str(e.value)
    with pytest.raises(TopologyFileError, match="directory"):
        load(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [}')
    with pytest.raises(TopologyError, match="bad.json:1: invalid JSON"):
        load(bad)
    bad.write_text(json.dumps({"nodes": [{"id": "a", "kind": "host"}],
                               "edges": [{"source": "a", "target": "zz", "bandwidth": 1, "latency": 1}]}))
    with pytest.raises(TopologyError, match="'zz'"):
        load(bad)
    g = tmp_path / "bad.graphml"
    g.write_text("<graphml><oops")
    with pytest.raises(TopologyError, match="invalid GraphML"):
        load(g)
    x = tmp_path / "mystery.txt"
    x.write_text("hello")
    with pytest.raises(TopologyError, match="cannot tell"):
        load(x)
    if os.geteuid() != 0:
        locked = tmp_path / "locked.json"
        locked.write_text("{}")
        locked.chmod(0)
        with pytest.raises(TopologyFileError):
            load(locked)


# ---------------------------------------------------------------- Slurm
CONF = """\
# a two-level tree
SwitchName=s0 Nodes=tux[0-3,12] LinkSpeed=100
SwitchName=s1 Nodes=tux[4-7] LinkSpeed=25GB/s   # a unit is fine too
switchname=s2 nodes=tux[08-09] \\
    linkspeed=200
SwitchName=top Switches=s[0-2] LinkSpeed=400
"""


def test_slurm_parse():
    t = parse_slurm(CONF)
    assert t.hosts == ["tux0", "tux1", "tux2", "tux3", "tux12", "tux4", "tux5", "tux6", "tux7",
                       "tux08", "tux09"]
    assert set(t.switches) == {"s0", "s1", "s2", "top"}
    G = t.graph
    assert G.edges["s0", "tux12"]["bandwidth"] == 12.5e9
    assert G.edges["s1", "tux4"]["bandwidth"] == 25e9
    assert G.edges["s2", "tux08"]["bandwidth"] == 25e9
    assert G.edges["top", "s1"]["bandwidth"] == 50e9
    assert [len(g) for g in t.host_groups()] == [5, 4, 2]
    d = t.describe()
    assert d["diameter"] == 4 and d["hosts"] == 11
    assert d["bisection_bandwidth"] > 0


@pytest.mark.parametrize("text, match", [
    ("SwitchName=s0 Nodes=a[0-3]\nSwitchName=s0 Nodes=b1\n", r"conf:2: switch 's0' is already defined on line 1"),
    ("SwitchName=s0 Nodes=a[3-0]\n", r"conf:1: .*backwards"),
    ("\n\nSwitchName=s0 Nodes=a[0-3\n", r"conf:3: .*'\[' without '\]'"),
    ("SwitchName=s0 Nodes=a1 Speed=3\n", r"conf:1: unknown key 'Speed'"),
    ("SwitchName=s0 Nodes=a1 LinkSpeed=fast\n", r"conf:1: .*LinkSpeed"),
    ("Nodes=a1\n", r"conf:1: a line must start with SwitchName"),
    ("SwitchName=s0 Nodes=a1\nSwitchName=t Switches=s[0-1]\n", r"conf:2: .*'s1'.*no line defines"),
    ("SwitchName=s0 Nodes=a1 junk\n", r"conf:1: cannot read 'junk'"),
    ("SwitchName=s0\n", r"conf:1: .*neither Nodes= nor Switches="),
    ("BlockName=b1 Nodes=a[1-4]\n", r"conf:1: .*block topology plugin"),
    ("SwitchName=s0 Nodes=a1\nSwitchName=s1 Nodes=a2\n", r"disconnected"),
    ("# only comments\n", r"no SwitchName"),
])
def test_slurm_errors_with_line_numbers(text, match):
    with pytest.raises(TopologyError, match=match):
        parse_slurm(text, source="topology.conf")


@pytest.mark.parametrize("make", [lambda: fat_tree(4), lambda: leaf_spine(3, 4, 2), lambda: star(5),
                                  lambda: fat_tree(8, oversubscription=2)])
def test_slurm_round_trip(tmp_path, make):
    t = make()
    p = tmp_path / "topology.conf"
    write(t, p)
    u = load(p)
    same(t, u)


def test_slurm_writer_refuses_non_trees(tmp_path):
    with pytest.raises(TopologyError, match="same level"):
        write(dragonfly(2, 1, 1), tmp_path / "x.conf")
    with pytest.raises(TopologyError, match="no switches"):
        write(torus((4,)), tmp_path / "x.conf")


def test_hostlist_examples():
    assert expand_hostlist("tux[0-3,12]") == ["tux0", "tux1", "tux2", "tux3", "tux12"]
    assert expand_hostlist("n[01-03],login") == ["n01", "n02", "n03", "login"]
    assert expand_hostlist("r[1-2]n[1-2]") == ["r1n1", "r1n2", "r2n1", "r2n2"]
    assert expand_hostlist("a[8-10]") == ["a8", "a9", "a10"]
    assert compress_hostlist(["tux0", "tux1", "tux2", "tux3", "tux12"]) == "tux[0-3,12]"
    assert compress_hostlist(["n01", "n02", "x"]) == "n[01-02],x"
    for bad in ("a[1-", "a]1[", "a[x]", "a[2-1]", "a,,b", "a[[1]]"):
        with pytest.raises(TopologyError):
            expand_hostlist(bad)


def test_hostlist_padded_runs_merge_across_a_power_of_ten():
    assert compress_hostlist(expand_hostlist("node[01-16]")) == "node[01-16]"
    assert compress_hostlist(expand_hostlist("n[098-102],n[7-12]")) == "n[098-102],n[7-12]"
    assert compress_hostlist(["n01", "n02", "n10", "n11"]) == "n[01-02,10-11]"


def test_slurm_writer_keeps_padded_ranges_whole(tmp_path):
    hosts = expand_hostlist("node[01-16]")
    t = parse_slurm(f"SwitchName=s0 Nodes={compress_hostlist(hosts[:8])}\n"
                    f"SwitchName=s1 Nodes={compress_hostlist(hosts[8:])}\n"
                    "SwitchName=top Switches=s[0-1]\n")
    p = tmp_path / "topology.conf"
    write(t, p)
    text = p.read_text()
    assert "Nodes=node[01-08]" in text and "Nodes=node[09-16]" in text
    assert load(p).hosts == hosts


def test_slurm_node_under_two_leaf_switches_is_refused():
    text = "SwitchName=s0 Nodes=a[0-3]\nSwitchName=s1 Nodes=a3,b1\nSwitchName=t Switches=s[0-1]\n"
    with pytest.raises(TopologyFileError, match=r"conf:2: node 'a3' .*switch 's1' .*switch 's0' \(line 1\)"):
        parse_slurm(text, source="topology.conf")


def test_slurm_switch_loop_is_refused():
    text = ("SwitchName=s0 Nodes=a1 Switches=s1\nSwitchName=s1 Nodes=a2 Switches=s2\n"
            "SwitchName=s2 Nodes=a3 Switches=s0\n")
    with pytest.raises(TopologyFileError, match=r"loop.*'s0' \(line 1\) -> 's1' \(line 2\) -> 's2'"):
        parse_slurm(text, source="topology.conf")
    with pytest.raises(TopologyFileError, match="loop"):
        parse_slurm("SwitchName=s0 Nodes=a1 Switches=s1\nSwitchName=s1 Nodes=a2 Switches=s0\n")


names = st.builds(lambda p, n, w: f"{p}{str(n).zfill(w)}",
                  st.sampled_from(["tux", "node", "gpu-", "r1n"]),
                  st.integers(0, 999), st.sampled_from([1, 3]))


@given(st.lists(names, min_size=1, max_size=40, unique=True))
def test_hostlist_round_trip(hosts):
    assert sorted(expand_hostlist(compress_hostlist(hosts))) == sorted(hosts)
