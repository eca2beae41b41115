"""Topology spec strings for the command line.

Grammar: ``FAMILY[:OPTION=VALUE[,OPTION=VALUE...]]``; the first option of a
family may be given without its name (``fat-tree:8``, ``torus:4x4x4``).
Option names are case-insensitive and ``_`` equals ``-``.

=============  =========================================  ================================
family         options (required first)                   example
=============  =========================================  ================================
star           n                                          ``star:n=8``
leaf-spine     leaves, hosts, spines, uplink-bw,          ``leaf-spine:leaves=4,hosts=8,spines=2``
               uplink-lat
fat-tree       k, oversubscription (alias oversub), planes ``fat-tree:k=8,oversub=2``
dragonfly      a, p, h, g (alias groups), arrangement,    ``dragonfly:a=4,p=2,h=2``
               local-bw, local-lat, global-bw, global-lat
full-mesh      n                                          ``full-mesh:n=16``
ring           n                                          ``ring:n=8``
torus          dims (``4x4x4``)                           ``torus:4x4x4``
hypercube      d                                          ``hypercube:d=6``
rail-optimized nodes, g, rails, leaf, oversubscription,     ``rail-optimized:nodes=64,g=8,leaf=16``
               spines, scaleup-bw, scaleup-lat
rail-only      nodes, g, rails, scaleup-bw, scaleup-lat   ``rail-only:nodes=64,g=8``
scaleup-torus  dims, g, cables, scaleup-bw, scaleup-lat   ``scaleup-torus:4x4x4,g=8``
multi-node     nodes, devices, intra (switch|mesh), nics, ``multi-node:nodes=4,devices=8``
               intra-bw, intra-lat, nic-bw, nic-lat,
               inter (a nested spec in parentheses:
               ``inter=(fat-tree:k=4)``)
=============  =========================================  ================================

Every family also takes ``bw`` (link bandwidth, e.g. ``100Gbps``,
``12.5GB/s``) and ``lat`` (link latency, e.g. ``1us``); switched families take
``switch-lat`` (per switch traversal). Without them links are 100 Gb/s and
500 ns (multi-node: the network default is 400 Gb/s).
"""

from __future__ import annotations

import difflib
import os

from ..errors import TopologyError, TopologyFileError
from ._text import split_top_level
from .core import Topology

__all__ = ["from_spec", "resolve", "FAMILIES", "is_spec"]

_INT, _BW, _LAT, _STR = "int", "bw", "lat", "str"

_COMMON = {"bw": ("link_bandwidth", _BW), "lat": ("link_latency", _LAT)}
_SWITCH = {"switch-lat": ("switch_latency", _LAT)}
_SCALEUP = {"scaleup-bw": ("scaleup_bandwidth", _BW), "scaleup-lat": ("scaleup_latency", _LAT)}

