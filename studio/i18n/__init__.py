"""The translation table: every user-facing sentence, in English and Simplified Chinese.

    t("train.start", "zh")                     # '开始训练'
    t("data.not_found", "en", source="x.json") # placeholders use str.format names
    msg = Msg("run.finished", steps=12)        # a sentence kept as code + parameters
    render(msg, "zh")                          # rendered in the reader's language, later
    render(status_dict_message, "zh")          # {"code": ..., "params": ...} from status.json

The table is the YAML files in this folder (`<area>.yaml`, one per part of the studio, so each
part keeps its own strings); each entry is `key: {en: ..., zh: ...}`. Keys are unique across
files. A sentence that must survive being saved (status.json, API results) is a `Msg`: its code and
parameters are stored, and each reader renders it in their own language. Parameters may be
`Msg`s themselves (rendered in the same language).

Language for the CLI: `$STUDIO_LANG`, else `zh` when `$LANG` starts with `zh`, else English.
The browser page has its own switch (remembered per browser).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT = "en"
_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    """All entries from every YAML file here; a key defined twice is a bug, not an override."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted(_DIR.glob("*.yaml")):
        # libyaml's safe loader when PyYAML has it: the pure-Python one took 0.18 s of every start.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        for key, entry in data.items():
            if key in merged:
                raise ValueError(f"translation key {key!r} is defined twice ({path.name})")
            merged[key] = entry
    return merged


def language(lang: str | None = None) -> str:
    """A supported language code: the one asked for, else the environment's, else English."""
    if lang in LANGUAGES:
        return lang
    env = os.environ.get("STUDIO_LANG") or ""
    if env in LANGUAGES:
        return env
    return "zh" if os.environ.get("LANG", "").lower().startswith("zh") else DEFAULT


def t(key: str, lang: str | None = None, **params) -> str:
    """The sentence for `key` in `lang`, with parameters filled in (Msg parameters rendered too)."""
    lang = language(lang)
    entry = table().get(key)
    if entry is None:  # never crash a page over a missing string; tests catch missing keys
        return key
    text = entry.get(lang) or entry.get(DEFAULT) or key
    if not params:
        return text
    values = {name: render(value, lang) for name, value in params.items()}
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return text


class Msg:
    """A sentence stored as code + parameters and rendered in the reader's language."""

    __slots__ = ("code", "params")

    def __init__(self, code: str, **params):
        self.code = code
        self.params = params

    def render(self, lang: str | None = None) -> str:
        return t(self.code, lang, **self.params)

    def to_dict(self) -> dict:
        return {"code": self.code, "params": {k: to_jsonable(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Msg":
        params = {k: (cls.from_dict(v) if _is_msg_dict(v) else v)
                  for k, v in (data.get("params") or {}).items()}
        return cls(data["code"], **params)

    def __str__(self) -> str:
        return self.render(DEFAULT)

    def __repr__(self) -> str:
        return f"Msg({self.code!r}, **{self.params!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Msg) and (self.code, self.params) == (other.code, other.params)


def _is_msg_dict(value) -> bool:
    return isinstance(value, dict) and set(value) == {"code", "params"}


def to_jsonable(value):
    """Msg -> {"code", "params"} (recursively); anything else unchanged."""
    return value.to_dict() if isinstance(value, Msg) else value


def render(value, lang: str | None = None) -> str:
    """Msg, its saved dict form, or plain text -> text in `lang`."""
    if isinstance(value, Msg):
        return value.render(lang)
    if _is_msg_dict(value):
        return Msg.from_dict(value).render(lang)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)
