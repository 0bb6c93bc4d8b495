"""Helpers shared by tests and benchmarks (plain functions, not fixtures)."""

import shutil
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_overrides(**extra) -> list[str]:
    """A few CPU-friendly steps of the demo model on the demo data."""
    base = {"max_steps": 6, "batch_size": 4, "max_length": 96, "max_samples": 80, "eval_every": 3,
            "learning_rate": 1e-3}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def wait_for(condition, timeout: float = 180, what: str = "condition", every: float = 0.3):
    """Poll `condition` until it returns something truthy (returned); a generous timeout, never a
    speed claim: on a busy machine only the waiting gets longer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")
