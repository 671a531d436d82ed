import numpy as np
import pytest
import torch

from ibprune_lib.counting import count
from ibprune_lib.models import get_model
from ibprune_lib.pruning import count_model, keep_counts_for_target, prunable_layers, prune_channels
from ibprune_lib.pruning.budget import check_keep_counts, coupled_pairs, shared_ratio, sliced_copy, target_range


@pytest.fixture(scope="module")
def resnet56():
    model = get_model("resnet56").eval()
    layers = prunable_layers(model)
    return model, layers, count_model(model, layers)


@pytest.fixture(scope="module")
def vgg16():
    model = get_model("vgg16").eval()
    layers = prunable_layers(model)
    return model, layers, count_model(model, layers)


@pytest.mark.slow
def test_count_model_is_exact_at_random_keep_counts(vgg16):
    model, layers, counts = vgg16
    assert coupled_pairs(layers) == [(i, i + 1) for i in range(len(layers) - 1)]  # VGG's chained convs
    assert counts.full == {"params": count(model).params, "macs": count(model).macs}
    generator = np.random.default_rng(0)
    keep = [int(generator.integers(1, layer.channels + 1)) for layer in layers]
    real = count(sliced_copy(model, layers, keep))
    assert (round(counts(keep, "macs")), round(counts(keep, "params"))) == (real.macs, real.params)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["resnet56", "vgg16"])
@pytest.mark.parametrize("metric", ["macs", "params"])
@pytest.mark.parametrize("target", [0.5, 0.7, (0.6, 0.62)])
def test_targets_are_met_within_one_percent_on_the_real_pruned_model(fixture, metric, target, request):
    model, layers, counts = request.getfixturevalue(fixture)
    keep = keep_counts_for_target(counts, metric, target)
    assert all(1 <= k <= layer.channels for k, layer in zip(keep, layers))
    ratio = counts.ratio(keep, metric)
    if isinstance(target, tuple):
        assert target[0] <= ratio <= target[1]
    else:
        assert abs(ratio - target) <= 0.01 * target
    # one shared ratio r: every layer keeps ⌊r·c⌋ or ⌈r·c⌉ channels (at least one)
    r = shared_ratio(counts, metric, np.mean(target))
    assert all(max(1, np.floor(r * c)) <= k <= max(1, np.ceil(r * c)) for k, c in zip(keep, counts.channels))


@pytest.mark.slow
def test_the_shared_ratio_is_checked_on_a_real_surgery(resnet56):
    model, layers, counts = resnet56
    keep = keep_counts_for_target(counts, "macs", 0.5)
    pruned = prune_channels(model, {l.name: range(k) for l, k in zip(layers, keep)}, torch.zeros(1, 3, 32, 32))
    assert abs(count(pruned).macs / counts.full["macs"] - 0.5) <= 0.005


def test_widths_rounded_to_a_multiple_of_the_narrowest_layer_say_what_they_reach(resnet56):
    _, _, counts = resnet56  # ResNet-56's first stage has 16 channels: rounded to 16, it stays whole
    smallest = counts.ratio(np.minimum(16, counts.channels), "macs")
    assert smallest > 0.5
    with pytest.raises(ValueError, match=f"rounded to multiples of 16 reaches keep ratios in \\[{smallest:.4f}, 1\\]"):
        keep_counts_for_target(counts, "macs", 0.47, round_to=16)
    assert abs(counts.ratio(keep_counts_for_target(counts, "macs", 0.6, round_to=16), "macs") - 0.6) < 0.01


def test_widths_rounded_to_coarse_steps_still_meet_a_tight_budget(vgg16):
    _, _, counts = vgg16  # Table 1's VGG-16 budget: 15% of the params, the first four convs whole
    for round_to in (16, 32):  # one step of a 512-wide layer moves the ratio by more than the 1% tolerance
        keep = keep_counts_for_target(counts, "params", 0.15, round_to=round_to)
        assert all(k % round_to == 0 for k in keep)
        assert abs(counts.ratio(keep, "params") - 0.15) <= 0.15 * 0.01


@pytest.mark.slow
def test_unreachable_and_invalid_targets_are_clear_errors(vgg16):
    _, layers, counts = vgg16
    with pytest.raises(ValueError, match="pruning these layers reaches keep ratios in \\[0.3"):
        keep_counts_for_target(counts, "macs", 0.2)  # VGG-16's first four convs alone are ~31 % of its MACs
    for bad in (0, -0.5, 1.5, True, "half"):
        with pytest.raises(ValueError, match="keep ratio in \\(0, 1\\]"):
            keep_counts_for_target(counts, "macs", bad)
    with pytest.raises(ValueError, match="lo <= hi"):
        target_range((0.6, 0.5))
    with pytest.raises(ValueError, match="unknown metric"):
        keep_counts_for_target(counts, "latency", 0.5)
    assert keep_counts_for_target(counts, "params", 1.0) == [layer.channels for layer in layers]


@pytest.mark.slow
def test_explicit_keep_counts_are_validated(vgg16):
    _, layers, _ = vgg16
    assert check_keep_counts([1] * len(layers), layers) == [1] * len(layers)
    with pytest.raises(ValueError, match="one count per prunable layer"):
        check_keep_counts([1], layers)
    with pytest.raises(ValueError, match="in \\[1, 256\\], got 0"):
        check_keep_counts([0] + [1] * (len(layers) - 1), layers)


@pytest.mark.slow
def test_googlenets_paper_budget_is_reachable_with_the_concatenations_inputs_pruned():
    model = get_model("googlenet").eval()
    layers = prunable_layers(model)  # the first four convs whole, as the paper
    counts = count_model(model, layers)
    smallest = np.ones(len(layers), dtype=np.int64)
    # Table 1's GoogLeNet rows: 69% of the FLOPs and 63% of the parameters removed
    assert counts.ratio(smallest, "macs") < 0.31 and counts.ratio(smallest, "params") < 0.37
    keep = keep_counts_for_target(counts, "macs", 0.31)
    assert counts.ratio(keep, "macs") == pytest.approx(0.31, rel=0.01)
    # four consumers, one per branch of the next inception: the four branch outputs of eight inceptions and the
    # stem, less the three of them among the first four convs (pre_layers.0, a3.b1.0, a3.b2.3)
    assert [len(layer.consumers) for layer in layers].count(4) == 8 * 4 + 1 - 3
