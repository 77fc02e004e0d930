"""A real Ctrl-C for tests: SIGINT sent to the test process by another process.

Another process, because a Python thread (``threading.Timer``) could not run
while compiled code holds the GIL, so it would only send the signal when the
compiled call returns: a terminal's Ctrl-C arrives whatever the process does.
"""

import gc
import os
import signal
import subprocess
import sys
import time

import pytest

_SENDER = ("import os, signal, sys, time; time.sleep(float(sys.argv[2])); "
           "os.kill(int(sys.argv[1]), signal.SIGINT); print(repr(time.time()), flush=True)")


@pytest.fixture
def default_sigint():
    """Python's default SIGINT handler for the test; afterwards it must still be installed.

    No garbage-collector callbacks run meanwhile: a KeyboardInterrupt raised while
    one runs is printed as ignored and lost, and hypothesis installs one in every
    process that has run a ``@given`` test (Numba's compiler, allocating, starts
    collections often, so a signal during a compile lands in one now and then).
    """
    callbacks = gc.callbacks[:]
    gc.callbacks.clear()  # the interpreter's own list: rebinding the name would not do
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
        gc.callbacks[:] = callbacks + gc.callbacks


def run_with_sigint(run, delay):
    """``run()``, with SIGINT sent to this process ``delay`` seconds after the sender
    starts (plus its interpreter's start-up).

    Returns
    -------
    result
        What ``run()`` returned (a KeyboardInterrupt escaping it fails the test).
    latency : float
        Seconds from the signal to the return of ``run()``.
    """
    sender = subprocess.Popen([sys.executable, "-c", _SENDER, str(os.getpid()), str(delay)],
                              stdout=subprocess.PIPE, text=True)
    try:
        result = no_escape(run)
        returned = time.time()
    finally:
        out, _ = sender.communicate(timeout=60)
    assert out, "the run ended before the signal was sent"
    return result, returned - float(out)


def no_escape(run):
    """``run()``; a KeyboardInterrupt escaping it fails the test instead of ending pytest."""
    try:
        return run()
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped")
