import copy

import pytest
import torch
import torchvision

from ibprune_lib.counting import count
from ibprune_lib.models import get_model, load_weights
from ibprune_lib.pruning import count_model, prunable_layers, prune_channels


def randomise_batchnorm(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so a zeroed channel is not zero by accident."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(c, generator=generator) * 0.1)
    return model


def random_kept(layers, seed=0):
    generator = torch.Generator().manual_seed(seed)
    kept = {}
    for layer in layers:
        k = int(torch.randint(1, layer.channels + 1, (1,), generator=generator))
        kept[layer.name] = torch.randperm(layer.channels, generator=generator)[:k].sort().values
    return kept


def zeroed(model, layers, kept):
    """The original model with every removed candidate's output exactly 0 after BN and ReLU (``kept``: candidate
    indices; a grouped layer's candidates are groups, whose outputs after the grouped conv are zeroed too)."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    for layer in layers:
        removed = torch.ones(layer.channels, dtype=torch.bool)
        removed[kept[layer.name]] = False
        removed = removed.repeat_interleave(layer.per_candidate("producer"))
        after = [] if layer.grouped is None else [layer.grouped.name, layer.grouped.bn_name]
        with torch.no_grad():
            for name in filter(None, (layer.name, layer.bn_name, *after, *layer.through)):  # BatchNorms after depthwise convs
                for parameter in ("weight", "bias"):                          # add a bias
                    if getattr(modules[name], parameter) is not None:
                        getattr(modules[name], parameter)[removed] = 0
    return model


def assert_equals_zeroed_and_counts_as_predicted(model, layers, kept, pruned, side=32):
    """The pruned network computes what ``model`` with the removed candidates zeroed computes (1e-4) on side × side
    images, and counts the MACs and parameters the budget's count model predicts for it."""
    x = torch.randn(4, 3, side, side)
    with torch.no_grad():
        expected, actual = zeroed(model, layers, kept)(x), pruned(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    predicted = count_model(model, layers, (3, side, side))
    keep = [len(kept[layer.name]) for layer in layers]
    real = count(pruned, (3, side, side))
    assert (real.macs, real.params) == (round(predicted(keep, "macs")), round(predicted(keep, "params")))


def channels_kept(layers, kept):
    """``kept`` (candidate indices per layer) as the channels ``prune_channels`` takes."""
    return {layer.name: layer.channel_indices(kept[layer.name].tolist()) for layer in layers}


@pytest.fixture(scope="module")
def resnet56(shared_weights):
    return load_weights(get_model("resnet56"), shared_weights / "resnet56-4bfd9763.th").eval()


@pytest.mark.needs_data
@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet56", "googlenet"])
def test_pruned_model_equals_the_original_with_removed_channels_zeroed(name, request):
    torch.manual_seed(0)
    model = request.getfixturevalue("resnet56") if name == "resnet56" else randomise_batchnorm(get_model(name)).eval()
    layers = prunable_layers(model, skip_first=0)
    kept = random_kept(layers)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    pruned = prune_channels(model, channels_kept(layers, kept), torch.zeros(1, 3, 32, 32))

    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    modules = dict(pruned.named_modules())
    assert [modules[layer.name].out_channels for layer in layers] == [len(kept[layer.name]) for layer in layers]
    assert_equals_zeroed_and_counts_as_predicted(model, layers, kept, pruned)


@pytest.mark.parametrize("name", ["resnext50_32x4d", "regnet_y_400mf"])
def test_grouped_convs_lose_whole_groups_and_equal_the_original_with_removed_groups_zeroed(name):
    torch.manual_seed(0)
    model = randomise_batchnorm(torchvision.models.get_model(name, num_classes=10)).eval()
    layers = prunable_layers(model, skip_first=0)
    grouped = [layer for layer in layers if layer.grouped]
    assert len(grouped) == 16  # every bottleneck's conv1, by the groups of its conv2
    kept = random_kept(layers)

    pruned = prune_channels(model, channels_kept(layers, kept), torch.zeros(1, 3, 32, 32))

    modules, original = dict(pruned.named_modules()), dict(model.named_modules())
    for layer in grouped:
        conv, per = modules[layer.grouped.name], layer.per_candidate("producer")
        assert conv.groups == len(kept[layer.name]) and conv.in_channels == per * conv.groups
        assert conv.out_channels == original[layer.grouped.name].out_channels // layer.channels * conv.groups
        assert modules[layer.name].out_channels == conv.in_channels
    assert_equals_zeroed_and_counts_as_predicted(model, layers, kept, pruned)
    with pytest.raises(ValueError, match="in groups of .*: remove whole groups"):
        prune_channels(model, {grouped[0].name: [0]}, torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_squeeze_and_excitation_blocks_prune_and_equal_the_original_with_removed_channels_zeroed(name):
    torch.manual_seed(0)
    model = randomise_batchnorm(torchvision.models.get_model(name, num_classes=10)).eval()
    layers = prunable_layers(model, skip_first=0)
    gated = [layer for layer in layers if layer.gates]
    assert len(gated) >= 9  # every expanding conv whose channels an SE block gates
    squeeze, excite = gated[0].gates[0]
    assert squeeze.endswith("fc1") and excite.endswith("fc2") and squeeze not in [c.name for c in gated[0].consumers]
    kept = random_kept(layers)

    pruned = prune_channels(model, channels_kept(layers, kept), torch.zeros(1, 3, 32, 32))

    modules, original = dict(pruned.named_modules()), dict(model.named_modules())
    assert modules[squeeze].in_channels == modules[excite].out_channels == len(kept[gated[0].name])
    assert modules[squeeze].out_channels == original[squeeze].out_channels  # the SE's own width stays
    assert_equals_zeroed_and_counts_as_predicted(model, layers, kept, pruned)


@pytest.mark.parametrize("name", ["alexnet", "squeezenet1_0"])
def test_convs_without_batchnorm_prune_and_equal_the_original_with_removed_channels_zeroed(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=10).eval()
    layers = prunable_layers(model, (3, 64, 64), skip_first=0)
    assert layers and all(layer.bn is None for layer in layers)
    kept = random_kept(layers)

    pruned = prune_channels(model, channels_kept(layers, kept), torch.zeros(1, 3, 64, 64))

    assert_equals_zeroed_and_counts_as_predicted(model, layers, kept, pruned, side=64)


def test_keeping_everything_changes_nothing(resnet56):
    layers = prunable_layers(resnet56)
    pruned = prune_channels(resnet56, {layer.name: range(layer.channels) for layer in layers}, torch.zeros(1, 3, 32, 32))
    assert pruned is not resnet56 and count(pruned) == count(resnet56)


def test_bad_plans_are_refused_and_leave_the_model_alone(resnet56):
    state = {k: v.clone() for k, v in resnet56.state_dict().items()}
    example = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="keep at least one channel"):
        prune_channels(resnet56, {"layer1.0.conv1": []}, example)
    with pytest.raises(ValueError, match="distinct indices in \\[0, 16\\)"):
        prune_channels(resnet56, {"layer1.0.conv1": [0, 16]}, example)
    with pytest.raises(ValueError, match="distinct"):
        prune_channels(resnet56, {"layer1.0.conv1": [1, 1]}, example)
    with pytest.raises(ValueError, match="not a Conv2d"):
        prune_channels(resnet56, {"layer1.0.bn1": [0]}, example)
    assert all(torch.equal(state[k], v) for k, v in resnet56.state_dict().items())
