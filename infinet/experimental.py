"""NT 0.6.5's ``neural_tangents.experimental`` names, for code that imports them.

NT's experimental module computes empirical NTKs of TensorFlow models
(``empirical_ntk_fn_tf``, ``get_apply_fn_and_params``, the ``empirical_tf`` module).
infinet is JAX-only and has no TensorFlow dependency, so these names exist and raise a
clear ``NotImplementedError`` naming the way out: write the model in JAX (flax, equinox
or :mod:`infinet.stax`) as ``apply_fn(params, x)`` and use
:func:`infinet.empirical_ntk_fn`.

Example:
    >>> from infinet import experimental
    >>> try:
    ...     experimental.empirical_ntk_fn_tf(None)
    ... except NotImplementedError as e:
    ...     print(str(e)[:38])
    empirical_ntk_fn_tf needs TensorFlow,
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["empirical_ntk_fn_tf", "empirical_tf", "get_apply_fn_and_params"]


def _unavailable(name: str) -> NoReturn:
    raise NotImplementedError(
        f"{name} needs TensorFlow, which infinet does not use. Write the model in JAX "
        "(flax, equinox or infinet.stax) as apply_fn(params, x) and call "
        "infinet.empirical_ntk_fn(apply_fn)."
    )


def empirical_ntk_fn_tf(f: Any, *args: Any, **kwargs: Any) -> NoReturn:
    """NT's empirical NTK of a TensorFlow model; not available (TensorFlow-free library).

    Args:
        f: a TensorFlow model or function.
        *args: NT's other arguments.
        **kwargs: NT's other keyword arguments.

    Returns:
        Never: it raises.

    Raises:
        NotImplementedError: always, naming :func:`infinet.empirical_ntk_fn`.

    Example:
        >>> empirical_ntk_fn_tf(None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        NotImplementedError: empirical_ntk_fn_tf needs TensorFlow, ...
    """
    _unavailable("empirical_ntk_fn_tf")


def get_apply_fn_and_params(f: Any, *args: Any, **kwargs: Any) -> NoReturn:
    """NT's conversion of a TensorFlow model to ``(apply_fn, params)``; not available.

    Args:
        f: a TensorFlow model.
        *args: NT's other arguments.
        **kwargs: NT's other keyword arguments.

    Returns:
        Never: it raises.

    Raises:
        NotImplementedError: always.

    Example:
        >>> get_apply_fn_and_params(None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        NotImplementedError: get_apply_fn_and_params needs TensorFlow, ...
    """
    _unavailable("get_apply_fn_and_params")


class _EmpiricalTF:
    """Stands in for NT's ``experimental.empirical_tf`` module: every attribute raises."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _unavailable(f"experimental.empirical_tf.{name}")


empirical_tf = _EmpiricalTF()
