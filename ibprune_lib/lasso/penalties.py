"""The penalties Ω(W) on a (p, q) coefficient matrix, split the way the solvers use them.

Every penalty is Ω(W) = P(W) + Ω_s(W) (book/formulation.md §2–3):

* P, the part with an exact prox: at least the column-weighted L1 term Σ_ij t_j |W_ij| (soft-thresholding,
  exact zeros), and for the tree the whole tree (see ``TreeLasso``).
* Ω_s(W) = max_{A ∈ Q} ⟨K(W), A⟩, a linear map K of W (the edge or group matrix C applied to each row of W)
  and a simple dual set Q. The solvers either smooth it (SPG, Nesterov: A* = proj_Q(K(W)/μ)) or keep it exact
  through the dual (primal-dual).

K and the projection onto Q act row by row of W: column i of K(W) depends on row i of W only, and Q is a
product over those columns. So ``operator(W[rows]) == operator(W)[:, rows]``, and a solver may update only
the rows of W that are non-zero (a zero row leaves its dual where it is).

Penalties:

* ``L1``: t_j = λ, no Ω_s (optionally W ≥ 0).
* ``GraphLasso``: t_j = λ; Ω_s = γ Σ_(m,l)∈E |r_ml| Σ_i |W_im − sign(r_ml) W_il|, Q a box.
* ``TreeLasso``: λ Σ_i Σ_v w_v ‖W_{i,G_v}‖₂; leaves as t_j = λ w_leaf(j); the internal groups in the exact
  prox by default, or as Ω_s with Q a product of unit balls.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

import torch

from ..structure import Graph, Tree


def _sparse_csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape, like: torch.Tensor):
    """A CSR matrix on ``like``'s device and dtype from COO triplets (duplicates summed)."""
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to(device=like.device, dtype=like.dtype).to_sparse_csr()


def _sparse_times(C: torch.Tensor, X: torch.Tensor, scale: float, out: torch.Tensor | None) -> torch.Tensor:
    """scale · C @ X for a sparse C, into ``out`` (allocated if None)."""
    if out is None:
        out = X.new_empty((C.shape[0], X.shape[1]))
    return torch.addmm(out, C, X, beta=0, alpha=scale, out=out)


def _nonzero_rows(W: torch.Tensor) -> torch.Tensor:
    """W's rows with a non-zero entry, as a (a, q) tensor (structured parts vanish on zero rows)."""
    return W[(W != 0).any(dim=1)]


def _check_lam(lam: float, name: str = "lam") -> float:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {lam!r}")
    return float(lam)


