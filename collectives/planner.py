"""The planner: price every candidate schedule in the model and keep the fastest.

One entry point, :func:`choose`, for a topology or a live Communicator. The
candidates for a collective are every algorithm of the registry
(:mod:`collectives.algorithms`), each with the parameter variants its entry
says are worth pricing on the network: one per group level of the topology
for hierarchical algorithms, ring orders (linear, following the switch
hierarchy, a snake on a torus) for rings, a few pipeline chunks for the tree.

Plans are cached per (collective, size bucket) where the bucket is the
power of two at or above the size: ``choose`` for 3 MB and 4 MB share one
decision.

For a Communicator without a topology (a cluster without a topology file),
the network is a two-level model: ranks that share memory under one node
switch, node switches on one network switch, with the link constants of a
calibration profile (``COLLECTIVES_PROFILE``) or
:data:`collectives.model.calibrate.DEFAULT_TWO_LEVEL`.

For a live Communicator (not emulating links), a latency-bound call goes to
the MPI library's own collective ("mpi"): one whose fastest schedule the model
prices at no more than :data:`LATENCY_BOUND` times the same schedule's price
for one element per rank (both without the per-call cost, ``call_overhead``,
which either pays), so that fixed per-message costs, not bytes, make its
time. There a library call that pays them once beats any schedule the
executor runs step by step (measured on MPICH and Open MPI, see
docs/guide/benchmarking.md, "Small messages").
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import CollectivesError, InvalidArgument

__all__ = ["choose", "Plan", "Candidate"]

#: candidates whose steps would have more flows than this are listed but not priced
MAX_FLOWS = 2_000_000

#: a live Communicator's call is latency-bound, and goes to the MPI library's own collective,
#: when its fastest schedule costs at most this many times that schedule's price for one
#: element per rank: its bytes add no more than its fixed per-message costs
LATENCY_BOUND = 2.0


@dataclass
class Candidate:
    """One schedule the planner priced (or could not price, and why)."""

    label: str                 # e.g. "hierarchical(groups=pod)"
    algorithm: str
    params: dict               # what the executor passes to build_schedule
    time: Optional[float]      # None: could not be priced (note says why)
    executable: bool = True
    note: str = ""
    bottleneck: str = ""
    #: the model's split of ``time`` (:attr:`collectives.model.SimulationResult.breakdown`)
    breakdown: dict = field(default_factory=dict)


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
    #: the size the candidates were priced at: ``nbytes`` rounded down to whole blocks
    #: (:func:`collectives.model.priced_nbytes`); None means ``nbytes`` itself
    priced_nbytes: Optional[int] = None

    @property
    def label(self) -> str:
        return self.choice.label if self.choice is not None else self.algorithm

    def explain(self) -> str:
        from .units import format_bytes, format_time

        lines = [f"{self.collective} of {format_bytes(self.nbytes)} per rank on {self.ranks} ranks "
                 f"of {self.topology}: {self.label}"
                 + (f", predicted {format_time(self.predicted_time)}"
                    if self.predicted_time is not None else "")]
        if self.priced_nbytes is not None and self.priced_nbytes != self.nbytes:
            lines.append(f"priced {self.priced_nbytes} B (rounded down to whole blocks)")
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
        split = self.choice.breakdown if self.choice is not None else {}
        total = sum(split.values())
        if total > 0:
            # where the winner's time goes: the network against the host's own work
            parts = [f"{part} {format_time(t)} ({t / total:.0%})" for part, t in split.items()]
            lines.append(f"time of {self.label}: {parts[0]}; host terms: {', '.join(parts[1:])}")
        return "\n".join(lines)

    def __repr__(self):
        t = f"{self.predicted_time:.3e} s" if self.predicted_time is not None else "no prediction"
        return f"<Plan {self.collective} {self.nbytes} B -> {self.label} ({t})>"

    def to_dict(self) -> dict:
        return {"collective": self.collective, "nbytes": self.nbytes,
                "priced_nbytes": self.nbytes if self.priced_nbytes is None else self.priced_nbytes,
                "algorithm": self.algorithm,
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
    topology : Topology, spec string, file or collectives.Communicator
        For a Communicator: its topology and placement, or without one the
        two-level model of its shared-memory groups (constants from
        ``COLLECTIVES_PROFILE`` or the defaults); ``ranks`` is its size.
    ranks : int, optional
        Default: every host (a Communicator's size).
    cache : bool
        Reuse the decision of the same (collective, size bucket, topology, ranks, params).
    **params
        Model constants (``overhead=``, ``reduce_bandwidth=``, ``placement=``,
        ``routing=``, ``dtype=``...) and fixed algorithm parameters (``root=``).

    Returns
    -------
    Plan
        Its ``algorithm`` is a registry name and ``params`` what to build the
        schedule with (hierarchical ``groups``, tree ``chunk``, ring ``order``),
        or, for a live Communicator's latency-bound call, "mpi" (the MPI
        library's own collective; ``reason`` says why, ``predicted_time`` is
        the fastest schedule's);
        ``priced_nbytes`` is the size the candidates were priced at (``nbytes``
        rounded down to whole blocks, :func:`collectives.model.priced_nbytes`),
        and ``explain()`` says so when it differs.
    """
    from . import algorithms as _alg
    from .model.simulate import _check_nbytes

    if not isinstance(collective, str) or collective not in _alg.COLLECTIVES:
        raise InvalidArgument(f"unknown collective {collective!r}: accepted are "
                              f"{', '.join(_alg.COLLECTIVES)}")
    nbytes = _check_nbytes(nbytes)
    native = False
    if _is_communicator(topology):
        comm = topology
        if ranks is not None and ranks != comm.size:
            raise InvalidArgument(f"ranks={ranks!r} differs from the communicator's size {comm.size}; "
                                  "leave ranks out to plan for the communicator")
        ranks = comm.size
        native = _runs_native(comm)
        topology, comm_params = _comm_model(comm)
        params = {**comm_params, **params}
    plan = _priced(collective, nbytes, topology, ranks, cache, params)
    if native and plan.ranks > 1 and plan.predicted_time is not None:
        plan = _latency_rule(plan, collective, topology, ranks, cache, params)
    return plan


