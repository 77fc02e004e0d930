"""L-BFGS as a reverse-communication state machine, all arithmetic compiled.

:func:`lbfgs_step` never calls the objective.  Each call consumes the value
and gradient at the last requested point and answers with what it needs
next, the way the Fortran L-BFGS-B code talks to SciPy:

``EVALUATE``   evaluate ``f`` and ``g`` at ``x_trial`` and call again;
``ITERATE``    an iteration ended: ``x``, ``f`` and ``g`` hold the new iterate
               (the caller counts it, runs callbacks, checks its limits unless
               ``js[PHASE] == FINISHED``) and calls again, without new values;
``CONVERGED``  ``max |projected gradient| <= gtol``, the relative decrease of
               ``f`` fell to ``ftol``, or the line search found ``f`` at its
               rounding floor; ``js[MESSAGE]`` says which;
``FAILED``     the line search found no acceptable step from a steepest-descent
               direction either (or at once, when ``js[GRADIENT_REFINABLE]``:
               the caller then refines its gradient and calls :func:`restart`);
``NONFINITE``  ``f`` or ``g`` at the starting point is NaN or Inf.

Because the driver only shuttles values, a Python objective and a compiled
one (:mod:`.minimize_loops`) go through exactly the same arithmetic and
produce the same iterates.

The direction is the two-loop recursion over the last ``m`` pairs
``(s, y)`` with the initial scaling ``s.y / y.y`` (Nocedal and Wright, Alg.
7.4); pairs with ``s.y <= 1e-10 |s| |y|`` are skipped, which keeps the
implicit Hessian positive definite.  Without bounds the step satisfies the
strong Wolfe conditions (Alg. 3.5 and 3.6, cubic interpolation safeguarded
by bisection).  With bounds, every trial point is projected onto the box;
coordinates held at a bound by their gradient are left out of the
direction, which is the two-loop recursion on the other (free) variables
alone, over the pairs' free parts (:func:`free_direction`: L-BFGS-B's
reduced quasi-Newton step; the full recursion with the held entries
zeroed took 125 iterations on a bounded Watson n=9, against 80), and
coordinates at a bound that the direction points out of are left out too
(the projection would hold them).  When the first trial lies inside the box
(:func:`box_steps`), the search is the same strong Wolfe search along the
straight line, its steps capped at the box's edge (``fs[A_MAX]``; a step
there that still decreases f is taken), as L-BFGS-B, whose steps stop at
the box, so that the curvature pairs stay as good as without bounds.  When
the first trial lies past a bound (``js[PROJECTED]``), the path bends, and
the step is found by backtracking to the Armijo condition along the
projected path, each step from the quadratic interpolation of the last
within [0.1, 0.5] of it (:func:`backtrack_step`), and never past the step
beyond which the projected point stops moving (``fs[A_LAST]``): no two
trials are the same point.  With no curvature pair yet and every variable
in a finite box, the first trial is step 1 along -g (L-BFGS-B's Cauchy point
of the model with unit Hessian), not a step of unit length.  A search takes
at most ``js[MAX_LS]`` evaluations (L-BFGS-B's ``maxls``, 20 by default).

Rounding floor.  Near a minimum f may change only in its last bits, and no
step then decreases it by the Armijo margin however good the iterate.
L-BFGS-B ends such runs with success (its line search warns that rounding
prevents progress, and its ``factr * eps`` test on the step taken fires);
so does this kernel.  A search is flat when ``FLAT_TRIALS`` trials in a row
of it, narrowing (zoom or backtracking, not extrapolation), are within the
floor of f(x) (:func:`within_floor`: the ftol test's margin, or
``fs[FLOOR]`` relative, :func:`floor_for`), or when it failed with every
trial there.  A flat search takes its lowest point when that is below f(x),
as an ordinary step, and the run goes on; only a flat search with nothing
lower ends the run (``BY_FLOOR``, :func:`finish_at_floor`).  A trial above
f(x) counts only once the search has found a lower one: with a wrong
gradient every trial rises above f(x), by a lot at first, and that search
must fail, which the secant slopes of its trials show within a few trials
(:func:`rises_along_d`: two jumps to 1000x shorter steps that still rise).
After FAILED, a caller whose
gradient can be made more accurate (finite differences: forward to central,
then to steps relative to ``|x|``) writes it to ``vec[G]`` and calls
:func:`restart`.

Every kernel here is compiled with no fastmath flag (``exact=True``) and sums
in one fixed order, so the iterates depend only on the values of f and g:
not on the CPU's instruction set, nor on whether the kernels were compiled in
this process or loaded from Numba's cache (they differed with the flags).

State lives in flat arrays owned by the caller (:func:`state_sizes`).
"""

import math

import numba
import numpy as np

