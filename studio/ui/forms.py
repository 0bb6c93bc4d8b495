"""Form fields generated from `StudioConfig`: one component per setting, label and help included.

    fields = build_fields(["train.epochs", "train.learning_rate"], cfg, texts)   # {key: component}
    cfg = config_from_values(keys, values)     # back to a StudioConfig; UserErrors lists every bad field
    problems_of(exc)                           # {field key: Msg} from UserErrors / UserError(key=…)

The config dataclasses are the only place a setting's default, bounds and choices are written
down, and the translation table the only place for its label and help text; the form reads both.
"""

from __future__ import annotations

import gradio as gr

from studio.config import StudioConfig, field_specs, field_type, get_value, set_value, validate
from studio.errors import UserError, UserErrors
from studio.i18n import DEFAULT
from studio.ui.texts import Texts, text_of


def build_field(key: str, cfg: StudioConfig, texts: Texts, **overrides) -> gr.components.Component:
    meta = field_specs()[key].metadata
    kind = field_type(key)
    common = {"value": get_value(cfg, key), "elem_id": "field-" + key.replace(".", "-"), "interactive": True}
    common.update(overrides)
    if overrides.get("choices") is not None or overrides.get("allow_custom_value"):
        return texts.field(gr.Dropdown, key, **common)
    if meta.get("choices"):
        choices = meta["choices"]
        if len(choices) <= 4:
            return texts.field(gr.Radio, key, choices=choices, **common)
        return texts.field(gr.Dropdown, key, choices=choices, **common)
    if kind is bool:
        return texts.field(gr.Checkbox, key, **common)
    if kind in (int, float):
        # Text boxes rather than gr.Number: a number box silently rewrites what was typed
        # (e.g. "abc" or "-1e-4"), and we want to explain bad values, not hide them.
        common["value"] = _format_number(common["value"])
    return texts.field(gr.Textbox, key, max_lines=1, **common)


def _format_number(value) -> str:
    if isinstance(value, float) and (abs(value) < 1e-3 and value != 0):
        return f"{value:.0e}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value)


def note_box(texts: Texts, elem_id: str, label: str, **kwargs) -> gr.Textbox:
    """A read-only answer box (a button's result): plain text, never rendered as HTML, and hidden
    while empty (studio.css `.studio-note`, keyed on its one-space placeholder). Its label (a
    table code) is not shown; screen readers say it, in the page's language."""
    box = gr.Textbox(label=text_of(label, DEFAULT), show_label=False, interactive=False, placeholder=" ",
                     elem_classes="studio-note", elem_id=elem_id, **kwargs)
    return texts.register(box, label=label)


def build_fields(keys: list[str], cfg: StudioConfig, texts: Texts, **per_key_overrides) -> dict:
    return {key: build_field(key, cfg, texts, **per_key_overrides.get(key, {})) for key in keys}


def config_from_values(keys: list[str], values: list, base: StudioConfig | None = None) -> StudioConfig:
    """Form values -> config. Every value that cannot be read and every value out of bounds is
    collected, so the form can flag all bad fields at once (UserErrors {key: Msg})."""
    cfg = base or StudioConfig()
    problems = {}
    for key, value in zip(keys, values):
        try:
            cfg = set_value(cfg, key, value)
        except UserError as exc:
            problems[key] = exc.msg
    if problems:
        problems.update({k: m for k, m in validate(cfg).items() if k not in problems})
        raise UserErrors(problems)
    return cfg


def problems_of(exc: BaseException) -> dict:
    """{field key: Msg} for an error about settings (several or one); {} for any other error."""
    if isinstance(getattr(exc, "problems", None), dict):
        return dict(exc.problems)
    if isinstance(exc, UserError) and exc.key:
        return {exc.key: exc.msg}
    return {}
