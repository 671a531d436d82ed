"""Verdicts from repeated runs: does one criterion's top-1 exceed another's, or a fixed value, beyond chance?

A claim "A ≥ B" is judged by Welch's t-test on the runs (``scipy.stats.ttest_ind(equal_var=False)``), one-sided at
5%: it **holds** where the test says A's mean is above B's, **fails** where it says below, and is **inconclusive**
otherwise, and always where a side has fewer than two runs: one run decides nothing. The difference of the
means comes with its two-sided 95% Welch interval. The one-sided test at 5% matches a two-sided *90%* interval, so a
decided verdict can come with a 95% interval that still touches zero: the verdict says which way the runs point at
the 5% level, the interval how far apart the criteria may be. A claim against a fixed value (the unpruned network's
top-1) uses the one-sample t-test the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
"""The one-sided test's level."""

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing the runs of A with those of B (or with a fixed value).

    Attributes:
        verdict: ``holds`` (A above B at ``ALPHA``), ``fails`` (A below B) or ``inconclusive``.
        difference: mean of A minus mean of B (or minus the value).
        low: lower end of the difference's two-sided 95% interval (NaN with fewer than two runs a side).
        high: its upper end.
        n: runs of A and of B (B's is 0 for a fixed value).
    """

    verdict: str
    difference: float
    low: float
    high: float
    n: tuple[int, int]

    def interval_text(self) -> str:
        """``"+0.12 [−0.30, +0.54]"``, or the difference alone where no interval exists."""
        if math.isnan(self.low):
            return f"{self.difference:+.2f}"
        return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"

    def runs_text(self) -> str:
        """``"3 vs 3"``, or ``"3"`` against a fixed value."""
        return f"{self.n[0]} vs {self.n[1]}" if self.n[1] else f"{self.n[0]}"


def _verdict(p_greater: float, p_less: float) -> str:
    if p_greater < ALPHA:
        return HOLDS
    if p_less < ALPHA:
        return FAILS
    return INCONCLUSIVE


def compare(a: list[float], b: list[float]) -> Comparison:
    """Is the mean of runs ``a`` above that of runs ``b``? Welch's t-test, one-sided at ``ALPHA``.

    Args:
        a: A's values (top-1 of each run), at least one.
        b: B's values, at least one.

    Returns:
        The comparison; inconclusive where either side has fewer than two runs or neither side varies.
    """
    difference = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2 or (len(set(a)) == 1 and len(set(b)) == 1):  # too few runs, or no spread at all
        return Comparison(INCONCLUSIVE, difference, math.nan, math.nan, (len(a), len(b)))
    greater = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    less = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    both = stats.ttest_ind(a, b, equal_var=False)
    low, high = both.confidence_interval(1 - ALPHA)
    return Comparison(_verdict(greater.pvalue, less.pvalue), difference, float(low), float(high), (len(a), len(b)))


def compare_to(a: list[float], value: float) -> Comparison:
    """Is the mean of runs ``a`` above ``value``? The one-sample t-test, one-sided at ``ALPHA``.

    Args:
        a: the runs' values, at least one.
        value: the fixed value (the unpruned network's top-1).

    Returns:
        The comparison (its ``n`` is ``(len(a), 0)``); inconclusive with fewer than two runs or no spread.
    """
    difference = sum(a) / len(a) - value
    if len(a) < 2 or len(set(a)) == 1:
        return Comparison(INCONCLUSIVE, difference, math.nan, math.nan, (len(a), 0))
    greater = stats.ttest_1samp(a, value, alternative="greater")
    less = stats.ttest_1samp(a, value, alternative="less")
    both = stats.ttest_1samp(a, value)
    low, high = both.confidence_interval(1 - ALPHA)
    return Comparison(_verdict(greater.pvalue, less.pvalue), difference, float(low) - value, float(high) - value,
                      (len(a), 0))


def mean_interval(values) -> tuple[float, float]:
    """The two-sided 95% t interval of the mean of ``values``; (mean, mean) for a single value, which has none.

    Args:
        values: one number per run (a sequence or a pandas Series).
    """
    values = list(values)
    mean = sum(values) / len(values)
    if len(values) < 2 or len(set(values)) == 1:
        return mean, mean
    low, high = stats.ttest_1samp(values, mean).confidence_interval(1 - ALPHA)
    return float(low), float(high)


def plot_runs(ax, runs, x: str = "top-1 (%)", y: str = "criterion", order: list[str] | None = None) -> None:
    """Every run as a dot and each group's mean as a diamond with its 95% t interval (seaborn strip and point plots).

    Args:
        ax: a matplotlib Axes.
        runs: a long DataFrame, one row per run, with columns ``x`` (the value) and ``y`` (the group).
        x: the value's column.
        y: the group's column.
        order: the groups from top to bottom (default: as they first appear).
    """
    import seaborn as sns  # plotting only: the statistics above need no seaborn

    sns.stripplot(data=runs, x=x, y=y, order=order, ax=ax, color="tab:gray", size=4, jitter=0.15, alpha=0.8)
    sns.pointplot(data=runs, x=x, y=y, order=order, ax=ax, errorbar=mean_interval, color="tab:blue",
                  markers="D", markersize=5, linestyle="none", capsize=0.2, err_kws={"linewidth": 1.2})
