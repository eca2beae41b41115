"""What an algorithm's ``variants`` function yields: one setting worth pricing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Variant:
    """One parameter setting of an algorithm worth pricing on a network.

    Attributes
    ----------
    label : str
        What sets it apart, such as ``"order=snake"``; empty for the
        algorithm's defaults. The planner shows ``name(label)``.
    params : dict
        The keyword parameters to build the schedule with.
    placement : numpy.ndarray, optional
        Price the schedule with rank i on host ``placement[i]`` instead of the
        real placement (a setting the executor cannot run yet).
    executable : bool
        False: priced to show what it would gain, never chosen.
    note : str
        Why it is not executable, for the plan's explanation.
    messages_per_step : int
        An upper bound of the messages in its busiest step, when large
        enough to matter: the planner leaves out variants over its budget.
    """

    label: str = ""
    params: dict = field(default_factory=dict)
    placement: Optional[np.ndarray] = None
    executable: bool = True
    note: str = ""
    messages_per_step: int = 0
