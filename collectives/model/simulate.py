"""Pricing a schedule on a topology: :func:`simulate`, :func:`predict`, :func:`message_times`.

The cost of one step (Design, "The model"):

* every message is a flow, routed on the topology (:mod:`.network`);
* concurrent flows share each directed link by max-min fairness
  (:mod:`.maxmin`);
* a flow takes ``overhead + path latency + bytes / fair rate``; a rank that
  posts k messages in one step (sends or receives, whichever are more) pays
  ``(k - 1) * overhead`` more, since posting is serial. ``overhead`` is the
  software cost of one message (posting it, matching it, completing it),
  counted once per message on the critical path.

Host terms, each a constant of :data:`DEFAULTS`, on by default where a real
host pays them (the formulas are per rank and step; "machine" is where the
rank runs, its host unless ``machines=`` says otherwise):

* the call: every rank pays ``call_overhead`` once per collective call
  before its first message (the Python call, the plan lookup, the
  executor's start and finish); an emulated call pays
  :data:`EMULATION_CALL_OVERHEAD` more (its holds);
* copies: a rank's local copies (Bruck's rotations, hierarchical packing, an
  out-of-place input copy) of ``c`` bytes in one step take (:func:`copy_time`)
  ``h / cache_copy_bandwidth + (c - h) * max(1 / copy_bandwidth, k /
  memory_bandwidth)`` with ``h = min(c, cache_bytes)``: what fits in the
  core's cache copies at cache speed, the rest at one core's copy speed, or
  at the machine's memory bandwidth split over the k ranks of its machine
  that copy in the same step when that is less. The executor runs a step's
  copies before it posts the step's messages, so they delay its messages;
* reductions: ``reduce_bytes * max(s / reduce_bandwidth, k / memory_bandwidth)``
  (the core's speed, or the machine's memory bandwidth shared by the k ranks
  that reduce in the step), of which only the part not hidden behind the
  transfer counts: a message of S segments (``segment_bytes``, the
  executor's) is reduced segment by segment as it arrives, so a reduction R
  behind a transfer T adds ``max(0, R - T) + min(T, R) / S`` after the last
  byte (:func:`reduction_tail`; S = 1 leaves all of R: the gamma term);
* shared cores: ranks of one machine beyond its ``cores`` take turns, so the
  CPU work of a rank (its overheads, copies and reductions) takes s = ``max(1,
  k / cores)`` times longer, k the ranks of its machine busy in the step
  (:func:`host_shares`); a rank that shares a core also gets ``1/s`` of its
  cache;
* waiting for a core: on a machine whose busy ranks outnumber its cores
  (``s > 1`` above), a rank that receives in a step waits ``(s - 1) *
  core_wait`` after its messages for a core to see them and go on
  (:func:`core_wait`): the core is running another rank, which keeps it
  until it waits itself. It is the rank's own time, not the message's, so
  an emulated link's hold (:func:`message_times`) leaves it out;
* ``HOST_TERMS_OFF`` switches them all off (overheads and core_wait 0, no
  cache, reduce, copy and memory bandwidths and segment size infinite, a
  core per rank): the network alone.
  ``SimulationResult.breakdown`` says how much of a time each part is.

Per-rank critical path (``critical_path=True``, the default): the schedule
is a DAG over (rank, step). A rank starts step s+1 when its own operations of
step s are done, not when the slowest rank's are; a message starts when both
its sender and its receiver have reached its step and takes its flow time
from the step's max-min solution (the step's flows still share links). The
schedule's time is the latest rank's finish. With every rank equally busy
(uniform, contention-free networks) this is the sum of the steps' slowest
ranks, the textbook formulas; ``critical_path=False`` prices every step at
its slowest rank (lockstep) everywhere.

A repeated pattern grows, in the long run, by its slowest rank's step time
per repetition (every dependency of a rank costs at most that rank's own step
time), so a group of one pattern is advanced rank by rank until its per-rank
advance is the same for every rank (then the rest is closed form) or for at
most ``transient`` repetitions, after which it goes on in lockstep from its
latest rank (an upper bound that differs from the exact DAG by at most the
spread of the ranks' start times).

A step group whose ``repeat`` steps share one pattern (same sources,
destinations and sizes) is priced once. A group whose repetitions differ (the
peer moves, as in a pairwise exchange) is priced at every repetition when it
has at most ``max_samples`` of them, else at ``max_samples`` evenly spaced
ones whose mean stands for the rest (``SimulationResult.exact`` says which);
such a sampled group is priced in lockstep from its latest rank.

Sizes that do not split into whole blocks (an all-to-all of 256 MiB on 16,512
ranks) are priced at the largest size below that does, as nccl-tests does:
see :func:`priced_nbytes`; ``SimulationResult.nbytes`` is the size priced.

Max-min rates depend only on which flows exist, not on their sizes, so they
are cached per pattern: a size sweep routes and solves each pattern once.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np

from ..algorithms import COLLECTIVES
from ..errors import InvalidArgument, ModelError
from ..schedule import COPY, RECV_REDUCE, SEND
from .maxmin import incidence, maxmin
from .network import Network, VirtualFullMesh, network_for

__all__ = ["DEFAULTS", "HOST_TERMS_OFF", "EMULATION_CALL_OVERHEAD", "CORE_WAIT", "copy_time",
           "HOST_PARTS",
           "simulate", "predict", "message_times",
           "SimulationResult", "machines_of", "host_shares", "core_wait", "reduction_tail",
           "resolve_topology", "placement_of", "model_params", "priced_nbytes", "COLLECTIVES"]

#: Default of ``core_wait`` (see :data:`DEFAULTS`): what 4 emulated ranks on the 2-core development
#: VM took beyond the model without it, per step in which a rank receives, fitted by least squares
#: over every all-reduce and all-to-all algorithm at 64 and 256 KiB in four quiet runs of
#: bench/emulation_agreement.py (load 0.8-1.1; 3.7-25 us run by run, 15.7 us over all four).
#: ``collectives calibrate`` run with more ranks than cores measures it on the machine at hand.
CORE_WAIT = 15.0e-6

#: Model constants and their defaults (override any of them with keyword arguments).
#: The host terms (overhead, call_overhead, reduce_bandwidth, copy_bandwidth,
#: cache_copy_bandwidth, cache_bytes, memory_bandwidth, segment_bytes, cores, core_wait) are on
#: by default where a real host pays them; :data:`HOST_TERMS_OFF` switches them all off. The new
#: host figures are what ``mpiexec -n 2 collectives calibrate`` measured on the development VM (a
#: 2-core Intel Xeon, 2 MiB of L2 per core, MPICH) in nine runs while other work loaded it (load
#: 3-8): the best of the runs where one figure stands out (other load only lowers a rate or raises
#: a cost), else the typical one.
DEFAULTS = {
    "overhead": 1.0e-6,           # s per message (software: MPI call, matching, completion)
    # s per collective call on every rank, before its first message: the Python call, the plan
    # lookup, the executor's start and finish. calibrate: a one-element ring all-reduce on a live
    # Communicator (12-13 us) less its modelled price: 4.3-6.7 us in 7 of 9 runs (0 and 38-47 us
    # in two whose ping-pong or calls other work disturbed)
    "call_overhead": 5.0e-6,
    "reduce_bandwidth": 8.0e9,    # bytes/s one core reduces (the gamma term); inf leaves it out
    "switch_latency": 0.0,        # s per traversal of a switch or router, added to node latency
    "routing": None,              # "ecmp" | "minimal" | "valiant"; None: family default
    "max_samples": 16,            # repetitions priced in a group whose pattern varies
    # bytes/s one core copies a working set larger than its cache (calibrate: an 8 MiB copy,
    # 5.0-6.7 GB/s; 5.2-6.4 GB/s in the earlier quiet runs); inf leaves copies out
    "copy_bandwidth": 6.0e9,
    # bytes/s one core copies what fits in its cache (calibrate: the median rate of the copies
    # from 64 KiB to cache_bytes, 20-26 GB/s)
    "cache_copy_bandwidth": 26.0e9,
    # bytes of cache one core's copies run in: of a rank's copies in one step, the first
    # cache_bytes go at cache_copy_bandwidth, the rest at copy_bandwidth (calibrate: the largest
    # copy still faster than the geometric mean of the fastest and the 16 MiB rates: 1 MiB in 6
    # runs of 9, 512 KiB in 2, 2 MiB in 1)
    "cache_bytes": 1 << 20,
    # bytes/s of one machine's memory, shared by its ranks that copy or reduce at once (apart from
    # one core's copy_bandwidth: a machine has more memory bandwidth than one core uses). calibrate:
    # both ranks of the node copying 8 MiB at once, 15.8 GB/s at best (2-13 GB/s under load);
    # inf: not shared
    "memory_bandwidth": 15.8e9,
    # bytes per segment of the executor (Communicator's segment_bytes): a received message of
    # several segments is reduced while its later segments are still arriving; inf: no pipelining
    "segment_bytes": 1 << 20,
    # cores of one machine: ranks of a machine beyond its cores share them, so their CPU work
    # (overheads, copies, reductions) takes proportionally longer; inf: a core per rank
    "cores": math.inf,
    # s a rank waits for a core, per step it receives in, on a machine whose busy ranks outnumber
    # its cores, times (s - 1) with s = ranks busy / cores its core share: its messages are in
    # but the core it needs to see them and go on is running another rank. 0 on a machine with a
    # core per rank (s = 1); the figure is CORE_WAIT's
    "core_wait": CORE_WAIT,
    "critical_path": True,        # per-rank DAG (True) or every step at its slowest rank (False)
    "transient": 64,              # repetitions of one pattern followed rank by rank before lockstep
}

#: What an emulated call (``Communicator(emulate=True)``) pays per call on top of
#: ``call_overhead``: computing and checking its holds, stamping every message. calibrate: a
#: one-element ring all-reduce on an emulated Communicator of (almost) free links less its
#: modelled price and ``call_overhead``: 20 us at best of nine runs (36-38 us typical under load,
#: while the quiet 2-rank emulated 64 KiB calls agree with the best figure). Price an emulated
#: run with ``call_overhead=DEFAULTS["call_overhead"] + EMULATION_CALL_OVERHEAD``.
EMULATION_CALL_OVERHEAD = 20.0e-6

#: Every host term switched off: the network alone (path latency and bytes over the fair rate),
#: the alpha-beta model. Add ``overhead=`` and ``reduce_bandwidth=`` back for alpha-beta-gamma.
HOST_TERMS_OFF = {"overhead": 0.0, "call_overhead": 0.0, "reduce_bandwidth": math.inf,
                  "copy_bandwidth": math.inf, "cache_copy_bandwidth": math.inf, "cache_bytes": 0,
                  "memory_bandwidth": math.inf, "segment_bytes": math.inf, "cores": math.inf,
                  "core_wait": 0.0}

_MODEL_KEYS = set(DEFAULTS) | {"placement", "machines", "dtype", "itemsize"}


@dataclass
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    time : float
        Predicted seconds for the whole schedule.
    step_times : list of numpy.ndarray
        Per step group, the time of each of its ``repeat`` steps.
    group_names : list of str
    link_ids : numpy.ndarray
        Network ids of the directed links that carried traffic.
    link_bytes : numpy.ndarray
        Bytes over each of those links during the whole schedule.
    exact : bool
        False when some varying group was priced from samples.
    finish_times : numpy.ndarray
        When each rank finishes its last step; ``time`` is their maximum.
    nbytes : int
        The size priced: each rank's buffer of the schedule in bytes (see
        :func:`priced_nbytes` for how ``predict`` rounds a size that does not
        split into whole blocks).
    breakdown : dict
        ``time`` split into :data:`HOST_PARTS`: ``network`` (path latency
        and bytes over the fair rate), ``copies``, ``reductions`` (what is not
        hidden behind the transfer), ``overhead`` (per-message software
        cost) and ``call`` (the per-call cost, ``call_overhead``). Each step's share is its slowest rank's split, scaled to what
        the step adds to ``time``; the parts add up to ``time``.

    Notes
    -----
    ``step_times[g][i]`` is how much the latest rank's finish time grows in
    repetition ``i`` of group ``g``: with ``critical_path=False`` the step's
    slowest rank, otherwise what the step adds to the critical path (less
    than its slowest rank when ranks that were ahead absorb it). Their sum
    is always ``time``.
    """

    time: float
    step_times: list
    group_names: list
    link_ids: np.ndarray
    link_bytes: np.ndarray
    exact: bool
    network: object = field(repr=False, default=None)
    finish_times: np.ndarray = field(repr=False, default=None)
    nbytes: int = 0
    breakdown: dict = field(default_factory=dict)

    @property
    def link_load(self) -> dict:
        """``{(u, v): bytes}`` for every directed link that carried traffic."""
        names = self.network.link_names(self.link_ids)
        return dict(zip(names, self.link_bytes.tolist()))

    def hottest_links(self, n: int = 10) -> list:
        """The ``n`` busiest directed links: ``[(u, v, bytes, busy_seconds), ...]``.

        ``busy_seconds`` is bytes over the link's bandwidth: how long the link
        alone would need for what crossed it.
        """
        if not len(self.link_ids):
            return []
        busy = self.link_bytes / self.network.capacity(self.link_ids)
        order = np.argsort(-busy, kind="stable")[:n]
        names = self.network.link_names(self.link_ids[order])
        return [(u, v, float(self.link_bytes[i]), float(busy[i])) for (u, v), i in zip(names, order)]

    def summary(self) -> str:
        from ..units import format_bytes, format_time

        lines = [f"predicted time {format_time(self.time)}"
                 + ("" if self.exact else " (varying groups priced from samples)")]
        for name, st in zip(self.group_names, self.step_times):
            lines.append(f"  {name or 'group'}: {len(st)} step(s), {format_time(float(st.sum()))}")
        if self.breakdown and self.time > 0:
            lines.append("  " + ", ".join(f"{k} {format_time(v)} ({v / self.time:.0%})"
                                          for k, v in self.breakdown.items()))
        hot = self.hottest_links(5)
        if hot:
            lines.append("hottest links:")
            for u, v, b, t in hot:
                lines.append(f"  {u} -> {v}: {format_bytes(b)}, busy {format_time(t)}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- params
def model_params(params: dict) -> dict:
    """Model constants from keyword arguments (DEFAULTS filled in), validated."""
    out = dict(DEFAULTS)
    for k in DEFAULTS:
        if k in params and params[k] is not None:
            out[k] = params[k]
    for k in ("overhead", "call_overhead", "switch_latency", "core_wait"):
        v = out[k]
        if isinstance(v, str):
            from ..units import parse_time
            v = parse_time(v, name=k)
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v) or v < 0:
            raise InvalidArgument(f"{k} must be seconds >= 0, got {params.get(k)!r}")
        out[k] = float(v)
    for k, what in (("reduce_bandwidth", "reduction"), ("copy_bandwidth", "local copy"),
                    ("cache_copy_bandwidth", "in-cache copy"), ("memory_bandwidth", "memory sharing")):
        g = out[k]
        if isinstance(g, str):
            from ..units import parse_bandwidth
            g = parse_bandwidth(g, name=k)
        if isinstance(g, bool) or not isinstance(g, Real) or not g > 0:
            raise InvalidArgument(f"{k} must be bytes/s > 0 (inf leaves {what} cost out), "
                                  f"got {params.get(k)!r}")
        out[k] = float(g)
    for k, least, meaning in (("cache_bytes", 0, "0: no copy runs in cache"),
                              ("segment_bytes", 64, "inf: no pipelining")):
        size = out[k]
        if isinstance(size, str):
            from ..units import parse_size
            size = parse_size(size, name=k)
        if isinstance(size, bool) or not isinstance(size, Real) or not size >= least:
            raise InvalidArgument(f"{k} must be bytes >= {least} ({meaning}), got {params.get(k)!r}")
        out[k] = float(size)
    cores = out["cores"]
    if isinstance(cores, bool) or not isinstance(cores, Real) or not cores >= 1:
        raise InvalidArgument(f"cores must be a number >= 1 (inf: a core per rank), got {cores!r}")
    out["cores"] = float(cores)
    for k in ("max_samples", "transient"):
        ms = out[k]
        if isinstance(ms, bool) or not isinstance(ms, Integral) or ms < 1:
            raise InvalidArgument(f"{k} must be an integer >= 1, got {ms!r}")
    if not isinstance(out["critical_path"], (bool, np.bool_)):
        raise InvalidArgument(f"critical_path must be True or False, got {out['critical_path']!r}")
    out["critical_path"] = bool(out["critical_path"])
    return out


