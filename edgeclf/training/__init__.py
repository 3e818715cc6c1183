"""Transfer learning: cached backbone features, a fast head, fine-tuning, a run directory."""