from ._jit import jit, single
from .copies import copy_vector
from .updates import SUM_LANES  # the fixed summation order clip-norm uses too

# Requests.
EVALUATE = 0
ITERATE = 1
CONVERGED = 2
FAILED = 3
NONFINITE = 4

# Why CONVERGED.
BY_GTOL = 1
BY_FTOL = 2
BY_FLOOR = 3  # the line search could not change f by more than its rounding floor

# Rows of the float64 vector state ``vec`` (N_VEC, n).
X = 0  # the current iterate
G = 1  # its gradient
D = 2  # the search direction
X_TRIAL = 3  # the point the caller evaluates next (EVALUATE)
G_TRIAL = 4  # the gradient there, written by the caller
N_VEC = 5

# Slots of the float64 scalar state ``fs``.
F_X = 0  # f at the current iterate
F_OLD = 1  # f at the previous iterate
A_CUR = 2  # step of the pending trial
A_PREV = 3  # previous trial step (bracketing)
PHI_PREV = 4
DPHI_PREV = 5
A_LO = 6  # zoom interval end with the lower value
PHI_LO = 7
DPHI_LO = 8
A_HI = 9
PHI_HI = 10
DPHI_HI = 11
DPHI0 = 12  # directional derivative at step 0
GTOL = 13
FTOL = 14
C1 = 15
C2 = 16
FLOOR = 17  # relative change of f that counts as rounding (floor_for)
A_MAX = 18  # with bounds: the longest step along d that stays in the box
A_LAST = 19  # with bounds: the step past which P(x + a d) no longer moves
N_FS = 20

# Trials in a row within the floor of f(x) that end a line search at the floor.
# One such trial can be an accident (a quadratic's value at twice the
# minimising step equals f(x)); three at different steps are not.
FLAT_TRIALS = 3

# Slots of the int64 state ``js``.
PHASE = 0
STAGE = 1  # line-search stage: bracketing or zooming
LS_EVALS = 2
HEAD = 3  # ring position of the newest pair
COUNT = 4  # stored pairs
RESTARTED = 5  # this line search started from steepest descent
MESSAGE = 6
HAS_BOUNDS = 7
M = 8
MAX_LS = 9  # evaluations one line search may take (L-BFGS-B's maxls)
FLAT = 10  # trials in a row of this search within the rounding floor of f(x)
ALL_NEAR = 11  # 1 while every trial of this search was within that floor
GRADIENT_REFINABLE = 12  # 1: FAILED on the first failed search (see restart)
RISES = 13  # trials of this search that rose along d against the gradient's word
PROJECTED = 14  # 1: this search backtracks along the projected path (it bends at a bound)
N_JS = 15

# Phases.
_START = 0
FIRST_VALUE = 1  # x0 is being evaluated (or a caller starts here with its value)
_SEARCHING = 2
_PENDING = 3  # a trial is prepared; hand it out on the next call
FINISHED = 4  # the last step converged: ITERATE was returned, CONVERGED comes next

RISE_JUMP = 1e-3  # a rising search's next step, relative to the last (rises_along_d)
RISE_JUMPS = 2  # jumps after which a search that still rises fails

_BRACKET = 0
_ZOOM = 1
_TAKE_LOWEST = 2  # the trial is the search's lowest, evaluated again to be taken
MAX_LS_DEFAULT = 20  # as L-BFGS-B


def state_sizes(n, m):
    """Shapes of the state arrays for ``n`` variables and memory ``m``.

    Returns
    -------
    dict
        ``vectors`` (N_VEC, n): rows X, G, D, X_TRIAL, G_TRIAL;
        ``pairs`` (2, m, n): S and Y; ``rho``, ``alpha`` (m,);
        ``fs`` (N_FS,) float64; ``js`` (N_JS,) int64.
    """
    return {"vectors": (N_VEC, n), "pairs": (2, m, n), "rho": (m,), "alpha": (m,),
            "fs": (N_FS,), "js": (N_JS,)}


# Sums over the n variables run in one fixed order: SUM_LANES running sums
# over interleaved elements, combined pairwise.  With no fastmath flag
# (exact=True) the compiler may not reorder them, so every CPU and every
# compilation gives the same iterates.  LLVM does not vectorise them; the
# eight independent chains still overlap (400 ns for 1000 elements, against
# 200 ns for the reassociated, vectorised loop).
@jit(exact=True)
def dot(a, b):
    """``sum(a * b)`` in the fixed order."""
    return dot_of_differences(a, None, b, None)


assert SUM_LANES == 8  # dot_of_differences writes its eight running sums out


