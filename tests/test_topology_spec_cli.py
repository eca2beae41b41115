"""Spec strings, resolve() and the `collectives topo` command."""

import json

import pytest

from collectives.errors import TopologyError, TopologyFileError
from collectives.topology import fat_tree, from_spec, resolve, write
from collectives.topology.cli import main


@pytest.mark.parametrize("spec, hosts, switches", [
    ("fat-tree:k=8", 128, 80), ("fat-tree:8", 128, 80), ("fat_tree:k=8,oversub=2", 128, 56),
    ("dragonfly:a=4,p=2,h=2", 72, 36), ("dragonfly:a=4,p=2,h=2,g=5,arrangement=circulant", 40, 20),
    ("full-mesh:n=16", 16, 0), ("torus:4x4x4", 64, 0), ("torus:dims=4x4", 16, 0),
    ("hypercube:d=6", 64, 0), ("star:n=8", 8, 1), ("ring:n=5", 5, 0),
    ("leaf-spine:leaves=4,hosts=8,spines=2", 32, 6), ("Fat-Tree:K=4", 16, 20),
    ("multi-node:nodes=4,devices=8", 32, 5),
    ("multi-node:nodes=2,devices=4,intra=mesh,inter=(fat-tree:k=4,bw=400Gbps)", 8, 20),
])
def test_specs(spec, hosts, switches):
    t = from_spec(spec)
    assert (len(t.hosts), len(t.switches)) == (hosts, switches)


def test_spec_units():
    t = from_spec("fat-tree:k=4,bw=400Gbps,lat=1us,switch-lat=300ns")
    e = t.graph.edges["h0", "e0_0"]
    assert (e["bandwidth"], e["latency"]) == (50e9, 1e-6)
    assert t.graph.nodes["e0_0"]["latency"] == pytest.approx(3e-7)
    d = from_spec("dragonfly:a=4,p=2,h=2,global-bw=12.5GB/s,local-bw=200Gbps,global-lat=2us")
    assert d.params["global_bandwidth"] == 12.5e9 and d.params["local_bandwidth"] == 25e9


@pytest.mark.parametrize("spec, match", [
    ("fat-tree:k=7", "k must be even"),
    ("fat-tree:k=x", "must be an integer"),
    ("fat-tree:k=4,bw=100Gbpx", "100Gbpx"),
    ("fat-tree:k=4,lat=1", "no unit"),
    ("fat-tree:k=4,speed=1", "unknown option 'speed'"),
    ("fat-tree:k=4,k=8", "given twice"),
    ("fat-tree", "needs k"),
    ("dragonfly:a=4,p=2", "needs h"),
    ("dragonfly:a=4,p=2,h=2,g=99", "impossible"),
    ("fatree:k=4", "did you mean 'fat-tree'"),
    ("", "empty"),
    ("torus:4x0", "torus dimension"),
    ("leaf-spine:4,8", "needs a name"),
    ("multi-node:nodes=2,devices=2,inter=(fat-tree:k=4", r"'\(' without '\)'"),
    ("multi-node:nodes=2,devices=2,inter=fat-tree:k=4)", r"'\)' without '\('"),
    ("multi-node:nodes=2,devices=2,inter=(fat-tree:k=4]", r"'\]' without '\['"),
])
def test_spec_errors(spec, match):
    with pytest.raises(TopologyError, match=match):
        from_spec(spec)


def test_nested_spec_splits_at_top_level_commas_only():
    t = from_spec("multi-node:nodes=2,devices=2,inter=(fat-tree:k=4,bw=200Gbps)")
    assert len(t.hosts) == 4


def test_resolve(tmp_path):
    t = fat_tree(4)
    assert resolve(t) is t
    assert len(resolve("fat-tree:k=4").hosts) == 16
    p = tmp_path / "ft.json"
    write(t, p)
    assert resolve(str(p)).hosts == t.hosts
    assert resolve(p).hosts == t.hosts
    with pytest.raises(TopologyFileError):
        resolve(str(tmp_path / "nope.json"))
    with pytest.raises(TopologyError, match="unknown topology"):
        resolve("clusterfoo")


def test_cli_describe_text_and_json(capsys):
    assert main(["describe", "fat-tree:k=4"]) == 0
    out = capsys.readouterr().out
    assert "hosts           16" in out and "diameter        6 hops" in out
    assert main(["topo", "describe", "fat-tree:k=4", "--json", "--port-cost", "100",
                 "--cable-cost", "10", "--nic-port-cost", "0"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hosts"] == 16 and d["switches"] == 20 and d["bisection_bandwidth"] == 8 * 12.5e9
    assert d["cost"]["total"] == 80 * 100 + 48 * 10


def test_cli_errors_are_one_line(capsys):
    assert main(["describe", "fat-tree:k=7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "k must be even" in err and "Traceback" not in err
    assert main(["describe", "/no/such/file.json"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["describe", "star:n=4", "--port-cost", "-3"])
    assert e.value.code == 2


def test_cli_export_and_routes(tmp_path, capsys):
    out = tmp_path / "t.graphml"
    assert main(["export", "torus:4x4", "-o", str(out)]) == 0
    assert main(["describe", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["hosts"] == 16
    assert main(["export", "dragonfly:a=2,p=1,h=1", "-o", str(tmp_path / "x.conf")]) == 2
    assert main(["routes", "fat-tree:k=4", "h0", "h15"]) == 0
    assert "4 route(s)" in capsys.readouterr().out
    assert main(["families"]) == 0


def test_cli_draw(tmp_path, capsys):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(["draw", "star:n=4", "-o", str(tmp_path / "x.png")]) == 2
        assert "pip install matplotlib" in capsys.readouterr().err
    else:
        assert main(["draw", "fat-tree:k=4", "-o", str(tmp_path / "x.png")]) == 0
        assert (tmp_path / "x.png").stat().st_size > 1000