def resolve_topology(topology):
    """A Topology (or VirtualFullMesh) from a Topology, a spec string or a file path."""
    if topology is None:
        raise InvalidArgument("the model needs a topology: a Topology, a spec such as "
                              "'fat-tree:k=8' or a topology file")
    if isinstance(topology, (str, bytes)) or hasattr(topology, "__fspath__"):
        from .. import topology as _topo

        spec = topology.decode() if isinstance(topology, bytes) else topology
        s = str(spec).strip()
        key = (s, os.path.getmtime(s) if os.path.exists(s) else None)
        hit = _SPECS.get(key)
        if hit is not None:
            return hit
        topo = _virtual_mesh_spec(s)
        if topo is None:
            topo = _topo.resolve(spec)
        if len(_SPECS) >= 8:
            _SPECS.pop(next(iter(_SPECS)))
        _SPECS[key] = topo
        return topo
    if isinstance(topology, (Network, VirtualFullMesh)) or hasattr(topology, "graph"):
        return topology
    raise InvalidArgument(f"topology must be a collectives.topology.Topology, a spec string or a "
                          f"file path, got {type(topology).__name__}")


_SPECS: dict = {}


def _virtual_mesh_spec(s):
    """Large full meshes stay virtual: 'full-mesh:n=N' with N > 2048."""
    if not s.startswith(("full-mesh:", "full_mesh:", "fullmesh:")):
        return None
    body = s.split(":", 1)[1]
    kv = {}
    for part in body.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            kv[k.strip()] = v.strip()
        elif part.strip():
            kv["n"] = part.strip()
    try:
        n = int(kv.get("n", ""))
    except ValueError:
        return None
    if n <= 2048:
        return None
    from ..units import parse_bandwidth, parse_time

    bw = kv.get("link_bandwidth", kv.get("bandwidth"))
    lat = kv.get("link_latency", kv.get("latency"))
    return VirtualFullMesh(n, parse_bandwidth(bw) if bw else 12.5e9,
                           parse_time(lat) if lat else 500e-9)


