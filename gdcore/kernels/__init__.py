"""Numba-compiled kernels: every ``@njit`` function of gdcore lives in this package.

Kernels take arrays and scalars only (never Python objects or callables), so
that they cache on disk and compile once per dtype.  They do no validation of
their own beyond the status codes of :mod:`.checks`; the Python layer
(:mod:`gdcore._validate`) guarantees that what reaches them is well formed.
"""
