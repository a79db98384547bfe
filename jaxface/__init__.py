"""jaxface: 3D face research in JAX on one hand-written differentiable core.

Layers (lower never import higher): `geometry` -> `morphable` -> ... ; see
docs/architecture.md.
"""

__version__ = "0.1.0"
