"""Workflows over the stages: compare, demo, export with golden vectors, multi-runtime benchmark."""
