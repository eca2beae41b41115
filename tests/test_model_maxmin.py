"""The max-min solver against a slow, obviously correct reference; closed-form
routing against generic shortest-path counting."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from collectives import topology as T
from collectives.model.maxmin import Incidence, maxmin
from collectives.model.network import Network


def reference_maxmin(A, cap):
    """Textbook progressive filling, one flow and one link at a time, in pure Python."""
    nf, nl = len(A), len(A[0])
    rate = [0.0] * nf
    frozen = [not any(A[f][l] > 0 for l in range(nl)) for f in range(nf)]
    for f in range(nf):
        if frozen[f]:
            rate[f] = float("inf")
    while not all(frozen):
        best = None
        for l in range(nl):
            w = sum(A[f][l] for f in range(nf) if not frozen[f])
            if w <= 0:
                continue
            used = sum(A[f][l] * rate[f] for f in range(nf) if rate[f] != float("inf"))
            room = (cap[l] - used) / w
            if best is None or room < best:
                best = room
        for f in range(nf):
            if not frozen[f]:
                rate[f] += best
        for l in range(nl):
            used = sum(A[f][l] * rate[f] for f in range(nf) if rate[f] != float("inf"))
            if used >= cap[l] * (1 - 1e-9):
                for f in range(nf):
                    if A[f][l] > 0:
                        frozen[f] = True
    return np.array(rate)


def _inc(A, cap, split=False):
    A = np.asarray(A, dtype=float)
    nf, nl = A.shape
    if not split:
        return Incidence(sp.csr_matrix(A), [], np.arange(nl), np.asarray(cap, dtype=float))
    # the same matrix written as own + one shared term (flows 0 and 1 share row 0)
    own = A.copy()
    rows = np.full(nf, -1)
    P = np.zeros((1, nl))
    if nf >= 2:
        P[0] = np.minimum(A[0], A[1])
        own[0] -= P[0]
        own[1] -= P[0]
        rows[:2] = 0
    return Incidence(sp.csr_matrix(own), [(rows, sp.csr_matrix(P))], np.arange(nl),
                     np.asarray(cap, dtype=float))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_maxmin_matches_reference(nf, nl, data):
    frac = st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0])
    A = [[data.draw(frac) for _ in range(nl)] for _ in range(nf)]
    cap = [data.draw(st.sampled_from([1.0, 2.0, 3.0, 10.0])) for _ in range(nl)]
    ref = reference_maxmin(A, cap)
    for split in (False, True):
        got = maxmin(_inc(A, cap, split))
        assert np.allclose(got, ref, rtol=1e-9), (A, cap, got, ref)


def test_maxmin_textbook_example():
    # Bertsekas & Gallager: three flows on link 0 (cap 1), one of them also alone on link 1
    A = [[1, 0], [1, 0], [1, 1], [0, 1]]
    got = maxmin(_inc(A, [1.0, 1.0]))
    assert np.allclose(got, [1 / 3, 1 / 3, 1 / 3, 2 / 3])


def test_rates_are_feasible_and_bottlenecked():
    rng = np.random.default_rng(1)
    A = (rng.random((40, 12)) < 0.2) * rng.choice([0.5, 1.0], (40, 12))
    A[:, 0] += 1.0                      # every flow uses link 0 at least
    cap = rng.choice([1.0, 4.0], 12)
    r = maxmin(_inc(A, cap))
    load = A.T @ r
    assert np.all(load <= cap * (1 + 1e-9))
    # every flow has a saturated link on which it has the largest rate
    for f in range(A.shape[0]):
        ok = [l for l in range(12) if A[f, l] > 0 and load[l] >= cap[l] * (1 - 1e-9)
              and r[f] >= max(r[g] for g in range(A.shape[0]) if A[g, l] > 0) - 1e-9]
        assert ok


@pytest.mark.parametrize("topo", [
    T.fat_tree(4), T.fat_tree(6), T.fat_tree(8, oversubscription=2),
    T.leaf_spine(4, 3, 2), T.dragonfly(4, 2, 2),
], ids=lambda t: t.name)
def test_closed_form_routes_equal_path_counting(topo):
    fast = Network(topo)
    assert fast._fast is not None
    slow = Network(topo)
    slow._fast = None
    if topo.family == "dragonfly":
        slow.mode = "minimal"            # generic: the topology Router's minimal routes
    H = len(topo.hosts)
    rng = np.random.default_rng(0)
    src = rng.integers(0, H, 200)
    dst = rng.integers(0, H, 200)
    a = fast.route(src, dst)
    b = slow.route(src, dst)
    from collectives.model.maxmin import incidence

    Ia, Ib = incidence(a, fast.capacity), incidence(b, slow.capacity)
    da = np.zeros((200, fast.nlinks))
    db = np.zeros((200, fast.nlinks))
    da[:, Ia.links] = Ia.dense()
    db[:, Ib.links] = Ib.dense()
    assert np.allclose(da, db)
    assert np.allclose(a.latency, b.latency)


def test_ecmp_fractions_sum_to_one_per_cut():
    t = T.fat_tree(4)
    net = Network(t)
    net._fast = None
    e0 = t.node_index["e0_0"]
    e3 = t.node_index["e3_1"]
    ids, frac, lat = net.pair_fractions(e0, e3)
    # 4 links of the path, each level carries the whole flow
    assert frac.sum() == pytest.approx(4.0)
    assert len(ids) == 2 + 4 + 4 + 2
