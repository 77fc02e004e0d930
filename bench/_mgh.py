"""The Moré-Garbow-Hillstrom test problems: outside unconstrained problems for the benchmarks.

All 35 problems of J. J. Moré, B. S. Garbow and K. E. Hillstrom, "Testing
Unconstrained Optimization Software", ACM Transactions on Mathematical
Software 7(1), 17-41 (1981), numbered as in the paper.  Each is a sum of
squares ``f(x) = sum_i r_i(x)**2`` of ``m`` residuals in ``n`` unknowns.  The
residuals, the data tables, the standard starting points ``x0`` and the
minimum values are written here from the paper's definitions (section 3);
this project did not choose or tune any of them, which is the point: gdcore
and SciPy are measured on problems neither was written for.  The Jacobians
are derived by hand from those definitions and checked against SciPy's finite
differences in ``tests/test_mgh_problems.py``.

Sizes: the fixed-size problems at the paper's ``n`` and ``m`` (Jennrich-
Sampson ``m = 10``, Gulf research ``m = 99``, Box 3-D ``m = 10``, Brown-Dennis
``m = 20``, Biggs EXP6 ``m = 13``), Watson at ``n = 9``, Chebyquad at
``n = m = 8`` and the other variable-size problems at ``n = 10`` (Extended
Powell ``n = 12``; the three linear problems ``m = 20``).

``f_star`` is the lowest value of ``f``: the paper's published minimum
for that size (``0`` where the paper gives ``f = 0``), refined to double
precision by Gauss-Newton and Levenberg-Marquardt runs, because the paper
prints six significant digits, truncated ("8.21487...e-3"), and a printed
value can sit below the true minimum by more than a tight target
(Jennrich-Sampson: 124.36218..., printed 124.362, 1.8e-4 apart; the
criterion below allows 1.2e-4).  Every refined value begins with the
printed digits, which ``f_paper`` keeps.  One exception: for Biggs EXP6
(``m = 13``) the paper prints 5.65565e-3, but its residuals vanish at
``(1, 10, 1, 5, 4, 3)``, so ``f_star = 0`` and 5.65565e-3 is a local
minimum.  ``f_local`` lists such other minimum values (the paper's local
minima and limits at infinity, and the Trigonometric local minimum that
solvers reach from ``x0``): a solver that ends there has not solved the
problem.  From ``x0`` SciPy's L-BFGS-B (``gtol=1e-10, ftol=0``) reaches
``f_star`` on all but five: Freudenstein-Roth, Biggs EXP6 and
Trigonometric (local minima), Meyer (badly scaled) and Jennrich-Sampson
(overflowing trial steps); ``tests/test_mgh_problems.py`` keeps that list.

The solved criterion recommended for comparing solvers, the same for every
solver (gdcore and SciPy alike)::

    f - f_star <= 1e-6 * max(1, |f_star - shift|)

where ``shift`` is 0 except for the :func:`offset` variants (so an added
constant does not loosen the target); :func:`solved` applies it.  It asks
for f to six digits where f* is large and to 1e-6 absolute where it is
small, far above the rounding of f, and it passes over the local minima
listed in ``f_local`` (the smallest gap, Trigonometric's, is 2.8e-5).

:func:`offset` adds a constant ``c`` to ``f`` (e.g. 79.48 or 1e3).  Near the
optimum ``f`` then changes only in its last bits: the rounding-floor case
in which a line search can find no decrease although the minimum is
reached.

Everything is plain NumPy float64: ``problem.fun(x) -> f`` and
``problem.fun_and_grad(x) -> (f, 2 J(x)' r(x))`` are ``scipy.optimize.minimize``
objectives (``jac=None`` and ``jac=True``), ``problem.residuals(x)`` and
``problem.jacobian(x)`` give ``r`` (shape ``(m,)``) and ``J`` (shape
``(m, n)``).  Problems and their functions pickle (module-level functions
and ``functools.partial``), so they can be sent to worker processes.
"""

import functools
from dataclasses import dataclass, field, replace

import math

import numpy as np

__all__ = ["Problem", "PROBLEMS", "offset", "solved", "by_name"]

SOLVED_RTOL = 1e-6


