"""Dragonfly routing in the model: the closed-form Valiant against the router's
paths, and adaptive (UGAL-style) routing against minimal and Valiant."""

import numpy as np
import pytest

import collectives as cl
from collectives.errors import ModelError, TopologyError
from collectives.model.maxmin import incidence
from collectives.model.network import Network
from collectives.topology import dragonfly, fat_tree

INF = float("inf")


def _predict(coll, alg, n, topo, routing, **kw):
    return cl.model.predict(coll, alg, n, topo, routing=routing, reduce_bandwidth=INF, **kw)


@pytest.mark.parametrize("args", [(4, 2, 2), (2, 1, 1), (4, 1, 2, None, "circulant"),
                                  (3, 1, 2, None, "relative")])
def test_closed_form_valiant_matches_the_router(args):
    t = dragonfly(*args)
    fast = Network(t, "valiant")
    assert fast.method == "closed form (dragonfly valiant)"
    slow = Network(t, "valiant")
    slow._fast = None                     # per router pair, from Router.link_fractions
    H = len(t.hosts)
    rng = np.random.default_rng(1)
    s, d = rng.integers(0, H, 400), rng.integers(0, H, 400)
    a, b = fast.route(s, d), slow.route(s, d)
    A = incidence(a, fast.capacity).dense()
    B = incidence(b, slow.capacity).dense()
    np.testing.assert_allclose(A, B, atol=1e-12)
    np.testing.assert_allclose(a.latency, b.latency, rtol=1e-12)


def _group_to_group(t):
    """All-to-all between the hosts of group 0 and those of group 1 (both ways)."""
    g = np.array([t.graph.nodes[t.attachment(h)]["group"] for h in t.hosts])
    A, B = np.nonzero(g == 0)[0], np.nonzero(g == 1)[0]
    src = np.concatenate([np.repeat(A, len(B)), np.repeat(B, len(A))])
    dst = np.concatenate([np.tile(B, len(A)), np.tile(A, len(B))])
    return src, dst


def _step_time(t, routing, src, dst, nbytes=1 << 20):
    net = Network(t, routing)
    inc = incidence(net.route(src, dst), net.capacity)
    rates = cl.model.maxmin(inc)
    return float((net.route(src, dst).latency + nbytes / rates).max())


@pytest.mark.parametrize("args", [(4, 2, 2), (6, 3, 3), (4, 2, 2, 6)])
def test_adaptive_beats_minimal_on_group_to_group_traffic(args):
    t = dragonfly(*args)
    src, dst = _group_to_group(t)
    tm = _step_time(t, "minimal", src, dst)
    tv = _step_time(t, "valiant", src, dst)
    ta = _step_time(t, "adaptive", src, dst)
    assert ta < 0.75 * tm                  # one global link vs spread over the other groups
    assert ta <= max(tm, tv) * (1 + 1e-9)
    net = Network(t, "adaptive")
    assert net.decisions(src, dst).all()   # every flow between the two groups goes Valiant


@pytest.mark.parametrize("coll, alg", [("allreduce", "ring"), ("allreduce", "rhd"),
                                       ("alltoall", "pairwise"), ("alltoall", "bruck"),
                                       ("allreduce", "hierarchical"), ("allgather", "ring")])
@pytest.mark.parametrize("args", [(4, 2, 2), (4, 1, 2, 5)])
def test_adaptive_never_slower_than_the_worse_of_minimal_and_valiant(coll, alg, args):
    t = dragonfly(*args)
    H = len(t.hosts)
    n = H * 4 * 1024
    ranks = H if alg != "rhd" else 1 << (H.bit_length() - 1)
    times = {r: _predict(coll, alg, n, t, r, ranks=ranks) for r in ("minimal", "valiant", "adaptive")}
    assert times["adaptive"] <= max(times["minimal"], times["valiant"]) * (1 + 1e-9)


def test_adaptive_keeps_uniform_traffic_minimal():
    t = dragonfly(4, 2, 2)
    H = len(t.hosts)
    s, d = np.divmod(np.arange(H * H), H)
    keep = s != d
    net = Network(t, "adaptive")
    assert not net.decisions(s[keep], d[keep]).any()


@pytest.mark.parametrize("args", [(4, 2, 2), (4, 1, 2, 5)])
def test_adaptive_weights_decide(args):
    """Uniform all-to-all stays minimal by flow count; when the bytes say that the
    flows from group 0 to group 1 dominate, those go Valiant and only those."""
    t = dragonfly(*args)
    H = len(t.hosts)
    g = np.array([t.graph.nodes[t.attachment(h)]["group"] for h in t.hosts])
    s, d = np.divmod(np.arange(H * H), H)
    s, d = s[s != d], d[s != d]
    net = Network(t, "adaptive")
    assert not net.decisions(s, d).any()
    hot = (g[s] == 0) & (g[d] == 1)
    w = np.where(hot, 1e6, 1.0)
    go = net.decisions(s, d, weights=w)
    assert go[hot].all() and not go[~hot].any()


def test_adaptive_is_accepted_everywhere_routing_is():
    t = dragonfly(4, 2, 2)
    n = len(t.hosts) * 4096
    assert _predict("alltoall", "pairwise", n, t, "adaptive") > 0
    plan = cl.planner.choose("alltoall", n, t, routing="adaptive")
    assert plan.predicted_time > 0
    # other families: adaptive falls back to ECMP, as minimal does
    f = fat_tree(4)
    assert cl.model.predict("allreduce", "ring", 1 << 20, f, routing="adaptive") == \
        cl.model.predict("allreduce", "ring", 1 << 20, f)


def test_routing_errors():
    t = dragonfly(4, 2, 2)
    with pytest.raises(ModelError, match="adaptive"):
        cl.model.predict("allreduce", "ring", 1 << 20, t, routing="ugal")
    with pytest.raises(TopologyError, match="no fixed routes"):
        t.router("adaptive")
    with pytest.raises(ModelError, match="decisions"):
        Network(t, "minimal").decisions([0], [5])


def test_workload_simulate_takes_adaptive_routing():
    W = cl.workload
    step = W.TrainingStep(W.preset("llama3-70b"), W.Layout(dp=4, tp=8, pp=2), global_batch=8,
                          micro_batch=1, accelerator="free")
    t = dragonfly(4, 2, 2)
    times = {r: W.simulate(step, t, routing=r).time for r in ("minimal", "valiant", "adaptive")}
    assert times["adaptive"] <= max(times["minimal"], times["valiant"]) * (1 + 1e-9)
