"""Observers of the daemon's events: the text event log first, then the state's counters."""
