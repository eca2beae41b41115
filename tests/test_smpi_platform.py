"""The SimGrid platform writer of bench/smpi: pure Python, no SimGrid needed.

The platform must hold our hosts, switches and links with their bandwidth and
latency, every link full duplex, and routes that walk our router's paths in
the right direction of each link: that is what makes SMPI's times comparable
with the model's.
"""

from __future__ import annotations

import importlib.util
import os
import xml.etree.ElementTree as ET

import pytest

import collectives as cl
from collectives.errors import TopologyError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def writer():
    path = os.path.join(ROOT, "bench", "smpi", "platform_writer.py")
    spec = importlib.util.spec_from_file_location("smpi_platform_writer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse(xml):
    root = ET.fromstring(xml.split("\n", 2)[2])       # past the XML and DOCTYPE lines
    zone = root.find("zone")
    assert root.get("version") == "4.1" and zone.get("routing") == "Full"
    return zone


def walk(zone, src, dst):
    """Follow a route's links from src and return the nodes visited."""
    route = [r for r in zone.findall("route") if r.get("src") == src and r.get("dst") == dst]
    assert len(route) == 1, f"{len(route)} routes {src} -> {dst}"
    assert route[0].get("symmetrical") == "NO"
    at, nodes = src, [src]
    for ctn in route[0].findall("link_ctn"):
        u, v = ctn.get("id").split("--")
        a, b = (u, v) if ctn.get("direction") == "UP" else (v, u)
        assert at == a, f"route {src} -> {dst} takes {ctn.get('id')} {ctn.get('direction')} from {at}"
        at = b
        nodes.append(at)
    assert at == dst
    return nodes


def seconds(text):
    assert text.endswith("s")
    return float(text[:-1])


def bytes_per_s(text):
    assert text.endswith("Bps")
    return float(text[:-3])


def test_star_has_our_hosts_switch_and_duplex_links(writer):
    topo = cl.topology.star(4, link_bandwidth="100Gbps", link_latency="1us")
    xml, info = writer.platform_xml(topo, cluster=False)
    zone = parse(xml)
    hosts = [h.get("id") for h in zone.findall("host")]
    assert hosts == topo.hosts
    assert [r.get("id") for r in zone.findall("router")] == ["sw0"]
    links = zone.findall("link")
    assert len(links) == 4
    for link in links:
        assert link.get("sharing_policy") == "SPLITDUPLEX"
        assert bytes_per_s(link.get("bandwidth")) == pytest.approx(12.5e9)
        assert seconds(link.get("latency")) == pytest.approx(1e-6)
    assert len(zone.findall("route")) == 4 * 3
    assert info == {"topology": topo.name, "hosts": 4, "routers": 1, "links": 4, "routes": 12,
                    "multipath_pairs": 0, "zone": "full"}
    for a in topo.hosts:
        for b in topo.hosts:
            if a != b:
                assert walk(zone, a, b) == [a, "sw0", b]


def test_star_as_a_simgrid_cluster(writer):
    topo = cl.topology.star(5, link_bandwidth="100Gbps", link_latency="1us")
    xml, info = writer.platform_xml(topo)
    root = ET.fromstring(xml.split("\n", 2)[2])
    (cluster,) = root.findall("cluster")
    assert not root.findall("zone")
    # h0..h4, one private full-duplex link each, no backbone: our star exactly
    assert (cluster.get("prefix"), cluster.get("radical"), cluster.get("suffix")) == ("h", "0-4", "")
    assert cluster.get("sharing_policy") == "SPLITDUPLEX"
    assert cluster.get("bb_bw") is None
    assert bytes_per_s(cluster.get("bw")) == pytest.approx(12.5e9)
    assert seconds(cluster.get("lat")) == pytest.approx(1e-6)
    assert info["zone"] == "cluster" and info["hosts"] == 5 and info["links"] == 5


def test_leaf_spine_routes_are_shortest_and_spread_by_destination(writer):
    topo = cl.topology.leaf_spine(2, 2, 2, uplink_bandwidth="200Gbps")
    xml, info = writer.platform_xml(topo)
    zone = parse(xml)
    assert len(zone.findall("host")) == 4 and len(zone.findall("router")) == 4
    assert len(zone.findall("link")) == topo.graph.number_of_edges() == 4 + 4
    ups = {l.get("id"): bytes_per_s(l.get("bandwidth")) for l in zone.findall("link")
           if "spine" in l.get("id")}
    assert set(ups.values()) == {25e9}
    # h0, h1 under leaf0; h2, h3 under leaf1: 2 spines, so 2 equal-cost paths across leaves
    assert info["multipath_pairs"] == 2 * 2 * 2
    assert walk(zone, "h0", "h1") == ["h0", "leaf0", "h1"]
    spine_to_h2 = walk(zone, "h0", "h2")[2]
    spine_to_h3 = walk(zone, "h0", "h3")[2]
    assert {spine_to_h2, spine_to_h3} == {"spine0", "spine1"}   # destination mod k
    assert walk(zone, "h1", "h2")[2] == spine_to_h2               # same destination, same spine


def test_dragonfly_routes_follow_our_minimal_routing(writer):
    topo = cl.topology.dragonfly(2, 1, 1)           # 3 groups of 2 routers, one host each
    hosts = topo.hosts[:4]
    xml, info = writer.platform_xml(topo, hosts=hosts)
    zone = parse(xml)
    assert len(zone.findall("host")) == len(topo.hosts) == 6     # every host written
    assert len(zone.findall("router")) == 6
    assert len(zone.findall("link")) == topo.graph.number_of_edges()
    assert info["routes"] == 4 * 3                                 # routes only among `hosts`
    router = topo.router()
    for a in hosts:
        for b in hosts:
            if a != b:
                assert walk(zone, a, b) in [list(p) for p in router.paths(a, b)]


def test_write_platform_and_hostfile(writer, tmp_path):
    topo = cl.topology.star(3)
    info = writer.write_platform(topo, tmp_path / "p.xml", hosts=["h2", "h0"], cluster=False,
                                 hostfile=tmp_path / "hosts")
    assert (tmp_path / "hosts").read_text().split() == ["h2", "h0"]
    zone = parse((tmp_path / "p.xml").read_text())
    assert info["routes"] == len(zone.findall("route")) == 2


def test_refuses_what_simgrid_cannot_express(writer):
    with pytest.raises(TopologyError, match="switch_latency"):
        writer.platform_xml(cl.topology.star(2, switch_latency="100ns"))
    with pytest.raises(TopologyError, match="valiant"):
        writer.platform_xml(cl.topology.dragonfly(2, 1, 1), routing="valiant")
    with pytest.raises(TopologyError, match="not a host"):
        writer.platform_xml(cl.topology.star(2), hosts=["h9"])
