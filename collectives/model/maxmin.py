"""Max-min fair sharing of directed links by progressive filling, vectorised.

Every active flow's rate grows at the same pace; when a link fills up, the
flows crossing it freeze at their current rate; the others keep growing. A
flow spread over several paths (ECMP) is one flow whose rate loads each link
by its fraction on that link. The loop runs once per bottleneck *level* (all
links that fill at the same moment are handled together), and each pass is a
pair of sparse products: no Python object per flow.

Bertsekas & Gallager, *Data Networks* (2nd ed., 1992), section 6.5.2.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["Incidence", "maxmin", "incidence"]

_REL = 1e-9


class Incidence:
    """Flows x links incidence in factored form: ``A = own + sum_k S_k @ P_k``.

    ``own`` (flows x links, CSR) holds the fractions private to one flow;
    each term ``(rows, P)`` says that flow f also loads row ``rows[f]`` of
    ``P`` (shared rows x links, CSR), ``rows[f] = -1`` for none. Links are
    numbered 0..L-1 (compressed); ``links`` holds the network ids and
    ``capacity`` their bandwidths.
    """

    def __init__(self, own, terms, links, capacity):
        self.own = own.tocsr()
        self.ownT = self.own.T.tocsr()
        self.terms = []
        for rows, P in terms:
            has = rows >= 0
            P = P.tocsr()
            self.terms.append((has, rows[has], P, P.T.tocsr()))
        self.links = links
        self.capacity = capacity
        self.nflows = own.shape[0]
        self.nlinks = len(links)

    def link_sum(self, x):
        """``A^T x``: for each link, the sum over flows of fraction * x[flow]."""
        out = self.ownT @ x
        for has, rows, P, PT in self.terms:
            per_row = np.bincount(rows, weights=x[has], minlength=P.shape[0])
            out = out + PT @ per_row
        return out

    def flow_sum(self, y):
        """``A y``: for each flow, the sum over its links of fraction * y[link]."""
        out = self.own @ y
        for has, rows, P, _ in self.terms:
            out[has] += (P @ y)[rows]
        return out

    def uses_any_link(self):
        n = np.diff(self.own.indptr) > 0
        for has, rows, P, _ in self.terms:
            n = n.copy()
            n[has] |= (np.diff(P.indptr) > 0)[rows]
        return n

    def dense(self):
        """The full flows x links matrix (for tests and small cases)."""
        A = self.own.toarray()
        for has, rows, P, _ in self.terms:
            A[np.nonzero(has)[0]] += P.toarray()[rows]
        return A


def incidence(routed, capacity_of) -> Incidence:
    """Build the compressed :class:`Incidence` of a :class:`~collectives.model.network.Routed`.

    Only the rows a flow uses are kept, and only the links they touch.
    """
    nf = len(routed.local)
    cols = [routed.own_link]
    kept = []
    for rows, P in routed.terms:
        used_rows, inv = np.unique(rows[rows >= 0], return_inverse=True)
        sub = P[used_rows]
        r = np.full(len(rows), -1, dtype=np.int64)
        r[rows >= 0] = inv
        kept.append((r, sub))
        cols.append(sub.indices.astype(np.int64))
    used = np.unique(np.concatenate(cols))
    own = sp.csr_matrix((routed.own_w, (routed.own_flow, np.searchsorted(used, routed.own_link))),
                        shape=(nf, len(used)))
    terms = []
    for r, sub in kept:
        sub = sp.csr_matrix((sub.data, np.searchsorted(used, sub.indices), sub.indptr),
                            shape=(sub.shape[0], len(used)))
        terms.append((r, sub))
    cap = np.asarray(capacity_of(used), dtype=np.float64)
    return Incidence(own, terms, used, cap)


def maxmin(inc: Incidence) -> np.ndarray:
    """Max-min fair rates (bytes/s) of the flows; ``inf`` for flows that use no link."""
    nf = inc.nflows
    rate = np.zeros(nf)
    active = inc.uses_any_link()
    rate[~active] = np.inf
    if not active.any():
        return rate
    residual = inc.capacity.copy()
    cap = inc.capacity
    while True:
        a = active.astype(np.float64)
        w = inc.link_sum(a)
        loaded = w > cap * 1e-15
        if not loaded.any():          # pragma: no cover - active flows always load a link
            rate[active] = np.inf
            break
        ratio = np.full(len(w), np.inf)
        ratio[loaded] = np.maximum(residual[loaded], 0.0) / w[loaded]
        inc_rate = ratio.min()
        rate[active] += inc_rate
        residual -= inc_rate * w
        full = loaded & (ratio <= inc_rate * (1 + _REL) + 1e-300)
        residual[full] = 0.0
        frozen = inc.flow_sum(full.astype(np.float64)) > 0
        active &= ~frozen
        if not active.any():
            break
    return rate
