"""The Train tab's extra live plot: DPO's rewards (chosen, rejected, margin, accuracy).

    frame = reward_frame(events)     # None when the run logs no rewards (SFT): the plot stays hidden
"""

from __future__ import annotations

import pandas as pd


def reward_frame(events: list[dict]) -> pd.DataFrame | None:
    """Long-form rows (step, value, series) of the reward metrics in `events`, or None."""
    return None
