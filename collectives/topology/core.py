"""The :class:`Topology` class: a validated networkx graph plus the indexes the
routing, the metrics and the model need."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import networkx as nx
import numpy as np

from ..errors import TopologyError
from .. import units

KINDS = ("host", "switch", "nic")

#: Defaults used by every builder (see the documentation's guide "Topologies").
DEFAULT_BANDWIDTH = 12.5e9      # 100 Gb/s
DEFAULT_LATENCY = 500e-9        # 500 ns per link


def as_bandwidth(value, name="link_bandwidth") -> float:
    """A builder argument in human units or bytes/s -> bytes/s (raises TopologyError)."""
    try:
        return units.parse_bandwidth(value, name=name)
    except ValueError as exc:
        raise TopologyError(str(exc)) from None


def as_latency(value, name="link_latency", *, allow_zero=False) -> float:
    """A builder argument in human units or seconds -> seconds (raises TopologyError)."""
    try:
        v = units.parse_time(value, name=name)
    except ValueError as exc:
        raise TopologyError(str(exc)) from None
    if v == 0 and not allow_zero:
        raise TopologyError(f"{name} must be > 0, got {value!r}")
    return v


def as_count(value, name, minimum=1) -> int:
    """A builder argument that must be an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TopologyError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise TopologyError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def add_link(graph, u, v, bandwidth, latency, cables=1, **attrs):
    """Add a cable between u and v; a second cable between the same pair adds
    its bandwidth to the edge and increments ``cables``."""
    if graph.has_edge(u, v):
        d = graph.edges[u, v]
        d["bandwidth"] += bandwidth
        d["cables"] = d.get("cables", 1) + cables
        d["latency"] = max(d["latency"], latency)
    else:
        graph.add_edge(u, v, bandwidth=bandwidth, latency=latency, cables=cables, **attrs)


@dataclass(frozen=True)
class LinkTable:
    """Directed links as flat arrays (what a vectorised model wants).

    Undirected edge ``e`` (in ``Topology.edges`` order, stored as ``(u, v)``)
    gives link ``2*e`` for u -> v and ``2*e + 1`` for v -> u. ``src``/``dst``
    are node indices (``Topology.nodes`` order); ``bandwidth`` (bytes/s, one
    direction) and ``latency`` (s) are per directed link.
    """

    src: np.ndarray
    dst: np.ndarray
    bandwidth: np.ndarray
    latency: np.ndarray

    def __len__(self):
        return len(self.src)


