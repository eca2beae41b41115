"""The launcher: which MPI's mpiexec it is, and the flags Open MPI's needs on one machine."""

import importlib.metadata
import os
import stat

import pytest

from collectives import launcher
from collectives.errors import CollectivesError


def _fake_launcher(tmp_path, name, version_text):
    path = tmp_path / name
    path.write_text("#!/bin/sh\ncat <<'END'\n" + version_text + "\nEND\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


OPEN_MPI_5 = "mpiexec (Open MPI) 5.0.11\n\nReport bugs to https://www.open-mpi.org/community/help/"
PRRTE = "prterun (PRRTE) 3.0.12\n\nReport bugs to https://github.com/openpmix/prrte"
OPEN_MPI_4 = "mpirun (Open MPI) 4.1.6\n\nReport bugs to http://www.open-mpi.org/community/help/"
HYDRA = "HYDRA build details:\n    Version:                                 4.2.2\n    Release Date:  ..."


@pytest.mark.parametrize("text,family", [(OPEN_MPI_5, "openmpi"), (PRRTE, "openmpi"), (OPEN_MPI_4, "openmpi"),
                                         (HYDRA, "mpich"), ("some launcher 1.0", "unknown")],
                         ids=["open-mpi-5", "prrte", "open-mpi-4", "hydra", "other"])
def test_family_from_version_output(tmp_path, text, family):
    assert launcher.launcher_family(_fake_launcher(tmp_path, "mpiexec", text)) == family


def test_a_launcher_that_does_not_run_is_unknown(tmp_path):
    assert launcher.launcher_family(str(tmp_path / "missing-mpiexec")) == "unknown"


def test_open_mpi_gets_root_and_oversubscription_flags(tmp_path, monkeypatch):
    fake = _fake_launcher(tmp_path, "mpiexec", OPEN_MPI_5)
    monkeypatch.setenv("COLLECTIVES_MPIEXEC", fake)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cmd = launcher.mpiexec_command(4, ["python", "x.py"])
    assert cmd[:3] == [fake, "-n", "4"] and cmd[-2:] == ["python", "x.py"]
    assert "--allow-run-as-root" in cmd and "--oversubscribe" in cmd
    # the flags come before the program, or Open MPI would pass them to it
    assert cmd.index("--oversubscribe") < cmd.index("python")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert launcher.mpiexec_command(2, ["python"]) == [fake, "-n", "2", "python"]


def test_mpich_gets_no_extra_flags(tmp_path, monkeypatch):
    fake = _fake_launcher(tmp_path, "mpiexec", HYDRA)
    monkeypatch.setenv("COLLECTIVES_MPIEXEC", fake)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert launcher.mpiexec_command(3, ["python"]) == [fake, "-n", "3", "python"]


def test_rank_count_below_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTIVES_MPIEXEC", _fake_launcher(tmp_path, "mpiexec", OPEN_MPI_5))
    with pytest.raises(CollectivesError, match="at least 1"):
        launcher.mpiexec_command(0, ["python"])


def test_launch_env_drops_an_enclosing_jobs_identity_and_keeps_settings():
    env = {"PMI_RANK": "1", "PMI_SIZE": "4", "PMI_FD": "7", "PMIX_RANK": "1", "PMIX_NAMESPACE": "job",
           "OMPI_COMM_WORLD_SIZE": "4", "HYDRA_CONTROL_FD": "9", "MPI_LOCALNRANKS": "4",
           "PMIX_MCA_gds": "hash", "OMPI_MCA_btl": "self,vader", "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
           "HYDRA_HOST_FILE": "hosts", "COLLECTIVES_TIMEOUT": "60", "PATH": "/bin"}
    out = launcher.launch_env(env)
    assert out == {"PMIX_MCA_gds": "hash", "OMPI_MCA_btl": "self,vader",
                   "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe", "HYDRA_HOST_FILE": "hosts",
                   "COLLECTIVES_TIMEOUT": "60", "PATH": "/bin"}
    assert env["PMI_RANK"] == "1", "the caller's mapping is not changed"


def test_installed_requirements_name_mpich_only_when_built_with_its_wheel():
    """Installing collectives must never pull the mpich wheel over another MPI the core was built with."""
    from collectives import _buildinfo as build

    try:
        requires = importlib.metadata.requires("collectives-mpi") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("collectives is not installed (a source tree built in place has no metadata)")
    wants_mpich = any(r.split(";")[0].strip().startswith("mpich") for r in requires)
    built_with_mpich_wheel = build.MPI_WHEEL == "mpich" and build.MPICC_SOURCE != "MPICC environment variable"
    assert wants_mpich == built_with_mpich_wheel, (requires, build.MPICC, build.MPICC_SOURCE, build.MPI_WHEEL)
