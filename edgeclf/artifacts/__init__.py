"""Saved artifacts, the only interface between stages: the run directory and the exported file's metadata."""
