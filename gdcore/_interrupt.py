"""Ctrl-C as a request that the long-running drivers (fit, minimize) honour where
their state is whole.

A compiled call cannot be interrupted: Python runs a signal handler only when
the call returns.  And a ``KeyboardInterrupt`` raised by Python's default
handler lands at whichever line runs then, possibly halfway through a
driver's bookkeeping.  So while a driver runs, :class:`CtrlC` replaces the
default handler with one that

* raises ``KeyboardInterrupt`` at once inside the user's Python code
  (an objective, a callback: see :meth:`CtrlC.user`), as it would outside
  gdcore, so a slow objective stops at once;
* inside a compiled call (``within == "compiled"``) raises only while Numba
  is still compiling it, before it has touched any state;
* otherwise sets :attr:`CtrlC.pending`, which the driver checks between its
  compiled calls, each sized to last a fraction of a second.

It installs itself only in the main thread and only over Python's default
handler (another handler is the caller's choice), and restores that handler
when the ``with`` block ends.  Elsewhere nothing is installed, and the
drivers still catch a ``KeyboardInterrupt`` raised by the user's code.
"""

import signal
import threading

from numba.core.compiler_lock import global_compiler_lock

try:  # signal's C core: signal.signal took 8.5 us and getsignal 5.9 us (enum conversions)
    import _signal as _sig
except ImportError:  # pragma: no cover - other Pythons
    _sig = signal


class CtrlC:
    """Ctrl-C during one driver run (see the module docstring).

    Parameters
    ----------
    lazy : bool, default False
        Install the handler at :meth:`arm` rather than on entering the
        ``with`` block.  Installing and restoring it through ``_signal``
        costs about 0.7 us (through ``signal``, 17 us: enum
        conversions), so the drivers install it eagerly.

    Attributes
    ----------
    pending : bool
        Ctrl-C arrived outside the user's code: stop at the next point where
        the state is whole.
    within : None, "user" or "compiled"
        What runs now; set by :meth:`user`, :meth:`user_code` and
        :meth:`compiled`.
    armed : bool
        :meth:`arm` has run (whether or not it could install the handler).
    """

    def __init__(self, lazy=False):
        self.pending = False
        self.within = None
        self.armed = False
        self._lazy = lazy
        self._previous = None

    def __enter__(self):
        if not self._lazy:
            self.arm()
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            _sig.signal(_sig.SIGINT, self._previous)
            self._previous = None
        return False

    def arm(self):
        """Install the handler, in the main thread over Python's default one only (once)."""
        if self.armed:
            return
        self.armed = True
        if (threading.current_thread() is threading.main_thread()
                and _sig.getsignal(_sig.SIGINT) is signal.default_int_handler):
            try:
                self._previous = _sig.signal(_sig.SIGINT, self._handle)
            except ValueError:  # the main thread of another interpreter
                self._previous = None

    def _handle(self, signum, frame):
        if self.within == "user" or (self.within == "compiled"
                                     and global_compiler_lock.is_locked()):
            raise KeyboardInterrupt
        self.pending = True

    def user(self, function, *args):
        """``function(*args)``, interrupted at once by Ctrl-C."""
        self.within = "user"
        try:
            return function(*args)
        finally:
            self.within = None

    def compiled(self, function, *args):
        """``function(*args)``, a compiled call: Ctrl-C raises KeyboardInterrupt only
        while Numba compiles it (before it has touched any state), else sets
        :attr:`pending`."""
        self.within = "compiled"
        try:
            return function(*args)
        finally:
            self.within = None

    def user_code(self):
        """The same for a ``with`` block: Ctrl-C raises KeyboardInterrupt inside it."""
        return _UserCode(self)


class _UserCode:
    __slots__ = ("ctrl_c",)

    def __init__(self, ctrl_c):
        self.ctrl_c = ctrl_c

    def __enter__(self):
        self.ctrl_c.within = "user"

    def __exit__(self, *exc):
        self.ctrl_c.within = None
        return False


# A CtrlC that is never installed and never pending: for code run outside a driver.
NEVER = CtrlC(lazy=True)
NEVER.armed = True
