"""The one typed configuration of a training run.

`StudioConfig` (four small dataclass sections) is the schema behind everything that sets up a run:
the Train form in the browser is generated from its fields, YAML recipes in `recipes/` are
serialised instances of it, and CLI overrides (`key=value`) edit it. Every field carries a
default and (where it matters) bounds or choices; its label and help text are translation codes
(`field.<section.name>.label` / `.help`, see `field_label` / `field_help`), and `validate()` turns
bad values into sentences (`Msg`) keyed by the field they concern.

    cfg = from_command_line(["recipes/demo.yaml", "epochs=2"])
    cfg = load_recipe("recipes/demo.yaml")
    cfg = apply_overrides(cfg, ["epochs=2", "learning_rate=1e-4"])
    problems = validate(cfg)          # {} when the config can run, else {key: Msg}
    save_recipe(cfg, "run/config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from studio.errors import UserError
from studio.i18n import Msg


def setting(default, *, choices=None, min=None, max=None):
    """A dataclass field with the metadata the form, the CLI and validation read.

    Its label and help text live in the translation table (`field.<section.name>.label` /
    `.help` in studio/i18n/config.yaml): read them with `field_label` / `field_help`.
    """
    return field(default=default, metadata={"choices": choices, "min": min, "max": max})


# Training methods. PEFT methods train an adapter (saved in run/adapter/); full and freeze
# write a whole model (run/model/). qlora quantizes the frozen base with bitsandbytes.
METHODS = {
    "full": "model", "freeze": "model",
    "lora": "lora", "qlora": "lora", "dora": "lora", "rslora": "lora",
    "ia3": "ia3", "prefix": "prefix", "prompt": "prompt",
}
# Which method settings each method uses (the form shows only these).
METHOD_FIELDS = {
    "full": [], "freeze": ["method.freeze_layers"],
    "lora": ["method.lora_r", "method.lora_alpha", "method.lora_dropout", "method.lora_target"],
    "qlora": ["method.quant_bits", "method.lora_r", "method.lora_alpha", "method.lora_dropout",
              "method.lora_target"],
    "dora": ["method.lora_r", "method.lora_alpha", "method.lora_dropout", "method.lora_target"],
    "rslora": ["method.lora_r", "method.lora_alpha", "method.lora_dropout", "method.lora_target"],
    "ia3": ["method.lora_target"],
    "prefix": ["method.num_virtual_tokens"], "prompt": ["method.num_virtual_tokens"],
}


def is_adapter_method(method: str) -> bool:
    """Whether the run's result is a PEFT adapter (run/adapter/) rather than a whole model."""
    return METHODS.get(method, "model") != "model"


@dataclass
class ModelSection:
    path: str = setting("demo")
    trust_remote_code: bool = setting(False)


@dataclass
class DataSection:
    path: str = setting("demo-en")
    format: str = setting("auto", choices=["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text"])
    val_size: float = setting(0.2, min=0.0, max=0.5)
    test_size: float = setting(0.1, min=0.0, max=0.5)
    max_samples: int = setting(0, min=0, max=10**9)
    system_prompt: str = setting("")
    mix: str = setting("")  # "library:<id>=share, …": several library datasets instead of data.path


@dataclass
class MethodSection:
    stage: str = setting("sft", choices=["sft", "dpo"])
    method: str = setting("lora", choices=list(METHODS))
    quant_bits: int = setting(4, choices=[4, 8])
    freeze_layers: int = setting(2, min=1, max=1000)
    lora_r: int = setting(16, min=1, max=1024)
    lora_alpha: int = setting(32, min=1, max=16384)
    lora_dropout: float = setting(0.05, min=0.0, max=0.9)
    lora_target: str = setting("all-linear")
    num_virtual_tokens: int = setting(20, min=1, max=512)
    dpo_beta: float = setting(0.1, min=0.0, max=10.0)


