import dataclasses

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
