"""The agent the integration tests run: it does what its trigger's ``context`` says.

context keys: ``sleep`` (seconds), ``exit`` (status), ``ignore_term`` (bool), ``grandchild``
(start a child that ignores SIGTERM and outlives this process unless killed; in a session of its
own with ``setsid``), ``signal`` (end killed by this signal number), ``output``
(about that many bytes of output, then ``THE END``), ``touch`` (a file to create), ``gate`` (a
file in the project to wait for before ending: the test creates it when the run may end).
Every run appends ``start`` and ``end`` lines to ``$STARFORGE_PROJECT_DIR/journal.jsonl``; a
grandchild writes its pid there too.
"""

import json
import os
import signal
import sys
import time


def journal(**fields):
    line = json.dumps({"time": time.time(), "pid": os.getpid(), **fields}) + "\n"
    path = os.path.join(os.environ["STARFORGE_PROJECT_DIR"], "journal.jsonl")
    with open(path, "a") as file:
        file.write(line)


def wait_for_file(path):
    """Return once ``path`` exists: how a test, not a duration, decides when a run ends."""
    while not os.path.exists(path):
        time.sleep(0.01)


def main():
    with open(os.environ["STARFORGE_TRIGGER_FILE"]) as file:
        trigger = json.load(file)
    context = trigger.get("context") or {}
    env = {key: value for key, value in os.environ.items() if key.startswith("STARFORGE_")}
    upstream = env.get("STARFORGE_UPSTREAM_RESULTS")
    if upstream:  # the hand-off file goes with the run: the journal keeps what it said
        with open(upstream) as file:
            env["upstream_results"] = json.load(file)
    journal(event="start", agent=os.environ["STARFORGE_AGENT"],
            trigger=os.path.basename(os.environ["STARFORGE_TRIGGER_FILE"]),
            run_id=os.environ["STARFORGE_RUN_ID"], env=env, argv=sys.argv[1:],
            stdin=sys.stdin.read(), cwd=os.getcwd(), sid=os.getsid(0))
    if context.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if context.get("grandchild"):
        child = os.fork()
        if child == 0:
            if context.get("setsid"):
                os.setsid()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            journal(event="grandchild")
            time.sleep(600)
            os._exit(0)
    if context.get("output"):
        for _ in range(int(context["output"]) // 4096):
            sys.stdout.write("x" * 4095 + "\n")
        sys.stdout.write("THE END\n")
        sys.stdout.flush()
    if context.get("touch"):
        open(context["touch"], "w").close()
    if context.get("gate"):
        wait_for_file(os.path.join(os.environ["STARFORGE_PROJECT_DIR"], context["gate"]))
    time.sleep(float(context.get("sleep", 0)))
    if context.get("signal"):
        os.kill(os.getpid(), int(context["signal"]))
    code = int(context.get("exit", 0))
    journal(event="end", agent=os.environ["STARFORGE_AGENT"], run_id=os.environ["STARFORGE_RUN_ID"],
            code=code)
    sys.exit(code)


if __name__ == "__main__":
    main()
