"""Vertebral levels: disc or body labels, two landmarks plus an anatomical prior, Slicer markups (METHOD.md §6)."""
