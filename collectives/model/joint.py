"""Message times of collectives that run at the same moment on one network.

:func:`~collectives.model.message_times` prices one schedule alone. When the
groups of a parallel layout run their collectives at once (every tensor-parallel
group's all-reduce, and the data-parallel all-reduce beside it), their flows
share links. :func:`joint_message_times` prices such calls together: each
*part* is one schedule on its own ranks' hosts, and step ``i`` of every part is
priced with step ``i`` of every other part as one max-min problem (the parts
start together, as SPMD ranks do; a part with fewer steps adds nothing to the
later steps). With a single part it is :func:`~collectives.model.message_times`.
:func:`joint_call_times` sums those holds into each part's duration: what an
emulated run of the concurrent calls is measured against.

Emulated sub-communicators use it for their holds (see the "Emulation" guide),
so a message is held to the time of the concurrent traffic, not of its
communicator alone.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgument, ModelError
from ..schedule import RECV, RECV_REDUCE
from .network import network_for
from .simulate import (_MODEL_KEYS, _digest, _itemsize, _price, _step_flows, host_shares, machines_of,
                       model_params, placement_of, resolve_topology)

__all__ = ["joint_message_times", "joint_step_times", "joint_call_times", "joint_rank_times",
           "call_costs"]


def _steps_of(schedule) -> list:
    """(group, repetition) of every step of ``schedule``, in order."""
    where = []
    for gi, g in enumerate(schedule.groups):
        where.extend((gi, i) for i in range(g.repeat))
    return where


def _joint_flows(parts, wheres, offsets, step, itemsize):
    """Every part's flows of ``step``, in one rank space (part k's rank r is offsets[k] + r)."""
    src, dst, nb, rb = [], [], [], []
    for (sched, _), where, off in zip(parts, wheres, offsets):
        if step >= len(where):
            # a part with fewer steps sends nothing now, but its ranks still count (their
            # reduction bytes are zero), so every per-rank array spans all parts' ranks
            rb.append(np.zeros(sched.nranks))
            continue
        gi, i = where[step]
        s, d, b, r = sched.groups[gi].flows(i, sched.nranks, itemsize)
        src.append(np.asarray(s, dtype=np.int64) + off)
        dst.append(np.asarray(d, dtype=np.int64) + off)
        nb.append(np.asarray(b, dtype=np.float64))
        rr = np.zeros(sched.nranks) if r is None else np.asarray(r, dtype=np.float64)
        rb.append(rr)
    if not src:
        z = np.zeros(0)
        return np.zeros(0, np.int64), np.zeros(0, np.int64), z, np.concatenate(rb)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(nb), np.concatenate(rb)


def _prepare(parts, topology, params, where="joint_message_times"):
    unknown = set(params) - _MODEL_KEYS
    if unknown:
        raise InvalidArgument(f"{where}: unknown parameter(s) {', '.join(sorted(unknown))}")
    if not parts:
        raise InvalidArgument(f"{where}: needs at least one (schedule, hosts) part")
    mp = model_params(params)
    itemsize = _itemsize(params)
    topo = resolve_topology(topology)
    net = network_for(topo, mp["routing"], mp["switch_latency"])
    hosts, offsets = [], []
    total = 0
    for sched, placement in parts:
        h = placement_of(topo, sched.nranks, placement)
        hosts.append(h)
        offsets.append(total)
        total += sched.nranks
    hosts = np.concatenate(hosts)
    machines = machines_of(hosts, params.get("machines"))
    if len(machines) != total:
        raise InvalidArgument(f"{where}: machines= needs one entry per rank of all parts ({total}), "
                              f"got {len(machines)}")
    return mp, itemsize, net, hosts, machines, offsets, total


def joint_message_times(parts, topology, part: int = 0, rank: int = 0, **params) -> np.ndarray:
    """Modelled duration of each row of ``parts[part][0].program(rank)``, priced with every part.

    Parameters
    ----------
    parts : sequence of (Schedule, placement)
        The calls that run at once: each schedule with the hosts of its ranks
        (an int array of host indices, a ``Placement``, or None for linear).
    topology : Topology or spec string
        The network they share.
    part, rank : int
        Whose program to price: rank ``rank`` of ``parts[part]``.
    **params
        Model constants as :func:`~collectives.model.message_times` takes them
        (``itemsize=``, ``overhead=``, ...).

    Returns
    -------
    numpy.ndarray
        float64 seconds per program row: for a receive, overhead + path
        latency + bytes over its fair rate among all parts' flows of that step;
        0 for sends and copies.

    Raises
    ------
    collectives.errors.InvalidArgument
        No parts, an unknown parameter, or ``part``/``rank`` out of range.
    """
    return _message_times(parts, topology, part, rank, "joint_message_times", params)


def _message_times(parts, topology, part, rank, where, params) -> np.ndarray:
    """:func:`joint_message_times` (and, with one part, ``message_times``); errors name ``where``."""
    mp, itemsize, net, hosts, machines, offsets, total = _prepare(parts, topology, params, where)
    if not 0 <= int(part) < len(parts):
        raise InvalidArgument(f"{where}: part {part} out of range 0..{len(parts) - 1}")
    sched = parts[int(part)][0]
    if not 0 <= int(rank) < sched.nranks:
        raise InvalidArgument(f"{where}: rank {rank} out of range 0..{sched.nranks - 1}")
    wheres = [_steps_of(s) for s, _ in parts]
    prog = sched.program(int(rank))
    out = np.zeros(len(prog))
    if not len(prog):
        return out
    me = offsets[int(part)] + int(rank)
    is_recv = (prog["kind"] == RECV) | (prog["kind"] == RECV_REDUCE)
    priced = {}
    for step in np.unique(prog["step"][is_recv]).tolist():
        src, dst, nb, rb = _joint_flows(parts, wheres, offsets, step, itemsize)
        key = _digest(src, dst, nb)
        st = priced.get(key)
        if st is None:
            st = priced[key] = _price(net, hosts, src, dst, nb, rb, total, mp, None, machines)
        rows = np.nonzero(is_recv & (prog["step"] == step))[0]
        mine = dst == me
        for peer in np.unique(prog["peer"][rows]).tolist():
            r_rows = rows[prog["peer"][rows] == peer]
            f = np.nonzero(mine & (src == offsets[int(part)] + peer))[0]
            if len(f) < len(r_rows):
                raise ModelError(f"{sched.algorithm}: step {step}: rank {rank} receives "
                                 f"{len(r_rows)} message(s) from {peer} but {peer} sends {len(f)}")
            out[r_rows] = st.flow_time[f[:len(r_rows)]]
        # a reducing receive is done when its reduction is, as in message_times
        reducing = rows[prog["kind"][rows] == RECV_REDUCE]
        if len(reducing):
            out[reducing] += st.tail[me]
    return out


def joint_step_times(parts, topology, **params) -> np.ndarray:
    """Per step, the time of the slowest rank of any part when all parts run together.

    The sum is what the joint model predicts for the concurrent calls in
    lockstep (every rank waits for the step's slowest message): the figure an
    emulated run of the same calls is compared with.
    """
    mp, itemsize, net, hosts, machines, offsets, total = _prepare(parts, topology, params, "joint_step_times")
    wheres = [_steps_of(s) for s, _ in parts]
    nsteps = max(len(w) for w in wheres)
    out = np.zeros(nsteps)
    for step in range(nsteps):
        src, dst, nb, rb = _joint_flows(parts, wheres, offsets, step, itemsize)
        out[step] = _price(net, hosts, src, dst, nb, rb, total, mp, None, machines).time
    return out


def joint_call_times(parts, topology, **params) -> np.ndarray:
    """Seconds each part takes when all parts start together, each going on at its own pace.

    Every part runs its steps back to back, a step lasting as long as its
    slowest rank's: that rank's local copies (done before it posts), its
    messages priced as :func:`joint_message_times` prices them (step ``i`` of
    every part in one max-min problem), its posting overheads and what its
    reduction adds after the last byte. This is what an emulated run of the
    calls takes: the holds, plus the copies and posting the host does outside
    them; each Communicator's next step starts when its own messages are
    released, not when the other parts' are. With one part and host terms on
    it is :func:`~collectives.model.predict`'s step-by-step (lockstep) time. The concurrent calls end at ``joint_call_times(...).max()``;
    the same calls one after the other take the sum of each part priced
    alone, ``sum(joint_call_times([p], ...)[0] for p in parts)``.

    Parameters
    ----------
    parts : sequence of (Schedule, placement)
        As for :func:`joint_message_times`.
    topology : Topology or spec string
        The network they share.
    **params
        Model constants as :func:`joint_message_times` takes them.

    Returns
    -------
    numpy.ndarray
        float64 seconds, one per part.

    Raises
    ------
    collectives.errors.InvalidArgument
        No parts or an unknown parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from collectives.algorithms import build_schedule
    >>> ring = build_schedule("allreduce", "ring", 2, 1 << 18)
    >>> pairwise = build_schedule("alltoall", "pairwise", 2, 1 << 18)
    >>> hosts = np.arange(2)                     # host indices: both calls on the same pair
    >>> both = [(ring, hosts), (pairwise, hosts)]
    >>> (joint_call_times(both, "star:n=2,bw=1GB/s,lat=20us", itemsize=4) * 1e3).round(2)   # ms
    array([1.77, 1.11])
    """
    mp, itemsize, net, hosts, machines, offsets, total = _prepare(parts, topology, params,
                                                                  "joint_call_times")
    wheres = [_steps_of(s) for s, _ in parts]
    sizes = [sched.nranks if sched.groups and sched.count > 0 else 0 for sched, _ in parts]
    out = call_costs(sizes, machines, mp, [s.nranks for s, _ in parts])
    for step in range(max(len(w) for w in wheres)):
        flows = []
        for (sched, _), where, off in zip(parts, wheres, offsets):
            n = sched.nranks
            if step >= len(where):
                # a part with fewer steps sends nothing now, but its ranks still count
                flows.append((hosts[off:off + n], np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros(0), np.zeros(n), np.zeros(n)))
                continue
            gi, i = where[step]
            s_, d_, b_, r_, c_ = _step_flows(sched.groups[gi], i, n, itemsize, True)
            flows.append((hosts[off:off + n], s_, d_, b_, r_, c_))
        for k, (rank_t, where) in enumerate(zip(joint_rank_times(net, flows, mp, machines), wheres)):
            if step < len(where):
                out[k] += float(rank_t.max()) if len(rank_t) else 0.0
    return out


def call_costs(sizes, machines, mp, spans=None) -> np.ndarray:
    """Seconds each part's per-call cost takes when the parts start together.

    Every rank of every part pays ``call_overhead`` before its first message,
    on cores all the parts' ranks share (:func:`~collectives.model.simulate.host_shares`
    over ``machines``); a part's cost is its slowest rank's.

    Parameters
    ----------
    sizes : sequence of int
        Ranks of each part that make the call (0: a part that moves nothing
        and pays nothing, as a call of no elements).
    machines : numpy.ndarray
        The machine of every rank of all parts, concatenated.
    mp : dict
        Model constants (``call_overhead``, ``cores``).
    spans : sequence of int, optional
        Ranks each part takes in ``machines`` (default ``sizes``).

    Returns
    -------
    numpy.ndarray
        float64 seconds, one per part.
    """
    spans = list(sizes) if spans is None else list(spans)
    out = np.zeros(len(spans))
    if mp["call_overhead"] <= 0:
        return out
    call_t = mp["call_overhead"] * host_shares(np.ones(sum(spans), bool), machines, mp["cores"])
    off = 0
    for k, (n, span) in enumerate(zip(sizes, spans)):
        if n:
            out[k] = float(call_t[off:off + span].max())
        off += span
    return out


def joint_rank_times(net, parts, mp, machines=None) -> list:
    """Each rank's time of one step of several parts whose flows run at the same moment.

    One max-min problem over every part's flows, then each rank's host terms
    (its copies before it posts, per-message overheads, serial posting, the
    reduction's tail, cores and memory shared per machine), as a schedule
    step is priced (:func:`~collectives.model.simulate`).

    Parameters
    ----------
    net : Network
        From :func:`~collectives.model.network.network_for`.
    parts : sequence of tuple
        ``(hosts, src, dst, nbytes, reduce_bytes, copy_bytes)`` per part, in
        the part's own rank space: the host index of each of its ranks, its
        flows (source rank, destination rank, bytes), and per rank the bytes
        it reduces and copies (``reduce_bytes``/``copy_bytes`` None: none).
    mp : dict
        Model constants (:func:`~collectives.model.simulate.model_params`).
    machines : numpy.ndarray, optional
        The machine of every rank of all parts, concatenated (default: its host).

    Returns
    -------
    list of numpy.ndarray
        Per part, float64 seconds per rank.
    """
    src, dst, nb, rb, cb, hosts, offsets = [], [], [], [], [], [], []
    total = 0
    for h, s, d, b, r, c in parts:
        n = len(h)
        offsets.append(total)
        hosts.append(np.asarray(h, dtype=np.int64))
        src.append(np.asarray(s, dtype=np.int64) + total)
        dst.append(np.asarray(d, dtype=np.int64) + total)
        nb.append(np.asarray(b, dtype=np.float64))
        rb.append(np.zeros(n) if r is None else np.asarray(r, dtype=np.float64))
        cb.append(np.zeros(n) if c is None else np.asarray(c, dtype=np.float64))
        total += n
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    hosts = cat(hosts, np.int64)
    st = _price(net, hosts, cat(src, np.int64), cat(dst, np.int64), cat(nb, np.float64),
                cat(rb, np.float64), total, mp, cat(cb, np.float64),
                hosts if machines is None else machines)
    return [st.rank_time[off:off + len(p[0])] for off, p in zip(offsets, parts)]
