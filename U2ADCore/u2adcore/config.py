"""One typed configuration for every stage, saved inside every checkpoint and result.

Defaults are the paper's values (METHOD.md); where the paper and the research code differ the
choice is a field here, never a hidden constant. `to_dict`/`from_dict` round-trip exactly and
refuse unknown keys, so a checkpoint written by a newer version fails loudly instead of silently
dropping settings.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

SEGMENTS: tuple[str, ...] = ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1")
VERTEBRAE: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2")


@dataclass
class PreprocessConfig:
    """METHOD.md §2: how a 3D study becomes 256 x 256 slices in [0, 1]."""

    spacing_mm: float = 1.0
    size: int = 256
    clip_percentiles: tuple[float, float] = (0.2, 99.8)
    # How many sagittal slices, centred on the slice with the most cord (paper: 30 pretraining,
    # 3 adaptation, 1 detection). `slices` (canonical left-right indices) overrides it.
    n_slices: int = 1
    slices: Optional[list[int]] = None


@dataclass
class ModelConfig:
    """METHOD.md §3. `preset` names the size; the size fields are what is actually built."""

    preset: str = "small"
    img_size: int = 256
    patch_size: int = 8
    in_chans: int = 1
    embed_dim: int = 128
    depth: int = 12
    num_heads: int = 8
    decoder_embed_dim: int = 64
    decoder_depth: int = 8
    decoder_num_heads: int = 8
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    edge_weight: float = 0.1
    # Patches within this many patches (Chebyshev distance) of an ROI patch are the tokens the
    # model sees; None means the whole image. A band of 2-4 trains 4-7x faster but reconstructed
    # held-back cords slightly worse at equal steps (docs/MODEL.md), so it is opt-in.
    context_band: Optional[int] = None
    # "visible_cord": the network sees x scaled so that the median of the visible (unmasked) cord
    # pixels is `norm_level`, and its image and edge outputs are scaled back. Every study then
    # looks alike to the network, and a network that predicts only a constant already gives the
    # flat visible-cord fill (docs/MODEL.md). None = the paper's plain [0, 1] input.
    # "visible_profile": the same per image row, from the running median along the cord of the
    # visible pixels of the cord eroded by `norm_erode` (±`norm_window` rows); it follows a bias
    # field along the spine and keeps the partial-volume edge out of the level (model/intensity.py).
    intensity_norm: Optional[Literal["visible_cord", "visible_profile"]] = None
    norm_level: float = 0.2
    norm_window: int = 16
    norm_erode: int = 1
    # The reconstruction loss over the cord eroded by this many pixels (0: the whole cord, the
    # paper's). The partial-volume ring is never scored (ScoringConfig.erode_px), and fitting it
    # pulls the reconstruction of the cord's core towards CSF (docs/MODEL.md).
    loss_erode: int = 0
    # With intensity_norm: rescale each reconstruction so that its visible cord pixels have the
    # median of the input's visible cord pixels (the network predicts them too). This removes the
    # level the network carries over from its training studies (docs/MODEL.md). Applied in eval
    # mode only (Monte-Carlo inference); training and adaptation see the raw output.
    anchor_visible: bool = False


@dataclass
class TrainConfig:
    """Pretraining (METHOD.md §3). `epochs` etc. are the paper's; `cpu` shortens them."""

    epochs: int = 200
    batch_size: int = 8
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    lr_step_epochs: int = 50
    lr_gamma: float = 0.1
    augment: bool = True
    noise_var: float = 0.02
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    # Scanner differences (docs/MODEL.md), all off by default (the paper has none): an image
    # gamma drawn from `gamma` (contrast between tissues), a smooth multiplicative bias field
    # exp(a·u + b·v) with |a|, |b| up to `bias_field` over the image (coil sensitivity), and a
    # Gaussian blur of up to `blur_sigma` pixels (a coarser acquisition resampled to the grid,
    # which widens the partial-volume rim at the cord's edge).
    gamma: tuple[float, float] = (1.0, 1.0)
    bias_field: float = 0.0
    blur_sigma: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # only ever used on CUDA
    checkpoint_every: int = 1  # epochs
    n_slices: int = 30  # slices per healthy study