# The objective built from residuals -----------------------------------------------------
@dataclass(frozen=True)
class _SumOfSquares:
    """``f = sum r**2 + shift`` and ``g = 2 J'r`` from ``residuals(x, jac)``.

    ``residuals(x, False)`` returns ``r`` of shape ``(m,)``;
    ``residuals(x, True)`` returns ``(r, J)`` with ``J`` of shape ``(m, n)``.
    """

    residuals: object
    shift: float = 0.0

    # Sums by math.fsum (correctly rounded), not BLAS: OpenBLAS picks its dot
    # kernel by CPU (AVX2, AVX-512) and they round differently, which would make
    # the solvers' stops, and the tests counting them, depend on the machine.
    def __call__(self, x):
        r = self.residuals(_as_x(x), False)
        return np.float64(math.fsum(r * r) + self.shift)

    def fun_and_grad(self, x):
        r, J = self.residuals(_as_x(x), True)
        g = np.array([math.fsum(J[:, j] * r) for j in range(J.shape[1])])
        return np.float64(math.fsum(r * r) + self.shift), 2.0 * g


def _as_x(x):
    # A fresh float64 copy: the residual functions never see (or alias) the caller's array.
    return np.array(x, dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class Problem:
    """One test problem at a fixed size.

    Attributes
    ----------
    name : str
        The paper's name, with the size where the problem has several, e.g.
        ``"Watson n=9"``; :func:`offset` variants append ``" +c"``.
    number : int
        The problem's number in the paper (1 to 35).
    n, m : int
        Unknowns and residuals.
    x0 : ndarray, shape (n,)
        The paper's standard starting point (a new array on every access).
    f_star : float
        Minimum value, to double precision (see the module docstring);
        includes ``shift``.
    f_paper : float
        The minimum value as the paper prints it (without ``shift``).
    f_local : tuple of float
        Other minimum values the paper lists (local minima, or values
        approached as some ``x_j`` go to infinity), without ``shift``.
    note : str
        What the paper says about those, or about the problem's difficulty.
    shift : float
        The constant :func:`offset` added to ``f`` (0 for the paper's problems).
    fun : callable
        ``fun(x) -> f`` (numpy.float64).
    fun_and_grad : callable
        ``fun_and_grad(x) -> (f, g)``, ``g`` of shape ``(n,)``.
    """

    name: str
    number: int
    n: int
    m: int
    x0_values: tuple = field(repr=False)
    f_star: float
    f_paper: float
    f_local: tuple
    note: str
    residual_fn: object = field(repr=False)
    shift: float = 0.0

    @property
    def x0(self):
        return np.array(self.x0_values, dtype=np.float64)

    @property
    def fun(self):
        return _SumOfSquares(self.residual_fn, self.shift)

    @property
    def fun_and_grad(self):
        return _SumOfSquares(self.residual_fn, self.shift).fun_and_grad

    def residuals(self, x):
        """``r(x)``, shape ``(m,)``."""
        return self.residual_fn(_as_x(x), False)

    def jacobian(self, x):
        """``J(x) = dr/dx``, shape ``(m, n)``."""
        return self.residual_fn(_as_x(x), True)[1]


def offset(problem, c):
    """The same problem with ``f + c``: ``f_star`` shifted, solved target unchanged.

    Parameters
    ----------
    problem : Problem
    c : float
        The constant added to ``f`` (e.g. 79.48 or 1e3).

    Returns
    -------
    Problem
        Named ``"<name> +<c>"``; ``x0``, residuals and Jacobian are unchanged
        (the residuals do not carry the constant), ``fun`` and
        ``fun_and_grad`` return ``f + c``.
    """
    c = float(c)
    if not np.isfinite(c):
        raise ValueError(f"offset: c must be a finite number, got {c!r}")
    return replace(problem, name=f"{problem.name} +{c:g}",
                   f_star=problem.f_star + c, shift=problem.shift + c)


def solved(problem, f, rtol=SOLVED_RTOL):
    """Whether ``f`` reaches the minimum: ``f - f_star <= rtol * max(1, |f_star - shift|)``.

    The scale is that of the unshifted problem, so an :func:`offset` variant is
    solved exactly where the original is (up to the rounding of ``f + c``).
    """
    f = float(f)
    scale = max(1.0, abs(problem.f_star - problem.shift))
    return bool(np.isfinite(f) and f - problem.f_star <= rtol * scale)


def by_name(name):
    """The problem of :data:`PROBLEMS` with this name (KeyError naming the choices if none)."""
    for p in PROBLEMS:
        if p.name == name:
            return p
    raise KeyError(f"no MGH problem named {name!r}; choices: {[p.name for p in PROBLEMS]}")


# Residuals: each takes (x, jac) and returns r, or (r, J) when jac is true. -------------
# Numbering and notation follow the paper: i = 1..m, t_i as defined there.

def _rosenbrock(x, jac):  # (1) n = 2, m = 2
    r = np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])
    if not jac:
        return r
    return r, np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def _freudenstein_roth(x, jac):  # (2) n = 2, m = 2
    x1, x2 = x
    r = np.array([-13.0 + x1 + ((5.0 - x2) * x2 - 2.0) * x2,
                  -29.0 + x1 + ((x2 + 1.0) * x2 - 14.0) * x2])
    if not jac:
        return r
    return r, np.array([[1.0, (10.0 - 3.0 * x2) * x2 - 2.0],
                        [1.0, (3.0 * x2 + 2.0) * x2 - 14.0]])


