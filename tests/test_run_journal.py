"""A run's prompt and hand-off files go with its journal entry: the ones written for a run
created by this daemon, and both possible ones for a run an earlier daemon left."""

from __future__ import annotations

import time
from pathlib import Path

from starforge_daemon.core.models import Run
from starforge_daemon.store.journal import RunJournal, runs_in_flight
from starforge_daemon.store.paths import ProjectPaths


def _paths(tmp_path: Path) -> ProjectPaths:
    paths = ProjectPaths(tmp_path)
    paths.ensure()
    return paths


def _run(paths: ProjectPaths, run_id: str) -> Run:
    return Run(run_id=run_id, agent="a1", trigger_name=f"{run_id}.trigger",
               trigger_path=str(paths.running / f"{run_id}.trigger"),
               log_path=str(paths.logs / f"{run_id}.log"), started_at=time.time(), timeout=60.0)


def test_done_removes_the_files_written_for_the_run(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    journal = RunJournal(paths)
    prompt, handoff = paths.prompt_file("r1"), paths.upstream_file("r1")
    prompt.write_text("the prompt")
    journal.create(_run(paths, "r1"), (prompt,))
    handoff.write_text("[]")  # not written for the run: left alone
    journal.done("r1")
    assert not prompt.exists() and handoff.exists()
    assert runs_in_flight(paths) == set()


def test_a_run_left_by_an_earlier_daemon_has_both_its_files_removed(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    RunJournal(paths).create(_run(paths, "r1"), ())  # the earlier daemon, gone since
    RunJournal(paths).create(_run(paths, "r2"), ())
    files = [paths.prompt_file("r1"), paths.upstream_file("r1"),
             paths.prompt_file("r2"), paths.upstream_file("r2")]
    for file in files:
        file.write_text("x")
    later = RunJournal(paths)
    assert {entry.run.run_id for entry in later.entries()} == {"r1", "r2"}
    later.done("r1")
    later.done("r2")
    assert not any(file.exists() for file in files)
    assert runs_in_flight(paths) == set()