@dataclass
class AdaptConfig:
    """Uncertainty-guided adaptation (METHOD.md §5, Algorithm 2)."""

    strategy: Literal["random", "eu", "eu+au"] = "eu+au"
    # "paper" runs epochs/stage2_start/refresh_every/mc_samples/lr_step_epochs below; "cpu"
    # replaces them with the cpu_* values; "auto" is "cpu" on a CPU device, "paper" on a GPU.
    schedule: Literal["auto", "cpu", "paper"] = "auto"
    epochs: int = 200
    stage2_start: int = 150
    refresh_every: int = 10
    mc_samples: int = 10
    temperature: float = 1.0
    eu_scaling: Literal["mean", "zscore"] = "mean"
    au_percentile: float = 90.0
    au_top_k: int = 3
    au_min_size: int = 2
    au_component_score: Literal["sum", "mean_sum"] = "sum"
    # AU candidates are taken on the cord eroded by this many pixels, as the research code does:
    # on the un-eroded cord a third of the candidate pixels sat on the partial-volume boundary ring.
    au_erode_px: int = 1
    batch_size: int = 8
    # A restart at a tenth of pretraining's rate, halved every 50 epochs: stage 2 still learns at
    # 1/8 of it. The research code (lr 3e-3, x0.1 every 50) leaves stage 2 at 1e-3 of its start.
    lr: float = 3e-4
    lr_step_epochs: int = 50
    lr_gamma: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_every: int = 1
    n_slices: int = 3
    # The CPU schedule: the paper's shape (stage 2 over the last quarter, refreshes in both
    # stages, the LR halved three times) at a cost a 2-core CPU can afford (docs/UNCERTAINTY.md).
    # Kept at 16 epochs on measurement: the paper's 200 epochs, on one batch of 8 slices from two
    # subjects, scored a held-out subject no better than these 16 (worse: its healthy-cord error
    # rose by 60 %) at 6x the time (docs/RESULTS.md, "The paper's 200-epoch adaptation on CPU").
    cpu_epochs: int = 16
    cpu_stage2_start: int = 12
    cpu_refresh_every: int = 4
    cpu_mc_samples: int = 4
    cpu_lr_step_epochs: int = 4


@dataclass
class InferenceConfig:
    """Monte-Carlo inference (METHOD.md §4)."""

    mc_samples: int = 10
    # Fraction of the cord patches hidden in each pass at detection. None: the model's training
    # ratio (0.75, the paper's). 0.9 (default): each hidden patch has fewer visible neighbours, so
    # less of a lesion leaks into its own reconstruction; on the verdict benchmark it called more
    # faint and moderate pseudo-lesions "yes" at the same healthy false-positive rate, and needs
    # fewer passes (docs/DETECTION.md). Thresholds hold only for the ratio they were calibrated with.
    mask_ratio: Optional[float] = 0.9
    schedule: Literal["balanced", "independent"] = "balanced"
    seed: int = 0
    batch_size: int = 32  # passes x slices per forward call
    device: str = "auto"
    # IterMask's test-time refinement on top of the Monte-Carlo passes (uncertainty/refine.py):
    # rounds that re-reconstruct the patches above median + refine_mad_k MAD with every other
    # patch visible. 0 = off (the paper's inference); docs/ITERMASK.md measures it.
    refine_rounds: int = 0
    refine_mad_k: float = 2.0


