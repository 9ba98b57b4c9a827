"""Monte-Carlo uncertainty and uncertainty-guided adaptation (METHOD.md §4-§5)."""