def _num_hosts(topo):
    return topo.n if isinstance(topo, VirtualFullMesh) else len(topo.hosts)


def placement_of(topo, nranks, placement=None) -> np.ndarray:
    """Host index (position in ``topology.hosts``) of each rank."""
    H = _num_hosts(topo)
    if placement is None or (isinstance(placement, str) and placement == "linear"):
        if nranks > H:
            raise ModelError(f"{nranks} ranks do not fit on the {H} hosts of {topo.name}: "
                             "use a larger topology or fewer ranks (or a placement with slots)")
        return np.arange(nranks, dtype=np.int64)
    if hasattr(placement, "host_index"):
        hi = np.asarray(placement.host_index, dtype=np.int64)
    elif isinstance(placement, np.ndarray) and placement.dtype.kind in "iu":
        hi = placement.astype(np.int64)
    elif isinstance(placement, VirtualFullMesh) or isinstance(topo, VirtualFullMesh):
        raise ModelError("a virtual full mesh takes placement=None or an int array of host indices")
    else:
        hi = np.asarray(topo.place(nranks, placement).host_index, dtype=np.int64)
    if len(hi) < nranks:
        raise ModelError(f"the placement covers {len(hi)} ranks, the schedule has {nranks}")
    hi = hi[:nranks]
    if len(hi) and (hi.min() < 0 or hi.max() >= H):
        raise ModelError(f"placement host indices must be in 0..{H - 1}")
    return hi