def _powell_badly_scaled(x, jac):  # (3) n = 2, m = 2
    x1, x2 = x
    e1, e2 = np.exp(-x1), np.exp(-x2)
    r = np.array([1e4 * x1 * x2 - 1.0, e1 + e2 - 1.0001])
    if not jac:
        return r
    return r, np.array([[1e4 * x2, 1e4 * x1], [-e1, -e2]])


def _brown_badly_scaled(x, jac):  # (4) n = 2, m = 3
    x1, x2 = x
    r = np.array([x1 - 1e6, x2 - 2e-6, x1 * x2 - 2.0])
    if not jac:
        return r
    return r, np.array([[1.0, 0.0], [0.0, 1.0], [x2, x1]])


_BEALE_Y = np.array([1.5, 2.25, 2.625])


def _beale(x, jac):  # (5) n = 2, m = 3
    x1, x2 = x
    i = np.arange(1.0, 4.0)
    p = x2 ** i
    r = _BEALE_Y - x1 * (1.0 - p)
    if not jac:
        return r
    return r, np.column_stack([p - 1.0, x1 * i * x2 ** (i - 1.0)])


def _jennrich_sampson(x, jac, m):  # (6) n = 2
    i = np.arange(1.0, m + 1.0)
    e1, e2 = np.exp(i * x[0]), np.exp(i * x[1])
    r = 2.0 + 2.0 * i - (e1 + e2)
    if not jac:
        return r
    return r, np.column_stack([-i * e1, -i * e2])


def _helical_valley(x, jac):  # (7) n = 3, m = 3
    x1, x2, x3 = x
    two_pi = 2.0 * np.pi
    # theta as the paper defines it (not atan2: the branch for x1 < 0 is +1/2
    # whatever the sign of x2); x1 = 0 taken as the x1 -> 0+ limit.
    if x1 > 0.0:
        theta = np.arctan(x2 / x1) / two_pi
    elif x1 < 0.0:
        theta = np.arctan(x2 / x1) / two_pi + 0.5
    else:
        theta = np.copysign(0.25, x2)
    rho = np.hypot(x1, x2)
    r = np.array([10.0 * (x3 - 10.0 * theta), 10.0 * (rho - 1.0), x3])
    if not jac:
        return r
    s = two_pi * rho * rho
    return r, np.array([[100.0 * x2 / s, -100.0 * x1 / s, 10.0],
                        [10.0 * x1 / rho, 10.0 * x2 / rho, 0.0],
                        [0.0, 0.0, 1.0]])


_BARD_Y = np.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39,
                    0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39])


def _bard(x, jac):  # (8) n = 3, m = 15
    u = np.arange(1.0, 16.0)
    v = 16.0 - u
    w = np.minimum(u, v)
    d = v * x[1] + w * x[2]
    r = _BARD_Y - (x[0] + u / d)
    if not jac:
        return r
    q = u / (d * d)
    return r, np.column_stack([-np.ones(15), q * v, q * w])


_GAUSSIAN_Y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989,
                        0.3521, 0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])


def _gaussian(x, jac):  # (9) n = 3, m = 15
    t = (8.0 - np.arange(1.0, 16.0)) / 2.0
    d = t - x[2]
    e = np.exp(-0.5 * x[1] * d * d)
    r = x[0] * e - _GAUSSIAN_Y
    if not jac:
        return r
    return r, np.column_stack([e, -0.5 * x[0] * e * d * d, x[0] * x[1] * e * d])


_MEYER_Y = np.array([34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0,
                     8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0])


def _meyer(x, jac):  # (10) n = 3, m = 16
    t = 45.0 + 5.0 * np.arange(1.0, 17.0)
    d = t + x[2]
    e = np.exp(x[1] / d)
    r = x[0] * e - _MEYER_Y
    if not jac:
        return r
    return r, np.column_stack([e, x[0] * e / d, -x[0] * x[1] * e / (d * d)])


