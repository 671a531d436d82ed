"""A network's penultimate features, how well they separate the classes, and their t-SNE map (the paper's Fig. 2).

The paper shows t-SNE maps of pruned VGG-16s and reads "more distinct clusters" off them. A 2-D map is a
picture; the claim is about the features, so two numbers are computed on the features themselves, not on the
map: the silhouette score (mean over points of (b − a) / max(a, b), a = mean distance to the own class, b to
the nearest other class; 1 is perfectly separated, 0 overlapping) and the leave-one-out accuracy of a k-nearest-
neighbour vote.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from torch import nn

from .data import normalise


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` (its classifier's output layer).

    Raises:
        ValueError: the model has no Linear layer.
    """
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: no penultimate features to read")
    return linears[-1]


@torch.inference_mode()
def penultimate_features(
    model: nn.Module, images: torch.Tensor, normalization: str | tuple, batch_size: int = 500
) -> torch.Tensor:
    """(n, d) float32 inputs of the model's last Linear layer on ``images`` (n, 3, h, w) uint8, in eval mode.

    The model's mode is restored and its hook removed whatever happens.
    """
    captured: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda module, args: captured.append(args[0].flatten(1)))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(normalise(images[start : start + batch_size], normalization))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).float()


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Leave-one-out accuracy (%) of a k-nearest-neighbour majority vote (Euclidean; ties to the nearest).

    Args:
        features: (n, d).
        labels: (n,) int class labels.
        k: neighbours, 1 ≤ k < n.
    """
    n = len(features)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    distances = torch.cdist(features.double(), features.double())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices  # (n, k), nearest first
    votes = labels[neighbours]
    weights = 1 + 1e-3 * torch.arange(k, 0, -1, dtype=torch.float64) / k  # one vote each; nearer ones break ties
    counts = torch.zeros(n, int(labels.max()) + 1, dtype=torch.float64).scatter_add_(1, votes, weights.expand(n, k))
    return 100.0 * float((counts.argmax(dim=1) == labels).double().mean())


def separation(features: torch.Tensor, labels: torch.Tensor, k: int = 5) -> dict[str, float]:
    """``{"silhouette": …, "knn_accuracy": …}`` of (n, d) features with (n,) labels (see the module's text).

    Features that are all the same point (a dead network) score silhouette 0.
    """
    x = features.double().numpy()
    same = bool(np.allclose(x, x[:1]))
    silhouette = 0.0 if same else float(silhouette_score(x, labels.numpy()))
    return {"silhouette": silhouette, "knn_accuracy": knn_accuracy(features, labels, k)}


def tsne_map(features: torch.Tensor, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(n, 2) t-SNE map of (n, d) features (PCA initialisation, seeded)."""
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(
        features.double().numpy())
