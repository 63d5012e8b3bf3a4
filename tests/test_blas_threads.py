"""``infinet.blas_threads``: OpenBLAS held to one thread in a scope, restored after it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from infinet import blas_threads

pytestmark = pytest.mark.skipif(not blas_threads.available(), reason="no OpenBLAS loaded")


def _counts():
    return [lib.get() for lib in blas_threads.libraries()]


def test_numpy_blas_is_among_the_libraries_found():
    paths = [lib.path for lib in blas_threads.libraries()]
    config = str(np.show_config(mode="dicts")).lower()
    assert "openblas" in config and any("openblas" in p.lower() for p in paths)


def test_one_thread_inside_and_counts_restored_after_nesting_and_errors():
    before = _counts()
    with pytest.raises(RuntimeError), blas_threads.one_thread():
        assert _counts() == [1] * len(before)
        with blas_threads.one_thread():
            assert _counts() == [1] * len(before)
        assert _counts() == [1] * len(before)  # the outer scope is still open
        raise RuntimeError("inside")
    assert _counts() == before


def test_concurrent_scopes_restore_once_the_last_leaves():
    before = _counts()
    inside, release = threading.Barrier(3), threading.Event()

    def hold():
        with blas_threads.one_thread():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert _counts() == [1] * len(before)
    release.set()
    for t in threads:
        t.join()
    assert _counts() == before


def test_a_child_forked_inside_a_scope_gets_the_counts_back():
    before = _counts()
    with blas_threads.one_thread():
        assert _counts() == [1] * len(before)
        blas_threads._after_fork_in_child()  # what os.fork runs in a child
        assert _counts() == before
    assert _counts() == before  # leaving the scope after the reset changes nothing
    with blas_threads.one_thread():  # and scopes work as before
        assert _counts() == [1] * len(before)
    assert _counts() == before
