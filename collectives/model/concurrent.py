"""Pricing flows that run at the same moment, whoever they belong to.

:func:`collectives.model.simulate` prices one schedule step by step. A
training step runs many collectives at once (every tensor-parallel group's
all-reduce, the data-parallel buckets under the backward pass), and their
flows share the links. :func:`price_concurrent` takes such a set of flows --
from any number of collectives, concatenated -- and prices them as one step of
the model: one routing, one max-min problem, the same per-flow cost as a
schedule step (``overhead + path latency + bytes / fair rate``). The caller
decides how the flow times combine into the time of each collective.

Rates only depend on which flows exist, so they are cached per pattern (the
same cache as :func:`~collectives.model.simulate`): pricing the same set of
flows with other sizes costs no second max-min solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgument
from .network import network_for
from .simulate import _solve, model_params, resolve_topology

__all__ = ["price_concurrent", "ConcurrentResult"]

_ACCEPTED = ("overhead", "reduce_bandwidth", "switch_latency", "routing")


@dataclass
class ConcurrentResult:
    """What :func:`price_concurrent` returns.

    Attributes
    ----------
    flow_time : numpy.ndarray
        Seconds of each flow: ``overhead + path latency + bytes / rate``
        (``overhead`` alone for a flow between two ranks of one host).
    rate : numpy.ndarray
        Max-min fair rate of each flow (bytes/s; ``inf`` for host-local flows).
    host_time : numpy.ndarray
        Per host (position in ``topology.hosts``): when it is done if every
        flow it sends or receives belongs to one step -- the slowest of its
        flows, plus ``(k - 1) * overhead`` for the k messages it posts (sends
        or receives, whichever are more), plus its reduction bytes over
        ``reduce_bandwidth``.
    time : float
        ``host_time.max()``: the step's time if all the flows form one step.
    link_ids, link_bytes : numpy.ndarray
        Network ids of the directed links carrying traffic and the bytes on each.
    """

    flow_time: np.ndarray
    rate: np.ndarray
    host_time: np.ndarray
    time: float
    link_ids: np.ndarray
    link_bytes: np.ndarray
    network: object = field(repr=False, default=None)

    def hottest_links(self, n: int = 10) -> list:
        """The ``n`` busiest directed links: ``[(u, v, bytes, busy_seconds), ...]``."""
        if not len(self.link_ids):
            return []
        busy = self.link_bytes / self.network.capacity(self.link_ids)
        order = np.argsort(-busy, kind="stable")[:n]
        names = self.network.link_names(self.link_ids[order])
        return [(u, v, float(self.link_bytes[i]), float(busy[i]))
                for (u, v), i in zip(names, order)]


def price_concurrent(topology, src_hosts, dst_hosts, nbytes, reduce_bytes_per_host=None,
                     **params) -> ConcurrentResult:
    """Price a set of flows that run at the same moment as one max-min problem.

    Parameters
    ----------
    topology : Topology, VirtualFullMesh, Network or spec string
        Where the flows run (a spec is resolved as :func:`~collectives.model.predict` does).
    src_hosts, dst_hosts : array_like of int
        Source and destination of each flow, as host indices (positions in
        ``topology.hosts``), one entry per flow.
    nbytes : array_like of float
        Bytes of each flow.
    reduce_bytes_per_host : array_like of float, optional
        Bytes each host reduces in this step (the gamma term of ``host_time``).
    **params
        Model constants as :func:`~collectives.model.predict` takes them:
        ``overhead=``, ``reduce_bandwidth=``, ``switch_latency=``, ``routing=``.

    Returns
    -------
    ConcurrentResult
        Per-flow times and rates, per-host times and the link loads.

    Raises
    ------
    collectives.errors.InvalidArgument
        Unknown parameters, arrays of different lengths, negative sizes or
        host indices outside the topology.
    """
    unknown = set(params) - set(_ACCEPTED)
    if unknown:
        raise InvalidArgument(f"price_concurrent: unknown parameter(s) "
                              f"{', '.join(sorted(unknown))}; accepted: {', '.join(_ACCEPTED)}")
    mp = model_params(params)
    if hasattr(topology, "route") and hasattr(topology, "capacity"):
        net = topology
    else:
        net = network_for(resolve_topology(topology), mp["routing"], mp["switch_latency"])
    topo = net.topo
    nhosts = int(topo.num_hosts)
    src = np.asarray(src_hosts, dtype=np.int64).reshape(-1)
    dst = np.asarray(dst_hosts, dtype=np.int64).reshape(-1)
    nb = np.asarray(nbytes, dtype=np.float64).reshape(-1)
    if not (len(src) == len(dst) == len(nb)):
        raise InvalidArgument(f"price_concurrent: src_hosts, dst_hosts and nbytes must have one "
                              f"entry per flow, got {len(src)}, {len(dst)} and {len(nb)}")
    if len(nb) and (not np.isfinite(nb).all() or nb.min() < 0):
        raise InvalidArgument("price_concurrent: nbytes must be finite and >= 0")
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= nhosts):
        raise InvalidArgument(f"price_concurrent: host indices must be in 0..{nhosts - 1}")
    red = None
    if reduce_bytes_per_host is not None:
        red = np.asarray(reduce_bytes_per_host, dtype=np.float64).reshape(-1)
        if len(red) != nhosts:
            raise InvalidArgument(f"price_concurrent: reduce_bytes_per_host needs one entry per "
                                  f"host ({nhosts}), got {len(red)}")
    host_time = np.zeros(nhosts)
    if len(src) == 0:
        if red is not None and math.isfinite(mp["reduce_bandwidth"]):
            host_time += red / mp["reduce_bandwidth"]
        z = np.zeros(0)
        return ConcurrentResult(z, z, host_time, float(host_time.max(initial=0.0)),
                                np.zeros(0, dtype=np.int64), z, net)
    rates, lat, inc = _solve(net, src, dst)
    with np.errstate(divide="ignore", invalid="ignore"):
        flow_time = mp["overhead"] + lat + np.where(np.isinf(rates), 0.0, nb / rates)
    np.maximum.at(host_time, src, flow_time)
    np.maximum.at(host_time, dst, flow_time)
    if mp["overhead"] > 0:
        # posting is serial: k messages out (or in) cost k-1 more overheads, as in a schedule step
        k = np.maximum(np.bincount(src, minlength=nhosts), np.bincount(dst, minlength=nhosts))
        host_time += np.maximum(k - 1, 0) * mp["overhead"]
    if red is not None and math.isfinite(mp["reduce_bandwidth"]):
        host_time += red / mp["reduce_bandwidth"]
    lb = inc.link_sum(nb)
    used = lb > 0
    return ConcurrentResult(flow_time, rates, host_time, float(host_time.max()),
                            inc.links[used], lb[used], net)