def _gulf(x, jac, m):  # (11) n = 3, 3 <= m <= 100
    t = np.arange(1.0, m + 1.0) / 100.0
    y = 25.0 + (-50.0 * np.log(t)) ** (2.0 / 3.0)
    d = y - x[1]
    a = np.abs(d)
    p = a ** x[2]
    e = np.exp(-p / x[0])
    r = e - t
    if not jac:
        return r
    # dp/dx2 = -x3 sign(d) |d|^(x3-1) = -x3 sign(d) p / |d| and dp/dx3 = p log|d|; where
    # d = 0 both are 0 (for x3 > 1), which dividing by 1 there instead of 0 gives.
    safe = np.where(a > 0.0, a, 1.0)
    dp_dx2 = -x[2] * np.sign(d) * p / safe
    dp_dx3 = p * np.log(safe)
    return r, np.column_stack([e * p / (x[0] * x[0]), -e * dp_dx2 / x[0], -e * dp_dx3 / x[0]])


def _box_3d(x, jac, m):  # (12) n = 3
    t = 0.1 * np.arange(1.0, m + 1.0)
    e1, e2 = np.exp(-t * x[0]), np.exp(-t * x[1])
    c = np.exp(-t) - np.exp(-10.0 * t)
    r = e1 - e2 - x[2] * c
    if not jac:
        return r
    return r, np.column_stack([-t * e1, t * e2, -c])


def _extended_powell(x, jac):  # (13) n = 4 and (22) n a multiple of 4; m = n
    x1, x2, x3, x4 = x[0::4], x[1::4], x[2::4], x[3::4]
    s5, s10 = np.sqrt(5.0), np.sqrt(10.0)
    a, b = x2 - 2.0 * x3, x1 - x4
    r = np.empty(x.size)
    r[0::4] = x1 + 10.0 * x2
    r[1::4] = s5 * (x3 - x4)
    r[2::4] = a * a
    r[3::4] = s10 * b * b
    if not jac:
        return r
    J = np.zeros((x.size, x.size))
    k = np.arange(0, x.size, 4)
    J[k, k], J[k, k + 1] = 1.0, 10.0
    J[k + 1, k + 2], J[k + 1, k + 3] = s5, -s5
    J[k + 2, k + 1], J[k + 2, k + 2] = 2.0 * a, -4.0 * a
    J[k + 3, k], J[k + 3, k + 3] = 2.0 * s10 * b, -2.0 * s10 * b
    return r, J


def _wood(x, jac):  # (14) n = 4, m = 6
    x1, x2, x3, x4 = x
    s90, s10 = np.sqrt(90.0), np.sqrt(10.0)
    r = np.array([10.0 * (x2 - x1 * x1), 1.0 - x1, s90 * (x4 - x3 * x3), 1.0 - x3,
                  s10 * (x2 + x4 - 2.0), (x2 - x4) / s10])
    if not jac:
        return r
    return r, np.array([[-20.0 * x1, 10.0, 0.0, 0.0],
                        [-1.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, -2.0 * s90 * x3, s90],
                        [0.0, 0.0, -1.0, 0.0],
                        [0.0, s10, 0.0, s10],
                        [0.0, 1.0 / s10, 0.0, -1.0 / s10]])


_KOWALIK_Y = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627,
                       0.0456, 0.0342, 0.0323, 0.0235, 0.0246])
_KOWALIK_U = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])


def _kowalik_osborne(x, jac):  # (15) n = 4, m = 11
    u = _KOWALIK_U
    num = u * (u + x[1])
    den = u * (u + x[2]) + x[3]
    r = _KOWALIK_Y - x[0] * num / den
    if not jac:
        return r
    q = x[0] * num / (den * den)
    return r, np.column_stack([-num / den, -x[0] * u / den, q * u, q])


def _brown_dennis(x, jac, m):  # (16) n = 4
    t = np.arange(1.0, m + 1.0) / 5.0
    s = np.sin(t)
    a = x[0] + t * x[1] - np.exp(t)
    b = x[2] + x[3] * s - np.cos(t)
    r = a * a + b * b
    if not jac:
        return r
    return r, np.column_stack([2.0 * a, 2.0 * a * t, 2.0 * b, 2.0 * b * s])


_OSBORNE1_Y = np.array([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818,
                        0.784, 0.751, 0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558,
                        0.538, 0.522, 0.506, 0.490, 0.478, 0.467, 0.457, 0.448, 0.438,
                        0.431, 0.424, 0.420, 0.414, 0.411, 0.406])


