"""Reading and writing topologies: JSON node-link data, GraphML, Slurm topology.conf.

JSON is networkx node-link data: ``{"graph": {...}, "nodes": [{"id": ..,
"kind": ..}, ...], "edges": [{"source": .., "target": .., "bandwidth": ..,
"latency": ..}, ...]}``. The ``"links"`` key of networkx < 3.4 is read too.
Bandwidth and latency may be numbers (bytes/s, s) or strings with units
(``"100Gbps"``, ``"1us"``). Graph attributes ``name``, ``family``, ``params``,
``group_level`` and ``group_attrs`` are kept; ``hosts`` (a list), if present,
fixes the rank order of the hosts (default: node order).

GraphML stores the same attributes; non-scalar values (tuples, lists,
dicts) are JSON-encoded strings, listed in the graph attribute ``json_attrs``
so that they are decoded on reading.
"""

from __future__ import annotations

import json
import os

import networkx as nx

from ..errors import TopologyError, TopologyFileError
from .core import Topology

__all__ = ["load", "read_json", "write_json", "read_graphml", "write_graphml", "write",
           "to_node_link", "from_node_link", "FORMATS"]

FORMATS = ("json", "graphml", "slurm")


def _fail_read(path, exc):
    raise TopologyFileError(f"cannot read {os.fspath(path)!r}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None


def _hashable(x):
    return tuple(_hashable(v) for v in x) if isinstance(x, list) else x


def to_node_link(topo) -> dict:
    """The node-link dict (``"edges"`` key, as networkx >= 3.4 writes it)."""
    G = topo.graph
    graph = {k: v for k, v in G.graph.items() if k not in ("hosts", "json_attrs")}
    default_hosts = [n for n, k in G.nodes(data="kind") if k == "host"]
    if list(topo.hosts) != default_hosts:
        graph["hosts"] = list(topo.hosts)
    graph.setdefault("name", topo.name)
    return {
        "directed": False,
        "multigraph": False,
        "graph": graph,
        "nodes": [dict(d, id=n) for n, d in G.nodes(data=True)],
        "edges": [dict(d, source=u, target=v) for u, v, d in G.edges(data=True)],
    }


def from_node_link(data, *, source="<data>") -> Topology:
    """A :class:`Topology` from a node-link dict (``"edges"`` or ``"links"``)."""
    if not isinstance(data, dict) or "nodes" not in data:
        raise TopologyError(f"{source}: not networkx node-link data (no 'nodes' list)")
    if data.get("directed"):
        raise TopologyError(f"{source}: the graph is directed; links are full duplex, "
                            "write each link once with \"directed\": false")
    edges = data.get("edges", data.get("links"))
    if edges is None:
        raise TopologyError(f"{source}: no 'edges' (or 'links') list")
    if not isinstance(data["nodes"], list) or not isinstance(edges, list):
        raise TopologyError(f"{source}: 'nodes' and 'edges' must be lists")
    G = nx.Graph()
    graph_attrs = dict(data.get("graph") or {})
    hosts = graph_attrs.pop("hosts", None)
    G.graph.update(graph_attrs)
    for i, n in enumerate(data["nodes"]):
        if not isinstance(n, dict) or "id" not in n:
            raise TopologyError(f"{source}: node #{i} has no 'id'")
        attrs = {k: v for k, v in n.items() if k != "id"}
        if "coord" in attrs and isinstance(attrs["coord"], list):
            attrs["coord"] = tuple(attrs["coord"])
        nid = _hashable(n["id"])
        if nid in G:
            raise TopologyError(f"{source}: node {nid!r} appears twice")
        G.add_node(nid, **attrs)
    for i, e in enumerate(edges):
        if not isinstance(e, dict) or "source" not in e or "target" not in e:
            raise TopologyError(f"{source}: edge #{i} needs 'source' and 'target'")
        u, v = _hashable(e["source"]), _hashable(e["target"])
        for x in (u, v):
            if x not in G:
                raise TopologyError(f"{source}: edge #{i} ({u!r} - {v!r}) names node {x!r}, "
                                    "which is not in 'nodes'")
        attrs = {k: val for k, val in e.items() if k not in ("source", "target", "key")}
        if G.has_edge(u, v):
            raise TopologyError(f"{source}: link {u!r} - {v!r} appears twice; give one edge "
                                "with cables=N and the summed bandwidth")
        G.add_edge(u, v, **attrs)
    try:
        return Topology(G, hosts)
    except TopologyError as exc:
        raise TopologyError(f"{source}: {exc}") from None


def read_json(path) -> Topology:
    """Read networkx node-link JSON (``"edges"`` or the older ``"links"`` key)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        _fail_read(path, exc)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TopologyError(f"{os.fspath(path)}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return from_node_link(data, source=os.fspath(path))


def write_json(topo, path, *, indent=None):
    """Write node-link JSON (edges under ``"edges"``)."""
    data = to_node_link(topo)
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, default=_json_default)
            f.write("\n")
    except OSError as exc:
        raise TopologyFileError(f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}") from None


def _json_default(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


_SCALAR = (str, int, float, bool)


def write_graphml(topo, path):
    """Write GraphML; non-scalar attributes become JSON strings (see module docstring)."""
    G = topo.graph
    H = nx.Graph()
    encoded = set()

    def clean(scope, d):
        out = {}
        for k, v in d.items():
            if v is None:
                continue
            if isinstance(v, _SCALAR) and not hasattr(v, "dtype"):
                out[k] = v
            else:
                if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
                    out[k] = v.item()
                    continue
                out[k] = json.dumps(v, default=_json_default)
                encoded.add(f"{scope}:{k}")
        return out

    graph = {k: v for k, v in G.graph.items() if k not in ("hosts", "json_attrs")}
    default_hosts = [n for n, k in G.nodes(data="kind") if k == "host"]
    if list(topo.hosts) != default_hosts:
        graph["hosts"] = list(topo.hosts)
    graph.setdefault("name", topo.name)
    H.graph.update(clean("graph", graph))
    for n, d in G.nodes(data=True):
        H.add_node(n, **clean("node", d))
    for u, v, d in G.edges(data=True):
        H.add_edge(u, v, **clean("edge", d))
    if encoded:
        H.graph["json_attrs"] = json.dumps(sorted(encoded))
    try:
        nx.write_graphml(H, path)
    except OSError as exc:
        raise TopologyFileError(f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}") from None


def read_graphml(path) -> Topology:
    """Read GraphML written by :func:`write_graphml` or any tool that sets
    ``kind`` on nodes and ``bandwidth``/``latency`` on edges."""
    try:
        G = nx.read_graphml(path)
    except OSError as exc:
        _fail_read(path, exc)
    except Exception as exc:  # xml.etree.ElementTree.ParseError, networkx errors
        raise TopologyError(f"{os.fspath(path)}: invalid GraphML: {exc}") from None
    if G.is_directed():
        G = G.to_undirected()
    enc = G.graph.pop("json_attrs", None)
    if enc:
        try:
            keys = json.loads(enc)
        except json.JSONDecodeError:
            keys = []
        for item in keys:
            scope, _, key = item.partition(":")
            if scope == "graph" and key in G.graph:
                G.graph[key] = json.loads(G.graph[key])
            elif scope == "node":
                for _, d in G.nodes(data=True):
                    if key in d:
                        v = json.loads(d[key])
                        d[key] = tuple(v) if isinstance(v, list) else v
            elif scope == "edge":
                for _, _, d in G.edges(data=True):
                    if key in d:
                        d[key] = json.loads(d[key])
    hosts = G.graph.pop("hosts", None)
    try:
        return Topology(G, hosts)
    except TopologyError as exc:
        raise TopologyError(f"{os.fspath(path)}: {exc}") from None


def _sniff(path):
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".json":
        return "json"
    if ext in (".graphml", ".xml"):
        return "graphml"
    if ext == ".conf" or os.path.basename(p).lower().startswith("topology"):
        return "slurm"
    try:
        with open(p, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        _fail_read(p, exc)
    s = head.lstrip()
    if s.startswith("{"):
        return "json"
    if s.startswith("<"):
        return "graphml"
    if "switchname" in head.lower():
        return "slurm"
    raise TopologyError(f"{p}: cannot tell the file format (expected JSON node-link data, "
                        "GraphML or a Slurm topology.conf; name it .json, .graphml or .conf)")


def load(path, *, format=None, **kwargs) -> Topology:
    """Read a topology file, picking the reader from ``format``, the extension or the content.

    Parameters
    ----------
    path : str or os.PathLike
    format : {"json", "graphml", "slurm"}, optional
    **kwargs
        For Slurm files: ``bandwidth``, ``latency``, ``link_speed_unit``
        (see :func:`collectives.topology.parse_slurm`).

    Raises
    ------
    TopologyFileError
        The file cannot be read (an ``OSError``).
    TopologyError
        The content is malformed (the message names the file and, where it
        can, the line).
    """
    from .slurm import read_slurm

    if not os.path.exists(path):
        raise TopologyFileError(f"cannot read {os.fspath(path)!r}: no such file")
    if os.path.isdir(path):
        raise TopologyFileError(f"cannot read {os.fspath(path)!r}: it is a directory")
    try:
        fmt = format or _sniff(path)
        if fmt == "json":
            return read_json(path)
        if fmt == "graphml":
            return read_graphml(path)
        if fmt == "slurm":
            return read_slurm(path, **kwargs)
    except (TopologyError, TopologyFileError):
        raise
    except UnicodeDecodeError as exc:
        raise TopologyError(f"{os.fspath(path)}: not a text file in UTF-8 ({exc.reason} at byte "
                            f"{exc.start})") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # whatever a reader did not foresee in a malformed file is still a malformed file
        raise TopologyError(f"{os.fspath(path)}: malformed {fmt} topology file: {exc}") from None
    raise TopologyError(f"unknown topology format {fmt!r}: expected one of {', '.join(FORMATS)}")


def write(topo, path, *, format=None):
    """Write ``topo`` as JSON (``.json``), GraphML (``.graphml``) or topology.conf (``.conf``)."""
    from .slurm import write_slurm

    p = os.fspath(path)
    fmt = format
    if fmt is None:
        ext = os.path.splitext(p)[1].lower()
        fmt = {".json": "json", ".graphml": "graphml", ".xml": "graphml", ".conf": "slurm"}.get(ext)
        if fmt is None:
            raise TopologyError(f"{p}: cannot tell the format from the extension; use .json, "
                                ".graphml or .conf (or pass --format on the command line, format= in Python)")
    if fmt == "json":
        write_json(topo, p)
    elif fmt == "graphml":
        write_graphml(topo, p)
    elif fmt == "slurm":
        write_slurm(topo, p)
    else:
        raise TopologyError(f"unknown topology format {fmt!r}: expected one of {', '.join(FORMATS)}")
