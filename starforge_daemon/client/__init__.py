"""What the commands do without the daemon's loop: status, listings, logs, reports, submit, set-up."""
