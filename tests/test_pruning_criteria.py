import pytest
import torch

from ibprune_lib.models import get_model, load_weights
from ibprune_lib.pruning import METHODS, capture, get_criterion, prunable_layers
from ibprune_lib.kernels import gram_problem
from ibprune_lib.pruning.criteria import (
    candidate_maps, fpgm_scores, hrank_scores, l1_norm_scores, random_scores, top_k,
)


@pytest.fixture(scope="module")
def resnet20_layer(shared_weights):
    model = load_weights(get_model("resnet20"), shared_weights / "resnet20-12fca82f.th").eval()
    layers = prunable_layers(model, skip_first=8)  # layer3.2.conv1, 64 channels
    images = torch.randn(24, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = {kind: dict(capture(model, images, layers, kind))[layers[0]] for kind in ("rows", "columns", "maps")}
    return layers[0], features


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_k_channels_with_a_score_per_channel(method, resnet20_layer):
    layer, features = resnet20_layer
    criterion = get_criterion(method, seed=3, max_solves=12)
    selection = criterion(layer, features[criterion.features] if criterion.features else None, 20)
    assert selection.kept.shape == (20,) and torch.equal(selection.kept, selection.kept.sort().values)
    assert selection.scores.shape == (64,) and selection.diagnostics["seconds"] >= 0
    if method in ("stlp", "sglp", "apib", "lasso"):
        assert selection.diagnostics["lam"] > 0 and selection.diagnostics["n_solves"] >= 1
    else:
        assert torch.equal(selection.kept, top_k(selection.scores, 20))


def test_seeded_random_is_reproducible_and_differs_across_layers_and_seeds(resnet20_layer):
    layer, _ = resnet20_layer
    assert torch.equal(get_criterion("random", seed=1)(layer, None, 8).kept, get_criterion("random", seed=1)(layer, None, 8).kept)
    assert not torch.equal(get_criterion("random", seed=1)(layer, None, 32).kept, get_criterion("random", seed=2)(layer, None, 32).kept)
    assert torch.equal(random_scores(5, 7), random_scores(5, 7)) and not torch.equal(random_scores(5, 7), random_scores(5, 8))


def test_hrank_is_the_mean_rank_of_each_channels_maps():
    generator = torch.Generator().manual_seed(0)
    maps = torch.zeros(3, 4, 8, 8)
    for b in range(3):
        for c in range(4):
            rank = c + 1 if b < 2 else 1  # channel c: rank c + 1 in two images, rank 1 in the third
            maps[b, c] = torch.randn(8, rank, generator=generator) @ torch.randn(rank, 8, generator=generator)
    torch.testing.assert_close(hrank_scores(maps), torch.tensor([1.0, 5 / 3, 7 / 3, 3.0]))


def test_fpgm_prunes_the_filter_at_the_geometric_median_first():
    corners = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    weight = torch.cat([corners, torch.zeros(1, 2), torch.tensor([[3.0, 3.0]])]).view(6, 2, 1, 1)
    scores = fpgm_scores(weight)
    assert scores.argmin() == 4  # the centre is replaceable by the others
    assert scores.argmax() == 5  # the outlier is not
    torch.testing.assert_close(scores[4], torch.tensor(4.0 + 18**0.5))
    assert top_k(scores, 5).tolist() == [0, 1, 2, 3, 5]


def test_l1_norm_and_top_k():
    weight = torch.tensor([[1.0, -2.0], [0.5, 0.5], [-3.0, 0.0]]).view(3, 2, 1, 1)
    assert l1_norm_scores(weight).tolist() == [3.0, 1.0, 3.0]
    assert top_k(l1_norm_scores(weight), 1).tolist() == [0]  # ties: the lower index wins
    with pytest.raises(ValueError, match="k must be in \\[1, 3\\]"):
        top_k(l1_norm_scores(weight), 0)


def test_unknown_method_kernel_or_direction_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'hsic'"):
        get_criterion("hsic")
    with pytest.raises(ValueError, match="unknown kernel 'rbf'"):
        get_criterion("stlp", kernel="rbf")
    with pytest.raises(ValueError, match="unknown direction 'diagonal'"):
        get_criterion("sglp", direction="diagonal")


def test_a_group_of_channels_is_one_candidate_whose_linear_gram_sums_its_channels_grams():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 8, 3, 3, generator=generator), torch.randn(6, 5, 3, 3, generator=generator)
    groups = candidate_maps(x, 4)  # 4 groups of 2 channels, each group's maps side by side
    assert groups.shape == (6, 4, 6, 3) and torch.equal(groups[:, 1, 3:], x[:, 3])
    assert candidate_maps(x, 8) is x
    by_group = gram_problem(groups, y, "linear", normalise=False, dtype=torch.float64)
    by_channel = gram_problem(x, y, "linear", normalise=False, dtype=torch.float64)
    torch.testing.assert_close(by_group.B, by_channel.B.reshape(4, 2, 5).sum(1))
