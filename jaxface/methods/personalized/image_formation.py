"""Image formation: a user's personal model and a frame's track -> mesh, render and landmarks.

One path for training, evaluation and the video command, so what is
trained is what is measured. Plain jnp over batches (jit/grad-safe).

- `personal_model`: the modeling network's maps as a `rig.Person`, with the
  method's variant applied (corrections dB_k confined to where their generic
  blendshape moves unless `correction_support="free"`; the generic rig drops
  dB_k and dA_k; the no-dynamic-albedo ablation drops dA_k);
- `render_frames`: frame meshes S(w) and albedos A(w) rendered by
  jaxface's rasterizer under each frame's SH light and camera, and the 68
  landmarks projected;
- `grey_render`: meshes alone, grey under a frontal light (pictures of
  shapes: blendshapes, puppets).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxface.geometry.camera import PerspectiveCamera
from jaxface.methods.personalized import rig
from jaxface.methods.personalized.networks import PersonMaps, Track, cameras
from jaxface.methods.personalized.rig import Person, RigArrays
from jaxface.render.render import RenderOutput, render
from jaxface.render.shading import dc_only_coefficients

#: Clip planes in face heights (faces are about 4.4 face heights from the camera).
NEAR, FAR = 0.25, 25.0


def personal_model(config, arrays: RigArrays, maps: PersonMaps) -> Person:
  """The users' `Person`s (leading axis B) under `config.personalized`'s switches."""
  pc = config.personalized
  support = rig.blendshape_support(arrays) if pc.correction_support == "blendshape" else None
  person = rig.person_from_maps(
    arrays, maps.identity, maps.shape_static, maps.shape_dynamic, maps.albedo_static,
    maps.albedo_dynamic, support,
  )  # fmt: skip
  if not pc.blendshape_corrections and not pc.dynamic_albedo:
    return person.generic()
  if not pc.blendshape_corrections:
    person = person._replace(blendshape_corrections=jnp.zeros_like(person.blendshape_corrections))
  if not pc.dynamic_albedo:
    person = person._replace(dynamic_albedo=jnp.zeros_like(person.dynamic_albedo))
  return person


class Frames(NamedTuple):
  """The rendered frames of B users x K frames (flattened to N = B K where noted)."""

  vertices: jax.Array  # (B, K, V, 3) meshes in the face frame
  render: RenderOutput  # (N, H, W, ...)
  landmarks: jax.Array  # (N, 68, 2) pixels


def render_frames(
  arrays: RigArrays, person: Person, track: Track, image_size: int, frames: int
) -> Frames:
  """Renders `frames` frames of each user.

  Args:
    person: B users' fields (leading axis B).
    track: the tracking network's outputs for the B x `frames` frames, user-major (N leaves).
  """
  batch = person.identity.shape[0]
  weights = track.weights.reshape(batch, frames, -1)  # (B, K, Ke)
  vertices = rig.frame_shape(arrays, person, weights)  # (B, K, V, 3)
  albedo = rig.frame_albedo(person, weights)  # (B, K, Hu, Wu, 3)
  flat = vertices.reshape(batch * frames, *vertices.shape[2:])
  camera = cameras(track, image_size)
  height = jnp.ptp(arrays.mean[:, 1])
  out = render(
    flat, arrays.triangles, camera, (image_size, image_size), uv=arrays.uv,
    triangle_uv=arrays.triangle_uv, albedo=albedo.reshape(batch * frames, *albedo.shape[2:]),
    sh_coefficients=track.sh, near=NEAR * height, far=FAR * height,
  )  # fmt: skip
  landmarks, _ = camera.project(flat[:, arrays.landmarks])
  return Frames(vertices, out, landmarks)


def grey_render(vertices: jax.Array, triangles, camera: PerspectiveCamera, size: int, height):
  """(N, V, 3) meshes in their cameras, grey under a frontal light: (N, H, W, 3)."""
  light = dc_only_coefficients(0.5).at[jnp.array([2, 11, 20])].set(0.45)
  out = render(
    vertices, triangles, camera, (size, size), uv=jnp.zeros((1, 2)),
    triangle_uv=jnp.zeros_like(jnp.asarray(triangles)), albedo=jnp.full((1, 1, 3), 0.75),
    sh_coefficients=light, near=NEAR * height, far=FAR * height, background=1.0,
  )  # fmt: skip
  return out.image
