"""A stand-in agent for the demo: reads its trigger, "works" briefly, and hands off.

An ``implement_ticket`` trigger makes it pass the ticket on to ``reviewer`` with a new trigger,
the way real agents chain work through the daemon. Exit status 0, or 3 for ``action: fail``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from starforge_daemon.client.submit import submit_trigger


def main() -> int:
    if "STARFORGE_TRIGGER_FILE" not in os.environ:
        print("example_agent: only the starforge daemon runs this (it says which trigger in "
              "STARFORGE_TRIGGER_FILE); try `starforge demo`", file=sys.stderr)
        return 2
    agent = os.environ["STARFORGE_AGENT"]
    action = os.environ.get("STARFORGE_ACTION", "")
    ticket = os.environ.get("STARFORGE_TICKET", "")
    with open(os.environ["STARFORGE_TRIGGER_FILE"], encoding="utf-8") as file:
        trigger = json.load(file)
    print(f"{agent}: {action or 'work'} on ticket {ticket or '-'} "
          f"(from {trigger.get('from_agent', '?')})", flush=True)
    time.sleep(random.uniform(0.2, 0.8))
    if action == "fail":
        print(f"{agent}: giving up", file=sys.stderr)
        return 3
    if action == "implement_ticket":
        handoff = submit_trigger("reviewer", project_dir=os.environ["STARFORGE_PROJECT_DIR"],
                                 action="review", ticket=ticket or None, from_agent=agent,
                                 message=f"please review ticket {ticket}")
        print(f"{agent}: handed ticket {ticket} to reviewer ({handoff.name})")
    print(f"{agent}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
