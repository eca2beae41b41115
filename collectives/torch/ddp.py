"""A DDP communication hook that all-reduces each gradient bucket through a persistent request.

DDP all-reduces the same gradient buckets every step. This hook binds one
persistent all-reduce (``Communicator.allreduce_init``) per bucket and starts it
each step, so the planning, argument checks and buffer setup of a call are
done once per bucket instead of once per step, and torch's c10d dispatch
(``ProcessGroup.allreduce``, its Work and the progress queue) is skipped::

    from collectives.torch import PersistentAllreduce, persistent_allreduce_hook

    ddp = DistributedDataParallel(model)          # over a "collectives" group
    ddp.register_comm_hook(PersistentAllreduce(), persistent_allreduce_hook)

Why the cache is safe (checked against torch 2.13.0's reducer):

- A persistent request is keyed by ``bucket.index()`` and the bucket's numel and
  dtype, never by a data pointer. DDP computes its bucket assignment from the
  parameter order, the same on every rank, and when it rebuilds the buckets
  after the first step it broadcasts rank 0's assignment
  (``Reducer::sync_bucket_indices``), so a given index has the same size and
  dtype on every rank. The reducer launches buckets strictly in index order
  (``Reducer::mark_bucket_ready`` walks ``next_bucket_`` upwards), so every
  rank initialises and starts its requests in the same order, which MPI-4's
  collective ``MPI_Allreduce_init`` and the executor's tag slots both need.
- The request is bound to a private buffer per bucket, not to the bucket's
  own tensor: DDP reallocates its buckets when it rebuilds them, and an
  address-based test could see the same address again on one rank and not on
  another (the allocator decides), which would re-initialise on one rank only.
  The gradients are copied in (scaled by 1/world size, the same multiplication
  DDP's built-in hook does, so the results match it bit for bit) and the
  future's value is the private buffer, which DDP copies into the gradients.
- When a bucket's size or dtype changes (the rebuild after step 1), its old
  request is freed and a new one made, at the same point of the sequence on
  every rank; requests of bucket indices beyond the last bucket are freed
  when the last bucket is seen.
- The requests run on a Communicator of their own (split from the group's,
  through the group's queue, so that split is ordered with the group's other
  operations): only this hook starts collectives there, always from the
  autograd thread in bucket order, so nothing the group runs at the same time
  (``find_unused_parameters``'s extra all-reduce, a user's ``dist`` call) can
  interleave differently on different ranks.

The hook returns at once after starting the request; a waiter thread owned by
the state completes each bucket's future when its request completes (the
request's deadline is the group's timeout, so a peer that never answers gives
``CollectiveTimeout``, worded "Timed out", through DDP's ``backward()``).
"""

import threading
import weakref
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import InvalidArgument, InvalidType
from ._progress import Progress
from .process_group import ProcessGroupCollectives, _reducible, _torch_words

__all__ = ["PersistentAllreduce", "persistent_allreduce_hook"]


class _Bound:
    """One bucket's persistent all-reduce and the private buffer it is bound to."""

    __slots__ = ("numel", "dtype", "buffer", "request")

    def __init__(self, numel, dtype, buffer, request):
        self.numel = numel
        self.dtype = dtype
        self.buffer = buffer
        self.request = request


