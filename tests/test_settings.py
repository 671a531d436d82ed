"""SelectionSettings: the one place selection options are declared and validated."""

import pytest
import torch

from ibprune_lib.harness.grid import Cell
from ibprune_lib.pruning import get_criterion, prune
from ibprune_lib.selection import select
from ibprune_lib.settings import PRESETS, SETTING_NAMES, SelectionSettings, preset_settings


@pytest.mark.parametrize("changes, message", [
    ({"kernel": "rbf"}, "unknown kernel 'rbf': choose one of"),
    ({"direction": "diagonal"}, "unknown direction 'diagonal': choose one of rows, columns"),
    ({"linkage": "centroid-ish"}, "unknown linkage 'centroid-ish'"),
    ({"tree_prox": "approximate"}, "unknown tree_prox 'approximate': choose one of exact, smoothed"),
    ({"solver": "admm"}, "unknown solver 'admm'"),
    ({"threshold": 1.5}, "threshold must be a number in [0, 1], got 1.5"),
    ({"knn": 0}, "knn must be an int >= 1 or None, got 0"),
    ({"gamma_graph": -1.0}, "gamma_graph must be a number >= 0"),
    ({"max_solves": 2.5}, "max_solves must be an int >= 1"),
    ({"tol": 0}, "tol must be a number > 0"),
    ({"normalise": "yes"}, "normalise must be True or False"),
    ({"dtype": torch.int64}, "dtype must be a floating torch dtype"),
    ({"tau": 0.7}, "unknown selection setting 'tau': choose from kernel, direction"),
])
def test_a_bad_setting_raises_in_one_place_whoever_passes_it(changes, message):
    """The same one-line error from the settings, from select, from a criterion, from prune and from a cell."""
    features = torch.randn(8, 4, 3, 3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    callers = [
        lambda: SelectionSettings().replace(**changes),
        lambda: select(features, features, 2, method="stlp", **changes),
        lambda: get_criterion("sglp", **changes),
        lambda: get_criterion("l1", **changes),  # a baseline ignores the settings but is not given bad ones
        lambda: prune(model, torch.randn(4, 3, 8, 8), method="stlp", target_flops=0.5, skip_first=0, **changes),
        lambda: Cell("resnet56", weights="w.th", method="sglp", target_flops=0.5,
                     options=tuple(changes.items())).check(),
    ]
    for call in callers:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            call()


def test_settings_say_what_they_change_and_presets_are_settings():
    assert SelectionSettings().changes() == {} and SelectionSettings().record() == {"kernel": "laplacian"}
    tuned = preset_settings("tuned", "stlp")
    assert tuned == PRESETS["tuned"]["stlp"] and tuned.changes() == {"kernel": "gaussian", "normalise": False}
    assert preset_settings("tuned", "sglp") == SelectionSettings()  # a method the preset does not name
    assert preset_settings("tuned", "stlp", kernel=None, threshold=0.5).changes() == {
        "kernel": "gaussian", "normalise": False, "threshold": 0.5}  # None: the preset's
    assert SelectionSettings(dtype=torch.float64).record() == {"kernel": "laplacian", "dtype": "torch.float64"}
    assert SETTING_NAMES[:3] == ("kernel", "direction", "use_gram")
    with pytest.raises(ValueError, match="unknown preset 'best': choose one of paper, tuned"):
        preset_settings("best", "stlp")


@pytest.mark.slow
def test_select_takes_the_settings_or_their_names_alike():
    torch.manual_seed(0)
    inputs, outputs = torch.randn(16, 6, 4, 4), torch.randn(16, 5, 4, 4)
    by_object = select(inputs, outputs, 3, method="sglp", settings=SelectionSettings(kernel="gaussian", threshold=0.3))
    by_name = select(inputs, outputs, 3, method="sglp", kernel="gaussian", threshold=0.3)
    assert torch.equal(by_object.kept, by_name.kept) and by_object.diagnostics["kernel"] == "gaussian"
