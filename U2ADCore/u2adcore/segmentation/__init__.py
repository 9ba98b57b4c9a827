"""Built-in spinal-cord segmentation (docs/SEGMENTATION.md): `segment_cord(image) -> mask`."""
from .infer import CordSegmenter, load_segmenter, segment_cord, segment_cord_file

__all__ = ["CordSegmenter", "load_segmenter", "segment_cord", "segment_cord_file"]
