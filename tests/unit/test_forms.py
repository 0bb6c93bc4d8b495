"""The page's text registry and the Train form: every word in two languages, every bad field at once."""

import pytest

from studio.config import StudioConfig, field_specs
from studio.errors import UserError, UserErrors
from studio.i18n import LANGUAGES, Msg, t, table
from studio.ui.forms import config_from_values, problems_of
from studio.ui.train_tab import KEYS, render_error, render_status, result_text
from studio.workspace import Workspace


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from studio.ui.app import build_app

    return build_app(Workspace(tmp_path_factory.mktemp("forms") / "home"))


def test_the_form_has_every_config_field_once():
    assert sorted(KEYS) == sorted(field_specs())


def test_registry_covers_every_config_field(app):
    assert sorted(app.texts.fields) == sorted(field_specs())


def test_every_registered_code_exists_in_both_languages(app):
    codes = app.texts.codes()
    assert len(codes) > 60
    for code in codes:
        for lang in LANGUAGES:
            assert table().get(code, {}).get(lang), f"{code} lacks {lang}"


def props(update) -> dict:
    return {k: v for k, v in update.items() if k != "__type__"}


def test_switching_to_chinese_rewords_tabs_buttons_and_fields(app):
    updates = dict(zip(map(id, app.texts.outputs()), app.texts.updates("zh")))
    fields = app.texts.fields
    epochs = props(updates[id(fields["train.epochs"])])
    assert epochs["label"] == t("field.train.epochs.label", "zh") == "训练轮数"
    assert epochs["info"] == t("field.train.epochs.help", "zh")
    values = [props(u) for u in app.texts.updates("zh")]
    assert {"label": "训练"} in values  # the Train tab's title
    assert any(v.get("value") == "开始训练" for v in values)  # the Start button
    english = [props(u) for u in app.texts.updates("en")]
    assert {"label": "Train"} in english and any(v.get("value") == "Start training" for v in english)


def test_a_flagged_field_keeps_its_problem_across_a_switch(app):
    note = {"problems": {"train.batch_size": Msg("config.at_least", label=Msg("field.train.batch_size.label"),
                                                 min=1, value=0).to_dict()}}
    updates = dict(zip(map(id, app.texts.outputs()), app.texts.updates("zh", note)))
    info = updates[id(app.texts.fields["train.batch_size"])]["info"]
    assert info.startswith("⚠") and "批大小" in info


def test_all_unreadable_and_out_of_bounds_values_are_reported_together():
    values = {k: None for k in KEYS}
    values.update({"train.batch_size": "abc", "train.epochs": "lots", "method.lora_r": "0",
                   "train.learning_rate": "-1"})
    keys = [k for k in KEYS if values[k] is not None]
    with pytest.raises(UserErrors) as caught:
        config_from_values(keys, [values[k] for k in keys])
    assert set(caught.value.problems) == {"train.batch_size", "train.epochs", "method.lora_r",
                                          "train.learning_rate"}


def test_problems_of_reads_several_one_or_none():
    several = UserErrors({"a.b": Msg("config.choose_data"), "c.d": Msg("config.choose_model")})
    assert set(problems_of(several)) == {"a.b", "c.d"}
    assert problems_of(UserError("config.choose_model", key="model.path")) == {"model.path": Msg("config.choose_model")}
    assert problems_of(UserError("config.choose_model")) == {}
    assert problems_of(RuntimeError("boom")) == {}


def test_error_card_lists_every_problem_as_text():
    problems = {"a": Msg("config.choose_model"), "b": Msg("config.choose_data")}
    card = render_error(Msg("config.choose_model"), "zh", problems)
    assert t("config.choose_model", "zh") in card and t("config.choose_data", "zh") in card
    assert "&lt;img" in render_error("<img src=x>", "en")


def test_status_card_and_result_follow_the_language():
    progress = {"state": "completed", "phase": "completed", "message": Msg("state.completed").to_dict(),
                "step": 5, "total_steps": 5, "epoch": 1.0, "fraction": 1.0, "elapsed_s": 10,
                "eta_s": None, "output": "/x/adapter"}
    zh = render_status(progress, lang="zh")
    assert "已完成" in zh and "步数 5/5" in zh
    assert "训练完成" in result_text(progress, "zh") and "/x/adapter" in result_text(progress, "zh")
    assert t("ui.status.ready", "zh") in render_status(None, lang="zh")


def language_events(demo, lang):
    """The server-side handlers of a language switch (not the browser-only one for Gradio's words)."""
    return [fn for fn in demo.fns.values() if fn.fn is not None and any(target[0] == lang._id for target in fn.targets)]


def test_a_language_switch_is_one_event_for_the_words_and_every_quick_tab(app):
    """One round trip re-words the page and redraws what the tabs drew (one event per tab cost
    about 0.25 s each: the Runs tab changed language seconds after the tab titles)."""
    lang = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "language")
    events = language_events(app, lang)
    switch = next(fn for fn in events if fn.fn.__name__ == "switch")
    others = [fn for fn in events if fn is not switch and fn.fn.__module__ != "gradio.renderable"]  # not gr.render
    assert len(others) == 4 and all(fn.trigger_mode == "always_last" for fn in others)  # the slow ones
    values = [app.blocks[i].value if isinstance(i, int) else i.value for i in switch.inputs]
    values[0] = "zh"
    out = {getattr(c, "elem_id", None): r for c, r in zip(switch.outputs, switch.fn(*values))}
    assert list(out["runs-table"].columns)[:3] == ["运行", "标签", "状态"]  # the Runs tab's own handler
    # the compare section's note, merged with its (unshown) label from the registry
    assert out["compare-note"] == {"__type__": "update", "label": "关于此比较", "value": t("compare.ui.pick_two", "zh")}
    assert out["start-btn"]["value"] == "开始训练"  # the registry's words


def test_tab_handlers_merge_with_the_words_and_a_failing_one_is_skipped():
    import gradio as gr

    from studio.ui.texts import Texts

    texts = Texts()
    with gr.Blocks() as demo:
        lang = gr.Radio(["en", "zh"], value="en")
        notice, remember = gr.State(None), gr.State("en")
        empty = texts.add(gr.Markdown, value="ui.runs.empty")
        note, slow_note = gr.Textbox(), gr.Textbox()
        texts.on_language(lambda code: 1 / 0, lang, note)  # a broken tab: the page still switches
        texts.on_language(lambda code: t("compare.ui.pick_two", code), lang, note)
        texts.on_language(lambda code: gr.update(visible=False), lang, empty)  # on top of the words
        texts.on_language(lambda code: code, lang, slow_note, slow=True)
        texts.wire_language(lang, notice, remember)
    events = language_events(demo, lang)
    assert [fn.fn.__name__ for fn in events] == ["switch", "<lambda>"]  # the slow one: its own event
    switch = events[0]
    result = dict(zip(map(id, switch.outputs), switch.fn("zh", None)))
    assert result[id(remember)] == "zh"
    assert result[id(note)] == t("compare.ui.pick_two", "zh")
    assert result[id(empty)] == {"__type__": "update", "value": t("ui.runs.empty", "zh"), "visible": False}
