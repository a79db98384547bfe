"""Synthetic datasets: self-consistent ground truth, determinism, tfds preparation and reuse."""

import numpy as np
import pytest
import scipy.ndimage

from jaxface.data import (
  EMOTION_NAMES,
  emotion_vector,
  face_image_example,
  load_synthetic,
  registered_mesh_example,
)
from jaxface.data.synthetic import identity_codes, render_scene

SIZE = 64


def test_registered_meshes_match_their_labels(procedural):
  settings = dict(seed=3, num_identities=6, labelled_fraction=0.3)
  codes = identity_codes(procedural, 6, 3)
  labelled = 0
  for index in range(40):
    example = registered_mesh_example(procedural, index, **settings)
    np.testing.assert_array_equal(example["identity"], codes[example["identity_label"]])
    expected = procedural.shape(example["identity"], example["expression"])
    np.testing.assert_allclose(example["vertices"], expected, atol=1e-5)
    if example["expression_label"] >= 0:
      labelled += 1
      assert example["expression_label"] == example["expression_true"]
    emotion = EMOTION_NAMES[example["expression_true"]]
    # The expression uses exactly the emotion's blendshapes.
    np.testing.assert_array_equal(
      example["expression"] > 0, emotion_vector(procedural, emotion) > 0
    )
  assert 4 <= labelled <= 22  # ~30% of 40
  again = registered_mesh_example(procedural, 7, **settings)
  np.testing.assert_array_equal(
    again["vertices"], registered_mesh_example(procedural, 7, **settings)["vertices"]
  )


def test_expression_response_depends_non_linearly_on_identity(procedural):
  # The same emotion on different identities: not one fixed vector up to scale.
  vectors = {}
  for index in range(200):
    example = registered_mesh_example(
      procedural, index, seed=0, num_identities=8, labelled_fraction=1.0
    )
    if EMOTION_NAMES[example["expression_true"]] == "happiness":
      vectors.setdefault(int(example["identity_label"]), example["expression"])
  assert len(vectors) >= 3
  unit = [v / np.linalg.norm(v) for v in vectors.values()]
  assert max(np.linalg.norm(a - b) for a in unit for b in unit) > 0.05