def _priced(collective, nbytes, topology, ranks, cache, params) -> Plan:
    """The fastest schedule the model prices (what :func:`choose` returns for a topology)."""
    from . import algorithms as _alg
    from .model.simulate import build_for, priced_nbytes, resolve_call, simulate

    topo, ranks, model, alg_params, itemsize, hosts = resolve_call(topology, ranks, params)
    key = None
    if cache:
        try:
            key = (id(topo), collective, _bucket(nbytes), itemsize, ranks, hosts.tobytes(),
                   repr(sorted(model.items())), repr(sorted(alg_params.items())))
            hit = _CACHE.get(key)
            if hit is not None and hit[0] is topo:
                return hit[1]
        except Exception:   # an unhashable or unprintable parameter: plan without the cache
            key = None
    if ranks == 1:
        return Plan(collective, nbytes, _alg.default_algorithm(collective), 0.0,
                    reason="one rank: nothing to send", topology=topo.name, ranks=1)
    # the planner has always priced a stray partial element away; whole blocks as predict does
    priced = priced_nbytes(collective, nbytes - nbytes % itemsize, ranks, itemsize)
    count = priced // itemsize
    cands = []
    for alg in _alg.algorithms(collective):
        accepted = alg.params
        base = {k: v for k, v in alg_params.items() if k in accepted}
        for variant in alg.variants_on(topo, hosts, count, base):
            cands.append(_price(alg, variant, collective, priced, topo, ranks,
                                hosts, itemsize, model, build_for, simulate))
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
                topo.name, ranks, best, priced)
    if key is not None:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = (topo, plan)
    return plan


