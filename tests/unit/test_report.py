"""The training report: four panels, settings, before/after table; PNG and PDF; short, empty and
NaN runs still render; titles in English and Chinese."""

import io
import json
import math
import time

import pytest
from PIL import Image

from studio.config import StudioConfig
from studio.errors import UserError
from studio.i18n import t
from studio.report import PANEL, build_figure, cjk_font, latest_scores, score_rows, series, training_report
from studio.runs import RunStore


def make_run(home, events=(), scores=None, **status):
    run = RunStore(home).create(StudioConfig())
    for event in events:
        run.append_metric(event)
    if status:
        run.update_status(**status)
    if scores is not None:
        folder = run.path / "eval" / "k1"
        folder.mkdir(parents=True)
        (folder / "scores.json").write_text(json.dumps(scores))
    return run


def training_events(steps=30, eval_every=10):
    events = []
    for step in range(1, steps + 1):
        events.append({"step": step, "loss": 3.0 * math.exp(-step / 10) + 0.5, "eval_loss": None,
                       "learning_rate": 1e-3 * (1 - step / steps)})
        if step % eval_every == 0:
            events.append({"step": step, "loss": None, "eval_loss": 2.0 - step / 40, "learning_rate": None})
    return events


SCORES = {"role": "test", "data_label": "demo-en test", "created": 1.0,
          "base": {"rouge1": 0.1, "rouge2": 0.02, "rougeL": 0.09, "bleu": 1.5, "eval_loss": 3.0, "perplexity": 20.1},
          "tuned": {"rouge1": 0.4, "rouge2": 0.2, "rougeL": 0.38, "bleu": 20.25, "eval_loss": 1.5, "perplexity": 4.48}}


def panels(fig):
    return [ax for ax in fig.axes if ax.get_label() == PANEL]


def texts(fig):
    found = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_title(loc="left"), ax.get_xlabel(), ax.get_ylabel()]
        found += [txt.get_text() for txt in ax.texts]
        legend = ax.get_legend()
        if legend:
            found += [txt.get_text() for txt in legend.get_texts()]
        for table in ax.tables:
            found += [cell.get_text().get_text() for cell in table.get_celld().values()]
    return found


def test_png_has_four_panels_settings_and_before_after_table(home, tmp_path):
    run = make_run(home, training_events(), SCORES, state="completed", final_loss=0.61, step=30, total_steps=30)
    out = training_report(run, tmp_path / "report.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 1000 and image.size[1] > 1000
    fig = build_figure(run, "en")
    axes = panels(fig)
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes] == [t(k, "en") for k in (
        "scores.report.train_loss", "scores.report.eval_loss", "scores.report.learning_rate",
        "scores.report.both_losses")]
    assert [len(ax.lines) for ax in axes] == [1, 1, 1, 2]
    assert len(axes[0].lines[0].get_xdata()) == 30 and len(axes[1].lines[0].get_xdata()) == 3
    words = texts(fig)
    assert "lora" in words and "demo" in words and "0.6100" in words  # settings
    assert "20.25" in words and "+18.75 (+1250.0%)" in words and "-1.5000 (-50.0%)" in words
    assert any("demo-en test" in w for w in words)


def test_pdf_is_written(home, tmp_path):
    run = make_run(home, training_events(), SCORES)
    out = training_report(run, tmp_path / "sub" / "report.PDF", lang="en")
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 5000
    assert not list(out.parent.glob(".*tmp*"))  # written through a temporary file, then renamed


def test_empty_run_renders_with_not_evaluated_note(home, tmp_path):
    run = make_run(home)
    fig = build_figure(run, "en")
    assert len(panels(fig)) == 4 and all(not ax.lines for ax in panels(fig))
    words = texts(fig)
    assert words.count(t("scores.report.no_data", "en")) == 4
    assert t("scores.report.not_evaluated", "en") in words
    assert training_report(run, tmp_path / "empty.png").stat().st_size > 0


def test_one_step_and_nan_losses_render(home):
    events = [{"step": 1, "loss": 2.5, "eval_loss": None, "learning_rate": 0.0},
              {"step": 2, "loss": float("nan"), "eval_loss": None, "learning_rate": 1e-4},
              {"step": 2, "loss": None, "eval_loss": float("inf"), "learning_rate": None}]
    run = make_run(home, events, state="failed")
    assert series(run.read_metrics(), "loss")[0] == [1.0, 2.0]
    assert math.isnan(series(run.read_metrics(), "loss")[1][1])
    fig = build_figure(run, "en")
    train, evals, rate, both = panels(fig)
    assert [len(line.get_xdata()) for line in train.lines] == [1, 1]  # the point, and the NaN cross
    assert len(evals.lines) == 1 and list(evals.lines[0].get_xdata()) == [2.0]
    words = texts(fig)
    assert t("scores.report.nonfinite", "en", series=t("scores.report.train", "en"), count=1) in words
    assert t("scores.report.nonfinite", "en", series=t("scores.report.eval", "en"), count=1) in words
    fig.savefig(io.BytesIO(), format="png")  # draws (layout, NaN crosses on the top edge) without error


def test_chinese_titles_and_font(home, tmp_path):
    run = make_run(home, training_events(), SCORES)
    fig = build_figure(run, "zh")
    assert [ax.get_title() for ax in panels(fig)][0] == "训练损失"
    assert "困惑度" in texts(fig)
    out = training_report(run, tmp_path / "zh.pdf", lang="zh")
    if cjk_font():
        assert b"CJK" in out.read_bytes()  # the Chinese glyphs came from an embedded CJK font


def test_scores_choice_and_damaged_files(home):
    run = make_run(home, scores=SCORES)
    general = run.path / "eval" / "k2"
    general.mkdir()
    (general / "scores.json").write_text(json.dumps({**SCORES, "role": "general", "created": time.time()}))
    broken = run.path / "eval" / "k3"
    broken.mkdir()
    (broken / "scores.json").write_text('{"base": {"rouge1": 0.1}, "tu')
    assert latest_scores(run)["role"] == "test"  # the held-out test set before a general set
    (run.path / "config.yaml").write_text(": not yaml [")
    words = texts(build_figure(run, "en"))
    assert t("scores.report.config_unreadable", "en") in words


def test_score_rows_with_missing_values():
    rows = score_rows({"base": {"rouge1": 0.0, "bleu": None}, "tuned": {"rouge1": 0.25, "bleu": 3.0,
                                                                         "custom": 1}}, "en")
    assert rows[0] == ["ROUGE-1", "0.0000", "0.2500", "+0.2500"]
    assert rows[1] == ["BLEU", "n/a", "3.00", "n/a"]
    assert rows[2][0] == "custom"


def test_bad_suffix_is_refused(home, tmp_path):
    run = make_run(home)
    with pytest.raises(UserError) as err:
        training_report(run, tmp_path / "report.svg")
    assert err.value.msg.code == "scores.report_suffix"
