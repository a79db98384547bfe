"""3DFaceFill's face masks: public-code rectangles, ratio buckets and the evaluation set."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxface.methods.facefill import masks

SIZE = 64


def _ellipse(size=SIZE, centre=(34, 32), radii=(22, 17)) -> np.ndarray:
  yy, xx = np.mgrid[:size, :size]
  return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 < 1.0


def _random_faces(count: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.stack(
    [
      _ellipse(centre=rng.uniform(24, 40, 2), radii=rng.uniform([14, 10], [26, 20]))
      for _ in range(count)
    ]
  )


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
  rows, cols = np.nonzero(mask)
  return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_rectangle_matches_numpy_slicing_and_clips_at_the_border():
  expected = np.zeros((10, 12), bool)
  expected[3:7, 8:12] = True
  np.testing.assert_array_equal(masks.rectangle(3, 8, 4, 9, (10, 12)), expected)


def test_mask_ratio_counts_masked_face_pixels():
  face = _ellipse()
  mask = np.zeros_like(face)
  mask[:, :32] = True
  np.testing.assert_allclose(masks.mask_ratio(mask, face), (mask & face).sum() / face.sum())
  batch = np.stack([mask, ~mask, np.zeros_like(mask)])
  faces = np.stack([face, face, np.zeros_like(face)])
  ratios = np.asarray(masks.mask_ratio(batch, faces))
  np.testing.assert_allclose(ratios[:2].sum(), 1.0, rtol=1e-6)
  assert ratios[2] == 0.0  # an empty face is not divided by
  with pytest.raises(ValueError, match="share shape"):
    masks.mask_ratio(mask, face[:10])


@pytest.mark.parametrize("split", ["train", "test"])
def test_random_rectangles_follow_the_public_code_ranges(split):
  full = np.ones((200, SIZE, SIZE), bool)  # face everywhere: the mask is the rectangle itself
  sampled = np.asarray(masks.random_rectangle_mask(jax.random.PRNGKey(0), full, split=split))
  origin = (SIZE // 4, SIZE // 2)
  extent = {"train": (SIZE // 4, 3 * SIZE // 4), "test": (SIZE // 3, 3 * SIZE // 4)}[split]
  heights, widths = [], []
  for mask in sampled:
    top, bottom, left, right = _bounding_box(mask)
    assert mask[top:bottom, left:right].all()  # a filled rectangle
    assert mask.sum() == (bottom - top) * (right - left)
    assert origin[0] <= top < origin[1] and origin[0] <= left < origin[1]
    # The extent is drawn in [low, high) and clipped at the image border.
    for start, stop, store in ((top, bottom, heights), (left, right, widths)):
      size = stop - start
      assert size <= extent[1] - 1
      assert size >= extent[0] or stop == SIZE
      store.append(size if stop < SIZE else None)
  unclipped = [h for h in heights + widths if h is not None]
  assert min(unclipped) == extent[0]  # the low end of the range is reached


def test_random_rectangles_stay_inside_the_face_and_work_under_jit_and_vmap():
  faces = _random_faces(16)
  sample = jax.jit(lambda key, f: masks.random_rectangle_mask(key, f, split="test"))
  batch = np.asarray(sample(jax.random.PRNGKey(1), faces))
  assert batch.shape == faces.shape and batch.dtype == bool
  assert not np.any(batch & ~faces)
  assert np.all(batch.sum(axis=(1, 2)) > 0)  # rectangles around the centre always hit the face
  single = masks.random_rectangle_mask(jax.random.PRNGKey(2), faces[0])
  assert single.shape == faces[0].shape
  # Different keys give different masks.
  assert len({m.tobytes() for m in batch}) > 10
  with pytest.raises(ValueError, match="split"):
    masks.random_rectangle_mask(jax.random.PRNGKey(0), faces, split="val")
  with pytest.raises(ValueError, match="face must have shape"):
    masks.random_rectangle_mask(jax.random.PRNGKey(0), faces[None])


def test_numpy_rectangles_follow_the_same_ranges():
  rng = np.random.default_rng(0)
  face = _ellipse()
  full = np.ones_like(face)
  for _ in range(50):
    top, bottom, left, right = _bounding_box(masks.random_rectangle_mask_numpy(rng, full))
    assert SIZE // 4 <= top < SIZE // 2 and SIZE // 4 <= left < SIZE // 2
    assert (bottom - top) < 3 * SIZE // 4 and (right - left) < 3 * SIZE // 4
    assert not np.any(masks.random_rectangle_mask_numpy(rng, face, split="test") & ~face)


@pytest.mark.parametrize("bucket", masks.EVAL_BUCKETS)
def test_bucket_masks_have_the_requested_ratio(bucket):
  faces = _random_faces(24, seed=3)
  mask, ratio, ok = masks.bucket_mask(jax.random.PRNGKey(5), faces, *bucket)
  mask, ratio, ok = np.asarray(mask), np.asarray(ratio), np.asarray(ok)
  assert ok.all()
  brute = (mask & faces).sum(axis=(1, 2)) / faces.sum(axis=(1, 2))
  np.testing.assert_allclose(ratio, brute, rtol=1e-6)
  assert np.all((brute >= bucket[0]) & (brute < bucket[1]))
  assert not np.any(mask & ~faces)
  for m in mask:  # each is a rectangle clipped to the face
    top, bottom, left, right = _bounding_box(m)
    box = np.zeros_like(m)
    box[top:bottom, left:right] = True
    assert not np.any(m & ~box)


def test_bucket_mask_is_jit_safe_with_traced_buckets():
  face = _ellipse()
  sample = jax.jit(masks.bucket_mask, static_argnames="num_candidates")
  for low in (0.1, 0.3):
    mask, ratio, ok = sample(jax.random.PRNGKey(0), face, jnp.float32(low), jnp.float32(low + 0.1))
    assert bool(ok) and low <= float(ratio) < low + 0.1
    np.testing.assert_allclose(masks.mask_ratio(mask, face), ratio, rtol=1e-6)
  with pytest.raises(ValueError, match="bucket"):
    masks.bucket_mask(jax.random.PRNGKey(0), face, 0.5, 0.2)


def test_bucket_mask_reports_faces_too_small_for_the_bucket():
  face = np.zeros((SIZE, SIZE), bool)
  face[10:12, 10:12] = True  # 4 pixels: ratios 0, 1/4, 1/2, ... skip the 10-20% bucket
  _, _, ok = masks.bucket_mask(jax.random.PRNGKey(0), face, 0.1, 0.2)
  assert not bool(ok)


def test_evaluation_masks_are_reproducible_and_in_their_buckets():
  faces = _random_faces(6, seed=7)
  set_masks, ratios = masks.evaluation_masks(faces, seed=11)
  assert set_masks.shape == (6, 4, *faces.shape[1:]) and ratios.shape == (6, 4)
  lows = np.array([b[0] for b in masks.EVAL_BUCKETS])
  highs = np.array([b[1] for b in masks.EVAL_BUCKETS])
  assert np.all((ratios >= lows) & (ratios < highs))
  brute = (set_masks & faces[:, None]).sum(axis=(2, 3)) / faces.sum(axis=(1, 2))[:, None]
  np.testing.assert_allclose(ratios, brute, rtol=1e-6)
  assert not np.any(set_masks & ~faces[:, None])
  again, _ = masks.evaluation_masks(faces, seed=11)
  np.testing.assert_array_equal(again, set_masks)
  other, _ = masks.evaluation_masks(faces, seed=12)
  assert not np.array_equal(other, set_masks)
  custom, custom_ratios = masks.evaluation_masks(faces, buckets=((0.6, 0.7),), seed=0)
  assert custom.shape[1] == 1 and np.all((custom_ratios >= 0.6) & (custom_ratios < 0.7))


def test_evaluation_masks_reject_bad_input():
  faces = _random_faces(2)
  tiny = faces.copy()
  tiny[1] = False
  tiny[1, 5, 5] = True
  with pytest.raises(ValueError, match="face 1"):
    masks.evaluation_masks(tiny)
  with pytest.raises(ValueError, match="bucket"):
    masks.evaluation_masks(faces, buckets=((0.3, 0.2),))
  with pytest.raises(ValueError, match=r"\(N, H, W\)"):
    masks.evaluation_masks(faces[0])


@pytest.mark.slow
def test_masks_on_synthetic_face_images(procedural):
  from jaxface.data import synthetic

  faces = np.stack(
    [
      synthetic.face_image_example(procedural, i, seed=0, image_size=SIZE)["face_mask"] > 0
      for i in range(3)
    ]
  )
  set_masks, ratios = masks.evaluation_masks(faces, seed=0)
  assert np.all((ratios >= 0.1) & (ratios < 0.5))
  assert not np.any(set_masks & ~faces[:, None])
  train = np.asarray(masks.random_rectangle_mask(jax.random.PRNGKey(0), faces))
  assert not np.any(train & ~faces)
  assert np.all(np.asarray(masks.mask_ratio(train, faces)) > 0)
