"""The real-photo command of 3DFaceFill: detection, alignment, crop / paste-back, mask reading,
errors, and the command end to end on an untrained smoke checkpoint.

Independent references: the astronaut's face located by eye in `skimage.data.astronaut()`
(512 x 512), numpy slicing and padding, block-wise `any` for the mask's downsampling, and
landmark boxes computed here with min / max.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import PIL.Image
import pytest
import skimage.data

from jaxface.data import photos
from jaxface.errors import InputFileError, NotFoundError, OutputExistsError
from tests.helpers import REPO, TEST_XLA_FLAGS

# `jaxface.methods.facefill` re-exports the function `complete`, so `from ... import complete`
# could return that instead of this module.
cp = importlib.import_module("jaxface.methods.facefill.complete")

#: The astronaut's face, located by eye (x, y pixels): pupils, mouth centre, and the box of the
#: brows, cheeks and chin (what iBUG-68 landmarks span).
EYES = ((205, 102), (247, 103))
MOUTH = (223, 145)
FACE_BOX = (182, 90, 266, 170)  # x0, y0, x1, y1
STEP = 3


@pytest.fixture(scope="module")
def astronaut():
  return skimage.data.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="module")
def photo_file(astronaut, tmp_path_factory):
  path = tmp_path_factory.mktemp("photo") / "astronaut.png"
  PIL.Image.fromarray(astronaut).save(path)
  return path


@pytest.fixture(scope="module")
def run(smoke, state, tmp_path_factory):
  """An untrained smoke run folder: config.json as the trainer writes it, one checkpoint."""
  config, _, _ = smoke
  workdir = tmp_path_factory.mktemp("run")
  with contextlib.closing(ocp.CheckpointManager((workdir / "checkpoints").absolute())) as manager:
    manager.save(STEP, args=ocp.args.StandardSave(state))
    manager.wait_until_finished()
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  return workdir


def _inside(point, box) -> bool:
  x, y, width, height = box
  return x <= point[0] < x + width and y <= point[1] < y + height


def _crop_coordinates(points, box: photos.Box, size: int) -> np.ndarray:
  return (np.asarray(points, np.float64) - (box.x, box.y)) * size / box.size


def _box_of(points) -> tuple[np.ndarray, float]:
  """Centre and sqrt(w h) of points' bounding box, written out independently."""
  points = np.asarray(points, np.float64)
  x0, y0 = points.min(0)
  x1, y1 = points.max(0)
  return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), float(np.sqrt((x1 - x0) * (y1 - y0)))


# --------------------------------------------------------------------------- import


def test_importing_the_command_defines_no_flags():
  # Flags live in main(): a module imported beside train/main.py must not define any.
  from absl import flags

  # --workdir and --step are train/main.py's too; these are the command's own.
  for name in ("image", "mask", "output", "iterations", "overwrite"):
    assert name not in flags.FLAGS, name


# --------------------------------------------------------------------------- detection


def test_detection_finds_the_astronauts_face(astronaut):
  box = photos.detect_face(astronaut)
  x, _, width, height = box
  for point in (*EYES, MOUTH):
    assert _inside(point, box), (point, box)
  face_width = FACE_BOX[2] - FACE_BOX[0]
  assert 0.8 * face_width < width < 1.6 * face_width and width == height
  assert abs(x + width / 2 - (FACE_BOX[0] + FACE_BOX[2]) / 2) < 15
  # A large photo is searched shrunk: the same face, twice the box.
  big = np.repeat(np.repeat(astronaut, 2, axis=0), 2, axis=1)  # (1024, 1024, 3)
  np.testing.assert_allclose(photos.detect_face(big), 2 * np.asarray(box), atol=4)


def test_no_face_is_an_error_naming_the_image():
  blank = np.full((120, 160, 3), 128, np.uint8)
  with pytest.raises(InputFileError, match=r"no face found in blank\.png"):
    photos.detect_face(blank, "blank.png")


# --------------------------------------------------------------------------- alignment


def test_framing_of_the_smoke_data_and_of_given_landmarks(smoke):
  _, dataset, _ = smoke
  # Two faces whose landmark boxes are x 10-30, y 20-60 and x 20-40, y 10-60 in 100 px images.
  first = np.array([[10, 20], [30, 60], [20, 40]], np.float32)
  second = np.array([[20, 10], [40, 60], [25, 25]], np.float32)
  framing = photos.framing_from_landmarks(np.stack([first, second, first]), 100)
  np.testing.assert_allclose(framing, (0.2, 0.4, np.sqrt(20 * 40) / 100), rtol=1e-6)
  # The smoke (procedural) data are framed as the docstring's measurement on the cpu config.
  measured = cp.dataset_framing(dataset)
  np.testing.assert_allclose(measured, (0.496, 0.570, 0.526), atol=0.04)


