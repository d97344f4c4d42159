"""Pure vocabulary and decisions: models, queue, scheduler, command rendering. No I/O, no clock reads;
imports nothing of the package outside core."""
