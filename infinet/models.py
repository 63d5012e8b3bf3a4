"""Ready-made architectures: plain FC and CNN networks, the WideResNet, Myrtle.

Each function returns a :class:`~infinet.stax.Layer` ``(init_fn, apply_fn,
kernel_fn)`` built from :mod:`infinet.stax` layers only, so finite networks,
kernels and every layout/batching option work as for any other network.

* :func:`FullyConnected`: ``depth`` x (Dense + nonlinearity), Dense readout.
* :func:`ConvNet`: ``depth`` x (Conv + nonlinearity), then a ``Flatten`` or
  ``GlobalAvgPool`` readout and a Dense layer (the CNN-21/CNN-5 benchmark
  networks of ``docs/performance.md`` are ``ConvNet(21, readout='flatten')``
  and ``ConvNet(5, readout='gap')``).
* :func:`WideResnet`: the residual network of the Neural Tangents README
  (Zagoruyko & Komodakis 2016, "Wide residual networks"), ``WideResnet(
  block_size=4, k=1, num_classes=10)``.
* :func:`Myrtle`: the Myrtle-5/7/10 kernels of Shankar et al. 2020, "Neural
  kernels without tangents" (ReLU convolutions in three stages separated by
  2x2 average pooling).

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import models
    >>> _, _, kernel_fn = models.WideResnet(block_size=1, k=1, num_classes=10)
    >>> kernel_fn(jnp.ones((2, 8, 8, 3)), None, 'ntk').shape
    (2, 2)
"""

from __future__ import annotations

from infinet import stax
from infinet.stax import Layer

_NONLINEARITIES = ("Relu", "Erf", "Gelu", "Sigmoid_like", "ABRelu", "LeakyRelu", "Abs")


def _nonlinearity(name: str) -> Layer:
    if not hasattr(stax, name) or name not in _NONLINEARITIES:
        raise ValueError(
            f"nonlinearity={name!r} does not exist here; use one of {_NONLINEARITIES} "
            "(or build the network with infinet.stax.serial for any other)."
        )
    return getattr(stax, name)()


