"""Synthetic sagittal T2-weighted cervical spine studies with known cord, levels and lesions.

The generator draws one random spine (lordotic cord centreline, vertebral bodies C2-T4, discs,
posterior elements, neck soft tissue), paints tissue signals with soft partial-volume edges,
and then applies what a scanner adds: a smooth bias field, a gain and Rician noise. Anatomy is
built in the canonical frame (ARCHITECTURE.md: array (LR, SI, AP)) in millimetres along the
cord, then handed out in a real-looking orientation (PSR by default, like the errsm files) so
that readers exercise the orientation code. Everything is a function of the seed.

Tissue signals are relative to CSF (= 1) and follow T2 fast spin echo appearance: CSF and fat
bright, cord about half of CSF (the measured ratio, PhantomConfig.csf_cord_ratio), marrow and
muscle dark, disc nuclei intermediate, cortical bone and ligaments darkest.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..config import SEGMENTS, VERTEBRAE, PhantomConfig
from ..errors import InputError
from ..io.atomic import atomic_path, staged_output_dir
from ..io.study import Study, study_from_images
from ..levels.levels import build_levels, vertebra_number
from ..progress import ProgressCallback, ProgressEvent
from .manifest import ManifestEntry, write_manifest

PathLike = Union[str, Path]

# Vertebrae painted, top to bottom, with (body height, body AP depth, disc below) in mm for an
# average adult (scaled per study). C1 has no body: its arches are painted beside the dens.
_BODIES: tuple[tuple[str, float, float, float], ...] = (
    ("C2", 16.0, 15.0, 4.5),
    ("C3", 13.5, 15.5, 5.0),
    ("C4", 13.5, 16.0, 5.5),
    ("C5", 13.5, 16.5, 5.5),
    ("C6", 13.5, 17.0, 5.0),
    ("C7", 14.5, 17.5, 4.5),
    ("T1", 16.0, 19.0, 4.0),
    ("T2", 17.5, 21.0, 4.0),
    ("T3", 18.5, 23.0, 4.0),
    ("T4", 19.0, 25.0, 4.0),
)
_SPINOUS_LENGTH_MM = {"C2": 28.0, "C3": 18.0, "C4": 18.0, "C5": 20.0, "C6": 26.0, "C7": 34.0, "T1": 34.0, "T2": 32.0, "T3": 30.0, "T4": 30.0}

_AIR, _MUSCLE, _FAT, _BONE_CORTEX, _LIGAMENT, _ANNULUS = 0.0, 0.12, 0.75, 0.04, 0.06, 0.12


@dataclass(frozen=True)
class LesionSpec:
    """One synthetic lesion: centre (LPS mm), full lengths (along cord, AP, LR) and segments it overlaps."""

    centre: np.ndarray
    size_mm: tuple[float, float, float]
    contrast: float
    segments: tuple[str, ...]


@dataclass
class Phantom:
    """A generated study. Masks are on the image grid; `discs` holds SCT disc point labels."""

    image: sitk.Image  # float32
    cord: sitk.Image  # uint8 0/1
    discs: sitk.Image  # uint8, 2 = C1-C2 … 9 = T1-T2, one voxel each at the cord centre
    lesion: sitk.Image  # uint8 0/1 (all zero for a healthy study)
    lesions: tuple[LesionSpec, ...]
    body_centres: dict[str, np.ndarray]  # vertebral-body centres projected onto the cord, LPS mm
    seed: int
    lesion_segments: tuple[str, ...] = ()  # segments (config.SEGMENTS order) any lesion overlaps
    patient_label: int = 0
    segment_labels: dict[str, int] = field(default_factory=dict)

    def to_study(self, study_id: str = "phantom") -> Study:
        """The phantom as a validated Study, levels from its body centres, lesion mask attached."""
        points = {vertebra_number(name): p for name, p in self.body_centres.items()}
        levels = build_levels(points, "bodies")
        return study_from_images(self.image, self.cord, levels=levels, lesion=self.lesion, study_id=study_id)


@dataclass(frozen=True)
class _Grid:
    """Canonical-frame sampling: x (LR, mm from the cord's mid plane), s (mm below the top), a (mm from the front)."""

    x: np.ndarray  # (n_lr, 1, 1)
    s: np.ndarray  # (n_si,)
    a: np.ndarray  # (n_ap,)
    slice_mm: float
    pixel_mm: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.x.shape[0], self.s.shape[0], self.a.shape[0])


