"""Presentation only: the compare report (table, Pareto plot, HTML page)."""
