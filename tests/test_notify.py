"""Notifications: the real daemon tells a loopback HTTP receiver through Apprise (json://), and
runs ON_FINISH_COMMAND; `starforge notify test`; the grouping and the notices' words."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, wait_until

from starforge_daemon.core import events as ev
from starforge_daemon.core.ledger import Ledger, Running
from starforge_daemon.core.models import ProcessIdentity, Run
from starforge_daemon.core.notice_kinds import NoticeKind, parse_kinds
from starforge_daemon.core.notices import Throttle, notice_of
from starforge_daemon.core.streams import Progress
from starforge_daemon.core.streams.reports import LiveProgress
from starforge_daemon.daemon.observers.notify import long_runs

DEFAULT_KINDS = parse_kinds("failed,timed_out,stalled,dead_letter,held,adopted")


class Receiver:
    """A webhook on 127.0.0.1: records each JSON message Apprise posts, answers with the next
    status of ``answers`` (then 200), or holds every request until ``release`` when ``hang``."""

    def __init__(self, answers: list[int] | None = None, hang: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.answered: list[int] = []
        self.held = 0
        self._answers = list(answers or [])
        self._hang = hang
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver._hang:
                    receiver.held += 1
                    receiver._released.wait()
                status = receiver._answers.pop(0) if receiver._answers else 200
                if status == 200:
                    receiver.messages.append(json.loads(body))
                receiver.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"json://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        made.append(Receiver(**options))
        return made[-1]

    yield make  # type: ignore[misc]
    for each in made:
        each.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"json://127.0.0.1:{port}/hook"


def text(message: dict[str, Any]) -> str:
    return f"{message['title']}\n{message['message']}"


def test_a_failed_run_is_told_once_with_its_agent_ticket_reason_and_log(
        project: Project, receiver: Any) -> None:
    hook = receiver()
    project.start(NOTIFY_URLS=hook.url)
    project.trigger("a.trigger", "agent-a", ticket=52, context={"exit": 3})
    project.trigger("b.trigger", "agent-b", context={})  # succeeded: not in NOTIFY_ON
    project.wait_archived(2)
    wait_until(lambda: hook.messages, what="a message")
    project.stop()
    result = project.result("a.trigger")
    [message] = hook.messages
    assert message["title"] == f"starforge {project.root.name}: agent-a failed on ticket 52"
    assert "outcome: failed: exited with status 3" in message["message"]
    assert f"log: {result['log']}" in message["message"]
    assert f"starforge logs --run {result['run_id']}" in message["message"]


def test_a_burst_of_failures_is_one_message_and_one_grouped_message_with_the_count(
        project: Project, receiver: Any) -> None:
    hook = receiver()
    project.start(NOTIFY_URLS=hook.url, PARALLEL_DAEMON="true")
    agents = [f"agent-{n}" for n in range(5)]
    for agent in agents:
        project.trigger(f"{agent}.trigger", agent, context={"gate": "GATE", "exit": 1})
    wait_until(lambda: len(project.started()) == 5, what="all five runs started")
    project.open_gate("GATE")
    project.wait_archived(5)
    wait_until(lambda: hook.messages, what="the first message")
    project.stop()  # the grouped message waits for NOTIFY_MIN_INTERVAL (60s) or the stop
    first, grouped = hook.messages
    assert first["title"].endswith(" failed")
    assert grouped["title"] == f"starforge {project.root.name}: 4 more: failed"
    told = [line.split(" failed")[0] for line in [first["title"].split(": ")[1],
                                                   *grouped["message"].splitlines()]]
    assert sorted(told) == agents


def test_a_trigger_that_fails_its_last_retry_is_a_dead_letter(project: Project,
                                                               receiver: Any) -> None:
    hook = receiver()
    project.start(NOTIFY_URLS=hook.url, NOTIFY_ON="dead_letter", MAX_RETRIES=1, RETRY_BACKOFF=0)
    project.trigger("a.trigger", "agent-a", ticket=3, context={"exit": 1})
    project.wait_archived(1)
    project.stop()
    assert len(project.started()) == 2
    assert [message["title"] for message in hook.messages] \
        == [f"starforge {project.root.name}: agent-a gave up after 2 attempts on ticket 3"]


def test_a_message_the_receiver_refuses_once_is_sent_again(project: Project,
                                                           receiver: Any) -> None:
    hook = receiver(answers=[500])
    project.start(NOTIFY_URLS=hook.url)
    project.trigger("a.trigger", "agent-a", context={"exit": 1})
    wait_until(lambda: hook.messages, what="the second try's message")
    assert hook.answered == [500, 200]
    assert "agent-a failed" in hook.messages[0]["title"]
    assert "NOTIFY" not in project.log(), "a retry that works is no failure"


def test_a_receiver_that_never_answers_holds_up_no_run(project: Project,
                                                       receiver: Any) -> None:
    hook = receiver(hang=True)
    project.start(NOTIFY_URLS=hook.url)
    project.trigger("first.trigger", "agent-a", context={"exit": 1})
    wait_until(lambda: hook.held, what="the receiver holding the first message")
    project.trigger("second.trigger", "agent-b", context={"exit": 1})
    project.trigger("third.trigger", "agent-a", context={})
    assert project.wait_archived(3) == {"first.trigger": "failed", "second.trigger": "failed",
                                        "third.trigger": "done"}
    assert not hook.answered, "all of it happened while the receiver still held its request"
    assert project.log().count(" SPAWNED ") == 3
    hook.release()


def test_a_long_run_is_told_while_it_runs(project: Project, receiver: Any) -> None:
    hook = receiver()
    project.start(NOTIFY_URLS=hook.url, NOTIFY_PROGRESS_EVERY=0.2)
    project.trigger("long.trigger", "agent-a", ticket=9, context={"gate": "GATE"})
    wait_until(lambda: hook.messages, what="a progress message")
    assert hook.messages[0]["title"] == f"starforge {project.root.name}: agent-a still running " \
                                        "on ticket 9"
    assert hook.messages[0]["message"].startswith("running for ")
    assert " PROGRESS agent=agent-a ticket=9 " in project.log()
    project.open_gate("GATE")
    project.wait_archived(1)


def test_on_finish_command_runs_with_its_placeholders_and_its_failure_shows(
        project: Project) -> None:
    out = project.root / "finished"
    script = project.root / "on_finish.py"
    script.write_text("import json, sys\n"
                      "open(sys.argv[1] + '-' + sys.argv[4], 'w').write(json.dumps(sys.argv[2:]))\n"
                      "print('it went', sys.argv[4])\n"
                      "sys.exit(sys.argv[4] != 'succeeded')\n")
    command = (f"{sys.executable} {script} {out} {{agent}} {{ticket}} {{outcome}} {{exit_code}} "
               "{run_id} {trigger_file} {result_file} {action} {from_agent}")
    project.start(ON_FINISH_COMMAND=command)
    project.trigger("ok.trigger", "agent-a", ticket=7, action="build", from_agent="boss",
                    context={})
    wait_until(lambda: Path(f"{out}-succeeded").exists(), what="the command's file")
    result = project.result("ok.trigger")
    archived = project.paths.triggers / "processed" / "ok.trigger"
    assert json.loads(Path(f"{out}-succeeded").read_text()) == [
        "agent-a", "7", "succeeded", "0", result["run_id"], str(archived),
        f"{archived}.result.json", "build", "boss"]
    project.trigger("bad.trigger", "agent-a", context={"exit": 2})
    status = wait_until(lambda: json.loads(project.cli("status", "--json").stdout)
                        ["notify_error"], what="the command's failure in the status")
    assert "ON_FINISH_COMMAND: exited with status 1: it went failed" in status
    assert "notifications failing: " in project.cli("status").stdout
    assert project.log().count("ERROR   NOTIFY") == 1


def test_notify_test_says_what_each_url_answered(project: Project, receiver: Any) -> None:
    hook = receiver()
    project.write_env(NOTIFY_URLS=hook.url)
    good = project.cli("notify", "test")
    assert good.stdout == f"ok     {hook.url}\n"
    assert [message["title"] for message in hook.messages] \
        == [f"starforge {project.root.name}: test"]
    dead = closed_port_url()
    project.write_env(NOTIFY_URLS=f"{hook.url}, {dead}")
    bad = project.cli("notify", "test", check=False)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == f"ok     {hook.url}"
    assert bad.stdout.splitlines()[1].startswith(f"FAILED {dead}: ")


def test_apprise_is_loaded_by_the_sender_process_never_by_the_daemon(receiver: Any) -> None:
    hook = receiver(answers=[500])
    code = ("import json, sys\n"
            "from starforge_daemon.daemon.observers.delivery import Sender\n"
            f"sender = Sender([{hook.url!r}])\n"
            "names = sender.check()\n"
            "answers, _ = sender.run([('title', 'body')], (0.0,))\n"
            "print(json.dumps([names, answers, 'apprise' in sys.modules]))\n")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    names, answers, loaded = json.loads(printed)
    assert names == [hook.url] and not loaded
    assert answers == [{"url": 0, "target": hook.url},
                       {"message": 0, "target": hook.url, "error": None}]
    assert hook.answered == [500, 200], "the sender tried again after the refusal"


def test_a_url_apprise_cannot_send_to_stops_the_start(project: Project) -> None:
    project.write_env(NOTIFY_URLS="nosuchservice://x")
    result = project.cli("start", check=False)
    assert result.returncode == 1 and "NOTIFY_URLS" in result.stderr


# -- the words and the grouping, without a daemon ------------------------------------------


def finished(outcome: str = "failed", **fields: Any) -> ev.Finished:
    return ev.Finished(**{"agent": "a", "ticket": "52", "outcome": outcome, "exit_code": 1,
                          "reason": "exited with status 1", "run": "r1", "attempt": 1,
                          "duration_s": 75.0, "start_failed": False, "log": "/l/r1.log",
                          **fields})


def test_which_runs_are_told_and_how() -> None:
    notice = notice_of(finished(cost_usd=0.25), DEFAULT_KINDS)
    assert notice is not None and notice.kind is NoticeKind.FAILED
    assert notice.title == "a failed on ticket 52"
    assert notice.body.splitlines()[:2] == ["outcome: failed: exited with status 1",
                                            "duration: 1m15s, cost $0.2500, attempt 1"]
    assert notice_of(finished("succeeded"), DEFAULT_KINDS) is None
    assert notice_of(finished("killed"), DEFAULT_KINDS | {NoticeKind.FAILED}) is None
    assert notice_of(finished("oom"), DEFAULT_KINDS).kind is NoticeKind.FAILED
    last = finished(attempt=3, dead_letter=True)
    assert notice_of(last, DEFAULT_KINDS).title == "a gave up after 3 attempts on ticket 52"
    assert notice_of(last, parse_kinds("failed")).kind is NoticeKind.FAILED
    assert notice_of(last, parse_kinds("dead_letter")).kind is NoticeKind.DEAD_LETTER
    assert notice_of(finished(retry_at="T"), parse_kinds("dead_letter")) is None
    held = notice_of(ev.Held("rate-limited until 10:00 UTC", 4, "rate_limit"), DEFAULT_KINDS)
    assert held.body == "not starting new runs: rate-limited until 10:00 UTC; 4 queued"
    uncertain = notice_of(ev.MayHaveRun("t.trigger", "unknown: may have run: no keeper line",
                                        "r1"), DEFAULT_KINDS)
    assert uncertain.kind is NoticeKind.FAILED
    assert uncertain.title == "t.trigger: may have run, not run again"
    assert uncertain.body.endswith("starforge retry t.trigger")
    assert notice_of(ev.Drained(), DEFAULT_KINDS) is None
    assert notice_of(ev.Drained(), parse_kinds("queue_drained")).title == "queue drained"


def test_a_long_run_is_told_with_its_tool_and_cost() -> None:
    ledger = Ledger()
    run = Run(run_id="r1", agent="a", trigger_name="t", trigger_path="/t", log_path="/l",
              started_at=1000.0, timeout=1800.0, ticket="52")
    ledger.add(Running(run, ProcessIdentity(pid=42, start=1.0)))
    assert long_runs(ledger, 1059.0, 60.0) == []
    progress = Progress(phase="tool", tool="Bash", tool_input="make", turns=1, tokens_in=1,
                        tokens_out=1, cache_read_tokens=0, cache_creation_tokens=0,
                        cost_usd=0.5, last_text=None, events=3, skipped=0,
                        rate_limit_until=None)
    ledger.report("r1", LiveProgress(progress, None, None))
    [still] = long_runs(ledger, 1125.0, 60.0)
    notice = notice_of(still, frozenset())
    assert notice.title == "a still running on ticket 52"
    assert notice.body.splitlines()[0] == "running for 2m05s; doing: Bash; cost so far $0.5000"


def test_notices_of_one_kind_wait_out_the_interval_and_go_out_together() -> None:
    throttle = Throttle(60.0)
    first, second, third = (notice_of(finished(agent=name), DEFAULT_KINDS) for name in "xyz")
    held = notice_of(ev.Held("memory", 1, "memory"), DEFAULT_KINDS)
    assert throttle.offer(first, 100.0) == first
    assert throttle.offer(second, 110.0) is None and throttle.offer(third, 120.0) is None
    assert throttle.offer(held, 121.0) == held, "another kind is not held back"
    assert throttle.due(159.0) == [] and throttle.next_due() == 160.0
    [grouped] = throttle.due(160.0)
    assert grouped.title == "2 more: failed"
    assert grouped.body == "y failed on ticket 52\nz failed on ticket 52"
    assert throttle.offer(first, 170.0) is None, "the next interval began with the group"
    assert [n.title for n in throttle.due(0.0, flush=True)] == ["1 more: failed"]
    assert throttle.due(300.0) == [] and throttle.offer(first, 300.0) == first
