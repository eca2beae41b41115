"""The Communicator: the library's public face over one MPI communicator.

Every call checks its arguments on the calling rank before any message leaves,
picks an algorithm (the planner, for "auto"), builds or reuses that
algorithm's schedule for this call shape, and hands the rank's program to the
compiled executor, which waits with a deadline instead of hanging.
"""

from __future__ import annotations

import atexit
import os
import zlib
from resource import RUSAGE_SELF as _RUSAGE_SELF, getrusage as _getrusage
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from mpi4py import MPI

from . import dtypes as _dt
from . import notices
from . import p2p
from ._mpicheck import load_core
from .algorithms._blocks import block_bounds
from .buffers import address, as_array
from .errors import (CollectiveTimeout, CommunicationError, CommunicatorBroken, PeerFailure,
                     InvalidArgument, InvalidType, MismatchError)

if TYPE_CHECKING:   # names for the public signatures' type hints only
    from .planner import Plan
    from .requests import PersistentRequest, Request
    from .topology import Topology
    from .topology.placement import Placement

_core = load_core()

_KERNELS = os.environ.get("COLLECTIVES_KERNELS", "").strip().lower()
if _KERNELS and _KERNELS not in ("auto", "portable", "avx2", "avx512"):
    import warnings

    warnings.warn(f"COLLECTIVES_KERNELS={_KERNELS!r} is not one of auto, portable, avx2, avx512; "
                  "it is ignored and the kernels pick the best level this CPU has", RuntimeWarning,
                  stacklevel=2)

COLLECTIVES = ("allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast")
OPS = ("sum", "prod", "min", "max", "avg")

_DEFAULT_SEGMENT = 1 << 20
_DEFAULT_INFLIGHT = 4


#: seconds a call waits for its peers when nobody chose a deadline (like the watchdogs of
#: torch.distributed and NCCL): long enough for any healthy collective, short enough that a
#: job whose peer vanished without a word ends instead of waiting forever
DEFAULT_TIMEOUT = 600.0