@dataclass
class ScoringConfig:
    """Anomaly map, curve and scores (METHOD.md §6)."""

    # Pixels dropped from the cord's edge before scoring. 2 (default): the outer 2 mm on the 1-mm
    # grid are partial-volume CSF, more so with a mask a voxel too wide; dropping them doubled the
    # moderate pseudo-lesions called "yes" at the same healthy false-positive rate, and costs the
    # lesions at the cord's surface (docs/DETECTION.md, "What we tried"). 1: the paper's and the
    # default before (edge1_scoring). 0 with the "profile" centring below: profile_scoring.
    erode_px: int = 2
    # "normative" (default): the hyperintense part of the method's signed residual x - mu above
    # its typical value (`residual_centre`), divided by `residual_scale`; "paper": |x - mu| with
    # the bottom-fraction / top-components post-processing as published. The default departs
    # from the paper on measurement (docs/DETECTION.md, "Normative residual").
    residual: Literal["normative", "paper"] = "normative"
    # The typical residual subtracted: "slice" (default), the slice's median over the analysed
    # cord; "profile", per depth into the cord and side of its centre, the running median along the
    # cord over `centre_window_px` rows (scoring/maps.profile_baseline), which removes the rim's own
    # bias so that the rim can be scored (profile_scoring: more lesions called, more of them at the
    # cord's surface, but twice the false outlines; docs/DETECTION.md).
    residual_centre: Literal["slice", "profile"] = "slice"
    centre_window_px: int = 31
    # "healthy": the spread of the centred residual on healthy cords at each depth into the cord,
    # stored with the model's calibration (Thresholds.residual_spread; 1 without one);
    # "slice_mad": the slice's own MAD; "none": unscaled. Measured in docs/DETECTION.md.
    residual_scale: Literal["healthy", "slice_mad", "none"] = "healthy"
    # "threshold" (default): components of the map above the calibrated pixel threshold
    # (Thresholds.pixel) of at least min_candidate_mm2, only in a study not called negative; none
    # without a pixel threshold. "paper": bottom_fraction zeroed, top_components kept regardless of size.
    candidates: Literal["threshold", "paper"] = "threshold"
    min_candidate_mm2: float = 6.0
    bottom_fraction: float = 0.2
    top_components: int = 3
    # Patient score = AnoCurve peak over the known segments C2-C3 ... C7-T1 ("segments"; the whole
    # cord when no segment is known), or over the whole cord ("cord", the paper).
    patient_from: Literal["segments", "cord"] = "segments"
    curve: Literal["rows", "centreline"] = "rows"
    # Gaussian smoothing (mm, along the cord) of the per-row cord centre that the "centreline"
    # curve follows; it removes the staircase of a pixel mask without flattening real curvature.
    centreline_sigma_mm: float = 5.0
    # Fixed display range of the anomaly map (never rescaled per image). In the normative map's
    # units (healthy spreads) healthy real cords stay mostly below 2.4 (90th percentile) and
    # reach 8 at the 99th (benchmarks/scale_check.py): 10 keeps healthy cord dark and lets a
    # lesion saturate. The paper's |x - mu| uses 0.3 (config.paper_scoring).
    display_max: float = 10.0


def paper_scoring() -> ScoringConfig:
    """METHOD.md §6 as published: |x - mu|, bottom 20 % zeroed, top-3 components, patient score
    over the whole cord, on the |x - mu| display scale."""
    return ScoringConfig(erode_px=1, residual="paper", candidates="paper", patient_from="cord", display_max=0.3)


def paper_inference() -> InferenceConfig:
    """Monte-Carlo inference as published: the model's own masking ratio in every pass."""
    return InferenceConfig(mask_ratio=None)


def profile_scoring() -> ScoringConfig:
    """The whole cord scored, each pixel against the running profile of its depth and side
    (residual_centre "profile", erode_px 0); thresholds must be calibrated with it."""
    return ScoringConfig(erode_px=0, residual_centre="profile")


def edge1_scoring() -> ScoringConfig:
    """The default scoring before the 2-pixel edge (one pixel dropped); thresholds must be calibrated with it."""
    return ScoringConfig(erode_px=1)


