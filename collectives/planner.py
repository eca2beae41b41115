"""The planner: price every candidate schedule in the model and keep the fastest.

Candidates for a collective are every algorithm of the registry
(:func:`collectives.algorithms.algorithm_names`), each with the parameter
variants that depend on the network:

- hierarchical algorithms: one candidate per group level of the topology
  (hosts under one switch, a fat-tree pod, a dragonfly group or router, a
  node...), the groups taken from the placement;
- ring algorithms: ring orders (linear, following the switch hierarchy, a
  dimension-ordered snake on a torus), run through ring all-reduce's
  ``order=`` parameter (a generator without one gets its other orders priced
  but marked "model only");
- the tree all-reduce: its pipeline chunk (the segment size) in a few sizes.

Plans are cached per (collective, size bucket) where the bucket is the
power of two at or above the size: ``choose`` for 3 MB and 4 MB share one
decision.

Without a topology (a live communicator on a cluster without a topology
file), :func:`choose_for_comm` builds a two-level model: ranks that share
memory under one node switch, node switches on one network switch, with the
link constants of a calibration profile (``COLLECTIVES_PROFILE``) or the
documented defaults of :data:`DEFAULT_TWO_LEVEL`.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import CollectivesError, InvalidArgument

__all__ = ["choose", "Plan", "Candidate", "choose_for_comm", "plan_for_comm", "DEFAULT_TWO_LEVEL",
           "ring_orders", "busbw_factor"]

#: The two-level model used for a live communicator without topology or profile.
#: Intra-node: shared-memory copies (one core, ~10 GB/s, ~0.4 us); inter-node: a
#: 100 Gb/s NIC per node, ~1.5 us. Reduction: 8 GB/s (one core, float32 sum).
DEFAULT_TWO_LEVEL = {
    "intra_bandwidth": 10e9, "intra_latency": 0.4e-6,
    "inter_bandwidth": 12.5e9, "inter_latency": 1.5e-6,
    "reduce_bandwidth": 8e9, "overhead": 0.5e-6,
}

#: candidates whose steps would have more flows than this are listed but not priced
MAX_FLOWS = 2_000_000

_MODEL_KEYS = ("overhead", "reduce_bandwidth", "switch_latency", "routing", "max_samples",
               "placement", "dtype", "itemsize")


@dataclass
class Candidate:
    label: str                 # e.g. "hierarchical(groups=pod)"
    algorithm: str
    params: dict               # what the executor passes to build_schedule
    time: Optional[float]      # None: could not be priced (note says why)
    executable: bool = True
    note: str = ""
    bottleneck: str = ""


@dataclass
class Plan:
    """The planner's decision for one (collective, size)."""

    collective: str
    nbytes: int
    algorithm: str
    predicted_time: Optional[float]
    params: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    reason: str = ""
    topology: str = ""
    ranks: int = 0
    choice: Optional[Candidate] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.choice.label if self.choice is not None else self.algorithm

    def explain(self) -> str:
        from .units import format_bytes, format_time

        lines = [f"{self.collective} of {format_bytes(self.nbytes)} per rank on {self.ranks} ranks "
                 f"of {self.topology}: {self.label}"
                 + (f", predicted {format_time(self.predicted_time)}"
                    if self.predicted_time is not None else "")]
        if self.candidates:
            width = max(len(c.label) for c in self.candidates)
            best = self.predicted_time
            lines.append(f"  {'candidate'.ljust(width)}  {'predicted':>10}  {'vs best':>8}  note")
            order = sorted(self.candidates, key=lambda c: (c.time is None, c.time or 0.0))
            for c in order:
                t = format_time(c.time) if c.time is not None else "-"
                rel = (f"{c.time / best:.2f}x" if c.time is not None and best else "-")
                mark = "*" if c is self.choice else " "
                note = c.note or c.bottleneck
                lines.append(f"{mark} {c.label.ljust(width)}  {t:>10}  {rel:>8}  {note}")
        if self.reason:
            lines.append(f"reason: {self.reason}")
        return "\n".join(lines)

    def __repr__(self):
        t = f"{self.predicted_time:.3e} s" if self.predicted_time is not None else "no prediction"
        return f"<Plan {self.collective} {self.nbytes} B -> {self.label} ({t})>"

    def to_dict(self) -> dict:
        return {"collective": self.collective, "nbytes": self.nbytes, "algorithm": self.algorithm,
                "label": self.label, "params": _jsonable(self.params),
                "predicted_time": self.predicted_time, "reason": self.reason,
                "candidates": [{"label": c.label, "algorithm": c.algorithm, "time": c.time,
                                "executable": c.executable, "note": c.note or c.bottleneck}
                               for c in self.candidates]}