def _osborne1(x, jac):  # (17) n = 5, m = 33
    t = 10.0 * np.arange(33.0)
    e4, e5 = np.exp(-t * x[3]), np.exp(-t * x[4])
    r = _OSBORNE1_Y - (x[0] + x[1] * e4 + x[2] * e5)
    if not jac:
        return r
    return r, np.column_stack([-np.ones(33), -e4, -e5, t * x[1] * e4, t * x[2] * e5])


def _biggs_exp6(x, jac, m):  # (18) n = 6
    t = 0.1 * np.arange(1.0, m + 1.0)
    y = np.exp(-t) - 5.0 * np.exp(-10.0 * t) + 3.0 * np.exp(-4.0 * t)
    e1, e2, e5 = np.exp(-t * x[0]), np.exp(-t * x[1]), np.exp(-t * x[4])
    r = x[2] * e1 - x[3] * e2 + x[5] * e5 - y
    if not jac:
        return r
    return r, np.column_stack([-t * x[2] * e1, t * x[3] * e2, e1, -e2, -t * x[5] * e5, e5])


_OSBORNE2_Y = np.array([
    1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746,
    0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649,
    0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395,
    0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653,
    0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739,
    0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054])


def _osborne2(x, jac):  # (19) n = 11, m = 65
    t = np.arange(65.0) / 10.0
    e1 = np.exp(-t * x[4])
    model = x[0] * e1
    cols = [None] * 11
    cols[0], cols[4] = -e1, t * x[0] * e1
    for k, w, c in ((1, 5, 8), (2, 6, 9), (3, 7, 10)):  # amplitude, width, centre
        d = t - x[c]
        g = np.exp(-d * d * x[w])
        model = model + x[k] * g
        cols[k], cols[w], cols[c] = -g, x[k] * d * d * g, -2.0 * x[k] * x[w] * d * g
    r = _OSBORNE2_Y - model
    if not jac:
        return r
    return r, np.column_stack(cols)


def _watson(x, jac):  # (20) 2 <= n <= 31, m = 31
    n = x.size
    t = np.arange(1.0, 30.0) / 29.0
    powers = t[:, None] ** np.arange(n)  # t_i^(j-1), j = 1..n
    j = np.arange(1.0, n + 1.0)
    dpow = np.zeros((29, n))
    dpow[:, 1:] = j[1:] - 1.0  # (j-1) t_i^(j-2)
    dpow[:, 1:] *= powers[:, :-1]
    s1 = dpow @ x
    s2 = powers @ x
    r = np.empty(31)
    r[:29] = s1 - s2 * s2 - 1.0
    r[29] = x[0]
    r[30] = x[1] - x[0] * x[0] - 1.0
    if not jac:
        return r
    J = np.zeros((31, n))
    J[:29] = dpow - 2.0 * s2[:, None] * powers
    J[29, 0] = 1.0
    J[30, 0], J[30, 1] = -2.0 * x[0], 1.0
    return r, J


def _extended_rosenbrock(x, jac):  # (21) n even, m = n
    odd, even = x[0::2], x[1::2]
    r = np.empty(x.size)
    r[0::2] = 10.0 * (even - odd * odd)
    r[1::2] = 1.0 - odd
    if not jac:
        return r
    J = np.zeros((x.size, x.size))
    k = np.arange(0, x.size, 2)
    J[k, k], J[k, k + 1], J[k + 1, k] = -20.0 * odd, 10.0, -1.0
    return r, J


def _penalty1(x, jac):  # (23) m = n + 1
    n = x.size
    sa = np.sqrt(1e-5)
    r = np.empty(n + 1)
    r[:n] = sa * (x - 1.0)
    r[n] = x @ x - 0.25
    if not jac:
        return r
    J = np.zeros((n + 1, n))
    J[np.arange(n), np.arange(n)] = sa
    J[n] = 2.0 * x
    return r, J


def _penalty2(x, jac):  # (24) m = 2n
    n = x.size
    sa = np.sqrt(1e-5)
    i = np.arange(2.0, n + 1.0)
    y = np.exp(i / 10.0) + np.exp((i - 1.0) / 10.0)
    e = np.exp(x / 10.0)
    w = n - np.arange(n, dtype=np.float64)  # n - j + 1, j = 1..n
    r = np.empty(2 * n)
    r[0] = x[0] - 0.2
    r[1:n] = sa * (e[1:] + e[:-1] - y)
    r[n:2 * n - 1] = sa * (e[1:] - np.exp(-0.1))
    r[2 * n - 1] = w @ (x * x) - 1.0
    if not jac:
        return r
    J = np.zeros((2 * n, n))
    J[0, 0] = 1.0
    k = np.arange(1, n)
    J[k, k] = sa * e[1:] / 10.0
    J[k, k - 1] = sa * e[:-1] / 10.0
    J[n - 1 + k, k] = sa * e[1:] / 10.0
    J[2 * n - 1] = 2.0 * w * x
    return r, J