@jit(exact=True)
def dot_of_differences(a1, a0, b1, b0):
    """``sum((a1 - a0) * (b1 - b0))`` in the fixed order; ``a0`` or ``b0`` None
    stands for zeros (resolved when the kernel is compiled, not per element)."""
    n = a1.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    whole = n - n % SUM_LANES
    for i in range(0, whole, SUM_LANES):
        s0 += term(a1, a0, b1, b0, i)
        s1 += term(a1, a0, b1, b0, i + 1)
        s2 += term(a1, a0, b1, b0, i + 2)
        s3 += term(a1, a0, b1, b0, i + 3)
        s4 += term(a1, a0, b1, b0, i + 4)
        s5 += term(a1, a0, b1, b0, i + 5)
        s6 += term(a1, a0, b1, b0, i + 6)
        s7 += term(a1, a0, b1, b0, i + 7)
    for i in range(whole, n):
        s0 += term(a1, a0, b1, b0, i)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def term(a1, a0, b1, b0, i):
    """``(a1[i] - a0[i]) * (b1[i] - b0[i])``, a None operand being 0 (compiled
    form: :func:`_term`)."""
    a = a1[i] if a0 is None else a1[i] - a0[i]
    b = b1[i] if b0 is None else b1[i] - b0[i]
    return a * b


# Not inlined into the IR: dot_of_differences calls it nine times, and nine
# inlined copies per variant were most of its compile time.  Compiled once per
# variant, LLVM still inlines it into the sums (no fastmath flag either way).
@numba.extending.overload(term, jit_options={"error_model": "numpy"})
def _term(a1, a0, b1, b0, i):
    """:func:`term` with the None operands resolved while compiling."""
    a_zero = isinstance(a0, numba.types.NoneType)
    b_zero = isinstance(b0, numba.types.NoneType)
    if a_zero and b_zero:
        return lambda a1, a0, b1, b0, i: a1[i] * b1[i]
    if a_zero:
        return lambda a1, a0, b1, b0, i: a1[i] * (b1[i] - b0[i])
    if b_zero:
        return lambda a1, a0, b1, b0, i: (a1[i] - a0[i]) * b1[i]
    return lambda a1, a0, b1, b0, i: (a1[i] - a0[i]) * (b1[i] - b0[i])


@jit(exact=True)
def gradient_check(x, g, lower, upper, has_bounds):
    """Whether ``g`` is finite, and the max-norm of the projected gradient at ``x``.

    Without bounds the projected gradient is ``g`` itself; with bounds it is
    ``P(x - g) - x``, which is 0 where a bound holds the variable.
    """
    finite = True
    worst = 0.0
    for i in range(x.shape[0]):
        gi = g[i]
        if not math.isfinite(gi):
            finite = False
        step = min(max(x[i] - gi, lower[i]), upper[i]) - x[i] if has_bounds else gi
        worst = max(worst, abs(step))
    return finite, worst


@jit(exact=True)
def direction(g, S, Y, rho, alpha, head, count, m, x, lower, upper, has_bounds, d):
    """``d = -H g`` by the two-loop recursion; with bounds, on the free variables
    (:func:`free_direction`).
    """
    if has_bounds:
        free_direction(g, S, Y, rho, alpha, head, count, m, x, lower, upper, d)
        return
    n = g.shape[0]
    for i in range(n):
        d[i] = -g[i]
    # d holds -q; the recursion is linear, so it runs on -q directly.
    for k in range(count):
        j = (head - k) % m
        a = rho[j] * dot(S[j], d)
        alpha[j] = a
        for i in range(n):
            d[i] -= a * Y[j, i]
    if count > 0:
        y_new = Y[head]
        gamma = dot(S[head], y_new) / dot(y_new, y_new)
        for i in range(n):
            d[i] *= gamma
    for k in range(count - 1, -1, -1):
        j = (head - k) % m
        b = rho[j] * dot(Y[j], d)
        for i in range(n):
            d[i] += (alpha[j] - b) * S[j, i]


@jit(exact=True)
def held(x, g, lower, upper, i):
    """Whether a bound holds variable ``i``: at it, with the gradient pushing out."""
    return (x[i] <= lower[i] and g[i] > 0) or (x[i] >= upper[i] and g[i] < 0)


@jit(exact=True)
def free_curvature(s, y, x, g, lower, upper):
    """``(1 / s.y, s.y / y.y)`` over the variables no bound holds; ``(0, 0)`` when
    that curvature fails the test of :func:`store_pair`."""
    sy = ss = yy = 0.0
    for i in range(s.shape[0]):
        if not held(x, g, lower, upper, i):
            sy += s[i] * y[i]
            ss += s[i] * s[i]
            yy += y[i] * y[i]
    if not sy > 1e-10 * math.sqrt(ss * yy):
        return 0.0, 0.0
    return 1.0 / sy, sy / yy