@dataclass
class TrainSection:
    epochs: float = setting(3.0, min=0.01, max=1000)
    max_steps: int = setting(0, min=0, max=10**8)
    learning_rate: float = setting(2e-4, min=0.0, max=1.0)
    batch_size: int = setting(8, min=1, max=4096)
    grad_accum: int = setting(1, min=1, max=4096)
    max_length: int = setting(256, min=16, max=131072)
    lr_scheduler: str = setting("cosine", choices=["cosine", "linear", "constant", "constant_with_warmup"])
    warmup: float = setting(0.05, min=0.0, max=10**8)
    weight_decay: float = setting(0.0, min=0.0, max=1.0)
    max_grad_norm: float = setting(1.0, min=0.0)
    loss_on: str = setting("answer", choices=["answer", "all"])
    eval_every: int = setting(0, min=0, max=10**8)
    log_every: int = setting(1, min=1, max=10**8)
    save_every: int = setting(0, min=0, max=10**8)
    early_stopping_patience: int = setting(0, min=0, max=10**6)
    early_stopping_threshold: float = setting(0.0, min=0.0)
    neftune_alpha: float = setting(0.0, min=0.0, max=100.0)
    packing: bool = setting(False)
    save_total_limit: int = setting(3, min=1, max=10**4)
    report_to: str = setting("none")  # "none" or tracker names, commas between (studio.trackers)
    precision: str = setting("auto", choices=["auto", "fp32", "bf16", "fp16"])
    gradient_checkpointing: str = setting("auto", choices=["auto", "on", "off"])
    processes: int = setting(1, min=1, max=64)  # > 1: torchrun / accelerate launch (studio.distributed)
    distributed: str = setting("ddp", choices=["ddp", "fsdp", "zero2", "zero3"])
    seed: int = setting(42, min=0, max=2**32 - 1)  # numpy and torch take 32-bit seeds


@dataclass
class StudioConfig:
    name: str = setting("")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    method: MethodSection = field(default_factory=MethodSection)
    train: TrainSection = field(default_factory=TrainSection)


SECTIONS = ("model", "data", "method", "train")

# Short CLI keys for the settings people change most; every other field is reachable by its
# own (unique) name or as section.field.
ALIASES = {"model": "model.path", "data": "data.path", "method": "method.method"}


def field_specs() -> dict[str, dataclasses.Field]:
    """Every setting as 'section.field' -> dataclass Field, in form order (top-level 'name' first)."""
    specs = {"name": next(f for f in fields(StudioConfig) if f.name == "name")}
    for section in SECTIONS:
        section_type = get_type_hints(StudioConfig)[section]
        for f in fields(section_type):
            specs[f"{section}.{f.name}"] = f
    return specs


def field_code(key: str, part: str) -> str:
    """The translation code of a setting's 'label' or 'help' ('field.train.epochs.label')."""
    return ".".join(("field", key, part))


def field_label(key: str) -> Msg:
    """The setting's short name ('Learning rate'), as a sentence code rendered in any language."""
    return Msg(field_code(key, "label"))


def field_help(key: str) -> Msg:
    """The setting's help text, as a sentence code rendered in any language."""
    return Msg(field_code(key, "help"))


def settings_help(lang: str | None = None) -> str:
    """Every setting with its help and default, one per line (for `studio train --help`)."""
    lines = [Msg("config.settings_heading").render(lang)]
    for key, spec in field_specs().items():
        default = spec.default if spec.default != "" else "''"
        lines.append(f"  {key} = {default}\n      {field_help(key).render(lang)}")
    return "\n".join(lines)


def field_type(key: str) -> type:
    if key == "name":
        return str
    section, name = key.split(".")
    return get_type_hints(get_type_hints(StudioConfig)[section])[name]


