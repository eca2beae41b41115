"""Training-step workloads: what a data-, tensor-, pipeline- and expert-parallel step sends.

>>> import collectives as cl
>>> step = cl.workload.TrainingStep(cl.workload.preset("llama3-70b"),
...                                 cl.workload.Layout(dp=16, tp=8, pp=4),
...                                 global_batch=512, micro_batch=1)
>>> r = cl.workload.simulate(step, "fat-tree:k=16")
>>> r.time, r.breakdown, r.mfu
>>> print(r.explain())

:class:`Model` and :data:`PRESETS` describe the network being trained,
:class:`Layout` how the ranks split into groups, :class:`Accelerator` how
fast they compute, :class:`TrainingStep` what one step computes and sends, and
:func:`simulate` prices it on a topology with the model (every group of a
dimension at once, overlapping phases in one max-min problem). Nothing here
needs MPI.
"""

from .accelerators import ACCELERATORS, Accelerator, accelerator
from .layout import DIMENSIONS, Layout
from .models import PRESETS, Model, preset
from .pricing import DEFAULT_ALGORITHMS, StepResult, simulate
from .step import SHARDINGS, TrainingStep

__all__ = ["Model", "PRESETS", "preset", "Layout", "DIMENSIONS", "Accelerator", "ACCELERATORS",
           "accelerator", "TrainingStep", "SHARDINGS", "simulate", "StepResult",
           "DEFAULT_ALGORITHMS"]
