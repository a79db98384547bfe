"""Pure geometry: mesh normals, Laplacians, rotations, cameras, UV charts, symmetry.

Array functions here are plain jnp (jit/vmap/grad-safe, no Flax, no globals);
the once-per-topology precomputations (`harmonic_uv`, `uv_texel_lookup`,
`mirror_vertex_map`, `uniform_laplacian`, `boundary_loops`) run in numpy/scipy.
"""

from jaxface.geometry.camera import (
  OrthographicCamera,
  PerspectiveCamera,
  WeakPerspectiveCamera,
  focal_from_fov,
  look_at,
  ndc_to_pixels,
  pixels_to_ndc,
)
from jaxface.geometry.laplacian import (
  LaplacianOperator,
  cotangent_laplacian,
  cotangent_weights,
  uniform_laplacian,
  unique_edges,
)
from jaxface.geometry.mesh import (
  corner_angles,
  face_areas,
  face_normals,
  safe_normalize,
  triangle_neighbors,
  vertex_normals,
)
from jaxface.geometry.symmetry import mirror_vertex_map
from jaxface.geometry.transforms import (
  apply_similarity,
  axis_angle_to_matrix,
  euler_to_matrix,
  euler_to_quaternion,
  fit_similarity,
  matrix_to_euler,
  matrix_to_quaternion,
  quaternion_to_euler,
  quaternion_to_matrix,
)
from jaxface.geometry.uv import (
  boundary_loops,
  harmonic_uv,
  signed_uv_areas,
  texel_centres,
  uv_texel_lookup,
)

__all__ = [
  "LaplacianOperator",
  "OrthographicCamera",
  "PerspectiveCamera",
  "WeakPerspectiveCamera",
  "apply_similarity",
  "axis_angle_to_matrix",
  "boundary_loops",
  "corner_angles",
  "cotangent_laplacian",
  "cotangent_weights",
  "euler_to_matrix",
  "euler_to_quaternion",
  "face_areas",
  "face_normals",
  "fit_similarity",
  "focal_from_fov",
  "harmonic_uv",
  "look_at",
  "matrix_to_euler",
  "matrix_to_quaternion",
  "mirror_vertex_map",
  "ndc_to_pixels",
  "pixels_to_ndc",
  "quaternion_to_euler",
  "quaternion_to_matrix",
  "safe_normalize",
  "signed_uv_areas",
  "texel_centres",
  "triangle_neighbors",
  "uniform_laplacian",
  "unique_edges",
  "uv_texel_lookup",
  "vertex_normals",
]
