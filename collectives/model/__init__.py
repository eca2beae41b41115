"""The flow-level model: price any schedule on any topology.

>>> import collectives as cl
>>> t = cl.topology.fat_tree(k=8)
>>> cl.model.predict("allreduce", "ring", 64 << 20, t)          # seconds
>>> r = cl.model.simulate(schedule, t)                           # time, per-step times, link loads
>>> r.hottest_links(5)
>>> cl.model.priced_nbytes("alltoall", 256 << 20, 16512)   # the size a non-dividing call prices
>>> r.breakdown                                 # network, copies, reductions, overhead, call
>>> cl.model.predict("allreduce", "ring", 64 << 20, t, **cl.model.HOST_TERMS_OFF)  # the network alone

See the documentation's guide "The model and the planner" for the assumptions and :mod:`collectives.model.simulate`
for the cost of a step. Nothing here needs MPI or the compiled core.
"""

from .network import Network, VirtualFullMesh, network_for
from .maxmin import maxmin, Incidence
from .simulate import (DEFAULTS, EMULATION_CALL_OVERHEAD, HOST_PARTS, HOST_TERMS_OFF, SimulationResult,
                       copy_time, core_wait, message_times, predict, simulate, resolve_topology,
                       placement_of, machines_of, priced_nbytes)
from .concurrent import ConcurrentResult, price_concurrent

__all__ = ["predict", "simulate", "message_times", "SimulationResult", "DEFAULTS",
           "HOST_TERMS_OFF", "HOST_PARTS", "EMULATION_CALL_OVERHEAD", "copy_time", "core_wait",
           "machines_of",
           "Network", "VirtualFullMesh", "network_for", "maxmin", "Incidence",
           "resolve_topology", "placement_of", "priced_nbytes", "load_profile", "two_level_topology",
           "price_concurrent", "ConcurrentResult"]


def __getattr__(name):
    if name in ("load_profile", "save_profile", "two_level_topology", "Profile"):
        from . import calibrate

        return getattr(calibrate, name)
    raise AttributeError(f"module 'collectives.model' has no attribute {name!r}")
