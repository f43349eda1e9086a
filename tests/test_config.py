from pathlib import Path

import pytest
import yaml

from diffpose3d.config import Config, config_to_dict, load_config, save_config
from diffpose3d.errors import ConfigError, InputFileError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_papers_hyper_parameters():
    cfg = Config()
    assert cfg.model.num_steps == 50 and cfg.model.num_components == 5
    assert cfg.inference.hypotheses == 5 and cfg.inference.steps == 5
    assert (cfg.model.width, cfg.model.blocks, cfg.model.heads) == (96, 5, 4)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.model.num_steps == 50 and cfg.inference.hypotheses == 5


def test_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["train.max_minutes=12.5", "data.actions=Walk,Jog", "train.flip_augment=false",
                             "model.blocks=3", "data.holdout_fractions=[0.8, 0.1, 0.1]"])
    assert cfg.train.max_minutes == 12.5
    assert cfg.data.actions == ["Walk", "Jog"]
    assert cfg.train.flip_augment is False
    assert cfg.model.blocks == 3
    assert cfg.data.holdout_fractions == [0.8, 0.1, 0.1]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.width=64", "name=x"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


def test_bad_configs_give_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'widht'"):
        load_config(None, ["model.widht=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["model.blocks=many"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["model.blocks"])
    with pytest.raises(InputFileError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(InputFileError, match="not valid YAML"):
        load_config(bad)
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"model": [1, 2]}))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
