"""What a valid trigger is and how trigger files are read (shared with clients); the watcher is the
daemon's."""
