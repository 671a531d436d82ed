import numpy as np
import pytest
import torch

from ibprune_lib.models import get_model
from ibprune_lib.pruning import count_model, itpruner_keep_counts, prunable_layers
from ibprune_lib.pruning.itpruner import centred_linear_gram, layer_importance, linear_cka_matrix, optimal_widths


def test_linear_cka_is_one_for_the_same_features_up_to_rotation_and_scale():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator))
    unrelated = torch.randn(50, 6, generator=generator)
    cka = linear_cka_matrix([centred_linear_gram(x), centred_linear_gram(3 * x @ rotation), centred_linear_gram(unrelated)])
    assert torch.allclose(cka.diagonal(), torch.ones(3, dtype=cka.dtype))
    assert torch.allclose(cka, cka.T) and cka[0, 1] == pytest.approx(1.0) and cka[0, 2] < 0.5


def test_importance_favours_the_layer_least_like_the_others():
    similarity = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    t = torch.tensor([1.0, 1.1, 0.3]) / 2.4
    torch.testing.assert_close(layer_importance(similarity, beta=2.0), torch.exp(-2 * t))
    assert layer_importance(similarity, beta=2.0).argmax() == 2


@pytest.fixture(scope="module")
def vgg16():
    model = get_model("vgg16").eval()
    layers = prunable_layers(model)
    return model, layers, count_model(model, layers)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["macs", "params"])
def test_widths_satisfy_the_constraint_and_meet_the_target(metric, vgg16):
    model, layers, counts = vgg16
    importance = np.linspace(1.0, 0.2, len(layers))
    widths = optimal_widths(importance, counts, metric, 0.6, min_width=0.1)
    assert counts.ratio(widths * counts.channels, metric) <= 0.6 + 1e-6
    assert np.all(widths >= 0.1 - 1e-9) and np.all(widths <= 1 + 1e-9)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    keep, diagnostics = itpruner_keep_counts(model, images, layers, counts, metric, 0.6, beta=10.0, min_width=0.1)
    assert abs(counts.ratio(keep, metric) - 0.6) <= 0.006
    assert all(1 <= k <= layer.channels for k, layer in zip(keep, layers))
    assert len(diagnostics["importance"]) == len(layers) and np.shape(diagnostics["similarity"]) == (len(layers),) * 2


@pytest.mark.slow
def test_bad_itpruner_options_are_clear_errors(vgg16):
    model, layers, counts = vgg16
    images = torch.randn(4, 3, 32, 32)
    with pytest.raises(ValueError, match="beta must be positive"):
        itpruner_keep_counts(model, images, layers, counts, "macs", 0.6, beta=0.0)
    with pytest.raises(ValueError, match="min_width must be a keep ratio"):
        itpruner_keep_counts(model, images, layers, counts, "macs", 0.6, min_width=2.0)
