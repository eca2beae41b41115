"""Accelerators: peak FLOP/s and the fraction a training step achieves.

Compute time of a piece of work is ``flops / (peak * efficiency)``. Peak
numbers are dense (no structured sparsity) 16-bit matrix throughput from the
vendors' datasheets; the efficiency (default 0.5) is the achieved fraction,
which for large transformer matmuls is typically 0.4-0.6 (the MFU figures of
Chowdhery et al. 2022 and Llama Team 2024 section 3.3).

An accelerator's ``host`` says how :func:`collectives.workload.simulate`
prices its collectives by default: "accelerator" (the network, per-message
overheads and reductions; local copies and per-call costs are the device's
and left out) or "cpu" (every host term of :func:`collectives.model.predict`:
the per-call cost, copies at cache and memory speed, reductions pipelined
per segment, cores and memory shared per machine), for training on CPU hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from ..errors import InvalidArgument

__all__ = ["Accelerator", "ACCELERATORS", "accelerator", "HOSTS"]

#: how a step's collectives are priced: without the host's copies and per-call cost (an
#: accelerator's), or with every host term of the model (a CPU host)
HOSTS = ("accelerator", "cpu")


@dataclass(frozen=True)
class Accelerator:
    """An accelerator's peak FLOP/s and achieved efficiency.

    Parameters
    ----------
    flops : float
        Peak FLOP/s (``float("inf")``: compute is free, for
        communication-only studies).
    efficiency : float
        Achieved fraction of peak, in (0, 1].
    name : str
    memory_bandwidth : float, optional
        Bytes/s of its memory. A reduction reads two operands and writes one,
        so the accelerator reduces at a third of it: that is the step's
        ``reduce_bandwidth`` unless the caller gives one (without it, the
        model's default, one CPU core). On a CPU host it is the machine's
        memory bandwidth instead (the model's ``memory_bandwidth``, shared by
        the ranks of a machine that copy or reduce at once), and reductions
        run at one core's speed.
    host : {"accelerator", "cpu"}
        What :func:`~collectives.workload.simulate` prices by default: the
        host terms off ("accelerator") or on ("cpu").
    """

    flops: float
    efficiency: float = 0.5
    name: str = ""
    memory_bandwidth: float | None = None
    host: str = "accelerator"

    def __post_init__(self):
        f = self.flops
        if isinstance(f, bool) or not isinstance(f, Real) or not f > 0 or math.isnan(f):
            raise InvalidArgument(f"Accelerator flops must be FLOP/s > 0 (inf: free compute), "
                                  f"got {f!r}")
        e = self.efficiency
        if isinstance(e, bool) or not isinstance(e, Real) or not 0 < e <= 1:
            raise InvalidArgument(f"Accelerator efficiency must be in (0, 1], got {e!r}")
        object.__setattr__(self, "flops", float(f))
        object.__setattr__(self, "efficiency", float(e))
        mb = self.memory_bandwidth
        if mb is not None:
            if isinstance(mb, bool) or not isinstance(mb, Real) or not mb > 0:
                raise InvalidArgument(f"Accelerator memory_bandwidth must be bytes/s > 0, "
                                      f"got {mb!r}")
            object.__setattr__(self, "memory_bandwidth", float(mb))
        if self.host not in HOSTS:
            raise InvalidArgument(f"Accelerator host must be one of {', '.join(HOSTS)}, "
                                  f"got {self.host!r}")

    @property
    def reduce_bandwidth(self) -> float | None:
        """Bytes/s it reduces: a third of its memory bandwidth (None when unknown, and on a
        CPU host, whose cores reduce at the model's ``reduce_bandwidth``)."""
        if self.memory_bandwidth is None or self.host == "cpu":
            return None
        return self.memory_bandwidth / 3.0

    @property
    def achieved(self) -> float:
        """FLOP/s the step actually gets: ``flops * efficiency``."""
        return self.flops * self.efficiency

    def seconds(self, flops: float) -> float:
        """Time to compute ``flops`` (0 when compute is free)."""
        return 0.0 if math.isinf(self.flops) else flops / self.achieved


#: Named accelerators: dense BF16 tensor-core peaks and memory bandwidth from the vendors'
#: datasheets.
ACCELERATORS = {
    # NVIDIA A100 Tensor Core GPU datasheet (2020), SXM 80GB: 312 TFLOPS BF16 dense, 2039 GB/s
    "a100": Accelerator(312e12, 0.5, "a100", 2.039e12),
    # NVIDIA H100 Tensor Core GPU datasheet, SXM5: 989 TFLOPS BF16 dense, 3.35 TB/s
    "h100": Accelerator(989e12, 0.5, "h100", 3.35e12),
    # AMD Instinct MI300X datasheet: 1307.4 TFLOPS BF16 dense, 5.3 TB/s
    "mi300x": Accelerator(1307.4e12, 0.5, "mi300x", 5.3e12),
    # communication-only studies
    "free": Accelerator(float("inf"), 1.0, "free"),
    # communication-only studies of CPU hosts (an emulated run, a CPU cluster): free compute,
    # every collective priced with the host's own costs
    "cpu-free": Accelerator(float("inf"), 1.0, "cpu-free", host="cpu"),
}


def accelerator(spec) -> Accelerator:
    """An :class:`Accelerator` from itself, a name in :data:`ACCELERATORS`, or a peak FLOP/s."""
    if isinstance(spec, Accelerator):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ACCELERATORS:
            return ACCELERATORS[key]
        raise InvalidArgument(f"unknown accelerator {spec!r}: accepted are "
                              f"{', '.join(ACCELERATORS)} or an Accelerator(flops=...)")
    if isinstance(spec, Real) and not isinstance(spec, bool):
        return Accelerator(spec)
    raise InvalidArgument(f"accelerator must be an Accelerator, a name ({', '.join(ACCELERATORS)}) "
                          f"or peak FLOP/s, got {spec!r}")
