"""Bus bandwidth, as nccl-tests defines it: ``busbw = algbw * busbw_factor(collective, p)``.

The factor turns the algorithm bandwidth (bytes per rank over time) into the
bandwidth each rank's link must carry with an optimal algorithm, so figures are
comparable across collectives and rank counts. Kept apart from the model so
that the benchmark can use it without importing the topology code.
"""

from __future__ import annotations

from .errors import InvalidArgument

_FACTORS = {
    "allreduce": lambda p: 2.0 * (p - 1) / p,
    "alltoall": lambda p: (p - 1) / p,
    "reduce_scatter": lambda p: (p - 1) / p,
    "allgather": lambda p: (p - 1) / p,
    "broadcast": lambda p: 1.0,
}


def busbw_factor(collective: str, p: int) -> float:
    """nccl-tests' bus bandwidth factor of ``collective`` on ``p`` ranks.

    Parameters
    ----------
    collective : str
        "allreduce", "alltoall", "reduce_scatter", "allgather" or "broadcast".
    p : int
        Number of ranks. One rank moves nothing over a bus; its factor is 1,
        so that busbw equals algbw instead of vanishing.

    Returns
    -------
    float
    """
    factor = _FACTORS.get(collective)
    if factor is None:
        raise InvalidArgument(f"unknown collective {collective!r}: accepted are {', '.join(_FACTORS)}")
    return 1.0 if p <= 1 else factor(p)
