"""Network-wide allocation: one threshold on the criterion's normalised scores sets the widths and meets the budget."""

import numpy as np
import pytest
import torch

from ibprune_lib.errors import OptionError
from ibprune_lib.models import get_model
from ibprune_lib.pruning import prune
from ibprune_lib.pruning.allocation import counts_at, normalised_scores


def test_one_threshold_keeps_the_channels_scoring_above_it_and_at_least_each_floor():
    scores = [normalised_scores(torch.tensor([4.0, 2.0, 1.0, 0.0])), normalised_scores(torch.tensor([9.0, 8.0]))]
    assert scores[0].tolist() == [1.0, 0.5, 0.25, 0.0] and scores[1].max() == 1
    assert counts_at(0.4, scores, np.array([1, 1])).tolist() == [2, 2]
    assert counts_at(0.95, scores, np.array([3, 1])).tolist() == [3, 1]  # the floor wins where few score high
    assert normalised_scores(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]


def test_global_allocation_meets_the_budget_with_uneven_widths_and_keeps_each_layers_best_channels():
    torch.manual_seed(0)
    model = get_model("resnet20").eval()
    conv = model.layer3[0].conv1
    with torch.no_grad():  # one layer's filters all of one L1 norm: every one scores 1, the threshold keeps them all
        conv.weight.div_(conv.weight.abs().sum((1, 2, 3), keepdim=True))
    images = torch.randn(16, 3, 32, 32)
    uniform = prune(model, images, method="l1", target_flops=0.6, skip_first=0, progress=False)
    result = prune(model, images, method="l1", target_flops=0.6, skip_first=0, allocation="global", progress=False)
    assert abs(result.report["totals"]["macs_ratio"] - 0.6) <= 0.006
    layers = {layer["name"]: layer for layer in result.report["layers"]}
    kept_share = {name: layer["kept"] / layer["channels"] for name, layer in layers.items()}
    assert kept_share["layer3.0.conv1"] == 1.0 > min(kept_share.values())
    assert all(layer["kept"] >= np.ceil(0.1 * layer["channels"]) for layer in layers.values())
    assert [layer["kept"] for layer in uniform.report["layers"]] != [layer["kept"] for layer in layers.values()]
    name = min(kept_share, key=kept_share.get)  # the most pruned layer keeps its largest filters
    weights = model.get_submodule(name).weight.abs().sum((1, 2, 3))
    top = torch.argsort(weights, descending=True)[: layers[name]["kept"]]
    assert sorted(top.tolist()) == layers[name]["kept_indices"]
    assert result.report["allocation"]["rule"] == "global" and 0 < result.report["allocation"]["threshold"] < 1


def test_global_allocation_refuses_what_it_cannot_combine_in_one_line():
    model, images = get_model("resnet20").eval(), torch.randn(8, 3, 32, 32)
    for options, message in [({"allocation": "greedy"}, "unknown allocation 'greedy'"),
                             ({"allocation": "global", "widths": "itpruner"}, "allocation='global' sets the widths"),
                             ({"allocation": "global", "round_to": 8}, "allocation='global' sets the widths")]:
        with pytest.raises(OptionError, match=message):
            prune(model, images, method="l1", target_flops=0.6, progress=False, **options)