def test_the_detector_crop_frames_the_astronaut_like_the_training_faces(astronaut):
  framing = photos.Framing(0.5, 0.57, 0.53)
  box = photos.detection_box(photos.detect_face(astronaut), framing)
  corners = np.array([FACE_BOX[:2], FACE_BOX[2:]])
  centre, size = _box_of(_crop_coordinates(corners, box, 1))
  # The hand-located face box stands in for landmarks: a few percent of slack.
  np.testing.assert_allclose(centre, (framing.centre_x, framing.centre_y), atol=0.05)
  assert abs(size / framing.size - 1) < 0.15, size


def test_box_for_face_and_refinement_put_the_face_at_the_framing(smoke):
  _, dataset, _ = smoke
  framing = photos.Framing(0.48, 0.58, 0.5)
  example = dataset.source[0]["landmarks"]  # (68, 2) pixels of a 64 px image
  landmarks = np.asarray(example, np.float64) * 3 + (40, 25)  # the face in a larger photo
  centre, size = _box_of(landmarks)
  box = photos.box_for_face(centre, size, framing)
  got_centre, got_size = _box_of(_crop_coordinates(landmarks, box, 1))
  np.testing.assert_allclose(got_centre, framing[:2], atol=1 / box.size)
  assert got_size == pytest.approx(framing.size, abs=1 / box.size)
  # Refinement from an off crop (the face 20% small and off centre) lands on the same framing.
  start = photos.Box(box.x - 30, box.y + 10, round(box.size * 1.2))
  refined = photos.refine_box(start, _crop_coordinates(landmarks, start, 64), 64, framing)
  assert refined is not None
  assert abs(refined.x - box.x) <= 1 and abs(refined.y - box.y) <= 1
  assert abs(refined.size - box.size) <= 1
  # Implausible estimates keep the detector crop.
  inside = _crop_coordinates(landmarks, start, 64)
  assert photos.refine_box(start, inside * 2.5, 64, framing) is None  # 2.5x too large
  assert photos.refine_box(start, inside / 2, 64, framing) is None  # half size, off centre
  shifted = inside + np.array([0.3 * 64, 0])  # 0.3 of the crop to the right
  assert photos.refine_box(start, shifted, 64, framing) is None
  assert photos.refine_box(start, np.full_like(inside, np.nan), 64, framing) is None


# --------------------------------------------------------------------------- crop and paste


def test_crop_is_a_slice_inside_and_a_mirror_outside(astronaut):
  crop = photos.crop_image(astronaut, photos.Box(100, 50, 64), 64)
  assert crop.shape == (64, 64, 3) and crop.dtype == np.float32
  np.testing.assert_array_equal(np.round(crop * 255), astronaut[50:114, 100:164])
  padded = np.pad(astronaut, ((64, 64), (64, 64), (0, 0)), mode="symmetric")
  crop = photos.crop_image(astronaut, photos.Box(-20, 470, 64), 64)
  np.testing.assert_array_equal(np.round(crop * 255), padded[534:598, 44:108])


def test_mask_crop_keeps_every_hole(astronaut):
  mask = np.zeros((512, 512), bool)
  mask[150:153, 201:202] = True  # thin: a nearest resize would drop it
  mask[300:340, 250:290] = True
  box = photos.Box(180, 120, 256)  # 4 photo pixels per crop pixel
  holes = cp.crop_mask(mask, box, 64)
  expected = mask[120:376, 180:436].reshape(64, 4, 64, 4).any(axis=(1, 3))
  np.testing.assert_array_equal(holes, expected)
  # Same size: the slice; outside the photo nothing is a hole.
  np.testing.assert_array_equal(
    cp.crop_mask(mask, photos.Box(200, 140, 64), 64), mask[140:204, 200:264]
  )
  outside = cp.crop_mask(np.ones((512, 512), bool), photos.Box(480, -10, 64), 64)
  assert outside[10:, :32].all() and not outside[:10].any() and not outside[:, 32:].any()


