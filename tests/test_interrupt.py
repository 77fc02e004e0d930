"""gdcore._interrupt.CtrlC: Ctrl-C as a request that fit and minimize honour."""

import os
import signal
import threading
import time

import pytest

from gdcore._interrupt import NEVER, CtrlC

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt",
                                reason="POSIX signals")


def _ctrl_c():
    """Deliver SIGINT to this process and give Python a bytecode to run its handler."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)


def test_outside_user_code_ctrl_c_is_a_request_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    assert before is signal.default_int_handler
    with CtrlC() as stop:
        assert signal.getsignal(signal.SIGINT) is not before
        _ctrl_c()
        assert stop.pending
    assert signal.getsignal(signal.SIGINT) is before


def test_inside_user_code_ctrl_c_raises_at_once():
    with CtrlC() as stop:
        with pytest.raises(KeyboardInterrupt):
            stop.user(_ctrl_c)
        assert not stop.pending and stop.within is None
        with pytest.raises(KeyboardInterrupt):
            with stop.user_code():
                _ctrl_c()
        assert stop.within is None


def test_lazy_installs_at_arm_only():
    with CtrlC(lazy=True) as stop:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        stop.arm()
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        stop.arm()  # once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_another_handler_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda *a: seen.append(1))
    try:
        with CtrlC() as stop:
            _ctrl_c()
            assert not stop.pending and seen == [1]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_other_threads_install_nothing():
    results = []

    def worker():
        with CtrlC() as stop:
            results.append((stop.armed, signal.getsignal(signal.SIGINT)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert results == [(True, signal.default_int_handler)]


def test_never_is_never_pending_nor_installed():
    assert NEVER.armed and not NEVER.pending
    NEVER.arm()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
