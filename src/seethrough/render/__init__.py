"""Everything visual: numpy/PIL/matplotlib live here, never in the computation."""
# One import line per render module; each family adds its own.
