"""What the Slurm tests share: the cluster this machine's ``sbatch`` reaches (``SLURM_CONF``,
as ``.ci/slurm up`` prints it), or a skip that says how to get one (a failure under
``STARFORGE_REQUIRE_SLURM=1``, as in CI)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, wait_until

from starforge_daemon.runtime.local.containment import project_id
from starforge_daemon.runtime.slurm.cluster import Cluster, ClusterError, Job

LOCK = Path(tempfile.gettempdir()) / "starforge-slurm-tests.lock"


@functools.cache
def _missing_cluster() -> str | None:
    """Why no cluster can be used here, asked once per test process (the Slurm commands wait
    up to a minute for a configuration file that is not there)."""
    config = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    if not os.path.exists(config):
        return f"no Slurm configuration at {config}"
    try:
        Cluster().ping()
    except ClusterError as error:
        return str(error)
    return None


def require_cluster() -> None:
    problem = _missing_cluster()
    if problem is not None:
        message = (f"no Slurm cluster answers ({problem}); start one with "
                   "`bash .ci/slurm up DIR` and export SLURM_CONF=DIR/slurm.conf")
        if os.environ.get("STARFORGE_REQUIRE_SLURM") == "1":
            pytest.fail(message + "; STARFORGE_REQUIRE_SLURM=1 demands it", pytrace=False)
        pytest.skip(message)


def answers(cluster: Cluster) -> bool:
    try:
        cluster.ping()
    except ClusterError:
        return False
    return True


def jobs_of(project: Project) -> list[Job]:
    """The project's jobs the controller knows, ended ones included."""
    prefix = f"sf-{project_id(project.root)}."
    return [job for job in Cluster().jobs() if job.name.startswith(prefix)]


def active_jobs(project: Project) -> list[Job]:
    return [job for job in jobs_of(project) if not job.over]


@contextlib.contextmanager
def cluster_lock(exclusive: bool) -> Iterator[None]:
    """Shared by the tests that use the cluster, exclusive for one that stops its controller
    (the pytest-xdist workers run tests at the same time)."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def _slurm_project(project: Project, exclusive: bool) -> Iterator[Project]:
    """A project whose runs are Slurm jobs; the test fails if it leaves a job running."""
    with cluster_lock(exclusive):  # never asked while another test stops the controller
        require_cluster()
        project.write_env(RUNNER="slurm")
        yield project
        if project.paths.pid_file.exists():
            project.cli("daemon", "stop", check=False)
        left = active_jobs(project)
        for job in left:
            subprocess.run(["scancel", "--full", "--signal=KILL", str(job.job_id)], check=False)
            subprocess.run(["scancel", str(job.job_id)], check=False)
        wait_until(lambda: not active_jobs(project), 30, "the test's jobs to end")
    assert not left, f"test left Slurm jobs behind: {[job.job_id for job in left]}"


@pytest.fixture
def slurm_project(project: Project) -> Iterator[Project]:
    yield from _slurm_project(project, exclusive=False)


@pytest.fixture
def slurm_project_alone(project: Project) -> Iterator[Project]:
    """With no other test using the cluster meanwhile (its controller is stopped)."""
    yield from _slurm_project(project, exclusive=True)
