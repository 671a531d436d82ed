"""select(): every method and direction on features with a known answer, and its errors."""

import pytest
import torch

from ibprune_lib.lasso import candidate_scores
from ibprune_lib.selection import METHODS, Selection, select


pytestmark = pytest.mark.usefixtures("one_thread")  # small solver ops: one thread is far faster


def planted(seed=0, bs=32):
    """x (bs, 8, 3, 3) random; y (bs, 8, 3, 3) whose channel j is 2·x_{j mod 4}: only x_0..x_3 matter."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bs, 8, 3, 3, generator=g)
    y = 2 * torch.cat([x[:, :4], x[:, :4]], dim=1)
    return x, y


def _layer(seed=0, bs=32, c_in=24, c_out=16):
    """x (bs, c_in, 4, 4) random; y (bs, c_out, 4, 4) a random mix of x's channels through a ReLU, plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bs, c_in, 4, 4, generator=g)
    mix = torch.randn(c_out, c_in, generator=g) / c_in**0.5
    y = torch.relu(torch.einsum("oc,bchw->bohw", mix, x)) + 0.1 * torch.randn(bs, c_out, 4, 4, generator=g)
    return x, y


@pytest.mark.parametrize("method", METHODS)
def test_rows_keep_the_input_channels_that_explain_the_output(method):
    x, y = planted()
    selection = select(x, y, 4, method=method, kernel="linear")
    assert isinstance(selection, Selection)
    assert selection.kept.tolist() == [0, 1, 2, 3]
    assert selection.kept.dtype == torch.long and selection.scores.shape == (8,)
    d = selection.diagnostics
    assert d["method"] == method and d["n_candidates"] == 8 and d["n_solves"] == len(d["trace"]) >= 1
    assert d["seconds"] >= d["seconds_search"] > 0 and d["lam"] > 0
    assert ("n_edges" in d) == (method == "sglp") and ("n_groups" in d) == (method == "stlp")


@pytest.mark.parametrize("method", ["sglp", "stlp", "lasso"])
def test_columns_keep_the_output_channels_the_input_explains(method):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, 3, 3, generator=g)
    noise = torch.randn(32, 4, 3, 3, generator=g)
    y = torch.cat([noise[:, :2], x[:, :3] + 0.05 * noise[:, 2:3], noise[:, 3:]], dim=1)  # columns 2, 3, 4 explained
    selection = select(x, y, 3, method=method, kernel="linear", direction="columns")
    assert selection.kept.tolist() == [2, 3, 4] and selection.scores.shape == (6,)


@pytest.mark.parametrize("kernel", ["laplacian", "gaussian", "sigmoid"])
def test_every_kernel_and_the_raw_variant_give_k_sorted_distinct_channels(kernel):
    x, y = planted(2)
    for selection in (select(x, y, 3, kernel=kernel), select(x, y, 3, use_gram=False)):
        kept = selection.kept.tolist()
        assert len(kept) == 3 and kept == sorted(set(kept)) and all(0 <= i < 8 for i in kept)
    assert select(x, y, 3, use_gram=False).diagnostics["kernel"] == "raw"