def FullyConnected(
    depth: int = 2,
    width: int = 512,
    num_classes: int = 10,
    W_std: float = 1.5,
    b_std: float = 0.05,
    nonlinearity: str = "Relu",
    parameterization: str = "ntk",
) -> Layer:
    """``depth`` hidden Dense layers with a nonlinearity each, then a Dense readout.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import models
        >>> _, _, kernel_fn = models.FullyConnected(depth=3)
        >>> kernel_fn(jnp.ones((3, 5)), None, 'nngp').shape
        (3, 3)
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}.")
    layers = []
    for _ in range(depth):
        layers += [
            stax.Dense(width, W_std, b_std, parameterization=parameterization),
            _nonlinearity(nonlinearity),
        ]
    readout = stax.Dense(num_classes, W_std, b_std, parameterization=parameterization)
    return stax.serial(*layers, readout)


def ConvNet(
    depth: int = 5,
    channels: int = 64,
    num_classes: int = 10,
    readout: str = "gap",
    filter_shape: tuple[int, ...] = (3, 3),
    W_std: float = 1.0,
    b_std: float | None = None,
    nonlinearity: str = "Relu",
) -> Layer:
    """``depth`` x (SAME Conv + nonlinearity), a ``readout``, a Dense layer.

    Args:
        depth: number of convolutional layers.
        channels: channels of the finite network (the NTK-parameterised kernel
            does not depend on it).
        num_classes: outputs of the Dense readout.
        readout: ``'gap'`` (``GlobalAvgPool``, needs full spatial covariances) or
            ``'flatten'`` (``Flatten``; the kernel keeps per-position variances
            only).
        filter_shape: convolution window (its length is the number of spatial
            dimensions).
        W_std: weight standard deviation of every layer.
        b_std: bias standard deviation (``None``: no biases).
        nonlinearity: name of an :mod:`infinet.stax` nonlinearity.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import models
        >>> _, _, kernel_fn = models.ConvNet(depth=2, readout='flatten')
        >>> kernel_fn(jnp.ones((2, 6, 6, 3)), None, 'ntk').shape
        (2, 2)
    """
    heads = {"gap": stax.GlobalAvgPool, "flatten": stax.Flatten}
    if readout not in heads:
        raise ValueError(f"readout={readout!r} does not exist; use 'gap' or 'flatten'.")
    layers = []
    for _ in range(depth):
        conv = stax.Conv(channels, filter_shape, padding="SAME", W_std=W_std, b_std=b_std)
        layers += [conv, _nonlinearity(nonlinearity)]
    return stax.serial(*layers, heads[readout](), stax.Dense(num_classes, W_std, b_std))


def WideResnetBlock(
    channels: int, strides: tuple[int, int] = (1, 1), channel_mismatch: bool = False
) -> Layer:
    """Pre-activation residual block: (ReLU, 3x3 Conv) twice, plus a shortcut.

    The shortcut is the identity, or a strided 3x3 Conv when the block changes
    the number of channels or the resolution (``channel_mismatch``).
    """
    main = stax.serial(
        stax.Relu(),
        stax.Conv(channels, (3, 3), strides, padding="SAME"),
        stax.Relu(),
        stax.Conv(channels, (3, 3), padding="SAME"),
    )
    shortcut = (
        stax.Conv(channels, (3, 3), strides, padding="SAME")
        if channel_mismatch
        else stax.Identity()
    )
    return stax.serial(stax.FanOut(2), stax.parallel(main, shortcut), stax.FanInSum())


def WideResnetGroup(n: int, channels: int, strides: tuple[int, int] = (1, 1)) -> Layer:
    """``n`` residual blocks; the first one changes channels and resolution."""
    blocks = [WideResnetBlock(channels, strides, channel_mismatch=True)]
    blocks += [WideResnetBlock(channels) for _ in range(n - 1)]
    return stax.serial(*blocks)


def WideResnet(block_size: int = 4, k: float = 1, num_classes: int = 10) -> Layer:
    """The WideResNet of the Neural Tangents README.

    A 3x3 Conv with 16 channels, three groups of ``block_size`` blocks with
    ``16k``, ``32k`` and ``64k`` channels (the last two at stride 2), global
    average pooling and a Dense readout (``W_std=1, b_std=0``). NT's README ends
    with ``AvgPool((8, 8))`` + ``Flatten`` for 32x32 images; on their 8x8 final
    maps that equals ``GlobalAvgPool``, which is used here so that the network
    also runs on smaller images (e.g. 8x8x3).

    Example:
        >>> import jax
        >>> from infinet import models
        >>> init_fn, apply_fn, _ = models.WideResnet(block_size=1, k=1, num_classes=10)
        >>> _, params = init_fn(jax.random.key(0), (1, 8, 8, 3))
        >>> jax.jit(apply_fn)(params, jax.numpy.ones((1, 8, 8, 3))).shape
        (1, 10)
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    return stax.serial(
        stax.Conv(16, (3, 3), padding="SAME"),
        WideResnetGroup(block_size, int(16 * k)),
        WideResnetGroup(block_size, int(32 * k), (2, 2)),
        WideResnetGroup(block_size, int(64 * k), (2, 2)),
        stax.GlobalAvgPool(),
        stax.Dense(num_classes, 1.0, 0.0),
    )


MYRTLE_STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}


def Myrtle(
    depth: int = 5,
    channels: int = 64,
    num_classes: int = 10,
    W_std: float = 2**0.5,
    b_std: float = 0.0,
) -> Layer:
    """Myrtle-5/7/10 (Shankar et al. 2020): ReLU conv stages with 2x2 average pools.

    Three stages of 3x3 SAME Conv + ReLU (2,1,1 layers for depth 5; 2,2,2 for 7;
    3,3,3 for 10); ``AvgPool((2, 2), (2, 2))`` after the first two stages,
    ``GlobalAvgPool`` after the last (for 32x32 images the paper's three further
    2x2 pools down to 1x1 are the same average), then a Dense readout.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import models
        >>> _, _, kernel_fn = models.Myrtle(5)
        >>> kernel_fn(jnp.ones((1, 8, 8, 3)), None, 'nngp').shape
        (1, 1)
    """
    if depth not in MYRTLE_STAGES:
        raise ValueError(f"Myrtle depth={depth} does not exist; use 5, 7 or 10.")
    layers = []
    for i, n in enumerate(MYRTLE_STAGES[depth]):
        conv = stax.Conv(channels, (3, 3), padding="SAME", W_std=W_std, b_std=b_std)
        layers += [conv, stax.Relu()] * n
        layers += [stax.AvgPool((2, 2), (2, 2))] if i < 2 else [stax.GlobalAvgPool()]
    return stax.serial(*layers, stax.Dense(num_classes, W_std, b_std))