@jit(exact=True, inline=True)
def free_direction(g, S, Y, rho, alpha, head, count, m, x, lower, upper, d):
    """:func:`direction` under bounds: the two-loop recursion on the free variables
    alone, ``d = -H_F g_F`` with ``H_F`` built from the pairs' free parts (the
    reduced quasi-Newton step of L-BFGS-B's subspace minimisation, without its
    Cauchy point); a pair whose free part has too little curvature is skipped.
    Held variables get ``d = 0``.
    """
    n = g.shape[0]
    for i in range(n):
        d[i] = 0.0 if held(x, g, lower, upper, i) else -g[i]
    gamma = 0.0
    for k in range(count):
        j = (head - k) % m
        r, ratio = free_curvature(S[j], Y[j], x, g, lower, upper)
        if gamma == 0.0:
            gamma = ratio  # the newest pair that counts scales H_0
        a = r * dot(S[j], d)  # d is 0 where held: a dot over the free variables
        alpha[j] = a
        if r != 0.0:
            for i in range(n):
                if not held(x, g, lower, upper, i):
                    d[i] -= a * Y[j, i]
    if gamma != 0.0:
        for i in range(n):
            d[i] *= gamma
    for k in range(count - 1, -1, -1):
        j = (head - k) % m
        r = free_curvature(S[j], Y[j], x, g, lower, upper)[0]
        if r == 0.0:
            continue
        b = r * dot(Y[j], d)
        for i in range(n):
            if not held(x, g, lower, upper, i):
                d[i] += (alpha[j] - b) * S[j, i]


@jit(exact=True, inline=True)
def store_pair(x_new, x_old, g_new, g_old, S, Y, rho, js):
    """Push ``s = x_new - x_old``, ``y = g_new - g_old`` unless curvature is too small.

    The curvature test runs before anything is written, so a rejected pair
    leaves the stored ones intact.
    """
    sy = dot_of_differences(x_new, x_old, g_new, g_old)
    ss = dot_of_differences(x_new, x_old, x_new, x_old)
    yy = dot_of_differences(g_new, g_old, g_new, g_old)
    if not sy > 1e-10 * math.sqrt(ss * yy):
        return
    m = js[M]
    nxt = (js[HEAD] + 1) % m
    for i in range(x_new.shape[0]):
        S[nxt, i] = x_new[i] - x_old[i]
        Y[nxt, i] = g_new[i] - g_old[i]
    rho[nxt] = 1.0 / sy
    js[HEAD] = nxt
    js[COUNT] = min(js[COUNT] + 1, m)


@jit(exact=True)
def box_steps(x, d, lower, upper):
    """The steps along ``d`` at which the first and the last moving coordinate of
    ``x + a d`` reach a bound: up to the first, the projected path is the
    straight line; past the last, ``P(x + a d)`` no longer moves.

    A coordinate at a bound whose ``d`` points out of the box is set to 0 in
    ``d`` first: the projection holds it there for every step, so the trial
    points do not change, and ``g . d`` becomes the slope of f along the path.
    Both steps are ``inf`` when no bound lies ahead.
    """
    first = np.inf
    last = 0.0
    for i in range(x.shape[0]):
        di = d[i]
        if di == 0.0:
            continue
        room = upper[i] - x[i] if di > 0 else lower[i] - x[i]
        if (di > 0 and room <= 0) or (di < 0 and room >= 0):
            d[i] = 0.0
            continue
        t = room / di
        first = min(first, t)
        last = max(last, t)
    return first, last


@jit(exact=True, inline=True)
def boxed(lower, upper):
    """Whether every variable has a finite lower and upper bound."""
    for i in range(lower.shape[0]):
        if not (math.isfinite(lower[i]) and math.isfinite(upper[i])):
            return False
    return True


@jit(exact=True, inline=True)
def backtrack_step(a, phi, f0, decrease, finite, a_last):
    """The next step of a backtracking search along the projected path after the
    trial at step ``a`` (value ``phi``, linear decrease ``g . (x_trial - x)``)
    failed the Armijo test.

    The minimiser of the quadratic in the step through ``f0``, the slope
    ``decrease / a`` at 0 and ``phi``, kept within [0.1, 0.5] of ``a``
    (Nocedal and Wright, section 3.5); half of ``a`` when the quadratic has no
    minimum there or f was not finite.  Steps past ``a_last`` give the same
    point as ``a_last``, so ``a`` counts as ``a_last`` then: no two trials of
    the search project to the same point.
    """
    if a > a_last:
        a = a_last
    t = 0.5
    curv = phi - f0 - decrease
    if finite and decrease < 0 and curv > 0:
        t = min(max(-decrease / (2.0 * curv), 0.1), 0.5)
    return t * a


@jit(exact=True)
def set_trial(x, d, a, lower, upper, has_bounds, x_trial):
    """``x_trial = P(x + a d)``."""
    for i in range(x.shape[0]):
        v = x[i] + a * d[i]
        if has_bounds:
            v = min(max(v, lower[i]), upper[i])
        x_trial[i] = v


