from pathlib import Path

import pytest
import yaml

from diffpose3d.config import Config, config_to_dict, load_config, save_config
from diffpose3d.errors import ConfigError, InputFileError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers_hyper_parameters():
    cfg = Config()
    assert cfg.model.diffusion.num_steps == 50 and cfg.model.diffusion.num_components == 5
    assert cfg.inference.hypotheses == 5 and cfg.inference.steps == 5
    assert (cfg.model.denoiser.width, cfg.model.denoiser.blocks, cfg.model.denoiser.heads) == (96, 5, 4)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.model.diffusion.num_steps == 50 and cfg.inference.hypotheses == 5


def test_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["train.max_minutes=12.5", "data.actions=Walk,Jog", "train.flip_augment=false",
                             "model.denoiser.blocks=3", "data.holdout_fractions=[0.8, 0.1, 0.1]"])
    assert cfg.train.max_minutes == 12.5
    assert cfg.data.actions == ["Walk", "Jog"]
    assert cfg.train.flip_augment is False
    assert cfg.model.denoiser.blocks == 3
    assert cfg.data.holdout_fractions == [0.8, 0.1, 0.1]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.denoiser.width=64", "name=x"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


@pytest.mark.parametrize("overrides, error, match", [
    (["model.widht=3"], ConfigError, "unknown key 'widht'"),
    (["model.denoiser.blocks=many"], ConfigError, "expected an integer"),
    (["model.denoiser.blocks"], ConfigError, "section.key=value"),
])
def test_bad_overrides_give_one_line_errors(overrides, error, match):
    with pytest.raises(error, match=match):
        load_config(None, overrides)


@pytest.mark.parametrize("text, error, match", [
    (None, InputFileError, "config file not found"),
    ("model: [unclosed", InputFileError, "not valid YAML"),
    (yaml.safe_dump({"model": [1, 2]}), ConfigError, "expected a mapping"),
])
def test_bad_config_files_give_one_line_errors(tmp_path, text, error, match):
    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=match):
        load_config(path)
