"""Leaderboards and plots from stored results: ``reports.build.build_report`` is the entry point."""
