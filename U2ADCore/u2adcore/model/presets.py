"""Named model sizes. A checkpoint records the preset name and the size fields; `check_preset`
refuses a name that does not describe those fields, so "small" always means the same network."""
from __future__ import annotations

from ..config import ModelConfig

# Size fields of each preset. "small" = the research code (about 3 M parameters), "paper" = the
# paper's figure (24-block encoder), "tiny" = unit tests only,
# "compact" = the CPU-built shipped model.
PRESETS: dict[str, dict] = {
    "tiny": dict(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.0),
    "small": dict(embed_dim=128, depth=12, num_heads=8, decoder_embed_dim=64, decoder_depth=8, decoder_num_heads=8, mlp_ratio=4.0),
    # "compact" = what a CPU can train in minutes on a few dozen studies (docs/MODEL.md): a third of
    # the encoder depth and a quarter of the decoder's.
    "compact": dict(embed_dim=128, depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4, mlp_ratio=4.0),
    "paper": dict(embed_dim=128, depth=24, num_heads=8, decoder_embed_dim=64, decoder_depth=8, decoder_num_heads=8, mlp_ratio=4.0),
}
CUSTOM = "custom"  # any size fields; nothing to check


def model_config(preset: str = "small", **overrides) -> ModelConfig:
    """ModelConfig of a preset; `overrides` may change geometry (img_size, context_band, ...) but
    not the preset's size fields (use preset="custom" for other sizes)."""
    if preset == CUSTOM:
        return ModelConfig(preset=CUSTOM, **overrides)
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS) + [CUSTOM]}")
    clash = sorted(set(overrides) & set(PRESETS[preset]))
    if clash:
        raise ValueError(f"preset {preset!r} fixes {clash}; use preset='custom' to change them")
    return ModelConfig(preset=preset, **PRESETS[preset], **overrides)


def preset_mismatch(cfg: ModelConfig) -> list[str]:
    """Size fields that differ from what `cfg.preset` defines (empty when consistent)."""
    if cfg.preset == CUSTOM:
        return []
    if cfg.preset not in PRESETS:
        return [f"preset {cfg.preset!r} is unknown"]
    return [f"{k}={getattr(cfg, k)} (preset {cfg.preset!r} has {v})" for k, v in PRESETS[cfg.preset].items() if getattr(cfg, k) != v]


def check_preset(cfg: ModelConfig) -> None:
    problems = preset_mismatch(cfg)
    if problems:
        raise ValueError("model size does not match its preset: " + "; ".join(problems))

