"""One module per on-disk format (settings, paths, results, journals, slots, pauses, the instance lock),
read and written by the daemon and its clients alike."""
