"""Exception classes shared across infinet.

Example:
    >>> from infinet.exceptions import NoClosedFormError as E
    >>> issubclass(E, ValueError), issubclass(E, NotImplementedError)
    (True, True)
"""

from __future__ import annotations

__all__ = ["NoClosedFormError"]


class NoClosedFormError(ValueError, NotImplementedError):
    """A layer has no closed-form infinite-width kernel for this input.

    Neural Tangents 0.6.5 raises ``NotImplementedError`` in these cases (e.g.
    ``LayerNorm`` of a non-Gaussian input); infinet's earlier releases raised
    ``ValueError``. This class is both, so ``except NotImplementedError`` and
    ``except ValueError`` clauses alike keep catching it. The message says what is
    missing and the way out (often :func:`~infinet.monte_carlo_kernel_fn`).

    Example:
        >>> try:
        ...     raise NoClosedFormError("no closed form")
        ... except NotImplementedError as e:
        ...     print(e)
        no closed form
    """
