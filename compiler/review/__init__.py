"""Reviewing TaskGraphs: pictures, semantic diffs and golden-file checks for pull requests."""
