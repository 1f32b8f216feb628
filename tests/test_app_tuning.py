"""The fine-tuning toolkit's views (issue 14), one short AppTest each on a toy dataset and records written without
training: the Train page's LR finder and fine-tuning columns, and on Results the sweeps, the side-by-side comparison
and "Where it errs"."""

from __future__ import annotations

from faultkit import model_run, page, recorded_run, toy_folder
from test_app import edit_stage, texts

from core import datasets


def test_train_lr_finder_plots_the_curve_and_writes_its_suggestion_into_the_table(empty_roots):
    datasets.import_dataset(toy_folder(empty_roots / "src"), name="toy")
    at = page("pages/train.py")
    edit_stage(at, "stages_custom", input_size=32, batch_size=8, schedule="cosine", warmup_epochs=1.0,
               weight_decay=0.01, lr_mult=0.5)
    assert not at.error, texts(at.error)
    at.number_input(key="lr_steps").set_value(20)
    at.button(key="lr_find").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Suggested" in texts(at.caption) and at.get("plotly_chart")
    use = at.button(key="lr_use")
    rate = float(use.label.removeprefix("Use "))
    assert 1e-7 <= rate <= 10
    use.click().run()
    assert not at.exception
    frame = at.session_state["stage_frame_custom"]
    assert frame.loc[0, "learning_rate"] == rate and frame.loc[0, "input_size"] == 32, "other edits are kept"
    assert (frame.loc[0, "schedule"], frame.loc[0, "warmup_epochs"], frame.loc[0, "weight_decay"],
            frame.loc[0, "lr_mult"]) == ("cosine", 1.0, 0.01, 0.5)
    assert f"trains at {use.label.removeprefix('Use ')}" in texts(at.caption)
