"""Pricing a training step on a topology: :func:`simulate` and :class:`StepResult`.

The workload only produces traffic; the model prices it
(:func:`collectives.model.price_concurrent`, one max-min problem per set of
concurrent flows on the real graph).

Every collective of the step is built once per (collective, algorithm, group
size, bytes) as a :class:`~collectives.schedule.Schedule` of the group's
local ranks. Each of its step patterns is mapped onto *all* groups of its
dimension at once by array indexing (``layout.groups(dim)[:, src]`` -> global
ranks -> hosts): every tensor-parallel group of every stage and replica runs
its all-reduce at the same moment, and they share the links. A step's time
is its slowest rank's, as in :func:`collectives.model.simulate`.

Host terms. On an accelerator (``host="accelerator"``, the default for every
accelerator but a CPU host) a training step prices, of the model's host
terms, the per-message overhead and the reduction (at the accelerator's
reduce bandwidth, after the transfer); the host's local copies, segment
pipelining and per-call cost are left out, as they are an accelerator's, not
a CPU's (``predict(..., copy_bandwidth=inf, segment_bytes=inf,
call_overhead=0)`` prices a collective the same way). On a CPU host
(``host="cpu"``, the default of an ``Accelerator(host="cpu")``) every step of
every collective is priced by the model's own
:func:`collectives.model.joint.joint_rank_times` (copies, per-message
overheads, pipelined reductions, cores and memory shared per machine) and
every call pays the model's per-call cost
(:func:`collectives.model.joint.call_costs`; ``emulated=True`` adds
:data:`collectives.model.EMULATION_CALL_OVERHEAD`), as
:func:`collectives.model.joint.joint_call_times` prices a call: a step of one
collective is that collective's ``joint_call_times``.

Timeline (1F1B, Narayanan et al. 2021):

* one micro-batch's forward and backward on a stage are its compute intervals
  and its collectives back to back (tensor-parallel and expert all-to-alls
  are on the critical path: nothing overlaps them); all stages are priced in
  lockstep, each collective's pattern covering the groups of every stage;
* the pipeline sends of a micro-batch (activations forward, gradients back)
  follow it; the period of the pipeline is the slowest stage's
  ``forward + backward + sends``; the step is ``(m + p - 1)`` periods, of
  which ``p - 1`` are the bubble;
* the data-parallel gradient buckets run during the last micro-batch's
  backward pass of the first stage (the stage that finishes last), each
  launched when its layers are done and after the previous bucket: an event
  simulation of two streams where, whenever a bucket's step and a step of the
  backward's own collectives run at the same moment, their flows are priced
  together in one max-min problem. What runs past the end of the backward
  (and what the buckets slow the backward down by) is the exposed "dp" time;
* ZeRO-1/2's parameter all-gathers follow the step; FSDP's per-layer
  all-gathers hide behind the previous layer's compute, the excess exposed.

Breakdown keys: "compute", "tp", "ep", "pp" (the m micro-batches of the
critical stage), "bubble" (the p - 1 extra periods), "dp" (exposed
data-parallel time). They sum to ``time``.

Identical patterns are priced once (cached per pattern set), and no Python
object is made per group or per flow.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgument, ModelError
from ..model.concurrent import price_concurrent
from ..model.joint import call_costs, joint_rank_times
from ..model.network import network_for
from ..model.simulate import (EMULATION_CALL_OVERHEAD, _group_reps, build_for, machines_of,
                              model_params, placement_of, resolve_topology)
from .accelerators import HOSTS
from .step import Collective, Compute, Ready, TrainingStep

__all__ = ["simulate", "StepResult", "DEFAULT_ALGORITHMS"]

#: algorithm per collective unless ``algorithms=`` says otherwise: the bandwidth-optimal ring
#: for the reductions and gathers, the pairwise exchange for all-to-all
DEFAULT_ALGORITHMS = {"allreduce": "ring", "reduce_scatter": "ring", "allgather": "ring",
                      "alltoall": "pairwise"}
_PARAMS = ("overhead", "reduce_bandwidth", "switch_latency", "routing", "max_samples")
_PRICE_PARAMS = ("overhead", "reduce_bandwidth", "switch_latency", "routing")
#: what a CPU host adds to :data:`_PARAMS`: the host terms of :func:`collectives.model.predict`
_HOST_PARAMS = ("call_overhead", "copy_bandwidth", "cache_copy_bandwidth", "cache_bytes",
                "memory_bandwidth", "segment_bytes", "cores", "core_wait", "machines")
BREAKDOWN = ("compute", "tp", "ep", "pp", "bubble", "dp")


# ---------------------------------------------------------------------- result
@dataclass
class StepResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    time : float
        Seconds per training step.
    breakdown : dict
        Seconds of "compute" and of *exposed* communication per dimension
        ("tp", "ep", "pp", "dp") and the pipeline "bubble"; they sum to ``time``.
    phases : dict
        Seconds of the step's phases, each priced with what runs beside it:
        "forward", "backward" (one micro-batch on the critical stage) and
        their parts "forward.compute", "forward.tp", "forward.ep",
        "backward.compute", ...; "pp.activations", "pp.gradients" (one
        micro-batch's sends); "dp.gradients" (the first stage's gradient
        collectives back to back, alone); "backward.last" and
        "dp.overlapped" (the last backward and the end of the last bucket,
        both from the start of that backward, buckets and backward sharing the
        network); "dp.parameters" (ZeRO-1/2), "dp.fsdp" (FSDP, exposed per
        micro-batch).
    tokens_per_second : float
    mfu : float
        Model FLOPs per second over the peak of every accelerator (nan when
        the accelerator's peak is infinite).
    algorithms : dict
        ``{"tp allreduce": "ring (registry default)", ...}``: what each
        dimension's collectives ran and why.
    critical_stage : int
        The pipeline stage that sets the period.
    host : str
        "accelerator" (host copies and per-call cost left out) or "cpu"
        (every host term of the model).
    emulated : bool
        On a CPU host: whether each call also pays the emulated links' own
        per-call cost.
    """

    time: float
    breakdown: dict
    phases: dict
    tokens_per_second: float
    mfu: float
    algorithms: dict
    critical_stage: int
    step: TrainingStep = field(repr=False)
    topology_name: str = ""
    joint: bool = True
    _pricer: object = field(default=None, repr=False)
    host: str = "accelerator"
    emulated: bool = False
    _links: tuple = field(default=None, repr=False)

    def _link_load(self):
        if self._links is None:
            self._links = self._pricer.link_load()
        return self._links

    def hottest_links(self, k: int = 10) -> list:
        """The ``k`` busiest directed links over the whole step:
        ``[(u, v, bytes, busy_seconds), ...]`` (``busy_seconds``: bytes over bandwidth)."""
        ids, nbytes, net = self._link_load()
        if not len(ids):
            return []
        busy = nbytes / net.capacity(ids)
        order = np.argsort(-busy, kind="stable")[:k]
        names = net.link_names(ids[order])
        return [(u, v, float(nbytes[i]), float(busy[i])) for (u, v), i in zip(names, order)]

    def explain(self) -> str:
        """A readable account: the step, its breakdown, the algorithms and the hottest links."""
        from ..units import format_bandwidth, format_bytes, format_time

        st, lay = self.step, self.step.layout
        lines = [f"{st.model.name} on {lay.size} ranks of {self.topology_name} "
                 f"(dp={lay.dp}, tp={lay.tp}, pp={lay.pp}, ep={lay.ep}; order "
                 f"{'-'.join(lay.order)}), global batch {st.global_batch} x {st.model.seq_len} "
                 f"tokens in {st.num_microbatches} micro-batch(es) of {st.micro_batch}, "
                 f"{st.dtype}, sharding {st.sharding}"
                 + ("" if self.joint else "; each collective priced on one group alone")]
        mfu = "n/a (free compute)" if math.isnan(self.mfu) else f"{self.mfu:.1%}"
        lines.append(f"step time {format_time(self.time)}, {self.tokens_per_second:,.0f} tokens/s, "
                     f"MFU {mfu}")
        for k in BREAKDOWN:
            v = self.breakdown[k]
            share = v / self.time if self.time > 0 else 0.0
            lines.append(f"  {k:<8} {format_time(v):>10}  {share:6.1%}")
        g = self._pricer.mp["reduce_bandwidth"]
        lines.append(f"critical stage {self.critical_stage} of {lay.pp}; reductions "
                     + (f"at {format_bandwidth(g)}" if math.isfinite(g) else "free"))
        lines.append(self._host_terms())
        lines.append("collectives:")
        for k, v in self.algorithms.items():
            lines.append(f"  {k}: {v}")
        hot = self.hottest_links(5)
        if hot:
            lines.append("hottest links over the step:")
            for u, v, b, t in hot:
                share = t / self.time if self.time > 0 else 0.0
                lines.append(f"  {u} -> {v}: {format_bytes(b)}, busy {format_time(t)} "
                             f"({share:.0%} of the step)")
        return "\n".join(lines)

    def _host_terms(self) -> str:
        """The host terms the step was priced with, in words."""
        from ..units import format_bandwidth, format_bytes, format_time

        mp = self._pricer.mp
        bw = (lambda v: format_bandwidth(v) if math.isfinite(v) else "free")
        if self.host != "cpu":
            return (f"host terms: accelerator (per message {format_time(mp['overhead'])}; the "
                    "host's copies and per-call cost left out)")
        call = format_time(mp["call_overhead"])
        if self.emulated:
            call += (f" (with {format_time(EMULATION_CALL_OVERHEAD)} of the emulated links' own "
                     "holds)")
        seg = mp["segment_bytes"]
        cores = mp["cores"]
        return "\n".join([
            f"host terms: CPU host; per call {call}, per message {format_time(mp['overhead'])}",
            f"  copies {bw(mp['cache_copy_bandwidth'])} up to {format_bytes(int(mp['cache_bytes']))} "
            f"in cache, then {bw(mp['copy_bandwidth'])}; memory {bw(mp['memory_bandwidth'])} per "
            f"machine, shared",
            f"  reductions {bw(mp['reduce_bandwidth'])}, pipelined per "
            + (f"{format_bytes(int(seg))} segment" if math.isfinite(seg) else "message (no segments)")
            + "; " + (f"{cores:g} core(s) per machine, {format_time(mp['core_wait'])} waiting for a "
                      "core where ranks outnumber them" if math.isfinite(cores) else "a core per rank")])

    def to_dict(self) -> dict:
        """Plain data (JSON-serialisable)."""
        return {"time": self.time, "breakdown": dict(self.breakdown), "phases": dict(self.phases),
                "tokens_per_second": self.tokens_per_second,
                "mfu": None if math.isnan(self.mfu) else self.mfu,
                "algorithms": dict(self.algorithms), "critical_stage": self.critical_stage,
                "topology": self.topology_name, "joint": self.joint, "step": self.step.to_dict(),
                "host": self.host, "emulated": self.emulated,
                "model_params": {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                 for k, v in self._pricer.mp.items()},
                "hottest_links": [{"src": str(u), "dst": str(v), "bytes": b, "busy": t}
                                  for u, v, b, t in self.hottest_links(5)]}


