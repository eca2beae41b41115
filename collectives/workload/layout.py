"""How a training job's ranks split into data-, tensor-, pipeline- and expert-parallel groups.

The job has ``dp * tp * pp`` ranks. A rank's coordinates are its position
along each dimension; ``order`` lists the dimensions fastest-varying first, so
with the default ``("tp", "dp", "pp")`` (tensor-parallel innermost, as
Megatron-LM numbers ranks: Shoeybi et al. 2019, Narayanan et al. 2021)

    rank = tp_rank + tp * (dp_rank + dp * pp_rank)

and the ``tp`` ranks of one tensor-parallel group are consecutive, so that a
linear placement puts them in one node.

Expert-parallel groups are carved out of the data-parallel ranks (Megatron-LM's
MoE layers): ``ep`` divides ``dp``, and the data-parallel rank splits into
``dp_rank = edp_rank * ep + ep_rank``. An expert-parallel group holds ``ep``
consecutive data-parallel ranks (same tp and pp coordinates); they hold
different experts and exchange tokens by all-to-all. Ranks with the same
``ep_rank`` (and tp, pp coordinates) hold the same experts: they form the
expert-data-parallel group (``"edp"``, ``dp / ep`` ranks) over which expert
gradients are reduced.

Everything here is numpy; no MPI. The runtime builds its sub-communicators
from the same groups, so what the model prices is what runs.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ..errors import InvalidArgument

__all__ = ["Layout", "DIMENSIONS"]

#: dimensions whose groups :meth:`Layout.groups` returns
DIMENSIONS = ("tp", "dp", "pp", "ep", "edp")
_ORDERED = ("tp", "dp", "pp")


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or value < 1:
        raise InvalidArgument(f"Layout {name} must be an integer >= 1, got {value!r}")
    return int(value)


class Layout:
    """The parallel layout of a job: ``dp x tp x pp`` ranks, ``ep`` carved out of ``dp``.

    Parameters
    ----------
    dp, tp, pp : int
        Data-, tensor- and pipeline-parallel degrees (>= 1).
    ep : int
        Expert-parallel degree, a divisor of ``dp`` (default 1).
    order : sequence of str
        ``"tp"``, ``"dp"`` and ``"pp"`` in some order, fastest-varying first
        (default: tensor-parallel innermost, pipeline outermost). A string
        ``"tp-dp-pp"`` (any of ``-/:,`` between names) is accepted too.

    Raises
    ------
    collectives.errors.InvalidArgument
        A degree that is not a positive integer, ``ep`` not dividing ``dp``,
        or an ``order`` that is not a permutation of tp, dp, pp.
    """

    __slots__ = ("dp", "tp", "pp", "ep", "order", "_grid", "_cache")

    def __init__(self, dp, tp=1, pp=1, ep=1, order=("tp", "dp", "pp")):
        self.dp = _count("dp", dp)
        self.tp = _count("tp", tp)
        self.pp = _count("pp", pp)
        self.ep = _count("ep", ep)
        if self.dp % self.ep:
            divisors = [d for d in range(1, self.dp + 1) if self.dp % d == 0]
            more = " ..." if len(divisors) > 12 else ""
            raise InvalidArgument(f"Layout ep={self.ep} must divide dp={self.dp} (expert-parallel "
                                  f"groups are carved out of the data-parallel ranks); "
                                  f"accepted: {divisors[:12]}{more}")
        if isinstance(order, str):
            order = [p for p in order.replace("/", "-").replace(":", "-").replace(",", "-")
                     .split("-") if p]
        try:
            order = tuple(str(o).strip().lower() for o in order)
        except TypeError:
            raise InvalidArgument(f"Layout order must list tp, dp and pp, got {order!r}") from None
        if sorted(order) != sorted(_ORDERED):
            raise InvalidArgument(f"Layout order must be a permutation of tp, dp, pp "
                                  f"(fastest-varying first), got {order!r}")
        self.order = order
        self._grid = None
        self._cache = {}

    # ------------------------------------------------------------------ basics
    @property
    def size(self) -> int:
        """Number of ranks: ``dp * tp * pp``."""
        return self.dp * self.tp * self.pp

    @property
    def edp(self) -> int:
        """Expert-data-parallel degree ``dp / ep``."""
        return self.dp // self.ep

    def degree(self, dim: str) -> int:
        """Group size of ``dim`` (one of :data:`DIMENSIONS`)."""
        return {"tp": self.tp, "dp": self.dp, "pp": self.pp, "ep": self.ep,
                "edp": self.edp}[self._dim(dim)]

    def __len__(self):
        return self.size

    def __repr__(self):
        extra = f", ep={self.ep}" if self.ep != 1 else ""
        order = "" if self.order == _ORDERED else f", order={self.order!r}"
        return f"Layout(dp={self.dp}, tp={self.tp}, pp={self.pp}{extra}{order})"

    def __eq__(self, other):
        return (isinstance(other, Layout) and (self.dp, self.tp, self.pp, self.ep, self.order)
                == (other.dp, other.tp, other.pp, other.ep, other.order))

    def __hash__(self):
        return hash((self.dp, self.tp, self.pp, self.ep, self.order))

    def to_dict(self) -> dict:
        return {"dp": self.dp, "tp": self.tp, "pp": self.pp, "ep": self.ep,
                "order": list(self.order), "ranks": self.size}

    # ------------------------------------------------------------------ groups
    @staticmethod
    def _dim(dim):
        if dim not in DIMENSIONS:
            raise InvalidArgument(f"unknown layout dimension {dim!r}: accepted are "
                                  f"{', '.join(DIMENSIONS)}")
        return dim

    def _ranks_grid(self):
        """Ranks as an array of axes (pp-or-whatever outermost ... fastest last), the
        dp axis split into (edp, ep)."""
        if self._grid is None:
            deg = {"tp": self.tp, "dp": self.dp, "pp": self.pp}
            slow_first = self.order[::-1]
            grid = np.arange(self.size, dtype=np.int64).reshape([deg[d] for d in slow_first])
            # split the dp axis: dp_rank = edp_rank * ep + ep_rank
            ax = slow_first.index("dp")
            shape = list(grid.shape)
            shape[ax:ax + 1] = [self.edp, self.ep]
            names = list(slow_first)
            names[ax:ax + 1] = ["edp", "ep"]
            self._grid = (grid.reshape(shape), names)
        return self._grid

    def groups(self, dim: str) -> np.ndarray:
        """Every group of ``dim`` as an int64 array ``(n_groups, group_size)`` of global ranks.

        Each rank appears in exactly one row; a row lists its members by
        their coordinate along ``dim`` (column ``i`` is the member with
        ``dim`` rank ``i``). ``"dp"`` groups are ordered by data-parallel rank
        (so the ``ep`` groups are consecutive runs of a ``dp`` row).
        """
        dim = self._dim(dim)
        hit = self._cache.get(dim)
        if hit is not None:
            return hit
        grid, names = self._ranks_grid()
        if dim == "dp":
            a, b = names.index("edp"), names.index("ep")
            g = np.moveaxis(grid, (a, b), (-2, -1))
            out = g.reshape(-1, self.dp)
        else:
            g = np.moveaxis(grid, names.index(dim), -1)
            out = g.reshape(-1, self.degree(dim))
        out = np.ascontiguousarray(out)
        out.setflags(write=False)
        self._cache[dim] = out
        return out

    def _group_index(self, dim):
        key = ("index", dim)
        hit = self._cache.get(key)
        if hit is None:
            g = self.groups(dim)
            row = np.empty(self.size, dtype=np.int64)
            row[g.reshape(-1)] = np.repeat(np.arange(g.shape[0], dtype=np.int64), g.shape[1])
            col = np.empty(self.size, dtype=np.int64)
            col[g.reshape(-1)] = np.tile(np.arange(g.shape[1], dtype=np.int64), g.shape[0])
            hit = self._cache[key] = (row, col)
        return hit

    def _rank(self, rank):
        if isinstance(rank, bool) or not isinstance(rank, (Integral, np.integer)) \
                or not 0 <= rank < self.size:
            raise InvalidArgument(f"rank must be an integer in 0..{self.size - 1}, got {rank!r}")
        return int(rank)

    def coords(self, rank: int) -> dict:
        """``{"tp": i, "dp": j, "pp": k, "ep": e, "edp": x}``: the rank's coordinates."""
        rank = self._rank(rank)
        return {d: int(self._group_index(d)[1][rank]) for d in DIMENSIONS}

    def group_of(self, rank: int, dim: str) -> np.ndarray:
        """The members of ``rank``'s group along ``dim`` (a row of :meth:`groups`)."""
        rank = self._rank(rank)
        return self.groups(dim)[self._group_index(self._dim(dim))[0][rank]]

    def stage_ranks(self, stage: int) -> np.ndarray:
        """The ranks of pipeline stage ``stage``, sorted."""
        col = self._group_index("pp")[1]
        return np.nonzero(col == stage)[0]

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str, ranks: int | None = None) -> "Layout":
        """A Layout from ``"tp=8,pp=16"`` (command-line form).

        Keys: ``dp``, ``tp``, ``pp``, ``ep`` (integers) and ``order``
        (``tp-dp-pp``, fastest first). Without ``dp``, it is ``ranks / (tp*pp)``.

        Raises
        ------
        collectives.errors.InvalidArgument
            An unknown key, a value that is not a positive integer, neither
            ``dp`` nor ``ranks`` given, or ``ranks`` not a multiple of ``tp*pp``
            (or not equal to ``dp*tp*pp`` when both are given).
        """
        if not isinstance(text, str):
            raise InvalidArgument(f"layout must be a string such as 'tp=8,pp=16', got {text!r}")
        kv = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise InvalidArgument(f"layout {text!r}: {part!r} is not key=value; accepted keys "
                                      "are dp, tp, pp, ep, order (e.g. 'tp=8,pp=16')")
            k, v = (s.strip().lower() for s in part.split("=", 1))
            if k not in ("dp", "tp", "pp", "ep", "order"):
                raise InvalidArgument(f"layout {text!r}: unknown key {k!r}; accepted are dp, tp, "
                                      "pp, ep, order")
            if k in kv:
                raise InvalidArgument(f"layout {text!r}: {k} given twice")
            if k == "order":
                kv[k] = v
                continue
            try:
                kv[k] = int(v)
            except ValueError:
                raise InvalidArgument(f"layout {text!r}: {k}={v!r} is not an integer") from None
        tp, pp = kv.get("tp", 1), kv.get("pp", 1)
        if ranks is not None:
            ranks = _count("ranks", ranks)
        if "dp" not in kv:
            if ranks is None:
                raise InvalidArgument(f"layout {text!r} gives no dp: pass dp= or the number of "
                                      "ranks (accelerators)")
            if tp < 1 or pp < 1 or ranks % (tp * pp):
                raise InvalidArgument(f"layout {text!r}: {ranks} ranks are not a multiple of "
                                      f"tp*pp={tp * pp}")
            kv["dp"] = ranks // (tp * pp)
        lay = cls(kv["dp"], tp, pp, kv.get("ep", 1), kv.get("order", ("tp", "dp", "pp")))
        if ranks is not None and lay.size != ranks:
            raise InvalidArgument(f"layout {text!r} has dp*tp*pp={lay.size} ranks, not the "
                                  f"{ranks} accelerators asked for")
        return lay