def resolve_key(key: str) -> str:
    """Turn a short, bare or dotted key into its 'section.field' form, or raise UserError."""
    specs = field_specs()
    if key in specs:
        return key
    if key in ALIASES:
        return ALIASES[key]
    matches = [k for k in specs if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    known = list(ALIASES) + [k.split(".")[-1] for k in specs]
    hint = difflib.get_close_matches(key, known, n=1)
    if hint:
        raise UserError("config.unknown_setting_hint", name=key, hint=hint[0])
    raise UserError("config.unknown_setting", name=key)


def get_value(cfg: StudioConfig, key: str) -> Any:
    obj = cfg
    for part in resolve_key(key).split("."):
        obj = getattr(obj, part)
    return obj


def parse_value(key: str, value: Any) -> Any:
    """Coerce a string (CLI, form) or YAML value to the field's type, or raise UserError."""
    kind = field_type(key)
    if isinstance(value, str):
        value = value.strip()
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):  # nan, inf: no setting means anything with them
                raise ValueError
            return number
        return "" if value is None else str(value)
    except (TypeError, ValueError):
        code = {int: "config.needs_int", float: "config.needs_number"}.get(kind, "config.needs_bool")
        raise UserError(code, key=key, label=field_label(key), value=value) from None


def set_value(cfg: StudioConfig, key: str, value: Any) -> StudioConfig:
    """Return a copy of cfg with one setting changed (value coerced to the field's type)."""
    key = resolve_key(key)
    value = parse_value(key, value)
    cfg = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s)) for s in SECTIONS})
    if key == "name":
        cfg.name = value
    else:
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
    return cfg


