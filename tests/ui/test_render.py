"""Pure rendering helpers of the Train, Data and Chat tabs (no server needed)."""

import json

import pytest

from studio.i18n import Msg, t
from studio.infer import chat_messages, content_text
from studio.ui import chat_tab
from studio.ui.data_prepare import preview_table
from studio.ui.train_tab import data_check_text, frames, render_status, result_text


def test_frames_split_train_and_eval_loss():
    loss, lr = frames([
        {"step": 1, "loss": 2.0, "eval_loss": None, "learning_rate": 1e-3},
        {"step": 1, "loss": None, "eval_loss": 2.5, "learning_rate": None},
        {"step": 2, "loss": "nan", "eval_loss": None, "learning_rate": 5e-4},
    ])
    assert loss.to_dict("records") == [{"step": 1, "value": 2.0, "series": "train loss"},
                                       {"step": 1, "value": 2.5, "series": "eval loss"}]
    assert lr["learning_rate"].tolist() == [1e-3, 5e-4]
    assert frames([]) == (None, None)


def test_eval_series_exists_before_the_first_eval():
    loss, _ = frames([{"step": 1, "loss": 2.0, "eval_loss": None, "learning_rate": 1e-3}])
    assert set(loss["series"]) == {"train loss", "eval loss"}
    assert loss[loss.series == "eval loss"]["value"].isna().all()


def test_status_card_shows_phase_progress_and_errors():
    progress = {"state": "running", "phase": "training", "message": "", "step": 5, "total_steps": 20,
                "epoch": 0.5, "fraction": 0.25, "elapsed_s": 10, "eta_s": 30, "output": None}
    html = render_status(progress)
    assert "Training" in html and "step 5/20" in html and "ETA 0:30" in html and "width:25%" in html
    assert "Could not start" in render_status(None, "Batch size must be at least 1; got 0.")
    assert "<script>" not in render_status(None, "<script>")
    done = dict(progress, state="completed", phase="completed", output="/x/adapter")
    assert "/x/adapter" in result_text(done) and "Chat" in result_text(done)


def test_a_run_message_saved_as_code_reads_in_the_readers_language():
    failed = {"state": "failed", "phase": "failed", "message": Msg("error.disk_full").to_dict(), "step": 3,
              "total_steps": 10, "epoch": None, "fraction": 0.3, "elapsed_s": 5, "eta_s": None, "output": None}
    assert t("error.disk_full", "zh") in render_status(failed, lang="zh")
    assert t("error.disk_full", "en") in render_status(failed, lang="en")


def test_data_check_shows_the_summary_the_plan_reason_or_the_error():
    report = {"rows": 210, "usable": 25, "format": "sharegpt", "summary": Msg("config.choose_data")}
    assert data_check_text(report, {"reason": Msg("config.choose_model")}, "zh") == (
        t("config.choose_data", "zh") + "\n\n" + t("config.choose_model", "zh"))
    assert "210" in data_check_text({"rows": 210, "usable": 25, "format": "sharegpt"}, None, "en")
    assert data_check_text(None, None, "en", Msg("config.choose_data")).startswith("⚠ ")


def test_history_content_as_parts_becomes_text():
    history = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "file", "file": {}}],
                "metadata": None, "options": None},
               {"role": "user", "content": "plain"}, {"role": "assistant", "content": ""}]
    assert chat_messages(history) == [{"role": "user", "content": "Hi"},
                                      {"role": "assistant", "content": "Hello"},
                                      {"role": "user", "content": "plain"}]
    assert content_text(None) == "" and content_text({"text": "x"}) == "x"


def test_chat_display_is_escaped_and_reads_back_exactly():
    typed = '<img src=x onerror="alert(1)"> & &lt; *md*'
    shown = [{"role": "user", "content": [{"type": "text", "text": chat_tab.as_text(typed)}]}]
    assert "<img" not in chat_tab.as_text(typed)
    assert chat_tab.from_display(shown) == [{"role": "user", "content": typed}]


def test_examples_follow_the_language_and_survive_a_missing_file(tmp_path, monkeypatch):
    path = tmp_path / "demo_examples.json"
    path.write_text(json.dumps({"en": ["What is 2 plus 2?"], "zh": ["二加二等于几？"]}), encoding="utf-8")
    monkeypatch.setattr(chat_tab, "EXAMPLES", path)
    assert chat_tab.example_questions("zh") == ["二加二等于几？"]
    assert "二加二等于几？" in chat_tab.placeholder("zh")
    monkeypatch.setattr(chat_tab, "EXAMPLES", tmp_path / "missing.json")
    assert chat_tab.example_questions("en") == []
    assert chat_tab.placeholder("en") == t("ui.chat.placeholder", "en")


def test_preview_keeps_column_names_as_written():
    table = preview_table([{"<img src=x>": "a", "nested": {"k": [1]}}])
    assert list(table.columns) == ["#", "<img src=x>", "nested"]
    assert table.iloc[0]["nested"] == "k: 1"  # folded to one readable line, not raw JSON
