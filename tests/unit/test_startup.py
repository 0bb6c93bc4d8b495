"""studio.startup: the collector pause of a one-run process, the UI's background import, and
that importing the training stack asks nothing of the network."""

import gc
import os
import subprocess
import sys
import threading

import pytest

from helpers import hung_hub
from studio import startup


@pytest.fixture
def collector():
    """Leave the test process's collector as it was (on, nothing frozen)."""
    yield
    gc.unfreeze()
    gc.enable()
    startup._paused = False


def test_a_paused_collector_comes_back_on_with_the_existing_objects_frozen(collector):
    startup.pause_collector()
    assert not gc.isenabled()
    survivor = [object() for _ in range(10)]
    startup.imports_settled()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(survivor)
    startup.imports_settled()  # a second call (a later run of the same process) changes nothing
    assert gc.isenabled()


def test_without_a_pause_nothing_is_frozen(collector):
    """The UI's process and the tests train many runs: their collector is never paused or frozen."""
    before = gc.get_freeze_count()
    startup.imports_settled()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_a_collector_someone_else_turned_off_stays_off(collector):
    gc.disable()
    startup.pause_collector()
    startup.imports_settled()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_wait_for_warm_up_waits_for_the_background_import(monkeypatch):
    """transformers' lazy module is not safe to import from two threads at once: the model check
    and the parameter count wait until the UI's background import is done."""
    gate, entered = threading.Event(), threading.Event()

    def slow_import():
        entered.set()
        startup.wait_for_warm_up()  # from the warm-up thread itself: returns at once
        gate.wait(30)

    thread = threading.Thread(target=slow_import)
    monkeypatch.setattr(startup, "_warm_up", thread)
    thread.start()
    assert entered.wait(30)
    waited = threading.Thread(target=startup.wait_for_warm_up)
    waited.start()
    waited.join(0.5)
    assert waited.is_alive()  # still waiting on the import
    gate.set()
    waited.join(30)
    assert not waited.is_alive() and not thread.is_alive()


def test_importing_the_training_stack_makes_no_hub_request():
    """bitsandbytes' CPU backend asks the Hub for a kernel when it is imported (on AVX-512-BF16
    CPUs); with a Hub that accepts connections and never answers, that import hung the UI's
    background import. The studio turns that fetch off, so no connection is made at all."""
    code = "import studio.train, bitsandbytes, peft; print('imported')"
    with hung_hub() as (endpoint, connections):
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=300)
        assert connections == []
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]
    assert "kernels-community" not in done.stderr  # no misleading "pip install kernels" warning