# ---------------------------------------------------------------------- pricing
class _PatternCache:
    """Per network: pattern digest -> (rates, latency, incidence), LRU."""

    def __init__(self, size=96):
        self.size = size
        self.d = OrderedDict()

    def get(self, key):
        v = self.d.get(key)
        if v is not None:
            self.d.move_to_end(key)
        return v

    def put(self, key, v):
        self.d[key] = v
        if len(self.d) > self.size:
            self.d.popitem(last=False)


def _digest(*arrays) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(a.view(np.uint8) if a.size else b"")
    return h.digest()


def _solve(net, src_h, dst_h):
    """(rates, latency, incidence) of a set of flows between hosts, cached."""
    cache = getattr(net, "_patterns", None)
    if cache is None:
        cache = net._patterns = _PatternCache()
    key = _digest(src_h, dst_h)
    hit = cache.get(key)
    if hit is not None:
        return hit
    routed = net.route(src_h, dst_h)
    inc = incidence(routed, net.capacity)
    rates = maxmin(inc)
    out = (rates, routed.latency, inc)
    cache.put(key, out)
    return out


@dataclass
class _Step:
    time: float               # the step's slowest rank (lockstep duration)
    flow_time: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    nbytes: np.ndarray
    inc: object
    extra: np.ndarray = None  # per rank: serial posting and the reduction tail after its messages
    rank_time: np.ndarray = None  # per rank: its own duration when every rank starts together
    pre: np.ndarray = None    # per rank: its local copies, done before it posts the step's messages
    parts: np.ndarray = None  # the slowest rank's time split into HOST_PARTS (sums to ``time``)
    tail: np.ndarray = None   # per rank: what its reduction adds after its last byte arrived


#: How :attr:`SimulationResult.breakdown` splits the time: the network (path latency and bytes
#: over the fair rate), local copies, reductions (the part not hidden behind the transfer) and
#: the per-message software overhead (posting, matching) and the per-call cost (``call_overhead``).
HOST_PARTS = ("network", "copies", "reductions", "overhead", "call")


def host_shares(ranks_busy, machines, cores):
    """Per rank, how many times slower its CPU work runs because ranks share its machine's cores.

    ``max(1, k / cores)`` where ``k`` is the number of ranks of the rank's
    machine that have work in the step (``ranks_busy``): ranks beyond the
    cores take turns on them. All ones when ``cores`` is infinite.
    """
    n = len(machines)
    if not math.isfinite(cores) or n == 0:
        return np.ones(n)
    k = np.bincount(machines[ranks_busy], minlength=int(machines.max()) + 1)[machines]
    return np.maximum(1.0, k / cores)


def core_wait(share, receivers, nranks, wait) -> np.ndarray:
    """Per rank, how long it waits for a core in one step: ``(s - 1) * wait`` if it receives.

    ``s`` (``share``, :func:`host_shares`) is how many ranks take turns on each
    core of the rank's machine. A rank that receives waits for its messages and
    then for a core to see them and go on; with more busy ranks than cores that
    core is often running another rank, which keeps it until it waits itself
    (a slice of the scheduler, or the rest of its copy or reduction). 0 with a
    core per rank (``s = 1``), and for a rank that only sends.

    Parameters
    ----------
    share : numpy.ndarray
        Core share of each rank in the step.
    receivers : numpy.ndarray
        Destination rank of each message of the step.
    nranks : int
    wait : float
        ``core_wait`` in seconds.

    Returns
    -------
    numpy.ndarray
        Seconds per rank, added after its messages (not to their flow times:
        an emulated link's hold does not include it, the rank pays it after).
    """
    out = np.zeros(nranks)
    if wait <= 0 or not len(receivers) or not len(share) or share.max() <= 1.0:
        return out
    receiving = np.zeros(nranks, bool)
    receiving[receivers] = True
    out[receiving] = (share[receiving] - 1.0) * wait
    return out


def reduction_tail(reduce_time, transfer_time, segments):
    """What a reduction adds after its last byte arrived, when it is pipelined behind the transfer.

    A message of ``S`` segments is reduced segment by segment as they
    arrive, so of a reduction of ``R`` seconds behind a transfer of ``T``
    only ``max(0, R - T) + min(T, R) / S`` comes after the transfer (the
    two-stage pipeline: ``max(T, R) + min(T, R) / S`` in all). One segment
    (``S = 1``) leaves the whole reduction after the transfer: the gamma
    term of the alpha-beta-gamma model.
    """
    r = np.asarray(reduce_time, dtype=float)
    t = np.asarray(transfer_time, dtype=float)
    return np.maximum(0.0, r - t) + np.minimum(t, r) / np.maximum(segments, 1)


def copy_time(copy_bytes, sharers, share, params) -> np.ndarray:
    """Seconds each rank's local copies of one step take (``params`` as :data:`DEFAULTS`).

    Of the ``c`` bytes a rank copies, the first ``cache_bytes / s`` run in
    its core's cache at ``cache_copy_bandwidth``, the rest stream through
    memory at one core's ``copy_bandwidth``, or at the machine's
    ``memory_bandwidth`` split over the ``k`` ranks that copy at once when
    that is less::

        h = min(c, cache_bytes / s)
        t = s * h / cache_copy_bandwidth + (c - h) * max(s / copy_bandwidth, k / memory_bandwidth)

    ``s`` (``share``) is how many ranks take turns on each core
    (:func:`host_shares`): they get a part of the core's time and of its cache.

    Parameters
    ----------
    copy_bytes, sharers, share : array_like
        Per rank: bytes copied, ranks of its machine that copy in the step, core share.
    params : dict
        ``copy_bandwidth``, ``cache_copy_bandwidth``, ``cache_bytes`` and ``memory_bandwidth``.

    Returns
    -------
    numpy.ndarray
    """
    c = np.asarray(copy_bytes, dtype=float)
    s = np.asarray(share, dtype=float)
    k = np.asarray(sharers, dtype=float)
    hot = np.minimum(c, params["cache_bytes"] / s)
    cold = c - hot
    cold_per_byte = np.maximum(s / params["copy_bandwidth"], k / params["memory_bandwidth"])
    t = cold * cold_per_byte
    if math.isfinite(params["cache_copy_bandwidth"]):
        t = t + s * hot / params["cache_copy_bandwidth"]
    return t


