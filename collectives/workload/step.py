"""One training step of a :class:`~collectives.workload.Model` on a
:class:`~collectives.workload.Layout`.

:class:`TrainingStep` turns a model, a layout and a batch into what each rank
computes and sends: per pipeline stage, the program of one micro-batch's
forward and backward pass (compute intervals and collectives in order), the
pipeline sends between stages, and the data-parallel gradient buckets. It does
no pricing; :func:`collectives.workload.simulate` prices it on a topology.

Notation: ``b`` micro-batch (sequences), ``s`` sequence length, ``h`` hidden
size, ``B`` bytes per element of ``dtype``, ``t``/``p``/``d``/``e`` the
tensor-, pipeline-, data- and expert-parallel degrees, ``k`` experts per
token, ``m = global_batch / (micro_batch * d)`` micro-batches per step.
Sizes are each rank's buffer, as :func:`collectives.model.predict` takes them.

Tensor parallelism (Shoeybi et al., "Megatron-LM", 2019, section 3): the
attention block and the FFN each end in a row-parallel matmul followed by an
all-reduce of the activations, ``b*s*h*B`` bytes; the backward pass has the
conjugate all-reduce before each column-parallel matmul. Per layer and
micro-batch: 2 all-reduces forward, 2 backward (the vocabulary-parallel
embedding's and cross-entropy's small all-reduces are left out). With
sequence parallelism (Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
Models", 2022, section 4.2.2) each all-reduce becomes an all-gather of the
``b*s*h*B/t`` sequence shard before the block and a reduce-scatter of
``b*s*h*B`` after it: the same bytes on the wire, in two collectives.

Pipeline parallelism (Narayanan et al., "Efficient Large-Scale Language Model
Training on GPU Clusters Using Megatron-LM", SC 2021, sections 2.2 and 4.1):
layers split into ``p`` stages of consecutive layers (when ``p`` does not
divide the layer count the first ``L mod p`` stages get one more); the first
stage also holds the embedding, the last the output head. Each micro-batch
sends its activations ``b*s*h*B/t`` from every rank of a stage to the same
tensor-parallel rank of the next stage (the scatter/gather optimisation; the
all-gather inside the receiving node is left out) and the gradients back the
same way. Under 1F1B the step takes ``(m + p - 1)`` times the slowest stage's
forward, backward and sends of one micro-batch: ``m`` of them are work, ``p - 1``
the bubble (bubble fraction ``(p - 1) / m`` of the work, Narayanan et al.
2021, section 2.2.1).

Expert parallelism (Lepikhin et al., "GShard", 2020; Fedus et al., "Switch
Transformers", 2021; Megatron-LM's MoE layers): each MoE layer dispatches every
token's hidden vector to its ``k`` experts by an all-to-all among the ``e``
ranks of an expert-parallel group, and combines the results by a second one:
``b*s*k*h*B/t`` bytes per rank each (tokens split over the tensor-parallel
ranks; routing assumed balanced). Backward: the same two all-to-alls. Experts
are tensor-parallel like the dense FFN (expert tensor parallelism = ``t``).

Data parallelism: every rank holds ``P_dense/t`` dense parameters of its
stage and ``P_expert/(t*e)`` expert parameters (its ``E/e`` experts).
Gradients (``B`` bytes each) are reduced in buckets of ``bucket_bytes`` (25 MiB,
PyTorch DDP's default: Li et al., "PyTorch Distributed", VLDB 2020), a bucket
launched as soon as the backward pass of its last layer is done, overlapping
the rest of the backward pass of the last micro-batch (Megatron-LM's
``overlap_grad_reduce``). Dense gradients reduce over the ``d`` data-parallel
ranks, expert gradients over the ``d/e`` expert-data-parallel ones.
``sharding`` (Rajbhandari et al., "ZeRO", SC 2020):

* ``"none"``: all-reduce of every bucket;
* ``"zero1"``, ``"zero2"`` (optimizer states, and gradients, sharded): a
  reduce-scatter of every bucket, then after the optimizer step an all-gather
  of the updated ``B``-byte parameters (``bucket/d`` per rank), not
  overlapped -- the same ``2x`` volume as an all-reduce, so the two differ in
  memory only;
* ``"fsdp"`` (ZeRO-3, Zhao et al., "PyTorch FSDP", VLDB 2023): parameters
  sharded too: every layer's parameters are all-gathered before its forward
  and again before its backward in every micro-batch (prefetched: hidden
  behind the previous layer's compute, the excess exposed), and its gradients
  reduce-scattered during the last micro-batch's backward.

Compute: a layer's forward FLOPs per token (see :mod:`.models`) times
``b*s / t`` per rank, over the accelerator's achieved FLOP/s; backward twice
that, plus one more forward with ``recompute="full"`` (the activation
recomputation of Korthikanti et al. 2022, which MFU does not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from ..errors import InvalidArgument
from ..units import parse_size
from .accelerators import Accelerator, accelerator as _accelerator
from .layout import Layout
from .models import Model

__all__ = ["TrainingStep", "Collective", "Compute", "Ready", "Bucket", "DTYPES", "SHARDINGS"]

#: bytes per element of the dtypes a step accepts
DTYPES = {"bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "fp32": 4, "float32": 4,
          "fp8": 1, "float8": 1}
SHARDINGS = ("none", "zero1", "zero2", "fsdp")
RECOMPUTE = ("none", "full")
_MIB = 1 << 20


@dataclass(frozen=True)
class Collective:
    """One collective call of the step, as every group of ``dim`` runs it.

    ``collective`` is a registry name ("allreduce", "reduce_scatter",
    "allgather", "alltoall") or "sendrecv" (pipeline point-to-point:
    ``direction`` +1 sends stage i -> i+1, -1 the reverse); ``nbytes`` each
    rank's buffer (for sendrecv, the bytes each rank sends), a whole number
    of ``itemsize``-byte elements.
    """

    dim: str
    collective: str
    nbytes: int
    label: str = ""
    direction: int = 0
    itemsize: int = 2


@dataclass(frozen=True)
class Compute:
    """A compute interval of one rank: ``flops`` (model FLOPs) taking ``seconds``."""

    seconds: float
    flops: float
    label: str = ""


@dataclass(frozen=True)
class Ready:
    """Marks the end of layer ``layer``'s backward pass: its gradients are ready."""

    layer: int