def _variably_dimensioned(x, jac):  # (25) m = n + 2
    n = x.size
    j = np.arange(1.0, n + 1.0)
    s = j @ (x - 1.0)
    r = np.concatenate([x - 1.0, [s, s * s]])
    if not jac:
        return r
    return r, np.vstack([np.eye(n), j, 2.0 * s * j])


def _trigonometric(x, jac):  # (26) m = n
    n = x.size
    i = np.arange(1.0, n + 1.0)
    c, s = np.cos(x), np.sin(x)
    r = n - c.sum() + i * (1.0 - c) - s
    if not jac:
        return r
    J = np.tile(s, (n, 1))
    J[np.arange(n), np.arange(n)] += i * s - c
    return r, J


def _brown_almost_linear(x, jac):  # (27) m = n
    n = x.size
    r = np.empty(n)
    r[:-1] = x[:-1] + x.sum() - (n + 1.0)
    r[-1] = np.prod(x) - 1.0
    if not jac:
        return r
    J = np.ones((n, n))
    J[np.arange(n - 1), np.arange(n - 1)] = 2.0
    # prod over k != j without dividing by x_j (which may be 0): prefix times suffix products
    before = np.concatenate([[1.0], np.cumprod(x[:-1])])
    after = np.concatenate([np.cumprod(x[::-1][:-1])[::-1], [1.0]])
    J[-1] = before * after
    return r, J


def _discrete_boundary_value(x, jac):  # (28) m = n
    n = x.size
    h = 1.0 / (n + 1.0)
    t = h * np.arange(1.0, n + 1.0)
    padded = np.concatenate([[0.0], x, [0.0]])  # x_0 = x_{n+1} = 0
    u = x + t + 1.0
    r = 2.0 * x - padded[:-2] - padded[2:] + 0.5 * h * h * u ** 3
    if not jac:
        return r
    J = np.diag(2.0 + 1.5 * h * h * u * u) - np.eye(n, k=1) - np.eye(n, k=-1)
    return r, J


def _discrete_integral_equation(x, jac):  # (29) m = n
    n = x.size
    h = 1.0 / (n + 1.0)
    t = h * np.arange(1.0, n + 1.0)
    u = x + t + 1.0
    # K[i, j] = (1 - t_i) t_j for j <= i, t_i (1 - t_j) for j > i
    K = np.where(np.tri(n, dtype=bool), np.outer(1.0 - t, t), np.outer(t, 1.0 - t))
    r = x + 0.5 * h * (K @ u ** 3)
    if not jac:
        return r
    return r, np.eye(n) + 0.5 * h * K * (3.0 * u * u)


def _broyden_tridiagonal(x, jac):  # (30) m = n
    n = x.size
    padded = np.concatenate([[0.0], x, [0.0]])
    r = (3.0 - 2.0 * x) * x - padded[:-2] - 2.0 * padded[2:] + 1.0
    if not jac:
        return r
    return r, np.diag(3.0 - 4.0 * x) - np.eye(n, k=-1) - 2.0 * np.eye(n, k=1)


def _broyden_banded(x, jac, ml=5, mu=1):  # (31) m = n
    n = x.size
    i, j = np.indices((n, n))
    band = (j != i) & (j >= i - ml) & (j <= i + mu)
    r = x * (2.0 + 5.0 * x * x) + 1.0 - band.astype(np.float64) @ (x * (1.0 + x))
    if not jac:
        return r
    J = np.where(band, -(1.0 + 2.0 * x), 0.0)
    J[np.arange(n), np.arange(n)] = 2.0 + 15.0 * x * x
    return r, J


def _linear(x, jac, m, matrix):  # (32)-(34): r = A x - 1, A = matrix(m, n), m >= n
    A = matrix(m, x.size)
    r = A @ x - 1.0
    if not jac:
        return r
    return r, A


def _full_rank_matrix(m, n):  # (32)
    return np.eye(m, n) - 2.0 / m


def _rank1_matrix(m, n):  # (33)
    return np.outer(np.arange(1.0, m + 1.0), np.arange(1.0, n + 1.0))


