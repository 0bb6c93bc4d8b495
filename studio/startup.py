"""Start-up: the UI's background import of the training stack, and the garbage collector of a
process that trains one run (`studio train`).

The UI imports transformers, TRL and PEFT in a thread while it starts (`warm_up`), so the first
Start is quick. transformers 5's lazy module is not safe to import from two threads at once (a
second thread gets `ImportError: cannot import name 'AutoConfig' from 'transformers'`), so every
backend entry that touches transformers from a request's thread waits for it first
(`wait_for_warm_up`: the model check, the parameter count, the tokenizer and the model loaders
of Evaluate and Chat). After the warm-up it costs nothing; without one (`studio train`) neither.

Importing torch, transformers, datasets, peft and trl creates about 450,000 objects that live as
long as the process. CPython's cyclic collector walks all of them on every full collection:
while they import (about 0.2 s of collections even with a raised threshold), and once more when
training begins, because accelerate's `free_memory()` at the start of `Trainer.train` calls
`gc.collect()` (0.24 s on the 135M benchmark model, measured with cProfile).

So a one-run command pauses the collector before the libraries import (`pause_collector`), and
the training code calls `imports_settled()` once they are in, before the model loads: everything
alive then is moved to the permanent generation (`gc.freeze`, made for this) and the collector
comes back on. Later collections walk only what the run itself creates, so the model, its
activations and the data are collected as before. What the freeze keeps is import-time garbage
(about 200 objects, measured). A process that serves many runs (the UI, the tests) never pauses,
and `imports_settled()` does nothing there.
"""

from __future__ import annotations

import gc
import threading

_paused = False
_warm_up: threading.Thread | None = None


def warm_up() -> None:
    """Import the training stack in the background so the first Start is quick."""
    global _warm_up
    _warm_up = threading.Thread(target=lambda: __import__("studio.train"), name="warm-up", daemon=True)
    _warm_up.start()


def wait_for_warm_up() -> None:
    """Return once the background import (if any) is done; before touching transformers."""
    if _warm_up is not None and _warm_up is not threading.current_thread():
        _warm_up.join()


def pause_collector() -> None:
    """No cyclic collection until `imports_settled()`: for a process that trains one run."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def imports_settled() -> None:
    """The libraries are imported: freeze what exists and turn the collector back on, if
    `pause_collector` turned it off (otherwise nothing happens)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
