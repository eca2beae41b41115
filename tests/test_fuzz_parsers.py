"""Any text given to a reader or parser gives a result or a CollectivesError, never another exception."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import collectives as cl
from collectives import units
from collectives.model.calibrate import load_profile
from collectives.topology import from_spec, load
from collectives.topology.slurm import parse_slurm

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# text that looks enough like the real thing to get past the first checks
SPEC_WORDS = st.sampled_from(["fat-tree", "dragonfly", "full-mesh", "torus", "hypercube", "star",
                              "leaf-spine", "ring", "multi-node", "k", "a", "p", "h", "n", "d", "bw",
                              "lat", "g", "4x4", "0", "-1", "3", "8", "1e9", "100Gbps", "1us", "x",
                              "=", ",", ":", "(", ")", "nan", "inf", ""])
spec_text = st.lists(SPEC_WORDS, min_size=1, max_size=8).map("".join) | st.text(max_size=40)

SLURM_WORDS = st.sampled_from(["SwitchName=s0", "SwitchName=s1", "Switches=s[0-1]", "Nodes=n[0-3]",
                               "Nodes=tux[0-3,12]", "LinkSpeed=100", "LinkSpeed=x", "Nodes=n[3-1]",
                               " ", "\n", "#", "\\\n", "Switches=s9", "=", "[", "]", "n[0-99999999]"])
slurm_text = st.lists(SLURM_WORDS, max_size=12).map("".join) | st.text(max_size=80)


def _only_library_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except cl.CollectivesError:
        pass


@FUZZ
@given(spec_text)
def test_spec_strings(text):
    _only_library_errors(from_spec, text)


@FUZZ
@given(slurm_text)
def test_slurm_topology_conf(text):
    _only_library_errors(parse_slurm, text)


@FUZZ
@given(st.text(max_size=30))
def test_sizes_bandwidths_times(text):
    _only_library_errors(units.parse_size, text)
    _only_library_errors(units.parse_size_range, text)
    _only_library_errors(units.parse_bandwidth, text)
    _only_library_errors(units.parse_time, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["nodes", "edges", "links", "id", "kind", "source", "target", "bandwidth",
                         "latency", "hosts", "graph", "directed", "multigraph", "alpha", "beta"]),
        children, max_size=5),
    max_leaves=20)


@FUZZ
@given(json_values)
def test_topology_json_files(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("fuzz") / "t.json"
    path.write_text(json.dumps(value))
    _only_library_errors(load, path)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_a_topology_or_profile_file(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("fuzzb")
    for name in ("t.json", "t.graphml", "topology.conf", "t.unknown"):
        (d / name).write_bytes(data)
        _only_library_errors(load, d / name)
    (d / "profile.json").write_bytes(data)
    _only_library_errors(load_profile, d / "profile.json")


@FUZZ
@given(json_values)
def test_profiles(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("fuzzp") / "profile.json"
    path.write_text(json.dumps(value))
    _only_library_errors(load_profile, path)


def test_missing_files_are_os_errors(tmp_path):
    with pytest.raises(cl.TopologyFileError):
        load(tmp_path / "nope.json")
    with pytest.raises(cl.TopologyFileError):
        load_profile(tmp_path / "nope.json")