@dataclass(frozen=True)
class _Spine:
    """The cord centreline a_c(s) (mm from the front) per row position s (mm below the top)."""

    s: np.ndarray
    centre: np.ndarray
    slope: np.ndarray  # da_c/ds
    arc: np.ndarray  # arc length along the centreline (mm)

    def at(self, s: float) -> tuple[float, float]:
        """(a_c, slope) at s, interpolated between rows."""
        return float(np.interp(s, self.s, self.centre)), float(np.interp(s, self.s, self.slope))

    def s_of_arc(self, arc: float) -> float:
        return float(np.interp(arc, self.arc, self.s))


# --- small geometric helpers (pure, vectorised) ---------------------------------------------


def _ramp(sd: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume membership from a signed distance (negative inside), one voxel wide."""
    return np.clip(0.5 - sd / width, 0.0, 1.0)


def _rounded_rect_sd(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float, radius: float) -> np.ndarray:
    """Signed distance (mm) to a rounded rectangle centred at the origin of the (u, v) frame."""
    qu = np.abs(u) - (half_u - radius)
    qv = np.abs(v) - (half_v - radius)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0) - radius


def _local_frame(s: np.ndarray, a: np.ndarray, cs: float, ca: float, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """(u along the spine, v toward posterior) of the plane points (s[:, None], a[None, :])."""
    norm = np.hypot(1.0, slope)
    ds, da = s[:, None] - cs, a[None, :] - ca
    return (ds + da * slope) / norm, (da - ds * slope) / norm


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Unit-variance Gaussian-smoothed noise: the texture of marrow, muscle and cord."""
    field_ = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="reflect")
    return field_ / max(float(field_.std()), 1e-6)


def _paint(img: np.ndarray, membership: np.ndarray, value, lr: Optional[np.ndarray] = None) -> None:
    """Alpha-composite `value` over `img` with the partial-volume `membership` (in place).

    `membership` is (si, ap) or (lr, si, ap); `lr` (lr, 1, 1) multiplies a 2D membership.
    Shapes are local, so only their bounding box in the sagittal plane is touched.
    """
    m = membership if membership.ndim == 3 else membership[None]
    occupied = m.any(axis=0)
    rows = np.flatnonzero(occupied.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(occupied.any(axis=0))
    box = np.s_[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    m = m[box] if lr is None else m[box] * lr
    target = img[box]
    target += m * ((value[box] if isinstance(value, np.ndarray) else value) - target)


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


# --- anatomy ------------------------------------------------------------------------------------


def _grid(cfg: PhantomConfig, rng: np.random.Generator) -> _Grid:
    n_si = int(round(cfg.fov_si_mm / cfg.pixel_mm))
    n_ap = int(round(cfg.fov_ap_mm / cfg.pixel_mm))
    # The cord's mid plane sits within half a slice of the central slice, as after a real planning.
    offset = rng.uniform(-0.3, 0.3) * cfg.slice_mm
    x = (np.arange(cfg.n_slices) - (cfg.n_slices - 1) / 2.0) * cfg.slice_mm + offset
    return _Grid(
        x=x.reshape(-1, 1, 1),
        s=np.arange(n_si) * cfg.pixel_mm,
        a=np.arange(n_ap) * cfg.pixel_mm,
        slice_mm=cfg.slice_mm,
        pixel_mm=cfg.pixel_mm,
    )


def _centreline(grid: _Grid, rng: np.random.Generator, cfg: PhantomConfig) -> _Spine:
    """A lordotic cervical curve that turns posterior into the thoracic kyphosis, like the real scans."""
    s = grid.s
    length = cfg.fov_si_mm  # not the last row: the curve must not depend on the pixel size
    tilt = rng.uniform(-0.05, 0.1)
    kyphosis = rng.uniform(0.3, 0.75)  # slope reached at the bottom, from the thoracic kyphosis below mid-neck
    lordosis = rng.uniform(3.0, 9.0)  # mm of anterior bulge in mid-neck
    t = s / length
    start = 0.35 * length
    drift = 0.5 * kyphosis * np.clip(s - start, 0.0, None) ** 2 / (length - start)
    centre = tilt * s + drift - lordosis * np.sin(np.pi * np.clip((t - 0.12) / 0.6, 0.0, 1.0))
    centre = centre - np.interp(length / 2.0, s, centre) + rng.uniform(0.47, 0.55) * cfg.fov_ap_mm
    slope = np.gradient(centre, s)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(s), np.diff(centre)))])
    return _Spine(s=s, centre=centre, slope=slope, arc=arc)


