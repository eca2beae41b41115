"""What a new user meets when installing: the distribution name, LICENSE, CHANGELOG, type hints,
a build that names the missing C compiler, and the advice when a checkout shadows the install."""

import ast
import inspect
import os
import shutil
import subprocess
import sys

import pytest

import collectives

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = "collectives-mpi"


def _pyproject():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def _source(name):
    path = os.path.join(ROOT, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} is not next to the tests (an installed copy of the tests)")
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_distribution_name_is_not_the_placeholder_on_pypi():
    project = _pyproject()["project"]
    assert project["name"] == DIST
    assert project["scripts"]["collectives"] == "collectives.cli:main"
    # no install line names the unrelated placeholder, in the README or the docs
    pages = [_source("README.md")]
    for folder, _, files in os.walk(os.path.join(ROOT, "docs")):
        pages += [open(os.path.join(folder, f), encoding="utf-8").read()
                  for f in files if f.endswith((".md", ".rst"))]
    for text in pages:
        assert 'install "collectives[' not in text and "install 'collectives[" not in text
        assert "pip install collectives " not in text and "pip install collectives\n" not in text
    assert DIST in pages[0], "the README names the distribution"


def test_license_and_changelog():
    text = _source("LICENSE")
    assert "BSD 3-Clause License" in text
    assert "Copyright (c) 2026, the collectives developers" in text
    assert _pyproject()["project"]["license"] == "BSD-3-Clause"   # an SPDX expression (PEP 639)
    from importlib.metadata import metadata

    assert metadata("collectives-mpi")["License-Expression"] == "BSD-3-Clause"
    log = _source("CHANGELOG.md")
    assert "## [Unreleased]" in log and f"## [{collectives.__version__}]" in log


def test_py_typed_is_shipped_and_the_public_api_is_annotated():
    assert os.path.exists(os.path.join(os.path.dirname(collectives.__file__), "py.typed"))
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["collectives"]
    public = [name for name, fn in vars(collectives.Communicator).items()
              if (callable(fn) or isinstance(fn, property)) and (not name.startswith("_") or name == "__init__")]
    assert {"allreduce", "alltoall", "reduce_scatter", "allgather", "broadcast", "barrier", "plan",
            "predict", "free", "mpi_comm", "__init__"} <= set(public)
    for name in public:
        fn = getattr(collectives.Communicator, name)
        fn = fn.fget if isinstance(fn, property) else fn
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
        for p in list(sig.parameters.values())[1:]:
            assert p.annotation is not inspect.Parameter.empty, f"{name}({p.name}) has no type"


def _check_c_compiler():
    """setup.py's check_c_compiler, without running the rest of setup.py (which builds)."""
    tree = ast.parse(_source("setup.py"))
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check_c_compiler"]
    assert fn, "setup.py has no check_c_compiler()"
    namespace = {}
    exec("import os, shlex, shutil, sys, sysconfig", namespace)
    exec(compile(ast.Module(body=fn, type_ignores=[]), "setup.py", "exec"), namespace)
    return namespace["check_c_compiler"]


def test_build_without_a_c_compiler_says_what_to_install(monkeypatch):
    import shlex
    import sysconfig

    check = _check_c_compiler()
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CC", raising=False)
    configured = shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    if os.path.isabs(configured):   # this Python names its compiler by full path: PATH cannot hide it
        monkeypatch.setenv("CC", os.path.basename(configured))
    with pytest.raises(SystemExit) as info:
        check()
    text = str(info.value.code)
    assert "no C compiler found" in text
    assert "apt-get install build-essential" in text and "set CC" in text
    monkeypatch.setenv("CC", "/nonexistent/bin/mycc -O2")
    with pytest.raises(SystemExit, match=r"'/nonexistent/bin/mycc' \(from CC\)"):
        check()
    monkeypatch.setenv("CC", f"{sys.executable} -O2")   # any executable stands in for a compiler
    assert check() == sys.executable


def test_an_unbuilt_checkout_that_shadows_the_install_gives_the_right_advice(tmp_path):
    """A script run from inside a source tree imports its unbuilt package, not the installed one."""
    pkg = os.path.dirname(os.path.abspath(collectives.__file__))
    core = [f for f in os.listdir(pkg) if f.startswith("_executor") and not f.endswith((".pyx", ".c"))]
    if not core:
        pytest.skip("the installed collectives has no compiled core to shadow")
    checkout = tmp_path / "checkout"
    shutil.copytree(pkg, checkout / "collectives",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "_executor.c*"))
    (checkout / "setup.py").write_text("# a source tree\n")
    # an installed copy elsewhere on the path: its compiled core is found there, never loaded
    installed = tmp_path / "site" / "collectives"
    installed.mkdir(parents=True)
    (installed / core[0]).write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    # as in a regular install: no editable-install finder supplying the core from elsewhere
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "import collectives; collectives.Communicator")
    r = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    assert "BuildMismatch" in r.stderr, r.stderr
    assert f"imported from {checkout / 'collectives'} is a source tree without a built core" in r.stderr
    assert f"it shadows the installed package in {installed}" in r.stderr
    assert "Run from outside the source tree, or build in place with `pip install -e .`" in r.stderr
    assert "Reinstall it" not in r.stderr