def apply_overrides(cfg: StudioConfig, overrides: list[str]) -> StudioConfig:
    """Apply CLI-style 'key=value' strings."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError("config.expected_key_value", item=item)
        cfg = set_value(cfg, key.strip(), value)
    return cfg


def from_command_line(items: list[str]) -> StudioConfig:
    """`[RECIPE.yaml] [key=value …]` -> config (the CLI and `python -m studio.train` share this)."""
    recipes = [item for item in items if "=" not in item]
    if len(recipes) > 1:
        raise UserError("config.one_recipe", recipes=", ".join(recipes))
    cfg = load_recipe(recipes[0]) if recipes else StudioConfig()
    return apply_overrides(cfg, [item for item in items if "=" in item])


def from_dict(data: dict | None, source: str = "the recipe") -> StudioConfig:
    """Build a config from nested YAML-style data; unknown keys are errors, not silently dropped."""
    cfg = StudioConfig()
    for top, value in (data or {}).items():
        if top in SECTIONS:
            if not isinstance(value, dict):
                raise UserError("config.not_a_group", name=top, source=source, value=value)
            for name, inner in value.items():
                key = f"{top}.{name}"
                if key not in field_specs():
                    raise UserError("config.unknown_setting_in", name=key, source=source)
                cfg = set_value(cfg, key, inner)
        elif top == "name":
            cfg = set_value(cfg, "name", value)
        else:
            raise UserError("config.unknown_setting_in", name=top, source=source)
    return cfg


def to_dict(cfg: StudioConfig) -> dict:
    return dataclasses.asdict(cfg)


def load_recipe(path: str | Path) -> StudioConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError("config.recipe_not_found", path=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        if line is None:
            raise UserError("config.bad_yaml", name=path.name) from None
        raise UserError("config.bad_yaml_line", name=path.name, line=line + 1) from None
    if data is not None and not isinstance(data, dict):
        raise UserError("config.not_a_mapping", name=path.name)
    return from_dict(data, source=path.name)


def save_recipe(cfg: StudioConfig, path: str | Path, header: str = "") -> None:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    Path(path).write_text(header + text, encoding="utf-8")


def _echo(value: int | float) -> int | float | str:
    """A number as a refusal repeats it: `max_steps=1e99` is read as a 100-digit integer, which
    is shown as 1e+99 rather than in full."""
    return f"{value:.3g}" if isinstance(value, int) and abs(value) >= 10**15 else value


def validate(cfg: StudioConfig) -> dict[str, Msg]:
    """Check bounds, choices and cross-field rules. Returns {'section.field': Msg}, all at once."""
    problems: dict[str, Msg] = {}
    for key, spec in field_specs().items():
        value = get_value(cfg, key)
        meta = spec.metadata
        label = field_label(key)
        if meta.get("choices") and value not in meta["choices"]:
            options = ", ".join(str(c) for c in meta["choices"])
            problems[key] = Msg("config.one_of", label=label, options=options, value=value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if meta.get("min") is not None and value < meta["min"]:
                problems[key] = Msg("config.at_least", label=label, min=meta["min"], value=_echo(value))
            elif meta.get("max") is not None and value > meta["max"]:
                problems[key] = Msg("config.at_most", label=label, max=meta["max"], value=_echo(value))
    if cfg.train.learning_rate <= 0 and "train.learning_rate" not in problems:
        problems["train.learning_rate"] = Msg("config.above_zero", label=field_label("train.learning_rate"),
                                              value=cfg.train.learning_rate)
    if cfg.data.val_size + cfg.data.test_size >= 0.9:
        problems["data.val_size"] = Msg("config.splits_too_big")
    if not cfg.model.path.strip():
        problems["model.path"] = Msg("config.choose_model")
    if not cfg.data.path.strip():
        problems["data.path"] = Msg("config.choose_data")
    problems.update(_library_problems(cfg))
    problems.update(_control_problems(cfg))
    from studio.trackers import report_to_problem  # (asks importlib which trackers are installed)

    if (tracker := report_to_problem(cfg.train.report_to)) is not None:
        problems["train.report_to"] = tracker
    if cfg.method.method == "prefix" and cfg.train.gradient_checkpointing == "on":
        # prefix tuning's virtual tokens are a key/value cache that checkpointed layers drop
        problems["train.gradient_checkpointing"] = Msg("peftm.prefix_no_checkpointing")
    return problems


def _control_problems(cfg: StudioConfig) -> dict[str, Msg]:
    """Training controls that need something else: early stopping needs validation rows (a
    library dataset or mix brings its own split), NEFTune and packing are SFT-only."""
    from studio.paths import is_library_ref

    problems = {}
    own_split = is_library_ref(cfg.data.path) or cfg.data.mix.strip()
    if cfg.train.early_stopping_patience > 0 and cfg.data.val_size <= 0 and not own_split:
        problems["train.early_stopping_patience"] = Msg("resume.early_stopping_needs_val")
    if cfg.method.stage != "sft":
        for key in ("train.neftune_alpha", "train.packing"):
            if get_value(cfg, key):
                problems[key] = Msg("resume.sft_only", label=field_label(key))
    return problems


def _library_problems(cfg: StudioConfig) -> dict[str, Msg]:
    """`library:<id>` references and the data.mix syntax (whether the datasets exist is the data
    check's business: studio.data.check_training_data)."""
    from studio.library import parse_mix
    from studio.paths import is_library_ref, library_dir

    problems = {}
    if is_library_ref(cfg.data.path) and library_dir(cfg.data.path, "/") is None:
        problems["data.path"] = Msg("library.bad_ref", ref=cfg.data.path.strip())
    if cfg.data.mix.strip():
        try:
            parse_mix(cfg.data.mix)
        except UserError as exc:
            problems["data.mix"] = exc.msg
    return problems


def total_steps(n_train: int, cfg: StudioConfig) -> int:
    """Optimizer steps of a run on n_train rows: max_steps wins, else epochs over the batches."""
    t = cfg.train
    if t.max_steps:
        return t.max_steps
    per_epoch = math.ceil(n_train / t.batch_size / t.grad_accum)
    return max(1, math.ceil(per_epoch * t.epochs))


def check(cfg: StudioConfig) -> StudioConfig:
    """Raise UserError with the first problem (for the CLI); return cfg when it is valid."""
    problems = validate(cfg)
    if problems:
        key, msg = next(iter(problems.items()))
        raise UserError(msg, key=key)
    return cfg
