"""Where runs happen: a runner launches, stops and reconciles runs; ``local`` is the keeper."""
