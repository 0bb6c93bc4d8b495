"""Helpers shared by tests and benchmarks (plain functions, not fixtures)."""

import shutil
import socket

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
