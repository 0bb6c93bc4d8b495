"""The arena's votes, sides, win rates and Bradley–Terry ratings; prompts for batch mode; chat
settings and stop sequences (no model needed)."""

import json
import random

import pytest

from studio.arena import VoteStore, assign_sides, bradley_terry, pair_summary, prompts_from, win_rates
from studio.errors import UserError
from studio.infer import ChatSettings, _held_back, _stop_at


def vote(store, a, b, winner, **extra):
    return store.add(a=a, b=b, winner=winner, left=extra.pop("left", "a"), prompt=extra.pop("prompt", "p"),
                     answer_a="x", answer_b="y", settings={"max_new_tokens": 8}, **extra)


def test_votes_persist_across_a_new_store_and_win_rates_count_them(tmp_path):
    store = VoteStore(tmp_path)
    vote(store, "run:a", "demo", "a", prompt="<script>alert(1)</script>")
    vote(store, "run:a", "demo", "b")
    vote(store, "demo", "run:a", "b", left="b")  # the same pair the other way round
    vote(store, "run:a", "demo", "tie")
    vote(store, "run:a", "run:b", "both_bad")
    again = VoteStore(tmp_path)  # an app restart: everything is read back from the file
    votes = again.all()
    assert len(votes) == 5 and votes[0]["prompt"] == "<script>alert(1)</script>"
    assert set(votes[0]) >= {"t", "a", "b", "left", "winner", "prompt", "answer_a", "answer_b", "settings"}
    assert (tmp_path / "arena" / "votes.jsonl").is_file()
    rows = win_rates(votes)
    assert rows[0] == {"a": "run:a", "b": "demo", "votes": 4, "a_wins": 2, "b_wins": 1, "ties": 1,
                       "both_bad": 0, "a_rate": 0.5, "b_rate": 0.25}
    assert rows[1]["votes"] == 1 and rows[1]["both_bad"] == 1
    flipped = pair_summary(votes, "demo", "run:a")
    assert (flipped["a_wins"], flipped["b_wins"], flipped["votes"]) == (1, 2, 4)
    assert pair_summary(votes, "demo", "run:zzz") is None


def test_torn_and_damaged_lines_are_skipped(tmp_path):
    store = VoteStore(tmp_path)
    vote(store, "a", "b", "a")
    with open(store.path, "a", encoding="utf-8") as fh:
        fh.write('{"t": 1, "a": "a", "b": "b", "winner": "a"}\nnot json\n{"a": "a", "b": "b", "winner": "x"}\n'
                 '{"t": 2, "a": "a", "b": "b", "win')  # a crash mid-write
    vote(store, "a", "b", "b")  # starts on a fresh line, not glued to the torn one
    votes = VoteStore(tmp_path).all()
    assert [v["winner"] for v in votes] == ["a", "a", "b"]


@pytest.mark.parametrize("bad", [dict(winner="maybe"), dict(left="middle"), dict(b="a")])
def test_bad_votes_are_refused(tmp_path, bad):
    fields = {"a": "a", "b": "b", "winner": "a", "left": "a", **bad}
    with pytest.raises(UserError):
        VoteStore(tmp_path).add(**fields)
    assert VoteStore(tmp_path).all() == []


def test_side_assignment_is_balanced_over_many_prompts():
    rng = random.Random(1234)
    sides = [assign_sides(rng) for _ in range(1000)]
    assert set(sides) == {"a", "b"}
    assert 450 <= sides.count("a") <= 550
    # and not a simple alternation: runs of the same side happen
    assert any(sides[i] == sides[i + 1] == sides[i + 2] for i in range(len(sides) - 2))


def test_bradley_terry_orders_models_when_one_always_wins():
    rng = random.Random(0)
    votes = []
    strength = {"strong": 3, "middle": 2, "weak": 1}
    models = list(strength)
    for _ in range(300):
        a, b = rng.sample(models, 2)
        winner = "a" if strength[a] > strength[b] else "b"  # the stronger one always wins
        votes.append({"a": a, "b": b, "winner": winner})
    ratings = bradley_terry(votes, bootstrap=100, seed=0)
    assert list(ratings) == ["strong", "middle", "weak"]
    for rating, low, high in ratings.values():
        assert low <= rating <= high
    assert ratings["strong"][1] > ratings["middle"][2]  # intervals apart: a real difference
    assert ratings["middle"][1] > ratings["weak"][2]
    assert bradley_terry(votes, bootstrap=100, seed=0) == ratings  # repeatable by seed


