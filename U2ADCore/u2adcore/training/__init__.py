"""Training loop, pretraining, checkpoints, distributed training (METHOD.md §3)."""
