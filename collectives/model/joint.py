"""Message times of collectives that run at the same moment on one network.

:func:`~collectives.model.message_times` prices one schedule alone. When the
groups of a parallel layout run their collectives at once (every tensor-parallel
group's all-reduce, and the data-parallel all-reduce beside it), their flows
share links. :func:`joint_message_times` prices such calls together: each
*part* is one schedule on its own ranks' hosts, and step ``i`` of every part is
priced on one timeline: the parts start together (as SPMD ranks do), each
runs its steps back to back at its own pace, and whatever steps are in flight
at a moment are priced together as one max-min problem; when any part's step
ends, the others' steps go on, re-priced without it for the rest of their
work (:func:`joint_timeline`). So a short call beside a long one slows the
long one only while it runs, as a work-conserving network does: a 4 MiB
all-to-all beside a 512 KiB all-reduce shares the links for the all-reduce's
duration, not for its own. With a single part it is
:func:`~collectives.model.message_times`. :func:`joint_call_times` gives each
part's duration on that timeline: what an emulated run of the concurrent
calls is measured against. :func:`joint_step_times` is the older lockstep
view (step ``i`` of every part priced with step ``i`` of every other).

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
           "joint_timeline", "call_costs"]


def _steps_of(schedule) -> list:
    """(group, repetition) of every step of ``schedule``, in order."""
    where = []
    for gi, g in enumerate(schedule.groups):
        where.extend((gi, i) for i in range(g.repeat))
    return where


def _joint_flows(parts, wheres, offsets, step, itemsize):
    """Every part's flows of ``step``, in one rank space (part k's rank r is offsets[k] + r)."""
    return _flows_in_flight(parts, wheres, offsets, {k: step for k in range(len(parts))}, itemsize)


def _flows_in_flight(parts, wheres, offsets, steps, itemsize):
    """The flows of the steps in flight, ``steps`` mapping a part to its step, in one rank space
    (part k's rank r is offsets[k] + r)."""
    src, dst, nb, rb = [], [], [], []
    for k, ((sched, _), where, off) in enumerate(zip(parts, wheres, offsets)):
        step = steps.get(k)
        if step is None or step >= len(where):
            # a part with no step in flight sends nothing now, but its ranks still count (their
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
        latency + bytes over its fair rate among the flows in flight beside
        it, on the parts' timeline (:func:`joint_timeline`): a step that other
        parts' steps start or end beside does each stretch of its work at that
        stretch's price; 0 for sends and copies.

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
    part, me = int(part), offsets[int(part)] + int(rank)
    is_recv = (prog["kind"] == RECV) | (prog["kind"] == RECV_REDUCE)
    steps = np.unique(prog["step"][is_recv]).tolist()
    # the timeline is needed only where another part is in flight beside this one
    segments = (_timeline(parts, wheres, offsets, hosts, net, mp, itemsize, machines)[0][part]
                if len(parts) > 1 and steps else None)
    priced = {}

    def rows_in(in_flight, step, rows):
        """Times of this rank's receives ``rows`` of ``step`` with the steps ``in_flight``."""
        src, dst, nb, rb = _flows_in_flight(parts, wheres, offsets, dict(in_flight), itemsize)
        key = _digest(src, dst, nb)
        st = priced.get(key)
        if st is None:
            st = priced[key] = _price(net, hosts, src, dst, nb, rb, total, mp, None, machines)
        got = np.zeros(len(rows))
        mine = dst == me
        for peer in np.unique(prog["peer"][rows]).tolist():
            which = prog["peer"][rows] == peer
            f = np.nonzero(mine & (src == offsets[part] + peer))[0]
            if len(f) < which.sum():
                raise ModelError(f"{sched.algorithm}: step {step}: rank {rank} receives "
                                 f"{which.sum()} message(s) from {peer} but {peer} sends {len(f)}")
            got[which] = st.flow_time[f[:which.sum()]]
        # a reducing receive is done when its reduction is, as in message_times
        got[prog["kind"][rows] == RECV_REDUCE] += st.tail[me]
        return got

    for step in steps:
        rows = np.nonzero(is_recv & (prog["step"] == step))[0]
        pieces = (segments[step] if segments is not None
                  else [({k: step for k in range(len(parts))}, 1.0)])
        if len(pieces) == 1:
            out[rows] = rows_in(pieces[0][0], step, rows)
        else:
            # each stretch of the step with other parts' steps beside it does its share of the
            # step's work at that stretch's price
            out[rows] = sum(share * rows_in(in_flight, step, rows) for in_flight, share in pieces)
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

    Every part pays its per-call cost, then runs its steps back to back, a
    step lasting as long as its slowest rank's: that rank's local copies
    (done before it posts), its messages, its posting overheads and what its
    reduction adds after the last byte, priced with the other parts' steps in
    flight at the same moment (:func:`joint_timeline`: when one part's step
    ends, the others go on without it). This is what an emulated run of the
    calls takes: the holds (:func:`joint_message_times`, on the same
    timeline), plus the copies and posting the host does outside them; each
    Communicator's next step starts when its own messages are released, not
    when the other parts' are. With one part and host terms on it is
    :func:`~collectives.model.predict`'s step-by-step (lockstep) time. The
    concurrent calls end at ``joint_call_times(...).max()``; the same calls
    one after the other take the sum of each part priced alone,
    ``sum(joint_call_times([p], ...)[0] for p in parts)``.

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
    array([1.73, 1.11])
    """
    mp, itemsize, net, hosts, machines, offsets, total = _prepare(parts, topology, params,
                                                                  "joint_call_times")
    wheres = [_steps_of(s) for s, _ in parts]
    return _timeline(parts, wheres, offsets, hosts, net, mp, itemsize, machines)[1]


def joint_timeline(parts, topology, **params) -> list:
    """When each step of each part starts and ends, all parts started together.

    The timeline :func:`joint_call_times` and :func:`joint_message_times`
    price on. Every part first pays its per-call cost (:func:`call_costs`),
    then runs its steps back to back, a step lasting as long as its slowest
    rank's (copies before posting, messages, posting overheads, the
    reduction's tail). Whatever steps are in flight at a moment are priced
    together (one max-min problem over their flows, host terms with every
    busy rank, :func:`joint_rank_times`), and each does a share of its work
    at that price; when one ends, the others go on, priced with what is in
    flight then. So the network is work-conserving: a short call beside a
    long one slows it only while it runs.

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
    list of numpy.ndarray
        Per part, float64 seconds of shape ``(steps, 2)``: each step's start
        and end.

    Raises
    ------
    collectives.errors.InvalidArgument
        No parts or an unknown parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from collectives.algorithms import build_schedule
    >>> ring = build_schedule("allreduce", "ring", 2, 1 << 17)       # two steps of 256 KiB
    >>> pairwise = build_schedule("alltoall", "pairwise", 2, 1 << 20)    # one step of 2 MiB
    >>> hosts = np.arange(2)
    >>> ring_t, pairwise_t = joint_timeline([(ring, hosts), (pairwise, hosts)],
    ...                                     "star:n=2,bw=1GB/s,lat=20us", itemsize=4)
    >>> bool(ring_t[-1, 1] < pairwise_t[-1, 1])   # the all-to-all runs on alone after the ring
    True
    """
    mp, itemsize, net, hosts, machines, offsets, total = _prepare(parts, topology, params,
                                                                  "joint_timeline")
    wheres = [_steps_of(s) for s, _ in parts]
    return _timeline(parts, wheres, offsets, hosts, net, mp, itemsize, machines)[2]


def _timeline(parts, wheres, offsets, hosts, net, mp, itemsize, machines):
    """The parts' steps on one timeline (:func:`joint_timeline`).

    Returns ``(pieces, ends, spans)``: per part and step, ``[(steps in flight, share), ...]``
    (a ``{part: step}`` dict and the share of the step's work done beside them; one piece of
    share 1 when nothing changed during the step); per part, when its last step ends; per
    part, each step's (start, end).
    """
    nsteps = [len(w) for w in wheres]
    sizes = [sched.nranks if sched.groups and sched.count > 0 else 0 for sched, _ in parts]
    start = call_costs(sizes, machines, mp, [s.nranks for s, _ in parts])
    durations = {}

    def price(in_flight):
        """Each part's step duration (its slowest rank) with the steps ``in_flight``."""
        hit = durations.get(in_flight)
        if hit is not None:
            return hit
        steps = dict(in_flight)
        flows = []
        for k, ((sched, _), where, off) in enumerate(zip(parts, wheres, offsets)):
            n = sched.nranks
            if k not in steps:
                # a part with no step in flight sends nothing now, but its ranks still count
                flows.append((hosts[off:off + n], np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros(0), np.zeros(n), np.zeros(n)))
                continue
            gi, i = where[steps[k]]
            s_, d_, b_, r_, c_ = _step_flows(sched.groups[gi], i, n, itemsize, True)
            flows.append((hosts[off:off + n], s_, d_, b_, r_, c_))
        rank_t = joint_rank_times(net, flows, mp, machines)
        hit = durations[in_flight] = {k: float(rank_t[k].max()) if len(rank_t[k]) else 0.0
                                      for k in steps}
        return hit

    pieces = [[[] for _ in range(n)] for n in nsteps]
    spans = [np.zeros((n, 2)) for n in nsteps]
    ends = np.array(start, dtype=np.float64)
    step, left = [0] * len(parts), [1.0] * len(parts)     # each part's step, share of it left
    t = 0.0
    while True:
        running = [k for k in range(len(parts)) if step[k] < nsteps[k]]
        if not running:
            break
        in_flight = tuple((k, step[k]) for k in running if start[k] <= t)
        waiting = [start[k] for k in running if start[k] > t]
        if not in_flight:
            t = min(waiting)
            continue
        d = price(in_flight)
        finish = {k: left[k] * d[k] for k, _ in in_flight}
        dt = min(finish.values())
        if waiting:
            dt = min(dt, min(waiting) - t)
        for k, s in in_flight:
            if left[k] == 1.0:
                spans[k][s, 0] = t
            done = finish[k] - dt <= 1e-12 * finish[k]
            share = left[k] if done else dt / d[k]
            pieces[k][s].append((dict(in_flight), share))
            if done:
                step[k], left[k] = s + 1, 1.0
                ends[k] = spans[k][s, 1] = t + finish[k]
            else:
                left[k] -= share
        t += dt
    return pieces, ends, spans


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