def _price(net, hosts, src, dst, nbytes, reduce_bytes, nranks, mp, copy_bytes=None,
           machines=None) -> _Step:
    """Price one step: flow times from max-min, then each rank's host terms (module docstring)."""
    machines = hosts if machines is None else machines
    C, gamma, seg = mp["copy_bandwidth"], mp["reduce_bandwidth"], mp["segment_bytes"]
    M = mp["memory_bandwidth"]
    reducing = reduce_bytes > 0
    copying = (copy_bytes > 0) if copy_bytes is not None and math.isfinite(C) else np.zeros(nranks, bool)
    busy = reducing | copying
    busy[src] = True
    busy[dst] = True
    share = host_shares(busy, machines, mp["cores"])
    nm = int(machines.max()) + 1 if nranks else 1
    pre = np.zeros(nranks)
    if copying.any():
        # the ranks of one machine that copy in this step share its memory bandwidth
        sharers = np.bincount(machines[copying], minlength=nm)[machines]
        pre = copy_time(copy_bytes, sharers, share, mp)
    reduce_t = np.zeros(nranks)
    if reducing.any() and math.isfinite(gamma):      # reduce_bandwidth=inf leaves reductions out
        per_byte = share / gamma
        if math.isfinite(M):
            # a reduction streams its data through memory as a copy does, on the same shared bandwidth
            sharers = np.bincount(machines[reducing], minlength=nm)[machines]
            per_byte = np.maximum(per_byte, sharers / M)
        reduce_t = reduce_bytes * per_byte
    if len(src) == 0:
        extra = reduce_t
        rank_t = pre + extra
        parts = _parts(rank_t, pre, np.zeros(nranks), extra, np.zeros(nranks))
        return _Step(float(rank_t.max()) if nranks else 0.0, np.zeros(0), src, dst, nbytes, None,
                     extra, rank_t, pre, parts, reduce_t)
    rates, lat, inc = _solve(net, hosts[src], hosts[dst])
    with np.errstate(divide="ignore"):
        wire = lat + np.where(np.isinf(rates), 0.0, nbytes / rates)
    flow_ov = mp["overhead"] * np.maximum(share[src], share[dst])
    ft = flow_ov + wire
    posting = np.zeros(nranks)
    if mp["overhead"] > 0:
        # posting is serial: a rank with k messages out (or in) pays k-1 more overheads
        k = np.maximum(np.bincount(src, minlength=nranks), np.bincount(dst, minlength=nranks))
        posting = np.maximum(k - 1, 0) * mp["overhead"] * share
    tail = reduce_t
    if reducing.any():
        arrive = np.zeros(nranks)
        np.maximum.at(arrive, dst, ft)
        biggest = np.zeros(nranks)
        np.maximum.at(biggest, dst, nbytes)
        segments = np.ceil(biggest / seg) if math.isfinite(seg) else np.ones(nranks)
        tail = reduction_tail(reduce_t, arrive, segments)
    wait = core_wait(share, dst, nranks, mp["core_wait"])
    extra = posting + tail + wait
    start = np.maximum(pre[src], pre[dst])          # a message waits for both ends' copies
    end = start + ft
    rank_t = pre.copy()
    np.maximum.at(rank_t, src, end)
    np.maximum.at(rank_t, dst, end)
    wire_r = np.zeros(nranks)
    ov_r = np.zeros(nranks)
    np.maximum.at(wire_r, src, wire)
    np.maximum.at(wire_r, dst, wire)
    np.maximum.at(ov_r, src, flow_ov)
    np.maximum.at(ov_r, dst, flow_ov)
    rank_t += extra
    parts = _parts(rank_t, pre, wire_r, tail, ov_r + posting + wait)
    return _Step(float(rank_t.max()), ft, src, dst, nbytes, inc, extra, rank_t, pre, parts, tail)


def _parts(rank_t, copies, wire, reductions, overhead):
    """The slowest rank's time split into HOST_PARTS, scaled to add up to its time."""
    out = np.zeros(len(HOST_PARTS))
    if not len(rank_t):
        return out
    r = int(np.argmax(rank_t))
    out[:4] = wire[r], copies[r], reductions[r], overhead[r]
    total = out.sum()
    if total > 0:
        out *= rank_t[r] / total
    return out


def _advance(ready, st: _Step) -> np.ndarray:
    """Each rank's finish of one step from each rank's start (the DAG over (rank, step)).

    A rank first does its local copies; a message starts when both its ends
    are done with theirs and takes its flow time; a rank is done when its own
    messages are, plus its serial posting and what its reduction adds after
    the last byte arrived.
    """
    fin = ready + st.pre if st.pre is not None else ready.copy()
    if len(st.src):
        end = np.maximum(fin[st.src], fin[st.dst]) + st.flow_time
        np.maximum.at(fin, st.src, end)
        np.maximum.at(fin, st.dst, end)
    return fin + st.extra


def _advance_repeated(ready, st: _Step, repeat: int, transient: int):
    """``repeat`` repetitions of one step: (finish per rank, growth of the latest rank per repetition).

    Followed rank by rank until every rank advances by the same amount (from
    then on each repetition adds exactly that) or for ``transient``
    repetitions; the rest goes on in lockstep from the latest rank at the
    step's slowest-rank time, which is the pattern's long-run rate.
    """
    growth = np.empty(repeat)
    top = float(ready.max()) if len(ready) else 0.0
    k = 0
    while k < repeat:
        nxt = _advance(ready, st)
        delta = nxt - ready
        new_top = float(nxt.max())
        growth[k] = new_top - top
        ready, top, k = nxt, new_top, k + 1
        if k == repeat:
            break
        d0 = float(delta.max())
        if float(delta.min()) >= d0 - 1e-12 * max(d0, 1e-300):
            # every rank moved by d0: a shift of the start shifts the finish, so the rest is closed form
            growth[k:] = d0
            ready = ready + (repeat - k) * d0
            return ready, growth
        if k >= transient:
            growth[k:] = st.time
            ready = np.full_like(ready, top + (repeat - k) * st.time)
            return ready, growth
    return ready, growth


def _same(a, b):
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


_COPY_EXACT_RANKS = 512     # above this, a group with a cheap message view samples its copies
_COPY_SAMPLE_ROWS = 1 << 18  # ranks sampled x ranks: how many program rows such a sample may build


