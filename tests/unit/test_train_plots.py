"""reward_frame: DPO's reward events as one long-form frame for the Train tab's reward plot."""

import math

from studio.ui.train_plots import reward_frame


def event(step, **values):
    base = {"step": step, "loss": 0.6, "eval_loss": None, "rewards_chosen": None, "rewards_rejected": None,
            "reward_margin": None, "reward_accuracy": None}
    return base | values


def test_sft_events_give_no_frame():
    assert reward_frame([]) is None
    assert reward_frame([event(1), event(2, loss=None, eval_loss=0.5)]) is None


def test_rewards_become_long_form_rows_with_readable_series():
    events = [event(1, rewards_chosen=0.2, rewards_rejected=-0.1, reward_margin=0.3, reward_accuracy=0.75),
              event(2, rewards_chosen=0.5, rewards_rejected=-0.4, reward_margin=0.9, reward_accuracy=1.0),
              event(2, loss=None, eval_loss=0.4, eval_reward_margin=0.8)]
    frame = reward_frame(events, "en")
    assert list(frame.columns) == ["step", "value", "series"]
    assert set(frame["series"]) == {"reward margin", "reward accuracy", "chosen reward", "rejected reward"}
    margin = frame[frame["series"] == "reward margin"]
    assert list(margin["step"]) == [1, 2] and list(margin["value"]) == [0.3, 0.9]
    assert len(frame) == 8  # eval_ rewards are not mixed into the training series


def test_missing_series_get_a_nan_placeholder_at_the_first_step():
    frame = reward_frame([event(3, reward_margin=0.1), event(4, reward_margin=0.2)], "en")
    assert set(frame["series"]) == {"reward margin", "reward accuracy", "chosen reward", "rejected reward"}
    placeholders = frame[frame["series"] != "reward margin"]
    assert list(placeholders["step"]) == [3, 3, 3]
    assert all(math.isnan(v) for v in placeholders["value"])


def test_nan_rewards_are_kept_as_they_are_and_series_are_translated():
    frame = reward_frame([event(1, reward_margin=float("nan"), reward_accuracy=0.5, rewards_chosen=1.0,
                                rewards_rejected=float("inf"))], "zh")
    assert "奖励差值" in set(frame["series"])
    assert math.isinf(frame[frame["series"] == "拒绝回答的奖励"]["value"].iloc[0])
