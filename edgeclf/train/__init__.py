"""Transfer learning: cached backbone features, a fast head, a run directory."""