class Penalty(ABC):
    """Ω(W) = Σ_ij t_j |W_ij| + (more exact-prox terms) + Ω_s(W); subclasses define each part.

    Attributes:
        lam: the overall strength λ ≥ 0 (the quantity the adaptive search varies).
        nonnegative: constrain W ≥ 0 (the prox clips at zero).
    """

    lam: float
    nonnegative: bool = False

    @abstractmethod
    def l1_weights(self, q: int, like: torch.Tensor) -> torch.Tensor:
        """(q,) per-column thresholds t_j of the L1 part, dtype and device of ``like``."""

    def check_shape(self, q: int) -> None:
        """Raise a ValueError if the penalty cannot act on W with q columns."""

    def structured_row_values(self, W: torch.Tensor) -> torch.Tensor:
        """(p,) the exact value of everything but the L1 part, row by row (every penalty here is a sum over
        the rows of W)."""
        return W.new_zeros(W.shape[0])

    def structured_value(self, W: torch.Tensor) -> torch.Tensor:
        """The exact value of everything but the L1 part, as a 0-d tensor."""
        return self.structured_row_values(W).sum()

    def row_values(self, W: torch.Tensor) -> torch.Tensor:
        """(p,) Ω restricted to each row of W: Ω(W) = Σ_i row_values(W)_i."""
        return W.abs() @ self.l1_weights(W.shape[1], W) + self.structured_row_values(W)

    def value(self, W: torch.Tensor) -> torch.Tensor:
        """Ω(W), exact, as a 0-d tensor. W: (p, q)."""
        return self.l1_value(W) + self.structured_value(W)

    def prox(self, V: torch.Tensor, step: float) -> torch.Tensor:
        """argmin_W ½‖W − V‖² + step·P(W): soft-thresholding by step·t_j (clipped at 0 if nonnegative)."""
        t = self.l1_weights(V.shape[1], V) * step
        if self.nonnegative:
            return (V - t).clamp_min(0)
        return V.sign() * (V.abs() - t).clamp_min(0)

    # The linear structured part Ω_s(W) = max_{A ∈ Q} ⟨K(W), A⟩; a penalty without one keeps the defaults.

    @property
    def has_operator(self) -> bool:
        """Whether Ω_s is non-trivial (the solver must smooth it or carry its dual)."""
        return False

    def operator_t(self, Wt: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """K(W) = C Wᵀ, an (m, p) tensor, from Wᵀ (q, p): the structure matrix C (m, q) applied to every row
        of W. The primal-dual solver holds Wᵀ, so that neither K nor Kᵀ needs a transpose; it passes an (m, p)
        buffer ``out`` to write into (its iterations would otherwise allocate megabytes each)."""
        raise NotImplementedError(f"{type(self).__name__} has no structured operator")

    def adjoint_t(self, A: torch.Tensor) -> torch.Tensor:
        """Kᵀ(A)ᵀ = Cᵀ A, (q, p), for a dual A (m, p)."""
        raise NotImplementedError(f"{type(self).__name__} has no structured operator")

    def operator(self, W: torch.Tensor) -> torch.Tensor:
        """K(W) = C Wᵀ, an (m, p) tensor: the structure matrix C (m, q) applied to every row of W (p, q)."""
        return self.operator_t(W.T.contiguous())

    def adjoint(self, A: torch.Tensor) -> torch.Tensor:
        """Kᵀ(A) = (Cᵀ A)ᵀ, (p, q), for a dual A (m, p)."""
        return self.adjoint_t(A).T

    def project_dual(self, A: torch.Tensor) -> torch.Tensor:
        """Euclidean projection of an (m, p) dual onto Q, column by column."""
        raise NotImplementedError(f"{type(self).__name__} has no structured operator")

    def project_dual_(self, A: torch.Tensor) -> torch.Tensor:
        """``project_dual`` in place; returns A."""
        return A.copy_(self.project_dual(A))

    def operator_value(self, KW: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
        """Ω_s from K(W) (m, w) of some rows of W: the support function of Q at K(W), a 0-d tensor. ``scratch``,
        a buffer shaped like KW, may be overwritten instead of allocating one."""
        raise NotImplementedError(f"{type(self).__name__} has no structured operator")

    def l1_value(self, W: torch.Tensor) -> torch.Tensor:
        """Σ_ij t_j |W_ij|, the L1 part of Ω, as a 0-d tensor."""
        return W.abs().sum(dim=0) @ self.l1_weights(W.shape[1], W)

    def operator_norm_sq(self) -> float:
        """‖K‖², the squared operator norm (SPG's Lipschitz term is ‖K‖²/μ)."""
        return 0.0

    def smoothing_terms(self, p: int) -> int:
        """Number of dual blocks of Q (each smoothed term is within μ/2 of its exact value)."""
        return 0

    def smoothed_gradient(self, W: torch.Tensor, mu: float) -> torch.Tensor:
        """(p, q) gradient of Nesterov's μ-smoothing of Ω_s at W: Kᵀ(proj_Q(K(W)/μ))."""
        return self.adjoint(self.project_dual(self.operator(W) / mu))


class L1(Penalty):
    """Ω(W) = λ Σ_ij |W_ij|, the plain lasso (with ``nonnegative=True``, the non-negative lasso)."""

    def __init__(self, lam: float, nonnegative: bool = False):
        self.lam = _check_lam(lam)
        self.nonnegative = bool(nonnegative)

    def l1_weights(self, q: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_full((q,), self.lam)

    def __repr__(self) -> str:
        return f"L1(lam={self.lam:.4g}, nonnegative={self.nonnegative})"


def _cached(cache: dict, key, build):
    """``cache[key]``, built on first use."""
    if key not in cache:
        cache[key] = build()
    return cache[key]


class GraphLasso(Penalty):
    """sGLP-IB: Ω(W) = λ Σ_ij |W_ij| + γ Σ_(m,l)∈E |r_ml| Σ_i |W_im − sign(r_ml) W_il|.

    C (E, q) has one row per edge e = (m, l): C_em = γ|r_ml|, C_el = −γ r_ml, so Ω_s(W) = ‖C Wᵀ‖₁ and Q is the
    box [−1, 1]^(E×p). ‖K‖² = λ_max(CᵀC) is computed exactly (it is at most Chen et al.'s bound
    2γ² max_j Σ_{e ∋ j} r_e²). C/γ is held as sparse CSR matrices in ``graph.cache``, so K and Kᵀ are sparse
    matmuls, and penalties at other λ and γ on the same graph reuse them.

    Args:
        lam: λ ≥ 0, the L1 weight.
        gamma: γ ≥ 0, the fusion weight.
        graph: the correlation graph over the q response columns.
    """

    def __init__(self, lam: float, gamma: float, graph: Graph):
        self.lam = _check_lam(lam)
        self.gamma = _check_lam(gamma, "gamma")
        self.graph = graph
        unit_norm_sq = _cached(graph.cache, "fusion_norm_sq", self._unit_norm_sq) if self.has_operator else 0.0
        self._norm_sq = self.gamma**2 * unit_norm_sq

    def _unit_triplets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """COO (row, column, value) of C at γ = 1."""
        r = self.graph.weights.detach().double().cpu()
        edges = self.graph.edges.cpu()
        rows = torch.arange(edges.shape[0]).repeat(2)
        return rows, torch.cat([edges[:, 0], edges[:, 1]]), torch.cat([r.abs(), -r])

    def _unit_norm_sq(self) -> float:
        """λ_max(CᵀC) at γ = 1, CᵀC accumulated edge by edge (q × q)."""
        _, cols, values = self._unit_triplets()
        n, q = self.graph.n_edges, self.graph.n_nodes
        ends = (cols[:n], values[:n]), (cols[n:], values[n:])
        CtC = torch.zeros(q, q, dtype=torch.float64)
        for a, ca in ends:
            for b, cb in ends:
                CtC.index_put_((a, b), ca * cb, accumulate=True)
        return float(torch.linalg.eigvalsh(CtC)[-1])

    def _matrices(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C/γ (E, q) and its transpose as CSR on ``like``'s device and dtype."""

        def build():
            rows, cols, values = self._unit_triplets()
            shape = (self.graph.n_edges, self.graph.n_nodes)
            return _sparse_csr(rows, cols, values, shape, like), _sparse_csr(cols, rows, values, shape[::-1], like)

        return _cached(self.graph.cache, ("csr", like.device, like.dtype), build)

    def check_shape(self, q: int) -> None:
        if q != self.graph.n_nodes:
            raise ValueError(f"the graph has {self.graph.n_nodes} nodes but W has {q} columns: build it on W's columns")

    def l1_weights(self, q: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_full((q,), self.lam)

    @property
    def has_operator(self) -> bool:
        return self.graph.n_edges > 0 and self.gamma > 0

    def operator_t(self, Wt: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return _sparse_times(self._matrices(Wt)[0], Wt, self.gamma, out)

    def adjoint_t(self, A: torch.Tensor) -> torch.Tensor:
        return (self._matrices(A)[1] @ A).mul_(self.gamma)

    def project_dual(self, A: torch.Tensor) -> torch.Tensor:
        return A.clamp(-1.0, 1.0)

    def project_dual_(self, A: torch.Tensor) -> torch.Tensor:
        return A.clamp_(-1.0, 1.0)

    def operator_value(self, KW: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
        return torch.abs(KW, out=scratch).sum()  # Q is the box [-1, 1]: its support function is the ℓ1 norm

    def structured_row_values(self, W: torch.Tensor) -> torch.Tensor:
        if not self.has_operator:
            return W.new_zeros(W.shape[0])
        return self.operator(W).abs().sum(dim=0)

    def structured_value(self, W: torch.Tensor) -> torch.Tensor:
        if not self.has_operator:
            return W.new_zeros(())
        return self.operator(_nonzero_rows(W)).abs().sum()

    def operator_norm_sq(self) -> float:
        return self._norm_sq

    def smoothing_terms(self, p: int) -> int:
        return self.graph.n_edges * p if self.has_operator else 0

    def __repr__(self) -> str:
        return f"GraphLasso(lam={self.lam:.4g}, gamma={self.gamma:.4g}, edges={self.graph.n_edges})"


def _tree_layout(tree: Tree) -> dict:
    """λ-independent index tensors of a tree (CPU), kept in ``tree.cache``.

    The internal nodes are renumbered level by level into "slots", so that a level is a contiguous slice of
    a node buffer that holds the q leaves first, then the internal nodes. Also the (node, column) pairs of the
    internal groups with w_v > 0, for the structured (non-exact-prox) variant.
    """
    q, n_nodes = tree.n_leaves, tree.n_groups
    weights = tree.weights.double()
    levels = tree.levels[q:]
    order = torch.argsort(levels, stable=True) + q  # internal node of each internal slot
    slot = torch.arange(n_nodes)
    slot[order] = torch.arange(q, n_nodes)
    parents = tree.parents.cpu()
    has_parent = parents >= 0
    children = torch.zeros(n_nodes, 2, dtype=torch.long)  # by slot
    children[slot[parents[has_parent]], 0] = -1
    for v, parent in zip(torch.nonzero(has_parent).flatten().tolist(), parents[has_parent].tolist()):
        s = int(slot[parent])
        children[s, 0 if children[s, 0] < 0 else 1] = slot[v]
    counts = torch.bincount(levels - 1).tolist() if n_nodes > q else []
    bounds = torch.tensor([0, *counts], dtype=torch.long).cumsum(0).tolist()
    parent_slot = torch.full((n_nodes,), n_nodes - q, dtype=torch.long)  # into internal slots + a final 1
    parent_slot[slot[has_parent]] = slot[parents[has_parent]] - q
    internal = [v for v, w in zip(range(q, n_nodes), weights[q:].tolist()) if w > 0]
    sizes = torch.tensor([len(tree.groups[v]) for v in internal], dtype=torch.long)
    return {
        "level_slices": [(q + a, q + b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a],
        "children": children,
        "parent_slot": parent_slot,
        "slot_weights": weights[order],  # w of each internal slot
        "internal": torch.tensor(internal, dtype=torch.long),
        "pair_node": torch.repeat_interleave(torch.arange(len(internal)), sizes),
        "pair_col": torch.cat([tree.groups[v] for v in internal]) if internal else torch.zeros(0, dtype=torch.long),
    }


class TreeLasso(Penalty):
    """sTLP-IB: Ω(W) = λ Σ_i Σ_v w_v ‖W_{i,G_v}‖₂ over the nodes v of a tree on the q response columns.

    Leaf groups are single entries: they are the L1 part, t_j = λ·w_leaf(j). Because the groups of a tree
    are nested or disjoint, the prox of the whole penalty is exact (Jenatton et al. 2011): group
    soft-thresholding from the leaves up. It runs on node quantities only: a node's norm after its subtree
    was thresholded is the root of the sum of its children's squared norms, each scaled by the child's
    shrink factor; a column's final factor is the product of the factors on its path to the root. One tree
    level (disjoint nodes) at a time, O(p·V) work per level. That is the default, ``exact_prox=True``: whole
    groups come out exactly zero, as in the exact problem.

    With ``exact_prox=False`` the internal groups (those with w_v > 0) are instead the structured part, as in
    book/formulation.md §3: K(W) holds c_v W_ij for every (node v, column j ∈ G_v) pair and row i, c_v = λw_v, and Q is
    a unit ball per (node, row). CᵀC is diagonal, so ‖K‖² = λ² max_j Σ_{internal v ∋ j} w_v² exactly. Under
    SPG smoothing, rows that the exact problem zeroes then come out O(μ), not zero.

    The λ-independent index tensors live in ``tree.cache``, shared by the penalties of a λ search.

    Args:
        lam: λ ≥ 0.
        tree: the cluster tree over the q response columns.
        exact_prox: put the internal groups in the exact prox (else in the structured part).
    """

    def __init__(self, lam: float, tree: Tree, exact_prox: bool = True):
        self.lam = _check_lam(lam)
        self.tree = tree
        self.exact_prox = bool(exact_prox)
        self._layout = _cached(tree.cache, "layout", lambda: _tree_layout(tree))
        self._leaf_weights = self.lam * tree.weights.double()[: tree.n_leaves]
        self._n_internal = self._layout["internal"].numel() if self.lam > 0 else 0
        pair_w = tree.weights.double()[self._layout["internal"]][self._layout["pair_node"]]
        per_column = torch.zeros(tree.n_leaves, dtype=torch.float64)
        per_column.index_add_(0, self._layout["pair_col"], pair_w.square())
        self._norm_sq = self.lam**2 * float(per_column.max())
        self._memo: tuple[torch.Tensor, torch.Tensor] | None = None  # (last prox output, its structured value)

    def _like(self, like: torch.Tensor) -> dict:
        """The layout on ``like``'s device (cached in the tree) and the λ-scaled weights in its dtype."""
        layout = self._layout

        def build():
            q, dev = self.tree.n_leaves, like.device
            n_pairs = layout["pair_col"].numel()
            pair = torch.arange(n_pairs)
            pair_w = self.tree.weights.double()[layout["internal"]][layout["pair_node"]]
            return {
                "levels": [
                    (start, stop, layout["children"][start:stop, 0].to(dev), layout["children"][start:stop, 1].to(dev),
                     layout["slot_weights"][start - q : stop - q, None].to(like))
                    for start, stop in layout["level_slices"]
                ],  # fmt: skip
                "slot_weights": layout["slot_weights"].to(like),
                "parent_slot": layout["parent_slot"].to(dev),
                "K": _sparse_csr(pair, layout["pair_col"], pair_w, (n_pairs, q), like),
                "Kt": _sparse_csr(layout["pair_col"], pair, pair_w, (q, n_pairs), like),
                "S": _sparse_csr(
                    layout["pair_node"], pair, torch.ones(n_pairs), (layout["internal"].numel(), n_pairs), like
                ),
                "pair_node": layout["pair_node"].to(dev),
            }

        return _cached(self.tree.cache, ("device", like.device, like.dtype), build)

    def check_shape(self, q: int) -> None:
        if q != self.tree.n_leaves:
            raise ValueError(f"the tree has {self.tree.n_leaves} leaves but W has {q} columns: build it on W's columns")

    def l1_weights(self, q: int, like: torch.Tensor) -> torch.Tensor:
        return self._leaf_weights.to(like)

    def structured_row_values(self, W: torch.Tensor) -> torch.Tensor:
        if self.tree.n_groups == self.tree.n_leaves or self.lam == 0:
            return W.new_zeros(W.shape[0])
        ops = self._like(W)
        q = self.tree.n_leaves
        Wt = W.T.contiguous()
        sq = Wt.new_empty((self.tree.n_groups, Wt.shape[1]))  # squared group norms, by slot
        sq[:q] = Wt.square()
        for start, stop, ch0, ch1, _ in ops["levels"]:
            torch.add(sq[ch0], sq[ch1], out=sq[start:stop])
        return self.lam * (ops["slot_weights"] @ sq[q:].sqrt_())

    def structured_value(self, W: torch.Tensor) -> torch.Tensor:
        if self._memo is not None and self._memo[0] is W:
            return self._memo[1]
        return self.structured_row_values(_nonzero_rows(W)).sum()

    def prox(self, V: torch.Tensor, step: float) -> torch.Tensor:
        U = super().prox(V, step)  # the leaves
        if not self.exact_prox or self.tree.n_groups == self.tree.n_leaves or self.lam == 0:
            return U
        ops = self._like(U)
        q, p = self.tree.n_leaves, U.shape[0]
        Ut = U.T.contiguous()
        sq = U.new_empty((self.tree.n_groups, p))  # squared norms after thresholding each subtree, by slot
        sq[:q] = Ut.square()
        norms = U.new_empty((self.tree.n_groups - q, p))  # group norms before their own shrink
        factor = U.new_ones((self.tree.n_groups - q + 1, p))  # own shrink, then path product; last row 1
        tiny = torch.finfo(U.dtype).tiny
        for start, stop, ch0, ch1, w in ops["levels"]:
            total = sq[ch0].add_(sq[ch1])
            norm = norms[start - q : stop - q]
            torch.sqrt(total, out=norm)
            shrink = factor[start - q : stop - q]
            torch.div(w * (step * self.lam), norm.clamp_min(tiny), out=shrink)
            shrink.neg_().add_(1).clamp_min_(0)
            torch.mul(total, shrink.square(), out=sq[start:stop])
        parent_slot = ops["parent_slot"]
        for start, stop, *_ in reversed(ops["levels"]):  # root down: multiply in the ancestors' factors
            factor[start - q : stop - q] *= factor[parent_slot[start:stop]]
        result = (Ut * factor[parent_slot[:q]]).T
        # a group's final norm is its norm before its own shrink times the factors down its path
        self._memo = (result, self.lam * (ops["slot_weights"] @ (norms * factor[:-1])).sum())
        return result

    @property
    def has_operator(self) -> bool:
        return not self.exact_prox and self._n_internal > 0

    def operator_t(self, Wt: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return _sparse_times(self._like(Wt)["K"], Wt, self.lam, out)

    def adjoint_t(self, A: torch.Tensor) -> torch.Tensor:
        return (self._like(A)["Kt"] @ A).mul_(self.lam)

    def project_dual(self, A: torch.Tensor) -> torch.Tensor:
        ops = self._like(A)
        norms = (ops["S"] @ A.square()).sqrt()
        return A / norms.clamp_min(1.0)[ops["pair_node"]]

    def project_dual_(self, A: torch.Tensor) -> torch.Tensor:
        ops = self._like(A)
        norms = (ops["S"] @ A.square()).sqrt()
        return A.div_(norms.clamp_min(1.0)[ops["pair_node"]])

    def operator_value(self, KW: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
        # Q is a unit ball per group: Σ group norms
        return (self._like(KW)["S"] @ torch.square(KW, out=scratch)).sqrt().sum()

    def operator_norm_sq(self) -> float:
        return self._norm_sq if self.has_operator else 0.0

    def smoothing_terms(self, p: int) -> int:
        return self._n_internal * p if self.has_operator else 0

    def __repr__(self) -> str:
        return (
            f"TreeLasso(lam={self.lam:.4g}, internal_groups={self._n_internal}, leaves={self.tree.n_leaves}, "
            f"exact_prox={self.exact_prox})"
        )
