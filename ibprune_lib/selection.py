"""One entry point for choosing k channels of a layer: ``select`` (book/formulation.md §1–4, §6).

Methods:

* ``"sglp"`` (sGLP-IB): graph lasso, graph over the response columns (|Pearson r of Ỹ's columns| > threshold,
  or with ``knn`` each column joined to its knn most correlated), fusion weight γ = gamma_graph·λ so that the
  adaptive search scales the whole penalty.
* ``"stlp"`` (sTLP-IB): tree lasso, tree from average-linkage clustering of Ỹ's columns on 1 − r.
* ``"lasso"``: plain L1 on the same multi-response problem.
* ``"apib"`` (APIB's HSIC lasso baseline): one response, vec K̄ of the consumer's whole output (all its
  channels flattened into one feature vector per sample, as APIB's public code builds it, γ = 1/(c_out·h'·w')
  by default), regressed on the per-channel K̄ of the input, plain L1. APIB's public code calls sklearn's
  ``Lasso`` (signed coefficients, unnormalised columns); here the columns follow ``normalise`` like the other
  methods, and ``apib_nonnegative=True`` gives the non-negative HSIC lasso of Yamada et al. instead.

Directions: ``"rows"`` (default): ``layer_inputs`` (bs, c_in, h, w) are the candidate channels, the X side,
and ``layer_outputs`` (bs, c_out, h', w') the consumer's output, the Y side. ``"columns"``: the candidates are
the response columns: ``layer_outputs`` are the candidate layer's own outputs and ``layer_inputs`` that
layer's input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .kernels import GramProblem, check_features, gram_problem, raw_problem
from .lasso import L1, GraphLasso, TreeLasso, lambda_for_k
from .runtime import one_thread_on
from .settings import SelectionSettings
from .structure import graph_from_correlation, knn_graph_from_correlation, tree_from_correlation

METHODS = ("sglp", "stlp", "apib", "lasso")


@dataclass
class Selection:
    """The channels a method keeps.

    Attributes:
        kept: (k,) long, ascending indices of the kept candidates.
        scores: (n_candidates,) float, higher is more important (number of non-zero coefficients, ties by
            norm; see ``lasso.candidate_scores``).
        diagnostics: λ, solves, the (λ, count) trace, timings, structure size and settings.
    """

    kept: torch.Tensor
    scores: torch.Tensor
    diagnostics: dict = field(default_factory=dict)


def _apib_response(layer_outputs: torch.Tensor) -> torch.Tensor:
    """The consumer's whole output as one channel: (bs, 1, c·h·w, 1), so its Gram uses d = c·h·w."""
    return layer_outputs.reshape(layer_outputs.shape[0], 1, -1, 1)


def select(
    layer_inputs: torch.Tensor,
    layer_outputs: torch.Tensor,
    k: int,
    method: str = "stlp",
    settings: SelectionSettings | None = None,
    progress: bool = False,
    **changes,
) -> Selection:
    """Choose k channels of a layer by structured lasso with adaptive λ.

    Args:
        layer_inputs: (bs, c_in, h, w) or (bs, c_in) features on the X side.
        layer_outputs: (bs, c_out, h', w') or (bs, c_out) features on the Y side, same batch.
        k: channels to keep, 1 ≤ k ≤ c_in (direction rows) or c_out (columns).
        method: one of ``METHODS``.
        settings: kernel, direction, structure, solver (:class:`~ibprune_lib.settings.SelectionSettings`);
            None: the paper's.
        progress: show a tqdm bar over the λ search.
        **changes: settings to change by name, over ``settings`` (``kernel="gaussian"``, ``threshold=0.5``…).

    Returns:
        The Selection; ``diagnostics`` has ``lam``, ``n_solves``, ``n_iter``, ``trace``, ``seconds``,
        ``seconds_problem``, ``seconds_search``, ``n_candidates``, ``completed`` (candidates chosen by the
        completion rule because no λ made k non-zero, ``lasso.adaptive``; 0 normally) with ``stopped`` (why), and
        ``n_edges`` (sglp) or ``n_groups`` (stlp).

    Raises:
        ValueError: an unknown method; a bad setting (``SelectionSettings``); k out of range; malformed
            features; APIB with ``direction="columns"`` or ``use_gram=False``.
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    settings = (settings or SelectionSettings()).replace(**changes)
    direction = settings.direction
    check_features(layer_inputs, "layer_inputs")
    check_features(layer_outputs, "layer_outputs")
    n_candidates = layer_inputs.shape[1] if direction == "rows" else layer_outputs.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_candidates:
        raise ValueError(
            f"k must be an int in [1, {n_candidates}] (candidate channels, direction={direction!r}), got {k!r}"
        )
    if method == "apib" and (direction != "rows" or not settings.use_gram):
        raise ValueError("APIB regresses one Gram response on the input channels: use direction='rows', use_gram=True")

    with one_thread_on(layer_inputs.device):  # the same channels at any thread count (runtime.one_thread_on)
        responses = _apib_response(layer_outputs) if method == "apib" else layer_outputs
        problem: GramProblem
        if settings.use_gram:
            problem = gram_problem(layer_inputs, responses, settings.kernel, settings.kernel_gamma, settings.normalise,
                                   settings.dtype)
        else:
            problem = raw_problem(layer_inputs, responses, settings.normalise, settings.dtype)
        seconds_problem = time.perf_counter() - start

        kernel = settings.kernel if settings.use_gram else "raw"
        diagnostics: dict = {"method": method, "kernel": kernel, "direction": direction}
        if method == "sglp":
            q = problem.response_corr.shape[0]
            if settings.knn is None or q < 2:
                graph = graph_from_correlation(problem.response_corr, settings.threshold)
            else:
                graph = knn_graph_from_correlation(problem.response_corr, min(settings.knn, q - 1))
            diagnostics["n_edges"] = graph.n_edges

            def make_penalty(lam):
                return GraphLasso(lam, settings.gamma_graph * lam, graph)

        elif method == "stlp":
            tree = tree_from_correlation(problem.response_corr, settings.linkage)
            diagnostics["n_groups"] = tree.n_groups

            def make_penalty(lam):
                return TreeLasso(lam, tree, exact_prox=settings.tree_prox == "exact")

        else:
            nonnegative = settings.apib_nonnegative and method == "apib"

            def make_penalty(lam):
                return L1(lam, nonnegative=nonnegative)

        search_start = time.perf_counter()
        result = lambda_for_k(problem, make_penalty, k, direction, settings.max_solves, settings.tol,
                              settings.max_iter, settings.solver, progress, settings.score)
        now = time.perf_counter()
        diagnostics.update(
            lam=result.lam,
            n_solves=result.n_solves,
            n_iter=result.n_iter,
            trace=result.trace,
            n_candidates=n_candidates,
            seconds=now - start,
            seconds_problem=seconds_problem,
            seconds_search=now - search_start,
            completed=result.completed,
            stopped=result.stopped,
        )
        return Selection(kept=result.kept, scores=result.scores, diagnostics=diagnostics)
