"""Normal variation that is not a lesion, added to studies for a benchmark worth trusting
(METHOD.md §8, issue 13).

Pseudo-lesions in homogeneous healthy cords are the ideal case for intensity statistics; what a
reconstruction is for is variation a per-slice statistic mistakes for a lesion. Each function
here adds one kind of it to a canonical volume (`arr[i]` a sagittal slice, rows superior →
inferior, columns anterior → posterior; spacing (left-right, S-I, A-P) mm) and returns new arrays,
never touching its input:

- `bias_field`: smooth multiplicative field along S-I and A-P (coil sensitivity);
- `edge_partial_volume`: the cord's rim brightened toward CSF in patches along the cord;
- `widen_mask`: the cord mask one voxel too wide in A-P, as an automatic segmentation gives;
- `central_canal`: a faint bright line along the cord centre in the mid-sagittal slices;
- `flow_voids` / `ghosting`: dark CSF pulsation patches / a faint shifted copy along A-P;
- `gibbs_ringing`: k-space truncation along A-P, ringing parallel to the cord edges;
- `scanner`: another scanner's contrast (a gamma on intensities) and noise level (Rician);
- `thick_slices`: neighbouring sagittal slices averaged (thicker acquisition);
- `lesion_at_fraction`: an inserted lesion rescaled to a given fraction of the cord-CSF gap.

`draw_confounds` draws one study's variation from a seed and `apply_confounds` applies it, so the
healthy and the lesioned copy of a slice get exactly the same variation (noise included) and the
lesion is their only difference.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..io.study import Study
from ..volume.orientation import from_canonical, to_canonical

Spacing = tuple[float, float, float]  # canonical (left-right, S-I, A-P) mm


def _unit_coords(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def bias_field(vol: np.ndarray, si_amplitude: float, ap_amplitude: float, si_phase: float = 0.0) -> np.ndarray:
    """`vol` times a smooth field: exp of a half cosine wave along S-I (amplitude `si_amplitude`,
    shifted by `si_phase` radians) plus a linear ramp along A-P (`ap_amplitude` at the edges)."""
    si = np.cos(np.pi / 2 * _unit_coords(vol.shape[1]) + si_phase)
    ap = _unit_coords(vol.shape[2])
    log_field = si_amplitude * si[:, None] + ap_amplitude * ap[None, :]
    return (vol * np.exp(log_field)[None]).astype(np.float32)


def rim(cord: np.ndarray) -> np.ndarray:
    """Cord pixels with a non-cord in-plane neighbour (4-connected), slice by slice."""
    inner = ndi.binary_erosion(cord, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                          [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                          [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool))
    return cord & ~inner


def edge_partial_volume(vol: np.ndarray, cord: np.ndarray, csf_level: float, fraction: float,
                        spacing: Spacing, seed: int, patch_mm: float = 15.0) -> np.ndarray:
    """The cord rim pulled toward `csf_level` by up to `fraction`, in patches `patch_mm` long
    along S-I (a smooth random profile in [0, 1]), as CSF partial volume does at narrow levels."""
    rng = np.random.default_rng(seed)
    profile = ndi.gaussian_filter1d(rng.standard_normal(vol.shape[1]), patch_mm / spacing[1] / 2, mode="wrap")
    profile = np.clip(0.5 + profile / (2 * profile.std() + 1e-12), 0.0, 1.0)
    weight = fraction * profile[None, :, None] * rim(cord)
    return (vol + weight * (csf_level - vol)).astype(np.float32)


def widen_mask(cord: np.ndarray, voxels: int = 1) -> np.ndarray:
    """The cord mask grown by `voxels` in A-P (both sides), like an automatic segmentation that
    takes in the CSF boundary."""
    return ndi.binary_dilation(cord, structure=np.ones((1, 1, 2 * voxels + 1), bool))


def central_canal(vol: np.ndarray, cord: np.ndarray, increase: float, half_width_slices: int = 1) -> np.ndarray:
    """A one-pixel bright line (+`increase`) along the cord's centre column in every row, in the
    sagittal slices within `half_width_slices` of the cord's left-right centre (where the canal is)."""
    out = vol.copy()
    area = cord.sum(axis=(1, 2))
    centre_slice = int(round(float((area * np.arange(area.size)).sum() / max(area.sum(), 1))))
    cols = np.arange(cord.shape[2])
    for i in range(centre_slice - half_width_slices, centre_slice + half_width_slices + 1):
        if not 0 <= i < cord.shape[0]:
            continue
        rows = np.flatnonzero(cord[i].any(axis=1))
        for r in rows:
            c = int(round(float((cord[i, r] * cols).sum() / cord[i, r].sum())))
            out[i, r, c] += increase
    return out


