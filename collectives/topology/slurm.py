"""Slurm ``topology.conf`` (tree plugin) and Slurm hostlist expressions.

The tree plugin describes switches one per line::

    # leaf switches
    SwitchName=s0 Nodes=tux[0-3,12] LinkSpeed=100
    SwitchName=s1 Nodes=tux[4-7]
    SwitchName=top Switches=s[0-1]

Keys are case-insensitive; ``#`` starts a comment; a trailing backslash
continues a line. ``LinkSpeed`` is an arbitrary integer in Slurm itself; here it
is the bandwidth of the links listed on that line (to the ``Nodes`` and
``Switches`` below that switch). A bare number is read in ``link_speed_unit``
(default ``"Gbps"``); a value with a unit (``100Gbps``, ``25GB/s``) is read as
written. Links of lines without ``LinkSpeed`` get ``bandwidth``; all links get
``latency`` (topology.conf has no latency).
"""

from __future__ import annotations

import os
import re

import networkx as nx

from ..errors import TopologyError, TopologyFileError
from .. import units
from ._text import split_top_level
from .core import DEFAULT_LATENCY, Topology, as_bandwidth, as_latency

__all__ = ["expand_hostlist", "compress_hostlist", "read_slurm", "parse_slurm", "write_slurm",
           "format_slurm"]

_KEYS = {"switchname": "SwitchName", "switches": "Switches", "nodes": "Nodes",
         "linkspeed": "LinkSpeed"}


def _expand_ranges(body, text):
    out = []
    for item in body.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise TopologyError(f"hostlist {text!r}: cannot read range {item!r} "
                                "(expected N or N-M with digits)")
        lo_s, hi_s = m.group(1), m.group(2) or m.group(1)
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise TopologyError(f"hostlist {text!r}: range {item!r} runs backwards")
        if hi - lo > 1_000_000:
            raise TopologyError(f"hostlist {text!r}: range {item!r} is too large")
        width = len(lo_s)
        out += [str(i).zfill(width) for i in range(lo, hi + 1)]
    return out


def expand_hostlist(text) -> list:
    """``"tux[0-3,12],login"`` -> ``["tux0", "tux1", "tux2", "tux3", "tux12", "login"]``.

    Supports zero padding (``n[01-10]``), several brackets in one name
    (``r[1-2]n[1-2]`` is the cartesian product) and comma lists. Raises
    TopologyError for unbalanced brackets, backwards or non-numeric ranges.
    """
    if not isinstance(text, str):
        raise TopologyError(f"a hostlist must be a string, got {text!r}")
    out = []
    for part in split_top_level(text.strip(), what=f"hostlist {text!r}", brackets="[]", max_depth=1):
        part = part.strip()
        if not part:
            raise TopologyError(f"hostlist {text!r}: empty name")
        names = [""]
        pos = 0
        for m in re.finditer(r"\[([^\]]*)\]", part):
            lit = part[pos:m.start()]
            names = [n + lit for n in names]
            names = [n + s for n in names for s in _expand_ranges(m.group(1), text)]
            pos = m.end()
        names = [n + part[pos:] for n in names]
        for n in names:
            if not n or any(c in n for c in "[] \t"):
                raise TopologyError(f"hostlist {text!r}: bad name {n!r}")
        out += names
    return out


def compress_hostlist(names) -> str:
    """The inverse of :func:`expand_hostlist`: ``["n1", "n2", "n3", "x"]`` -> ``"n[1-3],x"``.

    Names sharing a prefix and zero-padding are merged into one bracket; a
    number without a leading zero joins the padded group of its own width, so
    ``n01`` ... ``n16`` give ``n[01-16]``. Groups appear in order of their
    first name.
    """
    parsed = []
    padded = set()      # (prefix, width) of every zero-padded number
    for n in names:
        m = re.fullmatch(r"(.*?)(\d+)", n)
        if not m:
            parsed.append((n, None, None))
            continue
        pre, digits = m.group(1), m.group(2)
        if digits.startswith("0") and len(digits) > 1:
            padded.add((pre, len(digits)))
        parsed.append((pre, digits, int(digits)))
    groups = {}
    for pre, digits, value in parsed:
        if digits is None:
            groups.setdefault((pre, None), [])
            continue
        width = len(digits) if (pre, len(digits)) in padded else 0
        groups.setdefault((pre, width), []).append(value)
    out = []
    for (pre, width), nums in groups.items():
        if width is None:
            out.append(pre)
            continue
        nums = sorted(set(nums))
        ranges = []
        start = prev = nums[0]
        for x in nums[1:] + [None]:
            if x is not None and x == prev + 1:
                prev = x
                continue
            a, b = str(start).zfill(width), str(prev).zfill(width)
            ranges.append(a if start == prev else f"{a}-{b}")
            if x is not None:
                start = prev = x
        if len(ranges) == 1 and "-" not in ranges[0]:
            out.append(pre + ranges[0])
        else:
            out.append(f"{pre}[{','.join(ranges)}]")
    return ",".join(out)


