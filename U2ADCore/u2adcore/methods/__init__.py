"""Anomaly detectors behind one interface: U2AD and the comparison methods (METHOD.md §9)."""