def _step_flows(g, i, nranks, itemsize, with_copies):
    """``(src, dst, nbytes, reduce_bytes[, copy_bytes])`` of repetition ``i`` of group ``g``."""
    if not with_copies:
        return g.flows(i, nranks, itemsize)
    if g.messages is None:
        ops = g.build(i, np.arange(nranks, dtype=np.int64)).nonempty()
        sends = ops.select(ops.kind == SEND)
        red = ops.select(ops.kind == RECV_REDUCE)
        reduce_bytes = np.bincount(red.rank, weights=red.count * itemsize,
                                   minlength=nranks).astype(np.int64)
        return (sends.rank, sends.peer, sends.count * itemsize, reduce_bytes,
                _copy_bytes(ops, nranks, itemsize))
    if g.copies is not None:
        # the group counts its copies without building them
        cb = np.asarray(g.copies(i, np.arange(nranks, dtype=np.int64)), dtype=np.int64) * itemsize
        return (*g.flows(i, nranks, itemsize), cb)
    # the group keeps its copies out of its cheap message view because they are O(p) per rank:
    # count them on every rank when p is small, else on evenly spaced ranks (nearest stands in)
    if nranks <= _COPY_EXACT_RANKS:
        ranks = np.arange(nranks, dtype=np.int64)
    else:
        # a rank's program is O(p) rows here: fewer sampled ranks the larger p, 16 at least
        n = int(np.clip(_COPY_SAMPLE_ROWS // nranks, 16, 64))
        ranks = np.unique(np.linspace(0, nranks - 1, n).round().astype(np.int64))
    ops = g.build(i, ranks)
    sampled = _copy_bytes(ops, nranks, itemsize)[ranks]
    if len(ranks) == nranks:
        cb = sampled
    else:
        near = np.clip(np.searchsorted(ranks, np.arange(nranks), side="left"), 0, len(ranks) - 1)
        prev = np.clip(near - 1, 0, len(ranks) - 1)
        pick = np.where(np.abs(ranks[prev] - np.arange(nranks)) < np.abs(ranks[near] - np.arange(nranks)),
                        prev, near)
        cb = sampled[pick]
    return (*g.flows(i, nranks, itemsize), cb)


def _copy_bytes(ops, nranks, itemsize):
    w = np.where(ops.kind == COPY, ops.count, 0) * itemsize
    return np.bincount(ops.rank, weights=w, minlength=nranks).astype(np.int64)


def _group_reps(g, nranks, itemsize, max_samples, with_copies=False):
    """Which repetitions of a group to price: [(index, flows)], and whether exact."""
    first = _step_flows(g, 0, nranks, itemsize, with_copies)
    if g.repeat == 1:
        return [(0, first)], True, True
    probe = sorted({1, g.repeat - 1, g.repeat // 2})
    flows = {0: first}
    for i in probe:
        flows[i] = _step_flows(g, i, nranks, itemsize, with_copies)
    if all(_same(first, flows[i]) for i in probe):
        return [(0, first)], True, True            # one pattern: priced once
    if g.repeat <= max_samples:
        idx = range(g.repeat)
        exact = True
    else:
        idx = sorted(set(np.linspace(0, g.repeat - 1, max_samples).round().astype(int).tolist()))
        exact = False
    out = []
    for i in idx:
        f = flows.get(i)
        if f is None:
            f = _step_flows(g, i, nranks, itemsize, with_copies)
        out.append((i, f))
    return out, exact, False


def _group_plan(g, nranks, itemsize, max_samples, with_copies):
    """How to price a group: ``(reps, weights, exact, kind)``.

    ``kind`` is "single" (one pattern, priced once), "head" (the first
    repetition differs, typically by a copy that starts the group, and the
    rest are one pattern: priced as one step and then one pattern), "all"
    (every repetition priced) or "sampled"; ``weights[i]`` is how many
    repetitions ``reps[i]`` stands for.
    """
    reps, exact, single = _group_reps(g, nranks, itemsize, max_samples, with_copies)
    if single:
        return reps, [g.repeat], True, "single"
    if with_copies and g.repeat >= 2:
        # one repetition's copies (or messages) apart from a pattern: price it alone, not sampled
        second = _step_flows(g, 1, nranks, itemsize, with_copies)
        probe = sorted({g.repeat - 1, g.repeat // 2, min(2, g.repeat - 1)} - {0, 1})
        if all(_same(second, _step_flows(g, i, nranks, itemsize, with_copies)) for i in probe):
            first = reps[0][1] if reps[0][0] == 0 else _step_flows(g, 0, nranks, itemsize, with_copies)
            return [(0, first), (1, second)], [1, g.repeat - 1], True, "head"
    if exact:
        return reps, [1] * len(reps), True, "all"
    if with_copies and len(reps) > 2 and not np.array_equal(reps[0][1][4], reps[1][1][4]):
        # the first repetition copies what the others do not (the group's opening copy): it
        # stands for itself, the other samples for the rest
        rest = (g.repeat - 1) / (len(reps) - 1)
        return reps, [1] + [rest] * (len(reps) - 1), False, "sampled"
    return reps, [g.repeat / len(reps)] * len(reps), False, "sampled"


def simulate(schedule, topology, placement=None, **params) -> SimulationResult:
    """Price every step of ``schedule`` on ``topology``.

    Parameters
    ----------
    schedule : collectives.schedule.Schedule
    topology : Topology, VirtualFullMesh or spec string
    placement : optional
        Rank -> host: None (linear: rank r on ``topology.hosts[r]``), a
        ``Placement``, an int array of host indices, or a strategy name
        (``"round-robin"``, ``"random"``) or host list for ``topology.place``.
    **params
        Model constants (see :data:`DEFAULTS`): ``overhead``,
        ``call_overhead``, ``reduce_bandwidth``, ``copy_bandwidth``,
        ``cache_copy_bandwidth``, ``cache_bytes``, ``memory_bandwidth``, ``segment_bytes``,
        ``cores``, ``core_wait``, ``critical_path``, ``switch_latency``, ``routing``,
        ``max_samples``, ``transient``; ``machines`` (the machine of each
        rank, default its host: see :func:`machines_of`); ``itemsize`` or
        ``dtype`` (bytes per element, default 4). ``**HOST_TERMS_OFF``
        prices the network alone.

    Returns
    -------
    SimulationResult
        ``time`` is the latest rank's finish; ``nbytes`` the size priced
        (``schedule.count`` elements).
    """
    unknown = set(params) - _MODEL_KEYS
    if unknown:
        raise InvalidArgument(f"simulate: unknown parameter(s) {', '.join(sorted(unknown))}; "
                              f"accepted: {', '.join(sorted(_MODEL_KEYS - {'placement'}))}")
    mp = model_params(params)
    itemsize = _itemsize(params)
    topo = resolve_topology(topology)
    net = network_for(topo, mp["routing"], mp["switch_latency"])
    nranks = schedule.nranks
    hosts = placement_of(topo, nranks, placement)
    machines = machines_of(hosts, params.get("machines"))
    with_copies = math.isfinite(mp["copy_bandwidth"])
    # every rank pays the per-call cost before its first message (on a shared core, its share);
    # a call of no elements moves nothing and is priced as nothing, as before this term
    call = 0.0
    if mp["call_overhead"] > 0 and schedule.groups and nranks and schedule.count > 0:
        call_t = mp["call_overhead"] * host_shares(np.ones(nranks, bool), machines, mp["cores"])
        call = float(call_t.max())
        ready = call_t
    else:
        ready = np.zeros(nranks)
    parts = np.zeros(len(HOST_PARTS))
    parts[HOST_PARTS.index("call")] = call
    step_times, names = [], []
    all_ids, all_bytes = [], []
    exact_all = True
    for g in schedule.groups:
        reps, weights, exact, kind = _group_plan(g, nranks, itemsize, mp["max_samples"], with_copies)
        exact_all &= exact
        steps = []
        for (_, f), weight in zip(reps, weights):
            st = _price(net, hosts, *f[:4], nranks, mp, f[4] if with_copies else None, machines)
            steps.append(st)
            if st.inc is not None:
                lb = st.inc.link_sum(f[2])
                m = lb > 0
                all_ids.append(st.inc.links[m])
                all_bytes.append(lb[m] * weight)
        times = [st.time for st in steps]
        top = float(ready.max()) if nranks else 0.0
        if not mp["critical_path"] or not exact:
            # lockstep (a sampled group too: its unpriced repetitions have no per-rank view)
            idx = np.array([i for i, _ in reps])
            if kind == "single":
                arr = np.full(g.repeat, times[0])
            elif kind == "head":
                arr = np.concatenate([[times[0]], np.full(g.repeat - 1, times[1])])
            elif len(idx) == g.repeat:
                arr = np.array(times)
            elif weights[0] == 1:
                # the first repetition apart, the samples interpolate the rest
                rest = np.interp(np.arange(1, g.repeat), idx[1:], times[1:])
                rest *= (np.mean(times[1:]) * (g.repeat - 1)) / rest.sum() if rest.sum() > 0 else 1.0
                arr = np.concatenate([[times[0]], rest])
            else:
                arr = np.interp(np.arange(g.repeat), idx, times)
                arr *= (np.mean(times) * g.repeat) / arr.sum() if arr.sum() > 0 else 1.0
            ready = np.full(nranks, top + float(arr.sum()))
        elif kind == "single":
            ready, arr = _advance_repeated(ready, steps[0], g.repeat, mp["transient"])
        elif kind == "head":
            ready = _advance(ready, steps[0])
            new_top = float(ready.max())
            ready, rest = _advance_repeated(ready, steps[1], g.repeat - 1, mp["transient"])
            arr = np.concatenate([[new_top - top], rest])
        else:
            arr = np.empty(g.repeat)
            for k, st in enumerate(steps):
                ready = _advance(ready, st)
                new_top = float(ready.max())
                arr[k], top = new_top - top, new_top
        step_times.append(arr)
        names.append(g.name)
        # the group's split: its priced steps' (slowest rank's) split, scaled to what it added
        split = sum(st.parts * w for st, w in zip(steps, weights))
        added = float(arr.sum())
        if split.sum() > 0:
            parts += split * (added / split.sum())
    if call and step_times and len(step_times[0]):
        step_times[0][0] += call          # the step times add up to ``time``, the call included
    if all_ids:
        ids = np.concatenate(all_ids)
        b = np.concatenate(all_bytes)
        uid, inv = np.unique(ids, return_inverse=True)
        link_bytes = np.bincount(inv, weights=b)
    else:
        uid, link_bytes = np.zeros(0, dtype=np.int64), np.zeros(0)
    total = float(ready.max()) if nranks else 0.0
    return SimulationResult(total, step_times, names, uid, link_bytes, exact_all, net,
                            ready, int(schedule.count) * itemsize,
                            dict(zip(HOST_PARTS, parts.tolist())))


def machines_of(hosts, machines=None) -> np.ndarray:
    """The machine each rank's host-side work runs on: ``machines`` or, by default, its host.

    Ranks of one machine share its memory bandwidth (copies, reductions) and
    its ``cores``. An emulation runs every rank on one computer:
    ``machines=np.zeros(ranks, int)``.
    """
    if machines is None:
        return hosts
    try:
        m = np.asarray(machines)
    except Exception:
        m = None
    if m is None or m.ndim != 1 or m.dtype.kind not in "iu" or len(m) < len(hosts) or \
            (len(m) and m.min() < 0):
        raise InvalidArgument(f"machines must be an int array of machine indices >= 0, one per rank "
                              f"({len(hosts)}), got {machines!r}")
    return m[:len(hosts)].astype(np.int64)


def _itemsize(params) -> int:
    if params.get("itemsize") is not None:
        v = params["itemsize"]
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise InvalidArgument(f"itemsize must be an integer >= 1, got {v!r}")
        return int(v)
    dt = params.get("dtype")
    if dt is None:
        return 4
    try:
        return int(np.dtype(dt).itemsize)
    except TypeError:
        if str(dt) == "bfloat16":
            return 2
        raise InvalidArgument(f"unknown dtype {dt!r}") from None


# ---------------------------------------------------------------------- predict
def _check_nbytes(nbytes):
    if isinstance(nbytes, bool) or not isinstance(nbytes, (Integral, Real, np.integer, np.floating)):
        raise InvalidArgument(f"nbytes must be a whole number of bytes >= 0, got {nbytes!r}")
    if isinstance(nbytes, (float, np.floating)):
        if not math.isfinite(nbytes) or nbytes != int(nbytes):
            raise InvalidArgument(f"nbytes must be a whole number of bytes >= 0, got {nbytes!r}")
    if nbytes < 0:
        raise InvalidArgument(f"nbytes must be >= 0, got {nbytes!r}")
    return int(nbytes)


def _check_collective_algorithm(collective, algorithm):
    from .. import algorithms as _alg

    if not isinstance(collective, str) or collective not in COLLECTIVES:
        raise InvalidArgument(f"unknown collective {collective!r}: accepted are "
                              f"{', '.join(COLLECTIVES)}")
    names = list(_alg.algorithm_names(collective))
    if not isinstance(algorithm, str) or algorithm not in names:
        raise InvalidArgument(f"unknown {collective} algorithm {algorithm!r}: the model prices "
                              f"{', '.join(names)}")


#: collectives whose schedules need each rank's buffer in ``nranks`` equal blocks
_EQUAL_BLOCKS = ("alltoall",)


def priced_nbytes(collective, nbytes, ranks, itemsize=4) -> int:
    """The size :func:`predict` and the planner price for ``nbytes`` per rank.

    As nccl-tests does, an all-to-all's element count is rounded down to a
    multiple of ``ranks`` (each rank sends every rank the same number of
    elements): an all-to-all of 256 MiB of float32 on 16,512 ranks is priced
    at 268,419,072 bytes (4,064 elements per block). Other collectives take
    any whole number of elements (their schedules split unequal blocks
    themselves), so their size is priced as given.

    Parameters
    ----------
    collective : str
    nbytes : int
        Each rank's whole buffer in bytes.
    ranks : int
    itemsize : int
        Bytes per element.

    Returns
    -------
    int
        Bytes priced, at most ``nbytes``.

    Raises
    ------
    InvalidArgument
        ``nbytes`` is not a whole number of ``itemsize``-byte elements (a
        buffer of a fraction of an element is a mistake, not a size to round).
    """
    if not isinstance(collective, str) or collective not in COLLECTIVES:
        raise InvalidArgument(f"unknown collective {collective!r}: accepted are "
                              f"{', '.join(COLLECTIVES)}")
    nbytes = _check_nbytes(nbytes)
    if isinstance(ranks, bool) or not isinstance(ranks, (Integral, np.integer)) or ranks < 1:
        raise InvalidArgument(f"ranks must be an integer >= 1, got {ranks!r}")
    if isinstance(itemsize, bool) or not isinstance(itemsize, (Integral, np.integer)) or itemsize < 1:
        raise InvalidArgument(f"itemsize must be an integer >= 1, got {itemsize!r}")
    if nbytes % int(itemsize):
        raise InvalidArgument(f"nbytes={nbytes} is not a whole number of {itemsize}-byte elements")
    count = nbytes // int(itemsize)
    if collective in _EQUAL_BLOCKS:
        count -= count % int(ranks)
    return count * int(itemsize)


def build_for(collective, algorithm, nbytes, topo, ranks, hosts, itemsize, alg_params):
    """The Schedule ``predict`` prices.

    ``nbytes`` is rounded down to whole blocks first (:func:`priced_nbytes`).
    An algorithm that needs groups and is given none gets the topology's
    natural host groups under the placement (when there are any; else its
    own default).
    """
    from .. import algorithms as _alg
    from ..algorithms._blocks import topology_groups

    count = priced_nbytes(collective, nbytes, ranks, itemsize) // itemsize
    ap = dict(alg_params)
    if "groups" in _alg.get(collective, algorithm).needs and "groups" not in ap:
        g = topology_groups(topo, hosts)
        if len(g) and int(g.max()) + 1 < len(g):
            ap["groups"] = g
    return _alg.build_schedule(collective, algorithm, ranks, count, **ap)


def predict(collective, algorithm, nbytes, topology, ranks=None, **params) -> float:
    """Predicted seconds for one collective call.

    Parameters
    ----------
    collective : str
        "allreduce", "alltoall", "reduce_scatter", "allgather" or "broadcast".
    algorithm : str
        A name from ``collectives.algorithms.algorithm_names(collective)``.
    nbytes : int
        Each rank's whole buffer in bytes (nccl-tests convention; for
        all-to-all, all the blocks one rank sends). A size that does not
        split into whole blocks is priced rounded down
        (:func:`priced_nbytes` says to what; ``simulate(...).nbytes`` too).
    topology : Topology, spec string or file
    ranks : int, optional
        Number of ranks (default: every host of the topology).
    **params
        Model constants (``overhead=``, ``call_overhead=``, ``reduce_bandwidth=``,
        ``copy_bandwidth=``, ``cache_copy_bandwidth=``, ``cache_bytes=``,
        ``memory_bandwidth=``, ``segment_bytes=``, ``cores=``, ``core_wait=``, ``machines=``,
        ``critical_path=``, ``transient=``,
        ``switch_latency=``, ``routing=``, ``placement=``, ``dtype=``/
        ``itemsize=``, ``max_samples=``); anything else goes to the algorithm
        (``root=``, ``order=``, ``groups=``, ...).
    """
    _check_collective_algorithm(collective, algorithm)
    nbytes = _check_nbytes(nbytes)
    topo, ranks, model, alg, itemsize, hosts = resolve_call(topology, ranks, params)
    sched = build_for(collective, algorithm, nbytes, topo, ranks, hosts, itemsize, alg)
    return simulate(sched, topo, placement=hosts, itemsize=itemsize, **model).time


def resolve_call(topology, ranks, params):
    """What a call of :func:`predict` or the planner prices on.

    Returns ``(topology, ranks, model constants, algorithm parameters,
    itemsize, hosts)``: the resolved topology, the rank count (default every
    host), the keyword arguments split into model constants (without
    placement, dtype and itemsize) and the rest, the element size and the
    host of each rank.
    """
    topo = resolve_topology(topology)
    if ranks is None:
        ranks = _num_hosts(topo)
    if isinstance(ranks, bool) or not isinstance(ranks, (Integral, np.integer)) or ranks < 1:
        raise InvalidArgument(f"ranks must be an integer >= 1, got {ranks!r}")
    ranks = int(ranks)
    model = {k: v for k, v in params.items() if k in _MODEL_KEYS}
    alg = {k: v for k, v in params.items() if k not in _MODEL_KEYS}
    itemsize = _itemsize(model)
    hosts = placement_of(topo, ranks, model.pop("placement", None))
    model.pop("itemsize", None)
    model.pop("dtype", None)
    # a bad constant or routing mode is refused here, once, not once per candidate priced
    mp = model_params(model)
    network_for(topo, mp["routing"], mp["switch_latency"])
    return topo, ranks, model, alg, itemsize, hosts


# ---------------------------------------------------------------------- per message
def message_times(schedule, topology, placement=None, rank=0, **params) -> np.ndarray:
    """Modelled duration of each row of ``schedule.program(rank)``.

    For a receive: overhead + path latency + bytes / fair rate of that message
    in its step (the step's other flows, of every rank, included), counted
    from the start of the sender's step. Sends and copies get 0.

    Returns a float64 array aligned with ``schedule.program(rank)``. It is
    the one-part case of :func:`collectives.model.joint.joint_message_times`
    (one code path: the schedule priced alone).
    """
    from .joint import _message_times

    return _message_times([(schedule, placement)], topology, 0, rank, "message_times", params)

