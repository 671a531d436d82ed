"""Structure over the response columns: a correlation graph (sGLP-IB) and a cluster tree (sTLP-IB).

Both are built from Pearson correlations r_ml of the response columns (book/formulation.md §2). The graph has an
edge (m, l), m < l, wherever |r_ml| > τ. The tree is scipy's agglomerative clustering on the correlation
distance 1 − r, with Kim & Xing's node weights: heights h_v scaled to [0, 1] by the root's, s_v = h_v,
g_v = 1 − s_v; an internal node weighs g_v·Π_{ancestors m} s_m and a leaf Π_{ancestors m} s_m, so the weights
along every root-to-leaf path sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

LINKAGE_METHODS = ("single", "complete", "average", "weighted")


@dataclass(frozen=True)
class Graph:
    """A signed correlation graph over q response columns.

    Attributes:
        edges: (E, 2) long, each row (m, l) with m < l.
        weights: (E,) the signed correlations r_ml of the edges.
        n_nodes: q, the number of response columns.
        cache: derived tensors the penalties keep with the graph (filled on use).
    """

    edges: torch.Tensor
    weights: torch.Tensor
    n_nodes: int
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_edges(self) -> int:
        return self.edges.shape[0]


@dataclass(frozen=True)
class Tree:
    """A tree over q response columns, each node owning the group of leaves below it.

    Attributes:
        groups: V long tensors of sorted column indices. ``groups[:n_leaves]`` are the leaves (column j alone
            at position j); then the internal nodes in merge order, the root (all columns) last.
        weights: (V,) float64 node weights w_v (see the module docstring).
        parents: (V,) long, the parent of every node, −1 for the root.
        n_leaves: q.
        cache: derived tensors the penalties keep with the tree (filled on use).
    """

    groups: list[torch.Tensor]
    weights: torch.Tensor
    parents: torch.Tensor
    n_leaves: int
    cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @cached_property
    def levels(self) -> torch.Tensor:
        """(V,) long: 0 for a leaf, else 1 + the highest level of its children. Nodes of a level are disjoint."""
        level = [0] * self.n_groups
        for v, parent in enumerate(self.parents.tolist()):  # children come before their parent
            if parent >= 0:
                level[parent] = max(level[parent], level[v] + 1)
        return torch.tensor(level, dtype=torch.long)


def _check_samples(Y: torch.Tensor) -> None:
    if not isinstance(Y, torch.Tensor) or Y.ndim != 2 or Y.shape[0] < 2 or Y.shape[1] < 1:
        shape = tuple(Y.shape) if isinstance(Y, torch.Tensor) else type(Y).__name__
        raise ValueError(f"Y must be an (n, q) tensor with n >= 2 and q >= 1, got {shape}")
    if not torch.isfinite(Y).all():
        raise ValueError("Y contains NaN or inf")


def _check_correlation(R: torch.Tensor) -> None:
    if not isinstance(R, torch.Tensor) or R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 1:
        shape = tuple(R.shape) if isinstance(R, torch.Tensor) else type(R).__name__
        raise ValueError(f"R must be a square (q, q) correlation matrix, got {shape}")
    if not torch.isfinite(R).all():
        raise ValueError("R contains NaN or inf")


def correlation_from_moments(cross: torch.Tensor, sums: torch.Tensor, n: int) -> torch.Tensor:
    """Pearson correlations of q columns from their cross products and sums over n rows.

    Args:
        cross: (q, q) YᵀY.
        sums: (q,) column sums 1ᵀY.
        n: number of rows of Y.

    Returns:
        (q, q) correlations in cross's dtype, clipped to [−1, 1]; a constant column (variance within rounding
        of zero) correlates 0 with the others and 1 with itself.
    """
    cross64, sums64 = cross.double(), sums.double()
    cov = cross64 - torch.outer(sums64, sums64) / n
    var = cov.diagonal()
    noise = 100 * torch.finfo(cross.dtype).eps * cross64.diagonal().abs()
    std = torch.where(var > noise, var.clamp_min(0).sqrt(), torch.zeros_like(var))
    inv = torch.where(std > 0, 1.0 / std.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(std))
    R = (inv[:, None] * cov * inv[None, :]).clamp(-1.0, 1.0)
    R.fill_diagonal_(1.0)
    return R.to(cross.dtype)


def pearson_correlation(Y: torch.Tensor) -> torch.Tensor:
    """(q, q) Pearson correlations of the columns of Y (n, q); constant columns as in correlation_from_moments."""
    _check_samples(Y)
    Yc = Y.double() - Y.double().mean(dim=0)
    return correlation_from_moments(Yc.T @ Yc, Yc.sum(dim=0), Y.shape[0]).to(Y.dtype)


def graph_from_correlation(R: torch.Tensor, threshold: float = 0.6) -> Graph:
    """The graph with an edge (m, l), m < l, wherever |R_ml| > threshold.

    Args:
        R: (q, q) correlation matrix.
        threshold: τ in [0, 1).

    Returns:
        The Graph, edges in row-major order of the upper triangle, weights the signed R_ml.

    Raises:
        ValueError: a malformed R or a threshold outside [0, 1).
    """
    _check_correlation(R)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold}")
    q = R.shape[0]
    m, l = torch.triu_indices(q, q, offset=1, device=R.device)
    r = R[m, l]
    keep = r.abs() > threshold
    return Graph(edges=torch.stack([m[keep], l[keep]], dim=1), weights=r[keep], n_nodes=q)


def knn_graph_from_correlation(R: torch.Tensor, k: int) -> Graph:
    """The sparse graph joining each column to the k others it is most correlated with (by |R|).

    An edge (m, l), m < l, exists when l is among m's k nearest or m among l's: every node has at least
    k neighbours, whatever the spread of the correlations (a threshold leaves weakly correlated layers with
    almost no edges and strongly correlated ones with almost all).

    Args:
        R: (q, q) correlation matrix.
        k: neighbours per column, 1 ≤ k < q.

    Returns:
        The Graph, edges in row-major order of the upper triangle, weights the signed R_ml.

    Raises:
        ValueError: a malformed R or k out of range.
    """
    _check_correlation(R)
    q = R.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < q:
        raise ValueError(f"k must be an int in [1, {q - 1}] (neighbours among {q} columns), got {k!r}")
    strength = R.abs().fill_diagonal_(-1.0)
    nearest = strength.topk(k, dim=1).indices  # (q, k)
    joined = torch.zeros(q, q, dtype=torch.bool, device=R.device)
    joined[torch.arange(q, device=R.device).unsqueeze(1), nearest] = True
    joined |= joined.T.clone()
    m, l = torch.triu_indices(q, q, offset=1, device=R.device)
    keep = joined[m, l]
    return Graph(edges=torch.stack([m[keep], l[keep]], dim=1), weights=R[m, l][keep], n_nodes=q)


def pearson_graph(Y: torch.Tensor, threshold: float = 0.6) -> Graph:
    """The correlation graph of the columns of Y (n, q); see graph_from_correlation."""
    return graph_from_correlation(pearson_correlation(Y), threshold)


def tree_from_correlation(R: torch.Tensor, method: str = "average") -> Tree:
    """Agglomerative cluster tree of q columns from their correlations, with Kim & Xing's weights.

    Distances 1 − r (clipped to [0, 2]) go to ``scipy.cluster.hierarchy.linkage``. Merge heights are divided
    by the root's; if every distance is 0 (all columns perfectly correlated) the heights are all 0 and the
    root takes the whole weight. A single column gives a single leaf of weight 1.

    Args:
        R: (q, q) correlation matrix.
        method: scipy linkage method, one of ``LINKAGE_METHODS``.

    Returns:
        The Tree (weights float64 on the CPU, groups long on the CPU).

    Raises:
        ValueError: a malformed R or an unknown method.
    """
    _check_correlation(R)
    if method not in LINKAGE_METHODS:
        raise ValueError(f"unknown linkage method {method!r}: choose one of {', '.join(LINKAGE_METHODS)}")
    q = R.shape[0]
    groups = [torch.tensor([j]) for j in range(q)]
    if q == 1:
        return Tree(groups, torch.ones(1, dtype=torch.float64), torch.tensor([-1]), n_leaves=1)
    D = np.clip(1.0 - R.detach().double().cpu().numpy(), 0.0, 2.0)
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(D, checks=False), method=method)
    heights = Z[:, 2]
    s = heights / heights[-1] if heights[-1] > 0 else np.zeros_like(heights)
    s = np.clip(s, 0.0, 1.0)
    children = Z[:, :2].astype(np.int64)
    for a, b in children:
        groups.append(torch.sort(torch.cat([groups[a], groups[b]])).values)
    n_nodes = 2 * q - 1
    above = np.ones(n_nodes)  # Π of s over each node's ancestors
    weights = np.empty(n_nodes)
    for t in range(q - 2, -1, -1):  # internal nodes from the root down
        v = q + t
        weights[v] = (1.0 - s[t]) * above[v]
        above[children[t]] = above[v] * s[t]
    weights[:q] = above[:q]
    parents = np.full(n_nodes, -1, dtype=np.int64)
    parents[children] = q + np.arange(q - 1)[:, None]
    return Tree(groups, torch.from_numpy(weights), torch.from_numpy(parents), n_leaves=q)


def cluster_tree(Y: torch.Tensor, method: str = "average") -> Tree:
    """The cluster tree of the columns of Y (n, q); see tree_from_correlation."""
    return tree_from_correlation(pearson_correlation(Y), method)