@dataclass(frozen=True)
class _Canal:
    """Cord and CSF cross-section radii along s (mm)."""

    cord_ap: np.ndarray  # semi-axes per row
    cord_lr: np.ndarray
    csf_front: float  # CSF thickness in front of / behind / beside the cord
    csf_back: np.ndarray
    csf_side: float


def _canal(grid: _Grid, cfg: PhantomConfig, rng: np.random.Generator, s_c1: float, s_c6: float) -> _Canal:
    s = grid.s
    enlargement = np.exp(-(((s - s_c6) / 25.0) ** 2))  # cervical enlargement around C5-C6
    medulla = np.clip((s_c1 - s) / 30.0, 0.0, 1.0)  # the cord widens into the medulla at the top
    ap = 0.5 * _u(rng, cfg.cord_ap_mm) * (1.0 + 0.06 * enlargement + 0.35 * medulla)
    lr = 0.5 * _u(rng, cfg.cord_lr_mm) * (1.0 + 0.15 * enlargement + 0.25 * medulla)
    cisterna = rng.uniform(4.0, 9.0) * np.clip((s_c1 + 5.0 - s) / 25.0, 0.0, 1.0)  # cisterna magna behind the medulla
    return _Canal(
        cord_ap=ap,
        cord_lr=lr,
        csf_front=rng.uniform(2.0, 3.5),
        csf_back=rng.uniform(3.0, 5.0) + cisterna,
        csf_side=rng.uniform(2.5, 4.0),
    )


def _compress(canal: _Canal, grid: _Grid, by_name: dict, cfg: PhantomConfig) -> _Canal:
    """The cord narrowed in AP by `cfg.compression` at the disc of `cfg.compression_segment`.
    Deterministic (no random draw), so the same seed gives the same spine with or without it."""
    if cfg.compression_segment not in SEGMENTS or not 0.0 <= cfg.compression < 1.0:
        raise InputError("PhantomConfig.compression", f"needs a segment of {', '.join(SEGMENTS)} and a fraction in [0, 1), got {cfg.compression_segment!r}, {cfg.compression:g}")
    s0 = by_name[cfg.compression_segment.split("-")[0]].s_disc_below
    dip = cfg.compression * np.exp(-4.0 * np.log(2.0) * ((grid.s - s0) / cfg.compression_fwhm_mm) ** 2)
    return dataclasses.replace(canal, cord_ap=canal.cord_ap * (1.0 - dip))


@dataclass(frozen=True)
class _Vertebra:
    name: str
    s_centre: float  # position of the body centre along the cord (row mm)
    height: float
    depth: float
    disc_below: float  # disc height below the body
    s_disc_below: float  # centre of that disc along the cord


def _vertebrae(spine: _Spine, rng: np.random.Generator, arc_c1c2: float) -> list[_Vertebra]:
    """Bodies laid out along the cord's arc length, heights scaled per study."""
    scale = rng.uniform(0.92, 1.08)
    out, arc = [], arc_c1c2
    for name, height, depth, disc in _BODIES:
        h, d, g = height * scale * rng.uniform(0.95, 1.05), depth * scale, disc * scale * rng.uniform(0.8, 1.15)
        centre = arc + h / 2.0
        out.append(_Vertebra(name, spine.s_of_arc(centre), h, d, g, spine.s_of_arc(arc + h + g / 2.0)))
        arc += h + g
    return out


