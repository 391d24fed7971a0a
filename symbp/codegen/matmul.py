"""Which contractions are matrix products: the NumPy printer writes them as ``@``, the C
backend calls GEMM for them, and ``symbp grad`` shows them as the lecture writes them.

``merged`` first joins axes that every operand holds side by side into one: a per-example
matrix times a weight ('bpk,ok->bpo') is then one product of matrices ('bk,ok->bo').
"""

from __future__ import annotations

from functools import cache


@cache  # a network asks about the same few letter patterns again and again
def matmul_form(sa: str, sb: str, so: str) -> tuple[bool, bool, bool] | None:
    """How ``einsum(sa, sb -> so)`` is a ``@`` of 2-D/1-D operands, if it is one.

    Returns (swap, transpose_left, transpose_right) for ``left @ right``, with as few
    transposes as possible; None when the contraction needs more than a matrix product
    (batched vectors, three-axis operands, outer products).
    """
    if len(sa) > 2 or len(sb) > 2 or len(so) > 2:
        return None
    shared = set(sa) & set(sb)
    k = shared - set(so)
    if len(k) != 1 or shared - k or set(so) != (set(sa) | set(sb)) - k:
        return None
    (k,) = k
    options = []
    for swap in (False, True):
        la, lb = (sb, sa) if swap else (sa, sb)
        if len(la) == 1 and len(lb) == 1:
            continue
        # left is (free, k), or (k, free) transposed; right is (k, free), or (free, k) transposed
        ta = len(la) == 2 and la[0] == k
        tb = len(lb) == 2 and lb[1] == k
        if la.replace(k, "") + lb.replace(k, "") == so:
            options.append((ta + tb, swap, ta, tb))
    if not options:
        return None
    _, swap, ta, tb = min(options)
    return swap, ta, tb


@cache
def stacked_matmul_form(sa: str, sb: str, so: str) -> tuple[int, bool, bool, bool] | None:
    """Like ``matmul_form``, also for stacks of matrices (NumPy's @ broadcasts them): returns
    (number of leading stack axes, swap, transpose_left, transpose_right)."""
    for s in range(len(so), -1, -1):
        stack = so[:s]
        cores = []
        for letters in (sa, sb):
            if letters.startswith(stack) and len(letters) - s >= 1:
                cores.append(letters[s:])
            elif not set(stack) & set(letters) and len(letters) >= 1:
                cores.append(letters)
            else:
                break
        else:
            form = matmul_form(cores[0], cores[1], so[s:])
            if form is not None and (s == 0 or all(len(c) == 2 for c in cores)):
                return (s, *form)
    return None


def merged(sa: str, sb: str, so: str) -> tuple[str, str, str, dict[str, str]]:
    """``einsum(sa, sb -> so)`` with the fewest axes: letters x, y join into one axis where
    every subscript that holds either holds both, side by side as "xy" (row-major arrays make
    such a pair one axis of size |x|*|y|).

    Returns the subscripts with each joined run written as its first letter, and the runs
    (first letter -> the letters it stands for, in order) of the letters that joined others.
    """
    subs = [sa, sb, so]
    groups: dict[str, str] = {}
    pair = _joinable(subs)
    while pair is not None:
        x, y = pair
        subs = [s.replace(x + y, x) for s in subs]
        groups[x] = groups.get(x, x) + groups.pop(y, y)
        pair = _joinable(subs)
    return subs[0], subs[1], subs[2], groups


def _joinable(subs: list[str]) -> tuple[str, str] | None:
    """The first pair of letters x, y that stand side by side as "xy" in every subscript
    holding either; a letter repeated in a subscript (a diagonal) joins nothing."""
    repeated = {ch for s in subs for ch in s if s.count(ch) > 1}
    for s in subs:
        for x, y in zip(s, s[1:]):
            if x in repeated or y in repeated:
                continue
            if all(x + y in t for t in subs if x in t or y in t):
                return x, y
    return None
