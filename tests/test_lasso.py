"""The penalties and solvers against cvxpy, support recovery, and the adaptive λ search."""

import math

import cvxpy as cp
import numpy as np
import pytest
import torch

from ibprune_lib.lasso import (
    L1,
    GraphLasso,
    TreeLasso,
    count_nonzero,
    fit,
    fit_gram,
    lambda_for_k,
    objective,
    objective_gram,
)
from ibprune_lib.lasso import adaptive
from ibprune_lib.lasso.adaptive import (
    COUNT_SLACK,
    PATH_STEP_MAX,
    PATH_STEP_MIN,
    PATH_STEP_MIN_FAR,
    SEARCH_TOL,
    candidate_scores,
    path_step,
)
from ibprune_lib.lasso.primal_dual import _WorkingRows
from ibprune_lib.lasso.tracking import PD_STALL_WINDOW
from ibprune_lib.structure import Graph, cluster_tree, pearson_graph

SOLVER = next(s for s in ("CLARABEL", "ECOS", "SCS") if s in cp.installed_solvers())


pytestmark = pytest.mark.usefixtures("one_thread")  # small solver ops: one thread is far faster


def regression(seed, n=60, p=16, q=12, noise=0.5):
    """X (n, p), Y (n, q) with a quarter of the rows of the true W non-zero and correlated responses."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64)
    W = torch.zeros(p, q, dtype=torch.float64)
    shared = torch.randn(p // 4, 1, generator=g, dtype=torch.float64)
    W[: p // 4] = shared + 0.3 * torch.randn(p // 4, q, generator=g, dtype=torch.float64)
    return X, X @ W + noise * torch.randn(n, q, generator=g, dtype=torch.float64)


def cvxpy_objective(X, Y, penalty, nonnegative=False):
    """The optimum of ½‖Y − XW‖² + Ω(W), Ω written independently from the formulas of book/formulation.md §2."""
    p, q = X.shape[1], Y.shape[1]
    W = cp.Variable((p, q), nonneg=nonnegative)
    terms = [0.5 * cp.sum_squares(Y.numpy() - X.numpy() @ W)]
    if isinstance(penalty, (L1, GraphLasso)):
        terms.append(penalty.lam * cp.sum(cp.abs(W)))
    if isinstance(penalty, GraphLasso):
        for (m, l), r in zip(penalty.graph.edges.tolist(), penalty.graph.weights.tolist()):
            terms.append(penalty.gamma * abs(r) * cp.sum(cp.abs(W[:, m] - np.sign(r) * W[:, l])))
    if isinstance(penalty, TreeLasso):
        for v, group in enumerate(penalty.tree.groups):
            weight = float(penalty.tree.weights[v])
            if weight > 0:
                terms.append(penalty.lam * weight * cp.sum(cp.norm(W[:, group.numpy()], 2, axis=1)))
    problem = cp.Problem(cp.Minimize(sum(terms)))
    problem.solve(solver=SOLVER)
    return problem.value


def penalties(X, Y):
    lam = 0.3 * float((X.T @ Y).abs().max())
    return {
        "l1": L1(lam),
        "graph": GraphLasso(lam, lam, pearson_graph(Y, 0.3)),
        "tree": TreeLasso(lam, cluster_tree(Y)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["l1", "graph", "tree"])
def test_fit_reaches_the_cvxpy_optimum(seed, name):
    X, Y = regression(seed)
    penalty = penalties(X, Y)[name]
    reference = cvxpy_objective(X, Y, penalty)
    result = fit(X, Y, penalty)
    assert result.converged
    assert objective(X, Y, result.W, penalty) <= reference * (1 + 1e-3)
    best = objective(X, Y, result.W, penalty)
    assert min(result.objective_trace) == pytest.approx(best) and result.objective_trace[-1] >= best - 1e-9


@pytest.mark.parametrize("threshold, graph_kind", [(0.0, "complete"), (0.1, "dense")])
@pytest.mark.parametrize("scale", [0.3, 0.7])
def test_graph_lasso_on_dense_and_complete_graphs_reaches_the_cvxpy_optimum(threshold, graph_kind, scale):
    X, Y = regression(9, q=10)
    graph = pearson_graph(Y, threshold)
    pairs = 10 * 9 // 2
    assert graph.n_edges == pairs if graph_kind == "complete" else graph.n_edges > pairs // 2
    lam = scale * float((X.T @ Y).abs().max())
    penalty = GraphLasso(lam, lam, graph)
    result = fit(X, Y, penalty)
    if scale == 0.7:  # sparse rows: the primal-dual steps run on the working rows only
        assert 0 < count_nonzero(result.W) < X.shape[1]
    assert objective(X, Y, result.W, penalty) <= cvxpy_objective(X, Y, penalty) * (1 + 1e-3)


@pytest.mark.parametrize("name", ["graph", "tree"])
def test_smoothing_proximal_gradient_reaches_the_cvxpy_optimum(name):
    X, Y = regression(0)
    penalty = penalties(X, Y)[name]
    if name == "tree":
        penalty = TreeLasso(penalty.lam, penalty.tree, exact_prox=False)  # internal groups smoothed
    result = fit(X, Y, penalty, solver="spg", tol=1e-9)
    assert result.solver == "spg" and result.mu > 0
    assert objective(X, Y, result.W, penalty) <= cvxpy_objective(X, Y, penalty) * (1 + 1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_primal_dual_on_the_smoothed_tree_reaches_the_cvxpy_optimum_and_traces_the_exact_objective(seed):
    X, Y = regression(seed)
    exact = penalties(X, Y)["tree"]
    penalty = TreeLasso(exact.lam, exact.tree, exact_prox=False)  # internal groups carried by the dual
    result = fit(X, Y, penalty, solver="primal_dual", tol=1e-9)
    assert result.solver == "primal_dual" and count_nonzero(result.W) > 0
    best = objective(X, Y, result.W, penalty)
    assert best <= cvxpy_objective(X, Y, penalty) * (1 + 1e-3)
    assert min(result.objective_trace) == pytest.approx(best, rel=1e-9)


def with_operator(penalty):
    """The penalty with its structured part carried by an operator (the tree's internal groups by a dual)."""
    if isinstance(penalty, TreeLasso):
        return TreeLasso(penalty.lam, penalty.tree, exact_prox=False)
    return penalty


@pytest.mark.parametrize("name", ["graph", "tree"])
def test_the_value_of_the_structured_part_from_the_operator_is_the_penaltys(name):
    X, Y = regression(3)
    penalty = with_operator(penalties(X, Y)[name])
    W = torch.randn(X.shape[1], Y.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    from_operator = penalty.operator_value(penalty.operator(W))
    assert float(from_operator) == pytest.approx(float(penalty.structured_value(W)), rel=1e-12)


@pytest.mark.parametrize("name", ["graph", "tree"])
def test_the_in_place_and_buffered_operator_forms_match_the_plain_ones(name):
    X, Y = regression(4)
    penalty = with_operator(penalties(X, Y)[name])
    Wt = torch.randn(Y.shape[1], X.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    KW = penalty.operator_t(Wt)
    buffer = torch.full_like(KW, float("nan"))  # whatever the buffer held must not leak into the result
    assert penalty.operator_t(Wt, out=buffer) is buffer and torch.equal(buffer, KW)
    scratch = torch.full_like(KW, float("nan"))
    assert float(penalty.operator_value(KW, scratch=scratch)) == pytest.approx(float(penalty.operator_value(KW)))
    A = 3 * KW
    projected = penalty.project_dual(A)
    assert penalty.project_dual_(A) is A and torch.allclose(A, projected) and not torch.equal(A, 3 * KW)


def test_the_working_rows_step_bound_is_at_least_their_largest_eigenvalue_and_at_most_the_whole_ones():
    X, Y = regression(15, n=200, p=40, q=12, noise=0.3)
    X = X + 2 * torch.randn(200, 1, generator=torch.Generator().manual_seed(2), dtype=X.dtype)  # one dominant mode
    X, Y = X / X.norm(dim=0), Y / Y.norm(dim=0)
    G, B = X.T @ X, X.T @ Y
    g_max = float(torch.linalg.eigvalsh(G)[-1])
    penalty = GraphLasso(0.05, 0.05, pearson_graph(Y, 0.3))
    W = torch.zeros(40, 12, dtype=G.dtype)
    W[::3] = 1.0
    work = _WorkingRows(G, B, penalty, W, penalty.project_dual(penalty.operator(W)), g_max)
    exact = float(torch.linalg.eigvalsh(G[::3, ::3])[-1])
    assert exact <= work.g_norm <= exact * 1.01 and work.g_norm < 0.5 * g_max
    work.Wt[:, 1:] = 0
    work.shrink()  # one row left: its diagonal entry
    assert work.g_norm == pytest.approx(float(G[0, 0]), rel=1e-6)


def test_nonnegative_lasso_matches_cvxpy():
    X, Y = regression(3)
    penalty = L1(0.2 * float((X.T @ Y).abs().max()), nonnegative=True)
    result = fit(X, Y, penalty)
    assert (result.W >= 0).all()
    assert objective(X, Y, result.W, penalty) <= cvxpy_objective(X, Y, penalty, nonnegative=True) * (1 + 1e-3)


@pytest.mark.parametrize("name", ["l1", "graph", "tree"])
def test_planted_sparse_support_is_recovered(name):
    g = torch.Generator().manual_seed(4)
    X = torch.randn(200, 20, generator=g, dtype=torch.float64)
    W = torch.zeros(20, 8, dtype=torch.float64)
    support = [1, 5, 9, 13, 17]
    W[support] = 1.0 + torch.rand(5, 8, generator=g, dtype=torch.float64)
    Y = X @ W + 0.1 * torch.randn(200, 8, generator=g, dtype=torch.float64)
    penalty = penalties(X, Y)[name]
    penalty = type(penalty)(**{**vars_of(penalty), "lam": 20.0})
    result = fit(X, Y, penalty)
    assert torch.nonzero((result.W != 0).any(dim=1)).flatten().tolist() == support


def vars_of(penalty):
    if isinstance(penalty, L1):
        return {"lam": penalty.lam}
    if isinstance(penalty, GraphLasso):
        return {"lam": penalty.lam, "gamma": 20.0, "graph": penalty.graph}
    return {"lam": penalty.lam, "tree": penalty.tree}


def test_gram_form_equals_data_form():
    X, Y = regression(5)
    penalty = penalties(X, Y)["tree"]
    W = torch.randn(16, 12, dtype=torch.float64)
    G, B, yy = X.T @ X, X.T @ Y, float(Y.square().sum())
    assert objective_gram(G, B, yy, W, penalty) == pytest.approx(objective(X, Y, W, penalty), rel=1e-10)
    assert torch.equal(fit(X, Y, penalty).W, fit_gram(G, B, yy, penalty).W)


def test_warm_start_from_the_answer_stops_at_once_and_never_gets_worse():
    X, Y = regression(6)
    penalty = penalties(X, Y)["graph"]
    first = fit(X, Y, penalty)
    again = fit(X, Y, penalty, W0=first.W)
    assert again.n_iter < first.n_iter
    assert objective(X, Y, again.W, penalty) <= objective(X, Y, first.W, penalty) + 1e-9


@pytest.mark.parametrize("name", ["l1", "graph", "tree"])
@pytest.mark.parametrize("k", [2, 4, 7])
def test_adaptive_lambda_hits_exactly_k(name, k):
    X, Y = regression(7, n=80, p=16, q=10, noise=0.3)
    X = X / X.norm(dim=0)
    Y = Y / Y.norm(dim=0)
    graph, tree = pearson_graph(Y, 0.3), cluster_tree(Y)
    make = {
        "l1": lambda lam: L1(lam),
        "graph": lambda lam: GraphLasso(lam, lam, graph),
        "tree": lambda lam: TreeLasso(lam, tree),
    }[name]
    result = lambda_for_k((X.T @ X, X.T @ Y, float(Y.square().sum())), make, k, tol=1e-8)
    assert count_nonzero(result.W) == k
    assert result.kept.tolist() == torch.nonzero((result.W != 0).any(dim=1)).flatten().tolist()
    assert result.n_solves == len(result.trace) <= 30
    assert result.scores.shape == (16,) and (result.scores[result.kept] >= 1).all()


def test_the_search_brackets_on_loose_solves_and_answers_with_a_tight_one(monkeypatch):
    X, Y = regression(11, n=80, p=16, q=10, noise=0.3)
    X, Y = X / X.norm(dim=0), Y / Y.norm(dim=0)
    graph = pearson_graph(Y, 0.3)
    tols = []

    def recording_fit_gram(*args, **kwargs):
        tols.append(kwargs["tol"])
        return fit_gram(*args, **kwargs)

    monkeypatch.setattr(adaptive, "fit_gram", recording_fit_gram)
    problem = (X.T @ X, X.T @ Y, float(Y.square().sum()))
    result = lambda_for_k(problem, lambda lam: GraphLasso(lam, lam, graph), 5, tol=1e-8)
    assert tols[0] == SEARCH_TOL and tols[-1] == 1e-8 and tols == sorted(tols, reverse=True)
    assert count_nonzero(result.W) == 5 and result.n_solves == len(tols)
    tight = fit_gram(*problem, GraphLasso(result.lam, result.lam, graph), tol=1e-10, max_iter=20000)
    assert objective_gram(*problem, result.W, GraphLasso(result.lam, result.lam, graph)) <= tight.objective * (1 + 1e-6)


def test_a_primal_dual_solve_warm_started_nearby_runs_a_whole_stall_window_before_it_stops():
    X, Y = regression(12, n=200, p=64, q=24, noise=0.3)
    X, Y = X / X.norm(dim=0), Y / Y.norm(dim=0)
    graph = pearson_graph(Y, 0.3)
    problem = (X.T @ X, X.T @ Y, float(Y.square().sum()))
    lam = 0.3 * float(problem[1].abs().max())
    near = fit_gram(*problem, GraphLasso(lam, lam, graph), tol=1e-5)
    loose = fit_gram(*problem, GraphLasso(0.95 * lam, 0.95 * lam, graph), W0=near.W, dual0=near.dual, tol=SEARCH_TOL)
    assert loose.solver == "primal_dual" and loose.n_iter > PD_STALL_WINDOW


def test_the_search_accepts_a_count_within_the_solvers_resolution_and_keeps_the_top_k():
    X, Y = regression(13, n=600, p=400, q=4, noise=0.3)
    X, Y = X / X.norm(dim=0), Y / Y.norm(dim=0)
    k, slack = 150, math.ceil(COUNT_SLACK * 400) - 1
    result = lambda_for_k((X.T @ X, X.T @ Y, float(Y.square().sum())), lambda lam: L1(lam), k)
    assert slack == 1 and k <= count_nonzero(result.W) <= k + slack
    scores = candidate_scores(result.W)
    assert len(result.kept) == k and scores[result.kept].min() >= scores.sort().values[-k]


def test_working_rows_that_leave_keep_their_dual_for_when_they_return():
    g = torch.Generator().manual_seed(0)
    G, A = torch.eye(6, dtype=torch.float64), torch.rand(3, 6, generator=g, dtype=torch.float64)
    B = torch.rand(6, 3, generator=g, dtype=torch.float64)
    penalty = GraphLasso(0.1, 0.1, Graph(torch.tensor([[0, 1], [1, 2], [0, 2]]), torch.tensor([0.9, -0.8, 0.7]), 3))
    W = torch.ones(6, 3, dtype=torch.float64)
    work = _WorkingRows(G, B, penalty, W, A.clone(), g_max=1.0)
    work.A_w.mul_(0.5)  # the solve moves the duals of its rows, and Kᵀ(A) with them
    work.adjoint_t = penalty.adjoint_t(work.A_w)
    work.Wt[:, 1:5] = 0
    work.shrink()
    assert work.rows.tolist() == [0, 5] and torch.equal(work.G_ww, G[[0, 5]][:, [0, 5]])
    assert torch.equal(work.Bt, B[[0, 5]].T)
    assert torch.equal(work.GWt, (G @ torch.ones(6, 3, dtype=torch.float64))[[0, 5]].T)
    assert work.dual_norm() == pytest.approx(float((0.5 * A).norm()))
    work.join(torch.tensor([3]))
    assert torch.equal(work.full_dual(), 0.5 * A)
    assert torch.equal(work.KW_w[:, 2], torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(work.adjoint_t[:, 2], penalty.adjoint(0.5 * A)[3])


def test_the_rows_outside_the_working_set_that_a_step_makes_non_zero_are_the_ones_that_join():
    X, Y = regression(14, n=200, p=40, q=12, noise=0.3)
    X, Y = X / X.norm(dim=0), Y / Y.norm(dim=0)
    G, B = X.T @ X, X.T @ Y
    penalty = GraphLasso(0.05, 0.05, pearson_graph(Y, 0.3))
    g = torch.Generator().manual_seed(1)
    W = torch.randn(40, 12, generator=g, dtype=G.dtype) * (torch.rand(40, 1, generator=g) < 0.3)
    A = penalty.project_dual(torch.randn(penalty.operator(W).shape, generator=g, dtype=G.dtype))
    work, tau = _WorkingRows(G, B, penalty, W, A.clone(), float(torch.linalg.eigvalsh(G)[-1])), 0.01
    full_step = penalty.prox(W - tau * (G @ W - B + penalty.adjoint(A)), tau)
    expected = [i for i in range(40) if i not in work.rows.tolist() and bool((full_step[i] != 0).any())]
    assert expected and sorted(work.violators(tau).tolist()) == expected


def test_a_zero_row_whose_dual_column_can_hold_it_is_certified_and_one_whose_cannot_joins():
    lam, gamma = 0.1, 0.2
    penalty = GraphLasso(lam, gamma, Graph(torch.tensor([[0, 1]]), torch.tensor([1.0]), 2))
    # gradient at W = 0 is −B; row 0 needs a = −0.5 on the edge (inside [−1, 1]), row 1 needs a = −2 (outside)
    B = -torch.tensor([[lam + 0.5 * gamma, -(lam + 0.5 * gamma)], [lam + 2 * gamma, -(lam + 2 * gamma)]])
    B = B.double()
    G = torch.eye(2, dtype=torch.float64)
    A = torch.zeros(1, 2, dtype=torch.float64)
    work = _WorkingRows(G, B, penalty, torch.zeros(2, 2, dtype=torch.float64), A, g_max=1.0)
    assert work.violators(0.01).tolist() == [0, 1]  # with their dual columns at zero both would move
    assert work.violators(0.01, certify=True).tolist() == [1]
    assert float(work.A[0, 0]) == pytest.approx(-0.5) and float(work.A[0, 1]) == -1.0  # kept in Q
    assert torch.allclose(work.adjoint_A, penalty.adjoint(work.A))
    assert work.dual_norm() == pytest.approx(float(work.A.norm()))


def test_path_step_halves_while_the_count_stays_then_extrapolates_within_bounds():
    assert path_step(1.0, 0, None, 10) == 0.5
    assert path_step(0.5, 3, (1.0, 3), 10) == 0.25  # the same count: halve
    assert path_step(0.5, 2, (1.0, 3), 10) == pytest.approx(0.5 * PATH_STEP_MIN_FAR)  # it fell: longest step
    assert path_step(0.5, 7, (1.0, 8), 10) == pytest.approx(0.5 * PATH_STEP_MIN)
    # 6 (4) candidates gained over log 2: k = 10 lies past the longest step, which is longer below k/2
    assert path_step(0.5, 6, (1.0, 0), 10) == pytest.approx(0.5 * PATH_STEP_MIN)
    assert path_step(0.5, 4, (1.0, 0), 10) == pytest.approx(0.5 * PATH_STEP_MIN_FAR)
    assert path_step(0.5, 50, (1.0, 0), 55) == pytest.approx(0.5 * math.exp(-5 * math.log(2) / 50))
    assert path_step(0.5, 999, (1.0, 0), 1000) == pytest.approx(0.5 * PATH_STEP_MAX)


def test_adaptive_lambda_selects_columns():
    X, Y = regression(8, q=10)
    result = lambda_for_k((X.T @ X, X.T @ Y, float(Y.square().sum())), lambda lam: L1(lam), 3, direction="columns")
    assert result.kept.shape == (3,) and result.scores.shape == (10,)
    assert count_nonzero(result.W, "columns") >= 3


@pytest.mark.parametrize("penalty", ["l1", "graph"])
def test_a_k_no_lambda_reaches_is_completed_by_the_correlation_with_the_responses(penalty):
    X, Y = regression(9)
    X[:, 8:] *= 1e-9 * torch.arange(1, 9, dtype=X.dtype)  # rank-deficient in effect: these rows never enter
    problem = (X.T @ X, X.T @ Y, float(Y.square().sum()))
    graph = Graph(torch.tensor([[0, 1], [2, 3]]), torch.ones(2, dtype=torch.float64), 12)
    make = (lambda lam: L1(lam)) if penalty == "l1" else (lambda lam: GraphLasso(lam, lam, graph))
    result = lambda_for_k(problem, make, 11)
    entered = count_nonzero(result.W)
    assert entered < 11 and result.completed == 11 - entered and "become non-zero" in result.stopped
    rest = sorted(range(8, 16), key=lambda i: -float((X.T @ Y)[i].norm()))
    assert result.kept.tolist() == sorted([*range(entered), *rest[: 11 - entered]])  # the largest ‖B_i‖ next
    assert sorted(rest[: 11 - entered]) != list(range(8, 19 - entered))  # not merely the lowest indices
    assert lambda_for_k(problem, make, 4).completed == 0  # reachable: no completion


def test_out_of_range_k_is_a_clear_error():
    X, Y = regression(9)
    problem = (X.T @ X, X.T @ Y, float(Y.square().sum()))
    with pytest.raises(ValueError, match="k must be"):
        lambda_for_k(problem, lambda lam: L1(lam), 0)
    with pytest.raises(ValueError, match="k must be"):
        lambda_for_k(problem, lambda lam: L1(lam), 17)
    with pytest.raises(ValueError, match="direction"):
        lambda_for_k(problem, lambda lam: L1(lam), 3, direction="diagonal")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: L1(-0.1), "lam"),
        (lambda: L1(float("nan")), "lam"),
        (lambda: GraphLasso(0.1, -1.0, Graph(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0), 3)), "gamma"),
        (lambda: fit(torch.randn(5, 3), torch.randn(4, 2), L1(0.1)), "same n rows"),
        (lambda: fit(torch.full((5, 3), float("nan")), torch.randn(5, 2), L1(0.1)), "NaN"),
        (lambda: fit_gram(torch.randn(3, 4), torch.randn(3, 2), 1.0, L1(0.1)), "square"),
        (lambda: fit_gram(torch.eye(3), torch.randn(4, 2), 1.0, L1(0.1)), "rows"),
        (lambda: fit_gram(torch.eye(3), torch.randn(3, 2), 1.0, L1(0.1), W0=torch.zeros(2, 2)), "W0"),
        (lambda: fit_gram(torch.eye(3), torch.randn(3, 2), 1.0, L1(0.1), solver="newton"), "unknown solver"),
        (lambda: fit_gram(torch.eye(3), torch.randn(3, 2), 1.0, GraphLasso(0.1, 0.1, pearson_graph(torch.randn(9, 4)))),
         "4 nodes"),
        (lambda: fit_gram(torch.eye(3), torch.randn(3, 4), 1.0, TreeLasso(0.1, cluster_tree(torch.randn(9, 5)))),
         "5 leaves"),
        (lambda: fit_gram(torch.eye(3), torch.randn(3, 2), -1.0, L1(0.1)), "yy"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_device_of_its_inputs():
    X, Y = regression(10)
    for penalty in penalties(X, Y).values():
        cpu = fit(X, Y, penalty)
        gpu = fit(X.cuda(), Y.cuda(), penalty)
        assert gpu.W.is_cuda
        assert objective(X, Y, gpu.W.cpu(), penalty) == pytest.approx(objective(X, Y, cpu.W, penalty), rel=1e-6)