def _texture_fields(grid: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fine (trabecular, cellular) and coarse (tissue heterogeneity) unit-variance texture."""
    px = grid.pixel_mm
    fine = _smooth_noise(rng, grid.shape, (0.5, 0.8 / px, 0.8 / px))
    coarse = _smooth_noise(rng, grid.shape, (1.0, 4.0 / px, 4.0 / px))
    return fine, coarse


def _paint_soft_tissue(img, grid: _Grid, spine: _Spine, rng, tex) -> None:
    """Neck outline, layered muscles with fat planes, subcutaneous fat, airway, cerebellum at the top."""
    fine, coarse = tex
    s, a, px = grid.s, grid.a, grid.pixel_mm
    rel = a[None, :] - spine.centre[:, None]  # mm posterior of the cord centre
    t = s / s[-1]
    front = -rng.uniform(55.0, 68.0) - 8.0 * t  # anterior skin relative to the cord
    back = rng.uniform(50.0, 62.0) + 25.0 * t**1.5  # posterior skin widens toward the shoulders
    neck = _ramp(np.maximum(front[:, None] - rel, rel - back[:, None]), px)[None]
    muscle = _MUSCLE * rng.uniform(0.8, 1.2) * (1.0 + 0.15 * coarse + 0.12 * fine)
    _paint(img, neck, muscle)
    # The posterior neck muscles lie in layers roughly parallel to the skin, separated by thin,
    # slightly wavy fat planes.
    fat = _FAT * rng.uniform(0.5, 1.15) * (1.0 + 0.08 * fine)  # some protocols suppress fat partly
    spacing = rng.uniform(10.0, 16.0)
    depth = back[:, None] - rel + rng.uniform(-0.2, 0.2) * s[:, None]
    phase = depth[None] / spacing + 0.08 * coarse
    plane_mm = np.abs(phase - np.round(phase)) * spacing
    posterior = np.clip((rel - 22.0) / 6.0, 0.0, 1.0)[None]
    _paint(img, _ramp(plane_mm - rng.uniform(0.3, 0.7), px) * posterior * neck * (0.6 + 0.4 * np.tanh(coarse)), fat)
    subcut = rng.uniform(5.0, 14.0)
    subcut_band = _ramp(np.abs(rel - (back[:, None] - subcut / 2.0)) - subcut / 2.0, px)[None]
    _paint(img, subcut_band, fat)
    front_fat = _ramp(np.abs(rel - (front[:, None] + 2.0)) - 2.0, px)[None]
    _paint(img, front_fat, fat)
    # Pharynx and trachea: an air column in front of the spine, below the skull base.
    airway_rel = -rng.uniform(30.0, 38.0)
    airway_half = rng.uniform(4.0, 7.0)
    top = rng.uniform(0.05, 0.15) * s[-1]
    airway = _ramp(np.maximum(np.abs(rel - airway_rel) - airway_half, (top - s)[:, None]), px)[None]
    airway = airway * _ramp(np.abs(grid.x) - 8.0, grid.slice_mm)
    _paint(img, airway, _AIR)
    # Cerebellum behind the medulla, above the field's top edge, capped by the occipital bone.
    c_s, c_a = -rng.uniform(15.0, 30.0), float(spine.centre[0]) + rng.uniform(40.0, 50.0)
    r = np.hypot(s[:, None] - c_s, (a[None, :] - c_a) / 1.3)
    radius = rng.uniform(35.0, 42.0)
    _paint(img, _ramp(r - radius - 4.0, px)[None], _BONE_CORTEX)
    _paint(img, _ramp(r - radius - 2.5, px)[None], 0.2 * (1.0 + 0.3 * fine))
    _paint(img, _ramp(r - radius, px)[None], 0.22 * (1.0 + 0.25 * coarse + 0.2 * fine))


def _paint_bone(img, sd: np.ndarray, lr: np.ndarray, px: float, marrow, cortex: float = 1.2) -> None:
    """A bone: dark cortex rim `cortex` mm thick around textured marrow."""
    _paint(img, _ramp(sd, px), _BONE_CORTEX, lr)
    _paint(img, _ramp(sd + cortex, px), marrow, lr)


def _paint_spine(img, grid: _Grid, spine: _Spine, canal: _Canal, vertebrae: list[_Vertebra], rng, tex) -> None:
    """Posterior elements, discs, bodies, dens and C1 arches."""
    fine, coarse = tex
    s, a, px = grid.s, grid.a, grid.pixel_mm
    marrow = rng.uniform(0.18, 0.32) * (1.0 + 0.18 * fine + 0.1 * coarse)
    body_lr = _ramp(np.abs(grid.x) - rng.uniform(9.0, 12.0), grid.slice_mm)
    mid_lr = _ramp(np.abs(grid.x) - rng.uniform(3.0, 4.5), grid.slice_mm)
    for v in vertebrae:
        ac, slope = spine.at(v.s_centre)
        row = int(np.clip(np.searchsorted(s, v.s_centre), 0, len(s) - 1))
        # Spinous process: from the back of the canal, pointing down and back.
        back = canal.cord_ap[row] + canal.csf_back[row] + 2.0
        angle = np.deg2rad(rng.uniform(20.0, 40.0))
        length = _SPINOUS_LENGTH_MM[v.name] * rng.uniform(0.85, 1.15)
        base_s, base_a = v.s_centre + 1.0, ac + back
        cs, ca = base_s + np.sin(angle) * length / 2.0, base_a + np.cos(angle) * length / 2.0
        u, w = _local_frame(s, a, cs, ca, -1.0 / np.tan(angle))  # w runs along the process
        sd = _rounded_rect_sd(w, u, length / 2.0, 2.8, 2.0)
        _paint_bone(img, sd, mid_lr, px, marrow)
        # Disc below the body: dark annulus with a brighter nucleus.
        dac, dslope = spine.at(v.s_disc_below)
        dist = canal.cord_ap[row] + canal.csf_front + 1.5 + v.depth / 2.0
        dcs, dca = v.s_disc_below + dist * dslope / np.hypot(1, dslope), dac - dist / np.hypot(1, dslope)
        u, w = _local_frame(s, a, dcs, dca, dslope)
        _paint(img, _ramp(_rounded_rect_sd(u, w, v.disc_below / 2.0 + 1.5, v.depth / 2.0 + 0.5, 1.5), px), _ANNULUS, body_lr)
        nucleus = np.hypot(u / (0.3 * v.disc_below + 0.3), (w - 0.1 * v.depth) / (0.3 * v.depth)) - 1.0
        nucleus_signal = rng.uniform(0.2, 0.5) * (1.0 + 0.1 * fine)
        _paint(img, _ramp(nucleus * 2.0, px), nucleus_signal, body_lr)
        # Body, placed just in front of the canal.
        cs, ca = v.s_centre + dist * slope / np.hypot(1, slope), ac - dist / np.hypot(1, slope)
        u, w = _local_frame(s, a, cs, ca, slope)
        _paint_bone(img, _rounded_rect_sd(u, w, v.height / 2.0, v.depth / 2.0, 2.0), body_lr, px, marrow)
        if v.name == "C2":
            _paint_c1_and_dens(img, grid, v, cs, ca, slope, canal, spine, rng, marrow, body_lr, mid_lr)


def _paint_c1_and_dens(img, grid, c2: _Vertebra, cs, ca, slope, canal: _Canal, spine: _Spine, rng, marrow, body_lr, mid_lr) -> None:
    """The dens rising from C2, the anterior arch of C1 in front of it and the posterior arch behind the canal."""
    s, a, px = grid.s, grid.a, grid.pixel_mm
    norm = np.hypot(1.0, slope)
    dens_h = rng.uniform(12.0, 16.0)
    up = c2.height / 2.0 + dens_h / 2.0 - 2.0
    dcs, dca = cs - up / norm, ca - up * slope / norm + 1.5
    u, w = _local_frame(s, a, dcs, dca, slope)
    _paint_bone(img, _rounded_rect_sd(u, w, dens_h / 2.0, 5.0, 4.0), body_lr, px, marrow)
    # Anterior arch: 2 mm in front of the dens (half depth 5 mm), an oval 10 x 7 mm.
    front = np.hypot((s[:, None] - (dcs - 1.0)) / 5.0, (a[None, :] - (dca - 5.0 - 2.0 - 3.5)) / 3.5) - 1.0
    _paint_bone(img, front * 3.5, body_lr, px, marrow, cortex=1.0)
    row = int(np.clip(np.searchsorted(s, dcs), 0, len(s) - 1))
    back_a = spine.centre[row] + canal.cord_ap[row] + canal.csf_back[row] + 2.0 + 4.5
    back = np.hypot((s[:, None] - dcs) / 4.5, (a[None, :] - back_a) / 4.5) - 1.0
    _paint_bone(img, back * 4.5, mid_lr, px, marrow, cortex=1.0)


def _cross_section(grid: _Grid, spine: _Spine, canal: _Canal) -> tuple[np.ndarray, np.ndarray]:
    """(cord, thecal sac) normalised radii: < 1 inside. Distances follow the curved cord."""
    d = (grid.a[None, :] - spine.centre[:, None]) / np.hypot(1.0, spine.slope)[:, None]  # (si, ap) mm, + posterior
    cord = np.hypot(d / canal.cord_ap[:, None], grid.x / canal.cord_lr[:, None])
    shift = 0.5 * (canal.csf_back - canal.csf_front)
    sac_ap = canal.cord_ap + 0.5 * (canal.csf_back + canal.csf_front)
    sac = np.hypot((d - shift[:, None]) / sac_ap[:, None], grid.x / (canal.cord_lr + canal.csf_side)[:, None])
    return cord, sac


def _lesions(
    grid: _Grid, spine: _Spine, canal: _Canal, cord_r: np.ndarray, vertebrae: list[_Vertebra], n: int, cfg: PhantomConfig, rng
) -> list[tuple[np.ndarray, np.ndarray, float, tuple[float, float, float], tuple[float, float, float]]]:
    """Ellipsoids inside the cord between C2 and T1: (soft membership, hard mask, contrast, centre, size)."""
    by_name = {v.name: v for v in vertebrae}
    out = []
    for _ in range(n):
        s_l = rng.uniform(by_name["C2"].s_centre, by_name["T1"].s_centre)
        row = int(np.clip(np.searchsorted(grid.s, s_l), 0, len(grid.s) - 1))
        length = _u(rng, cfg.lesion_length_mm)
        ap = rng.uniform(0.45, 0.85) * canal.cord_ap[row]
        lr = 0.5 * _u(rng, cfg.lesion_lr_mm)
        x_l = rng.uniform(-0.4, 0.4) * grid.slice_mm
        d_l = rng.uniform(-0.3, 0.3) * (canal.cord_ap[row] - ap)
        ac, slope = spine.at(s_l)
        u, w = _local_frame(grid.s, grid.a, s_l, ac + d_l, slope)
        r = np.sqrt((u / (length / 2.0))[None] ** 2 + (w / ap)[None] ** 2 + ((grid.x - x_l) / lr) ** 2)
        soft = _ramp((r - 1.0) * min(ap, lr), grid.pixel_mm) * _ramp((cord_r - 1.0) * canal.cord_ap[None, :, None], grid.pixel_mm)
        hard = (r <= 1.0) & (cord_r <= 1.0)
        out.append((soft, hard, _u(rng, cfg.lesion_contrast), (s_l, ac + d_l, x_l), (length, 2 * ap, 2 * lr)))
    return out


def _bias_field(grid: _Grid, spine: _Spine, rng, strength: float) -> np.ndarray:
    """Smooth receive-coil shading: brighter behind the neck (posterior coil), fading at the ends."""
    a_rel = (grid.a[None, :] - spine.centre[:, None]) / 100.0
    s_rel = (grid.s[:, None] - grid.s[-1] / 2.0) / 100.0
    log_b = rng.uniform(0.6, 1.3) * a_rel + rng.uniform(-0.3, 0.3) * s_rel - rng.uniform(0.0, 0.5) * s_rel**2
    log_b = log_b[None] - rng.uniform(0.0, 0.3) * (grid.x / 50.0) ** 2
    return np.exp(strength * log_b).astype(np.float32)


def _tissue_support(noiseless: np.ndarray, floor: float, grid: _Grid) -> np.ndarray:
    """Soft 0/1 map of where there is signal: the scanner's background masking, one voxel soft."""
    px = grid.pixel_mm
    return ndi.gaussian_filter((noiseless > floor).astype(np.float32), (0.3, 0.7 / px, 0.7 / px))


def _segments_overlapped(rows_mm: np.ndarray, vertebrae: list[_Vertebra]) -> tuple[str, ...]:
    """Segments (body centre to next body centre) that the S-I span [min, max] of a lesion meets."""
    centre = {v.name: v.s_centre for v in vertebrae}
    lo, hi = float(rows_mm.min()), float(rows_mm.max())
    names = []
    for seg in SEGMENTS:
        upper, lower = seg.split("-")
        if hi >= centre[upper] and lo <= centre[lower]:
            names.append(seg)
    return tuple(names)


# --- geometry of the output images ----------------------------------------------------------


def _canonical_image(arr: np.ndarray, grid: _Grid, origin: tuple[float, float, float]) -> sitk.Image:
    """An image in the canonical PIL frame (x → posterior, y → inferior, z → left)."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((grid.pixel_mm, grid.pixel_mm, grid.slice_mm))
    img.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    img.SetOrigin(origin)
    return img


def _origin(grid: _Grid, spine: _Spine, s_c2: float, rng) -> tuple[float, float, float]:
    """Place the C2 cord centre near where the real errsm scans have it (LPS ≈ (0, -15, 57) mm)."""
    target = np.array([0.0, -15.0, 57.0]) + rng.uniform(-10.0, 10.0, 3)
    ac, _ = spine.at(s_c2)
    return (float(target[0] + grid.x[0, 0, 0]), float(target[1] - ac), float(target[2] + s_c2))


def _canonical_to_lps(origin, s: float, a: float, x_mm: float, x0: float) -> np.ndarray:
    return np.array([origin[0] + (x_mm - x0), origin[1] + a, origin[2] - s])


def _check_orientation(code: str) -> None:
    """Three letters, one from each of L/R, A/P, S/I (what sitk.DICOMOrient accepts)."""
    axes = sorted({"L": 0, "R": 0, "A": 1, "P": 1, "S": 2, "I": 2}.get(c, -1) for c in code.upper())
    if len(code) != 3 or axes != [0, 1, 2]:
        raise InputError("PhantomConfig.orientation", f"{code!r} is not an orientation: give one letter of each of L/R, A/P, S/I, e.g. PSR or LPS")


# --- public API ---------------------------------------------------------------------------


def make_phantom(seed: int, *, n_lesions: int = 0, cfg: Optional[PhantomConfig] = None) -> Phantom:
    """One synthetic study, fully determined by `seed` (and `cfg`).

    `n_lesions` T2-hyperintense ellipsoids are placed inside the cord between the C2 and T1
    body centres, centred within half a slice of the cord's mid plane so the mid-sagittal
    slice shows each of them. Anatomy, texture, lesions and scanner effects draw from separate
    streams of the seed, so the same seed gives the same spine at any resolution or lesion count.
    """
    cfg = cfg or PhantomConfig()
    if n_lesions < 0:
        raise InputError("n_lesions", f"must be >= 0, got {n_lesions}")
    _check_orientation(cfg.orientation)
    rng, rng_texture, rng_lesions, rng_scanner = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    grid = _grid(cfg, rng)
    spine = _centreline(grid, rng, cfg)
    arc_c1c2 = rng.uniform(0.12, 0.18) * cfg.fov_si_mm
    vertebrae = _vertebrae(spine, rng, arc_c1c2)
    by_name = {v.name: v for v in vertebrae}
    s_c1c2 = spine.s_of_arc(arc_c1c2)
    if by_name["T2"].s_disc_below >= grid.s[-1] or s_c1c2 <= 0:
        raise InputError("PhantomConfig.fov_si_mm", f"{cfg.fov_si_mm:g} mm is too short to hold C1-C2 … T1-T2 (needs about 215 mm)")
    canal = _canal(grid, cfg, rng, s_c1c2 - 10.0, by_name["C6"].s_centre)
    if cfg.compression:
        canal = _compress(canal, grid, by_name, cfg)
    tex = _texture_fields(grid, rng_texture)

    img = np.zeros(grid.shape, np.float32)
    _paint_soft_tissue(img, grid, spine, rng, tex)
    _paint_spine(img, grid, spine, canal, vertebrae, rng, tex)
    cord_r, sac_r = _cross_section(grid, spine, canal)
    px = grid.pixel_mm
    sac_scale = (canal.cord_ap + 0.5 * (canal.csf_back + canal.csf_front))[None, :, None]
    _paint(img, _ramp((sac_r - 1.0) * sac_scale - 1.0, px), _LIGAMENT)  # dura and ligaments
    _paint(img, _ramp((sac_r - 1.0) * sac_scale, px), 1.0 + 0.03 * tex[0])  # CSF
    cord_signal = (1.0 / _u(rng, cfg.csf_cord_ratio)) * (1.0 + 0.06 * tex[0] + 0.04 * tex[1])
    _paint(img, _ramp((cord_r - 1.0) * canal.cord_ap[None, :, None], px), cord_signal)
    cord = (cord_r <= 1.0).astype(np.uint8)

    lesion = np.zeros(grid.shape, np.uint8)
    found = _lesions(grid, spine, canal, cord_r, vertebrae, n_lesions, cfg, rng_lesions)
    specs_raw = []
    for soft, hard, contrast, centre, size in found:
        _paint(img, soft, cord_signal + contrast * (1.0 - cord_signal))
        lesion |= hard.astype(np.uint8)
        rows = grid.s[np.nonzero(hard.any(axis=(0, 2)))[0]] if hard.any() else np.array([centre[0]])
        specs_raw.append((centre, size, contrast, _segments_overlapped(rows, vertebrae)))

    origin = _origin(grid, spine, by_name["C2"].s_centre, rng)
    img *= _bias_field(grid, spine, rng_scanner, cfg.bias_strength)
    cord_mean = _u(rng_scanner, cfg.cord_mean)
    img *= cord_mean / float(np.mean(cord_signal))
    sigma = cord_mean / _u(rng_scanner, cfg.snr)
    noisy = np.hypot(img + rng_scanner.normal(0.0, sigma, grid.shape), rng_scanner.normal(0.0, sigma, grid.shape))
    if cfg.zero_air:
        noisy *= _tissue_support(img, 0.05 * cord_mean, grid)
    img = noisy.astype(np.float32)

    x0 = float(grid.x[0, 0, 0])
    mid = int(np.argmin(np.abs(grid.x.ravel())))
    discs = np.zeros(grid.shape, np.uint8)
    # SCT disc labels: value k = the disc just above vertebra k, from 2 = C1-C2 to 9 = T1-T2.
    disc_rows = [(vertebra_number("C2"), s_c1c2)] + [(vertebra_number(lower.name), upper.s_disc_below) for upper, lower in zip(vertebrae, vertebrae[1:])]
    for k, s_disc in disc_rows:
        if k <= vertebra_number(VERTEBRAE[-1]):
            ac, _ = spine.at(s_disc)
            discs[mid, int(round(s_disc / px)), int(round(ac / px))] = k
    body_centres = {
        v.name: _canonical_to_lps(origin, v.s_centre, spine.at(v.s_centre)[0], 0.0, x0) for v in vertebrae if v.name in VERTEBRAE
    }
    specs = tuple(
        LesionSpec(centre=_canonical_to_lps(origin, c[0], c[1], c[2], x0), size_mm=size, contrast=k, segments=segs)
        for c, size, k, segs in specs_raw
    )
    hit = {seg for spec in specs for seg in spec.segments}

    def out(arr: np.ndarray) -> sitk.Image:
        return sitk.DICOMOrient(_canonical_image(arr, grid, origin), cfg.orientation)

    return Phantom(
        image=out(img),
        cord=out(cord),
        discs=out(discs),
        lesion=out(lesion),
        lesions=specs,
        body_centres=body_centres,
        seed=seed,
        lesion_segments=tuple(seg for seg in SEGMENTS if seg in hit),
        patient_label=int(bool(specs)),
        segment_labels={seg: int(seg in hit) for seg in SEGMENTS},
    )


def write_phantom(phantom: Phantom, folder: PathLike, stem: str = "phantom") -> dict[str, Path]:
    """Write image, cord, discs and lesion as `<stem>_<what>.nii.gz` (atomically); return the paths."""
    folder = Path(folder)
    paths = {}
    for what in ("image", "cord", "discs", "lesion"):
        path = folder / f"{stem}_{what}.nii.gz"
        with atomic_path(path) as tmp:
            sitk.WriteImage(getattr(phantom, what), str(tmp), useCompression=True)
        paths[what] = path
    return paths


def write_phantom_set(
    folder: PathLike,
    n: int,
    seed: int,
    lesion_fraction: float = 0.5,
    *,
    cfg: Optional[PhantomConfig] = None,
    overwrite: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> Path:
    """Write `n` studies and a `manifest.csv` into `folder`; return the manifest path.

    Exactly round(n · lesion_fraction) studies (chosen by the seed) get lesions, each
    `cfg.lesions_per_study` of them. The whole folder appears at once (staged output).
    """
    cfg = cfg or PhantomConfig()
    if n < 1:
        raise InputError("n", f"the number of studies must be >= 1, got {n}")
    if not 0.0 <= lesion_fraction <= 1.0:
        raise InputError("lesion_fraction", f"must lie in [0, 1], got {lesion_fraction:g}")
    root = np.random.SeedSequence(seed)
    rng = np.random.default_rng(root)
    positive = set(rng.choice(n, size=int(round(n * lesion_fraction)), replace=False).tolist())
    study_seeds = [int(child.generate_state(1)[0]) for child in root.spawn(n)]
    lo, hi = cfg.lesions_per_study
    entries = []
    with staged_output_dir(folder, overwrite=overwrite) as stage:
        for i, study_seed in enumerate(study_seeds):
            k = int(rng.integers(lo, hi + 1)) if i in positive else 0
            phantom = make_phantom(study_seed, n_lesions=k, cfg=cfg)
            stem = f"phantom_{i:03d}"
            paths = write_phantom(phantom, stage, stem)
            entries.append(
                ManifestEntry(
                    id=stem,
                    image=paths["image"],
                    cord=paths["cord"],
                    levels=paths["discs"],
                    levels_kind="discs",
                    label=phantom.patient_label,
                    segments=phantom.lesion_segments,
                    lesion=paths["lesion"],
                )
            )
            if progress is not None:
                progress(ProgressEvent("step", task="phantom", step=i + 1, steps=n, fraction=(i + 1) / n))
        write_manifest(entries, stage / "manifest.csv")
    return Path(folder) / "manifest.csv"
