"""Datasets: manifests, the Spine Generic BIDS layout, synthetic studies, pseudo-anomalies."""