def _rank1_zero_matrix(m, n):  # (34): zero first and last rows and columns
    a = np.concatenate([[0.0], np.arange(1.0, m - 1.0), [0.0]])  # i - 1 for 2 <= i <= m-1
    b = np.concatenate([[0.0], np.arange(2.0, n), [0.0]])  # j for 2 <= j <= n-1
    return np.outer(a, b)


def _chebyquad(x, jac, m):  # (35) m >= n
    n = x.size
    y = 2.0 * x - 1.0  # Chebyshev polynomials shifted to [0, 1]
    T = np.empty((m + 1, n))
    dT = np.empty((m + 1, n))  # d T_i(2x - 1) / dy
    T[0], T[1], dT[0], dT[1] = 1.0, y, 0.0, 1.0
    for k in range(1, m):
        T[k + 1] = 2.0 * y * T[k] - T[k - 1]
        dT[k + 1] = 2.0 * T[k] + 2.0 * y * dT[k] - dT[k - 1]
    integral = np.zeros(m)  # integral of T_i over [0, 1]: 0 for odd i, -1/(i^2 - 1) for even
    even = np.arange(2.0, m + 1.0, 2.0)
    integral[1::2] = -1.0 / (even * even - 1.0)
    r = T[1:].mean(axis=1) - integral
    if not jac:
        return r
    return r, dT[1:] * (2.0 / n)


# The problems ---------------------------------------------------------------------------
def _p(number, name, fn, x0, f_star, f_paper, m, f_local=(), note=""):
    x0 = tuple(float(v) for v in x0)
    return Problem(name=name, number=number, n=len(x0), m=m, x0_values=x0,
                   f_star=float(f_star), f_paper=float(f_paper), f_local=tuple(f_local),
                   note=note, residual_fn=fn)


_N = 10  # the size of the variable-size problems
_partial = functools.partial

