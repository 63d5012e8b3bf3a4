"""A layer's static description: its name and hyperparameters, nothing computed.

Every :class:`~infinet.stax.base.KernelFn` carries a :class:`LayerSpec`. It is
the architecture written as data: NT's layer name, the constructor's arguments
under NT's names, and the children of combinators. Code that must know *which*
network it is looking at reads it instead of a function's ``repr``:

* fingerprints of stored kernel tiles (:meth:`LayerSpec.token`) cover every
  hyperparameter, so tiles of one architecture are never served to another;
* the sketches of :mod:`infinet.sketch` build a feature map of the same network
  from the same description;
* ``serial`` recognises runs of identical blocks.

Two specs are equal when their names, parameters and children are equal. The
elementwise function ``fn`` of a nonlinearity rides along for code that needs
φ itself (sketches); it takes no part in equality, hashing or tokens, so a
user's custom nonlinearity (whose behaviour a spec cannot describe) marks
itself with a parameter that cannot be fingerprinted.

Example:
    >>> from infinet import stax
    >>> spec = stax.serial(stax.Dense(8, W_std=1.5), stax.Relu()).kernel_fn.spec
    >>> spec.name, [c.name for c in spec.children]
    ('serial', ['Dense', 'ABRelu'])
    >>> spec.children[0].param('W_std')
    1.5
    >>> len(spec.token())
    64
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

Params = tuple[tuple[str, Hashable], ...]


class Unfingerprintable:
    """A parameter value that a token cannot describe (e.g. a user's function).

    Specs holding one compare by identity of the wrapped object, and
    :meth:`LayerSpec.token` raises for them.

    Args:
        what: what the value is, for error messages (e.g. ``"nngp_fn"``).
        value: the object itself.
    """

    def __init__(self, what: str, value: object):
        self.what = what
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unfingerprintable) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"<{self.what}>"


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """The static description of a layer or network.

    Attributes:
        name: NT's name of the layer (``'Dense'``, ``'Conv'``, ``'ABRelu'``,
            ``'serial'``, ...).
        params: the constructor's arguments as sorted ``(name, value)`` pairs.
        children: the specs of the layers a combinator is built from, in order.
        fn: for an elementwise nonlinearity, φ itself (``x -> φ(x)``); else ``None``.
            Not part of equality, hashing or :meth:`token`.
    """

    name: str
    params: Params = ()
    children: tuple[LayerSpec, ...] = ()
    fn: Callable[..., Any] | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        name: str,
        params: Mapping[str, Any] | None = None,
        children: tuple[LayerSpec, ...] = (),
        fn: Callable[..., Any] | None = None,
    ) -> LayerSpec:
        """Builds a spec, turning parameter values into hashable data.

        Lists become tuples, enums their values, numpy scalars Python numbers,
        and callables :class:`Unfingerprintable` markers.

        Args:
            name: NT's layer name.
            params: the constructor's arguments.
            children: the specs of the layers a combinator composes.
            fn: φ, for elementwise nonlinearities.

        Returns:
            The :class:`LayerSpec`.

        Example:
            >>> LayerSpec.of('Dense', {'out_dim': 3, 'W_std': 1.0}).params
            (('W_std', 1.0), ('out_dim', 3))
        """
        items = sorted((k, _freeze(k, v)) for k, v in (params or {}).items())
        return cls(name, tuple(items), tuple(children), fn)

    def param(self, key: str) -> Any:
        """The value of one parameter.

        Args:
            key: the parameter's name.

        Returns:
            Its value.

        Raises:
            KeyError: the layer has no such parameter; the message lists those it has.

        Example:
            >>> LayerSpec.of('Erf', {'a': 1.0, 'b': 2.0}).param('b')
            2.0
        """
        for k, v in self.params:
            if k == key:
                return v
        raise KeyError(
            f"{self.name} has no parameter {key!r}; it has {[k for k, _ in self.params]}."
        )

    def token(self) -> str:
        """A stable SHA-256 hex digest of the name, parameters and children.

        Returns:
            64 hex characters, the same in every process and on every machine.

        Raises:
            TypeError: a parameter cannot be fingerprinted (e.g. a user's function).

        Example:
            >>> a = LayerSpec.of('Dense', {'W_std': 1.0})
            >>> a.token() == LayerSpec.of('Dense', {'W_std': 1.0}).token()
            True
            >>> a.token() == LayerSpec.of('Dense', {'W_std': 2.0}).token()
            False
        """
        return hashlib.sha256(json.dumps(self._data(), sort_keys=True).encode()).hexdigest()

    def _data(self) -> Any:
        params = {k: _plain(self.name, k, v) for k, v in self.params}
        return [self.name, params, [c._data() for c in self.children]]


def _freeze(key: str, value: Any) -> Hashable:
    """A hashable form of a parameter value."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(key, v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(key, v)) for k, v in value.items()))
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # numpy / jax scalars
    if hasattr(value, "shape"):  # arrays: by value
        import numpy as np

        arr = np.asarray(value)
        return ("array", arr.dtype.str, arr.shape, tuple(arr.ravel().tolist()))
    if value is None or isinstance(value, (bool, int, float, str, Unfingerprintable)):
        return value
    enum_value = getattr(value, "value", None)
    if enum_value is not None and isinstance(enum_value, (str, int)):
        return f"{type(value).__name__}.{enum_value}"
    if callable(value):
        return Unfingerprintable(key, value)
    return Unfingerprintable(key, value)


def _plain(layer: str, key: str, value: Hashable) -> Any:
    """JSON data for a frozen value; raises for values a token cannot describe."""
    if isinstance(value, Unfingerprintable):
        raise TypeError(
            f"The layer {layer} has a parameter {key}={value.value!r} that cannot be "
            "fingerprinted (a function or object, not data). Pass an explicit key that "
            "names this network (e.g. job_key=...) instead."
        )
    if isinstance(value, tuple):
        return ["tuple", [_plain(layer, key, v) for v in value]]
    if isinstance(value, float) and not math.isfinite(value):
        return ["float", repr(value)]
    if isinstance(value, float):
        return ["float", value.hex()]
    return value
