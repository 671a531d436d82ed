"""Penultimate features and the numbers that replace reading clusters off a t-SNE picture."""

import pytest
import torch

from ibprune_lib.embedding import knn_accuracy, penultimate_features, separation, tsne_map
from ibprune_lib.models import get_model


def clusters(spread: float, n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes around three far-apart centres in 8-D, each point within ``spread`` of its centre."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = 10 * torch.eye(3, 8)
    return centres[labels] + spread * torch.randn(n, 8, generator=generator), labels


def test_separated_classes_score_high_and_mixed_ones_near_zero():
    tight = separation(*clusters(0.5))
    assert tight["silhouette"] > 0.8 and tight["knn_accuracy"] == 100.0
    features, labels = clusters(0.5)
    mixed = separation(features, labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))])
    assert abs(mixed["silhouette"]) < 0.1 and mixed["knn_accuracy"] < 60
    dead = separation(torch.ones(30, 4), torch.arange(30) % 3)
    assert dead["silhouette"] == 0.0


def test_knn_leaves_the_point_itself_out():
    features = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    assert knn_accuracy(features, torch.tensor([0, 0, 1, 1]), k=1) == 100.0
    assert knn_accuracy(features, torch.tensor([0, 1, 0, 1]), k=1) == 0.0  # its own label would have made it 100
    with pytest.raises(ValueError, match="k must be in"):
        knn_accuracy(features, torch.tensor([0, 0, 1, 1]), k=4)


@pytest.mark.slow
def test_penultimate_features_are_the_classifiers_input_and_the_model_keeps_its_mode():
    model = get_model("resnet20").train()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    features = penultimate_features(model, images, "cifar", batch_size=2)
    assert features.shape == (5, 64) and model.training
    assert tsne_map(features, perplexity=2.0).shape == (5, 2)
