"""Files ``starforge init`` copies into a project (read with importlib.resources)."""