def _speed(value, unit, where):
    v = value.strip()
    try:
        if re.fullmatch(r"[0-9.eE+-]+", v):
            return units.parse_bandwidth(v + unit, name="LinkSpeed")
        return units.parse_bandwidth(v, name="LinkSpeed")
    except ValueError as exc:
        raise TopologyError(f"{where}: {exc}") from None


def parse_slurm(text, *, source="topology.conf", bandwidth="100Gbps", latency=DEFAULT_LATENCY,
                link_speed_unit="Gbps"):
    """Build a :class:`Topology` from the text of a ``topology.conf``.

    Parameters
    ----------
    text : str
    source : str
        File name used in error messages (``source:line: ...``).
    bandwidth : float or str
        Link bandwidth where a line has no ``LinkSpeed``.
    latency : float or str
        Latency of every link.
    link_speed_unit : str
        Unit of a bare ``LinkSpeed`` number (default ``"Gbps"``).
    """
    bw_default = as_bandwidth(bandwidth, "bandwidth")
    lat = as_latency(latency, "latency")
    switches = {}
    order = []
    # join continuation lines, remembering where each logical line starts
    logical = []
    buf, start = "", None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if start is None:
            start = no
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append((start, buf.strip()))
        buf, start = "", None
    if buf.strip():
        logical.append((start, buf.strip()))
    for no, line in logical:
        where = f"{source}:{no}"
        fields = {}
        for tok in line.split():
            key, eq, val = tok.partition("=")
            if not eq or not val:
                raise TopologyError(f"{where}: cannot read {tok!r}: expected Key=Value "
                                    "(SwitchName=, Switches=, Nodes=, LinkSpeed=)")
            k = key.lower()
            if k in ("blockname", "blocksizes"):
                raise TopologyError(f"{where}: {key}= belongs to Slurm's block topology plugin; "
                                    "only the tree plugin (SwitchName=) is supported")
            if k not in _KEYS:
                raise TopologyError(f"{where}: unknown key {key!r}: expected SwitchName, "
                                    "Switches, Nodes or LinkSpeed")
            if _KEYS[k] in fields:
                raise TopologyError(f"{where}: {_KEYS[k]} given twice")
            fields[_KEYS[k]] = val
        if "SwitchName" not in fields:
            raise TopologyError(f"{where}: a line must start with SwitchName=")
        try:
            names = expand_hostlist(fields["SwitchName"])
            nodes = expand_hostlist(fields["Nodes"]) if "Nodes" in fields else []
            children = expand_hostlist(fields["Switches"]) if "Switches" in fields else []
        except TopologyError as exc:
            raise TopologyError(f"{where}: {exc}") from None
        if len(names) != 1:
            raise TopologyError(f"{where}: SwitchName={fields['SwitchName']} names "
                                f"{len(names)} switches; give one name per line")
        name = names[0]
        if name in switches:
            raise TopologyError(f"{where}: switch {name!r} is already defined on line "
                                f"{switches[name]['line']}")
        if not nodes and not children:
            raise TopologyError(f"{where}: switch {name!r} has neither Nodes= nor Switches=")
        speed = _speed(fields["LinkSpeed"], link_speed_unit, where) if "LinkSpeed" in fields else bw_default
        switches[name] = {"line": no, "nodes": nodes, "children": children, "speed": speed}
        order.append(name)
    if not switches:
        raise TopologyError(f"{source}: no SwitchName= line")
    G = nx.Graph(name=os.path.basename(source), family=None, group_level="switch")
    hosts = []
    leaf_of = {}        # host -> the one switch whose Nodes= lists it
    below = nx.DiGraph()    # switch -> the switches its Switches= lists
    for name in order:
        G.add_node(name, kind="switch")
        below.add_node(name)
    for name in order:
        sw = switches[name]
        for h in sw["nodes"]:
            if h in switches:
                raise TopologyError(f"{source}:{sw['line']}: {h!r} is listed in Nodes= but is a "
                                    f"switch (line {switches[h]['line']})")
            first = leaf_of.setdefault(h, name)
            if first != name:
                # Slurm's tree plugin puts a node under exactly one leaf switch
                raise TopologyFileError(
                    f"{source}:{sw['line']}: node {h!r} is listed under switch {name!r} and under "
                    f"switch {first!r} (line {switches[first]['line']}); a node belongs to one "
                    "leaf switch: remove it from one of the two lines")
            if h not in G:
                hosts.append(h)
                G.add_node(h, kind="host")
            G.add_edge(name, h, bandwidth=sw["speed"], latency=lat, cables=1)
        for c in sw["children"]:
            if c not in switches:
                raise TopologyError(f"{source}:{sw['line']}: switch {name!r} lists {c!r} in "
                                    "Switches= but no line defines SwitchName=" + c)
            if c == name:
                raise TopologyError(f"{source}:{sw['line']}: switch {name!r} lists itself")
            G.add_edge(name, c, bandwidth=sw["speed"], latency=lat, cables=1)
            below.add_edge(name, c)
    try:
        loop = [u for u, _ in nx.find_cycle(below)]
    except nx.NetworkXNoCycle:
        loop = None
    if loop:
        path = " -> ".join(f"{s!r} (line {switches[s]['line']})" for s in loop + loop[:1])
        raise TopologyFileError(f"{source}: the switches form a loop through Switches=: {path}; "
                                "each switch must list only switches below it")
    try:
        return Topology(G, hosts)
    except TopologyError as exc:
        raise TopologyError(f"{source}: {exc}") from None