class PersistentAllreduce:
    """State of :func:`persistent_allreduce_hook` for one DDP model.

    Parameters
    ----------
    process_group : ProcessGroupCollectives, optional
        The "collectives" group the DDP model reduces over (DDP's
        ``process_group``); default: the default group. Every rank of the group
        must construct the state at the same point (it splits a Communicator off
        the group's).

    Attributes
    ----------
    inits : int
        Persistent requests made so far (one per bucket, again after a rebuild).
    starts : int
        Buckets all-reduced so far.

    Raises
    ------
    InvalidType
        When the group is not a "collectives" process group.

    Notes
    -----
    The state's requests, Communicator and waiter thread are released by
    :meth:`close`, and by ``dist.destroy_process_group`` of its group.
    """

    def __init__(self, process_group: Optional[dist.ProcessGroup] = None):
        pg = process_group if process_group is not None else dist.distributed_c10d._get_default_group()
        if not isinstance(pg, ProcessGroupCollectives):
            raise InvalidType(
                f"PersistentAllreduce needs a 'collectives' process group, got "
                f"{type(pg).__name__} (backend {_backend_name(pg)}); for other backends use "
                "DDP's default hook")
        self.process_group = pg
        self.world_size = pg.size()
        self.algorithm = pg._algo("allreduce")
        self.inits = 0
        self.starts = 0
        made = []
        # a collective on the group's Communicator: queued behind the group's other operations
        pg._progress.submit(lambda: made.append(pg.comm.split(0)) or [], blocking=True).wait()
        self.comm = made[0]
        self._buckets: dict = {}
        self._lock = threading.Lock()
        self._waiter = Progress(f"{pg._progress.name}-ddp-hook", async_op=True)
        self._closed = False
        hooks = pg.__dict__.setdefault("_hook_states", weakref.WeakSet())
        hooks.add(self)

    # ---- one bucket -----------------------------------------------------------------

    def allreduce(self, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        """Start the average of ``bucket``'s gradients; a future of the averaged tensor.

        Parameters
        ----------
        bucket : torch.distributed.GradBucket
            What DDP passes to a comm hook (``index()``, ``buffer()``, ``is_last()``).

        Returns
        -------
        torch.futures.Future
            Completed by the state's waiter thread with a tensor shaped like
            ``bucket.buffer()`` holding the mean over the group's ranks.
        """
        if self._closed:
            raise InvalidArgument("PersistentAllreduce: this state was closed (its process group "
                                  "was destroyed, or close() was called)")
        grads = bucket.buffer()
        index = int(bucket.index())
        with self._lock:
            bound = self._bind(index, grads)
            # DDP's built-in hook multiplies by 1/world size before its SUM (its rounding, too)
            torch.mul(grads, 1.0 / self.world_size, out=bound.buffer)
            request = bound.request.start()
            self.starts += 1
            if bucket.is_last():
                self._forget_after(index)
        result = bound.buffer

        def finish():
            request.wait()
            return result
        return self._waiter.submit(_torch_words(finish)).get_future()

    def _bind(self, index, grads):
        """The bucket's bound request, made anew when its size or dtype changed (every rank
        changes at the same bucket of the same step: DDP's buckets agree across ranks)."""
        if grads.device.type != "cpu" or grads.layout != torch.strided:
            raise InvalidArgument(f"PersistentAllreduce: bucket {index} is a {grads.layout} tensor "
                                  f"on {grads.device}; this backend takes dense CPU tensors")
        numel, dtype = grads.numel(), grads.dtype
        bound = self._buckets.get(index)
        if bound is not None and bound.numel == numel and bound.dtype == dtype:
            return bound
        if bound is not None:
            bound.request.free()
        buffer = torch.empty(numel, dtype=dtype)
        view = _reducible(buffer)
        request = self.comm.allreduce_init(view, out=view, op="sum", algorithm=self.algorithm)
        bound = self._buckets[index] = _Bound(numel, dtype, buffer, request)
        self.inits += 1
        return bound

    def _forget_after(self, last):
        for index in [i for i in self._buckets if i > last]:
            self._buckets.pop(index).request.free()

    # ---- lifetime -------------------------------------------------------------------

    @property
    def requests(self) -> dict:
        """{bucket index: PersistentRequest} of the buckets bound now."""
        return {i: b.request for i, b in self._buckets.items()}

    def close(self) -> None:
        """Wait for the buckets in flight, free every request, the Communicator and the thread."""
        if self._closed:
            return
        self._closed = True
        self._waiter.close(wait=True)
        with self._lock:
            for bound in self._buckets.values():
                try:
                    bound.request.free()
                except Exception:  # noqa: BLE001 - a failed request was already reported
                    pass
            self._buckets.clear()
        self.comm.free()

    def __del__(self):
        # a state dropped without close(): at least end its waiter thread (no MPI call here;
        # the requests and the Communicator are released by their own finalisers)
        try:
            if not self._closed:
                self._waiter.close(wait=False)
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self):
        state = "closed" if self._closed else f"{len(self._buckets)} buckets bound"
        return f"<collectives.torch.PersistentAllreduce {state}, {self.starts} starts>"


def persistent_allreduce_hook(state: PersistentAllreduce, bucket: dist.GradBucket
                              ) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: average ``bucket`` over the group with a persistent all-reduce.

    Register it with ``ddp.register_comm_hook(PersistentAllreduce(group), persistent_allreduce_hook)``.

    Parameters
    ----------
    state : PersistentAllreduce
        The hook's state (one per DDP model).
    bucket : torch.distributed.GradBucket
        The bucket DDP hands over.

    Returns
    -------
    torch.futures.Future
        Completes with the averaged bucket; DDP's ``backward()`` raises if the
        all-reduce fails (``CollectiveTimeout`` when a peer never answers).
    """
    if not isinstance(state, PersistentAllreduce):
        raise InvalidType(f"persistent_allreduce_hook: state must be a PersistentAllreduce, got "
                          f"{type(state).__name__}")
    return state.allreduce(bucket)


def _backend_name(pg):
    try:
        return pg.name()
    except Exception:  # noqa: BLE001
        return "unknown"


def close_hook_states(pg) -> None:
    """Close the PersistentAllreduce states of ``pg`` (called when the group shuts down)."""
    for state in list(pg.__dict__.get("_hook_states", ())):
        state.close()
