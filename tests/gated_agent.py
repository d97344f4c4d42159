"""An agent that prints ``waiting``, waits until the file named by its trigger's
``context.gate`` exists, prints ``gate opened`` and exits with ``context.exit`` (0 if absent).

Lets a test decide when a run ends, without ordering anything by a duration.
"""

import json
import os
import sys

from agent import wait_for_file


def main():
    with open(os.environ["STARFORGE_TRIGGER_FILE"]) as file:
        context = json.load(file).get("context") or {}
    print("waiting", flush=True)
    wait_for_file(context["gate"])
    print("gate opened", flush=True)
    sys.exit(int(context.get("exit", 0)))


if __name__ == "__main__":
    main()
