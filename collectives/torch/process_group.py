"""``ProcessGroupCollectives``: the torch.distributed process group of the "collectives" backend.

Each method checks its arguments in the calling thread (so bad input raises at
the call, before any message is sent), then hands the operation to the group's
progress engine (collectives.torch._progress) and returns a Work whose future
completes with the output tensors, which is what DDP reads.

Data goes to the library without copies: contiguous CPU tensors are passed to
the Communicator as they are (it views them as numpy arrays). Non-contiguous
tensors are copied into a contiguous buffer and the result copied back.
Operations that only move bytes (broadcast, all-gather, all-to-all) view every
tensor as bytes, so they accept any dtype, complex and bool included.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional, Union

import numpy as np
import torch
import torch.distributed as dist

from torch._C import _distributed_c10d as _c10d

from .. import Communicator
from .. import algorithms as _algorithms
from .. import dtypes as _dtypes
from .._mpicheck import load_core
from ..errors import CollectiveTimeout
from ._progress import P2PWork, Progress, completed_work

BACKEND_NAME = "collectives"

_RedOp = dist.ReduceOp.RedOpType
_OPS = {
    _RedOp.SUM: "sum",
    _RedOp.AVG: "avg",
    _RedOp.PRODUCT: "prod",
    _RedOp.MIN: "min",
    _RedOp.MAX: "max",
}

#: dtypes the reductions accept (the library's kernels); bool only with MIN and MAX
REDUCE_DTYPES = {
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.int8, torch.int16, torch.int32, torch.int64,
    torch.uint8, torch.uint16, torch.uint32, torch.uint64,
}
_FLOATING = {torch.float16, torch.bfloat16, torch.float32, torch.float64}

#: the collectives an algorithm can be forced for
_COLLECTIVES = _algorithms.COLLECTIVES

_core = load_core()
_UINT8_CODE = _dtypes.dtype_code(np.uint8)


def _rooted_program(what: str, p: int, me: int, root: int, nbytes: int) -> np.ndarray:
    """This rank's executor program of a one-step gather or scatter of ``nbytes`` per rank
    (bytes; the root's buffer holds the ranks' blocks in rank order)."""
    from ..schedule import BUF_IN, BUF_OUT, Ops, Schedule, StepGroup

    others = np.array([j for j in range(p) if j != root], dtype=np.int64)

    def build(i, ranks):
        ranks = np.asarray(ranks, dtype=np.int64)
        leaves = ranks[ranks != root]
        at_root = ranks[ranks == root]
        if what == "gather":
            parts = [Ops.send(leaves, root, BUF_IN, 0, nbytes)]
            if len(at_root):
                parts += [Ops.copy(at_root, BUF_IN, 0, BUF_OUT, root * nbytes, nbytes),
                          Ops.recv(np.full(len(others), root), others, BUF_OUT, others * nbytes, nbytes)]
        else:
            parts = [Ops.recv(leaves, root, BUF_OUT, 0, nbytes)]
            if len(at_root):
                parts += [Ops.copy(at_root, BUF_IN, root * nbytes, BUF_OUT, 0, nbytes),
                          Ops.send(np.full(len(others), root), others, BUF_IN, others * nbytes, nbytes)]
        return Ops.concat(parts)

    count = p * nbytes if (what == "scatter") else nbytes
    out_count = p * nbytes if (what == "gather") else nbytes
    sched = Schedule(what, "direct", p, count, out_count, [StepGroup(1, build, f"direct {what}")])
    return np.ascontiguousarray(sched.program(me))


@dataclass
class Options:
    """Options of a "collectives" process group (pass as ``pg_options=`` to
    ``init_process_group`` or ``new_group``).

    algorithm:
        None or "auto": the library's planner chooses per call. A name ("ring",
        "mpi", ...) forces it for every collective that has an algorithm of that
        name; ``"allreduce=ring,alltoall=bruck"`` or a dict picks per collective.
        Default: ``COLLECTIVES_TORCH_ALGORITHM``.
    async_op:
        True: a progress thread runs the operations (overlap with the backward
        pass); False: each runs in the calling thread. Default:
        ``COLLECTIVES_TORCH_ASYNC`` (1).
    timeout:
        Seconds a collective may wait for its peers before CollectiveTimeout;
        default ``COLLECTIVES_TIMEOUT``, else the process group's timeout.
    validate:
        Check before each call that all ranks passed the same shape, dtype and
        op (one extra small collective per call; ``COLLECTIVES_VALIDATE=1``).
    requests:
        True: every all-reduce is a library request (``Communicator.iallreduce``);
        an asynchronous one starts in the calling thread and ``Work.wait()``
        drives it there, without the hand-over to the progress thread (which
        still completes futures). Not faster today: starting a request costs
        more than the hand-over (the PyTorch guide has the figures). Every
        rank must pass the same value. Default: ``COLLECTIVES_TORCH_REQUESTS`` (0).
    """

    algorithm: Union[None, str, dict] = None
    async_op: Optional[bool] = None
    timeout: Optional[float] = None
    validate: bool = False
    requests: Optional[bool] = None


def parse_algorithm(spec) -> dict:
    """{collective: algorithm} from an Options.algorithm / COLLECTIVES_TORCH_ALGORITHM value."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, str):
        text = spec.strip()
        if text == "" or text.lower() == "auto":
            return {}
        if "=" not in text and ":" not in text:
            name = text.lower()
            out = {c: name for c in _COLLECTIVES if name == "mpi" or name in _names(c)}
            if not out:
                known = sorted({n for c in _COLLECTIVES for n in _names(c)} | {"mpi", "auto"})
                raise ValueError(
                    f"collectives backend: unknown algorithm {spec!r} (COLLECTIVES_TORCH_ALGORITHM "
                    f"or Options.algorithm); accepted: {', '.join(known)}, or per collective "
                    "like 'allreduce=ring,alltoall=bruck'")
            return out
        items = []
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, value = part.replace(":", "=").partition("=")
            if not sep:
                raise ValueError(f"collectives backend: cannot read {part!r} in algorithm spec "
                                 f"{spec!r}; write collective=algorithm, comma separated")
            items.append((key, value))
    else:
        raise TypeError(f"collectives backend: algorithm must be a string or a dict, got {spec!r}")
    out = {}
    for key, value in items:
        key = str(key).strip().lower().replace("all_reduce", "allreduce").replace(
            "all_to_all", "alltoall").replace("all_gather", "allgather")
        value = str(value).strip().lower()
        if key not in _COLLECTIVES:
            raise ValueError(f"collectives backend: unknown collective {key!r} in algorithm spec "
                             f"{spec!r}; accepted: {', '.join(_COLLECTIVES)}")
        if value != "auto" and value != "mpi" and value not in _names(key):
            raise ValueError(f"collectives backend: unknown {key} algorithm {value!r}; accepted: "
                             f"{', '.join(('auto', 'mpi') + tuple(_names(key)))}")
        if value != "auto":
            out[key] = value
    return out


