import json

import pytest

from u2adcore.config import AdaptConfig, ModelConfig, U2ADConfig, from_dict, to_dict


def test_round_trip_through_json_is_exact():
    cfg = U2ADConfig()
    cfg.model.context_band = 3
    cfg.adapt.strategy = "eu"
    cfg.train.betas = (0.8, 0.9)
    back = from_dict(U2ADConfig, json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg
    assert isinstance(back.train.betas, tuple)


def test_unknown_setting_is_refused_by_name():
    data = to_dict(U2ADConfig())
    data["model"]["patch"] = 16
    with pytest.raises(ValueError, match=r"ModelConfig: unknown setting\(s\) \['patch'\]"):
        from_dict(U2ADConfig, data)


def test_missing_settings_take_paper_defaults():
    cfg = from_dict(U2ADConfig, {"model": {"depth": 24}})
    assert cfg.model.depth == 24
    assert cfg.model.mask_ratio == 0.75 and cfg.model.edge_weight == 0.1
    assert cfg.adapt == AdaptConfig()
    assert ModelConfig().patch_size == 8
