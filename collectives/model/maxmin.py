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


def _rows_to_flows(has, rows, nrows):
    """CSR (rows x flows) of which flows use each shared row."""
    flows = np.nonzero(has)[0]
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(nrows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=nrows), out=indptr[1:])
    return indptr, flows[order]


def _gather(indptr, indices, which):
    """Concatenated CSR rows ``which`` (their column indices), with the row of each entry."""
    starts = indptr[which]
    lens = indptr[which + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rep = np.repeat(np.arange(len(which)), lens)
    offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return np.repeat(starts, lens) + offs, rep


def maxmin(inc: Incidence) -> np.ndarray:
    """Max-min fair rates (bytes/s) of the flows; ``inf`` for flows that use no link.

    Progressive filling with incremental bookkeeping: the per-link weight of
    the active flows is updated by subtracting the flows that freeze, so the
    total work is proportional to the incidence's size plus one pass over the
    links per bottleneck level.
    """
    nf = inc.nflows
    rate = np.full(nf, np.inf)
    active = inc.uses_any_link()
    if not active.any():
        return rate
    cap = inc.capacity
    residual = cap.copy()
    w = inc.link_sum(active.astype(np.float64))
    level = 0.0
    own, ownT = inc.own, inc.ownT
    rowflows = [_rows_to_flows(has, rows, P.shape[0]) for has, rows, P, _ in inc.terms]
    n_active = int(active.sum())
    while n_active:
        loaded = w > cap * 1e-12
        if not loaded.any():            # pragma: no cover - active flows always load a link
            break
        li = np.nonzero(loaded)[0]
        ratio = np.maximum(residual[li], 0.0) / w[li]
        step = ratio.min()
        level += step
        residual[li] -= step * w[li]
        sat = li[ratio <= step * (1 + _REL) + 1e-300]
        residual[sat] = 0.0
        # flows crossing a saturated link freeze at the current level
        pos, _ = _gather(ownT.indptr, ownT.indices, sat)
        cand = [ownT.indices[pos]]
        for (has, rows, P, PT), (rptr, rfl) in zip(inc.terms, rowflows):
            pos, _ = _gather(PT.indptr, PT.indices, sat)
            prow = np.unique(PT.indices[pos])
            if len(prow):
                fpos, _ = _gather(rptr, rfl, prow)
                cand.append(rfl[fpos])
        F = np.concatenate(cand)
        F = np.unique(F[active[F]])
        if not len(F):                  # pragma: no cover - a saturated link has active flows
            w[sat] = 0.0
            continue
        active[F] = False
        rate[F] = level
        n_active -= len(F)
        # remove their weight from the links
        pos, r = _gather(own.indptr, own.indices, F)
        if len(pos):
            w -= np.bincount(own.indices[pos], weights=own.data[pos], minlength=len(w))
        for has, rows, P, PT in inc.terms:
            sel = has[F]
            if not sel.any():
                continue
            # row of each frozen flow: position of the flow among `has` flows
            fr = _row_of(has, rows, F[sel])
            ur, cnt = np.unique(fr, return_counts=True)
            pos, r = _gather(P.indptr, P.indices, ur)
            if len(pos):
                w -= np.bincount(P.indices[pos], weights=P.data[pos] * cnt[r], minlength=len(w))
        w[sat] = 0.0
        np.maximum(w, 0.0, out=w)
    return rate


def _row_of(has, rows, flows):
    idx = np.cumsum(has) - 1
    return rows[idx[flows]]