@jit(exact=True)
def cubic_min(a, fa, da, b, fb, db):
    """Minimiser of the cubic through (a, fa, da), (b, fb, db), kept inside the
    middle 80% of the interval; the midpoint when the cubic has none."""
    lo, hi = min(a, b), max(a, b)
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    t = 0.5 * (a + b)
    if disc >= 0 and math.isfinite(disc):
        d2 = math.copysign(math.sqrt(disc), b - a)
        denom = db - da + 2.0 * d2
        if denom != 0:
            t = b - (b - a) * (db + d2 - d1) / denom
    margin = 0.1 * (hi - lo)
    if not (lo + margin <= t <= hi - margin):
        t = 0.5 * (a + b)
    return t


@jit(exact=True)
def begin_search(vec, pairs, rho, alpha, fs, js, lower, upper):
    """New direction from the current iterate and the first trial point."""
    x, g, d, x_trial = vec[X], vec[G], vec[D], vec[X_TRIAL]
    has_bounds = js[HAS_BOUNDS] != 0
    direction(g, pairs[0], pairs[1], rho, alpha, js[HEAD], js[COUNT], js[M], x, lower, upper,
              has_bounds, d)
    if has_bounds:
        fs[A_MAX], fs[A_LAST] = box_steps(x, d, lower, upper)
    dphi0 = dot(g, d)
    if not dphi0 < 0:  # not a descent direction: fall back to steepest descent
        js[COUNT] = 0
        # head and count as read from js (both 0), not as the constants 0: a
        # constant argument makes Numba compile direction a second time, for
        # those literal values.
        direction(g, pairs[0], pairs[1], rho, alpha, js[COUNT], js[COUNT], js[M], x, lower,
                  upper, has_bounds, d)
        if has_bounds:
            fs[A_MAX], fs[A_LAST] = box_steps(x, d, lower, upper)
        dphi0 = dot(g, d)
    if js[COUNT] == 0 and has_bounds and boxed(lower, upper):
        # No curvature yet, every variable in a finite box: step 1 along -g, to
        # the Cauchy point of the model with unit Hessian, as L-BFGS-B.
        a = 1.0
    elif js[COUNT] == 0:
        # No curvature yet: a first step of unit length along d.
        a = min(1.0, 1.0 / math.sqrt(dot(d, d))) if dphi0 < 0 else 1.0
    else:
        a = 1.0
    # With bounds, a first trial inside the box searches the straight line for a
    # strong Wolfe step no longer than A_MAX, as without bounds (and as
    # L-BFGS-B, whose steps stop at the box); one past a bound backtracks along
    # the projected path, which can make several bounds active at once.
    js[PROJECTED] = 1 if has_bounds and a > fs[A_MAX] else 0
    fs[DPHI0] = dphi0
    fs[A_CUR] = a
    fs[A_PREV] = 0.0
    fs[PHI_PREV] = fs[F_X]
    fs[DPHI_PREV] = dphi0
    js[STAGE] = _BRACKET
    js[LS_EVALS] = 0
    js[FLAT] = 0
    js[ALL_NEAR] = 1
    js[RISES] = 0
    js[RESTARTED] = 1 if js[COUNT] == 0 else 0
    set_trial(x, d, a, lower, upper, has_bounds, x_trial)


@jit(exact=True)
def accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper):
    """Make the trial point the new iterate; returns CONVERGED or ITERATE."""
    x, g, x_trial, g_trial = vec[X], vec[G], vec[X_TRIAL], vec[G_TRIAL]
    store_pair(x_trial, x, g_trial, g, pairs[0], pairs[1], rho, js)
    copy_vector(x, x_trial)
    copy_vector(g, g_trial)
    fs[F_OLD] = fs[F_X]
    fs[F_X] = f_trial
    has_bounds = js[HAS_BOUNDS] != 0
    f_old = fs[F_OLD]
    if gradient_check(x, g, lower, upper, has_bounds)[1] <= fs[GTOL]:
        js[MESSAGE] = BY_GTOL
        js[PHASE] = FINISHED
    elif (f_old - f_trial) <= fs[FTOL] * max(abs(f_old), abs(f_trial), 1.0):
        js[MESSAGE] = BY_FTOL
        js[PHASE] = FINISHED
    else:
        begin_search(vec, pairs, rho, alpha, fs, js, lower, upper)
        js[PHASE] = _PENDING
    return ITERATE  # the step counts as an iteration even when it converged


