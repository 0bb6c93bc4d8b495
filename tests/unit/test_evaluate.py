"""Evaluation without a model: bad input, keys, the waiting line, diffs, verdicts, votes, the tab's drawing."""

import json
import threading
from pathlib import Path

import pytest

from helpers import wait_for
from studio import evaluate as ev
from studio.cli import main
from studio.config import StudioConfig, set_value
from studio.errors import UserError
from studio.generation import GenerationSettings
from studio.jobs import JobManager
from studio.runs import RunStore


def record(question: str, answer: str) -> dict:
    return {"prompt": [{"role": "user", "content": question}], "completion": [{"role": "assistant", "content": answer}]}


def make_run(home: Path, state: str = "completed", output: str | None = "adapter", model: str = "demo",
             test_rows: list | None = None):
    """A run folder as training leaves it (no real weights: the checks come before any loading)."""
    cfg = set_value(StudioConfig(), "model.path", model)
    store = RunStore(home)
    run = store.create(cfg)
    run.update_status(state=state)
    if output:
        (run.path / output).mkdir()
        weights = "adapter_model.safetensors" if output == "adapter" else "model.safetensors"
        (run.path / output / weights).write_bytes(b"not really weights")
    rows = [record("What colour is the sky?", "Blue.")] if test_rows is None else test_rows
    (run.path / "data").mkdir()
    (run.path / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return store, run


# ---- bad input: one sentence, n/a, no crash ----------------------------------------------------

@pytest.mark.parametrize("state, output, code", [
    ("failed", None, "evaluate.run_failed"),
    ("crashed", None, "evaluate.run_failed"),
    ("completed", None, "evaluate.no_output"),
    ("running", "adapter", "evaluate.run_active"),
])
def test_runs_that_cannot_be_evaluated_say_why(home, state, output, code):
    _, run = make_run(home, state, output)
    with pytest.raises(UserError) as err:
        ev.target_for(run)
    assert err.value.msg.code == code and run.id in str(err.value)


def test_a_run_whose_base_model_is_gone(home, tmp_path):
    base = tmp_path / "my-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    _, run = make_run(home, model=str(base))
    assert ev.target_for(run).base == str(base.resolve())
    (base / "config.json").unlink()
    base.rmdir()
    with pytest.raises(UserError) as err:
        ev.target_for(run)
    assert err.value.msg.code == "evaluate.base_missing" and "n/a" in str(err.value)


def test_an_adapter_folder_without_weights(home):
    _, run = make_run(home)
    (run.path / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(UserError, match="without model weights"):
        ev.target_for(run)


def test_empty_and_missing_test_sets(home):
    _, run = make_run(home, test_rows=[])
    with pytest.raises(UserError) as err:
        ev.load_test_set(run)
    assert err.value.msg.code == "evaluate.empty_test_set"
    (run.path / "data" / "test.jsonl").unlink()
    with pytest.raises(UserError) as err:
        ev.load_test_set(run)
    assert err.value.msg.code == "evaluate.no_test_split"
    (run.path / "data" / "test.jsonl").write_text("{not json\n")
    with pytest.raises(UserError) as err:
        ev.load_test_set(run)
    assert err.value.msg.code == "evaluate.unreadable_test_set"


def test_text_records_have_nothing_to_score():
    with pytest.raises(UserError):
        ev.test_set_from_records([{"text": "plain text"}, {"prompt": [], "completion": []}], "x", "x")
    test = ev.test_set_from_records([{"text": "plain"}, record("Q?", "A.")], "x", "x")
    assert test.skipped == 1 and test.references == ["A."] and test.prompt_texts == ["Q?"]


def test_requests_are_checked_before_anything_runs(home):
    store, run = make_run(home)
    evaluator = ev.Evaluator(JobManager(store), home)
    with pytest.raises(UserError, match="at least one run"):
        evaluator.prepare([])
    with pytest.raises(UserError, match="no run nope"):
        evaluator.prepare(["nope"])
    with pytest.raises(UserError, match="Batch size"):
        evaluator.prepare([run.id], settings=GenerationSettings(batch_size=0))
    # what numpy would refuse mid-run, and a negative sample size (random.sample's ValueError)
    with pytest.raises(UserError, match="from 0 to 4294967295"):
        evaluator.prepare([run.id], settings=GenerationSettings(do_sample=True, seed=2**32))
    with pytest.raises(UserError, match="use 0 .all. or a positive whole number"):
        evaluator.prepare([run.id], max_rows=-1)


def test_cli_eval_of_a_failed_run_is_one_line(home, capsys):
    _, run = make_run(home, "failed", None)
    assert main(["eval", run.id, "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "failed before saving a model" in err and err.count("\n") == 1


# ---- keys and cache ----------------------------------------------------------------------------

def test_the_key_follows_model_data_and_settings(home):
    _, run = make_run(home)
    target = ev.target_for(run)
    test = ev.load_test_set(run)
    greedy = GenerationSettings()
    key = ev.eval_key(target, test, greedy)
    assert key == ev.eval_key(target, ev.load_test_set(run), GenerationSettings(temperature=0.1))  # unused when greedy
    assert key != ev.eval_key(target, test, GenerationSettings(max_new_tokens=32))
    assert key != ev.eval_key(target, test, GenerationSettings(do_sample=True))
    other = ev.test_set_from_records([record("What colour is grass?", "Green.")], "x", "x")
    assert key != ev.eval_key(target, other, greedy)
    (run.path / "adapter" / "adapter_model.safetensors").write_bytes(b"retrained")
    assert key != ev.eval_key(target, test, greedy)
    assert ev.base_key(target, test, greedy) == ev.base_key(target, test, greedy)


def fake_work(target, parts, settings, stem=False):
    """Writes results like the real work, without a model: outputs are the references."""
    def work(job, stop_event):
        for part in parts:
            refs = part.test.references
            result = {"base": {**ev.corpus_scores(["zzz"] * len(refs), refs), "eval_loss": 3.0, "perplexity": 20.1},
                      "tuned": {**ev.corpus_scores(refs, refs), "eval_loss": 1.0, "perplexity": 2.7},
                      "base_outputs": ["zzz"] * len(refs), "tuned_outputs": list(refs)}
            ev.write_results(target, part, settings, result, stem, 0.1)
        return {"message": ev.Msg("evaluate.all_done", n=1)}
    return work


def test_results_are_saved_and_asked_again_is_a_cache_hit(home, monkeypatch):
    monkeypatch.setattr(ev, "make_work", fake_work)
    store, run = make_run(home)
    evaluator = ev.Evaluator(JobManager(store), home)
    request = evaluator.start([run.id])
    evaluator.wait(request.id, 60)
    assert evaluator.status(request.id)["state"] == "completed"
    [result] = evaluator.results(request.id)
    scores = result["test"]
    assert scores["tuned"]["rougeL"] == pytest.approx(1.0) and scores["base"]["rougeL"] == 0
    assert scores["rows"] == 1 and scores["data_hash"] and scores["settings"]["batch_size"] == 16
    folder = Path(result["test_folder"])
    assert folder.parent == run.path / "eval" and (folder / "examples.jsonl").is_file()
    [example] = ev.read_examples(folder)
    assert example["reference"] == example["tuned"] == "Blue." and example["tuned_rougeL"] == pytest.approx(1.0)
    assert run.status()["state"] == "completed"  # the run's own status is untouched
    assert ev.latest_summary(run) == "ROUGE-L 0.00 → 1.00"
    again = evaluator.start([run.id])
    evaluator.wait(again.id, 60)
    assert evaluator.status(again.id)["items"][0]["state"] == "cached"


def test_an_evaluation_waits_for_training_then_starts(home, monkeypatch):
    monkeypatch.setattr(ev, "make_work", fake_work)
    store, run = make_run(home)
    jobs = JobManager(store)
    release = threading.Event()
    _, busy = make_run(home / "other")
    jobs.submit(busy, lambda r, stop: release.wait(60) and {})
    evaluator = ev.Evaluator(jobs, home)
    request = evaluator.start([run.id])
    wait_for(lambda: "Waiting in line" in str(evaluator.status(request.id)["message"]), 30,
             "the request to wait in line")
    assert evaluator.status(request.id)["state"] == "waiting"
    release.set()
    evaluator.wait(request.id, 60)
    assert evaluator.status(request.id)["state"] == "completed"


def test_stop_while_waiting_never_starts(home, monkeypatch):
    monkeypatch.setattr(ev, "make_work", fake_work)
    store, run = make_run(home)
    jobs = JobManager(store)
    release = threading.Event()
    _, busy = make_run(home / "other")
    jobs.submit(busy, lambda r, stop: release.wait(60) and {})
    evaluator = ev.Evaluator(jobs, home)
    request = evaluator.start([run.id])
    wait_for(lambda: evaluator.status(request.id)["state"] == "waiting", 30, "the request to wait")
    evaluator.stop(request.id)
    evaluator.wait(request.id, 30)
    release.set()
    assert evaluator.status(request.id)["state"] == "stopped"
    assert not jobs.busy() or jobs.active_run() is busy  # the training was not stopped
    assert ev.read_scores(request.items[0].parts[0].folder) is None


# ---- reading results ---------------------------------------------------------------------------

def test_word_diff_marks_added_and_missing_words():
    pieces = ev.word_diff("A pumpkin is orange.", "A pumpkin is green.")
    assert "".join(t for t, label in pieces if label != "-") == "A pumpkin is green."
    assert ("orange.", "-") in pieces and ("green.", "+") in pieces
    zh = ev.word_diff("天空是蓝色的", "天空是红色的")
    assert ("蓝", "-") in zh and ("红", "+") in zh
    assert ev.word_diff("", "") == []


def test_comparison_rows_and_change():
    rows = ev.comparison_rows({"base": {"rougeL": 0.2, "bleu": 0.0, "eval_loss": 3.0, "perplexity": None},
                               "tuned": {"rougeL": 0.5, "bleu": 10.0, "eval_loss": 1.0, "perplexity": 2.7}})
    by = {r["metric"]: r for r in rows}
    assert by["rougeL"]["change"] == pytest.approx(0.3) and by["rougeL"]["pct"] == pytest.approx(150)
    assert by["rougeL"]["better"] and by["eval_loss"]["better"]  # lower loss is better
    assert by["bleu"]["pct"] is None and by["perplexity"]["change"] is None  # n/a, not a crash
    assert [r["metric"] for r in ev.comparison_rows(None)] == list(ev.METRICS)


def test_forgetting_verdict():
    held = {"base": {"rougeL": 0.30, "perplexity": 10.0}, "tuned": {"rougeL": 0.295, "perplexity": 10.2},
            "data_label": "demo_zh.json"}
    assert ev.forgetting_verdict(held).code == "evaluate.forgetting_held"
    dropped = {"base": {"rougeL": 0.30, "perplexity": 10.0}, "tuned": {"rougeL": 0.20, "perplexity": 14.0}}
    verdict = ev.forgetting_verdict(dropped)
    assert verdict.code == "evaluate.forgetting_dropped" and "ROUGE-L, perplexity" in str(verdict)
    assert ev.forgetting_verdict(None) is None


def test_human_score_from_blind_votes(home):
    assert ev.human_score(home, "run-1") is None
    (home / "arena").mkdir(parents=True)
    votes = [{"a": "run-1", "b": "base", "winner": "a"}, {"a": "demo", "b": "run-1", "winner": "b"},
             {"a": "demo", "b": "run-1", "winner": "a"}, {"a": "run-1", "b": "demo", "winner": "tie"},
             {"a": "run-1", "b": "run-2", "winner": "a"}, {"a": "demo", "b": "run-1", "winner": "both_bad"}]
    (home / "arena" / "votes.jsonl").write_text("\n".join(map(json.dumps, votes)) + "\nnot json\n[1]\n")
    score = ev.human_score(home, "run-1")
    assert score["votes"] == 5 and (score["wins"], score["losses"], score["ties"], score["both_bad"]) == (2, 1, 1, 1)
    assert score["win_rate"] == pytest.approx(2.5 / 4)
    assert ev.human_score(home, "run-3") is None


def test_settings_from_the_page():
    settings = GenerationSettings.from_dict({"batch_size": 8, "max_new_tokens": 32, "unknown": 1})
    assert settings.batch_size == 8 and "temperature" not in settings.key_dict()
    assert "seed" in GenerationSettings(do_sample=True).key_dict()
    with pytest.raises(UserError):
        GenerationSettings.from_dict({"do_sample": True, "temperature": 0})


# ---- the tab's drawing: user text stays text ---------------------------------------------------

def test_tab_renders_user_text_inertly(home, monkeypatch):
    from studio.ui import evaluate_tab as tab

    monkeypatch.setattr(ev, "make_work", fake_work)
    store, run = make_run(home, test_rows=[record("<img src=x onerror=alert(1)>", "<script>x</script>")])
    evaluator = ev.Evaluator(JobManager(store), home)
    request = evaluator.start([run.id])
    evaluator.wait(request.id, 60)
    results = evaluator.results(request.id)
    card = tab.render_card(evaluator.status(request.id), "zh")
    assert "完成" in card
    error_card = tab.render_card(None, "en", UserError("evaluate.unknown_run", run="<b>x</b>").msg)
    assert "<b>x</b>" not in error_card and "&lt;b&gt;" in error_card
    summary = tab.summary_frame(results, "en")
    assert list(summary.columns)[:3] == ["run", "set", "metric"] and len(summary) == len(ev.METRICS)
    rouge_l = summary[summary["metric"] == "ROUGE-L"].iloc[0]
    assert (rouge_l["base"], rouge_l["fine-tuned"]) == ("0.0000", "1.0000")
    examples = tab.examples_frame(results[0]["test_folder"], "en")
    assert examples.iloc[0]["prompt"] == "<img src=x onerror=alert(1)>"  # shown as text (datatype str)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.home = home
    notes = tab.notes_html(results, ctx, "en")
    assert "<script>" not in notes and "n/a" in notes
    assert tab.chart_frame(results, "en")["score"].max() <= 1
    files = tab.export_files(results, run.id)
    assert [Path(f).suffix for f in files] == [".csv", ".jsonl", ".json"]
    assert "<script>x</script>" in Path(files[0]).read_text()