FAMILIES = {
    "star": ("star", ["n"], {"n": ("n", _INT), **_SWITCH}),
    "leaf-spine": ("leaf_spine", ["leaves", "hosts", "spines"],
                   {"leaves": ("leaves", _INT), "hosts": ("hosts_per_leaf", _INT),
                    "hosts-per-leaf": ("hosts_per_leaf", _INT), "spines": ("spines", _INT),
                    "uplink-bw": ("uplink_bandwidth", _BW), "uplink-lat": ("uplink_latency", _LAT),
                    **_SWITCH}),
    "fat-tree": ("fat_tree", ["k"], {"k": ("k", _INT), "oversubscription": ("oversubscription", _INT),
                                     "oversub": ("oversubscription", _INT),
                                     "planes": ("planes", _INT), **_SWITCH}),
    "dragonfly": ("dragonfly", ["a", "p", "h"],
                  {"a": ("a", _INT), "p": ("p", _INT), "h": ("h", _INT), "g": ("groups", _INT),
                   "groups": ("groups", _INT), "arrangement": ("arrangement", _STR),
                   "local-bw": ("local_bandwidth", _BW), "local-lat": ("local_latency", _LAT),
                   "global-bw": ("global_bandwidth", _BW), "global-lat": ("global_latency", _LAT),
                   **_SWITCH}),
    "full-mesh": ("full_mesh", ["n"], {"n": ("n", _INT)}),
    "ring": ("ring", ["n"], {"n": ("n", _INT)}),
    "torus": ("torus", ["dims"], {"dims": ("dims", _STR)}),
    "hypercube": ("hypercube", ["d"], {"d": ("d", _INT)}),
    "rail-optimized": ("rail_optimized", ["nodes"],
                       {"nodes": ("nodes", _INT), "g": ("accelerators_per_node", _INT),
                        "accelerators": ("accelerators_per_node", _INT), "rails": ("rails", _INT),
                        "leaf": ("nodes_per_leaf", _INT), "nodes-per-leaf": ("nodes_per_leaf", _INT),
                        "oversubscription": ("oversubscription", _INT),
                        "oversub": ("oversubscription", _INT), "spines": ("spines", _INT),
                        **_SCALEUP, **_SWITCH}),
    "rail-only": ("rail_only", ["nodes"],
                  {"nodes": ("nodes", _INT), "g": ("accelerators_per_node", _INT),
                   "accelerators": ("accelerators_per_node", _INT), "rails": ("rails", _INT),
                   **_SCALEUP, **_SWITCH}),
    "scaleup-torus": ("scaleup_torus", ["dims"],
                      {"dims": ("dims", _STR), "g": ("accelerators_per_node", _INT),
                       "accelerators": ("accelerators_per_node", _INT),
                       "cables": ("cables_per_link", _INT), **_SCALEUP, **_SWITCH}),
    "multi-node": ("multi_node", ["nodes", "devices"],
                   {"nodes": ("nodes", _INT), "devices": ("devices_per_node", _INT),
                    "devices-per-node": ("devices_per_node", _INT), "intra": ("intra", _STR),
                    "nics": ("nics_per_node", _INT), "inter": ("inter", _STR),
                    "intra-bw": ("intra_bandwidth", _BW), "intra-lat": ("intra_latency", _LAT),
                    "nic-bw": ("nic_bandwidth", _BW), "nic-lat": ("nic_latency", _LAT)}),
}

_ALIASES = {name.replace("-", ""): name for name in FAMILIES}
_ALIASES.update({"fattree": "fat-tree", "clos": "leaf-spine", "mesh": "full-mesh",
                 "multinode": "multi-node", "df": "dragonfly", "rail": "rail-optimized",
                 "railopt": "rail-optimized", "sutorus": "scaleup-torus"})