def floor_for(dtype):
    """The relative change of f below which a line search deems f at its rounding
    floor, for variables of ``dtype``: ``eps ** (2/3)`` (3.7e-11 for float64,
    2.4e-5 for float32).

    f jitters near a minimum by far more than one unit in the last place when
    its terms cancel: by 2e-12 relative (1e4 units) on Meyer's problem, whose
    residuals are differences of numbers near 3e4.  Two thirds of the digits
    leave that room and stay below L-BFGS-B's default ftol (2.2e-9), so the
    floor only matters to runs with a smaller ftol.
    """
    return float(np.finfo(dtype).eps) ** (2.0 / 3.0)


@jit(exact=True, inline=True)
def within_floor(phi, f0, ftol, floor):
    """Whether ``phi`` differs from ``f0`` by no more than the ftol test allows
    (``ftol * max(|f0|, |phi|, 1)``, L-BFGS-B's ``factr * eps`` test) or than
    rounding (``floor * max(|f0|, |phi|)``: relative to f alone, so that an f
    converging to 0 is never at its floor early)."""
    scale = max(abs(f0), abs(phi))
    return abs(phi - f0) <= max(ftol * max(scale, 1.0), floor * scale)


@jit(exact=True, inline=True)
def count_flat_trial(flat, js):
    """Count a flat trial (reset the count otherwise): whether ``FLAT_TRIALS`` in a
    row have now been flat."""
    js[FLAT] = js[FLAT] + 1 if flat else 0
    return js[FLAT] >= FLAT_TRIALS


@jit(exact=True)
def finish_at_floor(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper):
    """A search that cannot change f measurably: take its lowest point when it is
    below f(x), else end the run (``BY_FLOOR``).

    ``f_trial`` is the current trial's value (``np.inf`` when there is none to
    take, as after a failed search).  A lower point is taken as an ordinary step, and the ftol test on it ends the
    run or not, as after any step: progress by less than the floor per search
    can still add up (with ``ftol=0``), and only a flat search that finds
    nothing lower shows that f has reached its floor.  The lowest point of a
    zoom that is not the current trial is evaluated once more (its gradient
    was not kept) and taken then.
    """
    if f_trial < fs[F_X]:
        return accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
    if js[STAGE] == _ZOOM and fs[A_LO] > 0 and fs[PHI_LO] < fs[F_X]:
        js[STAGE] = _TAKE_LOWEST
        fs[A_CUR] = fs[A_LO]
        set_trial(vec[X], vec[D], fs[A_LO], lower, upper, js[HAS_BOUNDS] != 0, vec[X_TRIAL])
        return EVALUATE
    js[MESSAGE] = BY_FLOOR
    return CONVERGED


@jit(exact=True)
def restart(vec, pairs, rho, alpha, fs, js, lower, upper):
    """Search again from steepest descent with a new gradient at ``x`` (``vec[G]``,
    written by the caller after FAILED).  A caller that can refine its gradient
    sets ``js[GRADIENT_REFINABLE]`` (and only the caller writes it): a failed
    search then ends in FAILED at once, without the steepest-descent retry on
    the old gradient.  On the MGH problems with ``jac=None`` that retry first,
    then refining, left one solved run in status 2 and a median nfev ratio to
    L-BFGS-B of 1.021, against none and 1.009.

    Returns FAILED when the new gradient is not finite, CONVERGED when it meets
    gtol, else EVALUATE: the
    first trial is then prepared, and the next :func:`lbfgs_step` call hands it
    out without consuming a value, as after an accepted step.  The stored pairs are
    dropped: they were built from the old gradients.
    """
    js[COUNT] = 0
    finite, worst = gradient_check(vec[X], vec[G], lower, upper, js[HAS_BOUNDS] != 0)
    if not finite:  # the new gradient is no better: NaN or Inf in it
        return FAILED
    if worst <= fs[GTOL]:
        js[MESSAGE] = BY_GTOL
        js[PHASE] = FINISHED
        return CONVERGED
    begin_search(vec, pairs, rho, alpha, fs, js, lower, upper)
    js[PHASE] = _PENDING
    return EVALUATE


@jit(exact=True, inline=True)
def rises_along_d(a, phi, a_lo, a_hi, phi_hi, f0):
    """Whether f rises along d at this step about as steeply as at a step four
    times longer, with no lower point found yet.

    With no lower point yet (``a_lo == 0``), a trial ``a <= a_hi / 4`` above
    f(x) whose secant slope ``(phi - f0) / a`` is at least half the one at
    ``a_hi``.  Near 0 the secant slope of a differentiable f tends to
    ``dphi0 < 0``, so this is what a wrong or too inaccurate gradient gives
    (forward differences near a minimum), but also a correct one whose first
    step overshot far into a region where f grows linearly (a Huber-like or
    ``sqrt(c + x**2)`` f).  The search therefore does not fail at once: the
    next trial jumps to a step ``RISE_JUMP`` times shorter, where a correct
    gradient shows its decrease, and only after ``RISE_JUMPS`` such jumps that
    still rise does it fail, in a handful of trials instead of ``MAX_LS``.
    """
    if a_lo != 0 or not (a <= 0.25 * a_hi and phi > f0 and phi_hi > f0):
        return False
    return (phi - f0) / a >= 0.5 * (phi_hi - f0) / a_hi


