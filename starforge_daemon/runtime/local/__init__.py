"""The local runner: the daemon's client of the keeper, the keeper itself, and process containment."""
