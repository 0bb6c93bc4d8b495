"""Helpers shared by tests and benchmarks (plain functions, not fixtures)."""

import contextlib
import shutil
import socket
import threading
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


@contextlib.contextmanager
def hung_hub():
    """A Hub endpoint (its URL) that accepts connections and never replies; the list of the
    connections made fills in as they come."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    connections = []

    def accept():
        while True:
            try:
                connections.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", connections
    finally:
        sock.close()
        for conn in connections:
            conn.close()


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


# Gradio 6.31's native plots draw asynchronously and read their element's offsetWidth after an
# await; when the plot's tab was left in between (a timer or a handler updated it while hidden),
# the element is gone and the browser logs this error. It is Gradio's race, harmless (the plot
# redraws when its tab is shown again), and depends on machine load; every other error counts.
GRADIO_PLOT_RACE = ("Cannot read properties of null (reading 'offsetWidth')",
                    "Cannot read properties of undefined (reading 'offsetWidth')")


def real_page_errors(errors: list[str]) -> list[str]:
    """Page errors other than Gradio's plot race above."""
    return [e for e in errors if not any(race in e for race in GRADIO_PLOT_RACE)]
