"""The memory estimate is within 30 % of the measured peak of a real CPU training run.

Each run is a fresh `python -m studio.train` process (5 steps); its peak is the kernel's
high-water mark of resident memory (ru_maxrss of waited-for children), compared with
`studio.estimate.estimate(cfg)`'s CPU figure for the same settings.
"""

import subprocess
import sys

import pytest

from helpers import ROOT
from studio.config import from_command_line
from studio.estimate import estimate

SETTINGS = ["max_steps=5", "max_samples=80", "batch_size=8", "max_length=128", "eval_every=5"]


def measured_peak(items: list[str], home) -> int:
    """Peak RSS in bytes of one training process (a script, so RUSAGE_CHILDREN sees only it)."""
    script = ("import resource, subprocess, sys\n"
              "rc = subprocess.run([sys.executable, '-m', 'studio.train', *sys.argv[1:]]).returncode\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
              "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", script, *items, "--home", str(home)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1]) * 1024  # Linux reports KiB


def check(items, home):
    peak = measured_peak(items, home)
    guess = estimate(from_command_line(items), device="cpu")["memory_cpu"]
    print(f"{items[:2]}: measured {peak / 2**20:.0f} MB, estimated {guess / 2**20:.0f} MB")
    assert abs(guess - peak) <= 0.3 * peak, (peak, guess)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_demo_model(method, tmp_path):
    check([str(ROOT / "recipes/demo.yaml"), f"method={method}", *SETTINGS], tmp_path)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_shared_fixture_model(method, shared, tmp_path):
    model = shared / "models/aidreams-260k"
    if not model.is_dir():
        pytest.skip("aidreams-260k fixture is not present")
    check([str(ROOT / "recipes/demo.yaml"), f"model={model}", f"method={method}", *SETTINGS], tmp_path)