# ---------------------------------------------------------------------- pricing
class _Pattern:
    """One step of one collective on every group of its dimension: global flows as arrays.

    ``extra`` (an accelerator's overheads and reductions per global rank) or, on a CPU host,
    ``reduce``/``copy`` (bytes each global rank reduces and copies), which the model prices.
    """

    __slots__ = ("src", "dst", "nbytes", "extra", "reduce", "copy")

    def __init__(self, src, dst, nbytes, extra, reduce=None, copy=None):
        self.src, self.dst, self.nbytes, self.extra = src, dst, nbytes, extra
        self.reduce, self.copy = reduce, copy


@dataclass
class _Timing:
    compute: float = 0.0
    comm: dict = field(default_factory=lambda: defaultdict(float))

    @property
    def total(self):
        return self.compute + sum(self.comm.values())


class _Pricer:
    """Turns the step's collectives into patterns and prices sets of them together."""

    def __init__(self, step, topo, hosts, mp, algorithms, joint, machines=None):
        self.step, self.topo, self.hosts, self.mp = step, topo, hosts, mp
        # a CPU host: every host term of the model, machines as given (default: its host)
        self.cpu = machines is not None
        self.machines = machines
        self.with_copies = self.cpu and math.isfinite(mp["copy_bandwidth"])
        self.call_cache: dict = {}
        self.net = network_for(topo, mp["routing"], mp["switch_latency"])
        self.price_params = {k: mp[k] for k in _PRICE_PARAMS}
        self.nranks = step.layout.size
        self.algorithms, self.joint = algorithms, joint
        self.patterns: dict = {}
        self.calls: dict = {}
        self.cache: dict = {}
        self.usage: dict = defaultdict(float)
        self.choices: dict = {}

    # -------------------------------------------------------------- patterns
    def _groups(self, dim):
        g = self.step.layout.groups(dim)
        return g if self.joint else g[:1]

    def _algorithm(self, c, hosts0):
        spec = self.algorithms
        if spec == "planner":
            from ..planner import choose

            plan = choose(c.collective, c.nbytes, self.topo, ranks=len(hosts0), placement=hosts0,
                          itemsize=c.itemsize, **self.price_params)
            reason = f"{plan.label}, the planner's choice for one group ({plan.reason})"
            return plan.algorithm, dict(plan.params), reason
        if isinstance(spec, dict) and c.collective in spec:
            return spec[c.collective], {}, f"{spec[c.collective]} (asked for)"
        name = DEFAULT_ALGORITHMS[c.collective]
        return name, {}, f"{name} (registry default)"

    def steps_of(self, c: Collective) -> list:
        """``[(pattern key, steps), ...]``: the patterns of one call, with their repeat counts."""
        key = (c.dim, c.collective, c.nbytes, c.direction, c.itemsize)
        hit = self.calls.get(key)
        if hit is not None:
            return hit
        G = self._groups(c.dim)
        n, g = G.shape
        out = []
        if c.collective == "sendrecv":
            a, b = (slice(0, g - 1), slice(1, g)) if c.direction > 0 else (slice(1, g),
                                                                            slice(0, g - 1))
            src, dst = G[:, a].reshape(-1), G[:, b].reshape(-1)
            self.patterns[key] = _Pattern(src, dst, np.full(len(src), float(c.nbytes)), None,
                                          np.zeros(self.nranks) if self.cpu else None)
            out.append((key, 1.0))
            self.choices.setdefault(f"pp {c.label}", "point-to-point send/recv between stages")
        else:
            hosts0 = self.hosts[G[0]]
            alg, params, reason = self._algorithm(c, hosts0)
            self.choices.setdefault(f"{c.dim} {c.collective}", reason)
            sched = build_for(c.collective, alg, c.nbytes, self.topo, g, hosts0, c.itemsize, params)
            for gi, grp in enumerate(sched.groups):
                reps, _exact, _single = _group_reps(grp, g, c.itemsize, self.mp["max_samples"],
                                                    self.with_copies)
                weight = grp.repeat / len(reps)
                for idx, flows in reps:
                    src, dst, nb, rb = flows[:4]
                    cb = flows[4] if self.with_copies else None
                    if len(src) == 0 and not rb.any() and (cb is None or not cb.any()):
                        continue               # nothing the model prices in this step
                    pk = key + (alg, gi, idx)
                    self.patterns[pk] = (self._host_pattern(G, src, dst, nb, rb, cb) if self.cpu
                                         else self._pattern(G, src, dst, nb, rb, g))
                    out.append((pk, weight))
        self.calls[key] = out
        return out

    def _pattern(self, G, src, dst, nb, rb, g):
        mp = self.mp
        extra_local = np.zeros(g)
        if mp["overhead"] > 0 and len(src):
            k = np.maximum(np.bincount(src, minlength=g), np.bincount(dst, minlength=g))
            extra_local += np.maximum(k - 1, 0) * mp["overhead"]
        if math.isfinite(mp["reduce_bandwidth"]):
            extra_local += rb / mp["reduce_bandwidth"]
        extra = None
        if extra_local.any():
            extra = np.zeros(self.nranks)
            extra[G] = extra_local[None, :]
        n = G.shape[0]
        return _Pattern(G[:, src].reshape(-1), G[:, dst].reshape(-1),
                        np.tile(np.asarray(nb, dtype=np.float64), n), extra)

    def _host_pattern(self, G, src, dst, nb, rb, cb):
        """A CPU host's pattern: the flows, and what each global rank reduces and copies."""
        n = G.shape[0]
        reduce = np.zeros(self.nranks)
        reduce[G] = np.asarray(rb, dtype=np.float64)[None, :]
        copy = None
        if cb is not None and np.any(cb):
            copy = np.zeros(self.nranks)
            copy[G] = np.asarray(cb, dtype=np.float64)[None, :]
        return _Pattern(G[:, src].reshape(-1), G[:, dst].reshape(-1),
                        np.tile(np.asarray(nb, dtype=np.float64), n), None, reduce, copy)

    def call_cost(self, c: Collective, beside: Collective | None = None) -> float:
        """Seconds of a call's per-call cost (0 on an accelerator): every rank of the groups
        of its dimension pays it at once, sharing the cores with the ranks of the call
        ``beside`` it, if any (the model's :func:`call_costs`)."""
        if not self.cpu or c.nbytes <= 0 or self.mp["call_overhead"] <= 0:
            return 0.0
        if beside is not None and beside.nbytes <= 0:
            beside = None
        key = (c.dim, None if beside is None else beside.dim)
        hit = self.call_cache.get(key)
        if hit is None:
            ranks = [self._groups(c.dim).reshape(-1)]
            if beside is not None:
                ranks.append(self._groups(beside.dim).reshape(-1))
            machines = np.concatenate([self.machines[r] for r in ranks])
            hit = self.call_cache[key] = float(call_costs([len(r) for r in ranks], machines,
                                                          self.mp)[0])
        return hit

    # -------------------------------------------------------------- pricing
    def times(self, keys) -> list:
        """Step time of each pattern in ``keys`` when they all run at the same moment."""
        keys = tuple(keys)
        hit = self.cache.get(keys)
        if hit is not None:
            return [hit[k] for k in keys]
        canon = tuple(sorted(set(keys), key=repr))
        hit = self.cache.get(canon)
        if hit is None and self.cpu:
            # the model prices the step: each pattern in its own rank space, all flows at once
            pats = [self.patterns[k] for k in canon]
            parts = [(self.hosts, p.src, p.dst, p.nbytes, p.reduce, p.copy) for p in pats]
            rank_t = joint_rank_times(self.net, parts, self.mp, np.tile(self.machines, len(pats)))
            hit = {k: float(t.max()) if len(t) else 0.0 for k, t in zip(canon, rank_t)}
            self.cache[canon] = hit
        if hit is None:
            pats = [self.patterns[k] for k in canon]
            src = np.concatenate([p.src for p in pats])
            dst = np.concatenate([p.dst for p in pats])
            nb = np.concatenate([p.nbytes for p in pats])
            ft = price_concurrent(self.net, self.hosts[src], self.hosts[dst], nb,
                                  **self.price_params).flow_time if len(src) else np.zeros(0)
            hit = {}
            off = 0
            for k, p in zip(canon, pats):
                nf = len(p.src)
                rank_t = np.zeros(self.nranks)
                if nf:
                    f = ft[off:off + nf]
                    np.maximum.at(rank_t, p.src, f)
                    np.maximum.at(rank_t, p.dst, f)
                if p.extra is not None:
                    rank_t += p.extra
                hit[k] = float(rank_t.max())
                off += nf
            self.cache[canon] = hit
        self.cache[keys] = hit
        return [hit[k] for k in keys]

    def alone(self, c: Collective, mult: float = 1.0) -> float:
        """Seconds of one call with every group of its dimension at once (nothing else)."""
        total = self.call_cost(c)
        for k, w in self.steps_of(c):
            total += w * self.times((k,))[0]
            self.usage[k] += w * mult
        return total

    def run(self, items, mult: float) -> _Timing:
        """A program's items back to back (no overlap): compute and comm per dimension."""
        out = _Timing()
        for it in items:
            if isinstance(it, Compute):
                out.compute += it.seconds
            elif isinstance(it, Collective):
                out.comm[it.dim] += self.alone(it, mult)
        return out

    # -------------------------------------------------------------- overlap
    def overlap(self, items, buckets) -> tuple:
        """Event simulation of a backward program and the gradient buckets running beside it.

        Returns ``(backward end, last bucket end)`` in seconds from the start.
        Whenever a step of each stream is in flight, both are priced together
        (with ``joint``; else each alone); when one stream's step ends, the
        other's step does the rest of its work at the price of what runs beside
        it then (the rule :func:`collectives.model.joint.joint_timeline` prices
        concurrent calls by). On a CPU host a call first pays its
        per-call cost ("h" items), priced at its start with the other stream's
        call when one is in flight (their ranks share the cores, as in
        :func:`~collectives.model.joint.joint_call_times`).
        """
        fg, fg_call = [], []           # items, and the collective each belongs to
        for it in items:
            if isinstance(it, Compute):
                fg.append(("c", None, it.seconds))
                fg_call.append(None)
            elif isinstance(it, Collective):
                if self.call_cost(it):
                    fg.append(("h", it, 0.0))          # the host's per-call cost
                    fg_call.append(it)
                for k, w in self.steps_of(it):
                    fg.append(("p", k, w))
                    fg_call.append(it)
                    self.usage[k] += w
            elif isinstance(it, Ready):
                fg.append(("r", it.layer, 0.0))
                fg_call.append(None)
        bg, bg_call = [], []
        for b in buckets:
            bg.append(("w", b.after, 0.0))
            bg_call.append(None)
            if self.call_cost(b.collective):
                bg.append(("h", b.collective, 0.0))
                bg_call.append(b.collective)
            for k, w in self.steps_of(b.collective):
                bg.append(("p", k, w))
                bg_call.append(b.collective)
                self.usage[k] += w

        def beside(stream, calls, at):
            """The collective the other stream has in flight (None: it waits or is done)."""
            if at < len(stream) and stream[at][0] in ("p", "h"):
                return calls[at]
            return None

        ready = set()
        t = 0.0
        i = j = 0
        rem_f = rem_b = None
        fg_end = bg_end = None
        while True:
            while i < len(fg):
                kind, what, amount = fg[i]
                if kind == "r":
                    ready.add(what)
                    i += 1
                    continue
                if rem_f is None:
                    rem_f = (self.call_cost(what, beside(bg, bg_call, j)) if kind == "h"
                             else amount)
                if rem_f <= 0:
                    i, rem_f = i + 1, None
                    continue
                break
            if i >= len(fg) and fg_end is None:
                fg_end = t
            while j < len(bg):
                kind, what, amount = bg[j]
                if kind == "w":
                    if what in ready:
                        j += 1
                        continue
                    break
                if rem_b is None:
                    rem_b = (self.call_cost(what, beside(fg, fg_call, i)) if kind == "h"
                             else amount)
                if rem_b <= 0:
                    j, rem_b = j + 1, None
                    continue
                break
            if j >= len(bg) and bg_end is None:
                bg_end = t
            if fg_end is not None and bg_end is not None:
                return fg_end, bg_end
            fa = fg[i] if i < len(fg) else None
            ba = bg[j] if j < len(bg) and bg[j][0] in ("p", "h") else None
            if ba is None and fa is None:
                raise ModelError("workload: a gradient bucket waits for a layer that never "
                                 "finishes its backward pass")   # pragma: no cover
            keys = [s[1] for s in (fa, ba) if s is not None and s[0] == "p"]
            if self.joint and len(keys) == 2:
                d = self.times(keys)
            else:
                d = [self.times((k,))[0] for k in keys]
            d_f = d.pop(0) if fa is not None and fa[0] == "p" else None
            d_b = d.pop(0) if ba is not None and ba[0] == "p" else None
            if fa is None:
                tf = math.inf
            elif fa[0] in ("c", "h"):
                tf = rem_f
            else:
                tf = rem_f * d_f
            if ba is None:
                tb = math.inf
            elif ba[0] == "h":
                tb = rem_b
            else:
                tb = rem_b * d_b
            dt = min(tf, tb)
            t += dt
            if fa is not None:
                if tf <= dt:
                    rem_f = 0.0
                elif fa[0] in ("c", "h"):
                    rem_f -= dt
                else:
                    rem_f -= dt / d_f
            if ba is not None:
                if tb <= dt:
                    rem_b = 0.0
                elif ba[0] == "h":
                    rem_b -= dt
                else:
                    rem_b -= dt / d_b

    # -------------------------------------------------------------- links
    def link_load(self):
        """(link ids, bytes over the step, network) from every pattern's use count."""
        ids, nbytes = [], []
        for k, uses in self.usage.items():
            p = self.patterns[k]
            if uses <= 0 or not len(p.src):
                continue
            r = price_concurrent(self.net, self.hosts[p.src], self.hosts[p.dst], p.nbytes,
                                 **self.price_params)
            ids.append(r.link_ids)
            nbytes.append(r.link_bytes * uses)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0), self.net
        uid, inv = np.unique(np.concatenate(ids), return_inverse=True)
        return uid, np.bincount(inv, weights=np.concatenate(nbytes)), self.net


