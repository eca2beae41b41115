"""Calibration: fit the model's constants on real links and save them as a profile.

``collectives calibrate`` (under ``mpiexec``, two ranks or more) measures

- ping-pong between two ranks that share memory (``MPI.COMM_TYPE_SHARED``)
  and between two that do not, over a range of sizes; the one-way time
  ``t(n) = alpha + n / bandwidth`` is fitted by least squares (weighted
  by 1/t, so the small sizes are not drowned by the large ones);
- the reduce bandwidth of this machine's kernel
  (``collectives._kernels.reduce_into`` on float32 sum);
- the copy bandwidth of one core (a numpy copy of 8 MiB between two
  buffers, best of a few): the model's ``copy_bandwidth``, what local copies
  such as Bruck's rotations cost when they do not fit in cache;
- copies of 32 KiB to 16 MiB (:func:`measure_copy_sweep`): the cache size
  (``cache_bytes``, the largest copy still faster than the geometric mean of
  the fastest rate and the 16 MiB rate) and the in-cache rate
  (``cache_copy_bandwidth``, the median rate of the copies from 64 KiB up to
  that size);
- every rank of rank 0's node copying 8 MiB at once
  (:func:`measure_memory_bandwidth`): the machine's ``memory_bandwidth``,
  shared by its ranks that copy at once;
- a one-element all-reduce (ring) on a Communicator, live and on emulated
  links of (almost) no cost (:func:`measure_call_overhead`): what it takes
  beyond its modelled price with these constants is ``call_overhead``, and
  what the emulated one takes beyond that is ``emulated_call_overhead``;

and rank 0 writes a JSON profile::

    {"format": "collectives-profile", "version": 1,
     "intra": {"latency": s, "bandwidth": B/s},
     "inter": {"latency": s, "bandwidth": B/s} or null,
     "reduce_bandwidth": B/s, "overhead": s, "copy_bandwidth": B/s,
     "cache_copy_bandwidth": B/s, "cache_bytes": B, "memory_bandwidth": B/s,
     "call_overhead": s, "emulated_call_overhead": s,
     "measured": {...raw samples...}}

A profile written before a constant was measured still loads: the missing
(or null) ones are not measured and the planner prices them at the model's
default (``cl.model.DEFAULTS``).

A profile turns into a model with :func:`two_level_topology`: ranks that
share memory hang off one node switch, node switches off one network switch;
a message inside a node crosses two intra links (``intra.latency / 2`` each),
one between nodes adds the node uplinks (``inter.bandwidth``, shared by the
ranks of the node: the NIC). The fitted alpha is all link latency (overhead
is kept at 0 in a profile: ping-pong cannot tell them apart).

Point ``COLLECTIVES_PROFILE`` at a profile and a Communicator without a
topology plans with it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgument, ModelError, TopologyFileError

__all__ = ["Profile", "load_profile", "save_profile", "two_level_topology", "two_level_model",
           "fit_alpha_beta", "calibrate", "measure_copy_bandwidth", "measure_copy_sweep",
           "measure_memory_bandwidth", "measure_call_overhead", "measure_core_wait", "DEFAULT_SIZES",
           "HOST_CONSTANTS", "OVERSUBSCRIBED_CONSTANTS"]

#: The host constants a profile may hold beyond the links and the reduce and copy bandwidths, and
#: their units; each is a model constant of the same name (``emulated_call_overhead`` is what an
#: emulated call pays beyond ``call_overhead``, cl.model.EMULATION_CALL_OVERHEAD).
HOST_CONSTANTS = {"cache_copy_bandwidth": "bytes/s", "cache_bytes": "bytes",
                  "memory_bandwidth": "bytes/s", "call_overhead": "s",
                  "emulated_call_overhead": "s"}

#: Host constants that only a machine with more ranks than cores can measure (calibrate run with
#: that many ranks): missing from a profile measured with a core per rank, whose model then keeps
#: the default (``cl.model.DEFAULTS``).
OVERSUBSCRIBED_CONSTANTS = {"core_wait": "s"}

FORMAT = "collectives-profile"
DEFAULT_SIZES = [8, 64, 512, 4096, 32768, 262144, 1 << 20, 4 << 20]


@dataclass
class Link:
    latency: float
    bandwidth: float


@dataclass
class Profile:
    intra: Link
    inter: Link | None
    reduce_bandwidth: float
    overhead: float = 0.0
    measured: dict = field(default_factory=dict)
    copy_bandwidth: float = math.inf
    #: measured host constants (names of :data:`HOST_CONSTANTS`); a missing one was not measured
    host: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1,
                "intra": {"latency": self.intra.latency, "bandwidth": self.intra.bandwidth},
                "inter": (None if self.inter is None else
                          {"latency": self.inter.latency, "bandwidth": self.inter.bandwidth}),
                "reduce_bandwidth": self.reduce_bandwidth, "overhead": self.overhead,
                # JSON has no infinity: null stands for "not measured" (copies left out)
                "copy_bandwidth": (self.copy_bandwidth if math.isfinite(self.copy_bandwidth)
                                   else None),
                **{k: self.host.get(k) for k in (*HOST_CONSTANTS, *OVERSUBSCRIBED_CONSTANTS)},
                "measured": self.measured}


def _positive(d, key, where, path):
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
            or (key == "bandwidth" or key == "reduce_bandwidth") and v <= 0:
        raise ModelError(f"profile {path!r}: {where}{key} must be a finite number "
                         f"{'> 0' if 'bandwidth' in key else '>= 0'}, got {v!r}")
    return float(v)


def load_profile(path) -> Profile:
    """Read a calibration profile.

    Raises
    ------
    TopologyFileError
        The file is missing or unreadable.
    ModelError
        The file is not a profile (bad JSON, wrong format, missing or bad fields).
    """
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ModelError(f"profile {p!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         "it must be the JSON that 'collectives calibrate' writes") from None
    except OSError as exc:
        raise TopologyFileError(f"cannot read profile {p!r}: {exc.strerror or exc}; run "
                                "'mpiexec -n 2 collectives calibrate -o PROFILE.json' to make one") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"profile {p!r} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                         "expected the JSON that 'collectives calibrate' writes") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ModelError(f"profile {p!r}: not a collectives profile (expected \"format\": "
                         f"\"{FORMAT}\" and the fields intra, inter, reduce_bandwidth)")
    if not isinstance(d.get("intra"), dict):
        raise ModelError(f"profile {p!r}: 'intra' must be an object with latency and bandwidth")
    intra = Link(_positive(d["intra"], "latency", "intra.", p), _positive(d["intra"], "bandwidth", "intra.", p))
    inter = d.get("inter")
    if inter is not None:
        if not isinstance(inter, dict):
            raise ModelError(f"profile {p!r}: 'inter' must be null or an object with latency and bandwidth")
        inter = Link(_positive(inter, "latency", "inter.", p), _positive(inter, "bandwidth", "inter.", p))
    rb = _positive(d, "reduce_bandwidth", "", p)
    ov = _positive(d, "overhead", "", p) if "overhead" in d else 0.0
    cb = math.inf
    if d.get("copy_bandwidth") is not None:
        cb = _positive(d, "copy_bandwidth", "", p)
        if cb <= 0:
            raise ModelError(f"profile {p!r}: copy_bandwidth must be a finite number > 0 "
                             f"(or null: not measured), got {d['copy_bandwidth']!r}")
    host = {}
    for k in (*HOST_CONSTANTS, *OVERSUBSCRIBED_CONSTANTS):
        if d.get(k) is not None:
            v = _positive(d, k, "", p)
            if v <= 0 and k not in ("call_overhead", "emulated_call_overhead", "core_wait"):
                raise ModelError(f"profile {p!r}: {k} must be a finite number > 0 "
                                 f"(or null: not measured), got {d[k]!r}")
            host[k] = v
    return Profile(intra, inter, rb, ov, d.get("measured") or {}, cb, host)


def save_profile(profile: Profile, path):
    p = os.fspath(path)
    try:
        with open(p, "w", encoding="utf-8") as f:
            json.dump(profile.to_dict(), f, indent=2)
            f.write("\n")
    except OSError as exc:
        raise TopologyFileError(f"cannot write profile {p!r}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------- two-level model
#: The two-level model used for a live communicator without topology or profile.
#: Intra-node: shared-memory copies (one core, ~10 GB/s, ~0.4 us); inter-node: a
#: 100 Gb/s NIC per node, ~1.5 us. Reduction: 8 GB/s (one core, float32 sum).
DEFAULT_TWO_LEVEL = {
    "intra_bandwidth": 10e9, "intra_latency": 0.4e-6,
    "inter_bandwidth": 12.5e9, "inter_latency": 1.5e-6,
    "reduce_bandwidth": 8e9, "overhead": 0.5e-6,
}


def two_level_model(groups, profile=None):
    """The network and model constants for ranks in shared-memory groups.

    Parameters
    ----------
    groups : int array
        Group (node) index of each rank.
    profile : Profile or path, optional
        A calibration profile (or the file it is in); default
        :data:`DEFAULT_TWO_LEVEL`.

    Returns
    -------
    (Topology, dict)
        :func:`two_level_topology` and the model constants to price on it:
        ``overhead``, ``reduce_bandwidth``, the host constants the profile
        measured (``copy_bandwidth``, ``cache_copy_bandwidth``,
        ``cache_bytes``, ``memory_bandwidth``, ``call_overhead``) and
        ``machines=`` the groups: the ranks of one node share its memory
        bandwidth, as ranks of one host do on a topology.
    """
    if profile is not None and not isinstance(profile, Profile):
        profile = load_profile(profile)
    topo = two_level_topology(groups, profile)
    # every rank is its own host here, so the node it runs on is said with machines=
    machines = np.unique(np.asarray(groups, dtype=np.int64), return_inverse=True)[1].reshape(-1)
    if profile is None:
        return topo, {"overhead": DEFAULT_TWO_LEVEL["overhead"],
                      "reduce_bandwidth": DEFAULT_TWO_LEVEL["reduce_bandwidth"], "machines": machines}
    params = {"overhead": profile.overhead, "reduce_bandwidth": profile.reduce_bandwidth,
              "machines": machines}
    if math.isfinite(profile.copy_bandwidth):
        # a profile from before copies were measured leaves the model's default in place
        params["copy_bandwidth"] = profile.copy_bandwidth
    params.update({k: v for k, v in profile.host.items() if k != "emulated_call_overhead"})
    return topo, params


def two_level_topology(groups, profile=None, *, name=None):
    """A Topology for ranks in shared-memory groups: one switch per group, one network switch.

    Parameters
    ----------
    groups : int array
        Group (node) index of each rank; rank r is host ``"h{r}"``.
    profile : Profile, optional
        Link constants; default :data:`DEFAULT_TWO_LEVEL`.

    Hosts are in rank order (linear placement is the identity). Levels:
    ``"switch"`` (= ``"node"``) groups the ranks of a node.
    """
    import networkx as nx

    from ..topology import Topology

    groups = np.asarray(groups, dtype=np.int64)
    if groups.ndim != 1 or len(groups) == 0 or groups.min() < 0:
        raise InvalidArgument("groups must be a non-empty int array of group indices >= 0")
    if profile is None:
        D = DEFAULT_TWO_LEVEL
        intra = Link(D["intra_latency"], D["intra_bandwidth"])
        inter = Link(D["inter_latency"], D["inter_bandwidth"])
    else:
        intra = profile.intra
        inter = profile.inter or Link(profile.intra.latency, profile.intra.bandwidth)
    ng = int(groups.max()) + 1
    G = nx.Graph(name=name or f"two-level:{ng} nodes,{len(groups)} ranks", family="two-level",
                 group_level="switch", params={"nodes": ng})
    G.graph["group_attrs"] = ["node"]
    half_intra = max(intra.latency / 2, 1e-12)
    for g in range(ng):
        G.add_node(f"n{g}", kind="switch")
    for r, g in enumerate(groups.tolist()):
        G.add_node(f"h{r}", kind="host", node=g)
        G.add_edge(f"h{r}", f"n{g}", bandwidth=intra.bandwidth, latency=half_intra)
    if ng > 1:
        G.add_node("net", kind="switch")
        # a node-to-node message: 2 intra links + 2 uplinks = inter latency in total
        up_lat = max((inter.latency - intra.latency) / 2, 1e-12)
        for g in range(ng):
            G.add_edge(f"n{g}", "net", bandwidth=inter.bandwidth, latency=up_lat)
    return Topology(G, [f"h{r}" for r in range(len(groups))])


# ---------------------------------------------------------------------- fitting
def fit_alpha_beta(sizes, times):
    """Least-squares fit of ``t = alpha + n / bandwidth``, relative error weighted.

    Returns ``(alpha, bandwidth)``; alpha is clipped at 0 and bandwidth at a
    tiny positive number so that a noisy fit still makes a usable profile.
    """
    n = np.asarray(sizes, dtype=float)
    t = np.asarray(times, dtype=float)
    if len(n) < 2 or len(n) != len(t):
        raise ModelError("fitting alpha and beta needs at least two (size, time) samples")
    w = 1.0 / np.maximum(t, 1e-12)
    A = np.stack([np.ones_like(n), n], axis=1) * w[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(A, t * w, rcond=None)
    alpha = max(float(alpha), 0.0)
    if not beta > 0:
        # no size dependence visible: fall back to the largest message's rate
        beta = float(t[-1] / max(n[-1], 1.0))
    return alpha, 1.0 / max(float(beta), 1e-30)


def _pingpong(comm, peer, sizes, iters, first):
    """One-way times (median of iters round trips / 2) with ``peer``."""
    from mpi4py import MPI

    out = []
    for n in sizes:
        buf = np.zeros(max(n, 1), dtype=np.uint8)
        samples = []
        for it in range(iters + 2):
            t0 = MPI.Wtime()
            if first:
                comm.Send([buf[:n], MPI.BYTE], dest=peer, tag=7)
                comm.Recv([buf[:n], MPI.BYTE], source=peer, tag=7)
            else:
                comm.Recv([buf[:n], MPI.BYTE], source=peer, tag=7)
                comm.Send([buf[:n], MPI.BYTE], dest=peer, tag=7)
            if it >= 2:
                samples.append((MPI.Wtime() - t0) / 2)
        out.append(float(np.median(samples)))
    return out


def _pingpong_with(comm, peer, sizes, iters):
    """Rank 0's ping-pong times with ``peer`` (None elsewhere, or without a peer); then a barrier."""
    times = None
    if peer is not None:
        if comm.Get_rank() == 0:
            times = _pingpong(comm, peer, sizes, iters, True)
        elif comm.Get_rank() == peer:
            _pingpong(comm, 0, sizes, iters, False)
    comm.Barrier()
    return times


