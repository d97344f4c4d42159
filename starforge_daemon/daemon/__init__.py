"""The daemon process: its loop, recovery, upkeep and service wrapper. Clients never import this."""
