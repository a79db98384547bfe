"""Synthetic datasets: self-consistent ground truth, determinism, tfds preparation and reuse."""

import contextlib
import pathlib

import numpy as np
import pytest
import scipy.ndimage

from jaxface.data import (
  EMOTION_NAMES,
  default_data_dir,
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


def test_registered_meshes_of_a_personal_dataset_use_each_identitys_own_blendshapes(procedural):
  from jaxface.data import personal, synthetic

  settings = dict(seed=3, num_identities=4, labelled_fraction=0.5)
  generic = synthetic.registered_mesh_example(procedural, 5, **settings)
  own = synthetic.registered_mesh_example(procedural, 5, personal_strength=1.0, **settings)
  for key in ("identity", "expression", "identity_label", "expression_true"):
    np.testing.assert_array_equal(own[key], generic[key])
  rig = personal.personal_rig(procedural, own["identity"], albedo_strength=0.0)
  expected = personal.personal_shape(procedural, rig, own["identity"], own["expression"])
  np.testing.assert_allclose(own["vertices"], expected, atol=1e-5)
  np.testing.assert_allclose(
    generic["vertices"], procedural.shape(own["identity"], own["expression"]), atol=1e-5
  )
  assert np.abs(own["vertices"] - generic["vertices"]).max() > 1e-3


def test_sequence_expressions_peak_at_the_amplitude(procedural):
  from jaxface.data.synthetic import sequence_example

  peaks = []
  for amplitude in (1.0, 0.5):
    weights = np.concatenate([
      sequence_example(procedural, i, seed=5, image_size=32, num_frames=12,
                       expression_amplitude=amplitude)["expression"] for i in range(4)
    ])  # fmt: skip
    peaks.append(weights.max())
    assert weights.min() >= 0.0 and weights.max() <= amplitude
  assert peaks[0] > 0.9 and peaks[0] == pytest.approx(2 * peaks[1])  # the same sines, scaled
  with pytest.raises(ValueError, match="expression_amplitude"):
    sequence_example(procedural, 0, seed=5, image_size=32, num_frames=2, expression_amplitude=0)


def test_personal_sequences_use_the_persons_rig_and_only_while_expressing(procedural):
  from jaxface.data import personal, synthetic

  generic = synthetic.sequence_example(procedural, 2, seed=5, image_size=48, num_frames=3)
  own = synthetic.sequence_example(
    procedural, 2, seed=5, image_size=48, num_frames=3, personal_strength=1.0
  )
  np.testing.assert_array_equal(own["pose"], generic["pose"])
  np.testing.assert_array_equal(own["expression"], generic["expression"])
  assert np.abs(own["image"].astype(int) - generic["image"].astype(int)).max() > 10
  # A neutral face is the same person with either rig.
  scene = synthetic.sample_scene(procedural, 2, 5, 48)
  scene["expression"] = np.zeros_like(scene["expression"])
  with_rig = dict(scene, rig=personal.personal_rig(procedural, scene["identity"]))
  plain, _ = synthetic.render_scene(procedural, scene, 48)
  personalised, _ = synthetic.render_scene(procedural, with_rig, 48)
  np.testing.assert_allclose(np.asarray(personalised.image), np.asarray(plain.image), atol=1e-5)


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


# --- Viseme factor (identity-expression-viseme data, dataset (a)) ---


def _viseme_free_reference(model, index, *, seed, num_identities, labelled_fraction):
  """The registered-mesh generator as it was before visemes, written out independently."""
  rng = np.random.default_rng((seed, 2, index))
  codes = np.random.default_rng((seed, 1, 0)).standard_normal((num_identities, model.num_identity))
  identity = int(rng.integers(num_identities))
  code = codes.astype(np.float32)[identity]
  emotion = int(rng.integers(len(EMOTION_NAMES)))
  intensity = rng.uniform(0.5, 1.0)
  strength = intensity * (1.0 + 0.35 * np.tanh(code[0])) * (1.0 + 0.15 * np.sin(2.0 * code[1]))
  weights = emotion_vector(model, EMOTION_NAMES[emotion])
  mix = 1.0 + 0.3 * np.sin(np.arange(len(weights)) + 1.5 * code[2 % len(code)])
  expression = np.clip(strength * weights * mix, 0.0, 1.0) ** (
    1.0 + 0.2 * np.tanh(code[3 % len(code)])
  )
  labelled = rng.uniform() < labelled_fraction
  return {
    "vertices": np.asarray(model.shape(code, expression.astype(np.float32)), np.float32),
    "identity_label": np.int32(identity),
    "expression_label": np.int32(emotion if labelled else -1),
    "expression_true": np.int32(emotion),
    "identity": code,
    "expression": expression.astype(np.float32),
  }


def test_viseme_names_resolve_to_mouth_modes_of_both_models(procedural, request):
  from jaxface.data.synthetic import VISEME_NAMES, VISEMES, viseme_vector

  assert tuple(VISEMES) == VISEME_NAMES and VISEME_NAMES[0] == "rest" and len(VISEMES) >= 8
  models = [procedural]
  with contextlib.suppress(pytest.skip.Exception):  # without ICT-FaceKit data: procedural only
    models.append(request.getfixturevalue("ict_model"))
  mouth_modes = ("jaw", "mouth")
  for model in models:
    names = model.expression_names
    vectors = {viseme: viseme_vector(model, viseme) for viseme in VISEME_NAMES}
    assert not vectors["rest"].any()
    for viseme, vector in vectors.items():
      active = [names[k] for k in np.nonzero(vector)[0]]
      assert viseme == "rest" or active, f"{viseme} drives no mode of the model"
      assert all(name.startswith(mouth_modes) for name in active), (viseme, active)
    # Visemes are distinct mouth shapes on every model.
    distinct = {tuple(np.round(v, 4)) for v in vectors.values()}
    assert len(distinct) == len(VISEME_NAMES)
  # Every listed blendshape exists (directly or sided) in ICT-FaceKit's ARKit set or the
  # procedural model's, so no name is a typo.
  known = set().union(*(m.expression_names for m in models))
  known |= {"mouthClose", "mouthPress_L", "mouthPress_R"}  # ARKit modes procedural lacks
  for viseme, weights in VISEMES.items():
    for name in weights:
      assert name in known or {name + "_L", name + "_R"} <= known, (viseme, name)


def test_viseme_fraction_zero_keeps_todays_examples(procedural):
  settings = dict(seed=3, num_identities=6, labelled_fraction=0.3)
  for index in (0, 1, 5, 17, 10_000_001):
    default = registered_mesh_example(procedural, index, **settings)
    explicit = registered_mesh_example(
      procedural, index, viseme_fraction=0.0, viseme_labelled_fraction=0.5, **settings
    )
    reference = _viseme_free_reference(procedural, index, **settings)
    assert set(default) == set(explicit) == set(reference) == {
      "vertices", "identity_label", "expression_label", "expression_true", "identity",
      "expression",
    }  # fmt: skip
    for key, value in reference.items():
      assert default[key].dtype == value.dtype, key
      np.testing.assert_array_equal(default[key], value, err_msg=key)
      np.testing.assert_array_equal(explicit[key], value, err_msg=key)
  # Pinned values of the generator before visemes existed (labels and a vertex checksum).
  labels = [
    tuple(int(registered_mesh_example(procedural, i, **settings)[key]) for key in
          ("identity_label", "expression_true", "expression_label"))
    for i in range(10)
  ]  # fmt: skip
  assert labels == [
    (5, 0, -1), (3, 6, -1), (2, 6, -1), (4, 1, -1), (0, 2, -1), (2, 1, -1), (5, 5, -1),
    (3, 5, -1), (2, 6, -1), (5, 1, 1),
  ]  # fmt: skip
  checksums = [
    registered_mesh_example(procedural, i, **settings)["vertices"].astype(np.float64).sum()
    for i in (0, 1)
  ]
  np.testing.assert_allclose(checksums, [76095.20226923376, 75061.5192308567], rtol=1e-6)


def test_visemes_are_labelled_sparsely_and_leave_identity_and_emotion_alone(procedural):
  from jaxface.data.synthetic import VISEME_NAMES, viseme_vector

  settings = dict(seed=1, num_identities=5, labelled_fraction=0.3)
  count, labelled, seen = 300, 0, set()
  for index in range(count):
    example = registered_mesh_example(
      procedural, index, viseme_fraction=1.0, viseme_labelled_fraction=0.68, **settings
    )
    plain = _viseme_free_reference(procedural, index, **settings)
    for key in ("identity_label", "expression_label", "expression_true", "identity"):
      np.testing.assert_array_equal(example[key], plain[key])
    assert example["viseme_true"].dtype == np.int32 and example["viseme_label"].dtype == np.int32
    true, label = int(example["viseme_true"]), int(example["viseme_label"])
    assert 0 <= true < len(VISEME_NAMES)
    assert label in (-1, true)
    labelled += label >= 0
    seen.add(true)
    # The expression is the emotion plus the viseme's modes, within [0, 1].
    modes = viseme_vector(procedural, VISEME_NAMES[true]) > 0
    assert (example["expression"] >= 0).all() and (example["expression"] <= 1).all()
    np.testing.assert_array_equal(example["expression"] > 0, (plain["expression"] > 0) | modes)
    np.testing.assert_allclose(
      example["vertices"], procedural.shape(example["identity"], example["expression"]), atol=1e-5
    )
  assert seen == set(range(len(VISEME_NAMES)))
  assert abs(labelled / count - 0.68) < 0.1  # binomial sd ~0.027
  # With a fraction below 1 the rest are "rest" meshes; identity/emotion draws are unchanged.
  rest = [
    int(registered_mesh_example(procedural, i, viseme_fraction=0.2, **settings)["viseme_true"])
    for i in range(200)
  ]
  assert 0.7 < np.mean(np.asarray(rest) == 0) < 0.95  # 0.8 + 0.2/8 expected


def test_visemes_move_the_mouth_region(procedural):
  from jaxface.data.synthetic import VISEME_NAMES

  settings = dict(seed=2, num_identities=4, labelled_fraction=0.5)
  template = np.asarray(procedural.vertices)
  landmarks = np.asarray(procedural.landmarks)
  mouth = template[landmarks[48:68]]
  to_mouth = np.min(np.linalg.norm(template[:, None] - mouth[None], axis=-1), axis=1)
  near = to_mouth < 0.25 * np.ptp(template[:, 1])  # about the lower third of the face
  checked = set()
  for index in range(60):
    with_viseme = registered_mesh_example(procedural, index, viseme_fraction=1.0, **settings)
    viseme = VISEME_NAMES[with_viseme["viseme_true"]]
    if viseme == "rest" or viseme in checked:
      continue
    checked.add(viseme)
    # Same index: same identity and emotion, differing only in the viseme.
    without = registered_mesh_example(procedural, index, **settings)
    assert with_viseme["identity_label"] == without["identity_label"]
    assert with_viseme["expression_true"] == without["expression_true"]
    displacement = np.linalg.norm(with_viseme["vertices"] - without["vertices"], axis=-1)
    assert displacement.max() > 1e-3 * np.ptp(template[:, 1]), viseme
    assert displacement[near].sum() > 0.5 * displacement.sum(), viseme
    assert displacement[near].mean() > 2.5 * displacement[~near].mean(), viseme
    # Mouth landmarks move far more than brow and eye landmarks.
    moved = displacement[landmarks]
    assert moved[48:68].mean() > 5 * moved[17:48].mean(), viseme
  assert len(checked) >= 5


def test_registered_meshes_builder_keeps_its_name_and_round_trips_visemes(tmp_path, procedural):
  import hashlib

  from jaxface.data.builders import RegisteredMeshes

  base = dict(num_identities=3, labelled_fraction=0.5)

  def name(settings):
    builder = RegisteredMeshes(
      model_spec="procedural", num_train=3, num_eval=1, seed=7, settings=settings,
      data_dir=str(tmp_path), file_format="array_record",
    )  # fmt: skip
    return builder.builder_config.name

  # The config name of a viseme-free dataset is what it was before visemes existed.
  description = f"procedural|3|1|7|{sorted(base.items())}"
  expected = "procedural_" + hashlib.sha1(description.encode()).hexdigest()[:8]
  assert name(base) == expected
  assert name(dict(base, viseme_fraction=0.0, viseme_labelled_fraction=0.3)) == expected
  assert name(dict(base, viseme_fraction=0.5)) != expected

  settings = dict(base, viseme_fraction=1.0, viseme_labelled_fraction=0.5)
  source = load_synthetic(
    "registered_meshes", model="procedural", num_train=3, num_eval=1, seed=7,
    data_dir=tmp_path, **settings,
  )  # fmt: skip
  for index in range(3):
    direct = registered_mesh_example(procedural, index, seed=7, **settings)
    assert {"viseme_label", "viseme_true"} <= set(direct) and set(source[index]) == set(direct)
    for key, value in direct.items():
      np.testing.assert_array_equal(source[index][key], value)
  plain = load_synthetic(
    "registered_meshes", model="procedural", num_train=3, num_eval=1, seed=7,
    data_dir=tmp_path, **base,
  )  # fmt: skip
  assert "viseme_label" not in plain[0] and "viseme_true" not in plain[0]


def _tree(folder: pathlib.Path) -> dict[str, tuple[int, int]]:
  """Every file under `folder` with its size and modification time."""
  return {
    str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
    for p in sorted(folder.rglob("*"))
  }


def test_generated_data_go_to_the_cache_and_jaxface_data_is_only_read(tmp_path, monkeypatch):
  """$JAXFACE_DATA may be a read-only or shared face-model folder: nothing is written there."""
  from tests.conftest import shared_data_dir

  models = tmp_path / "models"
  (models / "ict-facekit").mkdir(parents=True)
  shared = shared_data_dir()
  ict = None if shared is None else shared / "ict-facekit" / "ict_face_area.npz"
  if ict is not None and ict.exists():
    (models / "ict-facekit" / "ict_face_area.npz").symlink_to(ict)
  for folder in (models / "ict-facekit", models):
    folder.chmod(0o555)  # read-only (root ignores the bits: the listing below is the check)
  monkeypatch.setenv("JAXFACE_DATA", str(models))
  monkeypatch.setenv("JAXFACE_CACHE", str(tmp_path / "cache"))
  before = _tree(models)
  assert default_data_dir() == tmp_path / "cache" / "datasets"
  source = load_synthetic("registered_meshes", model="procedural", num_train=2, num_eval=1,
                          num_identities=2, labelled_fraction=0.5)  # fmt: skip
  assert len(source) == 2 and any((tmp_path / "cache" / "datasets").rglob("*.array_record*"))
  if (models / "ict-facekit" / "ict_face_area.npz").exists():
    from jaxface.morphable import load

    assert load("ict").num_vertices > 0  # read from the read-only folder
  assert _tree(models) == before
  for folder in (models, models / "ict-facekit"):
    folder.chmod(0o755)