def _price(alg, variant, collective, nbytes, topo, ranks, hosts, itemsize, model, build_for,
           simulate) -> Candidate:
    """One candidate: ``variant`` of ``alg`` priced in the model (or why it was not)."""
    label = alg.label(variant)
    if variant.messages_per_step > MAX_FLOWS:
        return Candidate(label, alg.name, variant.params, None, False,
                         f"skipped: {variant.messages_per_step:,} messages per step exceed the "
                         f"planner's budget of {MAX_FLOWS:,} (price it with model.predict)")
    try:
        sched = build_for(collective, alg.name, nbytes, topo, ranks, hosts, itemsize, variant.params)
        res = simulate(sched, topo, placement=hosts if variant.placement is None else variant.placement,
                       itemsize=itemsize, **model)
    except CollectivesError as exc:
        return Candidate(label, alg.name, variant.params, None, False, f"not applicable: {exc}")
    hot = res.hottest_links(1)
    bottleneck = ""
    if hot and res.time > 0:
        u, v, _, busy = hot[0]
        bottleneck = f"busiest link {u}->{v} busy {busy / res.time:.0%} of the time"
    return Candidate(label, alg.name, variant.params, res.time, variant.executable, variant.note,
                     bottleneck, res.breakdown)


def _runs_native(comm) -> bool:
    """True for a live Communicator whose calls may go to the MPI library's own collective:
    it has an MPI communicator and does not emulate links (the library's collective would
    run on the real links, not the emulated ones)."""
    return getattr(comm, "mpi_comm", None) is not None and not getattr(comm, "emulate", False)


def _latency_rule(plan, collective, topology, ranks, cache, params) -> Plan:
    """``plan``, or "mpi" in its place when the call is latency-bound (:data:`LATENCY_BOUND`)."""
    from dataclasses import replace

    from .model.simulate import resolve_call
    from .units import format_time

    itemsize = resolve_call(topology, ranks, params)[4]
    floor = _priced(collective, itemsize * ranks, topology, ranks, cache, params)
    # the per-call cost (call_overhead) is paid whichever runs the call, so the rule compares
    # the schedules' times without it
    call = floor.choice.breakdown.get("call", 0.0) if floor.choice is not None else 0.0
    fixed = floor.predicted_time - call
    mine = plan.predicted_time - (plan.choice.breakdown.get("call", 0.0) if plan.choice is not None else 0.0)
    if not fixed > 0 or mine > LATENCY_BOUND * fixed:
        return plan
    note = "the MPI library's own collective, one library call (the model does not price it)"
    mpi = Candidate("mpi", "mpi", {}, None, True, note)
    reason = (f"latency-bound: the fastest schedule, {plan.label} ({format_time(plan.predicted_time)}), "
              f"costs {mine / fixed:.2f}x its price for one element per rank "
              f"({format_time(fixed)}; the rule is <= {LATENCY_BOUND:g}x), so fixed per-message "
              "costs make its time; the MPI library's own collective pays them in one library call, "
              "without the executor's per-step cost (the predicted time is that schedule's)")
    return replace(plan, algorithm="mpi", params={}, candidates=plan.candidates + [mpi],
                   reason=reason, choice=mpi)


# ---------------------------------------------------------------------- live communicators
_COMM_MODELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _is_communicator(obj) -> bool:
    """A collectives.Communicator (or anything shaped like one: size, groups, topology)."""
    return (not hasattr(obj, "graph") and hasattr(obj, "size") and hasattr(obj, "groups")
            and hasattr(obj, "topology"))


def _comm_model(comm):
    """(topology, model params) the planner uses for a live communicator, kept per communicator."""
    try:
        hit = _COMM_MODELS.get(comm)
    except TypeError:
        hit = None
    if hit is not None:
        return hit
    placement = getattr(comm, "placement", None)
    if comm.topology is not None:
        out = (comm.topology, {"placement": placement} if placement is not None else {})
    else:
        from .model.calibrate import two_level_model

        out = two_level_model(comm.groups, os.environ.get("COLLECTIVES_PROFILE") or None)
    try:
        _COMM_MODELS[comm] = out
    except TypeError:
        pass
    return out
