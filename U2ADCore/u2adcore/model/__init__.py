"""EdgeMAE, the masked autoencoder, and ROI-patch masking (METHOD.md §3)."""
