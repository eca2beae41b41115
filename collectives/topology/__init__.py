"""Network topologies: builders, files, metrics, routing and placement.

A :class:`Topology` wraps an undirected :class:`networkx.Graph`:

- nodes have ``kind``: ``"host"`` (an endpoint a rank runs on), ``"switch"``,
  or ``"nic"`` (a network interface in :func:`multi_node`: it forwards like a
  switch but owns no switch ports);
- edges have ``bandwidth`` (bytes/s, each direction: links are full duplex),
  ``latency`` (s) and ``cables`` (physical cables bundled in the edge, whose
  bandwidth is already summed in ``bandwidth``); switches may have a
  ``latency`` per traversal;
- ``topo.hosts`` is the ordered list of host ids (the default rank order),
  ``topo.switches`` the switch ids.

In a topology with switches or NICs, hosts never forward traffic; in a
direct-connect topology (``full_mesh``, ``ring``, ``torus``, ``hypercube``)
the hosts are the routers.

Builders (each cites the paper or convention it follows)::

    star(n)                               one non-blocking switch
    leaf_spine(leaves, hosts_per_leaf, spines)
    fat_tree(k, oversubscription=1)       Al-Fares et al. 2008
    dragonfly(a, p, h, groups=None, arrangement="absolute")   Kim et al. 2008
    full_mesh(n), ring(n), torus(dims), hypercube(d)
    multi_node(nodes, devices_per_node, intra="switch", inter=None)
    rail_optimized(nodes, g), rail_only(nodes, g), scaleup_torus(dims, g)
                                          scale-up domains on rails or a torus

All take ``link_bandwidth=`` and ``link_latency=`` (numbers in bytes/s and s,
or strings such as ``"100Gbps"``, ``"1us"``); defaults 100 Gb/s and 500 ns.

Files and specs: :func:`load` (JSON node-link data, GraphML, Slurm
``topology.conf``), :func:`write`, :func:`from_spec` (``"fat-tree:k=8"``)
and :func:`resolve` (a Topology, a spec or a path).

Groups
------
``topo.host_groups(level=None)`` returns the natural groups of hosts, the
ones hierarchical algorithms reduce within first, as lists of host ids
(``topo.group_index(level)`` gives the group number of each host as an
array). Default level per family:

==============  ==========  ============================================
family          default     other levels
==============  ==========  ============================================
star            switch      (one group)
leaf-spine      switch      leaf (same as switch)
fat-tree        switch      edge (same), pod
dragonfly       group       router / switch (hosts of one router)
multi-node      node        switch (intra="switch": same as node)
rail-optimized  node        unit (a scalable unit: the nodes under one leaf)
rail-only       node
scaleup-torus   node
direct-connect  host        each host alone: no cheaper level inside
loaded file     switch      hosts under the same (first) switch
==============  ==========  ============================================

``"host"`` (singletons) and ``"all"`` (one group) always work;
``topo.group_levels()`` lists the levels of a topology.

Routing and placement
---------------------
``topo.router(routing=None)`` returns a cached
:class:`~collectives.topology.routing.Router` (``"ecmp"``, ``"minimal"``,
``"valiant"``); ``router.link_paths(a, b)`` gives the directed link ids of
every equal-cost route and its weight, ``router.link_fractions(a, b)`` the
share of the flow on each link, and ``topo.links`` the per-link bandwidth
and latency arrays. ``topo.place(nranks, "linear" | "round-robin" |
"random" | [hosts] | hostfile)`` maps ranks to hosts.

Metrics
-------
``topo.describe(port_cost=, cable_cost=, nic_port_cost=)`` returns hosts,
switches, links, cables, ports, radix, diameter and mean distance (hops),
bisection bandwidth (bytes/s), cost and the method behind each number; see
:mod:`collectives.topology.metrics`.
"""

from .core import DEFAULT_BANDWIDTH, DEFAULT_LATENCY, LinkTable, Topology
from .direct import full_mesh, hypercube, ring, torus
from .dragonfly import ARRANGEMENTS, dragonfly
from .io import load, read_graphml, read_json, write, write_graphml, write_json
from .metrics import format_describe
from .multinode import multi_node
from .rail import rail_only, rail_optimized, scaleup_torus
from .placement import Placement, place, read_hostfile
from .routing import Router
from .slurm import compress_hostlist, expand_hostlist, parse_slurm, read_slurm, write_slurm
from .spec import FAMILIES, from_spec, resolve
from .switched import fat_tree, leaf_spine, star

__all__ = [
    "Topology", "LinkTable", "Router", "Placement",
    "star", "leaf_spine", "fat_tree", "dragonfly", "full_mesh", "ring", "torus", "hypercube",
    "multi_node", "rail_optimized", "rail_only", "scaleup_torus",
    "load", "write", "read_json", "write_json", "read_graphml", "write_graphml",
    "read_slurm", "parse_slurm", "write_slurm", "expand_hostlist", "compress_hostlist",
    "from_spec", "resolve", "place", "read_hostfile", "format_describe",
    "FAMILIES", "ARRANGEMENTS", "DEFAULT_BANDWIDTH", "DEFAULT_LATENCY",
]
