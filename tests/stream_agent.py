"""An agent that speaks Claude Code's stream-json as its trigger's ``context`` scripts it.

context keys: ``before`` (JSON objects to print, one per line), ``gate`` (a file in the project
to wait for after them; the test creates it), ``after`` (objects to print once the gate is
open), ``exit`` (status, 0 if absent). In a printed object, ``"resetsAt": "+N"`` becomes the
epoch second N seconds from now.
"""

import json
import os
import sys
import time

from agent import wait_for_file


def emit(events):
    for event in events:
        info = event.get("rate_limit_info") or {}
        if str(info.get("resetsAt", "")).startswith("+"):
            info["resetsAt"] = int(time.time() + float(info["resetsAt"][1:]))
        print(json.dumps(event), flush=True)


def main():
    with open(os.environ["STARFORGE_TRIGGER_FILE"]) as file:
        context = json.load(file).get("context") or {}
    emit(context.get("before", []))
    if context.get("gate"):
        wait_for_file(os.path.join(os.environ["STARFORGE_PROJECT_DIR"], context["gate"]))
    emit(context.get("after", []))
    sys.exit(int(context.get("exit", 0)))


if __name__ == "__main__":
    main()
