"""A stage's declaration, written once, above its entry function, in its own module.

    @register_stage(step=7, consumes=(PreparedData, ClassMaps, SeedScores), produces=PseudoMasks,
                    settings=RefineSettings)
    def refine_masks(ctx: StageContext) -> StageResult:
        settings = ctx.settings()  # the `refine_masks` section, defaults filled in
        maps = ctx.input(ClassMaps)  # typed: maps.split, maps.read_image(id)

The decorator puts the function into the `STAGES` registry (an mmengine `Registry`) with
its `Stage` record. What a stage consumes and produces are artifact kinds, typed
contracts (`pipeline/artifacts.py`), never other stages' names: the plan
(`pipeline/plan.py`) finds each input's producer, so the upstream stages, which stages
are on, and the report's mIoU chain all follow from these records. `settings` is the dataclass of the
stage's own config section (named as the stage), or maps each section it reads to its
dataclass; that dataclass is the one source of the section's defaults (None: a section a
plug-in types, such as `dataset` or `localizer`). The stage's fingerprint hashes exactly
these sections, defaults filled in.

The built-in stages live in the `stages` package; a stage registered by a module that a
config's `custom_imports` names takes part in that config's runs, e.g. a new refinement:
one module and one config.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterable, Mapping

from mmengine.registry import Registry

from pipeline.artifacts import Artifact, artifact_class
from pipeline.errors import ConfigError, PipelineError

STAGES = Registry("stage")
BUILTIN_PACKAGE = "stages"


@dataclasses.dataclass(frozen=True)
class Input:
    """One artifact a stage consumes.

    Its producer is the one stage that produces `kind` before the consumer; where there
    can be several (the CRF's and the walk's pseudo-masks), `select` ('section.key') lets
    the config name it (e.g. 'train_segmenter.pseudo_masks'): None there means no input,
    and with `outside` any other value that is not a stage (a folder) is left to the
    stage. `optional`: used when its producers are done, never run for it; with `every`,
    all of them (the report shows every pseudo-mask set the run made).
    """

    kind: str | type[Artifact]
    select: str | None = None
    optional: bool = False
    every: bool = False
    outside: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", artifact_class(self.kind).KIND)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage: its entry function `run` and what the plan needs to know about it.

    Under torchrun, a `distributed` stage runs on every rank (it shards its own work);
    any other stage runs on rank 0 while the other ranks wait.
    """

    name: str
    run: Callable
    step: float  # its place in the pipeline (a plug-in takes e.g. 7.5 to run after step 7)
    consumes: tuple[Input, ...] = ()
    artifact: type[Artifact] | None = None  # what it produces: the type of its StageResult.artifact
    settings: Mapping[str, type | None] = dataclasses.field(default_factory=dict)
    description: str = ""
    distributed: bool = False
    # 'section.key' entries that say how to run, not what to compute (worker counts,
    # parallel backends): left out of the fingerprint, so changing them re-runs nothing.
    execution_keys: tuple[str, ...] = ()
    # (metric key, label): the figure the run summary and the report's mIoU chain show.
    headline: tuple[str, str] | None = None
    # Off unless a stage that is on needs its product (not run, no one's upstream).
    on_demand: bool = False
    # Inputs from outside the run folder that the output depends on (an external run's
    # model id, say): hashed into the fingerprint, so a change makes the stage stale.
    external: Callable[[Any], dict] | None = None

    @property
    def produces(self) -> str | None:
        """The kind it produces (its artifact's KIND)."""
        return self.artifact.KIND if self.artifact else None

    @property
    def reads(self) -> tuple[str, ...]:
        """The config sections the stage reads: its fingerprint hashes exactly these."""
        return tuple(self.settings)

    @property
    def module(self) -> str:
        return self.run.__module__


def register_stage(*, step: float, consumes: Iterable[Input | str | type[Artifact]] = (),
                   produces: str | type[Artifact] | None = None,
                   settings: type | Mapping[str, type | None] | None = None, name: str | None = None, **options):
    """Declare the decorated function a stage (see the module docstring). `settings`: the
    dataclass of the stage's own section (named as the stage), or {section: dataclass}."""

    def register(run: Callable) -> Callable:
        own = name or run.__name__
        sections = {own: settings} if isinstance(settings, type) else dict(settings or {})
        artifact = artifact_class(produces) if produces is not None else None
        stage = Stage(name=own, run=run, step=step, artifact=artifact,
                      settings=sections, consumes=tuple(c if isinstance(c, Input) else Input(c) for c in consumes),
                      **options)
        known = STAGES.module_dict.get(stage.name)
        if known is not None and (known.__module__, known.__qualname__) != (run.__module__, run.__qualname__):
            raise PipelineError(f"two stages are named '{stage.name}': {known.__module__} and {run.__module__}")
        run.stage = stage
        STAGES.register_module(name=stage.name, module=run, force=True)
        return run

    return register


def stages_for(cfg: Any = None) -> list[Stage]:
    """The built-in stages, and those registered by the config's `custom_imports`, in
    pipeline order. The built-in package is imported (once) by name: it discovers its
    modules, so no caller needs to know them."""
    importlib.import_module(BUILTIN_PACKAGE)
    imports = ((cfg or {}).get("custom_imports") or {}).get("imports") or []
    imports = [imports] if isinstance(imports, str) else list(imports)
    stages = [run.stage for run in STAGES.module_dict.values()
              if run.stage.module.split(".")[0] == BUILTIN_PACKAGE or run.stage.module in imports]
    stages.sort(key=lambda s: s.step)
    steps = [s.step for s in stages]
    if len(set(steps)) != len(steps):
        clash = sorted({s.name for s in stages if steps.count(s.step) > 1})
        raise PipelineError(f"stages {', '.join(clash)} share a step number; give each its own")
    return stages


def settings_schemas(stages: Iterable[Stage]) -> dict[str, type]:
    """{config section: settings dataclass} over the stages (plug-in-typed sections left out)."""
    return {section: cls for s in stages for section, cls in s.settings.items() if cls is not None}


def selected_producer(cfg: Any, stage: Stage, given: Input, producers: list[str]) -> list[str]:
    """The producer a config names for a `select` input (see `Input`)."""
    section, _, key = given.select.partition(".")
    cls = stage.settings.get(section)
    default = next((f.default for f in dataclasses.fields(cls) if f.name == key), None) if cls else None
    value = (cfg.get(section) or {}).get(key, default)
    if value is None:
        return []
    if value in producers:
        return [value]
    if given.outside:
        return []
    raise ConfigError(f"{given.select}={value!r}: not a stage that makes {given.kind.replace('_', '-')} before "
                      f"{stage.name}; the stages that do: {', '.join(producers) or 'none'}")
