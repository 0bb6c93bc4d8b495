"""Read-ahead for `studio train`: the files it is about to read, fetched while Python imports.

Before its first step, `studio train` imports torch, transformers, peft, trl and datasets (about
3,300 files and 700 MB of shared libraries, read one at a time as Python asks for them), then
reads the data and the model's weights. When those files are in the page cache this takes about
4 s on the benchmark host (2 cores, 135M model); when they are not (the first run after a reboot,
or after other programs pushed them out) it took 6.7-7.9 s (after `drop_caches`).

So the command hands the kernel the list of those files as it starts (`posix_fadvise(WILLNEED)`,
which queues their reading and returns), from a thread of its own: the disk works while the
interpreter imports, and on the same host the cold start took 6.2-6.8 s (3 alternating pairs).
In the page cache already, it costs a few hundredths of a second of that thread.

Which library files a run reads is learnt from the previous run: at its end, `studio train`
writes the files of its loaded modules and shared libraries, in the order they were imported, to
a list kept per Python environment in the user's cache folder (`record`). The first run on a
machine has no list and reads only its data and model ahead. A list is only ever read as paths
of regular files to read ahead: nothing in it is run or loaded.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import threading
from pathlib import Path

HEADER = "# finetune-studio read-ahead list v1"
# A model folder's files worth reading ahead: weights, configuration and tokenizer.
MODEL_SUFFIXES = (".safetensors", ".json", ".model", ".txt", ".jinja", ".tiktoken")


def list_path() -> Path | None:
    """This Python environment's list: $XDG_CACHE_HOME (else ~/.cache)/finetune-studio/; None
    where the user has no home folder (no $HOME and no passwd entry): then no list is kept."""
    try:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:
        return None
    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]  # each environment has its own files
    return Path(cache) / "finetune-studio" / f"read-ahead-{tag}.txt"


def loaded_files() -> list[str]:
    """The shared libraries this process mapped, then its modules' files in import order."""
    libraries: dict[str, None] = {}  # ordered and unique: each library is mapped several times
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            name = line.split(maxsplit=5)[5:]  # address, perms, offset, dev, inode, [path]
            if name and ".so" in name[0] and name[0].startswith("/"):
                libraries[name[0]] = None
    except OSError:  # not Linux
        pass
    modules: list[str] = []
    for module in list(sys.modules.values()):  # insertion order: the order they were imported in
        spec = getattr(module, "__spec__", None)
        # A module's bytecode is what import reads when it is there; its source otherwise.
        path = getattr(spec, "cached", None) or getattr(module, "__file__", None)
        if isinstance(path, str) and path.startswith("/"):
            modules.append(path)
    known = set(modules)
    return [path for path in libraries if path not in known] + modules


def record(path: Path | None = None) -> None:
    """Write this process's loaded files as the next run's list (only when they changed)."""
    if not hasattr(os, "posix_fadvise"):  # nothing would ever read it (macOS, Windows)
        return
    path = path or list_path()
    if path is None:
        return
    text = "\n".join([HEADER, *loaded_files()]) + "\n"
    try:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # a reader sees the old list or the new one, never half of one
    except OSError:  # a read-only home or a full disk: the next start is only slower
        pass


def recorded(path: Path | None = None) -> list[str]:
    """The paths in the list, or none when there is no list (or not one of ours)."""
    path = path or list_path()
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [line for line in lines[1:] if line.startswith("/")] if lines[:1] == [HEADER] else []


def model_files(model_path: str) -> list[str]:
    """A local model folder's weights, configuration and tokenizer files (a Hub id: none)."""
    folder = Path(model_path)
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES)


def run_files(cfg) -> list[str]:
    """The files a run reads first: its data file, then its model folder's files."""
    from studio.paths import resolve_data_path, resolve_model_path

    data = resolve_data_path(cfg.data.path)
    return ([data] if os.path.isfile(data) else []) + model_files(resolve_model_path(cfg.model.path))


def read_ahead(paths: list[str]) -> int:
    """Ask the kernel to read each regular file into the page cache; returns how many it was asked.

    Opened without blocking (a FIFO in a list would otherwise wait for a writer) and never read
    here: the kernel reads them in the background."""
    asked = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                asked += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return asked


def start(*paths: str) -> threading.Thread | None:
    """Read ahead the recorded library files, then `paths` (data, model files), in a daemon
    thread; None where the platform has no posix_fadvise (macOS, Windows)."""
    if not hasattr(os, "posix_fadvise"):
        return None
    thread = threading.Thread(target=lambda: read_ahead(recorded() + list(paths)), name="read-ahead", daemon=True)
    thread.start()
    return thread