@dataclass
class Thresholds:
    """Calibrated decision thresholds and how they were obtained (METHOD.md §7)."""

    patient: Optional[float] = None
    segment: Optional[float] = None
    method: str = ""  # e.g. "sensitivity=0.9 / max-F1" or "normal-only FPR=0.05"
    n_studies: int = 0
    target: str = ""
    # Candidate threshold on the anomaly map (ScoringConfig.candidates = "threshold").
    pixel: Optional[float] = None
    # The "healthy" normative scale: median |x - mu - median| over healthy eroded cords, per depth
    # into the cord (element d-1 for pixels d pixels from its edge, the last for all deeper).
    residual_spread: Optional[list[float]] = None
    # What the thresholds were set on (subjects, slices, target FPRs, n) and the estimated
    # specificity with its interval; free-form, JSON-able.
    calibration: dict = field(default_factory=dict)


@dataclass
class EvaluationConfig:
    """Calibration and the 5-fold protocol (METHOD.md §7). A run setting, not stored in models."""

    patient_sensitivity: float = 0.9
    normal_fpr: float = 0.05  # used when the calibration studies are all normal
    n_folds: int = 5
    seed: int = 0


@dataclass
class BaselineConfig:
    """Training-free comparison methods (METHOD.md §9), all computed inside the cord."""

    # A T2 hyperintensity is brighter than the cord (METHOD.md §8): count only positive
    # deviations, so dark partial-volume edges do not compete with lesions.
    hyperintense_only: bool = True
    slic_compactness: float = 10.0
    slic_pixels_per_segment: int = 20  # sets n_segments from the cord area of each slice
    slic_z_threshold: float = 2.0
    # DBSCAN runs on in-cord intensities z-scored per slice, so eps is in standard deviations.
    # min_samples is this fraction of the slice's cord pixels: with a fixed count a lesion of a
    # few dozen similar pixels forms a dense cluster of its own and is never called noise.
    dbscan_eps: float = 0.25
    dbscan_min_fraction: float = 0.1
    # The running median's window along the cord: longer than most lesions (5-25 mm), so the
    # median of the rows around a lesion is still healthy cord.
    runmedian_window_mm: float = 31.0


@dataclass
class DAEConfig:
    """The denoising-autoencoder baseline (METHOD.md §9); trained with TrainConfig's schedule."""

    channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 stage each
    noise_std: float = 0.2


@dataclass
class IterMaskConfig:
    """IterMask (docs/ITERMASK.md): an inpainting network fed the masked cord plus its high-frequency
    part, and the test-time mask refinement with a threshold from healthy-data errors. Stored in
    the IterMask checkpoint; the refinement fields can be overridden at detection."""

    channels: tuple[int, ...] = (16, 32, 64)  # U-Net widths, one resolution level each
    # High frequency = x - Gaussian(x, sigma): edges and texture. 1 mm keeps the cord/CSF border
    # but passes little of a 3-7 mm lesion's intensity (a wider filter would hand it to the net).
    hf_sigma_mm: float = 1.0
    # The network sees a band this wide (A-P, pixels) centred on the cord, not the whole grid.
    band_px: int = 64
    full_mask_prob: float = 0.3  # training masks: the whole cord, else random blobs inside it
    unmasked_weight: float = 0.5  # loss weight of visible cord pixels (masked ones weigh 1)
    # Refinement at detection.
    error_smooth_mm: float = 1.0  # Gaussian smoothing of the error before unmasking
    hyperintense_only: bool = True  # only x above the reconstruction keeps a pixel masked
    threshold_quantile: float = 0.99  # of masked healthy-pixel errors (the normal statistics)
    noise_scale_max: float = 3.0  # subject threshold = tau * clip(noise / healthy noise, 1, this)
    step_fraction: float = 0.25  # at most this fraction of the cord is unmasked per iteration
    max_iters: int = 20