def _family(name, text):
    key = name.strip().lower().replace("_", "").replace("-", "")
    fam = _ALIASES.get(key)
    if fam is None:
        near = difflib.get_close_matches(name.strip().lower(), list(FAMILIES), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise TopologyError(f"unknown topology {name.strip()!r} in {text!r}{hint}: expected one of "
                            f"{', '.join(FAMILIES)}, or a file (.json, .graphml, topology.conf)")
    return fam


def is_spec(text) -> bool:
    """True if ``text`` names a known family (``"fat-tree:k=8"``, ``"torus:4x4"``)."""
    if not isinstance(text, str):
        return False
    name = text.split(":", 1)[0].strip().lower().replace("_", "").replace("-", "")
    return name in _ALIASES


def from_spec(text) -> Topology:
    """Build a topology from a spec string such as ``"fat-tree:k=8,bw=200Gbps"``.

    Raises
    ------
    TopologyError
        Unknown family or option, a missing required option, a value that is
        not an integer or not a bandwidth/latency, or an impossible topology.
    """
    from .direct import full_mesh, hypercube, ring, torus
    from .dragonfly import dragonfly
    from .multinode import multi_node
    from .rail import rail_only, rail_optimized, scaleup_torus
    from .switched import fat_tree, leaf_spine, star

    builders = {"star": star, "leaf_spine": leaf_spine, "fat_tree": fat_tree,
                "dragonfly": dragonfly, "full_mesh": full_mesh, "ring": ring, "torus": torus,
                "hypercube": hypercube, "multi_node": multi_node,
                "rail_optimized": rail_optimized, "rail_only": rail_only,
                "scaleup_torus": scaleup_torus}

    if not isinstance(text, str) or not text.strip():
        raise TopologyError(f"empty topology spec {text!r}: expected e.g. 'fat-tree:k=8'")
    name, _, body = text.strip().partition(":")
    fam = _family(name, text)
    func_name, required, options = FAMILIES[fam]
    options = {**options, **_COMMON} if fam != "multi-node" else \
        {**options, "bw": ("link_bandwidth", _BW), "lat": ("link_latency", _LAT)}
    kwargs = {}
    items = [p.strip() for p in split_top_level(body, what=f"spec {text!r}")] if body.strip() else []
    for pos, item in enumerate(items):
        if not item:
            raise TopologyError(f"spec {text!r}: empty option")
        key, eq, val = item.partition("=")
        if not eq:
            if pos == 0:
                key, val = required[0], item
            else:
                raise TopologyError(f"spec {text!r}: option {item!r} needs a name "
                                    f"(e.g. {required[0]}={item})")
        key = key.strip().lower().replace("_", "-")
        val = val.strip()
        if key not in options:
            near = difflib.get_close_matches(key, list(options), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TopologyError(f"spec {text!r}: unknown option {key!r} for {fam}{hint}; options: "
                                f"{', '.join(options)}")
        arg, typ = options[key]
        if arg in kwargs:
            raise TopologyError(f"spec {text!r}: option {key!r} given twice")
        if typ == _INT:
            try:
                v = int(val)
            except ValueError:
                raise TopologyError(f"spec {text!r}: {key}={val!r} must be an integer") from None
        elif typ == _STR:
            v = val
            if arg == "inter" and v.startswith("(") and v.endswith(")"):
                v = v[1:-1]
        else:
            v = val            # the builder converts units and reports errors
        if not val:
            raise TopologyError(f"spec {text!r}: option {key!r} has no value")
        kwargs[arg] = v
    missing = [r for r in required if options[r][0] not in kwargs]
    if missing:
        example = ",".join(f"{r}=N" for r in required)
        raise TopologyError(f"spec {text!r}: {fam} needs {', '.join(missing)} "
                            f"(e.g. {fam}:{example})")
    func = builders[func_name]
    if fam in ("full-mesh", "ring", "star", "hypercube", "torus", "fat-tree"):
        first = kwargs.pop(options[required[0]][0])
        topo = func(first, **kwargs)
    else:
        topo = func(**kwargs)
    return topo


def resolve(spec_or_path, **load_kwargs) -> Topology:
    """A :class:`Topology` from a Topology, a spec string or a file path.

    An existing file wins over a spec of the same name. A string that is
    neither a spec nor an existing file raises TopologyFileError if it looks
    like a path (has a directory separator or a file extension) and
    TopologyError otherwise.
    """
    from .io import load

    if isinstance(spec_or_path, Topology):
        return spec_or_path
    if isinstance(spec_or_path, os.PathLike):
        return load(spec_or_path, **load_kwargs)
    if not isinstance(spec_or_path, str):
        raise TopologyError(f"expected a topology, a spec string or a file path, got {spec_or_path!r}")
    text = spec_or_path.strip()
    if text and os.path.exists(text):
        return load(text, **load_kwargs)
    if is_spec(text):
        return from_spec(text)
    ext = os.path.splitext(text)[1].lower()
    if os.sep in text or "/" in text or ext in (".json", ".graphml", ".xml", ".conf"):
        raise TopologyFileError(f"cannot read {text!r}: no such file")
    _family(text.split(":", 1)[0], text)     # raises with the list of families
    raise TopologyError(f"cannot use {text!r} as a topology")  # pragma: no cover
