"""The translation table is complete: every code used in the source exists in English and Chinese."""

import ast
import re
import string
from pathlib import Path

import pytest

from studio.i18n import LANGUAGES, Msg, render, t, table

ROOT = Path(__file__).resolve().parents[2]
CALLS = {"t", "Msg", "UserError", "_t", "tr"}  # functions whose first argument is a table code


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_entry_has_every_language_with_the_same_placeholders():
    for key, entry in table().items():
        for lang in LANGUAGES:
            assert isinstance(entry.get(lang), str) and entry[lang].strip(), f"{key} lacks {lang}"
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key


def codes_used_in_source():
    for path in sorted((ROOT / "studio").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in CALLS:
                    yield path.relative_to(ROOT), node.lineno, node.args[0]


def test_every_code_in_the_source_is_in_the_table():
    missing, literal = [], []
    for where, line, arg in codes_used_in_source():
        if isinstance(arg, ast.JoinedStr):
            literal.append(f"{where}:{line}")  # an f-string sentence cannot be translated
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in table():
            missing.append(f"{where}:{line} {arg.value!r}")
    assert not literal, f"sentences built with f-strings instead of table codes: {literal}"
    assert not missing, f"codes missing from studio/i18n/*.yaml: {missing}"


def test_keys_look_like_codes():
    bad = [k for k in table() if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", k)]
    assert not bad


def test_msg_renders_in_each_language_and_survives_json():
    msg = Msg("error.unexpected", kind="ValueError", detail="x")
    assert render(msg, "en") != render(msg, "zh")
    again = Msg.from_dict(msg.to_dict())
    assert again == msg and render(again.to_dict(), "zh") == t("error.unexpected", "zh", kind="ValueError", detail="x")


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_nested_messages_render_in_the_same_language(lang):
    outer = Msg("error.unexpected", kind="X", detail=Msg("state.completed"))
    assert t("state.completed", lang) in render(outer, lang)