def _default_timeout() -> Optional[float]:
    """``COLLECTIVES_TIMEOUT`` when set (``none``, ``inf`` or ``0``: wait forever), else
    :data:`DEFAULT_TIMEOUT`."""
    name = "COLLECTIVES_TIMEOUT"
    text = os.environ.get(name, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    if text.lower() in ("none", "inf", "infinity", "0", "0.0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"environment variable {name}={text!r} is not a number of seconds "
                              "(or none/inf/0 to wait forever)") from None
    return _check_timeout(value, where=f"environment variable {name}")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _check_timeout(timeout, where="timeout"):
    if timeout is None:
        return None
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise InvalidType(f"{where} must be a number of seconds or None, got {timeout!r}") from None
    if not t > 0 or t != t:
        raise InvalidArgument(f"{where} must be a positive number of seconds or None, got {timeout!r}")
    return t


@dataclass
class _Call:
    """One call shape, cached: the algorithm and what the executor needs besides the data."""
    algorithm: str
    dcode: int
    program: Optional[np.ndarray]   # None: the MPI library's own collective
    num_steps: int
    counts: Optional[np.ndarray]    # reduce_scatter block sizes for the native path
    holds: Optional[np.ndarray]     # emulated links: modelled time of each program row


_COLL_INDEX = {name: i for i, name in enumerate(COLLECTIVES)}
_OP_INDEX = {name: i for i, name in enumerate(OPS)}
_CRC: dict = {}


def _crc(name: str) -> int:
    value = _CRC.get(name)
    if value is None:
        value = _CRC[name] = zlib.crc32(name.encode())
    return value


#: alltoallv's algorithm argument -> the registry name it stands for (names are few)
_VALGORITHMS: dict = {}

_NATIVE = _core.NATIVE   # collective name -> the core's code for the MPI library's own collective
#: collectives whose repeat calls the compiled fast path takes (``_core.FastCalls``)
_FAST_COLLECTIVES = ("allreduce", "alltoall")
_FAST_MISS = _core.FAST_MISS
_FAST_P2P_MISS = p2p._core.FAST_MISS


#: duplicates of Communicators the garbage collector took, freed at the next safe point
_DEFERRED_FREES: list = []


def _free_deferred() -> None:
    """Free the duplicates of collected Communicators (a new Communicator, free(), or exit)."""
    while _DEFERRED_FREES:
        dup = _DEFERRED_FREES.pop()
        try:
            if not MPI.Is_finalized():
                dup.Free()
        except MPI.Exception:
            pass


# registered after mpi4py's own exit handler, so it runs before MPI is finalized
atexit.register(_free_deferred)


class Communicator:
    """Collectives over an MPI communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator to work on. A duplicate is made, so the library's
        messages never mix with the caller's.
    topology : collectives.topology.Topology, optional
        The network the ranks sit on. Hierarchical algorithms take their groups
        from it and the planner prices candidates on it. Without it, groups are
        the ranks that share memory (one group per node).
    emulate : bool
        Hold each message to the time the modelled ``topology`` would take.
    timeout : float, "default" or None
        Deadline in seconds for every call of this Communicator (a call's own
        ``timeout=`` overrides it). "default": ``COLLECTIVES_TIMEOUT`` when set,
        else :data:`DEFAULT_TIMEOUT` (600 s). None waits forever. Independently
        of the deadline, a rank that leaves (its script ends or calls
        ``sys.exit``, or an exception goes uncaught) or whose collective fails
        in MPI tells its peers, and any peer waiting on it raises
        :class:`~collectives.errors.PeerFailure` within about a second.
    validate : bool
        Before each call, check that every rank passed the same collective,
        count, dtype, op, algorithm and root (``COLLECTIVES_VALIDATE=1``).
    segment_bytes : int, optional
        Size of the pieces large messages are cut into (default 1 MiB,
        ``COLLECTIVES_SEGMENT_BYTES``).
    placement : optional
        Where ranks sit on ``topology``. By default (None) each rank is put on
        the host it runs on: its machine name (``COLLECTIVES_HOSTNAME``, else
        Slurm's ``SLURMD_NODENAME``, else ``MPI.Get_processor_name()``) is
        matched to the topology's host names (exact, else short name or FQDN,
        ignoring case); a machine that is not a host is a ``TopologyError`` on
        every rank. When no rank's machine is a host and all ranks run on one
        machine (an emulated network on one computer), rank r goes on the r-th
        host, as with "linear". Otherwise a strategy name ("linear",
        "round-robin", "random"), a list of host ids, a hostfile path, or a
        ``collectives.topology.placement.Placement``.
    """

    def __init__(self, comm: MPI.Comm | None = None, topology: Topology | str | os.PathLike | None = None,
                 emulate: bool = False, timeout: float | str | None = "default", validate: bool = False,
                 segment_bytes: int | str | None = None,
                 placement: str | os.PathLike | list | Placement | None = None) -> None:
        _free_deferred()
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Comm):
            raise InvalidType(f"comm must be an mpi4py communicator, got {type(comm).__name__}")
        if comm == MPI.COMM_NULL:
            raise InvalidArgument("comm is MPI.COMM_NULL")
        profile = os.environ.get("COLLECTIVES_PROFILE", "").strip()
        if profile and topology is None:
            # a bad profile is reported here, not at the first "auto" call
            from .model.calibrate import load_profile

            load_profile(profile)
        if isinstance(timeout, str) and timeout == "default":
            self.timeout = _default_timeout()
        else:
            self.timeout = _check_timeout(timeout)
        self.timeout_or_zero = 0.0 if self.timeout is None else self.timeout
        self.validate = bool(validate) or _env_flag("COLLECTIVES_VALIDATE")
        if segment_bytes is None:
            text = os.environ.get("COLLECTIVES_SEGMENT_BYTES", "").strip()
            if text:
                from .units import parse_size

                segment_bytes = parse_size(text, name="environment variable COLLECTIVES_SEGMENT_BYTES")
            else:
                segment_bytes = _DEFAULT_SEGMENT
        if isinstance(segment_bytes, str):
            from .units import parse_size

            segment_bytes = parse_size(segment_bytes, name="segment_bytes")
        if int(segment_bytes) < 64:
            raise InvalidArgument(f"segment_bytes must be at least 64, got {segment_bytes}")
        self.segment_bytes = int(segment_bytes)
        self.inflight = _DEFAULT_INFLIGHT
        self.topology = topology
        self.emulate = bool(emulate)
        if self.emulate and topology is None:
            raise InvalidArgument("emulate=True needs a topology= to emulate")

        self.placement = None
        if topology is not None:
            self.topology, self.placement = _resolve_topology(topology, placement, comm)
        self._comm = comm.Dup()
        self._comm.Set_errhandler(MPI.ERRORS_RETURN)
        # carries nothing but peers' notices (collectives.notices), so they never match data
        self._notice = self._comm.Dup()
        # point-to-point messages travel on their own duplicate, so they never match collective traffic
        self._p2p = self._comm.Dup()
        self._p2p_pending: list = []
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()
        # repeat blocking sends and receives of plain arrays: checked and run in C
        self._fast_p2p = p2p.fast_path(self)
        if self.size > 1:
            notices.register(self)
        self._broken: Optional[str] = None
        self._calls: dict = {}
        # repeat calls of a shape the checked path ran natively: checked and run in C
        self._fast = {c: _core.FastCalls(self._comm, self._notice, c, _NATIVE[c]) for c in _FAST_COLLECTIVES}
        self._fast_allreduce = self._fast["allreduce"]
        self._fast_alltoall = self._fast["alltoall"]
        self._vcalls: dict = {}   # alltoallv call shapes, by their counts
        self._fast_alltoallv = _core.FastAlltoallv(self._comm, self._notice)
        self._count_memo: dict = {}   # alltoallv counts already checked
        self._ops: dict = {}
        self._scratch = np.empty(0, dtype=np.uint8)
        self._tmp = np.empty(0, dtype=np.uint8)
        self._held_steps = self._late_steps = self._emulated_calls = self._preempted = 0
        self._worst_late = self._late_total = self._data_late_total = 0.0
        self._data_late_steps = 0
        self.groups = self._find_groups()

    # ---- properties -----------------------------------------------------------------

    @property
    def mpi_comm(self) -> MPI.Comm:
        """The library's own duplicate of the MPI communicator."""
        return self._comm

    def _find_groups(self):
        """Group index of every rank: from the topology, else ranks that share memory."""
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            cores = _tune_polling(node.Get_size())
            if self.emulate and node.Get_size() > cores:
                _warn_emulation(f"emulated links: {node.Get_size()} ranks share {cores} core(s) on "
                                "this machine, so ranks wait for a core as well as for the model.")
            if self.topology is None or self.emulate:
                local_leader = node.bcast(self.rank, root=0)
        finally:
            node.Free()
        if self.emulate:
            # the host terms of the held messages are this machine's: its ranks share its cores
            # and memory, and the executor's segments pipeline the reductions
            leaders = np.asarray(self._comm.allgather(local_leader), dtype=np.int64)
            self._emulated_host = {"machines": np.unique(leaders, return_inverse=True)[1].reshape(-1),
                                   "cores": float(cores), "segment_bytes": self.segment_bytes}
        if self.topology is not None:
            gi = self.placement.group_index()
            # renumber in order of first appearance, so group numbers follow ranks
            ids: dict = {}
            return np.array([ids.setdefault(int(g), len(ids)) for g in gi], dtype=np.int64)
        # one group per node, numbered in the order of the nodes' lowest ranks
        leaders = np.asarray(self._comm.allgather(local_leader), dtype=np.int64)
        return np.unique(leaders, return_inverse=True)[1].astype(np.int64).reshape(-1)

    # ---- public collectives ------------------------------------------------------------

    def allreduce(self, x: Any, op: str = "sum", *, out: Any = None, algorithm: str = "auto",
                  timeout: float | None = None) -> Any:
        """Reduce ``x`` element-wise over all ranks; every rank gets the result.

        Returns a new array (or ``out``; ``out=x`` reduces in place).
        """
        done = self._fast_allreduce.call(self, x, out, op, algorithm, timeout)
        if done is not _FAST_MISS:
            return done
        a, o, result, op_code, _ = self._operands("allreduce", x, op, out)
        return self._run("allreduce", algorithm, a, o, result, op=op, op_code=op_code, timeout=timeout,
                         fast=(x, out))

    def alltoall(self, x: Any, *, out: Any = None, algorithm: str = "auto",
                 timeout: float | None = None) -> Any:
        """Exchange blocks: ``x`` holds ``size`` equal blocks along axis 0; block j goes to rank j.

        The result holds, in block i, what rank i sent to this rank.
        """
        done = self._fast_alltoall.call(self, x, out, "", algorithm, timeout)
        if done is not _FAST_MISS:
            return done
        a, o, result, _, in_place = self._operands("alltoall", x, None, out)
        if in_place:
            a = a.copy()  # the blocks still to be sent must not be overwritten
        return self._run("alltoall", algorithm, a, o, result, timeout=timeout, fast=(x, out))

    def reduce_scatter(self, x: Any, op: str = "sum", *, out: Any = None, algorithm: str = "auto",
                       timeout: float | None = None) -> Any:
        """Reduce ``x`` over all ranks and return this rank's block of the result.

        A 1-D ``x`` of n elements is split like ``numpy.array_split(x, size)`` (the
        first n % size blocks one element longer); an N-D ``x`` must have a first
        axis divisible by ``size``.
        """
        a, o, result, op_code, _ = self._operands("reduce_scatter", x, op, out)
        return self._run("reduce_scatter", algorithm, a, o, result, op=op, op_code=op_code,
                         timeout=timeout)

    def allgather(self, x: Any, *, out: Any = None, algorithm: str = "auto",
                  timeout: float | None = None) -> Any:
        """Every rank's ``x`` (same shape on all), concatenated along axis 0 in rank order."""
        a, o, result, _, _ = self._operands("allgather", x, None, out)
        return self._run("allgather", algorithm, a, o, result, timeout=timeout)

    def broadcast(self, x: Any, root: int = 0, *, algorithm: str = "auto",
                  timeout: float | None = None) -> Any:
        """Copy ``root``'s ``x`` into ``x`` on every rank, in place; returns ``x``."""
        a, _, _, _, _ = self._operands("broadcast", x, None, None, root)
        self._run("broadcast", algorithm, a, a, x, root=int(root), timeout=timeout)
        return x

    def barrier(self, timeout: float | None = None) -> None:
        """Wait until every rank has called barrier (with the same deadline rules)."""
        self._ensure_usable()
        deadline = self._deadline(timeout)
        res = _core.run_native(self._comm, _NATIVE["barrier"], None, None, 0, None,
                               _dt.dtype_code(np.uint8), 0, 0, deadline, self._notice)
        if res is not None:
            self._check_result(res, "barrier", "mpi")

    def plan(self, collective: str, nbytes: int, dtype: str | np.dtype = "float32") -> Plan:
        """What ``algorithm="auto"`` does for this collective and size, with the reasons.

        The same as ``collectives.planner.choose(collective, nbytes, comm, dtype=dtype)``.
        """
        from . import planner

        return planner.choose(collective, nbytes, self, dtype=dtype)

    def predict(self, collective: str, algorithm: str, nbytes: int) -> float:
        """The model's time (seconds) for this call on this communicator's topology.

        Uses the same schedule parameters a call would (this communicator's
        groups for an algorithm that needs them, the planner's parameters for
        "auto") and the same placement. Needs a topology. On emulated links
        the call is priced as it runs here: with this machine's host terms
        (its ranks share its cores and memory) and the emulation's own
        per-call cost (``cl.model.EMULATION_CALL_OVERHEAD``).
        """
        if self.topology is None:
            raise InvalidArgument("predict needs a Communicator created with topology=")
        from . import algorithms as _alg
        from . import model as _model
        from . import planner

        params = {}
        if algorithm == "auto":
            plan = planner.choose(collective, nbytes, self)
            if plan.predicted_time is not None and not self.emulate:
                return float(plan.predicted_time)
            algorithm = plan.algorithm
            if self.emulate:
                params.update(plan.params)      # the planner's choice, priced as emulated below
        if "groups" in _alg.get(collective, algorithm).needs:
            params["groups"] = self.groups
        if self.emulate:
            params.update(getattr(self, "_emulated_host", {}))
            params["call_overhead"] = _model.DEFAULTS["call_overhead"] + _model.EMULATION_CALL_OVERHEAD
        return float(_model.predict(collective, algorithm, int(nbytes), self.topology, ranks=self.size,
                                    placement=self.placement, **params))

    def abort(self, errorcode: int = 1) -> None:
        """End the whole MPI job at once (MPI_Abort): for jobs that prefer dying to waiting."""
        MPI.COMM_WORLD.Abort(errorcode)

    def free(self) -> None:
        """Release the duplicated MPI communicator (also done when garbage collected).

        A freed Communicator no longer tells its peers when this process exits.
        """
        self._hand_over_duplicates()
        _free_deferred()

    def _hand_over_duplicates(self) -> None:
        """Forget the fast paths' shapes and move this Communicator's MPI duplicates to the
        deferred frees (freed by :func:`_free_deferred`: at once by free(), later for __del__)."""
        for fast in getattr(self, "_fast", {}).values():
            fast.forget()
        for name in ("_comm", "_notice", "_p2p"):
            dup = getattr(self, name, None)
            if dup is not None and dup != MPI.COMM_NULL:
                _DEFERRED_FREES.append(dup)
            setattr(self, name, None)

    def _announce(self, text: str) -> None:
        """Tell every other rank of this Communicator what this rank did (a notice)."""
        if getattr(self, "_notice", None) is None or self.size < 2 or MPI.Is_finalized():
            return
        notices.send(self._notice, self.rank, self.size, text)

    def __del__(self):
        # The collector may run this inside any MPI call of this thread (mpi4py's lowercase
        # calls hold locks that MPI_Comm_free's attribute callbacks take): hand the duplicates
        # to the next safe point instead of freeing them here.
        try:
            self._hand_over_duplicates()
        except Exception:
            pass

    def __repr__(self):
        state = f"broken: {self._broken}" if self._broken else "ok"
        return f"<collectives.Communicator rank {self.rank} of {self.size}, {state}>"

    # ---- sub-communicators and layouts -------------------------------------------------

    def split(self, color: int | None, key: int = 0) -> Optional["Communicator"]:
        """The sub-communicator of the ranks that pass the same ``color`` (MPI ``Comm_split``).

        A collective call: every rank of this Communicator must call it. Ranks
        are ordered by ``key``, then by their rank here. The result inherits
        this Communicator's timeout, validate, emulation and segment size; its
        topology is the same network with its placement restricted to the
        members' hosts, so "auto" plans on the part of the network it uses.

        Parameters
        ----------
        color : int or None
            A non-negative int; None: this rank joins no sub-communicator.
        key : int
            Order of this rank among its color's members.

        Returns
        -------
        Communicator or None
            None on a rank whose color is None.

        Raises
        ------
        InvalidType, InvalidArgument
            On every rank, before the split, when any rank passed a color that is
            not a non-negative int (or None) or a key that is not an int.
        """
        self._ensure_usable()
        problem, kind = "", InvalidArgument
        if color is not None and (isinstance(color, bool) or not isinstance(color, (int, np.integer))):
            problem, kind = f"color must be a non-negative int or None, got {color!r}", InvalidType
        elif color is not None and not 0 <= int(color) < 2 ** 31 - 1:
            problem = f"color must be a non-negative int below 2**31 - 1, got {color}"
        elif isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            problem, kind = f"key must be an int, got {key!r}", InvalidType
        elif not -2 ** 31 <= int(key) < 2 ** 31:
            problem = f"key must fit in a C int, got {key}"
        # agree first (with a deadline), so that one rank's bad color raises on every rank
        # (and learn every rank's color and key: an emulated sub-communicator prices its calls
        # with its sibling groups', so it must know them)
        mine = np.array([1 if problem else 0, -1 if problem or color is None else int(color),
                         0 if problem else int(key)], dtype=np.int64)
        everyone = self.allgather(mine, algorithm="mpi").reshape(self.size, 3)
        bad = np.flatnonzero(everyone[:, 0]).tolist()
        if problem:
            raise kind(f"split: {problem}")
        if bad:
            raise InvalidArgument(f"split: rank(s) {', '.join(map(str, bad))} passed a bad color or "
                                  "key, so no rank splits")
        sub = self._comm.Split(MPI.UNDEFINED if color is None else int(color), int(key))
        if sub == MPI.COMM_NULL:
            return None
        try:
            members = sub.Get_group().Translate_ranks(list(range(sub.Get_size())), self._comm.Get_group())
            child = self._child(sub, [int(m) for m in members])
            if self.emulate:
                child._siblings, child._sibling_index = self._split_groups(everyone[:, 1], everyone[:, 2],
                                                                           int(color))
            return child
        finally:
            sub.Free()

    def _split_groups(self, colors, keys, color):
        """Hosts of every group of a split (MPI's order: by key, then rank), and our group's index."""
        groups, index = [], 0
        for c in np.unique(colors[colors >= 0]).tolist():
            ranks = np.flatnonzero(colors == c)
            ranks = ranks[np.lexsort((ranks, keys[ranks]))]
            if c == color:
                index = len(groups)
            groups.append(self.placement.host_index[ranks])
        return groups, index

    def _holds(self, sched, itemsize) -> np.ndarray:
        """Emulated links: the modelled time of each row of this rank's program of ``sched``.

        A top-level Communicator prices its call alone. A sub-communicator of a split
        prices it with the same call on every other group of that split (SPMD ranks run
        them at once), and inside :meth:`Mesh.overlap` also with the calls declared for
        the other dimensions, on all their groups: each step is one max-min problem over
        all those flows (:func:`collectives.model.joint.joint_message_times`).
        """
        from . import model as _model

        siblings = getattr(self, "_siblings", None)
        overlap = getattr(self, "_overlap", None)
        if siblings is None and not overlap:
            holds = _model.message_times(sched, self.topology, self.placement, self.rank, itemsize=itemsize,
                                         **getattr(self, "_emulated_host", {}))
        else:
            from .model.joint import joint_message_times

            groups = siblings if siblings is not None else [self.placement.host_index]
            parts = [(sched, hosts) for hosts in groups]
            for other, declared in overlap or ():
                theirs = other._declared_schedule(*declared)
                parts.extend((theirs, hosts) for hosts in (other._siblings or [other.placement.host_index]))
            host = dict(getattr(self, "_emulated_host", {}))
            if "machines" in host:   # emulated ranks share one machine: so do all the parts'
                host["machines"] = np.zeros(sum(s.nranks for s, _ in parts), dtype=np.int64)
            holds = joint_message_times(parts, self.topology, getattr(self, "_sibling_index", 0), self.rank,
                                        itemsize=itemsize, **host)
        return np.ascontiguousarray(holds, dtype=np.float64)

    def _declared_schedule(self, collective, nbytes, dtype, algorithm):
        """The schedule this Communicator would run for a declared call (Mesh.overlap)."""
        from . import algorithms as _alg

        dt = np.dtype(dtype)
        count = max(int(nbytes) // dt.itemsize, 0)
        probe = np.empty(count, dtype=dt)
        name, plan_params = self._choose(collective, algorithm, probe)
        if name == "mpi":
            name = _alg.default_algorithm(collective)   # priced as the registry's default schedule
        needs = _alg.get(collective, name).needs
        params = {"groups": self.groups} if "groups" in needs else {}
        params.update(plan_params)
        if "root" in needs:
            params["root"] = 0
        return _alg.build_schedule(collective, name, self.size, count, **params)

    def _price_for(self, context) -> None:
        """Emulated links: use the call shapes priced for ``context``, the calls declared
        beside this one (:meth:`Mesh.overlap`; None: its sibling groups only).

        Holds depend on the concurrent traffic, so each context keeps its own cached
        shapes: a training loop that enters the same overlap block every step prices
        its calls once, not at every entry.
        """
        if not self.emulate:
            return
        store = self.__dict__.setdefault("_priced_contexts", {})
        current = getattr(self, "_pricing_context", None)
        store[current] = (self._calls, self._vcalls)
        if context not in store and len(store) > 64:
            store.clear()
        self._calls, self._vcalls = store.pop(context, None) or ({}, {})
        self._pricing_context = context

    def _child(self, sub: MPI.Comm, members: list) -> "Communicator":
        """A Communicator on ``sub`` (whose rank i is this one's ``members[i]``), with our settings."""
        placement = None
        if self.topology is not None:
            from .topology.placement import Placement

            placement = Placement(self.topology, [self.placement[m] for m in members])
        child = Communicator(sub, topology=self.topology, emulate=self.emulate, timeout=self.timeout,
                             validate=self.validate, segment_bytes=self.segment_bytes,
                             placement=placement)
        child.inflight = self.inflight
        child.parent_ranks = np.asarray(members, dtype=np.int64)
        return child

    def layout(self, dp: int | None = None, tp: int = 1, pp: int = 1, ep: int = 1,
               order: Any = ("tp", "dp", "pp")) -> "Mesh":
        """This rank's data-, tensor-, pipeline- and expert-parallel sub-communicators.

        The groups are those of ``collectives.workload.Layout(dp, tp, pp, ep,
        order)`` over this Communicator's ranks, so the layout the workload
        model prices is the one that runs. A collective call: every rank must
        call it with the same arguments.

        Parameters
        ----------
        dp, tp, pp, ep : int
            Degrees; ``dp * tp * pp`` must be this Communicator's size (``dp``
            defaults to ``size // (tp * pp)``); ``ep`` divides ``dp``.
        order : sequence of str or str
            "tp", "dp", "pp", fastest-varying first (Megatron-LM's default).

        Returns
        -------
        Mesh
            ``mesh["tp"]``, ``mesh["dp"]``, ``mesh["pp"]``, ``mesh["ep"]``,
            ``mesh["edp"]`` (Communicators), ``mesh.layout`` and ``mesh.coords``.
        """
        from .workload.layout import DIMENSIONS, Layout

        self._ensure_usable()
        for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgument(f"layout: {name} must be a positive int, got {value!r}")
        if dp is None:
            if self.size % (tp * pp):
                raise InvalidArgument(f"layout: tp={tp} x pp={pp} does not divide the "
                                      f"communicator's {self.size} ranks")
            dp = self.size // (tp * pp)
        lay = Layout(dp, tp, pp, ep, order)
        if lay.size != self.size:
            raise InvalidArgument(f"layout: dp={lay.dp} x tp={lay.tp} x pp={lay.pp} = {lay.size} ranks, "
                                  f"but the communicator has {self.size}")
        comms = {}
        for dim in DIMENSIONS:
            groups = lay.groups(dim)
            row = np.flatnonzero((groups == self.rank).any(axis=1))[0]
            position = int(np.flatnonzero(groups[row] == self.rank)[0])
            comms[dim] = self.split(int(row), key=position)
        return Mesh(lay, comms, lay.coords(self.rank))

    # ---- point-to-point ----------------------------------------------------------------

    def _peer(self, peer, what, allow_any=False):
        if type(peer) is int and 0 <= peer < self.size:   # the common case, kept cheap
            return peer
        if allow_any and isinstance(peer, str) and peer.lower() == "any":
            return MPI.ANY_SOURCE
        if isinstance(peer, bool) or not isinstance(peer, (int, np.integer)):
            extra = ' or "any"' if allow_any else ""
            raise InvalidType(f"{what} must be an int rank{extra}, got {peer!r}")
        if not 0 <= int(peer) < self.size:
            raise InvalidArgument(f"{what}={peer} is out of range: ranks are 0..{self.size - 1}")
        return int(peer)

    @staticmethod
    def _tag(tag):
        if type(tag) is int and 0 <= tag <= 32767:   # the common case: MPI_TAG_UB is at least 32767
            return tag
        if isinstance(tag, bool) or not isinstance(tag, (int, np.integer)):
            raise InvalidType(f"tag must be an int, got {tag!r}")
        upper = _TAG_UB[0] if _TAG_UB else _tag_upper()
        if not 0 <= tag <= upper:
            raise InvalidArgument(f"tag={tag} is out of range: tags are 0..{upper} (MPI_TAG_UB)")
        return int(tag)

    def isend(self, x: Any, dest: int, tag: int = 0) -> "p2p.Request":
        """Start sending ``x`` to rank ``dest``; returns a request (``.wait()``, ``.test()``).

        ``x`` must not change until the request completes. Messages between two
        ranks with one tag arrive in the order they were sent; they never match
        collective traffic.
        """
        made = self._fast_p2p.isend(self, x, dest, tag)
        if made is not _FAST_P2P_MISS:
            return made
        a = as_array(x, "x")
        dest = self._peer(dest, "dest")
        tag = self._tag(tag)
        p2p.check_usable(self)
        return p2p.post_send(self, a, dest, tag)

    def irecv(self, out: Any, source: int | str = "any", tag: int = 0) -> "p2p.Request":
        """Start receiving into ``out`` from rank ``source`` (or "any"); returns a request.

        ``request.wait()`` returns a :class:`~collectives.p2p.RecvStatus`
        (``source``, ``tag``, ``count`` elements received). A message larger than
        ``out``, or not a whole number of its elements, raises
        :class:`~collectives.errors.MismatchError` (the message is discarded).
        """
        made = self._fast_p2p.irecv(self, out, source, tag)
        if made is not _FAST_P2P_MISS:
            return made
        o = as_array(out, "out", writable=True)
        source = self._peer(source, "source", allow_any=True)
        tag = self._tag(tag)
        p2p.check_usable(self)
        return p2p.post_recv(self, o, source, tag)

    def send(self, x: Any, dest: int, tag: int = 0, timeout: float | None = None) -> None:
        """Send ``x`` to rank ``dest`` and wait until its buffer may be reused.

        Raises :class:`~collectives.errors.CollectiveTimeout` (naming the peer
        and tag) when the message cannot leave before the deadline (``timeout``,
        else the Communicator's), :class:`~collectives.errors.PeerFailure` when
        ``dest`` left.
        """
        if self._fast_p2p.send(self, x, dest, tag, timeout) is True:
            return None
        if timeout is not None:
            _check_timeout(timeout)
        a = as_array(x, "x")
        dest = self._peer(dest, "dest")
        tag = self._tag(tag)
        if self._broken or self._p2p is None:
            p2p.check_usable(self)
        p2p.send(self, a, dest, tag, timeout)

    def recv(self, out: Any, source: int | str = "any", tag: int = 0,
             timeout: float | None = None) -> "p2p.RecvStatus":
        """Receive a message from ``source`` (a rank or "any") into ``out``.

        Returns
        -------
        collectives.p2p.RecvStatus
            ``source``, ``tag`` and ``count`` (elements received; a message may
            be shorter than ``out``). ``int(status)`` is the source rank.
        """
        done = self._fast_p2p.recv(self, out, source, tag, timeout)
        if done is not _FAST_P2P_MISS:
            return done
        if timeout is not None:
            _check_timeout(timeout)
        o = as_array(out, "out", writable=True)
        source = self._peer(source, "source", allow_any=True)
        tag = self._tag(tag)
        if self._broken or self._p2p is None:
            p2p.check_usable(self)
        return p2p.recv(self, o, source, tag, timeout)

    def sendrecv(self, x: Any, dest: int, out: Any, source: int | str = "any", send_tag: int = 0,
                 recv_tag: int | None = None, timeout: float | None = None) -> "p2p.RecvStatus":
        """Send ``x`` to ``dest`` and receive into ``out`` from ``source`` at once (no deadlock
        in a ring of exchanges). ``recv_tag`` defaults to ``send_tag``; returns the receive's status."""
        if timeout is not None:
            _check_timeout(timeout)
        recv_tag = send_tag if recv_tag is None else recv_tag
        # every argument checked before either message is posted
        a = as_array(x, "x")
        o = as_array(out, "out", writable=True)
        self._peer(dest, "dest")
        self._peer(source, "source", allow_any=True)
        self._tag(send_tag)
        self._tag(recv_tag)
        if o.size and a.size and np.shares_memory(a, o):
            raise InvalidArgument("sendrecv: out overlaps x; pass separate buffers")
        receive = self.irecv(out, source, recv_tag)
        sending = self.isend(x, dest, send_tag)
        status = receive.wait(timeout)
        sending.wait(timeout)
        return status

    # ---- all-to-all with uneven blocks ---------------------------------------------------

    def alltoallv(self, x: Any, send_counts: Any, recv_counts: Any = None, *, out: Any = None,
                  algorithm: str = "auto", timeout: float | None = None) -> Any:
        """All-to-all with a different block size for every pair of ranks.

        ``x`` holds this rank's blocks back to back along axis 0, block j
        (``send_counts[j]`` rows) for rank j; the result holds block i from every
        rank i, in rank order (``recv_counts[i]`` rows). A collective call.

        Parameters
        ----------
        x : array
            ``sum(send_counts)`` rows along axis 0 (any trailing shape, same on
            every rank).
        send_counts : sequence of int
            ``size`` non-negative row counts.
        recv_counts : sequence of int, optional
            What each rank sends to this one; exchanged (an all-to-all of the
            counts) when not given.
        out : array, optional
            ``sum(recv_counts)`` rows of x's trailing shape and dtype.
        algorithm : str
            "auto" (the registry's default, "pairwise"), "pairwise" (the
            executor, with deadlines) or "mpi" (``MPI_Ialltoallv``, with the same deadline).

        Returns
        -------
        array
            ``out``, or a new array.
        """
        done = self._fast_alltoallv.call(self, x, send_counts, recv_counts, out, algorithm, timeout)
        if done is not _FAST_MISS:
            return done
        from . import algorithms as _alg

        a = as_array(x, "x")
        name = _VALGORITHMS.get(algorithm) if type(algorithm) is str else None
        if name is None:
            name, params = _alg.parse_algorithm("alltoallv", algorithm)
            if params:
                raise InvalidArgument(f"alltoallv: algorithm {algorithm!r} takes no parameters")
            _VALGORITHMS[algorithm] = name
        if a.ndim == 0:
            raise InvalidArgument("alltoallv: x must have at least one dimension")
        row = 1
        for extent in a.shape[1:]:
            row *= int(extent)
        sc, sc_total = self._counts(send_counts, "send_counts")
        if sc_total != a.shape[0]:
            raise InvalidArgument(f"alltoallv: send_counts sum to {sc_total} rows, but x has "
                                  f"{a.shape[0]} rows along axis 0")
        rc, rc_total = (None, 0) if recv_counts is None else self._counts(recv_counts, "recv_counts")
        checked = None
        if out is not None:
            rows = rc_total if rc is not None else as_array(out, "out").reshape(-1).size // max(row, 1)
            checked = self._output(x, a, out, (rows,) + a.shape[1:], same_as_input=False)
        if timeout is not None:
            _check_timeout(timeout)
        self._ensure_usable()
        if rc is None:
            rc = self.alltoall(sc, algorithm="pairwise", timeout=timeout)
            if out is not None:
                # out's size is known only now: agree on it, so that no rank is left waiting
                fits = np.array([int(rc.sum()) * row == as_array(out, "out").size], dtype=np.int64)
                ok = self.allgather(fits, algorithm="mpi", timeout=timeout)
                if not ok.all():
                    bad = ", ".join(map(str, np.flatnonzero(ok == 0).tolist()))
                    raise InvalidArgument(f"alltoallv: out does not hold the rows the other ranks send "
                                          f"on rank(s) {bad} (here: {int(rc.sum())} rows expected)")
        if checked is not None and recv_counts is not None:   # out was checked against them above
            o, result = checked
        else:
            o, result = self._output(x, a, out, (int(rc.sum()),) + a.shape[1:], same_as_input=False)
        deadline = self._deadline(timeout)
        if name == "auto":
            name = _alg.default_algorithm("alltoallv")
        if self.emulate and name != "mpi":
            # the model prices every pair's block: everyone's counts are needed, every call
            everyone = self.allgather(sc * row, algorithm="mpi", timeout=timeout)
            key = (name, everyone.tobytes(), rc.tobytes(), row, a.dtype)
        else:
            everyone = None
            key = (name, sc.tobytes(), rc.tobytes(), row, a.dtype)
        entry = self._vcalls.get(key)
        if entry is None:
            entry = self._alltoallv_entry(name, sc * row, rc * row, everyone, a.dtype)
            if len(self._vcalls) > 256:
                self._vcalls.clear()
            self._vcalls[key] = entry
        flat_in = a.reshape(-1)
        flat_out = o.reshape(-1)
        if entry.program is None:   # the MPI library's own MPI_Ialltoallv, with the deadline
            res = _core.run_native(self._comm, _NATIVE["alltoallv"], flat_in, flat_out, 0, entry.counts,
                                   entry.dcode, 0, 0, deadline, self._notice)
        else:
            preempted_before = _preemptions() if entry.holds is not None else 0
            res = _core.run(self._comm, entry.program, flat_in, flat_out, self._tmp, entry.dcode, 0,
                            self.segment_bytes, self.inflight, self._scratch, deadline, entry.holds,
                            self._notice)
            if entry.holds is not None:
                self._judge_emulation(preempted_before)
        if res is not None:
            self._check_result(res, "alltoallv", entry.algorithm, entry.num_steps or None)
        if (recv_counts is not None and a is x and type(x) is np.ndarray and type(algorithm) is str
                and not self.emulate and (out is None or (o is out and type(out) is np.ndarray))
                and _plain_counts(send_counts) and _plain_counts(recv_counts)):
            # later calls with these counts are checked and run in C
            self._fast_alltoallv.remember(x, out, send_counts, recv_counts, algorithm, entry)
        return result

    def _alltoallv_entry(self, name, send_elems, recv_elems, everyone, dtype) -> _Call:
        """What one alltoallv shape needs besides the data (cached by its counts): the program
        (or, for "mpi", the counts and displacements MPI_Ialltoallv takes), in elements."""
        from . import algorithms as _alg

        dcode = _dt.dtype_code(dtype)
        if name == "mpi":
            displs = lambda c: np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64)   # noqa: E731
            counts4 = np.ascontiguousarray(np.concatenate(
                [send_elems, displs(send_elems), recv_elems, displs(recv_elems)]), dtype=np.int64)
            return _Call("mpi", dcode, None, 0, counts4, None)
        if everyone is not None:
            counts = np.asarray(everyone, dtype=np.int64).reshape(self.size, self.size).copy()
        else:
            counts = np.zeros((self.size, self.size), dtype=np.int64)
        counts[self.rank, :] = send_elems
        counts[:, self.rank] = recv_elems
        sched = _alg.build_schedule("alltoallv", name, self.size, int(counts.sum(axis=1).max()),
                                    counts=counts)
        program = np.ascontiguousarray(sched.program(self.rank))
        itemsize = np.dtype(dtype).itemsize
        scratch = int(_core.scratch_needed(program, itemsize, self.segment_bytes, self.inflight))
        if self._scratch.nbytes < scratch:
            self._scratch = np.empty(scratch, dtype=np.uint8)
        holds = None
        if self.emulate:
            holds = self._holds(sched, itemsize)
        return _Call(name, dcode, program, sched.num_steps, None, holds)

    def _counts(self, counts, what):
        """``(counts as int64, their sum)``, checked; a repeated argument is one lookup."""
        if type(counts) is np.ndarray:
            memo = (counts.dtype.char, counts.shape, counts.tobytes())
        elif type(counts) in (list, tuple) and all(type(v) is int for v in counts):
            memo = tuple(counts)
        else:
            memo = None
        if memo is not None:
            hit = self._count_memo.get(memo)
            if hit is not None:
                return hit
        c = self._counts_checked(counts, what)
        found = (c, int(c.sum()))
        if memo is not None:
            if len(self._count_memo) > 256:
                self._count_memo.clear()
            self._count_memo[memo] = found
        return found

    def _counts_checked(self, counts, what):
        try:
            c = np.asarray(counts)
        except Exception:
            raise InvalidType(f"alltoallv: {what} must be a sequence of {self.size} ints") from None
        if c.shape != (self.size,) or not (np.issubdtype(c.dtype, np.integer) or c.size == 0):
            raise InvalidArgument(f"alltoallv: {what} must be {self.size} ints (one per rank), "
                                  f"got {counts!r}")
        c = c.astype(np.int64)
        if (c < 0).any():
            raise InvalidArgument(f"alltoallv: {what} must not be negative, got {c.tolist()}")
        return c

    # ---- non-blocking and persistent collectives (collectives.requests) -----------------

    def iallreduce(self, x: Any, op: str = "sum", *, out: Any = None,
                   algorithm: str = "auto") -> "Request":
        """Start :meth:`allreduce` and return at once; ``request.wait()`` returns its result.

        Arguments are checked as by the blocking call, before any message. ``x``
        and ``out`` must not be touched until the request completes. Every rank
        must start collectives on this Communicator in the same order.
        """
        started = self._fast_allreduce.start(self, x, out, op, algorithm)
        if started is not _FAST_MISS:
            return started
        from .requests import Request

        return Request(self, "allreduce", x, op=op, out=out, algorithm=algorithm)

    def ialltoall(self, x: Any, *, out: Any = None, algorithm: str = "auto") -> "Request":
        """Start :meth:`alltoall`; returns a :class:`~collectives.requests.Request`."""
        started = self._fast_alltoall.start(self, x, out, "", algorithm)
        if started is not _FAST_MISS:
            return started
        from .requests import Request

        return Request(self, "alltoall", x, out=out, algorithm=algorithm)

    def ireduce_scatter(self, x: Any, op: str = "sum", *, out: Any = None,
                        algorithm: str = "auto") -> "Request":
        """Start :meth:`reduce_scatter`; returns a :class:`~collectives.requests.Request`."""
        from .requests import Request

        return Request(self, "reduce_scatter", x, op=op, out=out, algorithm=algorithm)

    def iallgather(self, x: Any, *, out: Any = None, algorithm: str = "auto") -> "Request":
        """Start :meth:`allgather`; returns a :class:`~collectives.requests.Request`."""
        from .requests import Request

        return Request(self, "allgather", x, out=out, algorithm=algorithm)

    def ibroadcast(self, x: Any, root: int = 0, *, algorithm: str = "auto") -> "Request":
        """Start :meth:`broadcast` (in place in ``x``); ``wait()`` returns ``x``."""
        from .requests import Request

        return Request(self, "broadcast", x, root=root, algorithm=algorithm)

    def ibarrier(self) -> "Request":
        """Start a barrier; ``wait()`` returns once every rank has started it."""
        from .requests import Request

        return Request(self, "barrier", None)

    def allreduce_init(self, x: Any, op: str = "sum", *, out: Any = None,
                       algorithm: str = "auto") -> "PersistentRequest":
        """Bind an :meth:`allreduce` of ``x`` into ``out`` once; ``start()``/``wait()`` it often.

        The algorithm is chosen and its program compiled once ("mpi": MPI-4's
        ``MPI_Allreduce_init`` where the MPI has it). ``start`` refuses a bound
        buffer whose size or address changed. See :class:`~collectives.requests.PersistentRequest`.
        """
        from .requests import PersistentRequest

        return PersistentRequest(self, "allreduce", x, op=op, out=out, algorithm=algorithm)

    def alltoall_init(self, x: Any, *, out: Any = None, algorithm: str = "auto") -> "PersistentRequest":
        """A persistent :meth:`alltoall` (see :meth:`allreduce_init`)."""
        from .requests import PersistentRequest

        return PersistentRequest(self, "alltoall", x, out=out, algorithm=algorithm)

    def reduce_scatter_init(self, x: Any, op: str = "sum", *, out: Any = None,
                            algorithm: str = "auto") -> "PersistentRequest":
        """A persistent :meth:`reduce_scatter` (see :meth:`allreduce_init`)."""
        from .requests import PersistentRequest

        return PersistentRequest(self, "reduce_scatter", x, op=op, out=out, algorithm=algorithm)

    def allgather_init(self, x: Any, *, out: Any = None, algorithm: str = "auto") -> "PersistentRequest":
        """A persistent :meth:`allgather` (see :meth:`allreduce_init`)."""
        from .requests import PersistentRequest

        return PersistentRequest(self, "allgather", x, out=out, algorithm=algorithm)

    def broadcast_init(self, x: Any, root: int = 0, *, algorithm: str = "auto") -> "PersistentRequest":
        """A persistent :meth:`broadcast` of ``x`` in place (see :meth:`allreduce_init`)."""
        from .requests import PersistentRequest

        return PersistentRequest(self, "broadcast", x, root=root, algorithm=algorithm)

    # ---- internals -------------------------------------------------------------------------

    def _operands(self, collective, x, op=None, out=None, root=0):
        """Every argument check of a collective call, before any message: the blocking calls
        and the requests (``collectives.requests``) share it, so they refuse alike.

        Returns ``(a, o, result, op_code, in_place)``: the numpy input and output the core
        works on, what the call returns, the op's code (reducing collectives) and, for an
        all-to-all whose ``out`` shares x's memory, True (its blocks still to be sent must
        be copied first).
        """
        if collective == "broadcast":
            a = as_array(x, "x", writable=True)
            if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
                raise InvalidType(f"broadcast: root must be an int rank, got {root!r}")
            if not 0 <= int(root) < self.size:
                raise InvalidArgument(f"broadcast: root={root} is out of range: ranks are 0..{self.size - 1}")
            return a, a, x, 0, False
        a = as_array(x, "x")
        op_code = 0
        in_place = False
        if collective == "allreduce":
            op_code = self._op(op, a.dtype)
            o, result = self._output(x, a, out, a.shape)
        elif collective == "alltoall":
            if a.ndim == 0 or a.shape[0] % self.size:
                raise InvalidArgument(
                    f"alltoall: x must hold comm.size={self.size} equal blocks along axis 0, "
                    f"but its shape is {a.shape}")
            o, result = self._output(x, a, out, a.shape)
            in_place = out is not None and bool(o.size) and np.may_share_memory(o, a)
        elif collective == "reduce_scatter":
            op_code = self._op(op, a.dtype)
            if a.ndim == 0:
                raise InvalidArgument("reduce_scatter: x must have at least one dimension")
            if a.ndim > 1 and a.shape[0] % self.size:
                raise InvalidArgument(
                    f"reduce_scatter: an N-D x needs its first axis divisible by comm.size={self.size}; "
                    f"shape is {a.shape} (flatten it for uneven blocks)")
            if a.ndim == 1:
                shape = (int(block_sizes(a.size, self.size)[self.rank]),)
            else:
                shape = (a.shape[0] // self.size,) + a.shape[1:]
            o, result = self._output(x, a, out, shape, same_as_input=False)
        elif collective == "allgather":
            shape = (self.size,) if a.ndim == 0 else (self.size * a.shape[0],) + a.shape[1:]
            o, result = self._output(x, a, out, shape, same_as_input=False)
        else:
            raise InvalidArgument(f"unknown collective {collective!r}")
        return a, o, result, op_code, in_place

    def _op(self, op, dtype):
        if type(op) is not str:
            return self._op_checked(op, dtype)
        code = self._ops.get((op, dtype))
        if code is None:
            code = self._op_checked(op, dtype)
            self._ops[(op, dtype)] = code
        return code

    def _op_checked(self, op, dtype):
        if not isinstance(op, str):
            raise InvalidType(f"op must be one of {', '.join(OPS)} (a string), got {op!r}")
        name = op.lower()
        if name not in OPS:
            raise InvalidArgument(f"unknown op {op!r}: accepted ops are {', '.join(OPS)}")
        if name == "avg" and not _dt.is_floating(dtype):
            raise InvalidArgument(
                f"op 'avg' needs a floating dtype, x has {dtype}: use 'sum' and divide yourself, "
                "or convert to a float dtype")
        return _dt.op_code("sum" if name == "avg" else name)

    def _output(self, x, a, out, shape, same_as_input=True):
        """The output array (validated, or allocated) and what to return to the user."""
        if out is None:
            if type(x) is np.ndarray:
                o = np.empty(shape, dtype=a.dtype)
                return o, o
            alloc = _alloc_like(x, a, tuple(int(s) for s in shape))
            return as_array(alloc, "out", writable=True), alloc
        if out is x and same_as_input and type(x) is np.ndarray:
            if not (x.flags.writeable):
                raise InvalidArgument("out is read-only, but the result is written into it")
            return a, out   # in place: out is the input itself
        shape = tuple(int(s) for s in shape)
        o = as_array(out, "out", writable=True)
        if o.dtype != a.dtype:
            raise InvalidType(f"out has dtype {o.dtype}, but x has {a.dtype}; they must match")
        if o.shape != shape:
            raise InvalidArgument(f"out has shape {o.shape}, but this call produces shape {shape}")
        if o.size and a.size and np.may_share_memory(o, a) and np.shares_memory(o, a):
            if not same_as_input:
                raise InvalidArgument("out overlaps x; this collective needs separate input and output")
            if address(o) != address(a):
                raise InvalidArgument("out partially overlaps x; pass out=x for in place, or separate memory")
        return o, out

    def _deadline(self, timeout):
        t = _check_timeout(timeout) if timeout is not None else self.timeout
        return 0.0 if t is None else t

    def _ensure_usable(self):
        if self._comm is None:
            raise CommunicatorBroken("this Communicator was freed; create a new one")
        if self._broken:
            raise CommunicatorBroken(
                f"this Communicator failed earlier ({self._broken}) and refuses further calls: "
                "its ranks may be out of step. Create a new Communicator, or end the job with "
                "comm.abort()")

    def _choose(self, collective, algorithm, a):
        """(algorithm name, schedule parameters) for this call: the planner's for "auto"."""
        from . import algorithms as _alg

        name, params = _alg.parse_algorithm(collective, algorithm)
        if name == "auto":
            from . import planner

            plan = planner.choose(collective, a.nbytes, self, dtype=a.dtype)
            return plan.algorithm, dict(plan.params)
        return name, params

    def _entry(self, collective, algorithm, a, op_code, root):
        """Everything a call shape needs besides the data: the algorithm, its program, buffers."""
        key = (collective, algorithm, a.size, a.dtype, op_code, root)
        entry = self._calls.get(key)
        if entry is not None:
            return entry
        name, plan_params = self._choose(collective, algorithm, a)
        dcode = _dt.dtype_code(a.dtype)
        count = int(a.size)
        itemsize = a.dtype.itemsize
        if name == "mpi":
            counts = None
            if collective == "reduce_scatter":
                counts = block_sizes(count, self.size).astype(np.intc)
            entry = _Call(name, dcode, None, 0, counts, None)
        else:
            from . import algorithms as _alg

            needs = _alg.get(collective, name).needs
            params = {"groups": self.groups} if "groups" in needs else {}
            params.update(plan_params)
            if "root" in needs:
                params["root"] = root
            sched = _alg.build_schedule(collective, name, self.size, count, **params)
            program = np.ascontiguousarray(sched.program(self.rank))
            scratch = int(_core.scratch_needed(program, itemsize, self.segment_bytes, self.inflight))
            if self._scratch.nbytes < scratch:
                self._scratch = np.empty(scratch, dtype=np.uint8)
            tmp_bytes = int(sched.tmp_count) * itemsize
            if self._tmp.nbytes < tmp_bytes:
                self._tmp = np.empty(tmp_bytes, dtype=np.uint8)
            holds = None
            if self.emulate:
                holds = self._holds(sched, itemsize)
                if holds.shape != (len(program),):
                    raise CommunicationError(
                        f"the model returned {holds.shape} message times for {len(program)} program rows")
            label = name
            if algorithm.lower() != "auto" and plan_params:
                # "rhd(pairing=near-first)": messages and validate's fingerprint tell variants apart
                label = f"{name}({','.join(f'{k}={v}' for k, v in plan_params.items())})"
            entry = _Call(label, dcode, program, sched.num_steps, None, holds)
        if len(self._calls) > 512:
            self._calls.clear()
        self._calls[key] = entry
        return entry

    def _fingerprint(self, collective, algorithm, a, op, root, deadline):
        """Agree (collective, count, dtype, op, algorithm, root) across ranks before the call."""
        mine = np.array([
            _COLL_INDEX[collective], a.size, _dt.dtype_code(a.dtype),
            _OP_INDEX.get(op, -1), _crc(algorithm), root,
        ], dtype=np.int64)
        everyone = np.empty((self.size, 6), dtype=np.int64)
        res = _core.run_native(self._comm, _NATIVE["allgather"], mine, everyone, mine.size,
                               None, _dt.dtype_code(np.int64), 0, 0, deadline, self._notice)
        if res is not None:
            self._check_result(res, collective, "validate")
        bad = (everyone != everyone[0]).any(axis=1)
        if bad.any():
            differ = np.flatnonzero(bad).tolist()
            fields = ("collective", "count", "dtype", "op", "algorithm", "root")
            rows = []
            for r in range(self.size):
                vals = everyone[r]
                desc = (f"{COLLECTIVES[vals[0]]}" if 0 <= vals[0] < len(COLLECTIVES) else "?",
                        int(vals[1]), _dt.dtype_name(int(vals[2])),
                        OPS[vals[3]] if 0 <= vals[3] < len(OPS) else "-", _algorithm_of_crc(int(vals[4])),
                        int(vals[5]))
                rows.append(f"  rank {r}: " + ", ".join(f"{k}={v}" for k, v in zip(fields, desc)))
            raise MismatchError(
                f"{collective}: rank(s) {', '.join(map(str, differ))} called with arguments that differ "
                f"from rank 0's (validate=True caught it before any data moved):\n" + "\n".join(rows)
                + "\nMake every rank pass the same shape, dtype, op, algorithm and root.")

    def _run(self, collective, algorithm, a, o, result, *, op=None, op_code=0, root=0, timeout=None,
             fast=None):
        """Run one checked call. ``fast=(x, out)``, the caller's own arguments: a natively run
        call on plain numpy arrays is remembered for the compiled fast path."""
        if op == "avg" and a.dtype.itemsize == 2:   # float16, bfloat16: their own sum overflows
            return self._avg_in_float32(collective, algorithm, a, o, result, timeout)
        if self._broken or self._comm is None:
            self._ensure_usable()
        deadline = self.timeout_or_zero if timeout is None else self._deadline(timeout)
        entry = self._entry(collective, algorithm, a, op_code, root)
        if self.validate and self.size > 1:
            self._fingerprint(collective, entry.algorithm, a, op, root, deadline)
        if entry.program is None:
            res = _core.run_native(self._comm, _NATIVE[collective], a, o, a.size, entry.counts,
                                   entry.dcode, op_code, root, deadline, self._notice)
        else:
            preempted_before = _preemptions() if entry.holds is not None else 0
            res = _core.run(self._comm, entry.program, a, o, self._tmp, entry.dcode, op_code,
                            self.segment_bytes, self.inflight, self._scratch, deadline, entry.holds,
                            self._notice)
            if entry.holds is not None:
                self._judge_emulation(preempted_before)
        if res is not None:
            self._check_result(res, collective, entry.algorithm, entry.num_steps or None)
        if op == "avg":
            from ._kernels import divide_by

            divide_by(o, float(self.size))
        elif fast is not None and entry.program is None and not self.validate:
            self._remember(collective, algorithm, fast, a, o, op, op_code, root, entry)
        return result

    def _remember(self, collective, algorithm, fast, a, o, op, op_code, root, entry):
        """Let the compiled fast path take later calls of this shape: plain numpy arrays that
        the checked path used as they are (no copy, no conversion), a string op and algorithm."""
        x, out = fast
        if a is not x or type(x) is not np.ndarray or type(algorithm) is not str:
            return
        if out is None:
            kind = _core.OUT_NEW
        elif out is x:
            kind = _core.OUT_INPLACE
        elif o is out and type(out) is np.ndarray:
            kind = _core.OUT_SEPARATE
        else:
            return
        if op is None:
            op = ""
        elif type(op) is not str:
            return
        self._fast[collective].remember(x, op, algorithm, kind, entry.dcode, op_code, root,
                                        entry.algorithm)

    def _avg_in_float32(self, collective, algorithm, a, o, result, timeout):
        """The average of a half-precision ``a``: summed in float32, divided, rounded once to a's dtype.

        A float16 sum of values near 65504 overflows where their average does not.
        Each value is scaled by 2**-k (2**k >= size, exact in float32 for every float16
        and bfloat16 value while size <= 65536) so that the float32 sum of bfloat16
        values, whose range is float32's, cannot overflow either. Every rank gets
        the same float32 sum, so every rank rounds to the same result.
        """
        if self.validate and self.size > 1:   # the caller's own arguments, before the float32 call's
            self._ensure_usable()
            self._fingerprint(collective, str(algorithm).lower(), a, "avg", 0, self._deadline(timeout))
        k = max(0, int(self.size - 1).bit_length())
        wide = a.astype(np.float32)
        if k:
            wide *= np.float32(2.0 ** -k)
        total = np.empty(o.shape, dtype=np.float32)
        self._run(collective, algorithm, wide, total, total, op="sum",
                  op_code=self._op("sum", total.dtype), timeout=timeout)
        # one correctly rounded division of exact operands; float64 -> half then rounds as if once
        mean = total.astype(np.float64) / (self.size * 2.0 ** -k)
        o[...] = mean.astype(o.dtype)
        return result

    def _judge_emulation(self, preempted_before):
        """Warn (once) when emulated calls cannot keep to the model: steps that keep ending
        later than the model says, or a rank that keeps losing its core to other processes
        mid-call (its late start then hides in the step's own clock)."""
        self._emulated_calls += 1
        self._preempted += _preemptions() - preempted_before
        if _emulation_warned:
            # the warning is given once per process: the counters are all that is left to keep
            steps, late, worst = _core.emulation_lateness()
            self._held_steps += steps
            self._late_steps += late
            self._worst_late = max(self._worst_late, worst)
            return
        health = self.emulation_health()
        if health["held_steps"] < _EMULATION_SAMPLE:
            return
        if health["late_steps"] > _EMULATION_LATE_SHARE * health["held_steps"]:
            _warn_emulation(
                f"emulated links fall behind the model: {health['late_steps']} of "
                f"{health['held_steps']} steps ended after their modelled time (worst "
                f"{health['worst_late'] * 1e6:.0f} us late); this machine is loaded or its ranks "
                "outnumber its cores.")
        elif health["preempted_per_call"] > _EMULATION_PREEMPTIONS:
            _warn_emulation(
                f"emulated links: this rank lost its core to other processes "
                f"{health['preempted_per_call']:.1f} times per call, so its steps start late; "
                "the machine is loaded.")

    def emulation_health(self) -> dict:
        """How well emulated links kept to the model so far on this rank.

        ``held_steps``; ``late_steps``, those that ended more than 50 us after their
        modelled time; ``worst_late`` (s); ``late_total``, the lateness of all held
        steps summed (s); ``data_late_steps`` and ``data_late_total``, the steps whose
        messages were complete (as this rank saw them) only after their modelled time
        and by how much in all (s): the transfer, or this rank waiting for a core to
        see it, was slower than the model; the rest of ``late_total`` is waking from
        holds late. ``calls``; ``preempted_per_call``, how often per call the kernel
        took this rank's core for another process (involuntary context switches).
        Emulated times are trustworthy when both late steps and preemptions are rare.
        """
        if self.emulate:
            steps, late, worst = _core.emulation_lateness()
            late_sum, data_late, data_late_sum = _core.emulation_delays()
            self._held_steps += steps
            self._late_steps += late
            self._worst_late = max(self._worst_late, worst)
            self._late_total += late_sum
            self._data_late_steps += data_late
            self._data_late_total += data_late_sum
        calls = self._emulated_calls
        return {"held_steps": self._held_steps, "late_steps": self._late_steps,
                "worst_late": self._worst_late, "late_total": self._late_total,
                "data_late_steps": self._data_late_steps, "data_late_total": self._data_late_total,
                "calls": calls, "preempted_per_call": self._preempted / calls if calls else 0.0}

    def _check_result(self, res, collective, algorithm, num_steps=None):
        status = res["status"]
        if status == _core.STATUS_OK:
            return
        steps = f" of {num_steps}" if num_steps else ""
        step = res["step"] + 1 if res["step"] >= 0 else 0   # 1-based, for people
        if status == _core.STATUS_TIMEOUT:
            peers = res["peers"]
            who = (f"rank(s) {', '.join(map(str, peers))}" if peers else
                   "the other ranks (the MPI library's own collective does not say which)")
            self._broken = f"{collective} timed out"
            raise CollectiveTimeout(
                f"{collective} ({algorithm}) timed out after {res['elapsed']:.3f} s at step "
                f"{step}{steps}, still waiting for {who}; "
                f"{res['bytes_outstanding']} bytes outstanding. A rank may have skipped this call, "
                "called another collective, or died. This Communicator is now unusable: create a "
                "new one, or end the job with comm.abort().",
                collective=collective, algorithm=algorithm, step=step, peers=peers,
                bytes_outstanding=res["bytes_outstanding"], elapsed=res["elapsed"])
        if status == _core.STATUS_PEER_NOTICE:
            peer = res["peers"][0]
            reason = notices.receive(self._notice, peer)
            self._broken = f"rank {peer} {reason}"
            raise PeerFailure(
                f"{collective} ({algorithm}) stopped at step {step}{steps}: rank {peer} {reason}. "
                "It will not take part in this or any later call, so this Communicator is now "
                "unusable: end the job (or create a new Communicator without that rank).",
                rank=peer, reason=reason, collective=collective, algorithm=algorithm, step=step)
        if status == _core.STATUS_MPI_ERROR:
            self._broken = f"{collective} failed in MPI"
            where = f"at step {step}{steps}" + (f" (peer rank {res['peers'][0]})" if res["peers"] else "")
            # the peers may be waiting for what this rank will now never send: tell them
            self._announce(f"failed in {collective} ({algorithm}) {where}: {res['message']}")
            raise CommunicationError(
                f"{collective} ({algorithm}) failed {where}: {res['message']}. "
                "A peer may have died or passed another count or dtype; this Communicator is "
                "now unusable.")
        raise CommunicationError(f"{collective} ({algorithm}): internal error: {res['message']}")


_TAG_UB: list = []


def _tag_upper() -> int:
    """MPI_TAG_UB, asked once."""
    if not _TAG_UB:
        _TAG_UB.append(int(MPI.COMM_WORLD.Get_attr(MPI.TAG_UB)))
    return _TAG_UB[0]


def _algorithm_of_crc(crc: int) -> str:
    """The algorithm name behind a fingerprint's checksum (names are few and known)."""
    from . import algorithms as _alg

    for name in _alg.all_names():
        if zlib.crc32(name.encode()) == crc:
            return name
    return f"#{crc:08x}"


def _tune_polling(ranks_on_node: int) -> int:
    """More ranks than cores on this node: wait loops must yield the core at once.

    Returns the cores this process may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    _core.set_polls_before_yield(0 if ranks_on_node > cores else 64)
    p2p.set_polls_before_yield(0 if ranks_on_node > cores else 64)
    return cores


#: emulated steps seen before judging whether emulation keeps to the model, and the share of
#: late steps (collectives._constants.HOLD_LATE_US) that makes it untrustworthy
_EMULATION_SAMPLE = 20
_EMULATION_LATE_SHARE = 0.1
#: involuntary context switches per emulated call above which a rank is losing its core
_EMULATION_PREEMPTIONS = 0.5
_emulation_warned = False


def _preemptions() -> int:
    """Involuntary context switches of this process so far (the kernel gave its core away)."""
    return _getrusage(_RUSAGE_SELF).ru_nivcsw


def _warn_emulation(text: str) -> None:
    """Warn once per process that emulated times cannot be trusted here."""
    global _emulation_warned
    if _emulation_warned:
        return
    _emulation_warned = True
    import warnings

    from .errors import EmulationWarning

    warnings.warn(text + " Emulated times then overstate the modelled network: compare them "
                  "with cl.model.predict, or run on a quiet machine with a core per rank.",
                  EmulationWarning, stacklevel=4)


def _resolve_topology(topology, placement, comm):
    """The Topology (a spec string or path is loaded) and the rank -> host placement.

    Every rank takes part in one allgather (its machine name and whether its own
    setup failed), so a topology that one rank cannot load, or a machine that is
    not a host of it, raises on every rank instead of leaving the others waiting.
    """
    nranks = comm.Get_size()
    try:
        topology, placement = _local_topology(topology, placement, nranks)
        failure = None
    except Exception as exc:   # any failure: the other ranks must hear of it
        failure = exc
    name = _machine_name() if failure is None and placement is None else None
    report = None if failure is None else (type(failure).__name__, str(failure))
    everyone = comm.allgather((name, report))
    failed = [r for r, (_, rep) in enumerate(everyone) if rep is not None]
    if failure is not None:
        raise failure
    if failed:
        from . import errors as _errors

        kind, text = everyone[failed[0]][1]
        cls = getattr(_errors, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, _errors.CollectivesError)):
            cls = _errors.CollectivesError
        ranks = ", ".join(map(str, failed[:6])) + (", ..." if len(failed) > 6 else "")
        raise cls(f"rank(s) {ranks} could not set up the topology, so no rank goes on; rank "
                  f"{failed[0]}: {text}")
    if placement is None:
        from .topology.placement import Placement, match_hosts

        hosts = match_hosts(topology, [n for n, _ in everyone])
        if hosts is None:   # one machine that is no host of the topology: an emulation
            _check_linear_fits(topology, nranks)
            placement = topology.place(nranks, "linear")
        else:
            placement = Placement(topology, hosts)
    return topology, placement


def _local_topology(topology, placement, nranks):
    """What one rank decides alone: the Topology, and the placement unless it comes from names."""
    from . import topology as _topo

    if isinstance(topology, (str, os.PathLike)):
        topology = _topo.resolve(topology)
    if not isinstance(topology, _topo.Topology):
        raise InvalidType(f"topology must be a collectives.topology.Topology, a spec string or a file "
                          f"path; got {type(topology).__name__}")
    from .topology.placement import STRATEGIES, Placement

    if placement is None:
        return topology, None
    if isinstance(placement, (str, os.PathLike)):
        if isinstance(placement, str) and placement in STRATEGIES:
            _check_linear_fits(topology, nranks)
        placement = topology.place(nranks, placement)
    elif not isinstance(placement, Placement):
        placement = Placement(topology, list(placement))
    if placement.nranks != nranks:
        raise InvalidArgument(f"placement covers {placement.nranks} ranks, the communicator has {nranks}")
    return topology, placement


def _check_linear_fits(topology, nranks):
    if len(topology.hosts) < nranks:
        raise InvalidArgument(f"topology {topology.name} has {len(topology.hosts)} hosts, fewer than "
                              f"the communicator's {nranks} ranks")


def _machine_name() -> str:
    """The name of the machine this rank runs on, as placement matches it to a topology's hosts.

    ``COLLECTIVES_HOSTNAME`` when set (to fake where ranks run, e.g. in tests),
    else Slurm's ``SLURMD_NODENAME``, else ``MPI.Get_processor_name()``.
    """
    for var in ("COLLECTIVES_HOSTNAME", "SLURMD_NODENAME"):
        text = os.environ.get(var, "").strip()
        if text:
            return text
    return MPI.Get_processor_name()


def _plain_counts(counts) -> bool:
    """Counts the all-to-all-v fast path can compare by value: a 1-D integer array, or a
    list or tuple of ints."""
    if type(counts) is np.ndarray:
        return counts.ndim == 1 and counts.dtype.kind in "iu" and counts.flags.c_contiguous
    return type(counts) in (list, tuple) and all(type(v) is int for v in counts)


def block_sizes(count: int, nranks: int) -> np.ndarray:
    """Block lengths of ``count`` elements over ``nranks`` ranks: the schedules' own partition."""
    return block_bounds(int(count), int(nranks))[1]


def _alloc_like(x, a, shape):
    """A new output of the same kind as x: a torch tensor for torch input, else numpy."""
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        return torch.empty(shape, dtype=x.dtype)
    return np.empty(shape, dtype=a.dtype)


class Mesh:
    """The sub-communicators of one rank in a parallel layout (from :meth:`Communicator.layout`).

    ``mesh["tp"]``, ``mesh["dp"]``, ``mesh["pp"]``, ``mesh["ep"]`` and
    ``mesh["edp"]`` are this rank's groups as Communicators (rank i of each is
    the member with coordinate i along that dimension); ``mesh.layout`` is the
    :class:`collectives.workload.Layout` they come from and ``mesh.coords``
    this rank's coordinates.
    """

    def __init__(self, layout, comms: dict, coords: dict):
        self.layout = layout
        self._comms = dict(comms)
        self.coords = dict(coords)
        self._overlap_plans: dict = {}    # overlap(**calls) -> what entering its block sets

    def __getitem__(self, dim: str) -> Communicator:
        try:
            return self._comms[str(dim).lower()]
        except KeyError:
            raise InvalidArgument(f"no {dim!r} dimension: a layout has {', '.join(self._comms)}") from None

    def __contains__(self, dim) -> bool:
        return str(dim).lower() in self._comms

    def keys(self):
        return self._comms.keys()

    def free(self) -> None:
        """Free every sub-communicator."""
        for c in self._comms.values():
            c.free()

    def overlap(self, **calls) -> "_OverlapBlock":
        """Declare collectives of several dimensions that run at the same time (emulated links).

        Inside the ``with`` block, an emulated call on one declared dimension is
        priced together with the calls declared for the others, on all their
        groups: step i of every call is one max-min problem over all their flows,
        so each message is held to the time of the concurrent traffic. Outside,
        a dimension's call is priced with its own sibling groups only. Every
        rank must declare the same calls (SPMD); the calls themselves run as
        usual: as non-blocking requests completed by ``cl.wait_all`` (a request
        is priced when it starts, so start it inside the block; it may be waited
        for after), or one per Python thread (the executor releases the GIL).
        Entering a block with the same declarations again reuses what it priced.
        Without emulation this changes nothing.

        Parameters
        ----------
        **calls : tuple
            Per dimension ("dp", "tp", ...), ``(collective, nbytes)``, optionally
            followed by a dtype (default "float32") and an algorithm (default
            "auto"), as the call on that dimension will be made.

        Raises
        ------
        InvalidArgument
            Fewer than two dimensions, an unknown dimension or collective, or a
            bad size.

        Examples
        --------
        >>> with mesh.overlap(dp=("allreduce", g.nbytes), ep=("alltoall", t.nbytes)):
        ...     g, t = cl.wait_all([mesh["dp"].iallreduce(g), mesh["ep"].ialltoall(t)])
        >>> with mesh.overlap(dp=("allreduce", 8 << 20), tp=("allreduce", 2 << 20)):
        ...     threads = [threading.Thread(target=mesh["dp"].allreduce, args=(g,)),
        ...                threading.Thread(target=mesh["tp"].allreduce, args=(a,))]
        ...     for th in threads: th.start()
        ...     for th in threads: th.join()
        """
        return _OverlapBlock(self, calls)

    def _overlap_plan(self, calls) -> tuple:
        """``((communicator, calls declared beside it, pricing context), ...)`` of an overlap
        block, checked once per distinct declaration: a training loop enters the same block
        every step, and each entry then costs a dictionary lookup."""
        try:
            key = tuple(calls.items())
            plan = self._overlap_plans.get(key)
        except TypeError:        # an unhashable declaration: checked every time
            key, plan = None, None
        if plan is not None:
            return plan
        plan = self._check_overlap(calls)
        if key is not None:
            if len(self._overlap_plans) > 64:
                self._overlap_plans.clear()
            self._overlap_plans[key] = plan
        return plan

    def _check_overlap(self, calls) -> tuple:
        declared = {}
        for dim, call in calls.items():
            if dim not in self:
                raise InvalidArgument(f"overlap: no {dim!r} dimension: a layout has {', '.join(self._comms)}")
            if isinstance(call, str) or not isinstance(call, (tuple, list)) or not 2 <= len(call) <= 4:
                raise InvalidArgument(f"overlap: {dim}= must be (collective, nbytes[, dtype[, algorithm]]), "
                                      f"got {call!r}")
            collective, nbytes = call[0], call[1]
            dtype = call[2] if len(call) > 2 else "float32"
            algorithm = call[3] if len(call) > 3 else "auto"
            if collective not in COLLECTIVES:
                raise InvalidArgument(f"overlap: {dim}: collective {collective!r} is not one of "
                                      f"{', '.join(COLLECTIVES)}")
            if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
                raise InvalidArgument(f"overlap: {dim}: nbytes must be a non-negative int, got {nbytes!r}")
            declared[dim] = (collective, int(nbytes), _dt.normalize_dtype(dtype, "dtype"),
                             algorithm)
        if len(declared) < 2:
            raise InvalidArgument("overlap: declare the calls of at least two dimensions, e.g. "
                                  "overlap(dp=('allreduce', nbytes), tp=('allreduce', nbytes))")
        comms = {dim: self[dim] for dim in declared}
        context = tuple(sorted((dim, c, n, dt, str(alg)) for dim, (c, n, dt, alg) in declared.items()))
        return tuple((comm, [(comms[o], declared[o]) for o in declared if o != dim], (dim, context))
                     for dim, comm in comms.items())

    def __repr__(self):
        return f"<collectives.Mesh {self.layout!r}, coords {self.coords}>"


class _OverlapBlock:
    """The ``with`` block of :meth:`Mesh.overlap`: entering it prices each declared
    dimension's calls with the others' (its declarations are checked on entry, before any
    Communicator changes); leaving it goes back to each one's sibling groups alone."""

    __slots__ = ("_mesh", "_calls", "_plan")

    def __init__(self, mesh, calls):
        self._mesh, self._calls, self._plan = mesh, calls, None

    def __enter__(self):
        plan = self._plan = self._mesh._overlap_plan(self._calls)
        for comm, beside, context in plan:
            comm._overlap = beside
            comm._price_for(context)
        return self._mesh

    def __exit__(self, *exc):
        for comm, _, _ in self._plan or ():
            comm._overlap = None
            comm._price_for(None)
        return False
