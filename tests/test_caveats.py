"""core.caveats: how a group of runs was trained, and whether its numbers are results (pure, no files)."""

from core import caveats


def member(**kw):
    return {"preset": "paper-b-scratch-vs-transfer", "pipeline": "scratch", "stage_index": 0, "epochs": 30,
            "limit_per_class": None, "n_train": 300, "n_classes": 3, "target_accuracy": 0.99,
            "test_accuracy": 0.95, **kw}


def test_a_full_group_has_no_warning_and_says_how_it_was_trained():
    context = caveats.group_context([member(), member()])
    assert context["warnings"] == []
    assert caveats.describe(context) == "30 epochs · 100 images per class · target 0.99"
    assert caveats.target_text(context["target"], 0, 10) == "target 0.99: reached by 0 of 10"


def test_shortened_limited_and_near_chance_groups_are_named():
    context = caveats.group_context([member(epochs=2, limit_per_class=10, test_accuracy=0.36)])
    assert [w.split(":")[0] for w in context["warnings"]] == ["shortened", "shortened", "near chance"]
    assert "the preset asks for 30" in context["warnings"][0]


def test_a_custom_pipeline_is_not_called_shortened():
    assert caveats.group_context([member(preset=None, epochs=1)])["warnings"] == []