def read_slurm(path, **kwargs):
    """Read a Slurm ``topology.conf`` file; keyword arguments as :func:`parse_slurm`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise TopologyFileError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    return parse_slurm(text, source=os.fspath(path), **kwargs)


def _num(x):
    r = round(x)
    return str(int(r)) if abs(x - r) < 1e-9 * max(1.0, abs(x)) else repr(x)


def format_slurm(topo, *, link_speed_unit="Gbps") -> str:
    """The ``topology.conf`` text of a tree-like topology.

    Each switch lists the hosts and the switches one level closer to the hosts
    (level = hops to the nearest host), so multi-rooted trees such as fat-trees
    are written too. Raises TopologyError for links between switches of the
    same level (dragonfly local links), host-host links, or a switch whose
    child links differ in bandwidth.
    """
    G = topo.graph
    if not topo.switches or topo.nics:
        raise TopologyError(f"{topo.name}: topology.conf describes switch trees; this topology "
                            "has no switches or has NICs")
    per_unit = units.parse_bandwidth("1" + link_speed_unit)
    level = topo.hop_levels()
    for u, v in G.edges:
        if level[u] == level[v]:
            raise TopologyError(f"{topo.name}: link {u!r} - {v!r} joins two nodes of the same "
                                "level; topology.conf can only describe (multi-rooted) trees")
    lines = [f"# {topo.name}: written by collectives; LinkSpeed in {link_speed_unit}",
             "# (one line per switch: the hosts and the switches below it)"]
    hpos = topo.host_index
    sw = sorted(topo.switches, key=lambda s: (level[s], min(
        (hpos[h] for h in G.adj[s] if h in hpos), default=len(hpos)), topo.node_index[s]))
    for s in sw:
        kids = [v for v in G.adj[s] if level[v] < level[s]]
        nodes = sorted((v for v in kids if G.nodes[v]["kind"] == "host"), key=hpos.get)
        subs = [v for v in kids if G.nodes[v]["kind"] != "host"]
        bws = {G.edges[s, v]["bandwidth"] for v in kids}
        if len(bws) > 1:
            raise TopologyError(f"{topo.name}: the links below switch {s!r} differ in bandwidth; "
                                "topology.conf has one LinkSpeed per switch line")
        if any(G.edges[s, v].get("cables", 1) != 1 for v in kids):
            raise TopologyError(f"{topo.name}: switch {s!r} has bundled cables, which "
                                "topology.conf cannot express")
        parts = [f"SwitchName={s}"]
        if subs:
            parts.append(f"Switches={compress_hostlist(subs)}")
        if nodes:
            parts.append(f"Nodes={compress_hostlist(nodes)}")
        if bws:
            parts.append(f"LinkSpeed={_num(bws.pop() / per_unit)}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def write_slurm(topo, path, **kwargs):
    """Write ``format_slurm`` output to ``path``."""
    text = format_slurm(topo, **kwargs)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise TopologyFileError(f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}") from None
