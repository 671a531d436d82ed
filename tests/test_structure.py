"""The correlation graph and the cluster tree over response columns."""

import numpy as np
import pytest
import torch

from ibprune_lib.structure import (
    knn_graph_from_correlation,
    cluster_tree,
    graph_from_correlation,
    pearson_correlation,
    pearson_graph,
    tree_from_correlation,
)


def correlated_columns(n=50, q=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 3, generator=g, dtype=torch.float64)
    mix = torch.randn(3, q, generator=g, dtype=torch.float64)
    return base @ mix + 0.5 * torch.randn(n, q, generator=g, dtype=torch.float64)


def test_pearson_correlation_matches_numpy_and_handles_constant_columns():
    Y = correlated_columns()
    np.testing.assert_allclose(pearson_correlation(Y).numpy(), np.corrcoef(Y.numpy().T), atol=1e-12)
    Y[:, 3] = 2.5
    R = pearson_correlation(Y)
    assert torch.isfinite(R).all()
    assert R[3, 3] == 1 and (R[3, torch.arange(12) != 3] == 0).all()


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.6, 0.9])
def test_graph_has_exactly_the_edges_above_threshold(threshold):
    Y = correlated_columns(seed=1)
    R = np.corrcoef(Y.numpy().T)
    expected = {(m, l) for m in range(12) for l in range(m + 1, 12) if abs(R[m, l]) > threshold}
    graph = pearson_graph(Y, threshold)
    edges = {tuple(e) for e in graph.edges.tolist()}
    assert edges == expected and graph.n_edges == len(expected) and graph.n_nodes == 12
    assert (graph.edges[:, 0] < graph.edges[:, 1]).all()
    for (m, l), r in zip(graph.edges.tolist(), graph.weights.tolist()):
        assert r == pytest.approx(R[m, l], abs=1e-12)  # signed


def root_to_leaf_sums(tree):
    sums = []
    for leaf in range(tree.n_leaves):
        total, v = 0.0, leaf
        while v >= 0:
            total += float(tree.weights[v])
            v = int(tree.parents[v])
        sums.append(total)
    return torch.tensor(sums, dtype=torch.float64)


@pytest.mark.parametrize("method", ["average", "single", "complete"])
def test_tree_weights_sum_to_one_on_every_root_to_leaf_path(method):
    tree = cluster_tree(correlated_columns(seed=2), method)
    assert tree.n_groups == 2 * 12 - 1
    assert torch.allclose(root_to_leaf_sums(tree), torch.ones(12, dtype=torch.float64), atol=1e-12)
    assert (tree.weights >= 0).all()
    assert tree.groups[-1].tolist() == list(range(12))  # the root owns every column
    for v in range(12):
        assert tree.groups[v].tolist() == [v]


def test_tree_groups_are_the_leaves_below_each_node_and_weights_follow_kim_xing():
    tree = cluster_tree(correlated_columns(seed=3))
    q = tree.n_leaves
    for v in range(q, tree.n_groups):
        children = torch.nonzero(tree.parents == v).flatten()
        assert len(children) == 2
        assert sorted(torch.cat([tree.groups[c] for c in children]).tolist()) == tree.groups[v].tolist()
    assert tree.weights[-1] == 0  # the root has s = 1, so g = 0
    assert tree.levels[:q].eq(0).all() and tree.levels[-1] == tree.levels.max()


def test_tree_of_one_column_and_of_identical_or_constant_columns():
    single = tree_from_correlation(torch.ones(1, 1))
    assert single.n_groups == 1 and single.weights.tolist() == [1.0] and single.groups[0].tolist() == [0]
    same = tree_from_correlation(torch.ones(4, 4, dtype=torch.float64))  # every distance 0
    assert same.weights[-1] == 1 and torch.allclose(root_to_leaf_sums(same), torch.ones(4, dtype=torch.float64))
    Y = correlated_columns(q=5)
    Y[:, :] = 1.0
    constant = cluster_tree(Y)
    assert torch.isfinite(constant.weights).all()
    assert torch.allclose(root_to_leaf_sums(constant), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: graph_from_correlation(torch.eye(3), threshold=1.0), "threshold"),
        (lambda: graph_from_correlation(torch.ones(2, 3)), "square"),
        (lambda: tree_from_correlation(torch.eye(3), method="ward"), "unknown linkage"),
        (lambda: tree_from_correlation(torch.full((2, 2), float("nan"))), "NaN"),
        (lambda: pearson_correlation(torch.ones(1, 3)), "n >= 2"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("k", [1, 3])
def test_knn_graph_gives_every_column_its_k_most_correlated(k):
    generator = torch.Generator().manual_seed(0)
    R = pearson_correlation(torch.randn(40, 9, generator=generator) @ torch.randn(9, 9, generator=generator))
    graph = knn_graph_from_correlation(R, k)
    edges = {tuple(e) for e in graph.edges.tolist()}
    assert len(edges) == graph.n_edges and all(m < l for m, l in edges)
    for j in range(9):
        others = sorted((o for o in range(9) if o != j), key=lambda o: -abs(float(R[j, o])))[:k]
        assert all((min(j, o), max(j, o)) in edges for o in others)
    for (m, l), r in zip(graph.edges.tolist(), graph.weights.tolist()):
        assert r == pytest.approx(float(R[m, l]))
    assert graph.n_edges <= 9 * k
    with pytest.raises(ValueError, match="k must be an int in"):
        knn_graph_from_correlation(R, 9)
