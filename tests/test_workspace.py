"""The per-thread reused workspace never leaks between calls, models or threads."""

import threading

import numpy as np
import pytest

import gdcore as gd


def batch(sizes, n, seed):
    model = gd.mlp(sizes, "tanh", loss="mse")
    rng = np.random.default_rng(seed)
    return model, gd.init(model, seed=seed), rng.normal(size=(n, sizes[0])), \
        rng.normal(size=(n, sizes[-1]))


CASES = [batch([3, 7, 2], 5, 0), batch([4, 2, 2], 40, 1), batch([3, 16, 16, 2], 3, 2)]


def results():
    return [gd.value_and_grad(m, p, X, y) + (gd.predict(m, p, X), gd.loss(m, p, X, y))
            for m, p, X, y in CASES]


def assert_same(got, expected):
    for (l1, g1, p1, v1), (l2, g2, p2, v2) in zip(got, expected, strict=True):
        assert l1 == l2 and v1 == v2
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(p1, p2)


@pytest.mark.bitwise
def test_interleaved_shapes_give_identical_results():
    first = results()
    # A large call in between grows (and dirties) the reused buffer.
    big_model, big_p, big_X, big_y = batch([3, 64, 2], 500, 3)
    gd.value_and_grad(big_model, big_p, big_X, big_y)
    assert_same(results(), first)


def test_returned_arrays_do_not_alias_the_workspace():
    model, params, X, y = CASES[0]
    loss, grad = gd.value_and_grad(model, params, X, y)
    out = gd.predict(model, params, X)
    grad_copy, out_copy = grad.copy(), out.copy()
    for m, p, X2, y2 in CASES[1:]:
        gd.value_and_grad(m, p, X2, y2)
        gd.predict(m, p, X2)
    np.testing.assert_array_equal(grad, grad_copy)
    np.testing.assert_array_equal(out, out_copy)


def test_threads_get_the_serial_results():
    expected = results()
    got = [None] * 4

    def work(i):
        for _ in range(20):
            got[i] = results()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in got:
        assert_same(g, expected)
