"""Anomaly maps -> post-processing -> AnoCurve -> segment and patient scores -> report (METHOD.md §6)."""
