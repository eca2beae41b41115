"""Capital cost and power of a network design, from a price list.

A design is priced part by part from its graph:

- every **cable** (an edge carries ``cables`` of them, their bandwidths summed)
  at the speed class that covers its share of the edge's bandwidth; a cable
  faster than the fastest class counts as several cables of that class;
- its **medium** from what it joins: copper (a direct-attach cable, up to 3 m)
  from a host to its top-of-rack switch and between the routers of one
  dragonfly group; short optics (up to 30 m, two transceivers) for rails,
  leaf-spine links, direct-connect links and links between scale-up nodes;
  long optics (up to 500 m, two transceivers) into a core or spine tier of
  several pods and for dragonfly global links;
- every cable end is a **port**: on a network switch (priced per port by speed
  and radix, the switch's share of chassis, ASIC and fans) or on an endpoint
  (a NIC port: a host, a NIC node, or a scale-up node's network port).
  Links inside a server (accelerator to its node switch, host to its own NIC)
  are part of the server and not priced.

Prices are in ``prices["currency"]`` (US dollars by default), power in watts
(typical, at load). :data:`DEFAULT_PRICES` lists each default with the public
source it comes from; they are round street prices of 2024 for 100-1600 Gb/s
parts, meant for comparing designs with one another, not for a quote: pass
your own with :func:`load_prices`.
"""

from __future__ import annotations

import copy
import json
import math
from numbers import Real

from ..errors import InvalidArgument, TopologyFileError

__all__ = ["DEFAULT_PRICES", "SPEEDS", "MEDIA", "load_prices", "validate_prices", "inventory",
           "design_cost"]

#: Speed classes (Gb/s) every price table must cover.
SPEEDS = (100, 200, 400, 800, 1600)
#: Cable media (length classes) every price table must cover.
MEDIA = ("copper-3m", "optical-30m", "optical-500m")

_CATALOG = ("Approximate 2024 street prices of the public web catalogs of FS.com and of the "
            "NVIDIA networking store (ConnectX, Quantum-2, Spectrum-4 and LinkX parts)")
_POWER_NIC = "NVIDIA ConnectX-6/-7/-8 adapter datasheets (typical power)"
_POWER_XCVR = ("QSFP28/QSFP-DD/OSFP transceiver datasheets: about 3.5 W at 100G, 12 W max for "
               "400G FR4 (e.g. Wavesplitter WST-QD4-FR4-C), 15-16 W at 800G")
_POWER_SWITCH = ("NVIDIA Quantum-2 QM9700 and Spectrum-4 SN5600 datasheets: system power without "
                 "optics over the port count")
_EXTRAPOLATED = "1.6T: twice the 800G figure (no volume part in 2024)"

