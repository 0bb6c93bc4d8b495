"""The one typed configuration of a training run.

`StudioConfig` (four small dataclass sections) is the schema behind everything that sets up a run:
the Train form in the browser is generated from its fields, YAML recipes in `recipes/` are
serialised instances of it, and CLI overrides (`key=value`) edit it. Every field carries help
text, a default and (where it matters) bounds or choices, and `validate()` turns bad values into
plain sentences keyed by the field they concern.

    cfg = from_command_line(["recipes/demo.yaml", "epochs=2"])
    cfg = load_recipe("recipes/demo.yaml")
    cfg = apply_overrides(cfg, ["epochs=2", "learning_rate=1e-4"])
    problems = validate(cfg)          # [] when the config can run
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


def setting(default, help: str, *, choices=None, min=None, max=None, label: str | None = None):
    """A dataclass field with the metadata the form, the CLI and validation read."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "label": label}
    return field(default=default, metadata=meta)


@dataclass
class ModelSection:
    path: str = setting(
        "demo",
        "The base model: a Hugging Face Hub id (owner/name), a local folder, or 'demo' for the "
        "small model bundled with the studio.",
        label="Base model",
    )
    trust_remote_code: bool = setting(
        False,
        "Run Python code shipped with the model. Only turn this on for models you trust.",
        label="Trust remote code",
    )


