"""The arithmetic of an evaluation report: Wilson intervals and pass@k (majority votes are
counted in SQL, app/services/eval_report.py)."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054
"""The normal quantile of a two-sided 95 % interval."""


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (0, 1 when n is 0). Unlike the
    normal approximation it stays inside [0, 1] and is sound at 0 % or 100 % and for small n.
    `successes` may be fractional (a mean of per-question scores)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from n samples of which c are correct (Chen et al. 2021,
    "Evaluating Large Language Models Trained on Code"): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"c: must be between 0 and n ({n}), got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k: must be between 1 and n ({n}), got {k}")
    if n - c < k:
        return 1.0
    # The product form of Chen et al.: no huge binomials.
    failure = 1.0
    for i in range(n - c + 1, n + 1):
        failure *= 1.0 - k / i
    return 1.0 - failure
