"""Calibration, metrics and the paper's evaluation protocol (METHOD.md §7)."""
