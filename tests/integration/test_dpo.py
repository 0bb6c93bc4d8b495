"""DPO (TRL's DPOTrainer) on the demo model: LoRA, full and QLoRA; every preference shape; refusals."""

import json

import pytest

from helpers import ROOT, fast_overrides
from studio.config import StudioConfig, apply_overrides, load_recipe
from studio.errors import UserError
from studio.jobs import JobManager
from studio.runs import RunStore


def train(home, overrides: list[str], timeout: float = 600):
    """A DPO run through the job manager, as `studio train` starts it (files anywhere on disk)."""
    jobs = JobManager(RunStore(home))
    run = jobs.start(apply_overrides(StudioConfig(), ["stage=dpo", "data=demo-dpo", *overrides]))
    jobs.wait(timeout)
    assert not jobs.busy(), "training did not finish in time"
    status = run.status()
    assert status["state"] == "completed", (status.get("message"), (run.path / "logs.txt").read_text())
    return run


def mean(values):
    return sum(values) / len(values)


def test_dpo_lora_demo_reward_margin_grows(home):
    run = train(home, fast_overrides(max_steps=16, eval_every=8, batch_size=8, learning_rate=3e-3, max_length=128,
                                     max_samples=0))
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    events = [e for e in run.read_metrics() if e.get("reward_margin") is not None]
    assert len(events) == 16
    margins = [e["reward_margin"] for e in events]
    # The first steps start from the reference (margin 0); averaged, the margin clearly grows.
    assert mean(margins[-5:]) > mean(margins[:5]) + 0.3, margins
    assert all(e.get(k) is not None for e in events for k in ("rewards_chosen", "rewards_rejected",
                                                                 "reward_accuracy"))
    evals = [e["eval_reward_margin"] for e in run.read_metrics() if e.get("eval_reward_margin") is not None]
    assert len(evals) == 2 and evals[-1] > 0, evals
    # the data the run trained is preference records
    first = json.loads((run.path / "data" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) >= {"prompt", "chosen", "rejected"}


@pytest.mark.parametrize("method", ["full", "qlora"])
def test_dpo_full_and_qlora_complete(home, method):
    run = train(home, [f"method={method}", *fast_overrides(max_steps=3, eval_every=3, batch_size=4, max_samples=24)])
    folder = "adapter" if method == "qlora" else "model"
    assert any((run.path / folder).glob("*.safetensors")), list((run.path / folder).iterdir())
    assert [e for e in run.read_metrics() if e.get("reward_margin") is not None]


def test_dpo_message_list_preference_trains(home, tmp_path):
    rows = [{"chosen": [{"role": "user", "content": f"What is {i} plus 1?"},
                        {"role": "assistant", "content": f"{i} plus 1 is {i + 1}."}],
             "rejected": [{"role": "user", "content": f"What is {i} plus 1?"},
                          {"role": "assistant", "content": "No idea."}]} for i in range(16)]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    run = train(home, [*fast_overrides(max_steps=2, eval_every=2, batch_size=4), f"data={path}"])
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()


def test_dpo_sharegpt_preference_fixture_trains(home, shared):
    data = shared / "data" / "dpo_en_demo.json"
    run = train(home, [*fast_overrides(max_steps=2, eval_every=2, batch_size=2, max_samples=40,
                                       max_length=1024), f"data={data}"])
    assert (run.path / "adapter" / "adapter_model.safetensors").is_file()
    assert [e for e in run.read_metrics() if e.get("reward_margin") is not None]


def test_dpo_on_instruction_data_is_refused_before_a_run_exists(home):
    store = RunStore(home)
    cfg = apply_overrides(load_recipe(ROOT / "recipes" / "demo.yaml"), ["stage=dpo", "data=demo-en"])
    with pytest.raises(UserError) as caught:
        JobManager(store).check(cfg)
    assert caught.value.key == "data.path"
    assert "preference data" in caught.value.render("en")
    assert store.list() == []
