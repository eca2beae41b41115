"""Accelerator nodes: devices on a fast internal fabric, NICs into a network."""

from __future__ import annotations

import networkx as nx

from ..errors import TopologyError
from .core import DEFAULT_LATENCY, Topology, add_link, as_bandwidth, as_count, as_latency

__all__ = ["multi_node", "INTRA"]

INTRA = ("switch", "mesh")


def multi_node(nodes, devices_per_node, intra="switch", inter=None, *, nics_per_node=1,
               intra_bandwidth="450GB/s", intra_latency="200ns",
               nic_bandwidth="64GB/s", nic_latency="200ns",
               link_bandwidth="400Gbps", link_latency=DEFAULT_LATENCY):
    """``nodes`` accelerator nodes of ``devices_per_node`` devices each.

    The convention of DGX/HGX-class machines (NVIDIA DGX H100 user guide;
    Cho et al., "Characterizing multi-GPU interconnects", 2024): the devices
    of a node share a fast internal fabric and reach the other nodes through
    NICs attached to a network.

    - ``intra="switch"``: every device links to one node switch
      (``"n{i}sw"``, an NVSwitch-like crossbar, ``kind="switch"``), and the
      node's NICs hang off that switch as well.
    - ``intra="mesh"``: the devices of a node form a full mesh (NVLink/xGMI
      point to point) and device ``d`` links to NIC ``d * nics_per_node //
      devices_per_node``.

    NICs are nodes of ``kind="nic"`` (``"n{i}nic{j}"``): they forward like
    switches but have no switch ports; they are the hosts of the network
    ``inter``. Devices are the hosts (``"n{i}d{j}"``, attributes ``node``
    and ``device``); the default groups are the devices of one node.

    Parameters
    ----------
    nodes : int
        Number of nodes, >= 1 (one node has no network and no NIC).
    devices_per_node : int
        Devices (GPUs) per node, >= 1.
    intra : {"switch", "mesh"}
        The internal fabric.
    inter : Topology or str, optional
        The network between NICs: a Topology or a spec string whose hosts
        become the NICs, in order. It needs at least ``nodes *
        nics_per_node`` hosts; spare single-homed hosts are removed. Default:
        one switch (``star``) with ``link_bandwidth``/``link_latency`` links.
    nics_per_node : int
        NICs (network ports) per node, >= 1.
    intra_bandwidth, intra_latency : float or str
        Device-switch links (``"switch"``) or device-device links (``"mesh"``).
    nic_bandwidth, nic_latency : float or str
        The PCIe path between the node fabric (or a device) and a NIC.
    link_bandwidth, link_latency : float or str
        Network links of the default ``star`` network.

    Returns
    -------
    Topology
    """
    from .spec import from_spec
    from .switched import star

    nodes = as_count(nodes, "nodes", 1)
    dev = as_count(devices_per_node, "devices_per_node", 1)
    nics = as_count(nics_per_node, "nics_per_node", 1)
    if intra not in INTRA:
        raise TopologyError(f"multi_node intra={intra!r}: expected one of {', '.join(INTRA)}")
    ibw, ilat = as_bandwidth(intra_bandwidth, "intra_bandwidth"), as_latency(intra_latency, "intra_latency")
    nbw, nlat = as_bandwidth(nic_bandwidth, "nic_bandwidth"), as_latency(nic_latency, "nic_latency")
    G = nx.Graph(family="multi-node", group_level="node", group_attrs=["node"])
    for i in range(nodes):
        for d in range(dev):
            G.add_node(f"n{i}d{d}", kind="host", node=i, device=d, index=i * dev + d)
        if intra == "switch":
            sw = f"n{i}sw"
            G.add_node(sw, kind="switch", tier="node", node=i)
            for d in range(dev):
                G.add_edge(f"n{i}d{d}", sw, bandwidth=ibw, latency=ilat, cables=1)
        else:
            for d in range(dev):
                for e in range(d + 1, dev):
                    G.add_edge(f"n{i}d{d}", f"n{i}d{e}", bandwidth=ibw, latency=ilat, cables=1)
    inter_name = None
    if nodes > 1:
        need = nodes * nics
        if inter is None:
            net = star(need, link_bandwidth=link_bandwidth, link_latency=link_latency)
        elif isinstance(inter, Topology):
            net = inter
        elif isinstance(inter, str):
            net = from_spec(inter)
        else:
            raise TopologyError(f"multi_node inter must be a Topology or a spec string, got {inter!r}")
        inter_name = net.name
        if len(net.hosts) < need:
            raise TopologyError(f"multi_node: the network {net.name} has {len(net.hosts)} hosts; "
                                f"{nodes} nodes x {nics} NICs need {need}")
        spare = net.hosts[need:]
        for h in spare:
            if net.attachment(h) is None:
                raise TopologyError(f"multi_node: the network {net.name} has {len(net.hosts)} "
                                    f"hosts, more than the {need} NICs, and its hosts forward "
                                    "traffic (direct-connect): give it exactly that many hosts")
        mapping = {}
        for k, h in enumerate(net.hosts[:need]):
            mapping[h] = f"n{k // nics}nic{k % nics}"
        taken = set(G.nodes) | set(mapping.values())
        for n in net.graph.nodes:
            if n not in mapping and n not in spare:
                mapping[n] = n if n not in taken else f"net.{n}"
        spare_set = set(spare)
        for n, d in net.graph.nodes(data=True):
            if n in spare_set:
                continue
            attrs = {k: v for k, v in d.items() if k not in ("index", "node", "device")}
            if n in net.host_index:
                attrs["kind"] = "nic"
                attrs["node"] = net.host_index[n] // nics
            G.add_node(mapping[n], **attrs)
        for u, v, d in net.graph.edges(data=True):
            if u in spare_set or v in spare_set:
                continue
            G.add_edge(mapping[u], mapping[v], **d)
        for i in range(nodes):
            for j in range(nics):
                nic = f"n{i}nic{j}"
                if intra == "switch":
                    add_link(G, nic, f"n{i}sw", nbw, nlat)
                else:
                    for d in range(dev):
                        if d * nics // dev == j:
                            add_link(G, f"n{i}d{d}", nic, nbw, nlat)
    G.graph["name"] = (f"multi-node:nodes={nodes},devices={dev},intra={intra}"
                       + (f",nics={nics}" if nics != 1 else "")
                       + (f",inter=({inter_name})" if inter is not None else ""))
    G.graph["params"] = {"nodes": nodes, "devices_per_node": dev, "intra": intra,
                         "nics_per_node": nics, "inter": inter_name,
                         "intra_bandwidth": ibw, "intra_latency": ilat,
                         "nic_bandwidth": nbw, "nic_latency": nlat}
    hosts = [f"n{i}d{d}" for i in range(nodes) for d in range(dev)]
    return Topology(G, hosts)
