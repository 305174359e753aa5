"""Task files: typed, grouped configuration (env / model / replay / learner / exploration / trainer / eval).

Unknown keys are errors, never silently ignored, and every validation error names the file, the
field and what to change. Command-line overrides (``model.layers=1``) are applied to the raw data
before validation so they get the same checks.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUndefined

from attnq.errors import TaskFileError

# What a field changes, declared where the field is defined; whether a saved run may be reused for a
# task follows from it (attnq.experiments.reuse), so a new field cannot be silently mis-reused.
Role = Literal["learns", "budget", "speed", "evaluates", "describes"]
LEARNS: Role = "learns"  # what a run learns: a saved run with another value is trained again
BUDGET: Role = "budget"  # how far a run trains: a saved run with a smaller value is resumed up to it
SPEED: Role = "speed"  # how fast or how visibly a run trains (threads, device, logging): never retrained for it
EVALUATES: Role = "evaluates"  # only the final evaluation: a saved run is evaluated again
DESCRIBES: Role = "describes"  # text and cited figures that reports print


TASK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # one plain folder name: never a path out of the runs folder
MAX_SEED = 2**32 - 1  # what numpy's and Lightning's seeding accept


def field(role: Role, default: Any = PydanticUndefined, *, torso: str | None = None, **kwargs: Any) -> Any:
    """A pydantic ``Field`` that declares its :data:`Role`.

    :param torso: the one torso that reads the field (``model.dropout``: the Transformer); a run of
        the other torso is the same run whatever its value, so it is never trained again for it
    """
    extra: dict[str, Any] = {"role": role} if torso is None else {"role": role, "torso": torso}
    return Field(default, json_schema_extra=extra, **kwargs)


class Section(BaseModel):
    # inf and NaN are never meaningful settings (a learning rate of .inf trains to NaN)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnvConfig(Section):
    id: str = field(LEARNS, description="gymnasium env id, e.g. highway-fast-v0")
    kwargs: dict[str, Any] = field(
        LEARNS, default_factory=dict, description="passed to gymnasium.make (highway-env: {config: {...}})"
    )
    num_envs: int = field(LEARNS, 2, ge=1, description="parallel environments stepped as one vector env")
    vectorization: Literal["async", "sync"] = field(LEARNS, "async", description="async = one worker process per env")


class ModelConfig(Section):
    torso: Literal["transformer", "mlp"] = field(LEARNS, "transformer")
    d_model: int = field(LEARNS, 64, ge=4)
    layers: int = field(LEARNS, 2, ge=1, torso="transformer")
    shared_layers: bool = field(
        LEARNS,
        False,
        torso="transformer",
        description="one block's weights at every depth: the same step applied layers times "
        "(Universal Transformer, Dehghani et al. 2019)",
    )
    heads: int = field(LEARNS, 4, ge=1, torso="transformer")
    feedforward_dim: int = field(LEARNS, 128, ge=1, torso="transformer")
    dropout: float = field(LEARNS, 0.0, ge=0.0, lt=1.0, torso="transformer")
    pool: Literal["cls", "query_token"] = field(
        LEARNS,
        "query_token",
        torso="transformer",
        description="cls = learned [CLS]; query_token = the encoder's query token (ego)",
    )
    queries: int = field(
        LEARNS,
        1,
        torso="transformer",
        ge=1,
        description="learned [CLS] queries whose outputs the dueling head reads side by side (pool: cls)",
    )
    head: Literal["dueling", "per_token"] = field(
        LEARNS,
        "dueling",
        description="per_token = one Q-value per action token "
        "(the MLP torso, which has no token outputs, uses dueling)",
    )
    mlp_hidden: tuple[int, ...] = field(LEARNS, (256, 256), torso="mlp")
    # default: the torso's output width (d_model for the Transformer)
    head_hidden: int | None = field(LEARNS, None, ge=1, description="hidden width of the dueling head's two streams")
    detached_actions: tuple[int, ...] = field(
        LEARNS,
        (),
        description="actions whose Q-values the head reads from the torso's features without training the torso: "
        "a decision kept from shaping what the other actions share (a translation's end, Newman et al. 2020)",
    )
    length_buckets: int = field(
        SPEED,
        1,
        ge=1,
        description="groups of rows, by length, that a batch runs through the Transformer in, each cut after its "
        "own last present token: the same Q-values, fewer padded tokens where lengths vary (sentences)",
    )

    @model_validator(mode="after")
    def _torso_settings_agree(self) -> ModelConfig:
        if self.torso == "transformer" and self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if self.queries > 1 and (self.pool != "cls" or self.head != "dueling"):
            raise ValueError(
                f"queries ({self.queries}) above 1 are learned [CLS] tokens read by the dueling head: "
                "set pool: cls and head: dueling, or queries: 1"
            )
        if self.detached_actions and self.torso == "transformer" and self.head != "dueling":
            raise ValueError(
                f"detached_actions ({list(self.detached_actions)}) are read by the dueling head: "
                "set head: dueling, or detached_actions: []"
            )
        if any(a < 0 for a in self.detached_actions) or len(set(self.detached_actions)) < len(self.detached_actions):
            raise ValueError(f"detached_actions ({list(self.detached_actions)}) must be distinct action numbers >= 0")
        return self


class ReplayConfig(Section):
    capacity: int = field(LEARNS, 15_000, ge=1)
    batch_size: int = field(LEARNS, 64, ge=1)
    prioritized: bool = field(LEARNS, False)
    alpha: float = field(LEARNS, 0.6, ge=0.0)
    beta_start: float = field(LEARNS, 0.4, ge=0.0, le=1.0)
    n_step: int = field(LEARNS, 1, ge=1)

    @model_validator(mode="after")
    def _batch_fits_the_buffer(self) -> ReplayConfig:
        if self.batch_size > self.capacity:
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than capacity ({self.capacity}): "
                "lower batch_size or raise capacity"
            )
        return self


class LearnerConfig(Section):
    gamma: float = field(LEARNS, 0.8, ge=0.0, le=1.0)
    lr: float = field(LEARNS, 5e-4, gt=0.0)
    # smaller steps late in training average out noisy TD targets
    lr_end: float | None = field(
        LEARNS, None, gt=0.0, description="anneal lr linearly to this over the run; None = constant"
    )
    # shrinking the weights each update favours smaller solutions, which may extrapolate further
    weight_decay: float = field(
        LEARNS, 0.0, ge=0.0, description="AdamW's decoupled decay of weight matrices and embeddings; 0 = Adam"
    )
    double_dqn: bool = field(LEARNS, True)
    # Baird 1999; Bellemare et al. 2016: the target loses alpha * (V(s) - Q(s, a)), so the gap between the
    # best action and the others grows by 1 / (1 - alpha) and noisy estimates rank actions right more often
    advantage_learning: float = field(
        LEARNS, 0.0, ge=0.0, lt=1.0, description="alpha of advantage learning; 0 = plain DQN; single actions only"
    )
    huber_delta: float = field(LEARNS, 1.0, gt=0.0)
    max_grad_norm: float = field(LEARNS, 10.0, gt=0.0)
    target_update: Literal["hard", "polyak"] = field(LEARNS, "hard")
    target_update_interval: int = field(LEARNS, 50, ge=1, description="env steps between hard target syncs")
    tau: float = field(LEARNS, 0.005, gt=0.0, le=1.0, description="Polyak rate per update")
    # weight averaging damps the noise of late updates; the online network still acts while training
    weight_average_decay: float | None = field(
        LEARNS,
        None,
        gt=0.0,
        lt=1.0,
        description="evaluate, select and export a moving average of the weights (this decay per update); None = off",
    )
    learning_starts: int = field(LEARNS, 200, ge=0, description="env steps of random actions before learning")
    vector_steps_per_update: int = field(LEARNS, 1, ge=1, description="vector-env steps collected per gradient update")


class ExplorationConfig(Section):
    epsilon_start: float = field(LEARNS, 1.0, ge=0.0, le=1.0)
    epsilon_end: float = field(LEARNS, 0.05, ge=0.0, le=1.0)
    decay_fraction: float = field(
        LEARNS, 0.5, gt=0.0, le=1.0, description="fraction of max_env_steps over which epsilon decays"
    )


class TrainerConfig(Section):
    max_env_steps: int = field(BUDGET, 20_000, ge=1)
    checkpoint_every_env_steps: int = field(SPEED, 2_000, ge=1)
    log_every_updates: int = field(SPEED, 20, ge=1)
    tensorboard: bool = field(SPEED, False)
    accelerator: Literal["auto", "cpu", "gpu"] = field(
        SPEED, "auto", description="auto = a GPU when one is visible, else the CPU"
    )
    progress_bar: bool = field(SPEED, True)
    torch_threads: int = field(SPEED, 1, ge=0, description="0 = torch default; 1 leaves the other cores to env workers")
    # 20-45 s of compiling at the first update, then 27-41 % less time per update for the sepsis network
    # (docs/scripts/update_timing.py)
    compile: bool = field(SPEED, False, description="torch.compile the TD loss; on CPU it needs a C++ compiler")


class EvalVariant(Section):
    """The final evaluation run again with other env kwargs; its metrics are reported as METRIC@NAME."""

    env_kwargs: dict[str, Any] = Field(description="merged over eval.env_kwargs for this evaluation")
    metrics: list[str] = Field(min_length=1, description="the metrics to report from it")
    description: str = Field(description="one line for the report: what this evaluation changes")


class EvalConfig(Section):
    episodes: int = field(EVALUATES, 50, ge=1)
    seed: int = field(EVALUATES, 10_000, ge=0, description="episode i is reset with seed + i")
    every_env_steps: int = field(LEARNS, 0, ge=0, description="0 = no evaluation during training")
    episodes_during_training: int = field(LEARNS, 5, ge=1)
    # kept apart from `seed`, so that picking the best checkpoint never sees the final episodes
    seed_during_training: int = field(
        LEARNS, 1_000_000, ge=0, description="first seed of the evaluations during training"
    )
    keep_best: bool = field(
        LEARNS,
        False,
        description="keep the best checkpoint of the evaluations during training "
        "as checkpoints/best.ckpt (needs every_env_steps > 0)",
    )
    env_kwargs: dict[str, Any] = field(
        LEARNS,
        default_factory=dict,
        description="merged over env.kwargs for evaluation envs only (a corpus's test part, denser traffic)",
    )
    # a corpus's test part must never choose a checkpoint: the evaluations during training may use another part
    validation_env_kwargs: dict[str, Any] = field(
        LEARNS, default_factory=dict, description="merged over eval.env_kwargs for the evaluations during training"
    )
    variants: dict[str, EvalVariant] = field(
        EVALUATES,
        default_factory=dict,
        description="name -> the same episodes again with other env kwargs (a sentence's length given)",
    )

    @model_validator(mode="after")
    def _best_needs_evaluations(self) -> EvalConfig:
        if self.keep_best and not self.every_env_steps:
            raise ValueError("keep_best needs evaluations during training: set eval.every_env_steps > 0")
        return self

    @model_validator(mode="after")
    def _variant_names_fit_report_columns(self) -> EvalConfig:
        for name in self.variants:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise ValueError(f"variant name {name!r} names report columns: use letters, digits and '_'")
        return self


class Anchor(Section):
    """A published reference figure shown beside the agents in reports (cite where it comes from)."""

    policy: str = Field(description="what produced it, e.g. 'DQN (rl-agents, highway-env example)'")
    source: str = Field(description="the paper, README or page that reports it")
    metrics: dict[str, float] = Field(description="metric name -> value, in this task's metric names")


class TaskConfig(Section):
    name: str = field(
        LEARNS, pattern=TASK_NAME_PATTERN, description="names the run folders: letters, digits, '.', '-', '_'"
    )
    domain: str = field(LEARNS)
    description: str = field(DESCRIBES, "")
    seed: int = field(LEARNS, 0, ge=0, le=MAX_SEED, description="seeds torch, numpy and the envs")
    env: EnvConfig
    domain_options: dict[str, Any] = field(LEARNS, default_factory=dict)
    model: ModelConfig = ModelConfig()
    replay: ReplayConfig = ReplayConfig()
    learner: LearnerConfig = LearnerConfig()
    exploration: ExplorationConfig = ExplorationConfig()
    trainer: TrainerConfig = TrainerConfig()
    eval: EvalConfig = EvalConfig()
    anchors: list[Anchor] = field(DESCRIBES, default_factory=list)
    profiles: dict[str, list[str]] = field(
        DESCRIBES,
        default_factory=dict,
        description="report profiles this task joins (quick, full, ...), each with its --set overrides",
    )

    @field_validator("profiles")
    @classmethod
    def _overrides_name_fields(cls, profiles: dict[str, list[str]]) -> dict[str, list[str]]:
        for profile, overrides in profiles.items():
            for override in overrides:
                key = override.partition("=")[0]
                try:
                    role_of(key) if "=" in override else None
                except KeyError:
                    key = None
                if "=" not in override or key is None:
                    raise ValueError(
                        f"profile {profile!r}: {override!r} is not KEY=VALUE with KEY a task field, "
                        "e.g. trainer.max_env_steps=4000"
                    )
        return profiles

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _declared(path: str, root: type[BaseModel]) -> tuple[str, dict[str, Any]]:
    """What the field holding the dotted ``path`` declares, with its name; a path inside a mapping
    field (``env.kwargs.config.x``) or a list of records (``anchors``) is held by that field."""
    model: type[BaseModel] = root
    for part in path.split("."):
        info = model.model_fields.get(part)
        if info is None:
            raise KeyError(f"{path}: no field {part!r} in {model.__name__}")
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        extra = info.json_schema_extra
        return f"{part!r} of {model.__name__}", extra if isinstance(extra, dict) else {}
    raise KeyError(f"{path} is a section, not a field")


def role_of(path: str, root: type[BaseModel] = TaskConfig) -> Role:
    """The role of the dotted field ``path`` (a path inside a mapping field has that field's role)."""
    name, declared = _declared(path, root)
    if "role" not in declared:
        raise KeyError(f"{path}: field {name} declares no role")
    return declared["role"]


def torso_of(path: str, root: type[BaseModel] = TaskConfig) -> str | None:
    """The one torso that reads the dotted field ``path``, or None where every torso reads it."""
    return _declared(path, root)[1].get("torso")


def leaf_fields(root: type[BaseModel] = TaskConfig, prefix: str = "") -> list[str]:
    """Every field of a task that holds a value (sections are walked into), as dotted paths."""
    paths: list[str] = []
    for name, info in root.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += leaf_fields(annotation, f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def _fix_hint(error: dict[str, Any], section_model: type[BaseModel] | None) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        if section_model is not None:
            allowed = ", ".join(section_model.model_fields)
            return f"remove it or use one of: {allowed}"
        return "remove it"
    if kind == "missing":
        return "add this field"
    if kind.startswith("greater_than") or kind.startswith("less_than"):
        return "change the value to lie in the allowed range"
    if kind == "literal_error":
        return "use one of the listed values"
    if kind == "string_pattern_mismatch":
        return "use letters, digits, '.', '-' or '_' only, starting with a letter or digit (it names a folder)"
    return "correct the value's type or format"


def _section_model(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def format_validation_error(
    source: str, error: ValidationError, root: type[BaseModel] = TaskConfig, prefix: str = ""
) -> str:
    """One line per problem: the field's dotted path, what is wrong, what was given, how to fix it."""
    lines = [f"{source}: invalid task configuration"]
    for item in error.errors():
        loc = tuple(item["loc"])
        where = prefix + (".".join(str(p) for p in loc) or "(top level)")
        got = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  field '{where}': {message}{got}; fix: {_fix_hint(item, _section_model(loc, root))}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.layers=1"`` -> (["model", "layers"], 1). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise TaskFileError(f"override {text!r} must look like key.path=value, e.g. trainer.max_env_steps=5000")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise TaskFileError(f"override {text!r} has an empty key")
    try:
        return path, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise TaskFileError(
            f"override {text!r}: the value is not valid YAML ({problem}); fix: quote it, e.g. {key.strip()}='\"...\"'"
        ) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with overrides applied; the caller's dict is never mutated."""
    result = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TaskFileError(f"override {text!r}: '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return result


def validate_task(data: Any, source: str) -> TaskConfig:
    if not isinstance(data, dict):
        raise TaskFileError(f"{source}: a task file must be a YAML mapping (key: value), got {type(data).__name__}")
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as exc:
        raise TaskFileError(format_validation_error(source, exc)) from None


def read_task_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TaskFileError(
            f"task file {path} does not exist; give a path to a .yaml file or a task name (`attnq plugins` lists them)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise TaskFileError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); fix: save the task file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise TaskFileError(f"{path}: not valid YAML: {exc}") from None
    return data


def load_task(path: Path, overrides: list[str] | None = None) -> TaskConfig:
    data = read_task_file(path)
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return validate_task(data, str(path))
