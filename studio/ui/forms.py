"""Form fields generated from `StudioConfig`: one component per setting, label and help included.

    fields = build_fields(["train.epochs", "train.learning_rate"], cfg)   # {key: component}
    cfg = config_from_values(keys, values)     # back to a StudioConfig (UserError on bad values)

The config dataclasses are the only place a setting's label, help text, default, bounds and
choices are written down; the form reads them from there.
"""

from __future__ import annotations

import gradio as gr

from studio.config import StudioConfig, field_specs, field_type, get_value, set_value


def help_text(key: str) -> str:
    return field_specs()[key].metadata["help"]


def build_field(key: str, cfg: StudioConfig, **overrides) -> gr.components.Component:
    meta = field_specs()[key].metadata
    kind = field_type(key)
    common = {"label": meta.get("label") or key, "info": meta["help"], "value": get_value(cfg, key),
              "elem_id": "field-" + key.replace(".", "-"), "interactive": True}
    common.update(overrides)
    if overrides.get("choices") is not None or overrides.get("allow_custom_value"):
        return gr.Dropdown(**common)
    if meta.get("choices"):
        choices = meta["choices"]
        if len(choices) <= 4:
            return gr.Radio(choices=choices, **common)
        return gr.Dropdown(choices=choices, **common)
    if kind is bool:
        return gr.Checkbox(**common)
    if kind in (int, float):
        # Text boxes rather than gr.Number: a number box silently rewrites what was typed
        # (e.g. "abc" or "-1e-4"), and we want to explain bad values, not hide them.
        common["value"] = _format_number(common["value"])
        return gr.Textbox(**common, max_lines=1)
    return gr.Textbox(**common, max_lines=1)


def _format_number(value) -> str:
    if isinstance(value, float) and (abs(value) < 1e-3 and value != 0):
        return f"{value:.0e}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value)


def build_fields(keys: list[str], cfg: StudioConfig, **per_key_overrides) -> dict:
    return {key: build_field(key, cfg, **per_key_overrides.get(key, {})) for key in keys}


def config_from_values(keys: list[str], values: list, base: StudioConfig | None = None) -> StudioConfig:
    """Form values -> config; raises UserError (with .key set) for the first unparsable value."""
    from studio.errors import UserError

    cfg = base or StudioConfig()
    for key, value in zip(keys, values):
        try:
            cfg = set_value(cfg, key, value)
        except UserError as exc:
            raise UserError(str(exc), key=key) from None
    return cfg