@dataclass
class PhantomConfig:
    """Synthetic sagittal T2w cervical spine studies (docs/DATA.md). A run setting.

    Ranges are drawn uniformly per study; their defaults match what docs/DATA.md measured on
    the real errsm subjects (CSF/cord ratio, cord AP width, in-cord noise).
    """

    n_slices: int = 13  # sagittal (left-right) slices
    slice_mm: float = 1.5  # left-right spacing
    pixel_mm: float = 0.9  # in-plane (S-I and A-P) spacing
    fov_si_mm: float = 240.0
    fov_ap_mm: float = 160.0
    # Voxel-axis directions as SimpleITK/nibabel letters; "PSR" is how the real errsm files come.
    orientation: str = "PSR"
    # Tissue signal ratio; partial volume brings the measured one (1-3 mm band) to about 2.1-2.9.
    csf_cord_ratio: tuple[float, float] = (2.2, 3.3)
    cord_ap_mm: tuple[float, float] = (5.8, 7.6)
    cord_lr_mm: tuple[float, float] = (10.0, 13.0)
    cord_mean: tuple[float, float] = (240.0, 400.0)  # scanner units, like the int16 real files
    snr: tuple[float, float] = (12.0, 26.0)  # cord mean / Rician noise sigma
    # The errsm scanner stores ~0 in air (background masking); False keeps the Rician noise floor.
    zero_air: bool = True
    bias_strength: float = 1.0  # scales the random smooth bias field; 0 switches it off
    lesion_contrast: tuple[float, float] = (0.3, 0.65)  # 0 = cord signal, 1 = CSF signal
    lesion_length_mm: tuple[float, float] = (5.0, 25.0)
    lesion_lr_mm: tuple[float, float] = (3.0, 7.0)
    lesions_per_study: tuple[int, int] = (1, 3)  # for studies drawn as positive in a set
    # A compressed level (degenerative cervical myelopathy): the cord's AP diameter narrowed by
    # this fraction at the disc of `compression_segment` (e.g. "C4-C5"), a Gaussian dip along the
    # cord of full width at half maximum `compression_fwhm_mm`. 0 = no compression.
    compression: float = 0.0
    compression_segment: str = "C4-C5"
    compression_fwhm_mm: float = 10.0


@dataclass
class CordSegConfig:
    """The built-in cord segmentation (docs/SEGMENTATION.md): a MONAI 2D U-Net on 2.5D sagittal
    slices of the canonical frame resampled to `spacing_mm`. Saved inside its checkpoint."""

    spacing_mm: float = 1.0
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    threshold: float = 0.5  # on the probability after resampling onto the input grid
    keep_largest: bool = True  # keep one connected component, the one spanning the most S-I rows (the cord)
    patch: int = 96  # training crop (pixels of spacing_mm)
    batch: int = 16
    steps: int = 800
    lr: float = 1e-2  # one-cycle peak; 3e-3 had not converged after 300 steps
    seed: int = 0


@dataclass
class PseudoAnomalyConfig:
    """Pseudo-lesions inserted into real studies (METHOD.md §8, paper Appendix A.1)."""

    width_fraction: tuple[float, float] = (0.7, 1.0)  # x the local cord width
    length_factor: tuple[float, float] = (1.0, 4.0)  # x the lesion width
    csf_ring_mm: tuple[float, float] = (1.0, 3.0)  # CSF statistics: this band around the cord
    n_neighbours: int = 0  # slices either side of the mid-sagittal one that also get lesions
    # Correlation length of the lesion's Gaussian signal; 0 gives i.i.d. pixels (salt-and-pepper).
    texture_mm: float = 1.5
    # With levels, centre lesions within the segments (C2-C3 … C7-T1) the levels can place, so each
    # lands in a scored segment.
    within_levels: bool = True
    # "centre": on the cord's centreline, as the paper's appendix draws them. "edge": against the
    # anterior or posterior surface (drawn at random), `edge_width_fraction` of the cord's width,
    # like a dorsal-column lesion; scoring that drops the cord's rim can miss these (docs/DETECTION.md).
    placement: Literal["centre", "edge"] = "centre"
    edge_width_fraction: tuple[float, float] = (0.3, 0.5)


@dataclass
class U2ADConfig:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)


def to_dict(cfg: Any) -> dict:
    """Plain, JSON-able dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    Unknown keys raise ValueError naming them; missing keys take the defaults.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
