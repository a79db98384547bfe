"""The `MorphableModel` pytree shared by every method (DESIGN section 3).

A linear face model: shape = mean + identity_basis . id + expression_basis . exp
and UV albedo = albedo_mean + albedo_basis . coeffs. Bases are scaled so that
coefficients are unit-variance (sample them from N(0, 1)). Lengths are in
centimetres for every loader. Arrays are pytree leaves (they move through
jit/vmap/device_put); names and units are static metadata.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

ARRAY_FIELDS = (
  "vertices",
  "triangles",
  "uv",
  "triangle_uv",
  "vertex_uv",
  "identity_basis",
  "expression_basis",
  "albedo_mean",
  "albedo_basis",
  "landmarks",
  "mirror",
)
META_FIELDS = ("expression_names", "name", "units")
#: Millimetres per length unit a model may declare.
MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def mm_per_unit(units: str) -> float:
  """Millimetres per `units` ("mm", "cm", "m"); ValueError naming the unknown unit."""
  if units not in MM_PER_UNIT:
    raise ValueError(f"unknown length unit {units!r}; known: {sorted(MM_PER_UNIT)}")
  return MM_PER_UNIT[units]


@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=list(ARRAY_FIELDS),
  meta_fields=list(META_FIELDS),
)
@dataclasses.dataclass(frozen=True)
class MorphableModel:
  """A linear 3D morphable face model with a UV albedo model.

  Attributes:
    vertices: (V, 3) float32 mean (neutral) shape, cm.
    triangles: (F, 3) int32 vertex ids, counter-clockwise seen from outside.
    uv: (T, 2) float32 texture coordinates in [0, 1]^2 (v up).
    triangle_uv: (F, 3) int32 uv ids per triangle corner (seams allowed).
    vertex_uv: (V, 2) float32 one uv per vertex (a seam vertex keeps one).
    identity_basis: (Ki, V, 3) float32 unit-variance identity modes, cm.
    expression_basis: (Ke, V, 3) float32 expression displacements, cm.
    albedo_mean: (Hu, Wu, 3) float32 mean UV albedo, linear RGB in [0, 1].
    albedo_basis: (Ka, Hu, Wu, 3) float32 unit-variance albedo modes.
    landmarks: (L,) int32 vertex ids in iBUG-68 order (L = 68), or L = 0
      when the model has no landmark annotation.
    mirror: (V,) int32 id of each vertex's left/right mirror vertex.
    expression_names: tuple of Ke names (ARKit names where they exist).
    name: where the model came from ("procedural", "ict", a file name).
    units: length unit of vertices and bases ("cm").
  """

  vertices: jax.Array
  triangles: jax.Array
  uv: jax.Array
  triangle_uv: jax.Array
  vertex_uv: jax.Array
  identity_basis: jax.Array
  expression_basis: jax.Array
  albedo_mean: jax.Array
  albedo_basis: jax.Array
  landmarks: jax.Array
  mirror: jax.Array
  expression_names: tuple[str, ...] = ()
  name: str = "unnamed"
  units: str = "cm"

  @property
  def num_vertices(self) -> int:
    return self.vertices.shape[0]

  @property
  def num_identity(self) -> int:
    return self.identity_basis.shape[0]

  @property
  def num_expression(self) -> int:
    return self.expression_basis.shape[0]

  @property
  def num_albedo(self) -> int:
    return self.albedo_basis.shape[0]

  def shape(self, identity: jax.Array | None = None, expression: jax.Array | None = None):
    """Vertices for coefficients: id (..., Ki), exp (..., Ke) -> (..., V, 3).

    Either may be None (zeros); batch dimensions of the two broadcast.
    """
    result = jnp.asarray(self.vertices)
    if identity is not None:
      identity = jnp.asarray(identity)
      if identity.shape[-1] != self.num_identity:
        raise ValueError(
          f"identity coefficients must have shape (..., {self.num_identity}), got {identity.shape}"
        )
      result = result + jnp.einsum("...k,kvd->...vd", identity, self.identity_basis)
    if expression is not None:
      expression = jnp.asarray(expression)
      if expression.shape[-1] != self.num_expression:
        raise ValueError(
          f"expression coefficients must have shape (..., {self.num_expression}), "
          f"got {expression.shape}"
        )
      result = result + jnp.einsum("...k,kvd->...vd", expression, self.expression_basis)
    return result

  def albedo(self, coefficients: jax.Array | None = None) -> jax.Array:
    """UV albedo for coefficients (..., Ka) -> (..., Hu, Wu, 3), not clipped."""
    if coefficients is None:
      return jnp.asarray(self.albedo_mean)
    coefficients = jnp.asarray(coefficients)
    if coefficients.shape[-1] != self.num_albedo:
      raise ValueError(
        f"albedo coefficients must have shape (..., {self.num_albedo}), got {coefficients.shape}"
      )
    return self.albedo_mean + jnp.einsum("...k,khwc->...hwc", coefficients, self.albedo_basis)

  def expression_index(self, name: str) -> int:
    """Position of a named expression mode; KeyError lists the known names."""
    try:
      return self.expression_names.index(name)
    except ValueError:
      raise KeyError(
        f"model {self.name!r} has no expression {name!r}; it has {list(self.expression_names)}"
      ) from None

  def expression_vector(self, **weights: float) -> np.ndarray:
    """(Ke,) coefficients from named weights, e.g. `jawOpen=0.8`."""
    vector = np.zeros(self.num_expression, np.float32)
    for name, weight in weights.items():
      vector[self.expression_index(name)] = weight
    return vector

  def truncated(
    self,
    num_identity: int | None = None,
    num_expression: int | None = None,
    num_albedo: int | None = None,
  ) -> MorphableModel:
    """The same model keeping only the first modes of each basis."""
    expression_slice = slice(None, num_expression)
    return dataclasses.replace(
      self,
      identity_basis=self.identity_basis[:num_identity],
      expression_basis=self.expression_basis[expression_slice],
      albedo_basis=self.albedo_basis[:num_albedo],
      expression_names=tuple(self.expression_names[expression_slice]),
    )

  def validate(self, source: str = "model") -> MorphableModel:
    """Checks shapes, dtypes and index ranges; raises ValueError naming `source`."""
    problems = []

    def expect(condition: bool, message: str) -> None:
      if not condition:
        problems.append(message)

    v = np.shape(self.vertices)
    expect(len(v) == 2 and v[1] == 3, f"vertices has shape {v}, expected (V, 3)")
    num_vertices = v[0] if len(v) == 2 else -1
    f = np.shape(self.triangles)
    expect(len(f) == 2 and f[1] == 3, f"triangles has shape {f}, expected (F, 3)")
    if len(f) == 2 and f[0] and num_vertices >= 0:
      t = np.asarray(self.triangles)
      expect(
        t.min() >= 0 and t.max() < num_vertices,
        f"triangles index vertices outside [0, {num_vertices})",
      )
    expect(
      np.shape(self.triangle_uv) == f,
      f"triangle_uv has shape {np.shape(self.triangle_uv)}, expected {f}",
    )
    uv = np.shape(self.uv)
    expect(len(uv) == 2 and uv[1] == 2, f"uv has shape {uv}, expected (T, 2)")
    if len(uv) == 2 and np.size(self.triangle_uv):
      expect(
        int(np.max(self.triangle_uv)) < uv[0] and int(np.min(self.triangle_uv)) >= 0,
        f"triangle_uv indexes uv outside [0, {uv[0]})",
      )
    expect(
      np.shape(self.vertex_uv) == (num_vertices, 2),
      f"vertex_uv has shape {np.shape(self.vertex_uv)}, expected ({num_vertices}, 2)",
    )
    for field in ("identity_basis", "expression_basis"):
      s = np.shape(getattr(self, field))
      expect(
        len(s) == 3 and s[1:] == (num_vertices, 3),
        f"{field} has shape {s}, expected (K, {num_vertices}, 3)",
      )
    expect(
      len(self.expression_names) == np.shape(self.expression_basis)[0],
      f"{len(self.expression_names)} expression_names for "
      f"{np.shape(self.expression_basis)[0]} expression modes",
    )
    a = np.shape(self.albedo_mean)
    expect(len(a) == 3 and a[2] == 3, f"albedo_mean has shape {a}, expected (Hu, Wu, 3)")
    expect(
      np.shape(self.albedo_basis)[1:] == a,
      f"albedo_basis has shape {np.shape(self.albedo_basis)}, expected (Ka, *{a})",
    )
    lm = np.asarray(self.landmarks)
    expect(
      lm.ndim == 1 and lm.shape[0] in (0, 68),
      f"landmarks has shape {lm.shape}, expected (68,)",
    )
    if lm.size:
      expect(
        lm.min() >= 0 and lm.max() < num_vertices,
        f"landmarks index vertices outside [0, {num_vertices})",
      )
    m = np.asarray(self.mirror)
    expect(m.shape == (num_vertices,), f"mirror has shape {m.shape}, expected ({num_vertices},)")
    if m.size:
      expect(m.min() >= 0 and m.max() < num_vertices, "mirror indexes vertices out of range")
    for field in ARRAY_FIELDS:
      if not np.all(np.isfinite(np.asarray(getattr(self, field), np.float64))):
        problems.append(f"{field} has non-finite values")
    if problems:
      raise ValueError(f"{source}: invalid morphable model: " + "; ".join(problems))
    return self


def as_model(source: str, **fields) -> MorphableModel:
  """Builds a MorphableModel with canonical dtypes and validates it."""
  float_fields = (
    "vertices",
    "uv",
    "vertex_uv",
    "identity_basis",
    "expression_basis",
    "albedo_mean",
    "albedo_basis",
  )
  int_fields = ("triangles", "triangle_uv", "landmarks", "mirror")
  converted = dict(fields)
  for name in float_fields:
    converted[name] = np.asarray(fields[name], np.float32)
  for name in int_fields:
    converted[name] = np.asarray(fields[name]).astype(np.int32)
  converted["expression_names"] = tuple(str(n) for n in fields.get("expression_names", ()))
  return MorphableModel(**converted).validate(source)
