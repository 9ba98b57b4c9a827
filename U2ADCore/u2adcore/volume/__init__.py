"""Reading a study: orientation from the header, slice selection, per-slice preprocessing with an exact inverse (METHOD.md §2)."""
