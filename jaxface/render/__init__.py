"""Differentiable rendering in plain JAX: rasterizer, interpolation, SH shading,
UV textures (lookup and unwrap), silhouette antialiasing, the geometry-mapping
layer and view warping. No Flax, no globals; jit/vmap/grad-safe.
"""

from jaxface.render.antialias import antialias
from jaxface.render.geometry_image import GeometryImageLookup, geometry_image, geometry_image_lookup
from jaxface.render.interpolate import interpolate
from jaxface.render.rasterize import (
  Fragments,
  candidate_count,
  clip_to_screen,
  default_max_candidates,
  rasterize,
)
from jaxface.render.render import RenderOutput, depth_map, render
from jaxface.render.shading import (
  NUM_SH_COEFFICIENTS,
  dc_only_coefficients,
  lambertian,
  sh_basis,
  sh_irradiance,
)
from jaxface.render.texture import (
  VertexUVTable,
  bilinear,
  sample_at_vertices,
  sample_texture,
  unwrap,
  vertex_uv_table,
)
from jaxface.render.warp import covisibility, reproject, warp

__all__ = [
  "NUM_SH_COEFFICIENTS",
  "Fragments",
  "GeometryImageLookup",
  "RenderOutput",
  "VertexUVTable",
  "antialias",
  "bilinear",
  "candidate_count",
  "clip_to_screen",
  "covisibility",
  "dc_only_coefficients",
  "default_max_candidates",
  "depth_map",
  "geometry_image",
  "geometry_image_lookup",
  "interpolate",
  "lambertian",
  "rasterize",
  "render",
  "reproject",
  "sample_at_vertices",
  "sample_texture",
  "sh_basis",
  "sh_irradiance",
  "unwrap",
  "vertex_uv_table",
  "warp",
]