@jit(exact=True)
def search_failed(vec, pairs, rho, alpha, fs, js, lower, upper):
    """No acceptable step: retry once from steepest descent, else FAILED; but when
    every trial of the search was within the floor of f(x), f is flat to rounding
    along the whole search: the run ends there (a wrong gradient's trials rise
    well above f(x) before they shrink towards it)."""
    if js[ALL_NEAR] != 0:
        return finish_at_floor(vec, pairs, rho, alpha, fs, js, np.inf, lower, upper)
    if js[RESTARTED] != 0 or js[GRADIENT_REFINABLE] != 0:
        return FAILED
    js[COUNT] = 0
    begin_search(vec, pairs, rho, alpha, fs, js, lower, upper)
    return EVALUATE


@jit(exact=True)
def lbfgs_step(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper):
    """Advance the state machine with ``f_trial`` (and ``vec[G_TRIAL]``, the gradient) at
    ``vec[X_TRIAL]``; returns the next request (module docstring).

    Parameters
    ----------
    vec : ndarray of shape (N_VEC, n), float64
        Rows x, g, d, x_trial, g_trial.  Before the first call,
        ``x_trial`` holds the starting point (and ``g_trial`` its gradient
        when PHASE is FIRST_VALUE).
    pairs : ndarray of shape (2, m, n)
    rho, alpha : ndarray of shape (m,)
    fs : ndarray of shape (N_FS,), float64
        GTOL, FTOL, C1, C2 and FLOOR set by the caller.
    js : ndarray of shape (N_JS,), int64
        PHASE, M, MAX_LS and HAS_BOUNDS set by the caller.  PHASE 0 starts by asking
        for f at ``x_trial``; a caller that evaluates it first sets
        FIRST_VALUE and passes the value as the first ``f_trial``.
    f_trial : float
        f at ``vec[X_TRIAL]`` (ignored when the last request was not EVALUATE).
    lower, upper : ndarray of shape (n,)
        Bounds (used only when HAS_BOUNDS).
    """
    phase = js[PHASE]
    if phase == FINISHED:
        return CONVERGED
    if phase == _START:
        js[PHASE] = FIRST_VALUE
        return EVALUATE
    if phase == _PENDING:
        js[PHASE] = _SEARCHING
        return EVALUATE
    g_trial = vec[G_TRIAL]
    finite = math.isfinite(f_trial)
    if finite:
        for i in range(g_trial.shape[0]):
            if not math.isfinite(g_trial[i]):
                finite = False
                break
    if phase == FIRST_VALUE:
        if not finite:
            return NONFINITE
        copy_vector(vec[X], vec[X_TRIAL])
        copy_vector(vec[G], g_trial)
        fs[F_X] = f_trial
        fs[F_OLD] = f_trial
        if gradient_check(vec[X], vec[G], lower, upper, js[HAS_BOUNDS] != 0)[1] <= fs[GTOL]:
            js[MESSAGE] = BY_GTOL
            return CONVERGED
        begin_search(vec, pairs, rho, alpha, fs, js, lower, upper)
        js[PHASE] = _SEARCHING
        return EVALUATE
    # _SEARCHING: judge the trial step a.
    js[LS_EVALS] += 1
    a = fs[A_CUR]
    f0 = fs[F_X]
    dphi0 = fs[DPHI0]
    c1 = fs[C1]
    phi = f_trial if finite else np.inf
    if js[STAGE] == _TAKE_LOWEST:
        if phi < f0:
            return accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        js[MESSAGE] = BY_FLOOR  # f is not a function of x alone: end here all the same
        return CONVERGED
    # A flat trial: f there within the floor of f(x), and not above f(x) unless
    # a lower trial of this search was already found (the zoom's low end is
    # then past 0).  Trials that all rise, however little, are what a wrong
    # gradient gives: that search must fail, not end at the floor.
    near = finite and within_floor(phi, f0, fs[FTOL], fs[FLOOR])
    if not near:
        js[ALL_NEAR] = 0
    flat = near and (phi <= f0 or (js[STAGE] == _ZOOM and fs[A_LO] > 0))
    has_bounds = js[HAS_BOUNDS] != 0
    if js[PROJECTED] != 0:
        # Armijo along the projected path, by backtracking.  Where the path bends
        # g . (x_trial - x) can be positive: f must not rise then.
        decrease = dot_of_differences(vec[G], None, vec[X_TRIAL], vec[X])  # g . (x_trial - x)
        if finite and phi <= f0 + c1 * min(decrease, 0.0):
            return accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        if count_flat_trial(flat, js):
            return finish_at_floor(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        if js[LS_EVALS] >= js[MAX_LS]:
            return search_failed(vec, pairs, rho, alpha, fs, js, lower, upper)
        new_a = backtrack_step(a, phi, f0, decrease, finite, fs[A_LAST])
        fs[A_CUR] = new_a
        # js[PROJECTED] != 0 is True here; a literal True would compile set_trial again.
        set_trial(vec[X], vec[D], new_a, lower, upper, js[PROJECTED] != 0, vec[X_TRIAL])
        return EVALUATE
    dphi = dot(g_trial, vec[D]) if finite else np.nan
    c2 = fs[C2]
    if js[STAGE] == _BRACKET:
        if not finite:
            # Overflowed: the minimiser lies closer; bisect towards the last good step.
            new_a = 0.5 * (fs[A_PREV] + a)
        elif phi > f0 + c1 * a * dphi0 or (js[LS_EVALS] > 1 and phi >= fs[PHI_PREV]):
            js[STAGE] = _ZOOM
            fs[A_LO], fs[PHI_LO], fs[DPHI_LO] = fs[A_PREV], fs[PHI_PREV], fs[DPHI_PREV]
            fs[A_HI], fs[PHI_HI], fs[DPHI_HI] = a, phi, dphi
            new_a = cubic_min(fs[A_LO], fs[PHI_LO], fs[DPHI_LO], a, phi, dphi)
        elif abs(dphi) <= -c2 * dphi0 or (has_bounds and a >= fs[A_MAX]):
            # (At the box's edge f still decreases: the step stops at the bound.)
            return accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
        elif dphi >= 0:
            js[STAGE] = _ZOOM
            fs[A_LO], fs[PHI_LO], fs[DPHI_LO] = a, phi, dphi
            fs[A_HI], fs[PHI_HI], fs[DPHI_HI] = fs[A_PREV], fs[PHI_PREV], fs[DPHI_PREV]
            new_a = cubic_min(a, phi, dphi, fs[A_HI], fs[PHI_HI], fs[DPHI_HI])
        else:
            fs[A_PREV], fs[PHI_PREV], fs[DPHI_PREV] = a, phi, dphi
            new_a = 4.0 * a  # extrapolate
            if has_bounds:
                new_a = min(new_a, fs[A_MAX])
    else:
        lo, hi = fs[A_LO], fs[A_HI]
        rising = finite and rises_along_d(a, phi, lo, hi, fs[PHI_HI], f0)
        if not finite or phi > f0 + c1 * a * dphi0 or phi >= fs[PHI_LO]:
            if rising:
                js[RISES] += 1
                if js[RISES] > RISE_JUMPS:
                    return search_failed(vec, pairs, rho, alpha, fs, js, lower, upper)
            if finite:
                fs[A_HI], fs[PHI_HI], fs[DPHI_HI] = a, phi, dphi
            else:
                fs[A_HI], fs[PHI_HI], fs[DPHI_HI] = a, fs[PHI_LO] + 1.0, fs[DPHI_LO]
        else:
            if abs(dphi) <= -c2 * dphi0:
                return accept(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
            if dphi * (hi - lo) >= 0:
                fs[A_HI], fs[PHI_HI], fs[DPHI_HI] = lo, fs[PHI_LO], fs[DPHI_LO]
            fs[A_LO], fs[PHI_LO], fs[DPHI_LO] = a, phi, dphi
        if rising:
            new_a = RISE_JUMP * a
        elif not finite:
            new_a = 0.5 * (fs[A_LO] + fs[A_HI])
        else:
            new_a = cubic_min(fs[A_LO], fs[PHI_LO], fs[DPHI_LO],
                              fs[A_HI], fs[PHI_HI], fs[DPHI_HI])
        if abs(fs[A_HI] - fs[A_LO]) <= 1e-12 * max(abs(fs[A_HI]), 1e-300):
            return search_failed(vec, pairs, rho, alpha, fs, js, lower, upper)
    # Only trials that narrow a bracket count towards the floor: an extrapolating
    # search whose trials each lower f a little is making progress.
    if count_flat_trial(flat and js[STAGE] == _ZOOM, js):
        return finish_at_floor(vec, pairs, rho, alpha, fs, js, f_trial, lower, upper)
    if js[LS_EVALS] >= js[MAX_LS]:
        return search_failed(vec, pairs, rho, alpha, fs, js, lower, upper)
    fs[A_CUR] = new_a
    set_trial(vec[X], vec[D], new_a, lower, upper, has_bounds, vec[X_TRIAL])
    return EVALUATE


# What gd.minimize calls from Python: compiled ahead of time (float64) by default.
lbfgs_step_kernel = single(lbfgs_step, "lbfgs_step")
restart_kernel = single(restart, "restart")
