"""`collectives topo draw`: layouts that stay readable for tori of any dimension and large fat-trees."""

import pytest

from collectives import topology as T
from collectives.topology import cli as topo_cli


@pytest.mark.parametrize("dims", [(4, 4, 4), (3, 5), (2, 3, 2, 2)])
def test_torus_slices_are_grids_with_unit_links(dims):
    topo = T.torus(dims)
    pos, edges = topo_cli._layout(topo)
    assert len(set(pos.values())) == len(topo.hosts), "two nodes drawn on one spot"
    for u, v in edges:
        (x0, y0), (x1, y1) = pos[u], pos[v]
        assert abs(x0 - x1) + abs(y0 - y1) == pytest.approx(1.0), (u, v)
    # what is left out is exactly the wrap-around links of the two slice dimensions (one per
    # ring of length > 2) and every link along the other dimensions
    hosts = len(topo.hosts)
    wraps = sum(hosts // d for d in dims[:2] if d > 2)
    along_others = sum(hosts // d * (d if d > 2 else d - 1) for d in dims[2:])
    assert topo.graph.number_of_edges() - len(edges) == wraps + along_others


def test_large_fat_tree_is_drawn_with_hosts_folded_and_pods_apart(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "ft.png"
    assert topo_cli.main(["draw", "fat-tree:k=16", "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    topo = T.resolve("fat-tree:k=16")
    folded, attached = topo_cli._folded(topo)
    assert not set(topo.hosts) & set(folded), "hosts must be folded into their switches"
    assert sum(attached.values()) == len(topo.hosts)
    # leaves appear in host order, so each pod's leaves sit side by side
    first = {}
    for i, h in enumerate(topo.hosts):
        first.setdefault(next(iter(topo.graph.adj[h])), i)
    leaves = sorted(first, key=first.get)
    pos = topo_cli._layered(folded, leaves, topo.hop_levels())
    xs = [pos[n][0] for n in leaves]
    assert xs == sorted(xs)
