"""Pure rendering helpers of the Train tab (no server needed)."""

from studio.ui.train_tab import frames, render_status, result_text


def test_frames_split_train_and_eval_loss():
    loss, lr = frames([
        {"step": 1, "loss": 2.0, "eval_loss": None, "learning_rate": 1e-3},
        {"step": 1, "loss": None, "eval_loss": 2.5, "learning_rate": None},
        {"step": 2, "loss": "nan", "eval_loss": None, "learning_rate": 5e-4},
    ])
    assert loss.to_dict("records") == [{"step": 1, "value": 2.0, "series": "train loss"},
                                       {"step": 1, "value": 2.5, "series": "eval loss"}]
    assert lr["learning_rate"].tolist() == [1e-3, 5e-4]
    assert frames([]) == (None, None)


def test_eval_series_exists_before_the_first_eval():
    loss, _ = frames([{"step": 1, "loss": 2.0, "eval_loss": None, "learning_rate": 1e-3}])
    assert set(loss["series"]) == {"train loss", "eval loss"}
    assert loss[loss.series == "eval loss"]["value"].isna().all()


def test_status_card_shows_phase_progress_and_errors():
    progress = {"state": "running", "phase": "training", "message": "", "step": 5, "total_steps": 20,
                "epoch": 0.5, "fraction": 0.25, "elapsed_s": 10, "eta_s": 30, "output": None}
    html = render_status(progress)
    assert "Training" in html and "step 5/20" in html and "ETA 0:30" in html and "width:25%" in html
    assert "Could not start" in render_status(None, "Batch size must be at least 1; got 0.")
    assert "<script>" not in render_status(None, "<script>")
    done = dict(progress, state="completed", phase="completed", output="/x/adapter")
    assert "/x/adapter" in result_text(done) and "Evaluate" in result_text(done)