def _jsonable(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


def busbw_factor(collective: str, p: int) -> float:
    """nccl-tests' bus bandwidth factor: busbw = algbw * factor."""
    if p <= 1:
        return 1.0
    if collective == "allreduce":
        return 2.0 * (p - 1) / p
    if collective in ("alltoall", "reduce_scatter", "allgather"):
        return (p - 1) / p
    return 1.0


# ---------------------------------------------------------------------- candidates
def ring_orders(topo, hosts) -> dict:
    """Candidate ring orders: name -> permutation of ranks (rank order along the ring)."""
    p = len(hosts)
    orders = {"linear": np.arange(p, dtype=np.int64)}
    if hasattr(topo, "graph"):
        try:
            gi = np.asarray(topo.group_index(), dtype=np.int64)[hosts]
            hier = np.lexsort((hosts, gi))
            if not np.array_equal(hier, orders["linear"]):
                orders["hierarchy"] = hier.astype(np.int64)
        except CollectivesError:
            pass
        if topo.family == "torus":
            dims = list(topo.params.get("dims") or [])
            coords = [topo.graph.nodes[topo.hosts[h]].get("coord") for h in hosts.tolist()]
            if dims and all(c is not None for c in coords):
                orders["snake"] = _snake(np.asarray(coords), dims)
    return orders


def _snake(coords, dims):
    """Boustrophedon (dimension-ordered, reflected) order: consecutive ranks are neighbours."""
    key = np.zeros(len(coords), dtype=np.int64)
    flip = np.zeros(len(coords), dtype=np.int64)
    for d in range(len(dims) - 1, -1, -1):
        c = coords[:, d]
        c = np.where(flip % 2 == 1, dims[d] - 1 - c, c)
        key = key * dims[d] + c
        flip = flip + c
    return np.argsort(key, kind="stable").astype(np.int64)


def _levels(topo):
    if not hasattr(topo, "group_levels"):
        return []
    out = []
    for lvl in topo.group_levels():
        if lvl in ("host", "all"):
            continue
        out.append(lvl)
    return out


def _candidates(collective, topo, hosts, alg_params, count=0):
    from . import algorithms as _alg
    from .model.simulate import rank_groups

    p = len(hosts)
    out = []     # (label, algorithm, exec params, model placement or None, executable, note)
    for name in _alg.algorithm_names(collective):
        accepted = _alg.algorithm_params(collective, name)
        base = {k: v for k, v in alg_params.items() if k in accepted}
        if "groups" in accepted and "groups" not in base:
            seen = set()
            for lvl in _levels(topo):
                try:
                    g = rank_groups(topo, hosts, lvl)
                except CollectivesError:
                    continue
                k = g.tobytes()
                ng = int(g.max()) + 1 if len(g) else 0
                if k in seen or ng in (1, p):
                    continue
                if collective == "alltoall" and p * ng > MAX_FLOWS:
                    # every rank sends to every group's aggregator: p * groups messages in a step
                    out.append((f"{name}(groups={lvl})", name, dict(base, groups=g), None, False,
                                f"skipped: {p}x{ng} messages per step exceed the planner's "
                                f"budget of {MAX_FLOWS:,} (price it with model.predict)"))
                    seen.add(k)
                    continue
                seen.add(k)
                out.append((f"{name}(groups={lvl})", name, dict(base, groups=g), None, True, ""))
            if not seen:
                out.append((name, name, dict(base), None, True, ""))
            continue
        out.append((name, name, dict(base), None, True, ""))
        if name == "tree" and "chunk" in accepted and "chunk" not in base and count:
            # the default pipelines in chunks of 32768 elements (at most 64 per half);
            # also try 8 large chunks per half and 256 small ones
            half = -(-count // 2)
            default = min(64, max(1, -(-half // 32768)))
            for nch in (8, 256):
                c = max(1, -(-half // nch))
                if nch != default and c >= 64:
                    out.append((f"{name}(chunk={c})", name, dict(base, chunk=c), None, True, ""))
        if name == "ring":
            for oname, perm in ring_orders(topo, hosts).items():
                if oname == "linear":
                    continue
                if "order" in accepted:
                    out.append((f"ring(order={oname})", name, dict(base, order=perm), None, True, ""))
                else:
                    # priced by placing ring position i on the host of rank perm[i]
                    out.append((f"ring(order={oname})", name, dict(base), hosts[perm], False,
                                "model only: the ring takes no order= parameter yet"))
    return out


# ---------------------------------------------------------------------- choose
_CACHE: dict = {}


def _bucket(nbytes: int) -> int:
    return 0 if nbytes <= 0 else 1 << (int(nbytes) - 1).bit_length()


def choose(collective, nbytes, topology, ranks=None, *, cache=True, **params) -> Plan:
    """Price every candidate for ``collective`` of ``nbytes`` per rank and keep the fastest.

    Parameters
    ----------
    collective : str
    nbytes : int
        Each rank's whole buffer (as :func:`collectives.model.predict`).
    topology : Topology, spec string or file
    ranks : int, optional
        Default: every host.
    cache : bool
        Reuse the decision of the same (collective, size bucket, topology, ranks, params).
    **params
        Model constants (``overhead=``, ``reduce_bandwidth=``, ``placement=``,
        ``routing=``, ``dtype=``...) and fixed algorithm parameters (``root=``).

    Returns
    -------
    Plan
    """
    from .model.simulate import (COLLECTIVES, _check_nbytes, _itemsize, _num_hosts, build_for,
                                 placement_of, resolve_topology, simulate)

    if not isinstance(collective, str) or collective not in COLLECTIVES:
        raise InvalidArgument(f"unknown collective {collective!r}: accepted are {', '.join(COLLECTIVES)}")
    nbytes = _check_nbytes(nbytes)
    topo = resolve_topology(topology)
    if ranks is None:
        ranks = _num_hosts(topo)
    if isinstance(ranks, bool) or not isinstance(ranks, (int, np.integer)) or ranks < 1:
        raise InvalidArgument(f"ranks must be an integer >= 1, got {ranks!r}")
    ranks = int(ranks)
    model = {k: v for k, v in params.items() if k in _MODEL_KEYS}
    alg_params = {k: v for k, v in params.items() if k not in _MODEL_KEYS}
    itemsize = _itemsize(model)
    model.pop("itemsize", None)
    model.pop("dtype", None)
    hosts = placement_of(topo, ranks, model.pop("placement", None))
    key = None
    if cache:
        try:
            key = (id(topo), collective, _bucket(nbytes), ranks, hosts.tobytes(),
                   repr(sorted(model.items())), repr(sorted(alg_params.items())))
            hit = _CACHE.get(key)
            if hit is not None and hit[0] is topo:
                return hit[1]
        except Exception:
            key = None
    if ranks == 1:
        plan = Plan(collective, nbytes, "ring" if collective != "alltoall" else "pairwise", 0.0,
                    reason="one rank: nothing to send", topology=topo.name, ranks=1)
        return plan
    cands = []
    for label, name, ap, place, executable, note in _candidates(collective, topo, hosts, alg_params, nbytes // itemsize):
        if note.startswith("skipped"):
            cands.append(Candidate(label, name, ap, None, False, note))
            continue
        try:
            sched = build_for(collective, name, nbytes - nbytes % itemsize, topo, ranks, hosts,
                              itemsize, ap)
            res = simulate(sched, topo, placement=hosts if place is None else place,
                           itemsize=itemsize, **model)
            hot = res.hottest_links(1)
            bn = ""
            if hot and res.time > 0:
                u, v, b, busy = hot[0]
                bn = f"busiest link {u}->{v} busy {busy / res.time:.0%} of the time"
            cands.append(Candidate(label, name, ap, res.time, executable, note, bn))
        except CollectivesError as exc:
            cands.append(Candidate(label, name, ap, None, False, f"not applicable: {exc}"))
    usable = [c for c in cands if c.time is not None and c.executable]
    if not usable:
        raise InvalidArgument(f"no {collective} algorithm can run on {ranks} ranks of {topo.name}: "
                              + "; ".join(f"{c.label}: {c.note}" for c in cands))
    usable.sort(key=lambda c: c.time)
    best = usable[0]
    reason = f"fastest of {len(usable)} executable candidates"
    if len(usable) > 1:
        second = usable[1]
        reason += (f"; {second.label} is {second.time / best.time:.2f}x slower"
                   if best.time > 0 else "")
    model_only = [c for c in cands if c.time is not None and not c.executable and c.time < best.time]
    if model_only:
        m = min(model_only, key=lambda c: c.time)
        reason += (f"; {m.label} would be {best.time / m.time:.2f}x faster but the executor "
                   f"cannot run it ({m.note})")
    plan = Plan(collective, nbytes, best.algorithm, best.time, best.params, cands, reason,
                topo.name, ranks, best)
    if key is not None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = (topo, plan)
    return plan


# ---------------------------------------------------------------------- live communicators
_COMM_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

#: algorithms the Communicator accepts by collective (the registry's, plus "mpi")
def _executable_names(collective):
    from . import algorithms as _alg

    return set(_alg.algorithm_names(collective)) | {"mpi"}


def _comm_model(comm):
    """(topology, model params) the planner uses for a live communicator."""
    try:
        hit = _COMM_MODELS.get(comm)
    except TypeError:
        hit = None
    if hit is not None:
        return hit
    placement = getattr(comm, "placement", None)
    if getattr(comm, "topology", None) is not None:
        out = (comm.topology, {"placement": placement} if placement is not None else {})
    else:
        groups = np.asarray(getattr(comm, "groups", np.zeros(comm.size, dtype=np.int64)))
        path = os.environ.get("COLLECTIVES_PROFILE")
        from .model.calibrate import load_profile, two_level_topology

        if path:
            prof = load_profile(path)
            topo = two_level_topology(groups, prof)
            mp = {"overhead": prof.overhead, "reduce_bandwidth": prof.reduce_bandwidth}
        else:
            topo = two_level_topology(groups, None)
            mp = {"overhead": DEFAULT_TWO_LEVEL["overhead"],
                  "reduce_bandwidth": DEFAULT_TWO_LEVEL["reduce_bandwidth"]}
        out = (topo, mp)
    try:
        _COMM_MODELS[comm] = out
    except TypeError:
        pass
    return out


def plan_for_comm(comm, collective, nbytes) -> Plan:
    """The plan ``algorithm="auto"`` follows on a live Communicator (also ``comm.plan``).

    With ``comm.topology``: the planner on that topology and placement. Without:
    a two-level model of the ranks' shared-memory groups, with the constants of
    the profile named by ``COLLECTIVES_PROFILE`` or :data:`DEFAULT_TWO_LEVEL`.
    The chosen algorithm is always a name the Communicator accepts; its
    parameters (``plan.params``) are what the executor should pass on
    (hierarchical ``groups``, tree ``chunk``).
    """
    topo, mp = _comm_model(comm)
    plan = choose(collective, int(nbytes), topo, comm.size, itemsize=1, **mp)
    if plan.algorithm not in _executable_names(collective):   # pragma: no cover - registry names
        plan.algorithm = "mpi"
    return plan


def choose_for_comm(comm, collective, nbytes) -> Plan:
    """Same as :func:`plan_for_comm` (the hook ``policy.auto_algorithm`` calls)."""
    return plan_for_comm(comm, collective, nbytes)
