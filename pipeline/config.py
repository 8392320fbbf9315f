"""Configs are mmengine Python configs: `_base_` inheritance and `--cfg-options`.

Checks mmengine does not make, because a typo must not silently change a run: an
override must name a key that exists, a config's top-level keys must be known to some
stage, and every value must have its settings dataclass's type. Sections become typed
objects through `section_to_dataclass`, which names any unknown key and the key the
user probably meant, and any value of the wrong type with the type expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import sys
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

from mmengine.config import Config, ConfigDict

from pipeline.errors import ConfigError

# Keys that say where and how to run, not what to compute: never fingerprinted as
# sections. (`custom_imports`, mmengine's convention, loads a user's plug-in modules; the
# source of those modules is fingerprinted instead: `plugin_digest`.)
RUNTIME_KEYS = ("run_name", "work_dir", "log_level", "custom_imports")

T = TypeVar("T")


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """The config at `path` with `overrides` (--cfg-options) merged. An override may also
    set a key that a registered stage's settings dataclass defines but no config file
    lists (its default applies otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (configs live in configs/, e.g. configs/default.py)")
    if str(Path.cwd()) not in sys.path:  # `custom_imports` finds a user's modules in the working directory
        sys.path.append(str(Path.cwd()))
    try:
        cfg = Config.fromfile(str(path))  # imports the modules `custom_imports` names (plug-ins register there)
    except ImportError as err:
        raise ConfigError(f"cannot load config {path}: custom_imports failed ({err}); the module must be in the "
                          "working directory or on PYTHONPATH") from None
    except (TypeError, KeyError, ValueError, SyntaxError, NameError, FileNotFoundError) as err:
        raise ConfigError(f"cannot load config {path}: {err}") from None
    if overrides:
        from pipeline.stage import settings_schemas, stages_for  # after custom_imports registered plug-ins

        check_override_keys(cfg, overrides, settings_schemas(stages_for(cfg)))
        cfg.merge_from_dict(dict(overrides))
    return cfg


def check_override_keys(cfg: Config, overrides: Mapping[str, Any], schemas: Mapping[str, type] = {}) -> None:
    """Every dotted key must exist in the config (mmengine would add it), or be a field of
    its section's settings dataclass (`schemas`)."""
    for key in overrides:
        section, _, field = key.partition(".")
        if field and "." not in field and section in schemas and field in {f.name for f in dataclasses.fields(schemas[section])}:
            continue
        node: Any = cfg.to_dict()
        parts = key.split(".")
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth]) or "the top level"
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                options = list(node) if isinstance(node, Mapping) else []
                raise ConfigError(
                    f"--cfg-options {key}: there is no key '{part}' under {where} of "
                    f"{cfg.filename}.{_did_you_mean(part, options)} Overrides can only change "
                    "keys the config already has; add new keys in a config file."
                )


def check_top_level_keys(cfg: Config, known_sections: Iterable[str]) -> None:
    known = set(known_sections) | set(RUNTIME_KEYS)
    for key in cfg.keys():
        if key not in known:
            raise ConfigError(
                f"unknown top-level key '{key}' in {cfg.filename}.{_did_you_mean(key, known)} "
                f"Known keys: {', '.join(sorted(known))}."
            )


def section_to_dataclass(cls: type[T], section: Mapping[str, Any], name: str, drop: Iterable[str] = ()) -> T:
    """Build `cls` from a config section, with an error naming unknown or missing keys."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"'{name}' must be a dict of {', '.join(f.name for f in dataclasses.fields(cls))}, got "
                          f"{section!r} (dict values cannot be given with --cfg-options; set them in a config file)")
    values = {k: _plain(v) for k, v in section.items() if k not in set(drop)}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"unknown key '{name}.{key}'.{_did_you_mean(key, fields)} "
                f"Valid keys of '{name}': {', '.join(sorted(fields))}."
            )
    missing = [
        n for n, f in fields.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing key(s) in '{name}': {', '.join(name + '.' + m for m in missing)}.")
    hints = _type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint):  # a nested section (refine_masks.crf): typed all the way down
            values[key] = section_to_dataclass(hint, value, f"{name}.{key}")
        elif hint is not None and not _conforms(value, hint):
            raise ConfigError(f"{name}.{key}: expected {_describe(hint)}, got {value!r} "
                              f"({type(value).__name__})")
    try:
        return cls(**values)
    except ConfigError as err:  # a value check of the dataclass: say which section it came from
        raise ConfigError(str(err) if str(err).startswith(name) else f"{name}.{err}") from None


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that does not resolve: no type checks
        return {}


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a config value fits a dataclass field's annotation (an int is a float, a
    list is a tuple: configs and --cfg-options write both; an unknown annotation passes)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if not args:
            return True
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
    if hint is dict or origin is dict:
        return isinstance(value, Mapping)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if origin is tuple and args:
        inner = f"{_describe(args[0])}, ..." if len(args) == 2 and args[1] is Ellipsis else \
            ", ".join(_describe(a) for a in args)
        return f"a tuple ({inner})"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    return getattr(hint, "__name__", str(hint))


def section_dict(cfg: Config, name: str) -> dict:
    """A plain-dict copy of one top-level section (empty if absent)."""
    value = cfg.get(name, {})
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigDict):
        return value.to_dict()
    return value


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def plugin_digest(cfg: Config) -> str | None:
    """A digest of the source files of the modules `custom_imports` loads (None without
    any), so that editing a plug-in makes the stages stale like editing the project."""
    modules = (cfg.get("custom_imports") or {}).get("imports") or []
    if not modules:
        return None
    digest = hashlib.sha256()
    for name in ([modules] if isinstance(modules, str) else modules):
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        digest.update(name.encode() + (origin.read_bytes() if origin is not None and origin.is_file() else b""))
    return digest.hexdigest()[:16]


def check_sections(cfg: Config, schemas: Mapping[str, type]) -> None:
    """Every section that has a settings dataclass, built from the config as the stage
    will build it: a wrong key, type or range fails here, before anything runs."""
    for section, cls in schemas.items():
        if section in cfg:
            section_to_dataclass(cls, section_dict(cfg, section), section)


def settings_of(cfg: Any, section: str):
    """A config section as its settings dataclass, defaults filled in: what the stage that
    reads it runs with (bench scripts and tools read settings through this)."""
    from pipeline.stage import settings_schemas, stages_for

    cls = settings_schemas(stages_for(cfg))[section]
    return section_to_dataclass(cls, section_dict(cfg, section), section)
