import dataclasses
import re
from pathlib import Path

import pytest

from pipeline.config import check_override_keys, load_config, section_to_dataclass
from pipeline.errors import ConfigError


def test_default_config_loads_with_inheritance():
    cfg = load_config("configs/default.py")
    assert cfg.dataset.type == "synthetic"
    assert cfg.work_dir == "outputs"


def test_override_changes_existing_keys():
    cfg = load_config("configs/default.py", {"dataset.num_train": 7, "dataset.image_size": [64, 80]})
    assert cfg.dataset.num_train == 7
    assert list(cfg.dataset.image_size) == [64, 80]


@pytest.mark.parametrize("key, hint", [
    ("dataset.num_tran", "Did you mean 'num_train'"),
    ("datset.seed", "Did you mean 'dataset'"),
    ("dataset.seed.value", "no key 'value'"),
    ("dataset.image_size.5", "no key '5'"),
])
def test_override_of_unknown_key_is_an_error(key, hint):
    cfg = load_config("configs/default.py")
    with pytest.raises(ConfigError, match=hint):
        check_override_keys(cfg, {key: 1})


def test_override_may_index_lists():
    cfg = load_config("configs/default.py")
    check_override_keys(cfg, {"dataset.image_size.1": 150})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.py")


@dataclasses.dataclass
class Spec:
    size: int
    name: str = "x"


def test_section_to_dataclass_names_unknown_and_missing_keys():
    assert section_to_dataclass(Spec, {"size": 3, "type": "t"}, "sec", drop=("type",)) == Spec(3)
    with pytest.raises(ConfigError, match="unknown key 'sec.nmae'. Did you mean 'name'"):
        section_to_dataclass(Spec, {"size": 3, "nmae": "y"}, "sec")
    with pytest.raises(ConfigError, match="missing key.*sec.size"):
        section_to_dataclass(Spec, {}, "sec")
    with pytest.raises(ConfigError, match="'sec' must be a dict of size, name"):
        section_to_dataclass(Spec, ["size", 3], "sec")


@pytest.mark.parametrize("section, key, hint", [
    ("refine_masks", dict(crf=dict(iteratons=5)), "unknown key 'refine_masks.crf.iteratons'. Did you mean 'iterations'"),
    ("refine_masks", dict(confident=dict(fg_treshold=0.3)), "refine_masks.confident.fg_treshold'. Did you mean 'fg_threshold'"),
    ("evaluate_segmenter", dict(crf=dict(enable=True)), "evaluate_segmenter.crf.enable'. Did you mean 'enabled'"),
    ("refine_masks", dict(crf=dict(gaussian="wide")), "refine_masks.crf.gaussian: expected"),
])
def test_a_typo_inside_a_nested_setting_is_refused_at_load(tmp_path, section, key, hint):
    """The CRF and the confident split are dataclasses inside their stage's settings, with
    one CRF schema (the segmenter's test-time CRF extends it): checked when the config loads."""
    from pipeline.config import check_sections
    from pipeline.stage import settings_schemas, stages_for

    path = tmp_path / "typo.py"
    path.write_text(f"_base_ = ['{Path('configs/default.py').resolve()}']\n{section} = {key!r}\n")
    with pytest.raises(ConfigError, match=re.escape(hint)):
        check_sections(load_config(path), settings_schemas(stages_for()))


def test_nested_settings_fill_their_defaults():
    from pipeline.crf import CRFParams
    from pipeline.pseudo_masks import ConfidentSplit
    from stages.refine_masks import RefineSettings

    settings = section_to_dataclass(RefineSettings, dict(crf=dict(iterations=3)), "refine_masks")
    assert settings.crf == CRFParams(iterations=3) and settings.confident == ConfidentSplit()
    assert section_to_dataclass(RefineSettings, {}, "refine_masks").crf == CRFParams()
