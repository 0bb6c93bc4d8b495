"""Live diagnostics: each rule on synthetic series, the event format, the Watcher's once-per-run,
the CLI line, out-of-memory, and the Train tab's cards (escaped)."""

import json

import pytest

from studio import diagnostics as d
from studio.cli import _format_event
from studio.config import StudioConfig
from studio.errors import explain
from studio.i18n import Msg, t
from studio.runs import RunStore
from studio.ui.train_diagnostics import render_diagnostics


@pytest.fixture
def run(home):
    return RunStore(home).create(StudioConfig())


def falling(n, start=3.0, rate=0.03):
    return [start * (1 - rate) ** i for i in range(n)]


# --- rules -----------------------------------------------------------------------------------

def test_overfitting_needs_rising_eval_while_train_falls():
    assert d.is_overfitting([2.0, 1.8, 1.85, 1.95], falling(12))
    assert not d.is_overfitting([2.0, 1.8, 1.7, 1.6], falling(12))           # eval still falling
    assert not d.is_overfitting([2.0, 1.8, 1.9], falling(12)[:1])            # too few train points
    assert not d.is_overfitting([2.0, 1.8, 1.85, 1.95], [1.0, 1.1, 1.2, 1.3])  # train rising too
    assert not d.is_overfitting([1.8, 1.8001, 1.8002], falling(12))          # a rise within noise
    assert not d.is_overfitting([2.0, 1.9], falling(12))                     # one evaluation is noise


def test_flat_loss_only_when_nothing_fell_after_warmup():
    assert d.is_flat([2.5] * 12)
    assert d.is_flat([2.5 + 0.01 * ((-1) ** i) for i in range(12)])          # noise around a level
    assert not d.is_flat(falling(12))
    assert not d.is_flat([2.5] * 5)                                          # too few points
    assert not d.is_flat(falling(8) + [falling(8)[-1]] * 8)                  # fell, then plateaued
    # batches of 2 rows: each loss scatters widely, but along a steep fall (a real run's losses)
    assert not d.is_flat([3.908, 4.404, 2.211, 2.147, 1.467, 3.439, 1.735, 1.641, 1.999, 0.705])


def test_spike_is_far_above_the_recent_median():
    recent = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.02]
    assert d.spike_median(recent, 5.0) == pytest.approx(1.0)
    assert d.spike_median(recent, 1.3) is None
    assert d.spike_median(recent[:3], 5.0) is None                           # not enough history
    assert d.spike_median(recent, float("nan")) is None                      # NaN is its own rule


def test_nan_and_inf_are_seen_as_they_are():
    assert d.is_not_finite(float("nan")) and d.is_not_finite(float("inf")) and d.is_not_finite("-inf")
    assert d.is_not_finite("nan")                                            # metrics.jsonl's form
    assert not d.is_not_finite(1.5) and not d.is_not_finite(None)


def test_throughput_judged_only_where_an_expectation_means_something():
    assert d.expected_tokens_per_s("cpu", 300_000) is None                   # the demo: never judged
    gpu = d.expected_tokens_per_s("cuda", 1_000_000_000, trainable=10_000_000)
    assert gpu == pytest.approx(20e12 / 4e9)
    assert d.is_slow([10.0] * 8, gpu) == 10.0
    assert d.is_slow([gpu] * 8, gpu) is None
    assert d.is_slow([10.0] * 3, gpu) is None                                # too few readings
    assert d.slow_fix("cuda", "fp32", False).code == "diag.slow_fix_precision"
    assert d.slow_fix("cuda", "bf16", False).code == "diag.slow_fix_padding"
    assert d.slow_fix("cuda", "bf16", True).code == "diag.slow_fix_general"


