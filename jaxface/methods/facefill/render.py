"""3DFaceFill's analysis-by-synthesis layer: factors -> face geometry, image, UV maps.

The 3DMM encoder's `Factors` (model.py) are turned into pixels and back with
jaxface's renderer, as pure jnp functions (jit/vmap/grad-safe, no Flax):

- `face_geometry`: identity + expression coefficients -> 3DMM shape, rotated
  by the quaternion and projected by a weak-perspective camera (the public
  3DFaceFill code's) into NDC image coordinates, plus clip coordinates for
  the rasterizer and camera-frame vertex normals for the SH shading.
- `render_face`: geometry + UV albedo + 27 SH coefficients -> image, face
  mask and projected 2D landmarks (main paper Fig. 3a, the reconstruction
  the L_rec and landmark losses compare).
- `unwrap_face`: an image's visible face pixels -> partial UV albedo (shading
  divided out, 3DFaceFill) or UV texture (`remove_shading=False`, the no_il /
  UVGAN ablation, which completes the entangled texture) and UV visibility
  (Fig. 3b), the input of the Sym-UNet.
The synthetic dataset's ground truth in this layer's conventions (pose,
factors, albedo) is `jaxface.methods.facefill.targets`.

Units. Model points are the 3DMM shape centred on the neutral mesh's vertex
mean (as the dataset centres them) and divided by the neutral face's
half-height `unit` (cm), so the weak-perspective scale is "NDC per half face
height": 1 means the face about fills the image height. This keeps the
encoder's `max_scale * sigmoid` head (default range (0, 2)) in its working
range for any model: on the synthetic dataset the true scale is about 0.67-1.06.
Translation is where the model centre lands in NDC (x right, y up, [-1, 1]
over the image), as in `jaxface.geometry.WeakPerspectiveCamera`; images are
taken square (one scale for x and y).

Cameras. The paper (and its code) use weak perspective, `ndc_xy = s (R p)_xy
+ t`; the synthetic dataset renders with a perspective camera, and `targets`
gives its examples' weak-perspective pose and the exact perspective factor.
Every function here takes an optional `focal` (NDC, scalar or (B,)): None is
the paper's weak perspective; with the dataset's f it renders exactly what
the dataset rendered, which is how the tests check this layer against the
data.

Shading is Lambertian with 27 SH coefficients (`jaxface.render.shading`,
Deep3DFaceRecon's convention, light fixed to the camera), the convention the
dataset's `sh` uses, with camera-frame vertex normals, so rendering an
example's own factors with its `ground_truth_albedo` and focal reproduces
its face pixels (up to the uint8 rounding). The dataset is rendered without
antialiasing; `render_face(antialias=True)` adds the silhouette pass
(gradients for silhouette vertices) and then differs from it at the
silhouette.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxface.geometry.camera import ndc_to_pixels
from jaxface.geometry.mesh import safe_normalize, triangle_neighbors, vertex_normals
from jaxface.geometry.transforms import quaternion_to_matrix
from jaxface.geometry.uv import uv_texel_lookup
from jaxface.methods.facefill.model import Factors
from jaxface.morphable.model import MorphableModel
from jaxface.render.antialias import antialias as antialias_pass
from jaxface.render.interpolate import interpolate
from jaxface.render.rasterize import Fragments, rasterize
from jaxface.render.shading import NUM_SH_COEFFICIENTS, sh_irradiance
from jaxface.render.texture import sample_texture, unwrap

#: Default UV size of `face_model_arrays` (Table 4's 192 x 256 albedo).
DEFAULT_UV_SIZE = (192, 256)


class FaceModelArrays(NamedTuple):
  """The constant arrays of a MorphableModel this layer needs (a pytree).

  Built once on the host by `face_model_arrays`. Lengths are in model units
  (cm / `unit`), centred on the neutral mesh's vertex mean.

  Attributes:
    mean_shape: (V, 3) neutral shape, model units.
    identity_basis: (Ki, V, 3) identity modes, model units per coefficient.
    expression_basis: (Ke, V, 3) expression modes, model units per coefficient.
    triangles: (F, 3) int32 vertex ids.
    uv: (T, 2) texture coordinates.
    triangle_uv: (F, 3) int32 uv ids of each triangle's corners.
    landmarks: (L,) int32 landmark vertex ids (iBUG-68 order).
    neighbors: (F, 3) int32 triangle across each edge (-1 boundary), for antialiasing.
    texel_triangle: (Hu, Wu) int32 triangle under each texel centre, -1 off the chart.
    texel_barycentric: (Hu, Wu, 3) the texel centre's barycentrics in it.
    centre: (3,) the model centre in the model's own cm frame.
    unit: () cm per model unit (half the neutral face's height).
  """

  mean_shape: jax.Array
  identity_basis: jax.Array
  expression_basis: jax.Array
  triangles: jax.Array
  uv: jax.Array
  triangle_uv: jax.Array
  landmarks: jax.Array
  neighbors: jax.Array
  texel_triangle: jax.Array
  texel_barycentric: jax.Array
  centre: jax.Array
  unit: jax.Array

  @property
  def uv_size(self) -> tuple[int, int]:
    """(Hu, Wu) of the texel lookup, the UV size `unwrap_face` produces."""
    return tuple(self.texel_triangle.shape)

  @property
  def chart_mask(self) -> jax.Array:
    """(Hu, Wu) bool: texels covered by the UV chart (the texture loss's mask)."""
    return self.texel_triangle >= 0


class FaceGeometry(NamedTuple):
  """A posed face, batch first.

  Attributes:
    ndc: (B, V, 3) image-space vertices: NDC x right, y up in [-1, 1] over
      the image, z NDC depth (smaller is nearer).
    clip: (B, V, 4) clip coordinates for `jaxface.render.rasterize`
      (w = 1 under weak perspective).
    normals: (B, V, 3) unit vertex normals in the camera frame (for SH).
  """

  ndc: jax.Array
  clip: jax.Array
  normals: jax.Array


class FaceRender(NamedTuple):
  """`render_face`'s output.

  Attributes:
    image: (B, H, W, 3) albedo x SH irradiance on the face, background elsewhere.
    mask: (B, H, W) 1 on face pixels, 0 elsewhere.
    landmarks: (B, L, 2) projected landmark vertices, pixel (x, y), centres at +0.5.
    albedo: (B, H, W, 3) the UV albedo looked up at each face pixel; 0 elsewhere.
    shading: (B, H, W, 3) SH irradiance at each face pixel; 0 elsewhere.
    fragments: the rasterization ((B, H, W) fields; `overflow` (B,) must be 0).
  """

  image: jax.Array
  mask: jax.Array
  landmarks: jax.Array
  albedo: jax.Array
  shading: jax.Array
  fragments: Fragments


# --------------------------------------------------------------------------- model arrays


def face_model_arrays(
  model: MorphableModel, uv_size: tuple[int, int] = DEFAULT_UV_SIZE
) -> FaceModelArrays:
  """Host-side precomputation of a model's arrays for this layer (call once, outside jit).

  Args:
    model: the MorphableModel in use (with landmarks).
    uv_size: (Hu, Wu) of the UV maps `unwrap_face` produces.
  """
  if len(uv_size) != 2 or min(uv_size) <= 0:
    raise ValueError(f"uv_size must be (Hu, Wu) with positive entries, got {uv_size}")
  vertices = np.asarray(model.vertices, np.float64)  # (V, 3) cm
  if np.asarray(model.landmarks).size == 0:
    raise ValueError(f"model {model.name!r} has no landmarks; 3DFaceFill's landmark loss needs 68")
  centre = vertices.mean(axis=0)  # the dataset centres faces on this point
  unit = 0.5 * float(np.ptp(vertices[:, 1]))
  if not unit > 0:
    raise ValueError(f"model {model.name!r} has a degenerate neutral shape (zero height)")
  texel_triangle, texel_barycentric = uv_texel_lookup(
    np.asarray(model.uv), np.asarray(model.triangle_uv), (int(uv_size[0]), int(uv_size[1]))
  )
  f32 = np.float32
  return FaceModelArrays(
    mean_shape=jnp.asarray((vertices - centre) / unit, f32),
    identity_basis=jnp.asarray(np.asarray(model.identity_basis) / unit, f32),
    expression_basis=jnp.asarray(np.asarray(model.expression_basis) / unit, f32),
    triangles=jnp.asarray(model.triangles, jnp.int32),
    uv=jnp.asarray(model.uv, f32),
    triangle_uv=jnp.asarray(model.triangle_uv, jnp.int32),
    landmarks=jnp.asarray(model.landmarks, jnp.int32),
    neighbors=jnp.asarray(triangle_neighbors(np.asarray(model.triangles)), jnp.int32),
    texel_triangle=jnp.asarray(texel_triangle, jnp.int32),
    texel_barycentric=jnp.asarray(texel_barycentric, f32),
    centre=jnp.asarray(centre, f32),
    unit=jnp.asarray(unit, f32),
  )


# --------------------------------------------------------------------------- checks


def _check_factors(arrays: FaceModelArrays, factors: Factors) -> int:
  """Validates shapes (static, so jit-safe); returns the batch size."""
  scale = jnp.asarray(factors.scale)
  if scale.ndim != 1:
    raise ValueError(f"factors.scale must have shape (B,), got {scale.shape}")
  batch = scale.shape[0]
  ki, ke = arrays.identity_basis.shape[0], arrays.expression_basis.shape[0]
  expected = {
    "translation": (batch, 2),
    "rotation": (batch, 4),
    "illumination": (batch, NUM_SH_COEFFICIENTS),
    "identity": (batch, ki),
    "expression": (batch, ke),
  }
  for name, shape in expected.items():
    got = jnp.shape(getattr(factors, name))
    if got != shape:
      hint = ""
      if name == "translation":
        hint = " (weak perspective: an image-plane translation; use Encoder(translation_dims=2))"
      elif name in ("identity", "expression"):
        hint = " (the model's basis size; see MorphableModel.truncated)"
      raise ValueError(f"factors.{name} must have shape {shape}, got {got}{hint}")
  return batch


def _check_focal(focal, batch: int):
  if focal is None:
    return None
  focal = jnp.asarray(focal, jnp.float32)
  if focal.ndim > 1 or (focal.ndim == 1 and focal.shape[0] != batch):
    raise ValueError(f"focal must be a scalar or have shape ({batch},), got {focal.shape}")
  return jnp.broadcast_to(focal, (batch,))


def _image_size(image_size) -> tuple[int, int]:
  if isinstance(image_size, int | np.integer):
    image_size = (image_size, image_size)
  if len(image_size) != 2 or min(image_size) <= 0:
    raise ValueError(f"image_size must be an int or (H, W) with positive entries, got {image_size}")
  return int(image_size[0]), int(image_size[1])


def _batched_map(fn, args, batch_mode: str):
  if batch_mode == "map":
    return jax.lax.map(fn, args)
  if batch_mode == "vmap":
    return jax.vmap(fn)(args)
  raise ValueError(f"batch_mode must be 'map' or 'vmap', got {batch_mode!r}")


# --------------------------------------------------------------------------- geometry


def _shape(arrays: FaceModelArrays, factors: Factors, vertex_ids=None) -> jax.Array:
  """3DMM shape in model units, (B, V, 3) (or (B, len(vertex_ids), 3))."""
  mean, identity_basis, expression_basis = (
    arrays.mean_shape,
    arrays.identity_basis,
    arrays.expression_basis,
  )
  if vertex_ids is not None:
    mean = mean[vertex_ids]
    identity_basis = identity_basis[:, vertex_ids]
    expression_basis = expression_basis[:, vertex_ids]
  return (
    mean
    + jnp.einsum("bk,kvd->bvd", factors.identity, identity_basis)
    + jnp.einsum("bk,kvd->bvd", factors.expression, expression_basis)
  )


def _project(
  points: jax.Array, rotation: jax.Array, factors: Factors, focal, reference_ids=None
) -> jax.Array:
  """Model points (B, N, 3) -> clip (B, N, 4) under the (weak-)perspective camera.

  The perspective factor is 1 at the reference depth z0, the mean rotated
  depth of points[:, reference_ids] (all points when None).
  """
  rotated = jnp.einsum("bij,bnj->bni", rotation, points)  # (B, N, 3) R p
  scale = factors.scale[:, None, None]  # (B, 1, 1)
  xy = scale * rotated[..., :2] + factors.translation[:, None, :]  # (B, N, 2) weak NDC
  # NDC depth -s (R p)_z: the camera looks along -z, so nearer points are smaller.
  z = -scale * rotated[..., 2:]  # (B, N, 1)
  if focal is None:
    return jnp.concatenate([xy, z, jnp.ones_like(z)], axis=-1)
  reference = rotated if reference_ids is None else rotated[:, reference_ids]
  z0 = jnp.mean(reference[..., 2], axis=-1)[:, None, None]  # (B, 1, 1)
  # w = 1 - s ((R p)_z - z0) / f; z stays affine in w, so z / w interpolates
  # linearly in screen space as the rasterizer needs.
  w = 1.0 + (z + scale * z0) / focal[:, None, None]
  return jnp.concatenate([xy, z, w], axis=-1)


def face_geometry(model_arrays: FaceModelArrays, factors: Factors, *, focal=None) -> FaceGeometry:
  """Posed 3DMM face in image space.

  shape = mean + identity_basis . id + expression_basis . exp (model units),
  rotated by `factors.rotation` and projected: ndc_xy = s (R p)_xy + t under
  weak perspective (the paper), divided by 1 - s ((R p)_z - z0) / focal when
  `focal` is given, z0 the landmarks' mean rotated depth (the exact
  perspective of a camera focal / s model units in front of the landmarks;
  see the module docstring).

  Args:
    model_arrays: from `face_model_arrays`.
    factors: the encoder's Factors (scale (B,), translation (B, 2), rotation
      (B, 4), identity (B, Ki), expression (B, Ke); illumination and
      albedo_features are not used here).
    focal: None, or the NDC focal length, scalar or (B,).
  """
  batch = _check_factors(model_arrays, factors)
  focal = _check_focal(focal, batch)
  rotation = quaternion_to_matrix(factors.rotation)  # (B, 3, 3)
  points = _shape(model_arrays, factors)  # (B, V, 3)
  clip = _project(points, rotation, factors, focal, model_arrays.landmarks)  # (B, V, 4)
  # Normals of the unprojected shape, then rotated: the shading frame is the
  # camera's, and the NDC mesh is mirrored in z (and perspective-distorted).
  normals = vertex_normals(points, model_arrays.triangles)  # (B, V, 3)
  normals = jnp.einsum("bij,bvj->bvi", rotation, normals)
  return FaceGeometry(ndc=clip[..., :3] / clip[..., 3:], clip=clip, normals=normals)


def project_landmarks(
  model_arrays: FaceModelArrays, factors: Factors, image_size, *, focal=None
) -> jax.Array:
  """Projected landmark vertices (B, L, 2) in pixels, without the full mesh.

  The landmark loss's M(p) [S(:, d); 1] (supplement sec. 4.2); equal to
  `render_face(...).landmarks`.
  """
  batch = _check_factors(model_arrays, factors)
  focal = _check_focal(focal, batch)
  image_size = _image_size(image_size)
  rotation = quaternion_to_matrix(factors.rotation)
  points = _shape(model_arrays, factors, model_arrays.landmarks)  # (B, L, 3)
  clip = _project(points, rotation, factors, focal)
  return ndc_to_pixels(clip[..., :2] / clip[..., 3:], image_size)


# --------------------------------------------------------------------------- rendering


def render_face(
  model_arrays: FaceModelArrays,
  factors: Factors,
  uv_albedo: jax.Array,
  image_size,
  *,
  focal=None,
  background: jax.Array | float = 0.0,
  antialias: bool = False,
  max_candidates: int | None = None,
  batch_mode: str = "map",
) -> FaceRender:
  """Renders the face of `factors` with a UV albedo under its SH light.

  image = albedo(uv(pixel)) * irradiance(normal(pixel), illumination) on the
  face, `background` elsewhere.

  Args:
    model_arrays: from `face_model_arrays`.
    factors: Factors, batch B (albedo_features unused: pass the decoded albedo).
    uv_albedo: (B, Hu, Wu, 3) or (Hu, Wu, 3) UV albedo, any UV size.
    image_size: int or (H, W), static.
    focal: None (weak perspective) or NDC focal length, scalar or (B,).
    background: scalar, (3,) or (B, H, W, 3) colour off the face.
    antialias: blend silhouette pixels (gradients w.r.t. silhouette vertices).
    max_candidates: rasterizer work buffer (see `jaxface.render.rasterize`).
    batch_mode: "map" (CPU) or "vmap" (accelerators).
  """
  batch = _check_factors(model_arrays, factors)
  image_size = _image_size(image_size)
  uv_albedo = jnp.asarray(uv_albedo)
  if uv_albedo.ndim not in (3, 4) or uv_albedo.shape[-1] != 3:
    raise ValueError(f"uv_albedo must have shape (B, Hu, Wu, 3), got {uv_albedo.shape}")
  if uv_albedo.ndim == 4 and uv_albedo.shape[0] != batch:
    raise ValueError(f"uv_albedo has batch {uv_albedo.shape[0]}, factors have {batch}")
  uv_albedo = jnp.broadcast_to(uv_albedo, (batch, *uv_albedo.shape[-3:]))
  background = jnp.asarray(background, jnp.float32)
  if background.shape not in ((), (3,), (batch, *image_size, 3)):
    raise ValueError(
      f"background must be a scalar, (3,) or {(batch, *image_size, 3)}, got {background.shape}"
    )
  background = jnp.broadcast_to(background, (batch, *image_size, 3))
  geometry = face_geometry(model_arrays, factors, focal=focal)
  triangles = model_arrays.triangles

  def single(args):
    clip, normals, albedo_map, sh, back = args
    fragments = rasterize(clip, triangles, image_size, max_candidates=max_candidates)
    mask = fragments.mask  # (H, W)
    pixel_normals = safe_normalize(interpolate(normals, fragments, triangles))  # (H, W, 3)
    pixel_uv = interpolate(model_arrays.uv, fragments, model_arrays.triangle_uv)  # (H, W, 2)
    albedo = jnp.where(mask[..., None], sample_texture(albedo_map, pixel_uv), 0.0)
    shading = jnp.where(mask[..., None], sh_irradiance(pixel_normals, sh), 0.0)
    image = jnp.where(mask[..., None], albedo * shading, back)  # (H, W, 3)
    if antialias:
      image = antialias_pass(image, fragments, clip, triangles, model_arrays.neighbors)
    return image, mask.astype(image.dtype), albedo, shading, fragments

  image, mask, albedo, shading, fragments = _batched_map(
    single,
    (geometry.clip, geometry.normals, uv_albedo, factors.illumination, background),
    batch_mode,
  )
  landmarks = ndc_to_pixels(geometry.ndc[:, model_arrays.landmarks, :2], image_size)
  return FaceRender(image, mask, landmarks, albedo, shading, fragments)


# --------------------------------------------------------------------------- unwrapping


def unwrap_face(
  model_arrays: FaceModelArrays,
  factors: Factors,
  image: jax.Array,
  visibility_mask: jax.Array,
  uv_size: tuple[int, int] | None = None,
  *,
  remove_shading: bool = True,
  focal=None,
  min_shading: float = 0.05,
  depth_slack: float = 1.0,
  max_candidates: int | None = None,
  batch_mode: str = "map",
) -> tuple[jax.Array, jax.Array]:
  """Maps an image's visible face pixels into UV through the estimated geometry.

  Every texel's surface point is projected into the image and sampled
  bilinearly (`jaxface.render.unwrap`); a texel is visible when it faces the
  camera, is not hidden by the face itself, and all four bilinear taps are
  face pixels with `visibility_mask` set. With `remove_shading` the sample
  is divided by the SH irradiance at the texel's normal, giving albedo:
  3DFaceFill completes the albedo, whose bilateral symmetry the Sym-UNet
  exploits; its no_il ablation (UVGAN-like) completes the entangled texture
  (`remove_shading=False`). Texels whose irradiance is below `min_shading`
  in any channel are marked invisible, as dividing there amplifies noise.

  Args:
    model_arrays: from `face_model_arrays`; its texel lookup sets the UV size.
    factors: Factors, batch B.
    image: (B, H, W, 3) the (masked) input image, [0, 1].
    visibility_mask: (B, H, W) 1 (or True) on pixels whose colour is the face's
      own (the face minus occluders and the completion mask).
    uv_size: (Hu, Wu), must equal `model_arrays.uv_size` (None: that size).
    remove_shading: divide out the SH irradiance (albedo) or not (texture).
    focal: None (weak perspective) or NDC focal length, scalar or (B,).
    min_shading: smallest irradiance that is divided out.
    depth_slack: self-occlusion test tolerance in pixels (see `unwrap`).
    max_candidates, batch_mode: as for `render_face`.

  Returns:
    uv map (B, Hu, Wu, 3), 0 where not visible, and visibility (B, Hu, Wu) float.
  """
  batch = _check_factors(model_arrays, factors)
  image = jnp.asarray(image)
  if image.ndim != 4 or image.shape[0] != batch or image.shape[-1] != 3:
    raise ValueError(f"image must have shape ({batch}, H, W, 3), got {image.shape}")
  image_size = image.shape[1:3]
  visibility_mask = jnp.asarray(visibility_mask)
  if visibility_mask.shape != image.shape[:3]:
    raise ValueError(
      f"visibility_mask must have shape {image.shape[:3]} (the image's), got "
      f"{visibility_mask.shape}"
    )
  if uv_size is not None and tuple(uv_size) != model_arrays.uv_size:
    raise ValueError(
      f"uv_size {tuple(uv_size)} differs from the model arrays' texel lookup "
      f"{model_arrays.uv_size}; build them with face_model_arrays(model, uv_size={tuple(uv_size)})"
    )
  geometry = face_geometry(model_arrays, factors, focal=focal)
  triangles = model_arrays.triangles
  texel_triangle = model_arrays.texel_triangle  # (Hu, Wu)
  texel_corners = triangles[jnp.maximum(texel_triangle, 0)]  # (Hu, Wu, 3)
  valid = (visibility_mask > 0.5).astype(image.dtype)  # (B, H, W)
  # The mask is unwrapped beside the colour: a texel counts only where all
  # its (weighted) bilinear taps are valid pixels.
  stacked = jnp.concatenate([image, valid[..., None]], axis=-1)  # (B, H, W, 4)

  def single(args):
    clip, normals, picture, sh = args
    # The image's fragments are only read, never differentiated through.
    fragments = rasterize(
      jax.lax.stop_gradient(clip), triangles, image_size, max_candidates=max_candidates
    )
    sampled, visible = unwrap(
      picture,
      fragments,
      clip,
      triangles,
      texel_triangle,
      model_arrays.texel_barycentric,
      depth_slack=depth_slack,
    )  # (Hu, Wu, 4), (Hu, Wu)
    texture = sampled[..., :3]
    visible = visible & (sampled[..., 3] > 1.0 - 1e-3)
    if remove_shading:
      texel_normals = safe_normalize(
        jnp.einsum("uvk,uvkc->uvc", model_arrays.texel_barycentric, normals[texel_corners])
      )  # (Hu, Wu, 3) the texel's camera-frame normal, as the renderer interpolates it
      shading = sh_irradiance(texel_normals, sh)  # (Hu, Wu, 3)
      lit = jnp.all(shading > min_shading, axis=-1)
      visible = visible & lit
      texture = texture / jnp.where(visible[..., None], shading, 1.0)
    texture = jnp.where(visible[..., None], texture, 0.0)
    return texture, visible.astype(texture.dtype)

  return _batched_map(
    single, (geometry.clip, geometry.normals, stacked, factors.illumination), batch_mode
  )
