"""An agent that writes a numbered line every 2 ms until its gate opens, then ends.

context keys: ``gate`` (a file in the project; the test creates it), ``exit`` (status),
``format``: ``text`` (``line N``) or ``claude`` (Claude Code's stream-json: an init event,
one assistant message per line, a result event at the end). Its last words, and a ``wrote``
record in ``$STARFORGE_PROJECT_DIR/journal.jsonl``, say how many lines it wrote, so a test can
tell whether the log holds all of them.
"""

import json
import os
import sys
import time

from agent import journal


def main():
    with open(os.environ["STARFORGE_TRIGGER_FILE"]) as file:
        context = json.load(file).get("context") or {}
    code = int(context.get("exit", 0))
    claude = context.get("format") == "claude"
    gate = os.path.join(os.environ["STARFORGE_PROJECT_DIR"], context["gate"])
    journal(event="start", agent=os.environ["STARFORGE_AGENT"],
            trigger=os.path.basename(os.environ["STARFORGE_TRIGGER_FILE"]))
    if claude:
        print(json.dumps({"type": "system", "subtype": "init", "session_id": "s",
                          "model": "claude-sonnet-5"}), flush=True)
    count = 0
    while not os.path.exists(gate) or count < 10:
        text = f"line {count}"
        if claude:
            text = json.dumps({"type": "assistant", "message": {
                "content": [{"type": "text", "text": text}]}})
        print(text, flush=True)  # a write to a dead reader would end this agent (EPIPE)
        count += 1
        time.sleep(0.002)
    if claude:
        print(json.dumps({"type": "result", "subtype": "success" if code == 0 else "error",
                          "is_error": code != 0, "num_turns": 1, "session_id": "s",
                          "result": f"wrote {count}"}), flush=True)
    else:
        print(f"wrote {count}", flush=True)
    journal(event="wrote", trigger=os.path.basename(os.environ["STARFORGE_TRIGGER_FILE"]),
            lines=count)
    sys.exit(code)


if __name__ == "__main__":
    main()
