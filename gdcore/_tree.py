"""Sums over chunks in one fixed order, whoever computes which part.

Floating-point addition is not associative, so a sum over chunks is
reproducible only if its order is fixed.  The order here is a binary tree over
the chunk indices 0..n-1: node ``(level, k)`` covers chunks
``[k * 2**level, (k + 1) * 2**level)`` (cut at n), and its value is its left
child's plus its right child's (the left child's alone when the right one is
empty).  The root is ``(L, 0)`` with ``2**L >= n``.

A worker holding some of the chunks computes the largest nodes whose chunks it
holds all of (:func:`held_nodes`); the caller completes the tree from the nodes
of every worker (:func:`root`).  Each node's value is then the same whichever
worker computed it, so the result is bitwise the same for any placement of
the chunks and any number of workers.

A value is a :class:`Partial`: the ``sums`` add up element by element (floats
or NumPy arrays, added with ``+``), and the ``firsts`` keep the value of the
lowest chunk that has one (not None).
"""

from typing import NamedTuple


class Partial(NamedTuple):
    """The part of a result that some chunks contribute."""

    sums: tuple  # floats or ndarrays, summed over chunks
    firsts: tuple = ()  # any objects, taken from the lowest chunk with one (not None)


def combine(left, right):
    """``left`` (lower chunks) then ``right``: sums added, firsts from the left when set."""
    return Partial(tuple(a + b for a, b in zip(left.sums, right.sums)),
                   tuple(b if a is None else a for a, b in zip(left.firsts, right.firsts)))


def levels(n):
    """The root's level: the least L with 2**L >= n (n >= 1)."""
    return max(n - 1, 0).bit_length()


def _value(level, k, n, known):
    """Value of node ``(level, k)`` from the ``known`` nodes (a dict), computed left to right."""
    node = known.get((level, k))
    if node is not None:
        return node
    if level == 0:
        raise KeyError(f"chunk {k} has no value")
    left = _value(level - 1, 2 * k, n, known)
    if (2 * k + 1) << (level - 1) >= n:
        return left
    return combine(left, _value(level - 1, 2 * k + 1, n, known))


def held_nodes(leaves, n):
    """The largest nodes whose chunks are all in ``leaves``, with their values.

    Parameters
    ----------
    leaves : dict of int -> Partial
        Values of the chunks at hand, by chunk index.
    n : int
        Number of chunks in all.

    Returns
    -------
    dict of (level, k) -> Partial
    """
    known = {(0, i): v for i, v in leaves.items()}
    out = {}

    def visit(level, k):
        lo, hi = k << level, min((k + 1) << level, n)
        held = sum(1 for i in range(lo, hi) if i in leaves)
        if held == hi - lo:
            out[(level, k)] = _value(level, k, n, known)
        elif held and level:
            visit(level - 1, 2 * k)
            if (2 * k + 1) << (level - 1) < n:
                visit(level - 1, 2 * k + 1)

    visit(levels(n), 0)
    return out


def root(nodes, n):
    """The whole tree's value from nodes that together cover every chunk once."""
    return _value(levels(n), 0, n, dict(nodes))
