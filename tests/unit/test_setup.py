"""Setup as the README promises: no CUDA wheels on a CPU machine, apt waits, the docs say how to run.

The dry-run test asks pip what `make setup` would install here (torch from the arguments the
Makefile chooses, then the project on top of that torch) and checks that no `nvidia-*` package is
among them. It needs the package index; without one it skips with pip's reason.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
CPU_MACHINE = shutil.which("nvidia-smi") is None


def make(*args) -> str:
    out = subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def dry_run(args: list[str], report, extra=()) -> list[dict]:
    """What `pip install ARGS` would install into an empty environment (pip's JSON report)."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), *extra, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if out.returncode != 0:
        pytest.skip(f"pip could not resolve here (offline?): {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(report.read_text())["install"]


@needs_make
@pytest.mark.skipif(not CPU_MACHINE, reason="this machine has an NVIDIA GPU: setup rightly picks CUDA")
def test_torch_for_a_cpu_machine_is_never_the_unpinned_default():
    args = make("print-torch").split()
    assert args[-1].startswith("torch=="), args  # pinned: never whatever build the index prefers
    assert args[:-1] in ([], ["--index-url", "https://download.pytorch.org/whl/cpu"]), args


@needs_make
@pytest.mark.slow
@pytest.mark.setup
@pytest.mark.skipif(not CPU_MACHINE, reason="this machine has an NVIDIA GPU: setup rightly picks CUDA")
def test_setup_selects_no_nvidia_package_on_a_cpu_machine(tmp_path):
    torch_args = make("print-torch").split()
    first = dry_run(torch_args, tmp_path / "torch.json")
    torch = next(p["metadata"] for p in first if p["metadata"]["name"].lower() == "torch")
    # The project is installed on top of that torch (pip keeps an installed torch that satisfies it).
    pin = tmp_path / "torch-pin.txt"
    pin.write_text(f"torch=={torch['version']}\n")
    second = dry_run([".[test]"], tmp_path / "project.json", extra=["-c", str(pin)])
    names = [p["metadata"]["name"].lower() for p in first + second]
    assert "gradio" in names and "transformers" in names  # the report really covers the project
    assert not [n for n in names if n.startswith("nvidia")], names


@needs_make
def test_make_waits_for_the_apt_lock():
    recipe = subprocess.run(["make", "-n", "-B", "browser"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60).stdout
    assert recipe.count("apt-get -o DPkg::Lock::Timeout=600") == 2, recipe


def test_readme_says_how_to_run_studio_after_setup_and_the_security_flags():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Two commands"):text.index("## What you can do today")]
    for needle in (".venv/bin/studio", "source .venv/bin/activate", 'make studio ARGS="--port 8080"',
                   "--auth", "STUDIO_AUTH", "--model-dir", "--allow-remote-code", "--max-upload",
                   "download.pytorch.org/whl/cpu"):
        assert needle in setup, needle
