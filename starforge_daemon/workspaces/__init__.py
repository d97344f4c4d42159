"""Where a run works: the shared checkout, or a git worktree of its own."""