def flow_voids(vol: np.ndarray, cord: np.ndarray, depth: float, n_voids: int, spacing: Spacing, seed: int,
               size_mm: float = 4.0) -> np.ndarray:
    """`n_voids` dark blobs (signal x (1 - depth) at their centre) in the CSF next to the cord,
    as CSF pulsation gives; each reaches the cord's rim, never its inside."""
    rng = np.random.default_rng(seed)
    out = vol.copy()
    near = ndi.binary_dilation(cord, np.ones((1, 5, 5), bool)) & ~cord
    candidates = np.argwhere(near)
    if candidates.size == 0:
        return out
    sigma = np.array([1.0, size_mm / spacing[1], size_mm / spacing[2] / 2]) / 2
    for _ in range(n_voids):
        centre = candidates[rng.integers(len(candidates))]
        lo = np.maximum(centre - np.ceil(3 * sigma).astype(int), 0)
        hi = np.minimum(centre + np.ceil(3 * sigma).astype(int) + 1, vol.shape)
        grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
        g = np.exp(-0.5 * sum(((x - c) / s) ** 2 for x, c, s in zip(grids, centre, sigma)))
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        out[box] *= 1.0 - depth * g * ~cord[box]
    return out


def ghosting(vol: np.ndarray, amplitude: float, shift_fraction: float = 0.5) -> np.ndarray:
    """A faint copy (`amplitude` x) shifted by `shift_fraction` of the field of view along A-P
    (the phase-encoding direction of a sagittal scan), as motion and pulsation ghosts are."""
    shift = int(round(shift_fraction * vol.shape[2]))
    return (vol + amplitude * np.roll(vol, shift, axis=2)).astype(np.float32)


def gibbs_ringing(vol: np.ndarray, keep_fraction: float) -> np.ndarray:
    """k-space truncated along A-P to the central `keep_fraction` of frequencies: the ringing a
    low phase resolution gives next to the bright CSF, running parallel to the cord."""
    n = vol.shape[2]
    k = np.fft.fftfreq(n)
    keep = np.abs(k) <= keep_fraction / 2
    spectrum = np.fft.fft(vol, axis=2)
    return np.real(np.fft.ifft(spectrum * keep[None, None, :], axis=2)).astype(np.float32)


def scanner(vol: np.ndarray, gamma: float, top: float, sigma: float, seed: int) -> np.ndarray:
    """Another scanner: intensities through a gamma curve anchored at `top` (changes the
    cord-CSF contrast), then Rician noise of `sigma`."""
    rng = np.random.default_rng(seed)
    top = top or 1.0
    out = top * np.clip(vol / top, 0.0, None) ** gamma
    noisy = np.hypot(out + sigma * rng.standard_normal(vol.shape), sigma * rng.standard_normal(vol.shape))
    return noisy.astype(np.float32)


def thick_slices(vol: np.ndarray, n: int) -> np.ndarray:
    """Each sagittal slice the mean of `n` neighbouring ones (a thicker slice, same grid)."""
    if n <= 1:
        return vol.copy()
    return ndi.uniform_filter1d(vol.astype(np.float32), size=n, axis=0, mode="nearest")


def lesion_at_fraction(healthy: np.ndarray, lesioned: np.ndarray, lesion: np.ndarray, gap: float, fraction: float) -> np.ndarray:
    """`lesioned` with its inserted change rescaled so that the lesion's mean rise over `healthy`
    is `fraction` of the cord-CSF `gap`; its texture is kept."""
    diff = lesioned.astype(np.float32) - healthy
    rise = float(diff[lesion].mean()) if lesion.any() else 0.0
    if rise <= 0:
        return lesioned.copy()
    return (healthy + diff * (fraction * gap / rise)).astype(np.float32)


# -- one study's variation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Confounds:
    """One study's normal variation; None / 0 switches a kind off. `seed` fixes every random
    draw inside (noise, patches), so applying it twice gives the same image."""

    seed: int
    bias_si: float = 0.0
    bias_ap: float = 0.0
    bias_phase: float = 0.0
    edge_fraction: float = 0.0  # of the way to CSF
    widen_mask: bool = False
    canal_fraction: float = 0.0  # of the cord-CSF gap
    flow: Optional[str] = None  # "voids" | "ghost"
    flow_strength: float = 0.0
    gibbs_keep: Optional[float] = None
    gamma: float = 1.0
    snr: Optional[float] = None

    def names(self) -> list[str]:
        """The kinds switched on, for reports."""
        on = {"bias": self.bias_si or self.bias_ap, "edge": self.edge_fraction, "wide mask": self.widen_mask,
              "canal": self.canal_fraction, str(self.flow): self.flow, "gibbs": self.gibbs_keep,
              "scanner": self.gamma != 1.0 or self.snr}
        return [k for k, v in on.items() if v]


