"""The page's words in two languages: every component registers which table codes it shows.

    texts = Texts()
    start = texts.add(gr.Button, value="ui.train.start", variant="primary")   # built in English
    epochs = texts.field(gr.Textbox, "train.epochs", value="3")               # label + help
    texts.outputs()          # every registered component, in registration order
    texts.updates("zh", {})  # one gr.update per component, in the same order

Gradio 6's `gr.I18n` follows the browser's language and cannot be switched from the page, so the
page has its own switch: while the Blocks are made, each component says which of its properties
(label, info, placeholder, value, choices) come from the translation table, and one handler
returns updates for all of them when the language changes (and on load, from the language the
browser remembered). A property's source is a code (str), a `Msg` (code + parameters), or a
function of the language (for choices). Config fields are registered by key: their label and help
come from `field.<key>.label/help`, and a field with a problem shows the problem instead of the
help, so a language switch keeps an error where it is.
"""

from __future__ import annotations

import logging
from typing import Callable

import gradio as gr

from studio.config import field_help, field_label
from studio.i18n import DEFAULT, Msg, render, table

Source = str | Msg | Callable[[str], object]
logger = logging.getLogger(__name__)


def text_of(source: Source, lang: str):
    """A registered property's value in `lang`."""
    if callable(source):
        return source(lang)
    return render(Msg(source) if isinstance(source, str) else source, lang)


def field_info(key: str, lang: str, problems: dict | None = None) -> str:
    """The line under a config field: its help, or the problem with it (⚠ …) if it has one."""
    problem = (problems or {}).get(key)
    return f"⚠ {render(problem, lang)}" if problem else field_help(key).render(lang)


SKIP = {"__type__": "update"}  # what gr.skip() returns: change nothing


def _as_list(components) -> list:
    return list(components) if isinstance(components, (list, tuple)) else [components]


def _unique(components: list) -> list:
    """Each component once, first place kept (two handlers may read or write the same one)."""
    return list({id(c): c for c in components}.values())


def _merge(first, later):
    """Two handlers' updates to one component: the later one's properties win, a skip keeps the first."""
    def is_update(value):
        return isinstance(value, dict) and value.get("__type__") == "update"

    if is_update(later):
        return {**first, **later} if is_update(first) else {**SKIP, "value": first, **later}
    if is_update(first) and len(first) > 1 and not isinstance(later, gr.blocks.Block):
        return {**first, "value": later}  # a plain value from the later handler: the first's labels stay
    return later


class Texts:
    """The registry of translated components, and the one update for a language switch."""

    def __init__(self):
        self._entries: list[tuple[gr.blocks.Block, dict[str, Source]]] = []
        self._fields: dict[str, gr.components.Component] = {}
        self._language_handlers: list[tuple] = []

    def add(self, make, /, **kwargs):
        """Build `make(**kwargs)` with its translated properties (label=, info=, placeholder=,
        value=, choices=, given as codes) in the default language, and register them."""
        translated = {name: kwargs[name] for name in ("label", "info", "placeholder", "value", "choices")
                      if name in kwargs and not _is_literal(name, kwargs[name])}
        built = make(**{**kwargs, **{name: text_of(src, DEFAULT) for name, src in translated.items()}})
        return self.register(built, **translated)

    def register(self, component, **sources: Source):
        """Register an already built component (a Tab, a plot) with its translated properties;
        registering a component again adds to its properties."""
        for registered, known in self._entries:
            if registered is component:
                known.update(sources)
                return component
        self._entries.append((component, dict(sources)))
        return component

    def field(self, make, key: str, **kwargs):
        """A config field: label and help from the table, keyed so errors can be shown in it."""
        component = make(label=field_label(key).render(DEFAULT), info=field_help(key).render(DEFAULT),
                         **kwargs)
        self._fields[key] = component
        return self.register(component, label=field_label(key))

    def on_language(self, fn, inputs, outputs, slow: bool = False, **kwargs):
        """A tab's own handler for a language switch (what it drew itself: tables, cards).

        Quick handlers run inside the switch's one event, after the registry's words: one round
        trip for the whole page (one event per handler cost about 0.25 s each, so the last tab
        changed language seconds after the first). A `slow` handler (it may read a dataset or
        ask the Hub) gets its own event after that one, so it cannot hold the page's words up."""
        self._language_handlers.append((fn, _as_list(inputs), _as_list(outputs), slow, kwargs))

    def wire_language(self, lang, notice, remember) -> None:
        """The language switch: every registered word (and the browser's remembered choice,
        `remember`) and the quick tab handlers in one event, then each slow handler. `notice` is
        the Train tab's problem note, kept next to its field in the new language."""
        quick = [h for h in self._language_handlers if not h[3]]
        inputs = _unique([lang, notice] + [c for h in quick for c in h[1]])
        outputs = _unique([remember] + self.outputs() + [c for h in quick for c in h[2]])

        def switch(*values):
            given = {id(c): v for c, v in zip(inputs, values)}
            code, note = values[0], values[1]
            merged = dict(zip(map(id, outputs), [code] + self.updates(code, note)))
            for fn, ins, outs, _, _ in quick:
                try:
                    got = fn(*(given[id(c)] for c in ins))
                except Exception:  # one tab failing to redraw must not keep the page in the old language
                    logger.exception("language switch: %s failed", getattr(fn, "__qualname__", fn))
                    continue
                for component, update in zip(outs, [got] if len(outs) == 1 else got):
                    merged[id(component)] = _merge(merged.get(id(component), SKIP), update)
            return [merged.get(id(c), SKIP) for c in outputs]

        lang.change(switch, inputs, outputs, api_visibility="private", show_progress="hidden")
        for fn, ins, outs, slow, kwargs in self._language_handlers:
            if slow:
                lang.change(fn, ins, outs, **{"api_visibility": "private", "show_progress": "hidden",
                                              "trigger_mode": "always_last", **kwargs})

    def outputs(self) -> list:
        return [component for component, _ in self._entries]

    def updates(self, lang: str, notice=None) -> list:
        """One update per registered component with every translated property in `lang`.
        `notice` is the Train tab's refused-Start notice ({"problems": {key: Msg}}): a field
        with a problem keeps showing it, in the new language."""
        problems = notice.get("problems") if isinstance(notice, dict) else None
        keys = {id(c): k for k, c in self._fields.items()}
        result = []
        for component, sources in self._entries:
            props = {name: text_of(src, lang) for name, src in sources.items()}
            if id(component) in keys:
                props["info"] = field_info(keys[id(component)], lang, problems)
            result.append(gr.update(**props))
        return result

    def codes(self) -> list[str]:
        """Every table code registered (for tests: each must exist in both languages)."""
        found = []
        for component, sources in self._entries:
            for src in sources.values():
                if isinstance(src, str):
                    found.append(src)
                elif isinstance(src, Msg):
                    found.append(src.code)
        found += [field_help(key).code for key in self._fields]
        return found

    @property
    def fields(self) -> dict:
        return dict(self._fields)


def _is_literal(name: str, value) -> bool:
    """`value=` and `choices=` are often data, not words: they are translated only when given as
    a table code, a `Msg` or a function of the language. Labels, help and placeholders always are."""
    if name not in ("value", "choices"):
        return False
    return not (callable(value) or isinstance(value, Msg) or (isinstance(value, str) and value in table()))
