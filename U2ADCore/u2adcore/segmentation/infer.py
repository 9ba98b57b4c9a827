"""Cord segmentation of one volume: working grid → 2.5D sagittal U-Net → probability back onto
the input grid → threshold → largest connected component."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk
import torch

from ..config import CordSegConfig
from ..errors import InputError
from ..progress import CancelToken, ProgressCallback, ProgressEvent, emit
from .grid import neighbours, resample_onto, to_working
from .network import load_cordseg

PathLike = Union[str, Path]
_BATCH = 8  # slices per forward pass


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "cuda was asked for but no CUDA device is available")
    return torch.device(name)


@dataclass
class CordSegmenter:
    """A loaded segmentation model; reuse one for many volumes (loading is the slow part)."""

    net: torch.nn.Module
    cfg: CordSegConfig
    training: dict = field(default_factory=dict)
    path: Optional[Path] = None
    device: torch.device = torch.device("cpu")

    def describe(self) -> dict:
        return {"model": None if self.path is None else str(self.path), "held_out": self.training.get("held_out", [])}

    @torch.no_grad()
    def probability(self, volume: np.ndarray, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> np.ndarray:
        """Cord probability (LR, SI, AP) of a working-grid volume, one sagittal slice at a time."""
        n_lr, n_si, n_ap = volume.shape
        mult = int(np.prod(self.cfg.strides))
        pad_si, pad_ap = (-n_si) % mult, (-n_ap) % mult
        out = np.zeros(volume.shape, np.float32)
        for start in range(0, n_lr, _BATCH):
            if cancel is not None:
                cancel.check()
            idx = range(start, min(start + _BATCH, n_lr))
            x = np.stack([neighbours(volume, i) for i in idx])
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_si), (0, pad_ap)))
            logits = self.net(torch.from_numpy(x).to(self.device))
            out[start : start + len(idx)] = torch.sigmoid(logits[:, 0, :n_si, :n_ap]).float().cpu().numpy()
            emit(progress, ProgressEvent("step", task="segment-cord", step=idx[-1] + 1, steps=n_lr, fraction=(idx[-1] + 1) / n_lr))
        return out

    def segment(self, image: sitk.Image, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> sitk.Image:
        """uint8 0/1 cord mask on exactly `image`'s grid."""
        work = to_working(image, self.cfg.spacing_mm, self.cfg.clip_percentiles)
        p = self.probability(work.array, progress, cancel)
        if self.cfg.keep_largest:
            p = np.where(cord_component(p >= self.cfg.threshold), p, 0.0).astype(np.float32)
        prob = sitk.GetImageFromArray(p)
        prob.CopyInformation(work.grid)
        mask = sitk.GetArrayFromImage(resample_onto(prob, image)) >= self.cfg.threshold
        out = sitk.GetImageFromArray(mask.astype(np.uint8))
        out.CopyInformation(image)
        return out


def cord_component(mask: np.ndarray) -> np.ndarray:
    """The connected component of a working-grid mask (LR, SI, AP) that spans the most S-I rows
    (ties: the larger). The cord runs through the whole field from top to bottom; a stray
    false positive (a fat plane, a vessel) is shorter even when it is bulkier, which the
    largest-volume rule first used here got wrong on under-trained fold models."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    best, key = 0, (-1, -1)
    for k, sl in enumerate(ndi.find_objects(labels), start=1):
        comp = labels[sl] == k
        rows = int(comp.any(axis=(0, 2)).sum())
        if (rows, int(comp.sum())) > key:
            best, key = k, (rows, int(comp.sum()))
    return labels == best


def load_segmenter(path: Optional[PathLike] = None, device: str = "cpu") -> CordSegmenter:
    """The model at `path`, or the one shipped with the package."""
    from ..resources import cordseg_model_path

    path = Path(path) if path is not None else cordseg_model_path()
    if not path.exists():
        raise InputError(path, "cord segmentation model not found")
    net, cfg, training = load_cordseg(path)
    dev = _device(device)
    return CordSegmenter(net.to(dev), cfg, training, path, dev)


def segment_cord(image: sitk.Image, *, model: Optional[Union[PathLike, CordSegmenter]] = None, device: str = "cpu",
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None) -> sitk.Image:
    """The spinal-cord mask (uint8 0/1) of a T2w `image`, on the image's own grid."""
    from ..io.images import check_volume

    check_volume(image, None, "image")
    seg = model if isinstance(model, CordSegmenter) else load_segmenter(model, device)
    return seg.segment(image, progress, cancel)


def segment_cord_file(image: PathLike, out: PathLike, *, model: Optional[PathLike] = None, device: str = "cpu",
                      overwrite: bool = False, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> dict:
    """Read `image`, segment its cord and write the mask to `out` atomically. Returns timings and the voxel count."""
    from ..errors import OutputExistsError
    from ..io.atomic import atomic_path
    from ..io.images import read_image

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: already exists; choose another file or pass --overwrite")
    if Path(image).resolve() == out.resolve():
        raise InputError(out, "the output would overwrite the input image")
    t0 = time.perf_counter()
    img = read_image(Path(image), what="image")
    seg = load_segmenter(model, device)
    t1 = time.perf_counter()
    mask = seg.segment(img, progress, cancel)
    t2 = time.perf_counter()
    with atomic_path(out) as tmp:
        sitk.WriteImage(mask, str(tmp), True)
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return {"voxels": n, "volume_mm3": n * float(np.prod(img.GetSpacing())), "timings_s": {"load": t1 - t0, "segment": t2 - t1}, "model": seg.describe()}
