"""Integer codes shared by the Python API and the compiled kernels.

Kernels select activations and losses with ``if/elif`` on these integers, so
they take only arrays and scalars and can be cached on disk.  The mappings
from user-facing names to codes live here and nowhere else.
"""

# Activations -----------------------------------------------------------------
IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
ELU = 3
SIGMOID = 4
TANH = 5
SOFTPLUS = 6
GELU = 7
SILU = 8
SOFTMAX = 9  # output of ``cross_entropy`` models only

ACTIVATIONS = {
    "identity": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "softplus": SOFTPLUS,
    "gelu": GELU,
    "silu": SILU,
    "softmax": SOFTMAX,
}
ACTIVATION_NAMES = {code: name for name, code in ACTIVATIONS.items()}

# Activations that are not smooth at 0: relu and leaky_relu jump in the first
# derivative, elu in the second.  A finite-difference stencil across 0 does not
# measure the derivative to full accuracy, so gradient checks skip those
# coordinates (kernels.kinks).  Code sets are tuples so kernels can test
# membership with ``in`` (Numba freezes global tuples as constants).
KINKED_ACTIVATIONS = (RELU, LEAKY_RELU, ELU)

# Activation specs: a model's activations as one integer, which the kernels
# compiled for the model take as a constant (gdcore.kernels.activations.
# activate_layer): ``hidden * ACTS_BASE + output``, with ``hidden`` the code
# every hidden layer shares (the output's when there is none) or MIXED.
ACTS_BASE = 16
MIXED = 15  # hidden layers of several activations: each layer's code is read at run time
ANY_ACTS = -1  # no spec: every layer's code is read at run time


def activation_spec(layer_codes):
    """The activation spec of a model whose layers have ``layer_codes`` (input to output)."""
    *hidden, output = (int(c) for c in layer_codes)
    shared = set(hidden) or {output}
    return (shared.pop() if len(shared) == 1 else MIXED) * ACTS_BASE + output


# Losses ------------------------------------------------------------------------
MSE = 0
MAE = 1
HUBER = 2
BINARY_CROSS_ENTROPY = 3
CROSS_ENTROPY = 4

LOSSES = {
    "mse": MSE,
    "mae": MAE,
    "huber": HUBER,
    "binary_cross_entropy": BINARY_CROSS_ENTROPY,
    "cross_entropy": CROSS_ENTROPY,
}
LOSS_ALIASES = {"log_loss": "binary_cross_entropy"}

# Losses computed from the logits (the output layer's pre-activation).  For
# them the output activation only shapes what ``predict`` returns, and their
# targets are probabilities in [0, 1].
LOGIT_LOSSES = (BINARY_CROSS_ENTROPY, CROSS_ENTROPY)

# The output activation a loss implies when the user does not name one.
DEFAULT_OUTPUT = {
    MSE: IDENTITY,
    MAE: IDENTITY,
    HUBER: IDENTITY,
    BINARY_CROSS_ENTROPY: SIGMOID,
    CROSS_ENTROPY: SOFTMAX,
}

# Output activations a logit loss accepts: its own link, or identity to have
# ``predict`` return raw logits.
LOGIT_LOSS_OUTPUTS = {
    BINARY_CROSS_ENTROPY: frozenset({SIGMOID, IDENTITY}),
    CROSS_ENTROPY: frozenset({SOFTMAX, IDENTITY}),
}

# Offset table columns ----------------------------------------------------------
# One row per layer of ``Model.offsets`` (np.int64).
COL_W_START = 0  # first index of the (n_in, n_out) row-major weight block
COL_B_START = 1  # first index of the (n_out,) bias block
COL_N_IN = 2
COL_N_OUT = 3
COL_ACTIVATION = 4  # activation code of the layer
COL_UNIT_START = 5  # first column of the layer's units in the activation workspace
N_COLS = 6

# Optimizers ----------------------------------------------------------------------
SGD = 0
ADAM = 1
ADAMW = 2
RMSPROP = 3
ADAGRAD = 4
ADAMAX = 5
NADAM = 6
LION = 7

OPTIMIZER_NAMES = {SGD: "sgd", ADAM: "adam", ADAMW: "adamw", RMSPROP: "rmsprop",
                   ADAGRAD: "adagrad", ADAMAX: "adamax", NADAM: "nadam", LION: "lion"}

# Slots of the float64 hyperparameter vector an update kernel reads (fields an
# optimizer does not have stay 0).  Flags are stored as 0.0 / 1.0.
H_MOMENTUM = 0  # SGD and RMSprop momentum
H_BETA1 = 1  # first-moment decay (Adam family, Lion's interpolation)
H_BETA2 = 2  # second-moment decay; RMSprop's rho (torch's alpha); Lion's momentum decay
H_EPS = 3
H_WEIGHT_DECAY = 4  # coupled (added to the gradient) except AdamW and Lion: decoupled
H_NESTEROV = 5
H_AMSGRAD = 6
H_CENTERED = 7
H_MOMENTUM_DECAY = 8  # NAdam's psi
H_CLIP_NORM = 9  # clip the gradient to this global L2 norm; 0 = off
H_CLIP_VALUE = 10  # clip each gradient entry to [-v, v]; 0 = off
N_HYPER = 11

# Slots of the float64 scalar state of an optimizer.
S_STEP = 0  # updates taken so far
S_MU_PRODUCT = 1  # NAdam: product of the momentum coefficients so far
S_OPTIMIZER = 2  # code of the optimizer that made the state (checked, never used by kernels)
N_SCALARS = 3

# Minimization statuses ------------------------------------------------------------
# The ``status`` of a minimization result (gdcore.minimize), SciPy's meanings.
SUCCESS = 0
LIMIT = 1  # the iteration or evaluation limit
NO_PROGRESS = 2  # a line search failed (a wrong gradient, a non-smooth f)
NONFINITE = 3  # NaN or Inf in f or its gradient (the result keeps the last finite point)
CALLBACK_STOP = 99  # the callback raised StopIteration
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C

# What a compiled minimization loop returns (gdcore.kernels.minimize_loops):
# first_order_loop returns SUCCESS (gtol met), LIMIT and NONFINITE as above, or
# one of these; lbfgs_loop returns an L-BFGS request (gdcore.kernels.lbfgs,
# 0-4) or one of these.  Kept apart from both sets of values.
LOOP_ITERATION_LIMIT = 10
LOOP_EVALUATION_LIMIT = 11
LOOP_FTOL_MET = 12  # first_order_loop: success by the relative decrease of f
LOOP_PAUSED = 13  # this call's share is done; call again to go on