class Topology:
    """A network: hosts, switches and full-duplex links.

    Parameters
    ----------
    graph : networkx.Graph
        Nodes carry ``kind`` (``"host"``, ``"switch"`` or ``"nic"``); edges carry
        ``bandwidth`` (bytes/s per direction; strings with units are converted)
        and ``latency`` (s), and optionally ``cables`` (an int, default 1: the
        physical cables bundled in the edge, whose bandwidths are summed in
        ``bandwidth``). A switch may carry ``latency`` (per traversal, s).
    hosts : list, optional
        The host ids in the order ranks are placed by default. Defaults to the
        ``kind="host"`` nodes in graph order.
    name : str, optional
        A label; defaults to ``graph.graph["name"]``.

    Raises
    ------
    TopologyError
        Unknown node kind, a host without a link, a disconnected graph, a
        missing, zero, negative or non-finite bandwidth or latency.

    Notes
    -----
    Treat ``graph`` as read-only after construction: the indexes (node order,
    link table, routing caches, closed-form metrics) are computed from it once.
    Hosts are endpoints only when the topology has switches or NICs: traffic
    never transits through a host. In a direct-connect topology (no
    switches) the hosts are the routers.
    """

    def __init__(self, graph, hosts=None, *, name=None, _closed=None, validate=True):
        if not isinstance(graph, nx.Graph) or graph.is_directed():
            raise TopologyError("a topology needs an undirected networkx.Graph "
                                f"(got {type(graph).__name__})")
        if graph.is_multigraph():
            graph = _merge_parallel(graph)
        self.graph = graph
        self.name = name or graph.graph.get("name") or "topology"
        if validate:
            _validate(graph)
        all_hosts = [n for n, k in graph.nodes(data="kind") if k == "host"]
        if hosts is None:
            hosts = all_hosts
        else:
            hosts = list(hosts)
            if len(set(hosts)) != len(hosts):
                raise TopologyError("hosts lists a host twice")
            missing = set(all_hosts) - set(hosts)
            extra = [h for h in hosts if h not in graph or graph.nodes[h].get("kind") != "host"]
            if extra:
                raise TopologyError(f"hosts names {extra[0]!r}, which is not a host node of the graph")
            if missing:
                raise TopologyError(f"hosts omits host {sorted(map(str, missing))[0]!r}")
        if not hosts:
            raise TopologyError("the topology has no host (no node with kind='host')")
        self.hosts = hosts
        self.switches = [n for n, k in graph.nodes(data="kind") if k == "switch"]
        self.nics = [n for n, k in graph.nodes(data="kind") if k == "nic"]
        self._closed = dict(_closed or {})
        self._cache = {}

    # ----------------------------------------------------------------- basics
    @property
    def family(self):
        """The builder family ("fat-tree", "dragonfly", ...) or None for a loaded graph."""
        return self.graph.graph.get("family")

    @property
    def params(self) -> dict:
        """The builder parameters (as passed, units resolved)."""
        return dict(self.graph.graph.get("params") or {})

    @property
    def switched(self) -> bool:
        """True when the topology has switches or NICs (hosts do not forward)."""
        return bool(self.switches or self.nics)

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    def __len__(self):
        return len(self.hosts)

    def __repr__(self):
        return (f"<Topology {self.name!r}: {len(self.hosts)} hosts, {len(self.switches)} switches, "
                f"{self.graph.number_of_edges()} links>")

    @property
    def nodes(self) -> list:
        """All node ids in a fixed order (indices used by :attr:`links` and routing)."""
        if "nodes" not in self._cache:
            self._cache["nodes"] = list(self.graph.nodes)
        return self._cache["nodes"]

    @property
    def node_index(self) -> dict:
        """node id -> index into :attr:`nodes`."""
        if "node_index" not in self._cache:
            self._cache["node_index"] = {n: i for i, n in enumerate(self.nodes)}
        return self._cache["node_index"]

    @property
    def host_index(self) -> dict:
        """host id -> its position in ``hosts``."""
        if "host_index" not in self._cache:
            self._cache["host_index"] = {h: i for i, h in enumerate(self.hosts)}
        return self._cache["host_index"]

    @property
    def edges(self) -> list:
        """Undirected edges ``(u, v)`` in a fixed order (link ``2e``/``2e+1``)."""
        if "edges" not in self._cache:
            self._cache["edges"] = list(self.graph.edges)
        return self._cache["edges"]

    @property
    def links(self) -> LinkTable:
        """The directed links as arrays; see :class:`LinkTable`."""
        if "links" not in self._cache:
            idx = self.node_index
            E = len(self.edges)
            src = np.empty(2 * E, dtype=np.int64)
            dst = np.empty(2 * E, dtype=np.int64)
            bw = np.empty(2 * E)
            lat = np.empty(2 * E)
            for e, (u, v, d) in enumerate(self.graph.edges(data=True)):
                iu, iv = idx[u], idx[v]
                src[2 * e], dst[2 * e], src[2 * e + 1], dst[2 * e + 1] = iu, iv, iv, iu
                bw[2 * e] = bw[2 * e + 1] = d["bandwidth"]
                lat[2 * e] = lat[2 * e + 1] = d["latency"]
            self._cache["links"] = LinkTable(src, dst, bw, lat)
        return self._cache["links"]

    @property
    def link_id(self) -> dict:
        """``(u_index, v_index) -> directed link id`` (node indices, not ids)."""
        if "link_id" not in self._cache:
            t = self.links
            self._cache["link_id"] = dict(zip(zip(t.src.tolist(), t.dst.tolist()), range(len(t))))
        return self._cache["link_id"]

    @property
    def node_latency(self) -> np.ndarray:
        """Per-node traversal latency (s), from the node attribute ``latency`` (0 if absent)."""
        if "node_latency" not in self._cache:
            self._cache["node_latency"] = np.array(
                [float(self.graph.nodes[n].get("latency", 0.0) or 0.0) for n in self.nodes])
        return self._cache["node_latency"]

    def attachment(self, host):
        """The switch or NIC a single-homed host hangs off, or None (direct/multi-homed)."""
        att = self._cache.get("attachment")
        if att is None:
            att = {}
            G = self.graph
            for h in self.hosts:
                nb = list(G.adj[h])
                if len(nb) == 1 and G.nodes[nb[0]].get("kind") != "host":
                    att[h] = nb[0]
            self._cache["attachment"] = att
        return att.get(host)

    def injection_bandwidth(self, host=None) -> float:
        """Sum of the link bandwidths of a host (the smallest over hosts if host is None)."""
        G = self.graph
        if host is not None:
            return float(sum(d["bandwidth"] for _, _, d in G.edges(host, data=True)))
        if "injection" not in self._cache:
            self._cache["injection"] = min(
                sum(d["bandwidth"] for _, _, d in G.edges(h, data=True)) for h in self.hosts)
        return self._cache["injection"]

    def hop_levels(self) -> dict:
        """Each node's distance in hops from the nearest host (hosts are level 0)."""
        G = self.graph
        level = {h: 0 for h in self.hosts}
        frontier = list(self.hosts)
        while frontier:
            nxt = []
            for u in frontier:
                for v in G.adj[u]:
                    if v not in level:
                        level[v] = level[u] + 1
                        nxt.append(v)
            frontier = nxt
        return level

    # ----------------------------------------------------------------- groups
    def group_levels(self) -> list:
        """The level names :meth:`host_groups` accepts for this topology."""
        levels = ["host"]
        if self.switched:
            levels.append("switch")
        attrs = self.graph.graph.get("group_attrs") or []
        levels += [a for a in attrs if a not in levels]
        levels.append("all")
        return levels

    @property
    def default_group_level(self) -> str:
        """The natural grouping (see the package docstring)."""
        lvl = self.graph.graph.get("group_level")
        if lvl:
            return lvl
        return "switch" if self.switched else "host"

    def group_index(self, level=None) -> np.ndarray:
        """An int array: for each host (in ``hosts`` order) its group number.

        Groups are numbered in order of first appearance in ``hosts``.
        """
        level = level or self.default_group_level
        key = ("group_index", level)
        if key in self._cache:
            return self._cache[key]
        G = self.graph
        if level == "host":
            labels = list(range(len(self.hosts)))
        elif level == "all":
            labels = [0] * len(self.hosts)
        elif level == "switch":
            if not self.switched:
                raise TopologyError(f"{self.name}: level 'switch' needs switches; this is a "
                                    f"direct-connect topology (levels: {self.group_levels()})")
            labels = []
            for h in self.hosts:
                nb = [n for n in G.adj[h] if G.nodes[n].get("kind") != "host"]
                labels.append(nb[0] if nb else h)
        else:
            labels = []
            for h in self.hosts:
                v = G.nodes[h].get(level)
                if v is None:
                    raise TopologyError(f"{self.name}: unknown group level {level!r} (host {h!r} "
                                        f"has no attribute {level!r}); levels: {self.group_levels()}")
                labels.append(v)
        ids = {}
        out = np.fromiter((ids.setdefault(lab, len(ids)) for lab in labels), dtype=np.int64,
                          count=len(labels))
        self._cache[key] = out
        return out

    def host_groups(self, level=None) -> list:
        """The natural host groups, as lists of host ids.

        Parameters
        ----------
        level : str, optional
            ``"switch"`` (hosts under one leaf/edge switch, router or node
            switch), ``"pod"`` (fat-tree), ``"group"``/``"router"``
            (dragonfly), ``"node"`` (multi_node), ``"host"`` (each host alone),
            ``"all"`` (one group), or any host attribute. Default: the
            family's natural level (:attr:`default_group_level`).

        Returns
        -------
        list of list
            Groups in order of first appearance in ``hosts``; hosts within
            a group in ``hosts`` order.
        """
        idx = self.group_index(level)
        groups = [[] for _ in range(int(idx.max()) + 1 if len(idx) else 0)]
        for h, g in zip(self.hosts, idx.tolist()):
            groups[g].append(h)
        return groups

    # ----------------------------------------------------------------- routing
    def router(self, routing=None, **kwargs):
        """The :class:`~collectives.topology.routing.Router` for a routing mode.

        ``routing``: ``"ecmp"`` (all shortest paths; the default except for
        dragonflies), ``"minimal"`` (dragonfly minimal, the dragonfly default)
        or ``"valiant"`` (dragonfly). Routers are cached per mode.
        """
        from .routing import Router, default_mode

        mode = routing or default_mode(self)
        key = ("router", mode)
        if key not in self._cache or kwargs:
            r = Router(self, mode, **kwargs)
            if kwargs:
                return r
            self._cache[key] = r
        return self._cache[key]

    def paths(self, src, dst, routing=None, max_paths=100_000) -> list:
        """All routes from host ``src`` to host ``dst`` as lists of node ids."""
        return self.router(routing).paths(src, dst, max_paths=max_paths)

    # ----------------------------------------------------------------- placement
    def place(self, nranks=None, strategy="linear", **kwargs):
        """Map ranks to hosts; see :func:`collectives.topology.place`."""
        from .placement import place

        return place(self, nranks, strategy, **kwargs)

    # ----------------------------------------------------------------- metrics
    def describe(self, *, port_cost=None, cable_cost=None, nic_port_cost=None,
                 sample=256, seed=0) -> dict:
        """Size, distance, bandwidth and cost metrics as a JSON-serialisable dict.

        See :func:`collectives.topology.metrics.describe` for the keys and methods.
        """
        from .metrics import describe

        return describe(self, port_cost=port_cost, cable_cost=cable_cost,
                        nic_port_cost=nic_port_cost, sample=sample, seed=seed)

    # ----------------------------------------------------------------- files
    def write(self, path, format=None):
        """Write to ``path`` (format from the extension: .json, .graphml, .conf)."""
        from .io import write

        write(self, path, format=format)


