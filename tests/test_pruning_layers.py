import pytest
import torch
from torch import nn

from ibprune_lib.models import get_model, input_size
from ibprune_lib.pruning import FEATURE_KINDS, capture, prunable_layers
from ibprune_lib.pruning.capture import _stack


def names(layers):
    return [layer.name for layer in layers]


@pytest.mark.slow
def test_vgg16_every_conv_after_the_first_four_last_feeds_the_classifier():
    model = get_model("vgg16")
    layers = prunable_layers(model)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert names(layers) == convs[4:]
    assert layers[0].consumer_name == convs[5] and layers[0].consumers[0].bn is not None
    assert layers[-1].consumer is model.classifier[0] and layers[-1].consumers[0].bn is None
    assert all(len(layer.consumers) == 1 and layer.consumers[0].offset == 0 for layer in layers)
    assert all(layer.bn is dict(model.named_modules())[layer.bn_name] for layer in layers)


@pytest.mark.slow
def test_resnet56_inner_conv_of_every_block():
    model = get_model("resnet56")
    layers = prunable_layers(model, skip_first=0)
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(9)]
    assert names(layers) == [f"{b}.conv1" for b in blocks]
    assert [layer.consumer_name for layer in layers] == [f"{b}.conv2" for b in blocks]
    assert [layer.channels for layer in layers] == [16] * 9 + [32] * 9 + [64] * 9
    assert names(prunable_layers(model)) == names(layers)[4:]


@pytest.mark.slow
def test_googlenet_every_conv_the_concatenations_read_at_their_offsets():
    model = get_model("googlenet")
    layers = {layer.name: layer for layer in prunable_layers(model, skip_first=0)}
    assert list(layers) == [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    branches = ["b3.b1.0", "b3.b2.0", "b3.b3.0", "b3.b4.1"]  # b4.1: after the pool branch's max-pool
    # a3's outputs: 64 (b1) + 128 (b2) + 32 (b3) + 32 (b4) channels, read by every branch of b3
    for name, offset in (("a3.b1.0", 0), ("a3.b2.3", 64), ("a3.b3.6", 192), ("a3.b4.1", 224)):
        assert [(c.name, c.offset) for c in layers[name].consumers] == [(b, offset) for b in branches]
    assert [c.name for c in layers["pre_layers.0"].consumers] == ["a3.b1.0", "a3.b2.0", "a3.b3.0", "a3.b4.1"]
    assert [c.name for c in layers["a3.b2.0"].consumers] == ["a3.b2.3"]  # inside a branch: one consumer
    last = layers["b5.b4.1"].consumers
    assert len(last) == 1 and last[0].module is model.linear and last[0].offset == 896 and last[0].bn is None


@pytest.mark.slow
def test_resnet50_the_stem_and_conv1_and_conv2_of_each_bottleneck():
    model = get_model("resnet50", 1000)
    layers = prunable_layers(model, input_size("resnet50"), skip_first=0)
    assert len(layers) == 33 and names(layers[:3]) == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    # the stem feeds the first bottleneck's conv1 and its downsampling shortcut: two consumers
    assert [c.name for c in layers[0].consumers] == ["layer1.0.conv1", "layer1.0.downsample.0"]
    assert layers[2].consumer_name == "layer1.0.conv3"


@pytest.mark.slow
def test_nothing_prunable_and_skip_first_too_large_are_clear_errors():
    with pytest.raises(ValueError, match="no prunable layer"):
        prunable_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)))
    with pytest.raises(ValueError, match="skip_first=27 leaves nothing"):
        prunable_layers(get_model("resnet56"), skip_first=27)
    with pytest.raises(ValueError, match="non-negative"):
        prunable_layers(get_model("resnet20"), skip_first=-1)


@pytest.mark.slow
def test_capture_gives_what_each_consumer_sees_and_removes_its_hooks():
    model = get_model("vgg16").train()
    layers = prunable_layers(model, skip_first=10)  # features.34, .37, .40
    images = torch.randn(3, 3, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = dict(capture(model, images, layers, "rows", max_bytes=1))  # one forward per layer
    assert model.training and all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    last = rows[layers[-1]]
    assert last.inputs.shape == (3, 512) and last.outputs.shape == (3, 512)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(last.outputs, model.classifier[0](last.inputs))
        x = model.features[:36](images)  # through features.35 = the BN after features.34, before its ReLU
        assert torch.allclose(dict(capture(model, images, layers, "maps"))[layers[0]].outputs, torch.relu(x))
        columns = dict(capture(model, images, layers, "columns"))[layers[0]]
        assert torch.allclose(columns.outputs, x) and torch.allclose(columns.inputs, model.features[:34](images))
    with pytest.raises(ValueError, match="unknown feature kind"):
        next(capture(model, images, layers, "weights"))
    assert FEATURE_KINDS == ("rows", "columns", "maps")


@pytest.mark.slow
def test_capture_of_a_branch_output_reads_its_slice_of_the_concatenation_and_every_consumer():
    model = get_model("googlenet").eval()
    layers = {layer.name: layer for layer in prunable_layers(model, skip_first=0)}
    layer = layers["a3.b2.3"]  # channels 64…191 of a3's output
    images = torch.randn(2, 3, 32, 32)
    features = dict(capture(model, images, [layer], "rows"))[layer]
    with torch.no_grad():
        a3 = model.a3(model.pre_layers(images))
        responses = [model.b3.b1[:2](a3), model.b3.b2[:2](a3), model.b3.b3[:2](a3), model.b3.b4[:3](a3)]
    torch.testing.assert_close(features.inputs, a3[:, 64:192])
    torch.testing.assert_close(features.outputs, torch.cat(responses, dim=1))
    assert features.outputs.shape[1] == 128 + 128 + 32 + 64


def test_consumers_of_different_sizes_stack_as_their_position_means():
    conv, stride2, linear = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 2, 2), torch.randn(2, 5)
    assert torch.equal(_stack([conv]), conv)
    assert torch.equal(_stack([conv, conv]), torch.cat([conv, conv], dim=1))  # same size: kept as maps
    mixed = _stack([conv, stride2, linear])
    assert mixed.shape == (2, 10)
    assert torch.allclose(mixed[:, :3], conv.mean(dim=(2, 3)))
    assert torch.allclose(mixed[:, 3:5], stride2.mean(dim=(2, 3)))
    assert torch.equal(mixed[:, 5:], linear)
