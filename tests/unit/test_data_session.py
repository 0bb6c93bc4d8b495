"""The Data tab's session: a slow step cannot undo what the user did while it ran."""

import copy

from studio.ui.data_session import DataSession


def state(loaded=None, **changes):
    return {"loaded": loaded, "page": 0, "example": 1, "report": None, "prepared": None, "saved": "",
            "notes": {}, **changes}


def test_a_load_that_started_first_and_ended_last_does_not_replace_a_newer_upload():
    session = DataSession(state())
    opening = session.begin()  # the demo set read when the page opens
    upload = session.begin()  # the user's file, sent while the demo is still being read
    assert session.commit(upload, state("upload"))["loaded"] == "upload"
    assert session.commit(opening, state("demo")) is None
    assert session.state["loaded"] == "upload"


def test_two_loads_in_a_row_keep_the_later_one_whichever_ends_first():
    session = DataSession(state())
    first, second = session.begin(), session.begin()
    session.commit(first, state("a"))
    session.commit(second, state("b"))
    assert session.state["loaded"] == "b"


def test_a_slow_report_lands_on_top_of_what_the_user_did_meanwhile():
    session = DataSession(state("data"))
    report_step = session.begin()
    page_step = session.begin()
    session.commit(page_step, {**page_step.state, "page": 3})
    example_step = session.begin()
    session.commit(example_step, {**example_step.state, "example": 7, "notes": {"example": "a note"}})
    now = session.commit(report_step, {**report_step.state, "report": {"rows": 5}, "notes": {"quality": "late"}})
    assert (now["page"], now["example"], now["report"]) == (3, 7, {"rows": 5})
    assert now["notes"] == {"example": "a note", "quality": "late"}  # notes merge per section


def test_a_step_clears_its_own_note_and_no_other():
    session = DataSession(state("data", notes={"prepare": "bad shares", "save": "no name"}))
    snap = session.begin()
    now = session.commit(snap, {**snap.state, "prepared": "split", "notes": {"save": "no name"}})
    assert now["notes"] == {"save": "no name"} and now["prepared"] == "split"


def test_a_result_for_a_dataset_that_was_replaced_is_dropped():
    session = DataSession(state("old"))
    report_step = session.begin()
    remap = session.begin()
    session.commit(remap, {**remap.state, "loaded": "old, remapped"})
    assert session.commit(report_step, {**report_step.state, "report": {"rows": 1}}) is None
    assert session.state == state("old, remapped")


def test_every_browser_tab_gets_its_own_session():
    first = DataSession(state())
    second = copy.deepcopy(first)  # what gr.State does for each new browser session
    second.commit(second.begin(), state("mine"))
    assert first.state["loaded"] is None and second.state["loaded"] == "mine"
    assert second._lock is not first._lock