def measure_reduce_bandwidth(nbytes=16 << 20, repeat=5) -> float:
    """Bytes/s of ``reduce_into`` (float32 sum) on this core."""
    from .._kernels import reduce_into

    n = nbytes // 4
    a = np.ones(n, dtype=np.float32)
    b = np.ones(n, dtype=np.float32)
    reduce_into(a, b, "sum")
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        reduce_into(a, b, "sum")
        best = min(best, time.perf_counter() - t0)
    return nbytes / best


def measure_copy_bandwidth(nbytes=8 << 20, repeat=5) -> float:
    """Bytes/s of one core's memory copy (``numpy.copyto`` of ``nbytes``), best of ``repeat``.

    This is the model's ``copy_bandwidth``: the rate of a schedule's local
    copies (Bruck's rotations, hierarchical packing).
    """
    src = np.ones(max(int(nbytes), 1), dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)                     # first touch of dst's pages is not a copy's cost
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return src.nbytes / max(best, 1e-12)


def _copy_rate(nbytes, repeat=5, budget=32 << 20) -> float:
    """Bytes/s of one ``numpy.copyto`` of ``nbytes``: best of ``repeat`` loops of about ``budget`` bytes."""
    src = np.ones(max(int(nbytes), 1), dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    loops = max(1, int(budget) // src.nbytes)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            np.copyto(dst, src)
        best = min(best, (time.perf_counter() - t0) / loops)
    return src.nbytes / max(best, 1e-12)


def measure_copy_sweep(sizes=None, repeat=5):
    """The cache of one core's copies: ``(cache_bytes, cache_copy_bandwidth, rates)``.

    Copies of each size (default 32 KiB to 16 MiB, doubling) are timed, best
    of ``repeat``. ``cache_bytes`` is the largest size whose rate is still
    above the geometric mean of the fastest rate and the largest size's rate
    (where the copy falls out of cache); ``cache_copy_bandwidth`` is the
    median rate of the sizes from 64 KiB to ``cache_bytes`` (the first-level
    cache is too small to hold a schedule's copies).

    Returns
    -------
    (int, float, dict)
        Bytes, bytes/s and ``{size: bytes/s}`` of every size measured.
    """
    sizes = sorted(sizes or [32 << 10 << i for i in range(10)])
    rates = {int(n): _copy_rate(n, repeat) for n in sizes}
    fast, slow = max(rates.values()), rates[sizes[-1]]
    knee = math.sqrt(fast * slow)
    cache = max([n for n, r in rates.items() if r >= knee] or [sizes[0]])
    inside = [r for n, r in rates.items() if min(64 << 10, cache) <= n <= cache]
    return cache, float(np.median(inside)), rates


def measure_memory_bandwidth(node_comm, nbytes=8 << 20, repeat=5) -> float:
    """Bytes/s of a machine's memory when every rank of ``node_comm`` copies ``nbytes`` at once.

    Collective over ``node_comm`` (the ranks of one machine): each round
    starts at a barrier and lasts until the slowest rank is done; the figure
    is every rank's bytes over the shortest round.
    """
    src = np.ones(max(int(nbytes), 1), dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    loops = 4
    best = float("inf")
    for _ in range(repeat):
        node_comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(loops):
            np.copyto(dst, src)
        mine = time.perf_counter() - t0
        best = min(best, node_comm.allreduce(mine, op=_mpi_max()))
    return node_comm.Get_size() * src.nbytes * loops / max(best, 1e-12)


def _mpi_max():
    from mpi4py import MPI

    return MPI.MAX


def _time_calls(comm, call, iters=200, batches=5) -> float:
    """Seconds per call of ``call()``: the shortest batch mean, the slowest rank's (collective)."""
    for _ in range(10):
        call()
    best = float("inf")
    for _ in range(batches):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            call()
        mine = (time.perf_counter() - t0) / iters
        best = min(best, comm.allreduce(mine, op=_mpi_max()))
    return best


def measure_call_overhead(comm, profile, groups, cores=None, iters=200):
    """The per-call costs: ``(call_overhead, emulated_call_overhead, raw)`` in seconds.

    Collective over ``comm``. A one-element-per-rank all-reduce (the registry's default
    all-reduce) is
    timed on a live Communicator and on one of emulated links of (almost) no
    cost (a star of 10 TB/s, 1 ns links). The live call less its price on
    the profile's links (the profile's constants, ``call_overhead=0``) is
    ``call_overhead``; the emulated call less its price on the star (the
    model's per-message overhead, every rank on this machine and its cores,
    ``call_overhead=0``) and less ``call_overhead`` is what emulation adds.
    Both are clipped at 0, and divided by the core share ``max(1, ranks of a
    node / cores)`` they were measured at (the model multiplies them by it).
    """
    from ..algorithms import default_algorithm
    from ..communicator import Communicator
    from ..topology import star
    from .simulate import predict

    algorithm = default_algorithm("allreduce")
    p = comm.Get_size()
    x = np.ones(p, dtype=np.float32)
    out = np.empty_like(x)
    topo, params = two_level_model(groups, profile)
    params = {**params, "call_overhead": 0.0}
    # on the profile's own two-level topology: the live call runs on the real links all the same,
    # and the Communicator does not read COLLECTIVES_PROFILE (perhaps the file being written)
    live = Communicator(comm, topology=topo)
    try:
        measured = _time_calls(comm, lambda: live.allreduce(x, out=out, algorithm=algorithm), iters)
    finally:
        live.free()
    modelled = predict("allreduce", algorithm, x.nbytes, topo, ranks=p, **params)
    free = star(p, link_bandwidth=10e12, link_latency=1e-9)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # more ranks than cores: said in the figure's cores
        emu = Communicator(comm, topology=free, emulate=True)
    try:
        emulated = _time_calls(comm, lambda: emu.allreduce(x, out=out, algorithm=algorithm), iters)
        host = dict(getattr(emu, "_emulated_host", {}))
    finally:
        emu.free()
    # priced as an emulated run is (bench/emulation_agreement.py): the model's own per-message
    # overhead, this machine's ranks and cores
    emu_params = {"call_overhead": 0.0, **host}
    if cores is not None:
        emu_params["cores"] = float(cores)
    emu_modelled = predict("allreduce", algorithm, x.nbytes, free, ranks=p, **emu_params)
    # the model takes s = ranks per core times a per-call cost on a machine with more ranks than
    # cores, so the figures are per core: what was measured over the share it was measured at
    node_size = int(np.bincount(np.asarray(groups, dtype=np.int64)).max())
    share = max(1.0, node_size / float(cores)) if cores else 1.0
    call = max(measured - modelled, 0.0) / share
    extra = max(emulated - emu_modelled, 0.0) / share - call
    extra = max(extra, 0.0)
    raw = {"live_s": measured, "live_modelled_s": modelled, "emulated_s": emulated,
           "emulated_modelled_s": emu_modelled, "core_share": share}
    return call, extra, raw


#: The emulated call :func:`measure_core_wait` times: ring all-reduce of 64 KiB per rank on a
#: star of the links bench/emulation_agreement.py emulates (every rank receives in every step)
CORE_WAIT_CASE = {"nbytes": 1 << 16, "links": "bw=1GB/s,lat=20us"}


def measure_core_wait(comm, cores, iters=30):
    """``core_wait`` in seconds, or None where it cannot be measured (a core per rank).

    Collective over ``comm``. Only a machine whose ranks outnumber its cores
    pays the term, so only such a run measures it: a ring all-reduce of
    64 KiB per rank (:data:`CORE_WAIT_CASE`) on emulated links, timed (the
    best batch mean of the slowest rank) and priced as an emulated run is
    (this machine's ranks and cores, the emulated per-call cost) with
    ``core_wait=0``. What the call takes beyond its price, over the steps in
    which a rank receives (all ``2 (p - 1)`` of them) and the core share
    less one (``s - 1``, the model multiplies ``core_wait`` by it), is
    ``core_wait``, clipped at 0. Other load on the machine raises it: run
    calibrate on a quiet machine.
    """
    from mpi4py import MPI

    from ..communicator import Communicator
    from ..topology import resolve
    from .simulate import DEFAULTS, EMULATION_CALL_OVERHEAD, predict

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        node_size = node.Get_size()
    finally:
        node.Free()
    node_size = comm.allreduce(node_size, op=_mpi_max())
    share = node_size / float(cores)
    if share <= 1.0:
        return None
    p = comm.Get_size()
    count = CORE_WAIT_CASE["nbytes"] // 4 - (CORE_WAIT_CASE["nbytes"] // 4) % p
    x = np.ones(count, dtype=np.float32)
    out = np.empty_like(x)
    topo = resolve(f"star:n={p},{CORE_WAIT_CASE['links']}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # more ranks than cores: the point of this measurement
        emu = Communicator(comm, topology=topo, emulate=True)
    try:
        measured = _time_calls(comm, lambda: emu.allreduce(x, out=out, algorithm="ring"), iters)
        host = dict(getattr(emu, "_emulated_host", {}))
    finally:
        emu.free()
    host.update(cores=float(cores), core_wait=0.0,
                call_overhead=DEFAULTS["call_overhead"] + EMULATION_CALL_OVERHEAD)
    modelled = predict("allreduce", "ring", x.nbytes, topo, ranks=p, **host)
    steps = 2 * (p - 1)
    return max(measured - modelled, 0.0) / (steps * (share - 1.0))


def calibrate(comm=None, sizes=None, iters=20):
    """Measure and fit a :class:`Profile` (collective over ``comm``; every rank returns it).

    Ranks 0 and the first rank sharing its memory do the intra-node ping-pong;
    rank 0 and the first rank on another node the inter-node one (skipped,
    ``inter = None``, when every rank shares memory).
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    if comm.Get_size() < 2:
        raise InvalidArgument("calibrate needs at least 2 ranks: run it under "
                              "'mpiexec -n 2 collectives calibrate' (4 or more across 2 nodes)")
    sizes = list(sizes or DEFAULT_SIZES)
    rank = comm.Get_rank()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        leader = comm.allgather(rank if node.Get_rank() == 0 else -1)
        mine = node.bcast(rank, root=0)
    finally:
        node.Free()
    node_of = comm.allgather(mine)
    same = [r for r in range(comm.Get_size()) if node_of[r] == node_of[0] and r != 0]
    other = [r for r in range(comm.Get_size()) if node_of[r] != node_of[0]]
    measured = {"sizes": sizes}
    intra_t = _pingpong_with(comm, same[0] if same else None, sizes, iters)
    inter_t = _pingpong_with(comm, other[0] if other else None, sizes, iters)
    node = comm.Split(0 if node_of[rank] == node_of[0] else 1, rank)
    try:
        memory_bw = measure_memory_bandwidth(node)
    finally:
        node.Free()
    prof = None
    if rank == 0:
        gamma = measure_reduce_bandwidth()
        copy_bw = measure_copy_bandwidth()
        cache, cache_bw, rates = measure_copy_sweep()
        if intra_t is None:           # every node has one rank: use the inter link for both
            intra_t = inter_t
        a, b = fit_alpha_beta(sizes, intra_t)
        inter = None
        if inter_t is not None:
            ai, bi = fit_alpha_beta(sizes, inter_t)
            inter = Link(ai, bi)
            measured["inter_times"] = inter_t
        measured["intra_times"] = intra_t
        measured["ranks"] = comm.Get_size()
        measured["nodes"] = len(leader) - leader.count(-1)
        measured["copy_rates"] = {str(k): v for k, v in rates.items()}
        measured["memory_ranks"] = len(same) + 1
        host = {"cache_copy_bandwidth": cache_bw, "cache_bytes": float(cache),
                "memory_bandwidth": memory_bw}
        prof = Profile(Link(a, b), inter, gamma, 0.0, measured, copy_bw, host)
    prof = comm.bcast(prof, root=0)
    # the per-call cost is priced with everything else measured: what is left of a call's time
    groups = np.unique(np.asarray(node_of), return_inverse=True)[1].reshape(-1)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    call, extra, raw = measure_call_overhead(comm, prof, groups, cores=cores)
    prof.host["call_overhead"] = call
    prof.host["emulated_call_overhead"] = extra
    prof.measured["call"] = raw
    wait = measure_core_wait(comm, cores)
    if wait is not None:
        prof.host["core_wait"] = wait
    return prof


def main(args) -> int:
    """``collectives calibrate``: measure, fit, write the profile (rank 0), print a summary."""
    from ..units import format_bandwidth, format_bytes, format_time, parse_size_range

    sizes = parse_size_range(args.sizes) if args.sizes else None
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover - mpi4py is a dependency
        raise ModelError("calibrate needs mpi4py and an MPI launcher") from None
    if MPI.COMM_WORLD.Get_size() < 2:
        raise InvalidArgument("calibrate needs at least 2 ranks: run it as "
                              "'mpiexec -n 2 collectives calibrate -o profile.json' "
                              "(ranks on two nodes also measure the network)")
    prof = calibrate(MPI.COMM_WORLD, sizes, args.iters)
    if MPI.COMM_WORLD.Get_rank() == 0:
        save_profile(prof, args.output)
        print(f"intra-node: alpha {format_time(prof.intra.latency)}, "
              f"bandwidth {format_bandwidth(prof.intra.bandwidth)}")
        if prof.inter:
            print(f"inter-node: alpha {format_time(prof.inter.latency)}, "
                  f"bandwidth {format_bandwidth(prof.inter.bandwidth)}")
        else:
            print("inter-node: not measured (every rank shares memory)")
        print(f"reduce bandwidth: {format_bandwidth(prof.reduce_bandwidth)}")
        print(f"copy bandwidth: {format_bandwidth(prof.copy_bandwidth)} (out of cache), "
              f"{format_bandwidth(prof.host['cache_copy_bandwidth'])} in the first "
              f"{format_bytes(int(prof.host['cache_bytes']))} (cache); memory "
              f"{format_bandwidth(prof.host['memory_bandwidth'])} shared by the "
              f"{prof.measured['memory_ranks']} rank(s) of a node")
        print(f"per call: {format_time(prof.host['call_overhead'])}, emulated links "
              f"{format_time(prof.host['emulated_call_overhead'])} more")
        if "core_wait" in prof.host:
            print(f"waiting for a core (ranks outnumber cores): {format_time(prof.host['core_wait'])} "
                  "per receiving step and extra rank per core")
        else:
            print("waiting for a core: not measured (a core per rank; run with more ranks than "
                  "cores to measure it)")
        print(f"profile written to {args.output}; use it with COLLECTIVES_PROFILE={args.output}")
    return 0