@pytest.mark.parametrize("box", [photos.Box(150, 40, 128), photos.Box(-30, 400, 160)])
def test_paste_back_of_an_unchanged_crop_reproduces_the_photo(astronaut, box):
  crop = photos.crop_image(astronaut, box, 64)
  everything = np.ones((64, 64), bool)
  result, replaced = cp.paste(astronaut, crop, everything, box)
  rows = slice(max(box.y, 0), min(box.y + box.size, 512))
  columns = slice(max(box.x, 0), min(box.x + box.size, 512))
  expected = np.zeros((512, 512), bool)
  expected[rows, columns] = True
  np.testing.assert_array_equal(replaced, expected)
  np.testing.assert_array_equal(result[~expected], astronaut[~expected])  # byte-identical
  error = np.abs(result[expected].astype(int) - astronaut[expected]).mean()
  assert error < 8, error  # 2-2.5x down and up again
  # Only the given photo holes change, and a crop of the photo's own size round-trips exactly.
  holes = np.zeros((512, 512), bool)
  holes[100:140, 110:150] = True
  same = photos.Box(100, 90, 64)
  result, replaced = cp.paste(
    astronaut, photos.crop_image(astronaut, same, 64), everything, same, holes
  )
  np.testing.assert_array_equal(replaced, holes & expected_box(same))
  np.testing.assert_array_equal(result, astronaut)


def expected_box(box: photos.Box) -> np.ndarray:
  inside = np.zeros((512, 512), bool)
  inside[max(box.y, 0) : box.y + box.size, max(box.x, 0) : box.x + box.size] = True
  return inside


# --------------------------------------------------------------------------- files and errors


def test_mask_files_of_any_kind(tmp_path):
  holes = np.zeros((40, 60), bool)
  holes[10:20, 5:30] = True
  red = np.zeros((40, 60, 3), np.uint8)
  red[holes] = (255, 0, 0)
  alpha = np.full((40, 60, 4), 255, np.uint8)  # white everywhere, the shape in alpha
  alpha[..., 3] = np.where(holes, 255, 0)
  files = {
    "gray.png": PIL.Image.fromarray(np.where(holes, 200, 20).astype(np.uint8)),
    "red.png": PIL.Image.fromarray(red),
    "alpha.png": PIL.Image.fromarray(alpha),
    "bits.png": PIL.Image.fromarray(holes),
    "palette.png": PIL.Image.fromarray(red).convert("P"),
  }
  for name, image in files.items():
    image.save(tmp_path / name)
    np.testing.assert_array_equal(cp.read_mask(tmp_path / name, (40, 60)), holes, err_msg=name)
  with pytest.raises(ValueError, match=r"gray\.png is 40 x 60.*photo.* is 50 x 60"):
    cp.read_mask(tmp_path / "gray.png", (50, 60), "the photo")
  with pytest.raises(NotFoundError, match=r"nothing\.png"):
    cp.read_mask(tmp_path / "nothing.png", (40, 60))


def test_errors_name_the_missing_or_wrong_file(photo_file, run, tmp_path):
  out = tmp_path / "out"
  with pytest.raises(NotFoundError, match=r"missing\.jpg"):
    cp.complete_photo(tmp_path / "missing.jpg", run, out)
  garbage = tmp_path / "garbage.jpg"
  garbage.write_bytes(b"not a JPEG at all" * 10)
  with pytest.raises(InputFileError, match=r"garbage\.jpg is not an image"):
    cp.complete_photo(garbage, run, out)
  with pytest.raises(InputFileError, match=r"mask .*garbage\.jpg is not an image"):
    cp.complete_photo(photo_file, run, out, mask=garbage)
  with pytest.raises(NotFoundError, match="no_run"):
    cp.complete_photo(photo_file, tmp_path / "no_run", out)
  empty = tmp_path / "empty_run"
  empty.mkdir()
  (empty / "config.json").write_text((run / "config.json").read_text())
  with pytest.raises(NotFoundError, match=r"no checkpoint in .*empty_run"):
    cp.complete_photo(photo_file, empty, out)
  with pytest.raises(NotFoundError, match=rf"checkpoints/99 not found.*\[{STEP}\]"):
    cp.complete_photo(photo_file, run, out, step=99)
  small = tmp_path / "small_mask.png"
  PIL.Image.fromarray(np.zeros((100, 80), np.uint8)).save(small)
  with pytest.raises(InputFileError, match=r"small_mask\.png is 100 x 80.*astronaut\.png is 512"):
    cp.complete_photo(photo_file, run, out, mask=small)
  with pytest.raises(ValueError, match="iterations"):
    cp.complete_photo(photo_file, run, out, iterations=0)
  assert not out.exists()  # nothing written on the way


