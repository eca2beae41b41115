"""On a uniform, contention-free network the model is the textbook alpha-beta-gamma model.

A star of p hosts with host links of bandwidth B and latency L/2: every
message crosses two links (alpha = L + overhead) and no two flows of a step
share a directed link, so beta = 1/B exactly. The host terms that are not
part of that model (local copies, reductions pipelined behind segments,
shared cores) are switched off explicitly: ``HOST_TERMS_OFF``, with the
overhead and the reduce bandwidth put back where a formula has them.
"""

import math

import numpy as np
import pytest

import collectives as cl
from collectives import topology as T
from collectives.model import HOST_TERMS_OFF, predict, simulate
from collectives.algorithms import build_schedule

B = 1e9            # bytes/s
L = 2e-6           # s, path latency (two links of L/2)
O = 1e-6           # s, per-message overhead
G = 4e9            # bytes/s reduce bandwidth
ALPHA, BETA, GAMMA = L + O, 1.0 / B, 1.0 / G
#: alpha-beta-gamma: the network, the per-message overhead and the reduce bandwidth
TEXTBOOK = {**HOST_TERMS_OFF, "overhead": O, "reduce_bandwidth": G}


def star(p):
    return T.star(p, link_bandwidth=B, link_latency=L / 2)


def pr(coll, alg, n, p, **kw):
    return predict(coll, alg, n, star(p), **{**TEXTBOOK, **kw})


@pytest.mark.parametrize("p", [2, 3, 8, 13, 16])
def test_ring_allreduce(p):
    n = p * 4096 * 4
    want = 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * n * BETA + (p - 1) / p * n * GAMMA
    assert pr("allreduce", "ring", n, p) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("p", [2, 4, 8, 32])
def test_rabenseifner_allreduce_powers_of_two(p):
    n = p * 1024 * 4
    want = (2 * math.log2(p) * ALPHA + 2 * (p - 1) / p * n * BETA + (p - 1) / p * n * GAMMA)
    assert pr("allreduce", "rhd", n, p) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("p", [2, 5, 8, 16])
def test_pairwise_alltoall(p):
    n = p * 2048 * 4
    want = (p - 1) * (ALPHA + n / p * BETA)
    assert pr("alltoall", "pairwise", n, p) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("p", [2, 4, 8, 16, 64])
def test_bruck_alltoall_powers_of_two(p):
    n = p * 512 * 4
    want = math.log2(p) * ALPHA + n / 2 * math.log2(p) * BETA
    assert pr("alltoall", "bruck", n, p) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("p", [3, 5, 6, 12])
def test_bruck_alltoall_other_counts(p):
    # round k sends the blocks whose index has bit k set: sum_k #{i < p : bit k of i} blocks
    n = p * 512 * 4
    K = math.ceil(math.log2(p))
    blocks = sum(sum(1 for i in range(p) if i >> k & 1) for k in range(K))
    want = K * ALPHA + blocks * (n / p) * BETA
    assert pr("alltoall", "bruck", n, p) == pytest.approx(want, rel=1e-12)


def test_reduce_bandwidth_inf_leaves_gamma_out():
    p, n = 8, 8 * 4096
    t = predict("allreduce", "ring", n, star(p), **{**TEXTBOOK, "reduce_bandwidth": float("inf")})
    assert t == pytest.approx(2 * (p - 1) * ALPHA + 2 * (p - 1) / p * n * BETA, rel=1e-12)


def test_switch_latency_adds_per_hop():
    p, n = 4, 4 * 1024
    base = pr("allreduce", "ring", n, p)
    more = pr("allreduce", "ring", n, p, switch_latency=1e-6)
    assert more - base == pytest.approx(2 * (p - 1) * 1e-6, rel=1e-9)


def test_oversubscription_raises_time_by_the_bottleneck():
    # leaf-spine: 2 leaves of 4 hosts; shift-by-4 all cross the leaves
    n = 8 * 2 ** 20
    kw = HOST_TERMS_OFF
    full = T.leaf_spine(2, 4, 4, link_bandwidth=B, link_latency=1e-9)
    thin = T.leaf_spine(2, 4, 1, link_bandwidth=B, link_latency=1e-9)
    s = build_schedule("alltoall", "pairwise", 8, n // 4)
    # pairwise on 8 ranks: xor k; steps k >= 4 cross leaves with 4 flows per leaf
    tf = simulate(s, full, **kw).time
    tt = simulate(s, thin, **kw).time
    lat = 4e-9
    # k=1..3: intra-leaf, block at B; k=4..7: cross; thin: 4 flows share one uplink (B/4)
    blk = n / 8
    assert tf == pytest.approx(7 * (blk / B) + 3 * 2e-9 + 4 * lat, rel=1e-9)
    assert tt == pytest.approx(3 * (blk / B + 2e-9) + 4 * (4 * blk / B + lat), rel=1e-9)


def test_slower_global_link_raises_time_by_its_ratio():
    kw = HOST_TERMS_OFF
    n = 2 ** 24
    fast = T.dragonfly(2, 1, 1, link_bandwidth=B, link_latency=1e-9)
    slow = T.dragonfly(2, 1, 1, link_bandwidth=B, global_bandwidth=B / 4, link_latency=1e-9)
    p = len(fast.hosts)
    s = build_schedule("alltoall", "pairwise", p, n // 4 // p * p)
    r_fast = simulate(s, fast, **kw)
    r_slow = simulate(s, slow, **kw)
    assert r_slow.time > r_fast.time
    # the hottest link of the slow design is a global one
    u, v, b, busy = r_slow.hottest_links(1)[0]
    assert slow.graph.edges[u, v]["kind"] == "global"
    assert busy == pytest.approx(b / (B / 4))


def test_worse_ring_order_costs_what_the_bottleneck_says():
    # 2 leaves x 4 hosts, one spine, uplink as fast as a host link. Linear ring order
    # crosses the uplink once each way; an interleaved order (0,4,1,5,...) crosses 8 times:
    # 4 flows share each uplink direction -> each step takes 4x the block time.
    kw = HOST_TERMS_OFF
    t = T.leaf_spine(2, 4, 1, link_bandwidth=B, link_latency=1e-9)
    n = 8 * 2 ** 20
    s = build_schedule("allreduce", "ring", 8, n // 4)
    good = simulate(s, t, **kw)
    bad = simulate(s, t, placement=np.array([0, 4, 1, 5, 2, 6, 3, 7]), **kw)
    blk = n / 8
    assert good.time == pytest.approx(14 * (blk / B + 4e-9), rel=1e-9)
    assert bad.time == pytest.approx(14 * (4 * blk / B + 4e-9), rel=1e-9)


def test_message_times_match_step_prices():
    p = 8
    s = build_schedule("allreduce", "ring", p, 8 * 1024)
    t = star(p)
    prog = s.program(3)
    mt = cl.model.message_times(s, t, None, 3, itemsize=4, **{**HOST_TERMS_OFF, "overhead": O})
    assert mt.shape == (len(prog),)
    recv = prog["kind"] != 0
    recv &= prog["kind"] != 3
    assert np.allclose(mt[recv], ALPHA + 1024 * 4 * BETA)
    assert np.all(mt[~recv] == 0)


def test_link_load_accounts_every_byte():
    p, n = 8, 8 * 4096
    r = simulate(build_schedule("allreduce", "ring", p, n // 4), star(p))
    load = r.link_load
    assert len(load) == 2 * p
    assert all(v == pytest.approx(2 * (p - 1) / p * n) for v in load.values())