#: The default price list (see the module docstring). ``switch_port`` holds one
#: record per speed class and radix; the other parts one entry per speed class.
DEFAULT_PRICES = {
    "currency": "USD",
    "sources": {
        "switch_port": _CATALOG + "; " + _POWER_SWITCH,
        "nic": _CATALOG + "; " + _POWER_NIC,
        "transceiver": _CATALOG + "; " + _POWER_XCVR,
        "cable": _CATALOG + " (DAC copper up to 3 m, MPO/duplex fibre patch cords)",
        "1600": _EXTRAPOLATED,
    },
    "switch_port": [
        {"speed_gbps": 100, "radix": 32, "price": 250.0, "watts": 5.0},
        {"speed_gbps": 100, "radix": 64, "price": 300.0, "watts": 5.0},
        {"speed_gbps": 200, "radix": 64, "price": 450.0, "watts": 7.0},
        {"speed_gbps": 200, "radix": 128, "price": 500.0, "watts": 7.0},
        {"speed_gbps": 400, "radix": 64, "price": 700.0, "watts": 12.0},
        {"speed_gbps": 400, "radix": 128, "price": 800.0, "watts": 12.0},
        {"speed_gbps": 800, "radix": 64, "price": 1200.0, "watts": 20.0},
        {"speed_gbps": 800, "radix": 144, "price": 1400.0, "watts": 20.0},
        {"speed_gbps": 1600, "radix": 64, "price": 2400.0, "watts": 40.0},
        {"speed_gbps": 1600, "radix": 144, "price": 2800.0, "watts": 40.0},
    ],
    "nic": {"100": {"price": 800.0, "watts": 15.0}, "200": {"price": 1200.0, "watts": 20.0},
            "400": {"price": 1800.0, "watts": 25.0}, "800": {"price": 2800.0, "watts": 35.0},
            "1600": {"price": 5600.0, "watts": 70.0}},
    "transceiver": {"100": {"price": 100.0, "watts": 3.5}, "200": {"price": 250.0, "watts": 6.0},
                    "400": {"price": 600.0, "watts": 12.0}, "800": {"price": 1000.0, "watts": 16.0},
                    "1600": {"price": 2000.0, "watts": 32.0}},
    "cable": {
        "copper-3m": {"100": 60.0, "200": 90.0, "400": 150.0, "800": 250.0, "1600": 500.0},
        "optical-30m": {"100": 40.0, "200": 50.0, "400": 80.0, "800": 100.0, "1600": 200.0},
        "optical-500m": {"100": 150.0, "200": 180.0, "400": 300.0, "800": 400.0, "1600": 800.0},
    },
}


def _amount(value, where):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidArgument(f"price list: {where} must be a number >= 0, got {value!r}")
    if value < 0:
        raise InvalidArgument(f"price list: {where} is negative ({value!r}); prices and watts "
                              "must be >= 0")
    return float(value)


def _need(d, key, where):
    if not isinstance(d, dict) or key not in d:
        raise InvalidArgument(f"price list: {where}{key!r} is missing; a price list needs "
                              f"switch_port, nic, transceiver and cable entries for every speed "
                              f"class {', '.join(map(str, SPEEDS))} Gb/s and cable media "
                              f"{', '.join(MEDIA)} (see collectives.workload.cost.DEFAULT_PRICES)")
    return d[key]


def validate_prices(prices) -> dict:
    """Check a price list and return a normalised copy.

    Raises
    ------
    collectives.errors.InvalidArgument
        A missing part, speed class or medium, or a negative or non-numeric
        price or power, naming the entry.
    """
    if not isinstance(prices, dict):
        raise InvalidArgument(f"a price list must be a dict (JSON object), got "
                              f"{type(prices).__name__}")
    out = {"currency": str(prices.get("currency", "USD")),
           "sources": dict(prices.get("sources") or {})}
    ports = _need(prices, "switch_port", "")
    if not isinstance(ports, list):
        raise InvalidArgument("price list: 'switch_port' must be a list of records "
                              "{speed_gbps, radix, price, watts}")
    recs = []
    for i, r in enumerate(ports):
        where = f"switch_port[{i}]"
        for k in ("speed_gbps", "radix", "price", "watts"):
            _need(r, k, f"{where}.")
        radix = r["radix"]
        if isinstance(radix, bool) or not isinstance(radix, int) or radix < 1:
            raise InvalidArgument(f"price list: {where}.radix must be an integer >= 1, got {radix!r}")
        recs.append({"speed_gbps": int(_amount(r["speed_gbps"], f"{where}.speed_gbps")),
                     "radix": radix, "price": _amount(r["price"], f"{where}.price"),
                     "watts": _amount(r["watts"], f"{where}.watts")})
    for s in SPEEDS:
        if not any(r["speed_gbps"] == s for r in recs):
            raise InvalidArgument(f"price list: no switch_port record for {s} Gb/s; every speed "
                                  f"class {', '.join(map(str, SPEEDS))} needs one")
    out["switch_port"] = sorted(recs, key=lambda r: (r["speed_gbps"], r["radix"]))
    for part in ("nic", "transceiver"):
        table = _need(prices, part, "")
        out[part] = {}
        for s in SPEEDS:
            e = _need(table, str(s), f"{part}.")
            out[part][str(s)] = {"price": _amount(_need(e, "price", f"{part}.{s}."),
                                                  f"{part}.{s}.price"),
                                 "watts": _amount(_need(e, "watts", f"{part}.{s}."),
                                                  f"{part}.{s}.watts")}
    cables = _need(prices, "cable", "")
    out["cable"] = {}
    for m in MEDIA:
        table = _need(cables, m, "cable.")
        out["cable"][m] = {str(s): _amount(_need(table, str(s), f"cable.{m}."), f"cable.{m}.{s}")
                           for s in SPEEDS}
    return out


