"""How "auto" picks an algorithm.

With a topology, or a calibration profile, the planner prices every candidate
in the model and keeps the fastest (collectives.planner). Without either, fixed
size thresholds measured on shared-memory MPICH runs are used; they are listed
in AUTO_THRESHOLDS and documented in the README.
"""

from __future__ import annotations

# (collective) -> list of (largest message in bytes, algorithm); the first that fits wins.
AUTO_THRESHOLDS = {
    "allreduce": [(64 * 1024, "mpi"), (None, "ring")],
    "alltoall": [(None, "mpi")],
    "reduce_scatter": [(None, "ring")],
    "allgather": [(None, "ring")],
    "broadcast": [(None, "mpi")],
}


def threshold_choice(collective: str, nbytes: int) -> str:
    for limit, name in AUTO_THRESHOLDS[collective]:
        if limit is None or nbytes <= limit:
            return name
    return AUTO_THRESHOLDS[collective][-1][1]


def auto_algorithm(comm, collective: str, nbytes: int, dtype) -> str:
    return auto_plan(comm, collective, nbytes, dtype)[0]


def auto_plan(comm, collective: str, nbytes: int, dtype) -> tuple:
    """(algorithm, schedule parameters) that "auto" runs for this call shape."""
    planner = _planner_or_none()
    if planner is not None:
        plan = planner.choose_for_comm(comm, collective, nbytes)
        return plan.algorithm, dict(getattr(plan, "params", None) or {})
    return threshold_choice(collective, nbytes), {}


def plan_for(comm, collective, nbytes, dtype):
    planner = _planner_or_none()
    if planner is not None:
        return planner.plan_for_comm(comm, collective, nbytes)
    return _ThresholdPlan(collective, int(nbytes), threshold_choice(collective, int(nbytes)))


def _planner_or_none():
    try:
        from . import planner
    except ImportError:
        return None
    return planner if hasattr(planner, "choose_for_comm") else None


class _ThresholdPlan:
    def __init__(self, collective, nbytes, algorithm):
        self.collective = collective
        self.nbytes = nbytes
        self.algorithm = algorithm
        self.predicted_time = None

    def explain(self) -> str:
        rules = ", ".join(f"<= {lim} B: {name}" if lim is not None else f"larger: {name}"
                          for lim, name in AUTO_THRESHOLDS[self.collective])
        return (f"{self.collective} of {self.nbytes} bytes -> {self.algorithm} "
                f"(fixed size thresholds, no topology or profile to price candidates: {rules})")

    def __repr__(self):
        return f"<Plan {self.collective} {self.nbytes} B -> {self.algorithm}>"