def _names(collective):
    return _algorithms.algorithm_names(collective)


def _env_bool(name, default):
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    return text.strip().lower() not in ("0", "false", "no", "off")


def _bad(msg, cls=ValueError):
    return cls(f"collectives backend: {msg}")


class ProcessGroupCollectives(dist.ProcessGroup):
    """A torch.distributed process group over a ``collectives.Communicator``.

    Created by torch (``init_process_group(backend="collectives")``,
    ``new_group(..., backend="collectives")``), or directly from an mpi4py
    communicator: ``ProcessGroupCollectives(MPI.COMM_WORLD)``.
    """

    def __init__(self, mpi_comm, options: Optional[Options] = None, name: str = "0",
                 timeout: Optional[float] = None):
        options = options or Options()
        if options.timeout is not None:
            timeout = options.timeout
        elif timeout is None or os.environ.get("COLLECTIVES_TIMEOUT", "").strip():
            timeout = "default"  # COLLECTIVES_TIMEOUT, else the library's default deadline
        self.comm = Communicator(mpi_comm, timeout=timeout, validate=options.validate)
        super().__init__(self.comm.rank, self.comm.size)
        spec = options.algorithm if options.algorithm is not None else \
            os.environ.get("COLLECTIVES_TORCH_ALGORITHM")
        self.algorithms = parse_algorithm(spec)
        async_op = options.async_op if options.async_op is not None else \
            _env_bool("COLLECTIVES_TORCH_ASYNC", True)
        self._progress = Progress(name, async_op=async_op)
        self._requests = options.requests if options.requests is not None else \
            _env_bool("COLLECTIVES_TORCH_REQUESTS", False)
        self._size = self.comm.size
        self._rank = self.comm.rank
        # p2p requests are posted and progressed from the callers' threads, one at a time
        self._p2p_lock = threading.Lock()

    # ---- identity --------------------------------------------------------------------

    def getBackendName(self):
        return BACKEND_NAME

    # torch keeps a group's name and description in its C++ backend objects; this
    # group has none (it is its own backend), so it keeps what torch sets here.
    # DeviceMesh, DTensor, FSDP2 and the functional collectives find groups by name.
    def _set_group_name(self, name):
        self._group_name = str(name)

    @property
    def group_name(self):
        name = getattr(self, "_group_name", None)
        if name is None:
            raise _bad("this process group has no name yet: it is named when torch registers "
                       "it (init_process_group / new_group)", RuntimeError)
        return name

    # torch's Python code asks a group for its per-device backend object (FSDP2's
    # set_allocate_memory_from_process_group_for_comm, batch_isend_irecv's coalescing check,
    # the time estimator): this group is its own CPU backend and says what it does not offer.
    def _get_backend(self, device):
        kind = device.type if isinstance(device, torch.device) else str(torch.device(device).type)
        if kind != "cpu":
            raise _bad(f"the {BACKEND_NAME} backend runs CPU tensors only; it has no backend "
                       f"for device type {kind}", RuntimeError)
        return self

    supports_splitting = False
    supports_coalescing = False
    supports_time_estimate = False

    def supports_tensor_alloc(self, device):
        """No memory of its own: FSDP2 then allocates its staging buffers with torch.empty."""
        return False

    def _set_group_desc(self, desc):
        self._group_desc = str(desc)

    @property
    def group_desc(self):
        return getattr(self, "_group_desc", "undefined")

    def _algo(self, collective):
        return self.algorithms.get(collective, "auto")

    def __repr__(self):
        mode = "progress thread" if self._progress.async_op else "synchronous"
        return (f"<ProcessGroupCollectives rank {self._rank} of {self._size}, {mode}, "
                f"algorithms {self.algorithms or 'auto'}>")

    # ---- checks (calling thread, before anything is queued) ---------------------------

    def _tensor(self, t, what):
        if not isinstance(t, torch.Tensor):
            raise _bad(f"{what} must be a torch.Tensor, got {type(t).__name__}", TypeError)
        if t.device.type != "cpu":
            raise _bad(f"{what} is on {t.device}: this backend is CPU-only for now. Move the "
                       "tensor with .cpu(), or use backend='nccl' for GPU tensors "
                       "(or 'cpu:collectives,cuda:nccl' to combine them)")
        if t.is_sparse or t.layout != torch.strided:
            raise _bad(f"{what} has layout {t.layout}; only dense (strided) tensors are supported",
                       TypeError)
        return t

    def _single(self, tensors, what):
        if not isinstance(tensors, (list, tuple)) or len(tensors) != 1:
            n = len(tensors) if isinstance(tensors, (list, tuple)) else type(tensors).__name__
            raise _bad(f"{what}: expected a list of exactly one tensor, got {n}")
        return self._tensor(tensors[0], what)

    def _op(self, opts, t, what):
        red = getattr(opts, "reduceOp", None)
        code = getattr(red, "op", red)
        name = _OPS.get(code)
        if name is None:
            raise _bad(f"{what}: reduce op {code} is not supported; supported are SUM, AVG, "
                       "PRODUCT, MIN and MAX")
        if t.dtype == torch.bool:
            if name not in ("min", "max"):
                raise _bad(f"{what}: bool tensors reduce with MIN (logical and) or MAX (logical "
                           f"or) only, not {name.upper()}; convert to an integer dtype first",
                           TypeError)
        elif t.dtype not in REDUCE_DTYPES:
            raise _bad(f"{what}: dtype {t.dtype} is not supported for reductions; supported are "
                       "float16, bfloat16, float32, float64, int8-int64, uint8-uint64 (and bool "
                       "with MIN/MAX)", TypeError)
        if name == "avg" and t.dtype not in _FLOATING:
            raise _bad(f"{what}: AVG needs a floating dtype, the tensor is {t.dtype}; use SUM and "
                       "divide yourself")
        return name

    def _submit(self, fn, opts):
        return self._progress.submit(_torch_words(fn), blocking=not getattr(opts, "asyncOp", True))

    # ---- collectives -------------------------------------------------------------------

    def allreduce(self, tensors, opts=None, op=None, timeout=None):
        opts = _options(dist.AllreduceOptions, opts, op=op)
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        if len(tensors) != 1:
            return self.allreduce_coalesced(tensors, opts)
        if isinstance(tensors[0], torch.Tensor) and tensors[0].layout == torch.sparse_coo:
            return self._allreduce_sparse(tensors[0], opts)
        t = self._single(tensors, "all_reduce")
        op = self._op(opts, t, "all_reduce")
        if t.numel() == 0:
            return completed_work([t])
        comm, algo = self.comm, self._algo("allreduce")
        if self._requests:
            return self._allreduce_request(t, op, opts)

        def run():
            with _staged(t) as buf:
                r = _reducible(buf)
                comm.allreduce(r, op, out=r, algorithm=algo)
            return [t]
        return self._submit(run, opts)

    def _allreduce_request(self, t, op, opts):
        """``Options(requests=True)``: the all-reduce as a library request (see _progress).

        Every all-reduce of such a group is a request, blocking ones too: the executor gives
        requests other tags than blocking calls, so ranks must not choose differently."""
        comm, algo = self.comm, self._algo("allreduce")
        if getattr(opts, "asyncOp", True):
            # wait() drives the request in the waiting thread: no hand-over to the worker and back
            buf = t if t.is_contiguous() else t.contiguous()
            r = _reducible(buf)
            work = self._progress.start_request(
                lambda: comm.iallreduce(r, op, out=r, algorithm=algo), [t], _reworded,
                None if buf is t else (lambda: t.copy_(buf)))
            if work is not None:
                return work

        def run():
            with _staged(t) as buf:
                r = _reducible(buf)
                comm.iallreduce(r, op, out=r, algorithm=algo).wait()
            return [t]
        return self._submit(run, opts)

    def _allreduce_sparse(self, t, opts):
        """SUM of sparse COO tensors (as gloo offers): every rank's indices and values are
        all-gathered, and the sum is coalesced locally, then written into ``t``."""
        code = getattr(opts.reduceOp, "op", opts.reduceOp)
        if code != _RedOp.SUM:
            raise _bad(f"all_reduce: sparse tensors reduce with SUM only, not {code}")
        if t.device.type != "cpu":
            raise _bad(f"all_reduce: the sparse tensor is on {t.device}: this backend is CPU-only")
        comm, p = self.comm, self._size

        def run():
            c = t.coalesce()
            idx, val = c.indices().contiguous(), c.values().contiguous()
            nnz = np.array([idx.shape[1]], dtype=np.int64)
            counts = comm.allgather(nnz).reshape(-1)
            width = int(counts.max())
            # padded to the largest count, so that one equal-block all-gather carries them
            pidx = torch.zeros(idx.shape[0], width, dtype=idx.dtype)
            pidx[:, :idx.shape[1]] = idx
            pval = torch.zeros((width,) + tuple(val.shape[1:]), dtype=val.dtype)
            pval[:val.shape[0]] = val
            all_idx = torch.empty((p,) + tuple(pidx.shape), dtype=idx.dtype)
            all_val = torch.empty((p,) + tuple(pval.shape), dtype=val.dtype)
            if width:
                comm.allgather(_bytes(pidx), out=_bytes(all_idx))
                comm.allgather(_bytes(pval), out=_bytes(all_val))
            indices = torch.cat([all_idx[r][:, :int(counts[r])] for r in range(p)], dim=1)
            values = torch.cat([all_val[r][:int(counts[r])] for r in range(p)])
            total = torch.sparse_coo_tensor(indices, values, t.shape).coalesce()
            t.copy_(total)
            return [t]
        return self._submit(run, opts)

    def allreduce_coalesced(self, tensors, opts=None):
        opts = _options(dist.AllreduceCoalescedOptions, opts)
        tensors = [self._tensor(t, "all_reduce_coalesced") for t in tensors]
        if not tensors:
            return completed_work([])
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1:
            raise _bad(f"all_reduce_coalesced: all tensors must have one dtype, got {sorted(map(str, dtypes))}",
                       TypeError)
        op = self._op(opts, tensors[0], "all_reduce_coalesced")
        comm, algo = self.comm, self._algo("allreduce")

        def run():
            flat = torch.cat([t.reshape(-1) for t in tensors])
            if flat.numel():
                buf = _reducible(flat)
                comm.allreduce(buf, op, out=buf, algorithm=algo)
            _unpack(flat, tensors)
            return tensors
        return self._submit(run, opts)

    def broadcast(self, tensors, opts=None, root=None, timeout=None):
        opts = _options(dist.BroadcastOptions, opts, root=root)
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        t = self._single(tensors, "broadcast")
        root = int(opts.rootRank)
        self._check_rank(root, "broadcast", "src")
        if t.numel() == 0 or self._size == 1:
            return completed_work([t])
        comm, algo = self.comm, self._algo("broadcast")

        def run():
            with _staged(t) as buf:
                comm.broadcast(_bytes(buf), root=root, algorithm=algo)
            return [t]
        return self._submit(run, opts)

    def allgather(self, output_lists, input_tensors, opts=None, timeout=None):
        opts = _options(_c10d.AllgatherOptions, opts)
        if isinstance(input_tensors, torch.Tensor):  # torch's allgather(outputs, input) form
            output_lists, input_tensors = [output_lists], [input_tensors]
        inp = self._single(input_tensors, "all_gather")
        if len(output_lists) != 1:
            raise _bad(f"all_gather: expected one output list, got {len(output_lists)}")
        outs = list(output_lists[0])
        self._check_rank_list(outs, inp, "all_gather", "tensor_list", "input")
        comm, algo = self.comm, self._algo("allgather")

        def run():
            flat = torch.empty(self._size * inp.numel(), dtype=inp.dtype)
            if flat.numel():
                comm.allgather(_bytes(inp.contiguous()), out=_bytes(flat), algorithm=algo)
            _unpack(flat, outs)
            return outs
        return self._submit(run, opts)

    def all_gather_single(self, output, input, opts=None):
        if opts is None:
            opts = _c10d.AllgatherOptions()
        out = self._tensor(output, "all_gather_into_tensor: output")
        inp = self._tensor(input, "all_gather_into_tensor: input")
        if out.dtype != inp.dtype:
            raise _bad(f"all_gather_into_tensor: output dtype {out.dtype} differs from input "
                       f"dtype {inp.dtype}", TypeError)
        if out.numel() != self._size * inp.numel():
            raise _bad(f"all_gather_into_tensor: output has {out.numel()} elements, it needs "
                       f"group size {self._size} x input's {inp.numel()} = "
                       f"{self._size * inp.numel()}")
        if out.numel() == 0:
            return completed_work([out])
        comm, algo = self.comm, self._algo("allgather")

        def run():
            with _staged(out, fill=False) as o:
                comm.allgather(_bytes(_apart(inp, o)), out=_bytes(o), algorithm=algo)
            return [out]
        return self._submit(run, opts)

    _allgather_base = all_gather_single

    def reduce_scatter(self, output_tensors, input_lists, opts=None, op=None, timeout=None):
        opts = _options(dist.ReduceScatterOptions, opts, op=op)
        if isinstance(output_tensors, torch.Tensor):  # torch's reduce_scatter(output, inputs, op)
            output_tensors, input_lists = [output_tensors], [input_lists]
        out = self._single(output_tensors, "reduce_scatter: output")
        if len(input_lists) != 1:
            raise _bad(f"reduce_scatter: expected one input list, got {len(input_lists)}")
        ins = list(input_lists[0])
        if len(ins) != self._size:
            raise _bad(f"reduce_scatter: input_list has {len(ins)} tensors, the group has "
                       f"{self._size} ranks: pass one tensor per rank")
        for i, x in enumerate(ins):
            self._tensor(x, f"reduce_scatter: input_list[{i}]")
            if x.dtype != out.dtype:
                raise _bad(f"reduce_scatter: input_list[{i}] is {x.dtype}, the output "
                           f"{out.dtype}; they must match", TypeError)
        if ins[self._rank].numel() != out.numel():
            raise _bad(f"reduce_scatter: input_list[{self._rank}] (this rank's block) has "
                       f"{ins[self._rank].numel()} elements, the output has {out.numel()}; "
                       "they must match")
        op = self._op(opts, out, "reduce_scatter")
        sizes = [x.numel() for x in ins]
        if max(sizes) == 0:
            return completed_work([out])
        comm, algo = self.comm, self._algo("reduce_scatter")
        width = max(sizes)

        def run():
            if len(set(sizes)) == 1:
                flat = torch.cat([x.reshape(-1) for x in ins])
                self._reduce_scatter_flat(comm, flat, out, op, algo)
                return [out]
            # blocks of different sizes (gloo allows it): pad each to the largest, so the
            # library's equal-block reduce-scatter runs, then keep this rank's own length
            flat = torch.zeros(self._size, width, dtype=out.dtype)
            for j, x in enumerate(ins):
                flat[j, :sizes[j]] = x.reshape(-1)
            block = torch.empty(width, dtype=out.dtype)
            comm.reduce_scatter(_reducible(flat.reshape(-1)), op, out=_reducible(block),
                                algorithm=algo)
            out.copy_(block[:out.numel()].view(out.shape))
            return [out]
        return self._submit(run, opts)

    def reduce_scatter_single(self, output, input, opts=None):
        opts = _options(dist.ReduceScatterOptions, opts)
        out = self._tensor(output, "reduce_scatter_tensor: output")
        inp = self._tensor(input, "reduce_scatter_tensor: input")
        if out.dtype != inp.dtype:
            raise _bad(f"reduce_scatter_tensor: output dtype {out.dtype} differs from input "
                       f"dtype {inp.dtype}", TypeError)
        if inp.numel() != self._size * out.numel():
            raise _bad(f"reduce_scatter_tensor: input has {inp.numel()} elements, it must have "
                       f"group size {self._size} x output's {out.numel()} = "
                       f"{self._size * out.numel()}")
        op = self._op(opts, out, "reduce_scatter_tensor")
        if out.numel() == 0:
            return completed_work([out])
        comm, algo = self.comm, self._algo("reduce_scatter")

        def run():
            self._reduce_scatter_flat(comm, _apart(inp, out).reshape(-1), out, op, algo)
            return [out]
        return self._submit(run, opts)

    _reduce_scatter_base = reduce_scatter_single

    @staticmethod
    def _reduce_scatter_flat(comm, flat, out, op, algo):
        with _staged(out, fill=False) as o:
            comm.reduce_scatter(_reducible(flat), op, out=_reducible(o).reshape(-1), algorithm=algo)

    def all_to_all_single(self, output, input, output_split_sizes, input_split_sizes, opts=None,
                          timeout=None):
        opts = _options(dist.AllToAllOptions, opts)
        out = self._tensor(output, "all_to_all_single: output")
        inp = self._tensor(input, "all_to_all_single: input")
        if out.dtype != inp.dtype:
            raise _bad(f"all_to_all_single: output dtype {out.dtype} differs from input dtype "
                       f"{inp.dtype}", TypeError)
        p = self._size
        in_counts = self._splits(inp, input_split_sizes, "input")
        out_counts = self._splits(out, output_split_sizes, "output")
        equal = (not input_split_sizes and not output_split_sizes)
        if equal:
            if inp.numel() != out.numel():
                raise _bad(f"all_to_all_single: input has {inp.numel()} elements, output "
                           f"{out.numel()}; with equal splits they must match")
            if out.numel() == 0:
                return completed_work([out])
            comm, algo = self.comm, self._algo("alltoall")

            def run():
                with _staged(out, fill=False) as o:
                    comm.alltoall(_bytes(inp.contiguous()).reshape(p, -1),
                                  out=_bytes(o).reshape(p, -1), algorithm=algo)
                return [out]
            return self._submit(run, opts)
        item = inp.element_size()
        row_bytes = max(1, (inp.numel() // inp.shape[0] if inp.dim() and inp.shape[0] else 1) * item)

        def run_v():
            with _staged(out, fill=False) as o:
                self._alltoallv(_bytes(inp.contiguous()), _bytes(o), in_counts * item,
                                out_counts * item, "all_to_all_single", unit=row_bytes,
                                unit_name="rows")
            return [out]
        return self._submit(run_v, opts)

    alltoall_base = all_to_all_single

    def alltoall(self, output_tensors, input_tensors, opts=None):
        opts = _options(dist.AllToAllOptions, opts)
        p = self._size
        if len(output_tensors) != p or len(input_tensors) != p:
            raise _bad(f"all_to_all: expected {p} input and {p} output tensors (one per rank), "
                       f"got {len(input_tensors)} and {len(output_tensors)}")
        ins = [self._tensor(t, f"all_to_all: input_tensor_list[{i}]") for i, t in enumerate(input_tensors)]
        outs = [self._tensor(t, f"all_to_all: output_tensor_list[{i}]") for i, t in enumerate(output_tensors)]
        dtypes = {t.dtype for t in ins + outs}
        if len(dtypes) != 1:
            raise _bad(f"all_to_all: all tensors must have one dtype, got {sorted(map(str, dtypes))}",
                       TypeError)
        in_counts = np.array([t.numel() * t.element_size() for t in ins], dtype=np.int64)
        out_counts = np.array([t.numel() * t.element_size() for t in outs], dtype=np.int64)

        def run():
            send = torch.cat([_bytes(t.contiguous()) for t in ins])
            recv = torch.empty(int(out_counts.sum()), dtype=torch.uint8)
            self._alltoallv(send, recv, in_counts, out_counts, "all_to_all")
            _unpack(recv, outs)
            return outs
        return self._submit(run, opts)

    def _splits(self, t, splits, which):
        p = self._size
        rows = t.shape[0] if t.dim() else 1
        per_row = t.numel() // rows if rows else 0
        if not splits:
            if rows % p:
                raise _bad(f"all_to_all_single: {which} has {rows} rows along dim 0, not divisible "
                           f"by the group size {p}; pass {which}_split_sizes for uneven splits")
            return np.full(p, (rows // p) * per_row, dtype=np.int64)
        splits = [int(s) for s in splits]
        if len(splits) != p:
            raise _bad(f"all_to_all_single: {which}_split_sizes has {len(splits)} entries, the "
                       f"group has {p} ranks")
        if any(s < 0 for s in splits):
            raise _bad(f"all_to_all_single: {which}_split_sizes {splits} has a negative entry")
        if sum(splits) != rows:
            raise _bad(f"all_to_all_single: {which}_split_sizes {splits} sum to {sum(splits)}, but "
                       f"the {which} has {rows} rows along dim 0")
        return np.array(splits, dtype=np.int64) * per_row

    def _alltoallv(self, send, recv, send_bytes, recv_bytes, what, unit=1, unit_name="bytes"):
        """Uneven all-to-all in bytes: agree on the counts first, so a mismatch is an error on
        every rank instead of a truncated message or a hang."""
        comm = self.comm
        p = self._size
        told = comm.alltoall(np.ascontiguousarray(send_bytes, dtype=np.int64))
        bad = np.nonzero(told != recv_bytes)[0]
        flags = comm.allgather(np.array([len(bad)], dtype=np.int64))
        if flags.any():
            culprits = [int(r) for r in np.nonzero(flags)[0]]
            if len(bad):
                j = int(bad[0])
                detail = (f"this rank ({self._rank}) expects {int(recv_bytes[j]) // unit} {unit_name} "
                          f"from rank {j}, which sends {int(told[j]) // unit}")
            else:
                detail = f"rank(s) {culprits} received split sizes that do not match their peers'"
            raise _bad(f"{what}: split sizes differ between ranks: {detail}. Each rank's "
                       "output_split_sizes[j] must equal rank j's input_split_sizes[this rank]; "
                       "nothing was exchanged")
        self._exchange(send, recv, send_bytes, recv_bytes)

    def _exchange(self, send, recv, send_bytes, recv_bytes):
        """The uneven all-to-all itself: the library's executor (deadlines, peer notices)."""
        s = send.numpy() if send.numel() else np.empty(0, dtype=np.uint8)
        r = recv.numpy() if recv.numel() else np.empty(0, dtype=np.uint8)
        self.comm.alltoallv(s, send_bytes, recv_bytes, out=r, algorithm=self._algo("alltoallv"))

    def _rooted(self, what, send, recv, nbytes, root):
        """A gather (``nbytes`` from every rank into the root's ``recv``, in rank order) or a
        scatter (block j of the root's ``send`` to rank j's ``recv``) as one step of the
        executor: the root's messages to or from every other rank are in flight together, the
        root's own block is a copy and empty blocks move nothing; the Communicator's deadline
        and peer notices hold as for every executor call. On emulated links the all-to-all-v
        route prices each block."""
        comm = self.comm
        p, me = self._size, self._rank
        comm._ensure_usable()   # a group broken by an earlier failure refuses, as every call does
        if comm.emulate:
            self._rooted_alltoallv(what, send, recv, nbytes, root)
            return
        if p == 1 or nbytes == 0:   # nothing to send: the root's own block at most
            if nbytes:
                recv.copy_(send)
            return
        programs = self.__dict__.setdefault("_rooted_programs", {})
        key = (what, root, nbytes)
        program = programs.get(key)
        if program is None:
            program = programs[key] = _rooted_program(what, p, me, root, nbytes)
            if len(programs) > 64:
                programs.pop(next(iter(programs)))
        s = send.numpy() if send.numel() else np.empty(0, dtype=np.uint8)
        r = recv.numpy() if recv.numel() else np.empty(0, dtype=np.uint8)
        res = _core.run(comm._comm, program, s, r, comm._tmp, _UINT8_CODE, 0, comm.segment_bytes,
                        comm.inflight, comm._scratch, comm.timeout_or_zero, None, comm._notice)
        if res is not None:
            comm._check_result(res, what, "direct", 1)

    def _rooted_alltoallv(self, what, send, recv, nbytes, root):
        """The same gather or scatter as an all-to-all-v with zero blocks, counts agreed first
        (emulated links price every block of it)."""
        p, me = self._size, self._rank
        sc = np.zeros(p, dtype=np.int64)
        rc = np.zeros(p, dtype=np.int64)
        if what == "gather":
            sc[root] = nbytes
            rc[:] = nbytes if me == root else 0
        else:
            sc[:] = nbytes if me == root else 0
            rc[root] = nbytes
        self._alltoallv(send, recv, sc, rc, what)

    def barrier(self, opts=None, timeout=None):
        if isinstance(opts, timedelta):
            opts, timeout = None, opts
        opts = _options(dist.BarrierOptions, opts)
        seconds = _seconds(timeout if timeout is not None else getattr(opts, "timeout", None))
        comm = self.comm

        def run():
            comm.barrier(timeout=seconds)
            return []
        return self._submit(run, opts)

    def reduce(self, tensors, opts=None, op=None, root=None, timeout=None):
        if isinstance(opts, int) and not isinstance(opts, bool):  # torch's reduce(t, root, op)
            opts, root = None, opts
        opts = _options(dist.ReduceOptions, opts, op=op, root=root)
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        t = self._single(tensors, "reduce")
        op = self._op(opts, t, "reduce")
        root = int(opts.rootRank)
        self._check_rank(root, "reduce", "dst")
        if t.numel() == 0 or self._size == 1:
            return completed_work([t])
        comm, algo, me, p = self.comm, self._algo("reduce_scatter"), self._rank, self._size
        n = t.numel()
        width = -(-n // p)  # block of the reduce-scatter; the tail of the last block is padding

        def run():
            # a reduce-scatter, then the blocks gathered on the root: each rank sends
            # (p-1)/p of the tensor once, as much as an all-reduce's first half
            flat = torch.zeros(p * width, dtype=t.dtype)
            flat[:n] = t.reshape(-1)
            block = torch.empty(width, dtype=t.dtype)
            comm.reduce_scatter(_reducible(flat), op, out=_reducible(block), algorithm=algo)
            item = t.element_size()
            send_counts = np.zeros(p, dtype=np.int64)
            send_counts[root] = width * item
            recv_counts = np.full(p, width * item if me == root else 0, dtype=np.int64)
            whole = torch.empty(p * width if me == root else 0, dtype=t.dtype)
            self._exchange(_bytes(block), _bytes(whole), send_counts, recv_counts)
            if me == root:
                t.copy_(whole[:n].view(t.shape))
            return [t]
        return self._submit(run, opts)

    def _check_rank_list(self, tensors, mine, op, list_name, mine_name, where=""):
        """A list of one tensor per rank (all-gather, reduce-scatter, the root's gather and
        scatter lists), each with the element count and dtype of this rank's ``mine``."""
        if len(tensors) != self._size:
            raise _bad(f"{op}: {list_name} has {len(tensors)} tensors{where}, the group has "
                       f"{self._size} ranks: pass one tensor per rank")
        for i, t in enumerate(tensors):
            self._tensor(t, f"{op}: {list_name}[{i}]")
            if t.numel() != mine.numel() or t.dtype != mine.dtype:
                raise _bad(f"{op}: {list_name}[{i}] has {t.numel()} elements of {t.dtype}, "
                           f"the {mine_name} has {mine.numel()} of {mine.dtype}; they must match")

    def gather(self, output_lists, input_tensors, opts=None, root=None, timeout=None):
        if isinstance(input_tensors, torch.Tensor):  # torch's gather(outputs, input, root)
            output_lists, input_tensors = [output_lists], [input_tensors]
        if isinstance(opts, int) and not isinstance(opts, bool):
            opts, root = None, opts
        opts = _options(dist.GatherOptions, opts, root=root)
        inp = self._single(input_tensors, "gather")
        root = int(opts.rootRank)
        self._check_rank(root, "gather", "dst")
        p, me = self._size, self._rank
        outs = list(output_lists[0]) if output_lists else []
        if me == root:
            self._check_rank_list(outs, inp, "gather", "gather_list", "input", " on the root")
        nbytes = inp.numel() * inp.element_size()
        recv_counts = np.full(p, nbytes if me == root else 0, dtype=np.int64)

        def run():
            recv = torch.empty(int(recv_counts.sum()), dtype=torch.uint8)
            self._rooted("gather", _bytes(inp.contiguous()), recv, nbytes, root)
            if me == root:
                _unpack(recv, outs)
            return outs if me == root else [inp]
        return self._submit(run, opts)

    def scatter(self, output_tensors, input_lists, opts=None, root=None, timeout=None):
        if isinstance(output_tensors, torch.Tensor):  # torch's scatter(output, inputs, root)
            output_tensors, input_lists = [output_tensors], [input_lists]
        if isinstance(opts, int) and not isinstance(opts, bool):
            opts, root = None, opts
        opts = _options(dist.ScatterOptions, opts, root=root)
        out = self._single(output_tensors, "scatter")
        root = int(opts.rootRank)
        self._check_rank(root, "scatter", "src")
        p, me = self._size, self._rank
        ins = list(input_lists[0]) if input_lists else []
        if me == root:
            self._check_rank_list(ins, out, "scatter", "scatter_list", "output", " on the root")
        nbytes = out.numel() * out.element_size()

        def run():
            if me == root:
                send = torch.cat([_bytes(x.contiguous()) for x in ins])
            else:
                send = torch.empty(0, dtype=torch.uint8)
            with _staged(out, fill=False) as o:
                self._rooted("scatter", send, _bytes(o), nbytes, root)
            return [out]
        return self._submit(run, opts)

    # ---- coalesced forms ------------------------------------------------------------------

    def allgather_coalesced(self, output_lists, input_list, opts=None):
        """``all_gather_coalesced``: output_lists[r][i] receives rank r's input_list[i]."""
        opts = _options(_c10d.AllgatherOptions, opts)
        ins = [self._tensor(t, f"all_gather_coalesced: input_list[{i}]")
               for i, t in enumerate(input_list)]
        if len(output_lists) != self._size:
            raise _bad(f"all_gather_coalesced: {len(output_lists)} output lists, the group has "
                       f"{self._size} ranks: pass one list (shaped like the inputs) per rank")
        outs = [list(o) for o in output_lists]
        for r, row in enumerate(outs):
            if len(row) != len(ins):
                raise _bad(f"all_gather_coalesced: output_tensor_lists[{r}] has {len(row)} "
                           f"tensors for {len(ins)} inputs")
            for i, (o, x) in enumerate(zip(row, ins)):
                self._tensor(o, f"all_gather_coalesced: output_tensor_lists[{r}][{i}]")
                if o.numel() != x.numel() or o.dtype != x.dtype:
                    raise _bad(f"all_gather_coalesced: output_tensor_lists[{r}][{i}] has "
                               f"{o.numel()} elements of {o.dtype}, input_list[{i}] "
                               f"{x.numel()} of {x.dtype}; they must match")
        return self._gather_pieces(ins, outs, opts)

    def allgather_into_tensor_coalesced(self, outputs, inputs, opts=None):
        """Several ``all_gather_into_tensor`` in one exchange."""
        opts = _options(_c10d.AllgatherOptions, opts)
        ins, outs = self._coalesced_pairs(outputs, inputs, "all_gather_into_tensor_coalesced",
                                          gather=True)
        pieces = [[o.reshape(-1).view(self._size, -1)[r] for o in outs]
                  for r in range(self._size)]
        return self._gather_pieces(ins, pieces, opts, result=outs)

    all_gather_single_coalesced = allgather_into_tensor_coalesced

    def _gather_pieces(self, ins, pieces, opts, result=None):
        """All-gather the inputs' bytes back to back; pieces[r] are the tensors rank r's copies
        of the inputs land in (views written through, or tensors copied into)."""
        comm, algo, p = self.comm, self._algo("allgather"), self._size
        result = [t for row in pieces for t in row] if result is None else result
        if sum(t.numel() for t in ins) == 0:
            return completed_work(result)

        def run():
            send = torch.cat([_bytes(t.contiguous()) for t in ins])
            flat = torch.empty(p * send.numel(), dtype=torch.uint8)
            comm.allgather(send, out=flat, algorithm=algo)
            for r, row in enumerate(pieces):
                _unpack(flat[r * send.numel():(r + 1) * send.numel()], row)
            return result
        return self._submit(run, opts)

    def reduce_scatter_tensor_coalesced(self, outputs, inputs, opts=None):
        """Several ``reduce_scatter_tensor`` (one dtype) in one reduce-scatter."""
        opts = _options(dist.ReduceScatterOptions, opts)
        ins, outs = self._coalesced_pairs(outputs, inputs, "reduce_scatter_tensor_coalesced",
                                          gather=False)
        if not outs:
            return completed_work([])
        dtypes = {t.dtype for t in outs}
        if len(dtypes) != 1:
            raise _bad("reduce_scatter_tensor_coalesced: all tensors must have one dtype, got "
                       f"{sorted(map(str, dtypes))}", TypeError)
        op = self._op(opts, outs[0], "reduce_scatter_tensor_coalesced")
        comm, algo, p = self.comm, self._algo("reduce_scatter"), self._size
        if sum(t.numel() for t in outs) == 0:
            return completed_work(outs)

        def run():
            # rank r's block of the one reduce-scatter holds block r of every input, in order
            flat = torch.cat([x.contiguous().reshape(p, -1) for x in ins], dim=1).reshape(-1)
            block = torch.empty(flat.numel() // p, dtype=flat.dtype)
            comm.reduce_scatter(_reducible(flat), op, out=_reducible(block), algorithm=algo)
            _unpack(block, outs)
            return outs
        return self._submit(run, opts)

    reduce_scatter_single_coalesced = reduce_scatter_tensor_coalesced

    def _coalesced_pairs(self, outputs, inputs, what, gather):
        outs = [self._tensor(t, f"{what}: outputs[{i}]") for i, t in enumerate(outputs)]
        ins = [self._tensor(t, f"{what}: inputs[{i}]") for i, t in enumerate(inputs)]
        if len(outs) != len(ins):
            raise _bad(f"{what}: {len(outs)} outputs for {len(ins)} inputs; they pair up")
        for i, (o, x) in enumerate(zip(outs, ins)):
            big, small = (o, x) if gather else (x, o)
            if o.dtype != x.dtype:
                raise _bad(f"{what}: outputs[{i}] is {o.dtype}, inputs[{i}] {x.dtype}", TypeError)
            if big.numel() != self._size * small.numel():
                raise _bad(f"{what}: outputs[{i}] has {o.numel()} elements and inputs[{i}] "
                           f"{x.numel()}; the {'output' if gather else 'input'} must hold group "
                           f"size {self._size} x the other's")
        return ins, outs

    # ---- point-to-point ----------------------------------------------------------------

    def send(self, tensors, dstRank, tag=0):
        t = self._single(tensors, "send")
        dst = int(dstRank)
        self._check_rank(dst, "send", "dst")
        buf = _bytes(t.contiguous())
        tag = self._tag(tag, "send")
        return self._p2p(lambda: self.comm.isend(buf.numpy(), dst, tag), [t])

    def recv(self, tensors, srcRank, tag=0):
        t = self._single(tensors, "recv")
        src = int(srcRank)
        self._check_rank(src, "recv", "src")
        return self._recv(t, src, tag)

    def recv_anysource(self, tensors, tag=0):
        t = self._single(tensors, "recv")
        return self._recv(t, "any", tag)

    def _recv(self, t, source, tag):
        tag = self._tag(tag, "recv")
        if not t.is_contiguous():
            raise _bad("recv: the tensor must be contiguous (the message is written into it "
                       "after the call returns)")
        return self._p2p(lambda: self.comm.irecv(_bytes(t).numpy(), source, tag), [t])

    def _tag(self, tag, what):
        tag = int(tag)
        if tag < 0:
            raise _bad(f"{what}: tag {tag} is negative")
        return tag

    def _p2p(self, post, result):
        """Post a message now (point-to-point does not queue behind collectives: it travels
        on its own channel); the Work waits for it with the Communicator's deadline."""
        if self._progress._closed:
            raise _bad(f"process group {self._progress.name} was shut down "
                       "(destroy_process_group); create a new one", RuntimeError)
        with self._p2p_lock:
            request = post()
        return P2PWork(request, result, self._p2p_lock, _reworded)

    def _start_coalescing(self, device=None):
        raise _bad("_start_coalescing is not implemented by this backend (it has coalesced "
                   "methods: all_reduce_coalesced, all_gather_into_tensor_coalesced, "
                   "reduce_scatter_tensor_coalesced)", NotImplementedError)

    _end_coalescing = _start_coalescing

    def monitored_barrier(self, timeout=None, wait_all_ranks=False):
        self.barrier(timeout=timeout).wait()

    def _check_rank(self, r, what, name):
        if not 0 <= r < self._size:
            raise _bad(f"{what}: {name} rank {r} is not in the group of {self._size} ranks")

    # ---- lifetime ------------------------------------------------------------------------

    def shutdown(self):
        """Finish queued operations, stop the progress thread, free the communicator."""
        from .ddp import close_hook_states

        close_hook_states(self)   # DDP hook states' requests and Communicators go with the group
        self._progress.close(wait=True)
        self.comm.free()

    def abort(self):
        self._progress.close(wait=False)

    def __del__(self):
        try:
            self._progress.close(wait=False)
        except Exception:
            pass


@contextmanager
def _staged(t, *, fill=True, write_back=True):
    """A contiguous tensor the library may write, standing for ``t``.

    A contiguous ``t`` is yielded as it is. A non-contiguous one is staged in a
    contiguous buffer (holding ``t``'s values when ``fill``, else uninitialised:
    for outputs the call overwrites whole) whose contents are copied back into
    ``t`` when the block ends without an error. With ``write_back=False`` the
    buffer is always a private copy of ``t`` and ``t`` is left as it was.
    """
    if not write_back:
        yield t.clone(memory_format=torch.contiguous_format)
        return
    if t.is_contiguous():
        yield t
        return
    buf = t.contiguous() if fill else torch.empty(t.shape, dtype=t.dtype)
    yield buf
    t.copy_(buf)


def _apart(x, out):
    """``x`` contiguous and in memory of its own: a copy when it shares storage with ``out``
    (torch allows an all-gather's input to be a slice of its output, as FSDP2 passes it)."""
    if x.numel() and out.numel() and x.untyped_storage().data_ptr() == out.untyped_storage().data_ptr():
        return x.clone(memory_format=torch.contiguous_format)
    return x.contiguous()


def _unpack(flat, tensors):
    """Copy consecutive pieces of the contiguous ``flat`` into ``tensors``, in order.

    ``flat`` has the tensors' dtype, or is bytes (uint8) holding them back to back.
    """
    offset = 0
    for t in tensors:
        n = t.numel() * t.element_size() // flat.element_size()
        t.copy_(_unview(flat[offset:offset + n], t.dtype).view(t.shape))
        offset += n


def _bytes(t):
    """A contiguous tensor viewed as flat bytes (no copy)."""
    flat = t.reshape(-1)
    return flat if flat.dtype == torch.uint8 else flat.view(torch.uint8)


def _reducible(t):
    """A tensor the library reduces: bool becomes uint8 (MIN/MAX only), others as they are."""
    return t.view(torch.uint8) if t.dtype == torch.bool else t


def _unview(t, dtype):
    return t.view(dtype) if t.dtype != dtype else t


def _options(kind, opts, *, op=None, root=None):
    """torch's options object for a call made in any of torch's forms.

    ``pg.allreduce(t)``, ``pg.allreduce([t], ReduceOp.MAX)``, ``pg.broadcast(t, root=1)``,
    ``pg.barrier(timedelta(...))``: the C++ group's overloads, which a Python group
    shadows, so they are read here.
    """
    if isinstance(opts, (dist.ReduceOp, _RedOp)):
        opts, op = None, opts
    elif isinstance(opts, int) and not isinstance(opts, bool):
        opts, root = None, opts
    elif isinstance(opts, timedelta):
        opts = None
    if opts is None:
        opts = kind()
    if op is not None:
        opts.reduceOp = op if isinstance(op, dist.ReduceOp) else dist.ReduceOp(op)
    if root is not None:
        opts.rootRank = int(root)
    return opts


def _seconds(timeout):
    """Seconds of a torch timeout, None when unset (torch's unset timeout is negative)."""
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    return seconds if seconds > 0 else None


class _TimedOut(CollectiveTimeout):
    """A CollectiveTimeout worded as torch's checks expect ("Timed out"), same attributes."""


def _reworded(exc):
    if isinstance(exc, _TimedOut) or not isinstance(exc, CollectiveTimeout):
        return exc
    new = _TimedOut(f"collectives backend: Timed out in {exc.collective}: {exc}", collective=exc.collective,
                    algorithm=exc.algorithm, step=exc.step, peers=exc.peers,
                    bytes_outstanding=exc.bytes_outstanding, elapsed=exc.elapsed)
    new.__cause__ = exc
    return new


def _torch_words(fn):
    """``fn`` with a CollectiveTimeout it raises reworded by ``_reworded``."""
    def run():
        try:
            return fn()
        except CollectiveTimeout as exc:
            raise _reworded(exc) from exc
    return run