# ---------------------------------------------------------------------- simulate
def _check_algorithms(algorithms):
    if algorithms is None or algorithms == "default":
        return None
    if algorithms == "planner":
        return "planner"
    if isinstance(algorithms, dict):
        from ..algorithms import algorithm_names

        out = {}
        for coll, name in algorithms.items():
            if coll not in DEFAULT_ALGORITHMS:
                raise InvalidArgument(f"algorithms: unknown collective {coll!r}; accepted are "
                                      f"{', '.join(DEFAULT_ALGORITHMS)}")
            names = algorithm_names(coll)
            if name not in names:
                raise InvalidArgument(f"algorithms: unknown {coll} algorithm {name!r}; accepted "
                                      f"are {', '.join(names)}")
            out[coll] = name
        return out
    raise InvalidArgument(f"algorithms must be None (registry defaults), 'planner' or a dict "
                          f"collective -> algorithm, got {algorithms!r}")


def simulate(step, topology, placement=None, *, algorithms=None, joint=True, host=None,
             emulated=False, **model_params_) -> StepResult:
    """Price one training step on a topology.

    Parameters
    ----------
    step : TrainingStep
    topology : Topology, spec string or file
        As :func:`collectives.model.predict` takes it.
    placement : optional
        Rank -> host as :func:`collectives.model.simulate` takes it (default:
        rank r on host r).
    algorithms : None, "planner" or dict
        None: the registry defaults (:data:`DEFAULT_ALGORITHMS`); "planner":
        the planner's choice for one group of each dimension
        (:func:`collectives.planner.choose`); a dict such as
        ``{"alltoall": "bruck"}`` overrides the defaults per collective.
    joint : bool
        True (default): every group of a dimension runs at once, and the
        gradient buckets share the network with the backward pass. False:
        each collective priced on one group alone, as pricing one collective
        at a time would (the baseline contention is measured against).
    host : None, "accelerator" or "cpu"
        How the collectives are priced. "accelerator": the network, the
        per-message overhead and the reductions (the host's copies and
        per-call cost are the device's business). "cpu": every host term
        :func:`collectives.model.predict` has, priced by the model (a step of
        one collective is its :func:`~collectives.model.joint.joint_call_times`).
        None (default): the accelerator's own ``host`` ("cpu" for an
        ``Accelerator(host="cpu")`` such as ``"cpu-free"``, else
        "accelerator"); "cpu" when ``emulated``.
    emulated : bool
        CPU host only: every call also pays the emulated links' own per-call
        cost (:data:`collectives.model.EMULATION_CALL_OVERHEAD`), as an
        emulated Communicator prices itself. Give ``machines=`` and
        ``cores=`` for ranks that share one computer.
    **model_params_
        ``overhead=``, ``reduce_bandwidth=``, ``switch_latency=``,
        ``routing=``, ``max_samples=``, as :func:`collectives.model.predict`
        takes them; on a CPU host also ``call_overhead=``,
        ``copy_bandwidth=``, ``cache_copy_bandwidth=``, ``cache_bytes=``,
        ``memory_bandwidth=``, ``segment_bytes=``, ``cores=``, ``core_wait=`` and
        ``machines=`` (the machine of each rank; default its host). On an
        accelerator ``reduce_bandwidth`` defaults to the accelerator's
        (:attr:`Accelerator.reduce_bandwidth`) when it has one; on a CPU host
        the accelerator's ``memory_bandwidth`` is the machine's.

    Returns
    -------
    StepResult

    Raises
    ------
    collectives.errors.InvalidArgument
        Not a TrainingStep, more ranks than the topology has hosts, an
        unknown parameter or algorithm, a host term or ``emulated=True`` on
        an accelerator host; all before any pricing.

    Examples
    --------
    >>> import collectives as cl
    >>> W = cl.workload
    >>> model = W.Model(name="tiny", layers=1, hidden=64, ffn=128, heads=2, kv_heads=2,
    ...                 vocab=64, seq_len=8)
    >>> step = W.TrainingStep(model, W.Layout(dp=2), global_batch=2, micro_batch=1,
    ...                       accelerator="cpu-free", bucket_bytes=1 << 30)
    >>> cpu = W.simulate(step, "star:n=2,bw=1GB/s,lat=20us")      # a CPU host: host terms on
    >>> off = W.simulate(step, "star:n=2,bw=1GB/s,lat=20us", host="accelerator")
    >>> cpu.time > off.time
    True
    """
    if not isinstance(step, TrainingStep):
        raise InvalidArgument(f"step must be a collectives.workload.TrainingStep, got "
                              f"{type(step).__name__}")
    if not isinstance(emulated, bool):
        raise InvalidArgument(f"emulated must be True or False, got {emulated!r}")
    if host is None:
        host = "cpu" if emulated else step.accelerator.host
    if host not in HOSTS:
        raise InvalidArgument(f"host must be None, {' or '.join(map(repr, HOSTS))}, got {host!r}")
    if emulated and host != "cpu":
        raise InvalidArgument("emulated=True prices emulated links, which run on CPU hosts: use "
                              "host='cpu' (or leave host out)")
    accepted = _PARAMS + (_HOST_PARAMS if host == "cpu" else ())
    unknown = set(model_params_) - set(accepted)
    if unknown:
        hint = ("; the host terms need host='cpu'" if unknown & set(_HOST_PARAMS) else "")
        raise InvalidArgument(f"workload.simulate: unknown parameter(s) "
                              f"{', '.join(sorted(unknown))}; accepted: {', '.join(accepted)}{hint}")
    if not isinstance(joint, bool):
        raise InvalidArgument(f"joint must be True or False, got {joint!r}")
    given = dict(model_params_)
    machines = given.pop("machines", None)
    if host == "cpu":
        if given.get("memory_bandwidth") is None and step.accelerator.memory_bandwidth is not None:
            given["memory_bandwidth"] = step.accelerator.memory_bandwidth   # the machine's
    elif given.get("reduce_bandwidth") is None and step.accelerator.reduce_bandwidth is not None:
        given["reduce_bandwidth"] = step.accelerator.reduce_bandwidth   # the accelerator reduces
    mp = model_params(given)
    if emulated:
        mp["call_overhead"] += EMULATION_CALL_OVERHEAD     # the emulated links' holds, per call
    algorithms = _check_algorithms(algorithms)
    topo = resolve_topology(topology)
    lay = step.layout
    nhosts = int(topo.num_hosts)
    if placement is None and lay.size > nhosts:
        raise InvalidArgument(f"layout {lay!r} has {lay.size} ranks but {topo.name} has {nhosts} "
                              f"hosts: use a layout of at most {nhosts} ranks or a larger topology")
    hosts = placement_of(topo, lay.size, placement)
    if host == "cpu":
        machines = machines_of(hosts, machines)
    pricer = _Pricer(step, topo, hosts, mp, algorithms, joint, machines)
    m, p = step.num_microbatches, lay.pp

    # one micro-batch per stage, each program priced alone (stages alike share their patterns)
    # (use counts for the link loads come later, from the critical stage alone: a pattern
    # already covers the groups of every stage)
    stage_t = []
    for s in range(p):
        f = pricer.run(step.forward_program(s), 0.0)
        b = pricer.run(step.backward_program(s), 0.0)
        stage_t.append((f, b, _fsdp_exposed(step, pricer, s, 0.0)))
    pp_f = pp_b = 0.0
    for c in step.pipeline_calls():
        t = pricer.alone(c, m)
        if c.direction > 0:
            pp_f += t
        else:
            pp_b += t
    periods = [f.total + b.total + pp_f + pp_b + fsdp for f, b, fsdp in stage_t]
    crit = int(np.argmax(periods))
    period = periods[crit]
    f, b, fsdp = stage_t[crit]
    pricer.run(step.forward_program(crit), m)
    pricer.run(step.backward_program(crit), m - 1)       # the last one runs beside the buckets
    _fsdp_exposed(step, pricer, crit, m)

    # the last backward of the first stage with the gradient buckets beside it
    buckets = step.gradient_buckets(0)
    dp_alone = float(sum(pricer.alone(bk.collective, 0.0) for bk in buckets))
    b0 = stage_t[0][1].total
    bwd_end, dp_end = pricer.overlap(step.backward_program(0), buckets)
    exposed_dp = max(0.0, max(bwd_end, dp_end) - b0)     # (sums in another order: clamp)
    gathers = float(sum(pricer.alone(c) for c in step.parameter_gathers(0)))

    time = (m + p - 1) * period + exposed_dp + gathers
    breakdown = {
        "compute": m * (f.compute + b.compute),
        "tp": m * (f.comm.get("tp", 0.0) + b.comm.get("tp", 0.0)),
        "ep": m * (f.comm.get("ep", 0.0) + b.comm.get("ep", 0.0)),
        "pp": m * (pp_f + pp_b),
        "bubble": (p - 1) * period,
        "dp": exposed_dp + gathers + m * fsdp,
    }
    phases = {"forward": f.total, "backward": b.total,
              "forward.compute": f.compute, "backward.compute": b.compute}
    for dim in ("tp", "ep"):
        phases[f"forward.{dim}"] = f.comm.get(dim, 0.0)
        phases[f"backward.{dim}"] = b.comm.get(dim, 0.0)
    phases.update({"pp.activations": pp_f, "pp.gradients": pp_b, "dp.gradients": dp_alone,
                   "backward.last": bwd_end, "dp.overlapped": dp_end, "dp.parameters": gathers,
                   "dp.fsdp": fsdp})
    tps = step.tokens / time if time > 0 else math.inf
    peak = step.accelerator.flops
    mfu = step.model_flops / (time * lay.size * peak) if math.isfinite(peak) and time > 0 \
        else math.nan
    return StepResult(time, breakdown, phases, tps, mfu, dict(pricer.choices), crit, step,
                      getattr(topo, "name", str(topology)), joint, pricer, host, emulated)


def _fsdp_exposed(step, pricer, stage, m) -> float:
    """FSDP, one micro-batch: each layer's parameter all-gather is prefetched during the
    previous layer's compute (forward in layer order, backward in reverse); what does not fit
    behind it is exposed, the first layer's all of it."""
    gathers = dict(step.fsdp_gathers(stage))
    if not gathers:
        return 0.0
    exposed = 0.0
    layers = list(step.stage_layers[stage])
    for program, order in ((step.forward_program(stage), layers),
                           (step.backward_program(stage), layers[::-1])):
        compute = _layer_compute(program, layers)
        prev = None
        for i in order:
            ag = sum(pricer.alone(c, m) for c in gathers[i])
            exposed += ag if prev is None else max(0.0, ag - compute[prev])
            prev = i
    return exposed


def _layer_compute(program, layers) -> dict:
    """Compute seconds of each layer in a program (items are in layer order, Ready-free)."""
    out = {i: 0.0 for i in layers}
    for it in program:
        if isinstance(it, Compute) and it.label.startswith("layer "):
            out[int(it.label.split()[1])] += it.seconds
    return out