PROBLEMS = [
    _p(1, "Rosenbrock", _rosenbrock, (-1.2, 1.0), 0.0, 0.0, 2),
    _p(2, "Freudenstein-Roth", _freudenstein_roth, (0.5, -2.0), 0.0, 0.0, 2,
       f_local=(48.98425367924,),
       note="local minimum f = 48.9842... at (11.41..., -0.8968...)"),
    _p(3, "Powell badly scaled", _powell_badly_scaled, (0.0, 1.0), 0.0, 0.0, 2,
       note="minimum at (1.098...e-5, 9.106...)"),
    _p(4, "Brown badly scaled", _brown_badly_scaled, (1.0, 1.0), 0.0, 0.0, 3,
       note="minimum at (1e6, 2e-6)"),
    _p(5, "Beale", _beale, (1.0, 1.0), 0.0, 0.0, 3),
    _p(6, "Jennrich-Sampson m=10", _partial(_jennrich_sampson, m=10), (0.3, 0.4),
       124.36218235561482, 124.362, 10, note="minimum at x1 = x2 = 0.2578"),
    _p(7, "Helical valley", _helical_valley, (-1.0, 0.0, 0.0), 0.0, 0.0, 3),
    _p(8, "Bard", _bard, (1.0, 1.0, 1.0), 8.2148773065789677e-3, 8.21487e-3, 15,
       f_local=(17.4286,),
       note="f = 17.4286... as x -> (0.8406..., -inf, -inf)"),
    _p(9, "Gaussian", _gaussian, (0.4, 1.0, 0.0), 1.1279327696185339e-8, 1.12793e-8, 15),
    _p(10, "Meyer", _meyer, (0.02, 4000.0, 250.0), 87.945855170372056, 87.9458, 16),
    _p(11, "Gulf research m=99", _partial(_gulf, m=99), (5.0, 2.5, 0.15), 0.0, 0.0, 99,
       note="minimum at (50, 25, 1.5)"),
    _p(12, "Box 3-D m=10", _partial(_box_3d, m=10), (0.0, 10.0, 20.0), 0.0, 0.0, 10,
       note="minima at (1, 10, 1), (10, 1, -1) and wherever x1 = x2, x3 = 0"),
    _p(13, "Powell singular", _extended_powell, (3.0, -1.0, 0.0, 1.0), 0.0, 0.0, 4,
       note="minimum at the origin, singular Hessian there"),
    _p(14, "Wood", _wood, (-3.0, -1.0, -3.0, -1.0), 0.0, 0.0, 6),
    _p(15, "Kowalik-Osborne", _kowalik_osborne, (0.25, 0.39, 0.415, 0.39),
       3.0750560384923664e-4, 3.07505e-4, 11, f_local=(1.02734e-3,),
       note="f = 1.02734...e-3 as x -> (+inf, -14.07..., -inf, -inf)"),
    _p(16, "Brown-Dennis m=20", _partial(_brown_dennis, m=20), (25.0, 5.0, -5.0, -1.0),
       85822.201626356313, 85822.2, 20),
    _p(17, "Osborne 1", _osborne1, (0.5, 1.5, -1.0, 0.01, 0.02), 5.464894697482509e-5,
       5.46489e-5, 33),
    _p(18, "Biggs EXP6 m=13", _partial(_biggs_exp6, m=13), (1.0, 2.0, 1.0, 1.0, 1.0, 1.0),
       0.0, 5.65565e-3, 13, f_local=(5.65565e-3,),
       note="the paper prints f = 5.65565e-3 for m = 13, a local minimum: the residuals "
            "vanish at (1, 10, 1, 5, 4, 3) for every m, so f_star is 0"),
    _p(19, "Osborne 2", _osborne2,
       (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5),
       4.0137736293547686e-2, 4.01377e-2, 65),
    _p(20, "Watson n=9", _watson, np.zeros(9), 1.3997601380908576e-6, 1.39976e-6, 31),
    _p(21, "Extended Rosenbrock n=10", _extended_rosenbrock, np.tile([-1.2, 1.0], _N // 2),
       0.0, 0.0, _N),
    _p(22, "Extended Powell n=12", _extended_powell, np.tile([3.0, -1.0, 0.0, 1.0], 3),
       0.0, 0.0, 12, note="minimum at the origin, singular Hessian there"),
    _p(23, "Penalty I n=10", _penalty1, np.arange(1.0, _N + 1.0), 7.0876514670903677e-5,
       7.08765e-5, _N + 1),
    _p(24, "Penalty II n=10", _penalty2, np.full(_N, 0.5), 2.9366053745674605e-4, 2.93660e-4,
       2 * _N),
    _p(25, "Variably dimensioned n=10", _variably_dimensioned, 1.0 - np.arange(1.0, _N + 1.0) / _N,
       0.0, 0.0, _N + 2),
    _p(26, "Trigonometric n=10", _trigonometric, np.full(_N, 1.0 / _N), 0.0, 0.0, _N,
       f_local=(2.7950561218784e-5,),
       note="f = 0 at x = 0; from x0, local methods end at the local minimum "
            "f = 2.79506e-5 (found here, not listed in the paper)"),
    _p(27, "Brown almost-linear n=10", _brown_almost_linear, np.full(_N, 0.5), 0.0, 0.0, _N,
       f_local=(1.0,), note="f = 1 at (0, ..., 0, n + 1)"),
    _p(28, "Discrete boundary value n=10", _discrete_boundary_value,
       [t * (t - 1.0) for t in np.arange(1.0, _N + 1.0) / (_N + 1.0)], 0.0, 0.0, _N),
    _p(29, "Discrete integral equation n=10", _discrete_integral_equation,
       [t * (t - 1.0) for t in np.arange(1.0, _N + 1.0) / (_N + 1.0)], 0.0, 0.0, _N),
    _p(30, "Broyden tridiagonal n=10", _broyden_tridiagonal, np.full(_N, -1.0), 0.0, 0.0, _N),
    _p(31, "Broyden banded n=10", _broyden_banded, np.full(_N, -1.0), 0.0, 0.0, _N),
    _p(32, "Linear full rank n=10 m=20", _partial(_linear, m=20, matrix=_full_rank_matrix),
       np.ones(_N), 10.0, 10.0, 20, note="f = m - n at x = -1"),
    _p(33, "Linear rank 1 n=10 m=20", _partial(_linear, m=20, matrix=_rank1_matrix),
       np.ones(_N), 20 * 19 / (2 * 41), 20 * 19 / (2 * 41), 20,
       note="f = m(m-1)/(2(2m+1)) wherever sum j x_j = 3/(2m+1)"),
    _p(34, "Linear rank 1 zero columns and rows n=10 m=20",
       _partial(_linear, m=20, matrix=_rank1_zero_matrix), np.ones(_N),
       (400 + 60 - 6) / (2 * 37), (400 + 60 - 6) / (2 * 37), 20,
       note="f = (m^2 + 3m - 6)/(2(2m-3)) wherever sum_{j=2}^{n-1} j x_j = 3/(2m-3)"),
    _p(35, "Chebyquad n=8", _partial(_chebyquad, m=8), np.arange(1.0, 9.0) / 9.0,
       3.5168737256779195e-3, 3.51687e-3, 8),
]
