"""A stand-in for Claude Code for ``bench/streaming_load.py``: prints real ``stream-json`` lines
at a steady rate until a marker file appears, then its result line, then exits.

    stream_agent.py --stop PATH --report PATH [--rate LINES_PER_S] [--silent]

The lines are those of a recorded Claude Code run (``tests/data/claude/bash-tool.jsonl``): its
``system/init`` once, then turns of three lines (assistant text, assistant Bash ``tool_use``,
user ``tool_result``), each turn under a message id and tool call id of its own, one ``write``
per line as the CLI does. The ``result`` line leaves out ``num_turns``, so the daemon's reader
counts the turns itself (one per message id it read). ``--silent`` prints nothing until the
marker, as an agent waiting on its model does. The marker is looked for once per turn; at the
end a JSON report goes to ``--report``: the lines and turns written before the result line,
and the wall-clock start and end. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RECORDING = Path(__file__).resolve().parent.parent / "tests" / "data" / "claude" / "bash-tool.jsonl"
MESSAGE = "\0message\0"  # where a turn's message id goes in a template
TOOL = "\0tool\0"  # where its tool call id goes
POLL_SECONDS = 0.05  # --silent: how often the marker is looked for


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stop", type=Path, required=True, help="end once this file exists")
    parser.add_argument("--report", type=Path, required=True, help="where the report goes")
    parser.add_argument("--rate", type=float, default=200.0, help="lines per second")
    parser.add_argument("--silent", action="store_true", help="print nothing until the end")
    return parser.parse_args(argv)


def recorded_lines() -> tuple[str, list[str], str]:
    """The recording's init line, one turn as templates (ids replaced by markers), its result
    line without ``num_turns``."""
    events = [json.loads(line) for line in RECORDING.read_text().splitlines() if line.strip()]
    init = next(event for event in events if event.get("type") == "system")
    assistant = [event for event in events if event.get("type") == "assistant"]
    user = next(event for event in events if event.get("type") == "user")
    result = {key: value for key, value in next(
        event for event in events if event.get("type") == "result").items() if key != "num_turns"}
    text = next(event for event in assistant if event["message"]["content"][0]["type"] == "text")
    tool = next(event for event in assistant
                if event["message"]["content"][0]["type"] == "tool_use")
    tool_id = tool["message"]["content"][0]["id"]
    turn = []
    for event in (text, tool, user):
        line = json.dumps(event, separators=(",", ":")).replace(tool_id, TOOL)
        if event["type"] == "assistant":
            line = line.replace(event["message"]["id"], MESSAGE)
        turn.append(line)
    return (json.dumps(init, separators=(",", ":")), turn,
            json.dumps(result, separators=(",", ":")))


def _write(line: str) -> None:
    os.write(1, line.encode() + b"\n")


def stream(turn: list[str], rate: float, stop: Path) -> tuple[int, int]:
    """Turns until ``stop`` exists, one line every 1/rate s; the lines and turns written."""
    tag = os.urandom(4).hex()
    interval = 1.0 / rate
    due = time.monotonic()
    turns = lines = 0
    while not stop.exists():
        message, tool = f"msg_{tag}{turns:016x}", f"toolu_{tag}{turns:016x}"
        for template in turn:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            _write(template.replace(MESSAGE, message).replace(TOOL, tool))
            due += interval
        turns += 1
        lines += len(turn)
    return lines, turns


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    init, turn, result = recorded_lines()
    started = time.time()
    if args.silent:
        lines = turns = 0
        while not args.stop.exists():
            time.sleep(POLL_SECONDS)
    else:
        _write(init)
        streamed, turns = stream(turn, args.rate, args.stop)
        lines = 1 + streamed  # the init line too
    ended = time.time()
    _write(result)
    args.report.write_text(json.dumps({"lines": lines, "turns": turns, "started": started,
                                       "ended": ended}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
