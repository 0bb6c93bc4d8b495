"""The Train tab's extra live plot: DPO's rewards (chosen, rejected, margin, accuracy).

    frame = reward_frame(events, lang)    # None when the run logs no rewards (SFT): the plot stays hidden

`events` are metrics.jsonl events (studio.recorder names DPO's `rewards/*` logs `rewards_chosen`,
`rewards_rejected`, `reward_margin`, `reward_accuracy`); the frame is long-form (step, value,
series) for one `gr.LinePlot(x="step", y="value", color="series")`.
"""

from __future__ import annotations

import pandas as pd

from studio.i18n import t

# Event key -> translation code of its series name, in the order the legend lists them.
REWARD_SERIES = {
    "reward_margin": "dpo.series_margin",
    "reward_accuracy": "dpo.series_accuracy",
    "rewards_chosen": "dpo.series_chosen",
    "rewards_rejected": "dpo.series_rejected",
}


def reward_frame(events: list[dict], lang: str | None = None) -> pd.DataFrame | None:
    """Long-form rows (step, value, series) of the reward metrics in `events`, or None."""
    names = {key: t(code, lang) for key, code in REWARD_SERIES.items()}
    rows = [{"step": e["step"], "value": float(e[key]), "series": names[key]}
            for e in events if isinstance(e.get("step"), (int, float))
            for key in REWARD_SERIES
            if isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool)]
    if not rows:
        return None
    # gradio 6.31's LinePlot fixes its colour series at the first draw: a series that first
    # appears later would never be drawn. A NaN placeholder (drawn as nothing) makes every
    # series known from the first point on (as train_tab.frames does for eval loss).
    present = {row["series"] for row in rows}
    rows += [{"step": rows[0]["step"], "value": float("nan"), "series": name}
             for name in names.values() if name not in present]
    return pd.DataFrame(rows, columns=["step", "value", "series"])