@dataclass(frozen=True)
class Bucket:
    """A data-parallel gradient bucket, launched once layer ``after`` is done (backward)."""

    after: int
    collective: Collective


def _divisors(n: int) -> str:
    d = [x for x in range(1, n + 1) if n % x == 0]
    return ", ".join(map(str, d[:16])) + (", ..." if len(d) > 16 else "")


def _count(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise InvalidArgument(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class TrainingStep:
    """One optimizer step of ``model`` trained on ``layout``.

    Parameters
    ----------
    model : Model
    layout : Layout
    global_batch : int
        Sequences per step, a multiple of ``micro_batch * layout.dp``.
    micro_batch : int
        Sequences per micro-batch on one data-parallel replica.
    dtype : str
        Activations, parameters and gradients: ``"bf16"`` (default),
        ``"fp16"``, ``"fp32"``, ``"fp8"``.
    accelerator : Accelerator, str or float
        Peak FLOP/s and efficiency (a name from
        :data:`~collectives.workload.ACCELERATORS`, default ``"h100"``).
    sequence_parallel : bool
        Tensor-parallel all-reduces as reduce-scatter + all-gather.
    bucket_bytes : int or str
        Gradient bucket size (default 25 MiB).
    sharding : {"none", "zero1", "zero2", "fsdp"}
        Data-parallel sharding (see the module docstring).
    recompute : {"none", "full"}
        Full activation recomputation adds one forward pass to each backward.
    grad_dtype : str, optional
        Gradient dtype for the data-parallel collectives (default ``dtype``).

    Raises
    ------
    collectives.errors.InvalidArgument
        tp not dividing the heads (or the KV heads not splitting evenly), ep
        not dividing the experts, ep > 1 on a dense model, pp larger than
        the layer count, a micro-batch that does not divide the batch, an
        unknown dtype or sharding; all before any pricing.
    """

    def __init__(self, model, layout, global_batch, micro_batch, dtype="bf16", accelerator="h100",
                 sequence_parallel=False, bucket_bytes=25 * _MIB, sharding="none",
                 recompute="none", grad_dtype=None):
        if not isinstance(model, Model):
            raise InvalidArgument(f"model must be a collectives.workload.Model (or "
                                  f"workload.preset(name)), got {type(model).__name__}")
        if not isinstance(layout, Layout):
            raise InvalidArgument(f"layout must be a collectives.workload.Layout, got "
                                  f"{type(layout).__name__}")
        self.model, self.layout = model, layout
        t, p, d, e = layout.tp, layout.pp, layout.dp, layout.ep
        if model.heads % t:
            raise InvalidArgument(f"tp={t} must divide the {model.heads} attention heads of "
                                  f"{model.name}; accepted: {_divisors(model.heads)}")
        if model.kv_heads % t and t % model.kv_heads:
            raise InvalidArgument(f"tp={t} must divide the {model.kv_heads} KV heads of "
                                  f"{model.name} or be a multiple of them (KV heads replicated)")
        if e > 1 and not model.is_moe:
            raise InvalidArgument(f"ep={e} needs a mixture-of-experts model; {model.name} is dense "
                                  "(use ep=1)")
        if model.experts % e:
            raise InvalidArgument(f"ep={e} must divide the {model.experts} experts of "
                                  f"{model.name}; accepted: {_divisors(model.experts)}")
        if p > model.layers:
            raise InvalidArgument(f"pp={p} exceeds the {model.layers} layers of {model.name}: a "
                                  f"stage needs at least one layer (accepted: 1..{model.layers})")
        self.global_batch = _count("global_batch", global_batch)
        self.micro_batch = _count("micro_batch", micro_batch)
        per_step = self.micro_batch * d
        if self.global_batch % per_step:
            raise InvalidArgument(f"global_batch={self.global_batch} must be a multiple of "
                                  f"micro_batch * dp = {self.micro_batch} * {d} = {per_step} "
                                  f"(every data-parallel replica runs whole micro-batches)")
        self.num_microbatches = self.global_batch // per_step
        self.itemsize = self._dtype("dtype", dtype)
        self.dtype = str(dtype).lower()
        self.grad_itemsize = self.itemsize if grad_dtype is None else self._dtype("grad_dtype",
                                                                                  grad_dtype)
        self.accelerator: Accelerator = _accelerator(accelerator)
        if not isinstance(sequence_parallel, bool):
            raise InvalidArgument(f"sequence_parallel must be True or False, got "
                                  f"{sequence_parallel!r}")
        self.sequence_parallel = sequence_parallel
        bb = parse_size(bucket_bytes, name="bucket_bytes") if isinstance(bucket_bytes, str) \
            else bucket_bytes
        self.bucket_bytes = _count("bucket_bytes", bb)
        if self.bucket_bytes % self.grad_itemsize:
            raise InvalidArgument(f"bucket_bytes={self.bucket_bytes} must be a whole number of "
                                  f"{self.grad_itemsize}-byte gradients")
        if sharding not in SHARDINGS:
            raise InvalidArgument(f"unknown sharding {sharding!r}: accepted are "
                                  f"{', '.join(SHARDINGS)}")
        self.sharding = sharding
        if recompute not in RECOMPUTE:
            raise InvalidArgument(f"unknown recompute {recompute!r}: accepted are "
                                  f"{', '.join(RECOMPUTE)}")
        self.recompute = recompute
        # stages: consecutive layers, the first L mod p stages one layer longer
        base, extra = divmod(model.layers, p)
        self.stage_layers = []
        start = 0
        for s in range(p):
            n = base + (s < extra)
            self.stage_layers.append(range(start, start + n))
            start += n

    @staticmethod
    def _dtype(name, dtype):
        key = str(dtype).lower()
        if key not in DTYPES:
            raise InvalidArgument(f"unknown {name} {dtype!r}: accepted are {', '.join(DTYPES)}")
        return DTYPES[key]

    def __repr__(self):
        return (f"TrainingStep({self.model.name}, {self.layout!r}, "
                f"global_batch={self.global_batch}, micro_batch={self.micro_batch}, "
                f"dtype={self.dtype!r})")

    # ------------------------------------------------------------------ sizes
    @property
    def tokens(self) -> int:
        """Tokens per step: ``global_batch * seq_len``."""
        return self.global_batch * self.model.seq_len

    @property
    def model_flops(self) -> float:
        """Model FLOPs of the whole step (MFU's numerator: no recomputation)."""
        return self.model.flops_per_token * self.tokens

    @property
    def activation_bytes(self) -> int:
        """``b*s*h*B``: one micro-batch's activations on one tensor-parallel group."""
        m = self.model
        return self.micro_batch * m.seq_len * m.hidden * self.itemsize

    @property
    def dispatch_bytes(self) -> int:
        """``b*s*k*h*B/t``: what one rank sends in one MoE all-to-all."""
        m, lay = self.model, self.layout
        tokens = -(-self.micro_batch * m.seq_len // lay.tp)
        elements = tokens * m.experts_per_token * m.hidden
        # the all-to-all needs ep equal blocks: round up to a multiple of ep elements
        return -(-elements // lay.ep) * lay.ep * self.itemsize

    @property
    def p2p_bytes(self) -> int:
        """``b*s*h*B/t``: what one rank sends to the next stage per micro-batch."""
        return -(-self.activation_bytes // self.layout.tp // self.itemsize) * self.itemsize

    def _head_params(self) -> int:
        """Output-head parameters the last stage holds: its own matrix, or with tied
        embeddings none on one stage and a copy of the embedding on several (Megatron-LM)."""
        m = self.model
        if m.head_params:
            return m.head_params
        return m.embedding_params if self.layout.pp > 1 else 0

    def stage_params(self, stage: int) -> tuple[int, int]:
        """``(dense, expert)`` parameters one rank of ``stage`` holds."""
        m, lay = self.model, self.layout
        dense = expert = 0
        for i in self.stage_layers[stage]:
            de, ex = m.layer_params(i)
            dense += de
            expert += ex
        if stage == 0:
            dense += m.embedding_params
        if stage == lay.pp - 1:
            dense += self._head_params()
        return -(-dense // lay.tp), -(-expert // (lay.tp * lay.ep))

    # ------------------------------------------------------------------ programs
    def _tp_calls(self, where):
        """The tensor-parallel collectives of one block (attention or FFN), in order."""
        t = self.layout.tp
        if t == 1:
            return [], []
        a = self.activation_bytes
        if self.sequence_parallel:
            shard = -(-a // t // self.itemsize) * self.itemsize
            return ([Collective("tp", "allgather", shard, f"{where} all-gather", 0, self.itemsize)],
                    [Collective("tp", "reduce_scatter", shard * t, f"{where} reduce-scatter", 0,
                                self.itemsize)])
        return [], [Collective("tp", "allreduce", a, f"{where} all-reduce", 0, self.itemsize)]

    def _compute(self, flops_per_token, label, factor=1.0):
        f = flops_per_token * self.micro_batch * self.model.seq_len / self.layout.tp * factor
        return Compute(self.accelerator.seconds(f), f, label)

    def forward_program(self, stage: int) -> list:
        """One micro-batch's forward pass on one rank of ``stage``: Compute and Collective items."""
        m, lay = self.model, self.layout
        prog = []
        for i in self.stage_layers[stage]:
            attn, ffn = m.layer_flops(i)
            before, after = self._tp_calls("attention")
            prog += before + [self._compute(attn, f"layer {i} attention")] + after
            before, after = self._tp_calls("ffn")
            prog += before
            if m.is_moe_layer(i) and lay.ep > 1:
                a2a = self.dispatch_bytes
                prog += [Collective("ep", "alltoall", a2a, "dispatch", 0, self.itemsize),
                         self._compute(ffn, f"layer {i} experts"),
                         Collective("ep", "alltoall", a2a, "combine", 0, self.itemsize)]
            else:
                kind = "experts" if m.is_moe_layer(i) else "ffn"
                prog.append(self._compute(ffn, f"layer {i} {kind}"))
            prog += after
        if stage == lay.pp - 1:
            prog.append(self._compute(m.head_flops, "output head"))
        return prog

    def backward_program(self, stage: int) -> list:
        """One micro-batch's backward pass on ``stage``, with a :class:`Ready` after each layer."""
        m, lay = self.model, self.layout
        factor = 2.0 + (1.0 if self.recompute == "full" else 0.0)
        prog = []
        if stage == lay.pp - 1:
            prog.append(self._compute(m.head_flops, "output head backward", factor))
        for i in reversed(self.stage_layers[stage]):
            attn, ffn = m.layer_flops(i)
            # the conjugates of the forward's collectives, in reverse order
            before, after = self._tp_calls("ffn backward")
            prog += before
            if m.is_moe_layer(i) and lay.ep > 1:
                a2a = self.dispatch_bytes
                prog += [Collective("ep", "alltoall", a2a, "combine backward", 0, self.itemsize),
                         self._compute(ffn, f"layer {i} experts backward", factor),
                         Collective("ep", "alltoall", a2a, "dispatch backward", 0, self.itemsize)]
            else:
                prog.append(self._compute(ffn, f"layer {i} ffn backward", factor))
            prog += after
            before, after = self._tp_calls("attention backward")
            prog += before + [self._compute(attn, f"layer {i} attention backward", factor)] + after
            prog.append(Ready(i))
        if stage == 0:
            prog.append(Ready(-1))        # the embedding
        return prog

    def pipeline_calls(self) -> list:
        """The pipeline sends of one micro-batch: activations forward, gradients backward."""
        if self.layout.pp == 1:
            return []
        n = self.p2p_bytes
        return [Collective("pp", "sendrecv", n, "activations", +1, self.itemsize),
                Collective("pp", "sendrecv", n, "gradients", -1, self.itemsize)]

    def gradient_buckets(self, stage: int = 0) -> list:
        """The data-parallel gradient collectives of ``stage`` (:class:`Bucket`), in launch order.

        Buckets fill with each layer's gradients in backward order; a full
        bucket is launched when the layer that filled it is done, the rest at
        the end. Dense and expert gradients fill separate buckets.
        """
        m, lay = self.model, self.layout
        gb = self.grad_itemsize
        coll = {"none": "allreduce", "zero1": "reduce_scatter", "zero2": "reduce_scatter",
                "fsdp": "reduce_scatter"}[self.sharding]
        dims = (("dp", lay.dp), ("edp", lay.edp))
        pending = {"dp": 0, "edp": 0}
        out = []

        def emit(after, dim, nbytes, label):
            out.append(Bucket(after, Collective(dim, coll, nbytes, label, 0, gb)))

        layers = list(reversed(self.stage_layers[stage]))
        per_layer = []
        for i in layers:
            de, ex = m.layer_params(i)
            per_layer.append((i, -(-de // lay.tp) * gb, -(-ex // (lay.tp * lay.ep)) * gb))
        emb = 0
        if stage == 0:
            emb += m.embedding_params
        head = self._head_params() if stage == lay.pp - 1 else 0
        if head:
            # the head's backward runs first: its gradients join the first layer's buckets
            per_layer.insert(0, (layers[0], -(-head // lay.tp) * gb, 0))
        if emb:
            per_layer.append((-1, -(-emb // lay.tp) * gb, 0))
        for after, dense, expert in per_layer:
            for (dim, size), nbytes in zip(dims, (dense, expert)):
                if size == 1 or nbytes == 0:
                    continue
                if self.sharding == "fsdp":
                    emit(after, dim, nbytes, f"layer {after} gradients")
                    continue
                pending[dim] += nbytes
                while pending[dim] >= self.bucket_bytes:
                    emit(after, dim, self.bucket_bytes, "bucket")
                    pending[dim] -= self.bucket_bytes
        last = per_layer[-1][0] if per_layer else -1
        for dim, _ in dims:
            if pending[dim]:
                emit(last, dim, pending[dim], "last bucket")
        return out

    def parameter_gathers(self, stage: int = 0) -> list:
        """ZeRO-1/2: the all-gathers of updated parameters after the optimizer step."""
        if self.sharding not in ("zero1", "zero2"):
            return []
        out = []
        for b in self.gradient_buckets(stage):
            c = b.collective
            size = self.layout.degree(c.dim)
            shard = -(-c.nbytes // self.grad_itemsize // size) * self.itemsize
            out.append(Collective(c.dim, "allgather", shard, "parameters", 0, self.itemsize))
        return out

    def fsdp_gathers(self, stage: int) -> list:
        """FSDP: per layer of ``stage``, the all-gather of its parameter shards
        ``[(layer, [Collective, ...]), ...]`` (run before its forward and its backward)."""
        if self.sharding != "fsdp":
            return []
        m, lay = self.model, self.layout
        out = []
        for i in self.stage_layers[stage]:
            de, ex = m.layer_params(i)
            calls = []
            for dim, size, n in (("dp", lay.dp, -(-de // lay.tp)),
                                 ("edp", lay.edp, -(-ex // (lay.tp * lay.ep)))):
                if size > 1 and n:
                    calls.append(Collective(dim, "allgather", -(-n // size) * self.itemsize,
                                            f"layer {i} parameters", 0, self.itemsize))
            out.append((i, calls))
        return out

    # ------------------------------------------------------------------ summaries
    def bytes_per_rank(self, stage: int = 0) -> dict:
        """Collective buffer bytes one rank of ``stage`` passes per step, by dimension.

        The sum over the step's calls of each call's per-rank buffer (the
        :func:`~collectives.model.predict` convention; for pipeline sends the
        bytes sent): ``{"tp": ..., "pp": ..., "ep": ..., "dp": ...}``, with
        expert-data-parallel traffic counted under ``"dp"``.
        """
        if not 0 <= stage < self.layout.pp:
            raise InvalidArgument(f"stage must be in 0..{self.layout.pp - 1}, got {stage!r}")
        out = {"tp": 0, "pp": 0, "ep": 0, "dp": 0}
        mb = self.num_microbatches
        for item in self.forward_program(stage) + self.backward_program(stage):
            if isinstance(item, Collective):
                out[item.dim] += mb * item.nbytes
        p = self.layout.pp
        for c in self.pipeline_calls():
            senders = (stage < p - 1) if c.direction > 0 else (stage > 0)
            out["pp"] += mb * c.nbytes * senders
        for b in self.gradient_buckets(stage):
            out["dp"] += b.collective.nbytes
        for c in self.parameter_gathers(stage):
            out["dp"] += c.nbytes
        for _, calls in self.fsdp_gathers(stage):
            out["dp"] += sum(2 * mb * c.nbytes for c in calls)
        return out

    def to_dict(self) -> dict:
        return {"model": self.model.name, "layout": self.layout.to_dict(),
                "global_batch": self.global_batch, "micro_batch": self.micro_batch,
                "micro_batches": self.num_microbatches, "dtype": self.dtype,
                "accelerator": {"name": self.accelerator.name, "flops": self.accelerator.flops,
                                "efficiency": self.accelerator.efficiency,
                                "host": self.accelerator.host},
                "sequence_parallel": self.sequence_parallel, "bucket_bytes": self.bucket_bytes,
                "sharding": self.sharding, "recompute": self.recompute}