def test_bradley_terry_ties_and_noise():
    votes = [{"a": "x", "b": "y", "winner": w} for w in ["a", "b", "tie", "both_bad"] * 10]
    ratings = bradley_terry(votes, bootstrap=50)
    (rx, lx, hx), (ry, _, _) = ratings["x"], ratings["y"]
    assert abs(rx - ry) < 1e-6 and abs(rx - 1000) < 1e-6  # even: same rating
    assert lx < rx < hx and lx < ry < hx  # noise: the intervals overlap
    assert bradley_terry([]) == {}
    # Elo scale: winning 10 of 11 (plus the prior) is near 400 points apart
    lopsided = [{"a": "p", "b": "q", "winner": "a"}] * 40 + [{"a": "p", "b": "q", "winner": "b"}] * 4
    r = bradley_terry(lopsided, bootstrap=0)
    assert 300 < r["p"][0] - r["q"][0] < 420


def test_prompts_from_text_files_and_runs(tmp_path):
    assert prompts_from("one\n\n  two  \n") == ["one", "two"]
    with pytest.raises(UserError, match="no prompts"):
        prompts_from("  \n\n")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [
        {"instruction": "Add", "input": "2 and 3", "output": "5"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        {"prompt": "Why?", "completion": "Because."}]), encoding="utf-8")
    assert prompts_from(jsonl) == ["Add\n\n2 and 3", "Hi", "Why?"]
    txt = tmp_path / "p.txt"
    txt.write_text("first\nsecond\n", encoding="utf-8")
    assert prompts_from(txt) == ["first", "second"]
    empty = tmp_path / "e.jsonl"
    empty.write_text(json.dumps({"output": "no question"}) + "\n", encoding="utf-8")
    with pytest.raises(UserError):
        prompts_from(empty)

    from studio.config import StudioConfig
    from studio.runs import RunStore

    run = RunStore(tmp_path / "home").create(StudioConfig())
    with pytest.raises(UserError, match="test split"):
        prompts_from(run)
    (run.path / "data").mkdir()
    (run.path / "data" / "test.jsonl").write_text(json.dumps(
        {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q1"}],
         "completion": [{"role": "assistant", "content": "A"}]}) + "\n", encoding="utf-8")
    assert prompts_from(run) == ["Q1"]


def test_chat_settings_are_checked():
    assert ChatSettings().generate_kwargs()["do_sample"] is False
    sampled = ChatSettings(temperature=0.7, top_p=0.9, top_k=20, stop="###").generate_kwargs()
    assert sampled["do_sample"] and sampled["top_k"] == 20
    assert ChatSettings(stop="###").stop == ("###",)
    assert ChatSettings(seed="7").seed == 7 and ChatSettings(seed=2**32 - 1).seed == 2**32 - 1
    for bad in (dict(max_new_tokens=0), dict(temperature=-1), dict(top_p=0), dict(top_k=-1),
                dict(repetition_penalty=0), dict(max_new_tokens="many"), dict(seed=-1), dict(seed=2**64 + 1)):
        with pytest.raises(UserError):
            ChatSettings(**bad)


def test_stop_sequences_are_found_and_held_back():
    assert _stop_at("hello ### world", ("###",)) == 6
    assert _stop_at("hello", ("###",)) is None
    assert _held_back("hello #", ("###",)) == 1
    assert _held_back("hello ##", ("###", "##!")) == 2
    assert _held_back("hello", ("###",)) == 0


def test_batch_schedule_and_model_choices(tmp_path):
    from studio.arena import model_choices, schedule
    from studio.config import StudioConfig
    from studio.runs import RunStore

    matches = schedule(["p1", "p2", "p3", "p4"] * 50, "run:x", "demo", random.Random(7))
    assert {m["left"] for m in matches} == {"a", "b"}
    for m in matches:
        assert {m["left_model"], m["right_model"]} == {"run:x", "demo"}
        assert m["left_model"] == (m["a"] if m["left"] == "a" else m["b"])
    with pytest.raises(UserError):
        schedule(["p"], "demo", "demo", random.Random(0))
    store = RunStore(tmp_path / "home")
    assert [c[1] for c in model_choices(store)] == ["demo"]
    done = store.create(StudioConfig())
    (done.path / "adapter").mkdir()
    done.update_status(state="completed")
    store.create(StudioConfig()).update_status(state="failed")
    assert [c[1] for c in model_choices(store, "zh")] == ["demo", f"run:{done.id}"]
    assert model_choices(store, "zh")[0][0].startswith("基础模型")
