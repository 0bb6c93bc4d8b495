"""studio.startup: the collector pause of a one-run process, and that nothing else is touched."""

import gc

import pytest

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
