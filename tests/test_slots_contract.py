"""The slot file's format is the contract: the golden example loads, the jq recipes work."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jq
from conftest import Project, wait_until

from starforge_daemon.core.ledger import Launching, Ledger
from starforge_daemon.core.models import OutcomeKind, ProcessIdentity, Run, SlotStatus
from starforge_daemon.store.slots import SlotTable

GOLDEN = Path(__file__).with_name("data") / "contract-agent-slots.json"
BUSY_COUNT = '[.[] | select(.status == "busy")] | length'
BUSY_NAMES = 'to_entries[] | select(.value.status == "busy") | .key'
PIDS = '.[] | select(.pid != null) | .pid'


def recipes(text: str) -> tuple[int, list[str], list[str]]:
    return (jq.compile(BUSY_COUNT).input_text(text).first(),
            jq.compile(BUSY_NAMES).input_text(text).all(),
            jq.compile(PIDS).input_text(text).all())


def test_contract_example_loads_and_answers_the_recipes() -> None:
    table, problem = SlotTable.load(GOLDEN)
    assert problem is None
    assert set(json.loads(table.render(Ledger()))) == {"junior-dev-a", "junior-dev-b"}
    assert recipes(GOLDEN.read_text()) == (1, ["junior-dev-a"], ["12345"])


def launching(tmp_path: Path) -> tuple[SlotTable, Ledger, Run]:
    """A slot table, and a ledger with agent a's run launching."""
    run = Run(run_id="a-1-x", agent="a", trigger_name="t", trigger_path="/t", log_path="/l",
              started_at=1761368400.0, timeout=60, ticket="52")
    ledger = Ledger()
    ledger.add(Launching(run))
    return SlotTable(tmp_path / "agent-slots.json"), ledger, run


def test_written_slots_have_the_contract_shape(tmp_path: Path) -> None:
    table, ledger, run = launching(tmp_path)
    ledger.started(run.run_id, ProcessIdentity(pid=12345, start=1.0))
    table.ended(replace(run, agent="b", run_id="b-1-x"), OutcomeKind.SUCCEEDED, 1761368460.0)
    table.save(ledger)
    data = json.loads((tmp_path / "agent-slots.json").read_text())
    assert set(data) == {"a", "b"}
    assert data["a"]["status"] == SlotStatus.BUSY and data["a"]["ticket"] == "52"
    assert data["a"]["started_at"] == "2025-10-25T05:00:00Z" and data["a"]["pid"] == "12345"
    assert data["b"] == {**data["b"], "status": "idle", "pid": None, "ticket": None,
                         "started_at": None}


def test_recipes_on_the_file_the_daemon_writes(project: Project) -> None:
    project.trigger("busy.trigger", "junior-dev-a", ticket=52, context={"sleep": 60})
    project.trigger("done.trigger", "junior-dev-b")
    project.start(PARALLEL_DAEMON="true")
    wait_until(lambda: project.slots().get("junior-dev-a", {}).get("pid")
               and project.slots().get("junior-dev-b", {}).get("status") == "idle",
               what="one busy slot with a pid and one idle slot")
    text = project.paths.slots_file.read_text()
    pid = json.loads(text)["junior-dev-a"]["pid"]
    assert isinstance(pid, str) and pid.isdigit()
    assert recipes(text) == (1, ["junior-dev-a"], [pid])
    assert json.loads(text)["junior-dev-a"]["ticket"] == "52"


def test_a_save_shows_what_changed_since_the_last_one(tmp_path: Path) -> None:
    table, ledger, run = launching(tmp_path)
    table.save(ledger)
    assert json.loads(table.render(ledger))["a"]["pid"] is None
    ledger.started(run.run_id, ProcessIdentity(pid=12345, start=1.0))
    table.save(ledger)
    assert json.loads((tmp_path / "agent-slots.json").read_text())["a"]["pid"] == "12345"
    ledger.remove(run.run_id)
    table.ended(run, OutcomeKind.SUCCEEDED, 1761368460.0)
    table.save(ledger)
    slot = json.loads((tmp_path / "agent-slots.json").read_text())["a"]
    assert (slot["status"], slot["pid"], slot["last_run_id"]) == ("idle", None, "a-1-x")
