"""studio.prefetch: the read-ahead list `studio train` keeps, and what it asks the kernel to read."""

import os
import sys

import pytest

from studio import prefetch
from studio.config import StudioConfig
from studio.paths import DEMO_DATA, DEMO_MODEL

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")


@pytest.fixture
def asked(monkeypatch):
    """The paths handed to posix_fadvise(WILLNEED), in order."""
    seen = []

    def fadvise(fd, offset, length, advice):
        assert (offset, length, advice) == (0, 0, os.POSIX_FADV_WILLNEED)
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    return seen


def test_the_list_is_this_process_s_modules_and_libraries_in_import_order(tmp_path):
    path = tmp_path / "list.txt"
    prefetch.record(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == prefetch.HEADER
    files = prefetch.recorded(path)
    assert files == lines[1:]
    assert prefetch.__spec__.cached in files or prefetch.__file__ in files
    assert sys.modules["json"].__spec__.cached in files
    # import order: json (stdlib, imported before pytest ran anything) comes before studio.prefetch
    mine = prefetch.__spec__.cached if prefetch.__spec__.cached in files else prefetch.__file__
    assert files.index(sys.modules["json"].__spec__.cached) < files.index(mine)
    if sys.platform == "linux":  # shared libraries (libc, libpython, …) first: the first import needs them
        libc = next(f for f in files if "/libc.so" in f or "/libc-" in f)
        assert files.index(libc) < files.index(sys.modules["json"].__spec__.cached)


def test_an_unchanged_list_is_not_rewritten(tmp_path):
    path = tmp_path / "list.txt"
    prefetch.record(path)
    os.utime(path, (1, 1))
    prefetch.record(path)
    assert path.stat().st_mtime == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_a_list_that_is_not_ours_is_ignored(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("/etc/passwd\n/etc/hostname\n")
    assert prefetch.recorded(path) == []
    path.write_bytes(b"\xff\xfe")
    assert prefetch.recorded(path) == []
    assert prefetch.recorded(tmp_path / "missing.txt") == []
    path.write_text(f"{prefetch.HEADER}\n/etc/hostname\nrelative/path\n\n")
    assert prefetch.recorded(path) == ["/etc/hostname"]


def test_only_regular_files_are_read_ahead_and_a_fifo_does_not_block(tmp_path, asked):
    regular = tmp_path / "weights.safetensors"
    regular.write_bytes(b"x" * 10)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would wait for a writer forever
    paths = [str(fifo), str(tmp_path / "missing"), str(tmp_path), str(regular)]
    assert prefetch.read_ahead(paths) == 1
    assert asked == [str(regular)]


def test_a_run_reads_ahead_its_data_then_its_model_files(tmp_path):
    cfg = StudioConfig()
    cfg.model.path, cfg.data.path = "demo", "demo-en"
    files = prefetch.run_files(cfg)
    assert files[0] == str(DEMO_DATA["demo-en"])
    assert str(DEMO_MODEL / "config.json") in files
    assert any(f.endswith(".safetensors") for f in files)
    folder = tmp_path / "model"
    (folder / "checkpoint-1").mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "notes.md", "pytorch_model.bin"):
        (folder / name).write_text("x")
    assert [os.path.basename(f) for f in prefetch.model_files(str(folder))] == [
        "config.json", "model.safetensors", "tokenizer.json"]
    assert prefetch.model_files("HuggingFaceTB/SmolLM2-135M") == []  # a Hub id: nothing local to read


def test_start_reads_the_list_then_the_run_s_files(tmp_path, monkeypatch, asked):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    library = tmp_path / "lib.so"
    library.write_bytes(b"\x7fELF")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"w")
    prefetch.list_path().parent.mkdir(parents=True)
    prefetch.list_path().write_text(f"{prefetch.HEADER}\n{library}\n")
    assert prefetch.list_path().is_relative_to(tmp_path / "finetune-studio")
    prefetch.start(str(weights)).join(30)
    assert asked == [str(library), str(weights)]
