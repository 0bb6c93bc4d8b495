"""The Data tab's session: one per browser tab, shared by all of the tab's handlers.

Gradio gives each event the state as it was when the event was sent and keeps whatever the
event returns. Left at that, a slow step overwrote what the user did while it ran. The quality
report that follows every load could undo the page they had turned to. The demo set loaded when
the page opens could replace a file uploaded meanwhile.

So each handler works on a snapshot and commits onto the state as it is *now*:

    snap = session.begin()                  # a ticket, and the state at this moment
    new = compute(snap.state, ...)          # slow work, no lock held
    state = session.commit(snap, new)       # None: dropped, a newer dataset is on the page

A step that reads (or re-reads) the dataset replaces the state, unless a step that started
later already put its own dataset there. Any other step (a page, an example, the quality report,
a prepare, a save) only writes the keys it changed, notes per section, and only while the dataset
it computed on is still the one loaded. No Gradio here; the rules are tested alone.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    ticket: int  # the order in which steps started
    state: dict


class DataSession:
    """The tab's state dict behind a lock, plus what the drawing remembers between steps."""

    def __init__(self, state: dict):
        self.state = state
        self.plot_key = None  # the histogram last sent (a plot is redrawn only when it changed)
        self._lock = threading.Lock()
        self._started = 0
        self._dataset_ticket = 0  # the ticket of the step whose dataset is loaded

    def __deepcopy__(self, memo):
        # gr.State copies its initial value for every new browser session: a fresh lock each.
        return DataSession(copy.deepcopy(self.state, memo))

    def begin(self) -> Snapshot:
        with self._lock:
            self._started += 1
            return Snapshot(self._started, self.state)

    def commit(self, snap: Snapshot, new: dict) -> dict | None:
        """Put a step's result on the session; the state now, or None if it came too late."""
        with self._lock:
            old, now = snap.state, self.state
            if new.get("loaded") is not old.get("loaded"):  # this step loaded or re-read the data
                if snap.ticket < self._dataset_ticket:
                    return None  # a step that started later put its dataset here first
                self._dataset_ticket = snap.ticket
                self.state = new
                return new
            if now.get("loaded") is not old.get("loaded"):
                return None  # computed for a dataset that has since been replaced
            merged = dict(now)
            for key, value in new.items():
                if key != "notes" and value is not old.get(key):
                    merged[key] = value
            notes = dict(now.get("notes", {}))
            new_notes, old_notes = new.get("notes", {}), old.get("notes", {})
            for section in set(new_notes) | set(old_notes):
                if section not in new_notes:
                    notes.pop(section, None)  # the step cleared its note
                elif new_notes[section] is not old_notes.get(section):
                    notes[section] = new_notes[section]
            merged["notes"] = notes
            self.state = merged
            return merged