def load_prices(path=None) -> dict:
    """The price list in a JSON file (same layout as :data:`DEFAULT_PRICES`), or the defaults.

    Raises
    ------
    collectives.errors.TopologyFileError
        The file cannot be read or is not JSON.
    collectives.errors.InvalidArgument
        Missing or negative prices (see :func:`validate_prices`).
    """
    if path is None:
        return validate_prices(copy.deepcopy(DEFAULT_PRICES))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise TopologyFileError(f"cannot read the price list {str(path)!r}: "
                                f"{exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TopologyFileError(f"the price list {str(path)!r} is not JSON: {exc}") from None
    return validate_prices(data)


# ---------------------------------------------------------------------- pricing
def _speed_class(gbps):
    """(class, count): the speed class covering a cable of ``gbps``, and how many
    cables of it (more than one only above the fastest class)."""
    for s in SPEEDS:
        if gbps <= s * (1 + 1e-9):
            return s, 1
    top = SPEEDS[-1]
    return top, math.ceil(gbps / top - 1e-9)


def _switch_port(prices, speed, radix):
    recs = [r for r in prices["switch_port"] if r["speed_gbps"] == speed]
    for r in recs:
        if radix <= r["radix"]:
            return r
    return recs[-1]          # beyond the largest radix: a multi-chip chassis, same per-port price


_TOR = ("edge", "leaf")       # top-of-rack tiers: hosts reach them over copper
_FAR = ("core", "spine")      # tiers across pods or units: long optics


def _medium(G, u, v, d):
    ku, kv = G.nodes[u]["kind"], G.nodes[v]["kind"]
    kind = d.get("kind")
    if kind == "global":
        return "optical-500m"
    if kind == "local":
        return "copper-3m"
    if kind == "uplink":
        return "optical-500m"
    if kind in ("nic", "torus"):
        return "optical-30m"
    tiers = (G.nodes[u].get("tier"), G.nodes[v].get("tier"))
    if "host" in (ku, kv) or "nic" in (ku, kv):
        other = v if ku in ("host", "nic") else u
        if G.nodes[other]["kind"] == "switch" and G.nodes[other].get("tier") in _TOR + (None,) \
                and G.nodes[other].get("rail") is None:
            return "copper-3m"
        if G.nodes[other]["kind"] == "switch" and G.graph.get("family") == "dragonfly":
            return "copper-3m"
        return "optical-30m"
    if any(t in _FAR for t in tiers):
        return "optical-500m"
    return "optical-30m"


def _is_server_internal(G, u, v, d):
    kind = d.get("kind")
    if kind in ("scaleup", "attach"):
        return True
    tu, tv = G.nodes[u].get("tier"), G.nodes[v].get("tier")
    # inside a multi-node server: device - node switch, node switch - NIC
    return (tu == "node" or tv == "node") and kind not in ("nic", "torus")


def _is_network_switch(G, n):
    return G.nodes[n]["kind"] == "switch" and G.nodes[n].get("tier") != "node"


def inventory(topology):
    """The network parts of a topology, for pricing at any link speed.

    Returns a dict ``{(bandwidth_per_cable, medium, end_u, end_v): cables}``
    where an end is ``("switch", radix)`` or ``("nic", 0)``, plus the count
    of network switches under the key ``"switches"``; a
    :class:`~collectives.model.network.VirtualFullMesh` is counted in closed
    form. Links inside a server are left out (see the module docstring).
    """
    from collections import Counter

    if getattr(topology, "graph", None) is None:          # a VirtualFullMesh
        n = topology.n
        inv = Counter({(topology.link_bandwidth, "optical-30m", ("nic", 0), ("nic", 0)):
                       n * (n - 1) // 2})
        return {"parts": inv, "switches": 0}
    G = topology.graph
    radix = {}
    edges = []
    for u, v, d in G.edges(data=True):
        if _is_server_internal(G, u, v, d):
            continue
        nc = int(d.get("cables", 1))
        edges.append((u, v, d["bandwidth"] / nc, nc, _medium(G, u, v, d)))
        for n in (u, v):
            if _is_network_switch(G, n):
                radix[n] = radix.get(n, 0) + nc
    inv = Counter()
    for u, v, bw, nc, medium in edges:
        ends = tuple(("switch", radix[n]) if n in radix else ("nic", 0) for n in (u, v))
        inv[(bw, medium) + ends] += nc
    return {"parts": inv, "switches": len(radix)}


def design_cost(topology, prices=None, *, bandwidth_scale=1.0) -> dict:
    """Capital cost and power of a topology's network.

    Parameters
    ----------
    topology : Topology, VirtualFullMesh or the result of :func:`inventory`
    prices : dict, optional
        A price list (default :data:`DEFAULT_PRICES`), validated here.
    bandwidth_scale : float
        Price every network link at this multiple of its bandwidth (the same
        design at another speed; links inside servers are not priced).

    Returns
    -------
    dict
        ``capital`` (currency units), ``watts``, ``currency``, ``switches``
        (network switches: node switches are part of their servers),
        ``switch_ports``, ``nic_ports``, ``cables`` (by medium and ``total``),
        ``transceivers`` and ``parts``: capital and watts per part
        (``switch_ports``, ``nics``, ``transceivers``, ``cables``).
    """
    prices = load_prices() if prices is None else validate_prices(prices)
    inv = topology if isinstance(topology, dict) and "parts" in topology else inventory(topology)
    if isinstance(bandwidth_scale, bool) or not isinstance(bandwidth_scale, Real) or \
            not bandwidth_scale > 0 or not math.isfinite(bandwidth_scale):
        raise InvalidArgument(f"bandwidth_scale must be a number > 0, got {bandwidth_scale!r}")
    parts = {k: {"capital": 0.0, "watts": 0.0}
             for k in ("switch_ports", "nics", "transceivers", "cables")}
    cables = dict.fromkeys(MEDIA, 0)
    counts = {"switch_ports": 0, "nic_ports": 0, "transceivers": 0}

    def add(part, n, price, watts=0.0):
        parts[part]["capital"] += n * price
        parts[part]["watts"] += n * watts

    for (bw, medium, *ends), n in inv["parts"].items():
        s, c = _speed_class(bw * bandwidth_scale * 8 / 1e9)
        k = n * c
        cables[medium] += k
        add("cables", k, prices["cable"][medium][str(s)])
        if medium.startswith("optical"):
            x = prices["transceiver"][str(s)]
            add("transceivers", 2 * k, x["price"], x["watts"])
            counts["transceivers"] += 2 * k
        for kind, radix in ends:
            if kind == "switch":
                r = _switch_port(prices, s, radix)
                add("switch_ports", k, r["price"], r["watts"])
                counts["switch_ports"] += k
            else:
                nic = prices["nic"][str(s)]
                add("nics", k, nic["price"], nic["watts"])
                counts["nic_ports"] += k
    return {"capital": sum(p["capital"] for p in parts.values()),
            "watts": sum(p["watts"] for p in parts.values()),
            "currency": prices["currency"], "switches": inv["switches"],
            "switch_ports": counts["switch_ports"], "nic_ports": counts["nic_ports"],
            "transceivers": counts["transceivers"],
            "cables": {**cables, "total": sum(cables.values())}, "parts": parts}
