"""The agent of the worktree tests: works in its current directory as its trigger's ``context``
says, and appends ``start``/``end`` lines to ``$STARFORGE_PROJECT_DIR/worktree-journal.jsonl``.

context keys, in this order: ``write`` (a file to create, holding the agent's name), ``ready``
(a marker to create in the project root), ``wait_for`` (markers in the project root to wait
for), ``commit`` (``git add -A`` and commit), ``exit`` (status).
"""

import json
import os
import subprocess
import sys
import time

PROJECT = os.environ["STARFORGE_PROJECT_DIR"]


def journal(event, **fields):
    line = {"event": event, "agent": os.environ["STARFORGE_AGENT"],
            "run_id": os.environ["STARFORGE_RUN_ID"], "cwd": os.getcwd(),
            "files": sorted(os.listdir(".")), **fields}
    with open(os.path.join(PROJECT, "worktree-journal.jsonl"), "a") as file:
        file.write(json.dumps(line) + "\n")


def wait_for(markers):
    deadline = time.monotonic() + 30
    while not all(os.path.exists(os.path.join(PROJECT, m)) for m in markers):
        if time.monotonic() > deadline:
            sys.exit(9)
        time.sleep(0.01)


def main():
    with open(os.environ["STARFORGE_TRIGGER_FILE"]) as file:
        context = json.load(file).get("context") or {}
    journal("start", env={k: v for k, v in os.environ.items() if k.startswith("STARFORGE_")})
    agent = os.environ["STARFORGE_AGENT"]
    if context.get("write"):
        with open(context["write"], "w") as file:
            file.write(f"{agent}\n")
    if context.get("ready"):
        open(os.path.join(PROJECT, context["ready"]), "w").close()
    wait_for(context.get("wait_for", []))
    seen = sorted(os.listdir("."))
    if context.get("commit"):
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", "commit", "-q", "-m", f"{agent}: {context.get('write')}"],
                       check=True)
    journal("end", seen=seen)
    sys.exit(int(context.get("exit", 0)))


if __name__ == "__main__":
    main()