def test_out_of_memory_in_plain_words_with_the_advice():
    for exc in (MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")):
        assert d.is_out_of_memory(exc)
        text = explain(exc).render("en")
        assert "out of memory" in text and "grad_accum" in text and "qlora" in text and "max_length" in text
    assert not d.is_out_of_memory(ValueError("bad value"))


def test_record_failure_writes_the_oom_diagnostic(run):
    d.record_failure(run, RuntimeError("boom"))
    assert run.read_metrics() == []
    d.record_failure(run, RuntimeError("CUDA out of memory"))
    (event,) = run.read_metrics()
    assert event["diagnostic"] == "out_of_memory" and event["severity"] == "error"
    assert "grad_accum" in t(event["fix"]["code"], "en")


# --- events and the Watcher -------------------------------------------------------------------

def metric(step, loss=None, eval_loss=None, speed=None):
    return {"t": 0.0, "step": step, "epoch": None, "loss": loss, "eval_loss": eval_loss,
            "learning_rate": 1e-3, "grad_norm": 1.0, "tokens": step * 100, "tokens_per_s": speed}


def test_event_format_is_a_metrics_line_every_reader_skips(run):
    event = d.diagnostic_event("spike", "warning", 7, Msg("diag.spike", loss="9", step=7, median="1"),
                               d.UNSTABLE_FIX)
    assert {"t", "step", "diagnostic", "severity", "message", "fix"} <= set(event)
    assert event["message"] == {"code": "diag.spike", "params": {"loss": "9", "step": 7, "median": "1"}}
    assert all(event[k] is None for k in d.METRIC_KEYS)
    json.dumps(event)
    from studio.report import series
    from studio.ui.train_tab import frames

    run.append_metric(metric(1, loss=2.0))
    run.append_metric(event)
    events = run.read_metrics()
    loss_df, lr_df = frames(events)
    assert loss_df["step"].tolist().count(1) >= 1 and 7 not in loss_df["step"].tolist()
    assert series(events, "loss") == ([1.0], [2.0])
    assert _format_event(event, 10).startswith("! The training loss jumped to 9")
    assert "max_grad_norm" in _format_event(event, 10)
    assert _format_event(metric(1, loss=2.0), 10).startswith("step 1/10")


def test_watcher_raises_flat_once_and_again_only_after_it_cleared(run):
    w = d.Watcher(run, StudioConfig(), {"device": "cpu"}, warmup_steps=2)
    raised = [e for step in range(1, 15) for e in w.feed(metric(step, loss=2.5))]
    assert [e["diagnostic"] for e in raised] == ["flat_loss"]
    assert raised[0]["step"] == 12                     # 10 points after the 2 warmup steps
    assert "0.0002" in t(raised[0]["fix"]["code"], "en", **raised[0]["fix"]["params"])
    stored = [e for e in run.read_metrics() if e.get("diagnostic")]
    assert stored == raised
    # A resumed run (a new Watcher on the same folder) does not say it again.
    assert d.Watcher(run, StudioConfig()).feed(metric(20, loss=2.5)) == []


def test_watcher_overfitting_spike_and_nan(run):
    w = d.Watcher(run, StudioConfig())
    codes = []
    losses = falling(30)
    evals = {6: 2.0, 12: 1.8, 18: 1.85, 24: 1.95}
    for step, loss in enumerate(losses, 1):
        codes += [e["diagnostic"] for e in w.feed(metric(step, loss=loss))]
        if step in evals:
            codes += [e["diagnostic"] for e in w.feed(metric(step, eval_loss=evals[step]))]
    assert codes == ["overfitting"]
    assert "spike" in [e["diagnostic"] for e in w.feed(metric(31, loss=40.0))]
    (nan,) = w.feed(metric(32, loss=float("nan")))
    assert nan["diagnostic"] == "not_finite" and nan["severity"] == "error"
    assert "nan" in t(nan["message"]["code"], "en", **nan["message"]["params"])
    assert w.feed(metric(33, loss=float("nan"))) == []  # once


def test_watcher_slow_on_a_big_model_on_gpu(run):
    w = d.Watcher(run, StudioConfig(), {"device": "cuda", "precision": "fp32"}, n_params=1_000_000_000,
                  trainable=1_000_000_000)
    raised = [e for step in range(1, 9) for e in w.feed(metric(step, loss=3.0 - step * 0.1, speed=50.0))]
    assert [e["diagnostic"] for e in raised] == ["slow"]
    assert raised[0]["fix"]["code"] == "diag.slow_fix_precision"


# --- the Train tab's cards -------------------------------------------------------------------

def test_render_is_empty_without_diagnostics(run):
    assert render_diagnostics(run, "en") == ""
    run.append_metric(metric(1, loss=2.0))
    assert render_diagnostics(run, "en") == ""


def test_render_newest_first_escaped_both_languages(run):
    run.append_metric(d.diagnostic_event("flat_loss", "warning", 3, Msg("diag.flat_loss", steps=10, loss="2.5"),
                                         Msg("diag.flat_loss_fix", lr="1e-09")))
    hostile = {"t": 0, "step": 5, "diagnostic": "x", "severity": "<script>", "message": "<img src=x onerror=alert(1)>"}
    run.append_metric(hostile)
    html = render_diagnostics(run, "en")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "<script>" not in html
    assert html.index("Step 5") < html.index("Step 3")                     # newest first
    assert "diag-warning" in html and "not falling" in html and "1e-09" in html
    zh = render_diagnostics(run, "zh")
    assert "训练损失没有下降" in zh and "第 3 步" in zh


def test_render_follows_a_file_cut_back_by_resume(run):
    run.append_metric(d.diagnostic_event("spike", "error", 2, Msg("diag.spike", loss="9", step=2, median="1")))
    assert "diag-error" in render_diagnostics(run, "en")
    run.metrics_path.write_text("")
    assert render_diagnostics(run, "en") == ""


def test_flat_training_loss_is_not_raised_while_eval_loss_falls(run):
    """A noisy training loss (DPO's pairs, batches of two) over a falling eval loss: it learns."""
    w = d.Watcher(run, StudioConfig(), {"device": "cpu"}, warmup_steps=0)
    raised = []
    for step in range(1, 15):
        eval_loss = 0.52 - 0.01 * step if step % 3 == 0 else None
        raised += w.feed(metric(step, loss=0.6 + 0.1 * ((-1) ** step), eval_loss=eval_loss))
    assert "flat_loss" not in [e["diagnostic"] for e in raised]


def test_collapse_is_exact_zero_gradients_on_a_stuck_positive_loss_after_real_ones():
    live = [(6.5, 5.9), (8.1, 7.0), (1.5e12, 9.4)]
    stuck = [(0.0, 8.3177)] * 3
    assert d.is_collapsed(live + stuck)
    assert not d.is_collapsed(live + stuck[:2])                          # not yet COLLAPSE_STEPS
    assert not d.is_collapsed(stuck * 2)                                 # never trained: frozen, not collapsed
    assert not d.is_collapsed(live + [(0.0, 0.0)] * 3)                   # batches without trained tokens
    assert not d.is_collapsed(live + [(0.0, 8.3), (0.0, 8.1), (0.0, 7.9)])  # the loss still moves
    assert not d.is_collapsed(live + [(1e-9, 8.3177)] * 3)               # tiny but real gradients


def test_the_watcher_raises_collapse_as_an_error_with_the_unstable_advice(tmp_path):
    from studio.runs import RunStore

    run = RunStore(tmp_path).create(StudioConfig())
    watcher = d.Watcher(run)
    raised = []
    for step, (grad, loss) in enumerate([(6.5, 5.9), (8.1, 7.0), (1.5e12, 9.4)] + [(0.0, 8.3177)] * 3, 1):
        raised += watcher.feed({"step": step, "loss": loss, "grad_norm": grad})
    collapsed = [e for e in raised if e["diagnostic"] == "collapsed"]
    assert len(collapsed) == 1 and collapsed[0]["severity"] == "error" and collapsed[0]["step"] == 6
    assert collapsed[0]["fix"]["code"] == "diag.unstable_fix"