def test_the_command_reports_an_unreadable_photo_in_one_line(run, tmp_path):
  garbage = tmp_path / "photo.jpg"
  garbage.write_bytes(b"\x00" * 64)
  result = subprocess.run(
    [sys.executable, "-m", "jaxface.methods.facefill.complete", f"--image={garbage}",
     f"--workdir={run}", f"--output={tmp_path / 'out'}"],
    cwd=REPO, env=dict(os.environ, XLA_FLAGS=TEST_XLA_FLAGS), capture_output=True, text=True,
    timeout=300,
  )  # fmt: skip
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines() == [
    f"error: image {garbage} is not an image Pillow can read "
    f"(cannot identify image file '{garbage}')"
  ]
  assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def masked_run(photo_file, run, tmp_path_factory):
  """The command with a mask over the mouth and a corner of the photo the crop cannot reach."""
  folder = tmp_path_factory.mktemp("masked")
  mask = np.zeros((512, 512), np.uint8)
  mask[130:162, 200:250] = 255  # the mouth
  mask[500:, :12] = 255  # far from the face
  mask_file = folder / "mask.png"
  PIL.Image.fromarray(mask).save(mask_file)
  output = folder / "out"
  result = cp.complete_photo(photo_file, run, output, mask=mask_file, iterations=1)
  return result, output, mask > 0


def _read(path) -> np.ndarray:
  with PIL.Image.open(path) as image:
    return np.asarray(image)


def test_the_command_writes_every_output(masked_run, astronaut):
  result, output, _ = masked_run
  assert sorted(p.name for p in output.iterdir()) == sorted(cp.OUTPUT_FILES)
  sizes = {
    "completion.png": (512, 512, 3), "crop_input.png": (64, 64, 3),
    "crop_masked.png": (64, 64, 3), "crop_completion.png": (64, 64, 3),
    "crop_rendered.png": (64, 64, 3), "uv_partial.png": (64, 64, 3),
    "uv_albedo.png": (64, 64, 3), "novel_views.png": (64, 3 * 64, 3),
  }  # fmt: skip
  for name, shape in sizes.items():
    assert _read(output / name).shape == shape, name
  saved = json.loads((output / "result.json").read_text())
  assert saved == json.loads(json.dumps(result))
  assert saved["step"] == STEP and saved["iterations"] == 1 and saved["crop_size"] == 64
  detection = saved["detection"]
  assert _inside(MOUTH, [detection[k] for k in ("x", "y", "width", "height")])
  assert {"detect_ms", "refine_ms", "complete_ms", "novel_views_ms", "total_ms"} <= set(
    saved["timings"]
  )
  # The crop shown is the photo's crop at the box the result reports.
  crop = photos.crop_image(astronaut, photos.Box(**saved["crop"]), 64)
  np.testing.assert_array_equal(_read(output / "crop_input.png"), np.round(crop * 255))
  summary = cp.describe(result, output)
  assert all(name in summary for name in cp.OUTPUT_FILES) and str(output) in summary


def test_the_command_changes_only_masked_pixels(masked_run, astronaut):
  result, output, mask = masked_run
  completed = _read(output / "completion.png")
  changed = np.any(completed != astronaut, axis=-1)
  assert not changed[~mask].any()  # byte-identical outside the mask
  in_crop = expected_box(photos.Box(**result["crop"]))
  assert changed[mask & in_crop].mean() > 0.5  # the mouth was filled
  assert result["completed_pixels"] == (mask & in_crop).sum()
  assert result["mask_pixels_outside_crop"] == (mask & ~in_crop).sum() == 12 * 12
  # The crop's masked view hides the mouth.
  box = photos.Box(**result["crop"])
  mouth = np.round(_crop_coordinates([MOUTH], box, 64)[0]).astype(int)
  assert not _read(output / "crop_masked.png")[mouth[1], mouth[0]].any()


def test_outputs_are_kept_unless_overwrite_then_de_occlusion(
  masked_run, photo_file, run, astronaut
):
  _, output, _ = masked_run
  before = (output / "completion.png").read_bytes()
  with pytest.raises(OutputExistsError, match=r"completion\.png"):
    cp.complete_photo(photo_file, run, output, iterations=1)
  assert (output / "completion.png").read_bytes() == before
  # No mask: the segmenter's occlusions are completed, only inside the crop.
  result = cp.complete_photo(photo_file, run, output, iterations=1, overwrite=True)
  assert result["mask"] is None and result["mask_pixels_outside_crop"] == 0
  changed = np.any(_read(output / "completion.png") != astronaut, axis=-1)
  assert not changed[~expected_box(photos.Box(**result["crop"]))].any()
  assert changed.sum() <= result["completed_pixels"]