def test_face_images_are_self_consistent_and_deterministic(procedural):
  for index in range(3):
    example = face_image_example(procedural, index, seed=1, image_size=SIZE)
    np.testing.assert_array_equal(
      example["image"], face_image_example(procedural, index, seed=1, image_size=SIZE)["image"]
    )
    # Re-rendering the stored ground truth reproduces the stored pixels where the face is visible.
    scene = {
      key: example[key]
      for key in (
        "identity",
        "expression",
        "albedo_coefficients",
        "pose",
        "translation",
        "focal",
        "sh",
      )
    }
    out, landmarks = render_scene(procedural, scene, SIZE)
    visible = example["segmentation"] == 1
    assert visible.mean() > 0.1
    rerendered = (np.clip(np.asarray(out.image), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(rerendered[visible], example["image"][visible])
    np.testing.assert_allclose(landmarks, example["landmarks"], atol=1e-4)
    # Landmarks fall inside the face (before occlusion), within a pixel.
    face = scipy.ndimage.binary_dilation(example["face_mask"] > 0, iterations=1)
    rows = np.clip(example["landmarks"][:, 1].astype(int), 0, SIZE - 1)
    cols = np.clip(example["landmarks"][:, 0].astype(int), 0, SIZE - 1)
    assert face[rows, cols].all()
    assert set(np.unique(example["segmentation"])) <= {0, 1, 2}


def test_tfds_prepares_once_and_reads_the_generated_examples(tmp_path, procedural):
  options = dict(
    model="procedural", num_train=4, num_eval=2, seed=2, data_dir=tmp_path, image_size=SIZE
  )
  source = load_synthetic("face_images", **options)
  assert len(source) == 4
  for index in (0, 3):
    direct = face_image_example(procedural, index, seed=2, image_size=SIZE)
    for key, value in direct.items():
      np.testing.assert_array_equal(source[index][key], value)
  files = sorted(tmp_path.rglob("*.array_record*"))
  stamps = [f.stat().st_mtime_ns for f in files]
  again = load_synthetic("face_images", **options)  # reused, not regenerated
  assert [f.stat().st_mtime_ns for f in files] == stamps and len(again) == 4
  assert len(load_synthetic("face_images", split="eval", **options)) == 2
  with pytest.raises(ValueError, match="unknown synthetic dataset"):
    load_synthetic("voxels", **options)


def test_multiview_pairs_are_photo_consistent(procedural):
  import jax.numpy as jnp

  from jaxface.data.synthetic import multiview_pair_example
  from jaxface.geometry import PerspectiveCamera, euler_to_matrix
  from jaxface.render import warp

  size = 96
  example = multiview_pair_example(procedural, 1, seed=4, image_size=size)

  def camera(view):
    return PerspectiveCamera(
      jnp.stack([example["focal"]] * 2),
      jnp.full((2,), size / 2.0),
      euler_to_matrix(jnp.asarray(example[f"pose_{view}"])),
      jnp.asarray(example[f"translation_{view}"]),
    )

  first, second = camera(1), camera(2)
  image_2 = jnp.asarray(example["image_2"] / 255.0)
  warped, valid = warp(
    image_2, jnp.asarray(example["depth_1"]), first, second, mask=jnp.asarray(example["mask_1"] > 0)
  )
  # Keep pixels whose surface point is also the visible surface in view 2.
  rows, cols = np.nonzero(np.asarray(valid))
  pixels = jnp.asarray(np.stack([cols + 0.5, rows + 0.5], -1), jnp.float32)
  points = first.unproject(pixels, jnp.asarray(example["depth_1"][rows, cols]))
  projected, depth_in_2 = (np.asarray(a) for a in second.project(points))
  r2 = np.clip(projected[:, 1].astype(int), 0, size - 1)
  c2 = np.clip(projected[:, 0].astype(int), 0, size - 1)
  agree = (example["mask_2"][r2, c2] > 0) & (np.abs(example["depth_2"][r2, c2] - depth_in_2) < 0.3)
  assert agree.sum() > 200
  difference = np.abs(np.asarray(warped)[rows, cols] - example["image_1"][rows, cols] / 255.0)[
    agree
  ]
  assert np.median(difference) < 0.02 and np.mean(difference) < 0.04


def test_sequences_keep_the_person_and_vary_the_frames(procedural):
  from jaxface.data.synthetic import sequence_example

  example = sequence_example(procedural, 2, seed=5, image_size=48, num_frames=4)
  assert example["image"].shape == (4, 48, 48, 3) and example["identity"].shape == (
    procedural.num_identity,
  )
  assert not np.array_equal(example["image"][0], example["image"][-1])
  assert not np.allclose(example["pose"][0], example["pose"][-1])
  again = sequence_example(procedural, 2, seed=5, image_size=48, num_frames=4)
  np.testing.assert_array_equal(again["image"], example["image"])


@pytest.mark.parametrize(
  ("kind", "settings"),
  [("multiview_pairs", dict(image_size=32)), ("sequences", dict(image_size=32, num_frames=2)),
   ("registered_meshes", dict(num_identities=3, labelled_fraction=0.5))],
)  # fmt: skip
def test_every_builder_reads_back_its_generator(tmp_path, procedural, kind, settings):
  from jaxface.data import synthetic

  generator = {
    "multiview_pairs": synthetic.multiview_pair_example,
    "sequences": synthetic.sequence_example,
    "registered_meshes": synthetic.registered_mesh_example,
  }[kind]
  source = load_synthetic(
    kind, model="procedural", num_train=2, num_eval=1, seed=7, data_dir=tmp_path, **settings
  )
  direct = generator(procedural, 1, seed=7, **settings)
  for key, value in direct.items():
    np.testing.assert_array_equal(source[1][key], value)