def _merge_parallel(mg):
    g = nx.Graph()
    g.graph.update(mg.graph)
    g.add_nodes_from(mg.nodes(data=True))
    for u, v, d in mg.edges(data=True):
        d = dict(d)
        if g.has_edge(u, v):
            e = g.edges[u, v]
            try:
                e["bandwidth"] = float(e["bandwidth"]) + float(d["bandwidth"])
                e["latency"] = max(float(e["latency"]), float(d["latency"]))
            except (KeyError, TypeError, ValueError):
                raise TopologyError(f"parallel links {u!r} - {v!r} need numeric bandwidth and latency") from None
            e["cables"] = e.get("cables", 1) + d.get("cables", 1)
        else:
            g.add_edge(u, v, **d)
    return g


def _validate(G):
    if G.number_of_nodes() == 0:
        raise TopologyError("the topology graph is empty")
    for n, d in G.nodes(data=True):
        k = d.get("kind")
        if k not in KINDS:
            what = "has no 'kind'" if k is None else f"has kind {k!r}"
            raise TopologyError(f"node {n!r} {what}: expected one of {', '.join(KINDS)}")
        if "latency" in d and d["latency"] is not None:
            v = d["latency"]
            if isinstance(v, str):
                v = d["latency"] = as_latency(v, f"latency of node {n!r}", allow_zero=True)
            if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v < 0:
                raise TopologyError(f"node {n!r} has latency {v!r}: expected seconds >= 0")
    for u, v, d in G.edges(data=True):
        if u == v:
            raise TopologyError(f"node {u!r} has a link to itself")
        for key, parse in (("bandwidth", as_bandwidth), ("latency", as_latency)):
            x = d.get(key)
            if x is None:
                raise TopologyError(f"link {u!r} - {v!r} has no {key}")
            if isinstance(x, str):
                x = d[key] = parse(x, f"{key} of link {u!r} - {v!r}")
            if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(x) or x <= 0:
                unit = "bytes/s" if key == "bandwidth" else "seconds"
                raise TopologyError(f"link {u!r} - {v!r} has {key} {x!r}: expected a finite "
                                    f"number of {unit} > 0")
            d[key] = float(x)
        c = d.get("cables", 1)
        if isinstance(c, float) and c.is_integer():
            c = d["cables"] = int(c)
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise TopologyError(f"link {u!r} - {v!r} has cables={c!r}: expected an integer >= 1")
    for n in G.nodes:
        if G.degree(n) == 0:
            k = G.nodes[n]["kind"]
            raise TopologyError(f"{k} {n!r} has no link")
    switched = any(k != "host" for _, k in G.nodes(data="kind"))
    if switched:
        # hosts do not forward: the fabric (switches and NICs) must be connected on its own,
        # and every host must touch it
        fabric = [n for n, k in G.nodes(data="kind") if k != "host"]
        for n, k in G.nodes(data="kind"):
            if k == "host" and not any(G.nodes[m]["kind"] != "host" for m in G.adj[n]):
                raise TopologyError(f"host {n!r} links only to other hosts; in a topology with "
                                    "switches every host needs a link to a switch or NIC")
        comps = list(nx.connected_components(G.subgraph(fabric)))
        if len(comps) > 1:
            a = sorted(map(str, comps[0]))[0]
            b = sorted(map(str, comps[1]))[0]
            raise TopologyError(f"the network is disconnected: {len(comps)} separate parts "
                                f"(e.g. {a!r} cannot reach {b!r})")
    elif not nx.is_connected(G):
        comps = list(nx.connected_components(G))
        a = sorted(map(str, comps[0]))[0]
        b = sorted(map(str, comps[1]))[0]
        raise TopologyError(f"the network is disconnected: {len(comps)} separate parts "
                            f"(e.g. {a!r} cannot reach {b!r})")