def draw_confounds(rng: np.random.Generator, p: float = 0.6) -> Confounds:
    """A random mix: each kind on with probability `p`, its strength drawn from a range seen in
    clinical scans (bias up to ±25 %, rim up to 40 % of the way to CSF, canal 10-25 % of the gap,
    Gibbs keeping 40-70 % of A-P frequencies, gamma 0.7-1.4, SNR 8-25)."""
    on = lambda: bool(rng.random() < p)  # noqa: E731
    return Confounds(
        seed=int(rng.integers(2**31)),
        bias_si=float(rng.uniform(0.1, 0.25) * rng.choice([-1, 1])) if on() else 0.0,
        bias_ap=float(rng.uniform(0.05, 0.2) * rng.choice([-1, 1])) if on() else 0.0,
        bias_phase=float(rng.uniform(-np.pi / 2, np.pi / 2)),
        edge_fraction=float(rng.uniform(0.15, 0.4)) if on() else 0.0,
        widen_mask=on(),
        canal_fraction=float(rng.uniform(0.1, 0.25)) if on() else 0.0,
        flow=(str(rng.choice(["voids", "ghost"])) if on() else None),
        flow_strength=float(rng.uniform(0.3, 0.7)),
        gibbs_keep=float(rng.uniform(0.4, 0.7)) if on() else None,
        gamma=float(rng.uniform(0.7, 1.4)) if on() else 1.0,
        snr=float(rng.uniform(8.0, 25.0)) if on() else None,
    )


@dataclass(frozen=True)
class Levels:
    """Signal levels the confounds are scaled by: cord median, CSF level and the image's 99.5th
    percentile. Measured once on the healthy copy and used for both copies, so that a lesion
    does not change how the variation is drawn."""

    cord: float
    csf: float
    top: float


def signal_levels(vol: np.ndarray, cord: np.ndarray) -> Levels:
    """The CSF level is the 90th percentile of a 1-3 voxel band around the cord in A-P and S-I,
    which is CSF wherever the canal is open."""
    band = ndi.binary_dilation(cord, np.ones((1, 7, 7), bool)) & ~ndi.binary_dilation(cord, np.ones((1, 3, 3), bool))
    cord_level = float(np.median(vol[cord]))
    csf = float(np.percentile(vol[band], 90)) if band.any() else cord_level
    return Levels(cord=cord_level, csf=max(csf, cord_level), top=float(np.percentile(vol, 99.5)))


def apply_confounds_arrays(vol: np.ndarray, cord: np.ndarray, c: Confounds, spacing: Spacing,
                           levels: Optional[Levels] = None) -> tuple[np.ndarray, np.ndarray]:
    """(image, cord mask) with `c` applied, in a fixed order: anatomy-side signal first (rim,
    canal, flow), then acquisition (Gibbs, ghosting, bias, scanner contrast and noise). `levels`
    default to those of `vol` itself."""
    lv = levels or signal_levels(vol, cord)
    cord_level, csf_level = lv.cord, lv.csf
    out = vol.astype(np.float32, copy=True)
    if c.edge_fraction:
        out = edge_partial_volume(out, cord, csf_level, c.edge_fraction, spacing, c.seed + 1)
    if c.canal_fraction:
        out = central_canal(out, cord, c.canal_fraction * (csf_level - cord_level))
    if c.flow == "voids":
        out = flow_voids(out, cord, c.flow_strength, 4, spacing, c.seed + 2)
    if c.gibbs_keep:
        out = gibbs_ringing(out, c.gibbs_keep)
    if c.flow == "ghost":
        out = ghosting(out, 0.15 * c.flow_strength)
    if c.bias_si or c.bias_ap:
        out = bias_field(out, c.bias_si, c.bias_ap, c.bias_phase)
    if c.gamma != 1.0 or c.snr:
        out = scanner(out, c.gamma, lv.top, (lv.cord / c.snr) if c.snr else 0.0, c.seed + 3)
    mask = widen_mask(cord) if c.widen_mask else cord.copy()
    return np.maximum(out, 0.0).astype(np.float32), mask


def _canonical(study: Study):
    img = to_canonical(study.image)
    spacing = img.GetSpacing()
    return img, sitk.GetArrayFromImage(img).astype(np.float32), (spacing[2], spacing[1], spacing[0])


def _back(arr: np.ndarray, canon: sitk.Image, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(canon)
    return from_canonical(out, reference)


def study_levels(study: Study) -> Levels:
    """`signal_levels` of a study's canonical image and cord."""
    _, vol, _ = _canonical(study)
    return signal_levels(vol, sitk.GetArrayFromImage(to_canonical(study.cord)) > 0)


def apply_confounds(study: Study, c: Confounds, levels: Optional[Levels] = None) -> Study:
    """A new Study with `c` applied to its image and cord mask (a lesion mask, if any, is kept and
    stays inside the widened cord); the input study is untouched. Pass the healthy copy's
    `study_levels` to give a lesioned copy exactly the healthy copy's variation."""
    canon, vol, spacing = _canonical(study)
    cord = sitk.GetArrayFromImage(to_canonical(study.cord)) > 0
    image, mask = apply_confounds_arrays(vol, cord, c, spacing, levels)
    cord_img = sitk.Cast(_back(mask.astype(np.uint8), canon, study.image), sitk.sitkUInt8)
    return dataclasses.replace(study, image=_back(image, canon, study.image), cord=cord_img)


def thicken_study(study: Study, n: int) -> Study:
    """A new Study whose sagittal slices are each the mean of `n` neighbours (masks unchanged)."""
    canon, vol, _ = _canonical(study)
    return dataclasses.replace(study, image=_back(thick_slices(vol, n), canon, study.image))