@dataclass
class DataSection:
    path: str = setting(
        "demo-en",
        "The training data: a JSON, JSONL, CSV or Parquet file, a Hub dataset id, or one of the "
        "bundled sets 'demo-en' / 'demo-zh'.",
        label="Dataset",
    )
    format: str = setting(
        "auto",
        "How the rows are laid out. 'auto' recognises alpaca, sharegpt, messages, "
        "prompt/completion, preference and plain text.",
        choices=["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "preference", "text"],
        label="Format",
    )
    val_size: float = setting(
        0.2, "Share of the rows held out to measure eval loss while training.", min=0.0, max=0.5,
        label="Validation share",
    )
    test_size: float = setting(
        0.1, "Share of the rows kept unseen for the Evaluate tab.", min=0.0, max=0.5,
        label="Test share",
    )
    max_samples: int = setting(
        0, "Use at most this many rows (0 = all of them).", min=0, label="Max rows",
    )
    system_prompt: str = setting(
        "", "A system message put before every conversation (empty = none).", label="System prompt",
    )


@dataclass
class MethodSection:
    method: str = setting(
        "lora",
        "full: update every weight (most memory). freeze: train only the last layers. "
        "lora: train small adapter matrices. qlora: LoRA on a 4- or 8-bit quantized model "
        "(least memory).",
        choices=["full", "freeze", "lora", "qlora"],
        label="Method",
    )
    quant_bits: int = setting(
        4, "For qlora: load the base model in 4-bit (NF4) or 8-bit.", choices=[4, 8],
        label="Quantization bits",
    )
    freeze_layers: int = setting(
        2, "For freeze: how many of the last transformer layers are trained.", min=1,
        label="Trainable layers",
    )
    lora_r: int = setting(
        16, "For lora/qlora: adapter rank. Higher learns more, uses more memory.", min=1, max=1024,
        label="LoRA rank",
    )
    lora_alpha: int = setting(
        32, "For lora/qlora: adapter scaling; usually twice the rank.", min=1, label="LoRA alpha",
    )
    lora_dropout: float = setting(
        0.05, "For lora/qlora: dropout on the adapter input.", min=0.0, max=0.9,
        label="LoRA dropout",
    )
    lora_target: str = setting(
        "all-linear",
        "For lora/qlora: which layers get adapters: 'all-linear' or comma-separated module "
        "names such as 'q_proj,v_proj'.",
        label="LoRA target modules",
    )


@dataclass
class TrainSection:
    epochs: float = setting(3.0, "Passes over the training rows.", min=0.01, max=1000, label="Epochs")
    max_steps: int = setting(
        0, "Stop after this many optimizer steps (0 = run all epochs).", min=0, label="Max steps",
    )
    learning_rate: float = setting(
        2e-4, "How big each update is. LoRA likes 1e-4 to 1e-3; full fine-tuning 1e-5 to 5e-5.",
        min=0.0, max=1.0, label="Learning rate",
    )
    batch_size: int = setting(8, "Examples per step on each device.", min=1, max=4096, label="Batch size")
    grad_accum: int = setting(
        1, "Add up gradients over this many batches before each update (a bigger effective "
        "batch without more memory).", min=1, label="Gradient accumulation",
    )
    max_length: int = setting(
        256, "Longest example in tokens; longer ones are cut.", min=16, max=131072,
        label="Max length (tokens)",
    )
    lr_scheduler: str = setting(
        "cosine", "How the learning rate changes over the run.",
        choices=["cosine", "linear", "constant", "constant_with_warmup"], label="LR schedule",
    )
    warmup: float = setting(
        0.05, "Warm-up: a share of all steps if below 1, otherwise a number of steps.", min=0.0,
        label="Warm-up",
    )
    weight_decay: float = setting(0.0, "L2 penalty on the weights.", min=0.0, max=1.0, label="Weight decay")
    max_grad_norm: float = setting(
        1.0, "Clip gradients to this norm (0 = no clipping).", min=0.0, label="Max gradient norm",
    )
    loss_on: str = setting(
        "answer", "Learn from the answer tokens only, or from the whole text.",
        choices=["answer", "all"], label="Loss on",
    )
    eval_every: int = setting(
        0, "Measure eval loss every N steps (0 = about ten times per run).", min=0,
        label="Eval every (steps)",
    )
    log_every: int = setting(1, "Record train loss every N steps.", min=1, label="Log every (steps)")
    save_every: int = setting(
        0, "Keep a resumable checkpoint every N steps (0 = only the final result).", min=0,
        label="Checkpoint every (steps)",
    )
    precision: str = setting(
        "auto", "auto picks bf16 or fp16 on a GPU and fp32 on a CPU.",
        choices=["auto", "fp32", "bf16", "fp16"], label="Precision",
    )
    gradient_checkpointing: str = setting(
        "auto", "Recompute activations to save memory (slower). auto: on for GPUs, off on CPU.",
        choices=["auto", "on", "off"], label="Gradient checkpointing",
    )
    seed: int = setting(42, "Random seed for shuffling, splitting and initialisation.", min=0, label="Seed")


@dataclass
class StudioConfig:
    name: str = setting("", "A label for the run (optional).", label="Run name")
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
    suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
    raise UserError(f"Unknown setting '{key}'.{suggestion}")


def get_value(cfg: StudioConfig, key: str) -> Any:
    obj = cfg
    for part in resolve_key(key).split("."):
        obj = getattr(obj, part)
    return obj


def parse_value(key: str, value: Any) -> Any:
    """Coerce a string (CLI, form) or YAML value to the field's type, or raise UserError."""
    kind = field_type(key)
    label = field_specs()[key].metadata.get("label") or key
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
            if math.isnan(number):
                raise ValueError
            return number
        return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise UserError(f"{label} needs {'a whole number' if kind is int else 'a number' if kind is float else 'true or false'}, not '{value}'.") from None


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
            raise UserError(f"Expected key=value, got '{item}'.")
        cfg = set_value(cfg, key.strip(), value)
    return cfg


def from_command_line(items: list[str]) -> StudioConfig:
    """`[RECIPE.yaml] [key=value …]` -> config (the CLI and `python -m studio.train` share this)."""
    recipes = [item for item in items if "=" not in item]
    if len(recipes) > 1:
        raise UserError(f"Give at most one recipe file; got {', '.join(recipes)}.")
    cfg = load_recipe(recipes[0]) if recipes else StudioConfig()
    return apply_overrides(cfg, [item for item in items if "=" in item])


def from_dict(data: dict | None, source: str = "the recipe") -> StudioConfig:
    """Build a config from nested YAML-style data; unknown keys are errors, not silently dropped."""
    cfg = StudioConfig()
    for top, value in (data or {}).items():
        if top in SECTIONS:
            if not isinstance(value, dict):
                raise UserError(f"'{top}' in {source} must be a group of settings, not '{value}'.")
            for name, inner in value.items():
                key = f"{top}.{name}"
                if key not in field_specs():
                    raise UserError(f"Unknown setting '{key}' in {source}.")
                cfg = set_value(cfg, key, inner)
        elif top == "name":
            cfg = set_value(cfg, "name", value)
        else:
            raise UserError(f"Unknown setting '{top}' in {source}.")
    return cfg


def to_dict(cfg: StudioConfig) -> dict:
    return dataclasses.asdict(cfg)


def load_recipe(path: str | Path) -> StudioConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{path.name} is not valid YAML{where}.") from None
    if data is not None and not isinstance(data, dict):
        raise UserError(f"{path.name} must be a mapping of settings.")
    return from_dict(data, source=path.name)


def save_recipe(cfg: StudioConfig, path: str | Path, header: str = "") -> None:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    Path(path).write_text(header + text, encoding="utf-8")


def validate(cfg: StudioConfig) -> dict[str, str]:
    """Check bounds, choices and cross-field rules. Returns {'section.field': sentence}."""
    problems: dict[str, str] = {}
    for key, spec in field_specs().items():
        value = get_value(cfg, key)
        meta = spec.metadata
        label = meta.get("label") or key
        if meta.get("choices") and value not in meta["choices"]:
            options = ", ".join(str(c) for c in meta["choices"])
            problems[key] = f"{label} must be one of {options}; got '{value}'."
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if meta.get("min") is not None and value < meta["min"]:
                problems[key] = f"{label} must be at least {meta['min']}; got {value}."
            elif meta.get("max") is not None and value > meta["max"]:
                problems[key] = f"{label} must be at most {meta['max']}; got {value}."
    if cfg.train.learning_rate <= 0 and "train.learning_rate" not in problems:
        problems["train.learning_rate"] = f"Learning rate must be above 0; got {cfg.train.learning_rate}."
    if cfg.data.val_size + cfg.data.test_size >= 0.9:
        problems["data.val_size"] = "Validation and test shares together must leave most rows for training."
    if not cfg.model.path.strip():
        problems["model.path"] = "Choose a base model."
    if not cfg.data.path.strip():
        problems["data.path"] = "Choose a dataset."
    return problems


def check(cfg: StudioConfig) -> StudioConfig:
    """Raise UserError with the first problem (for the CLI); return cfg when it is valid."""
    problems = validate(cfg)
    if problems:
        raise UserError(next(iter(problems.values())))
    return cfg
