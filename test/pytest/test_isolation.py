"""texflow.isolation.call_forked: the one fork helper (the compiler's crash isolation and the
corpus runner's time limit use it)."""

import os
import signal
import time

import pytest

from texflow.errors import TexflowError
from texflow.isolation import ChildCrashed, ChildFailed, call_forked


def test_value_comes_back():
    assert call_forked(lambda: {"pid": os.getpid(), "data": b"\x00" * 10}) ["data"] == b"\x00" * 10
    assert call_forked(os.getpid) != os.getpid()  # it ran in another process


def test_texflow_error_is_raised_in_the_parent():
    def bad():
        raise TexflowError("a clear one-line error")
    with pytest.raises(TexflowError, match="^a clear one-line error$"):
        call_forked(bad)


def test_a_bug_names_its_type_and_place():
    def bug():
        return {}["missing"]
    with pytest.raises(ChildFailed, match=r"KeyError: 'missing' \(at test_isolation.py:\d+\)"):
        call_forked(bug)


def test_a_crash_and_a_timeout_are_signals():
    with pytest.raises(ChildCrashed) as e:
        call_forked(lambda: os.kill(os.getpid(), signal.SIGSEGV))
    assert e.value.signal == "SIGSEGV"
    t0 = time.perf_counter()
    with pytest.raises(ChildCrashed) as e:
        call_forked(lambda: time.sleep(30), timeout=1)
    assert e.value.signal == "SIGALRM" and time.perf_counter() - t0 < 20