def test_a_consumer_with_flat_outputs_and_a_strided_one():
    x, _ = planted(3)
    flat = torch.nn.functional.linear(x.mean(dim=(2, 3)), torch.randn(5, 8))
    assert len(select(x, flat, 4, method="stlp").kept) == 4
    strided = torch.nn.functional.conv2d(x, torch.randn(6, 8, 3, 3), stride=2, padding=1)
    assert len(select(x, strided, 4, method="sglp", use_gram=False).kept) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "hrank"}, "unknown method"),
        ({"direction": "sideways"}, "unknown direction"),
        ({"k": 0}, "k must be"),
        ({"k": 9}, "k must be"),
        ({"k": 2.0}, "k must be"),
        ({"method": "apib", "direction": "columns"}, "APIB"),
        ({"method": "apib", "use_gram": False}, "APIB"),
        ({"kernel": "cosine"}, "unknown kernel"),
        ({"linkage": "ward"}, "unknown linkage"),
        ({"threshold": 1.5, "method": "sglp"}, "threshold"),
        ({"tree_prox": "approximate"}, "unknown tree_prox 'approximate': choose one of exact, smoothed"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    x, y = planted()
    with pytest.raises(ValueError, match=message):
        select(x, y, **{"k": 3, **kwargs})


def test_non_finite_features_raise():
    x, y = planted()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        select(x, y, 3)


def test_the_study_options_reach_the_selection():
    x, y = planted()
    threshold = select(x, y, 4, method="sglp", kernel="linear", threshold=0.9)
    knn = select(x, y, 4, method="sglp", kernel="linear", knn=2)
    assert knn.kept.tolist() == [0, 1, 2, 3] and knn.diagnostics["n_edges"] >= 8 > 0
    assert knn.diagnostics["n_edges"] != threshold.diagnostics["n_edges"]
    by_norm = select(x, y, 4, method="lasso", kernel="linear", score="norm")
    assert by_norm.kept.tolist() == [0, 1, 2, 3]
    W = torch.tensor([[0.1, 0.1], [3.0, 0.0], [0.0, 0.0]])  # two small coefficients against one large
    assert candidate_scores(W, score="nnz_then_norm").argmax() == 0 and candidate_scores(W, score="norm").argmax() == 1
    with pytest.raises(ValueError, match="unknown score 'rank': choose one of nnz_then_norm, norm"):
        select(x, y, 4, method="lasso", score="rank")


@pytest.mark.slow
def test_the_smoothed_tree_penalty_reaches_the_solver_and_changes_the_problem(monkeypatch):
    import ibprune_lib.selection as selection_module

    made = []
    tree_lasso = selection_module.TreeLasso
    monkeypatch.setattr(selection_module, "TreeLasso", lambda *a, **kw: made.append(kw) or tree_lasso(*a, **kw))
    x, y = _layer(seed=5, bs=32, c_in=24, c_out=16)
    exact = select(x, y, 8, method="stlp", solver="spg")
    smoothed = select(x, y, 8, method="stlp", solver="spg", tree_prox="smoothed")
    assert {kw["exact_prox"] for kw in made} == {True, False}
    assert exact.diagnostics["trace"] != smoothed.diagnostics["trace"]  # another problem, another λ path


@pytest.mark.slow
@pytest.mark.parametrize(("method", "bs", "channels", "k"), [
    ("sglp", 48, (96, 80), 30), ("stlp", 64, (256, 256), 100), ("apib", 48, (96, 80), 30),
])  # sGLP-IB and sTLP-IB kept other channels at 2 threads at these sizes before select ran on one thread
def test_the_same_layer_keeps_the_same_channels_at_one_and_two_threads(method, bs, channels, k):
    x, y = _layer(seed=3, bs=bs, c_in=channels[0], c_out=channels[1])
    before = torch.get_num_threads()
    picks = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            selection = select(x, y, k, method=method)
            picks.append((selection.kept.tolist(), selection.diagnostics["lam"], selection.diagnostics["trace"]))
            assert torch.get_num_threads() == threads  # restored after the selection
    finally:
        torch.set_num_threads(before)
    assert picks[0] == picks[1]


def test_the_selection_solves_on_one_thread_whatever_the_caller_set(monkeypatch):
    import ibprune_lib.selection as selection_module

    seen = []
    search = selection_module.lambda_for_k
    monkeypatch.setattr(selection_module, "lambda_for_k",
                        lambda *args, **kwargs: seen.append(torch.get_num_threads()) or search(*args, **kwargs))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        select(*_layer(seed=4), 5, method="stlp")
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sglp", "stlp", "apib"])
def test_a_layer_whose_features_cannot_reach_k_is_completed_and_says_so(method):
    x, y = _layer(seed=6, bs=32, c_in=16, c_out=12)
    x[:, 10:] = 0  # six dead channels: no λ makes them non-zero
    selection = select(x, y, 13, method=method)
    d = selection.diagnostics
    assert d["completed"] >= 3 and "become non-zero" in d["stopped"]
    assert set(range(10)) <= set(selection.kept.tolist()) and len(selection.kept) == 13
    assert select(x, y, 5, method=method).diagnostics["completed"] == 0
