"""Say once per process that gdcore's kernels are being compiled.

The first call of an entry point on a machine compiles its Numba kernels,
which takes seconds to a minute; later processes load them from the on-disk
cache in a fraction of a second.  Without a word, that first minute looks
like a hang.  Numba announces every compilation on its event bus
(``numba.core.event``, kind ``"numba:compile"``) and nothing when it loads a
cached kernel, so a listener there sees exactly the cache misses.

On the first compilation of a gdcore kernel in a process, :class:`Notice`
emits one ``logging`` record (logger ``"gdcore"``, level INFO) and, when
stderr is a terminal, one line there; later compilations in the same process
say nothing more.  When the kernels compiled ahead of time
(:mod:`gdcore.kernels._aot`) were found missing or stale, the notice starts
with the reason.
"""

import logging
import sys
import threading

from numba.core import event

LOGGER = logging.getLogger("gdcore")
MESSAGE = ("compiling gdcore's kernels for this machine (first: {name}); this happens once "
           "per machine: they are cached on disk for later processes ('python -m gdcore "
           "aot' builds the main ones ahead of time, 'python -m gdcore warmup' compiles "
           "them all)")


class Notice(event.Listener):
    """The listener: one notice, on the first compile event of a gdcore function."""

    def __init__(self):
        self.said = False
        # Why the kernels compiled ahead of time are not used, when that was checked
        # (set by gdcore.kernels._aot); said with the notice.
        self.reason = None
        self._lock = threading.Lock()

    def on_start(self, ev):
        if self.said:
            return
        name = compiled_name(ev.data.get("dispatcher"))
        if name is None or not name.startswith("gdcore."):
            return
        with self._lock:
            if self.said:
                return
            self.said = True
        text = MESSAGE.format(name=name)
        if self.reason:
            text = f"{self.reason}: {text}"
        LOGGER.info(text)
        if sys.stderr is not None and sys.stderr.isatty():
            print(f"gdcore: {text}", file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


def compiled_name(dispatcher):
    """``module.function`` of the Python function a dispatcher compiles, or None."""
    func = getattr(dispatcher, "py_func", None)
    if func is None:
        return None
    return f"{func.__module__}.{func.__qualname__}"


NOTICE = Notice()


def install():
    """Listen for compilations (once per process; later calls do nothing)."""
    if not getattr(install, "done", False):
        event.register("numba:compile", NOTICE)
        install.done = True
