"""Several processes, one run: torchrun with two CPU processes (gloo) writes exactly one run folder.

    torchrun --nproc_per_node 2 -m studio.train recipes/demo.yaml epochs=1 --home DIR
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, fast_overrides, free_port

TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(*args, home, timeout=600):
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed next to this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(free_port()),
         "-m", "studio.train", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def test_two_processes_write_one_run_folder(home):
    out = torchrun("recipes/demo.yaml", *fast_overrides(max_steps=4, eval_every=2), home=home)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = list((home / "runs").iterdir())  # one folder, not one per process
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 4
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [e["step"] for e in events if e["loss"] is not None]
    assert train_steps == [1, 2, 3, 4]  # one metrics stream: each step recorded once
    assert out.stdout.count("Finished after 4 steps") == 1  # only rank 0 reports


def test_two_processes_refuse_bad_settings_together(home):
    out = torchrun("recipes/demo.yaml", "batch_size=0", home=home, timeout=300)
    assert out.returncode != 0  # torchrun reports its children's exit code 2 (with its own trace)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Batch size" in errors[0], out.stderr[-3000:]  # rank 0 says it once
    assert not list((home / "runs").iterdir())
