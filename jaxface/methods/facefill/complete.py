r"""3DFaceFill on a real photo: find the face, align it as in training, complete it, paste it back.

    python -m jaxface.methods.facefill.complete --image=PHOTO [--mask=MASK] --workdir=RUN \
        --output=DIR [--step=N] [--iterations=K] [--overwrite]

RUN is a trained facefill run (its config.json and checkpoints/); its newest
checkpoint that restores is used unless --step is given. MASK (optional) is an image of the
photo's height and width whose bright pixels are the ones to complete; without
it the run's segmenter decides what occludes the face and that is completed
(de-occlusion). DIR receives (refused if they exist, unless --overwrite):

  completion.png       the photo with only the completed pixels replaced
  crop_input.png       the aligned crop the networks saw (config.data.image_size)
  crop_masked.png      that crop with its holes blacked out
  crop_completion.png  the completed crop
  crop_rendered.png    the re-rendered 3D face before blending
  uv_partial.png       the visible face's albedo unwrapped into UV
  uv_albedo.png        the Sym-UNet's completed UV albedo
  novel_views.png      the completed face turned by -30, 0, +30 degrees, side by side
  result.json          detection and crop boxes, checkpoint step, iterations, timings (ms)

A missing or unreadable photo, mask or run stops the command with one line on
stderr and exit status 2; nothing is written then.

Alignment. The networks only ever saw the synthetic dataset's framing: a
face whose 68 landmarks' bounding box has a typical centre and size
relative to the image. `dataset_framing` measures that (median centre and
sqrt(width x height) of the landmark box, in image fractions) on the run's
own eval data, because it depends on the face model: measured on 400 train
images of the `cpu` config (procedural model) it is centre (0.496, 0.570),
size 0.526 (std 0.054, 5-95% 0.44-0.62); on 200 ICT-FaceKit renders, whose
mesh is the whole head, centre (0.500, 0.521), size 0.397. The photo is
aligned to it in two steps:

1. Detection: scikit-image's LBP frontal-face cascade (OpenCV's
   lbpcascade_frontalface, shipped with scikit-image), largest detection.
   OpenCV's own Haar cascade is not an option: the pinned OpenCV 5 wheel
   has no CascadeClassifier and ships no cascade files. The detector box is
   turned into a landmark-box estimate by `DETECTOR_TO_LANDMARKS` (offset of
   the landmark box centre and its size, in units of the detector box
   width), measured as the median over correct detections of near-frontal
   (|yaw| < 20 deg) synthetic faces rendered at 256 px (procedural: 52
   faces, dy 0.16, size 0.98; ICT: 41 faces, dy 0.20, size 0.91; spread
   about 0.1 in the offsets and 0.3 in size: the renders are far from the
   cascade's training photos) and checked by hand on
   `skimage.data.astronaut()` (dx 0.0, dy 0.18, size 0.86). The square crop
   puts that estimate at the dataset's framing.
2. Refinement (one pass): the run's 3DMM encoder factorises that crop; its
   68 projected landmark vertices (`render.project_landmarks`) give the
   face's own centre and scale, and the crop is redone so that they sit at
   the dataset's framing. The estimate is ignored (the detector crop kept)
   when it is implausible: its scale more than `MAX_RESCALE` x off the
   framing's, or its centre more than `MAX_SHIFT` of the crop away. The
   detector crop is rarely worse than that, so a larger disagreement means
   the encoder failed, not the detector.

Squares that leave the photo are filled by mirroring it (symmetric reflect),
which keeps the segmenter's context natural; those pixels are never pasted
back. The crop is resized with area averaging (linear when enlarging), the
mask so that a crop pixel is a hole when any photo pixel under it is (no
hidden pixel leaks into what the networks see), and the completed crop is
resized back and written over the hole pixels only: every other pixel of
completion.png is the photo's, byte for byte.

Limits. The method here is trained on synthetic renders of a morphable model
(flat albedo, no hair, eyes or teeth detail, random backgrounds), so real
photos are out of distribution: expect plausible geometry but a synthetic-
looking fill, and a segmenter that may not find real occluders. Detection
is frontal-only (roughly |yaw| < 30 deg) and takes the largest face. The
crop is axis-aligned: in-plane rotation (roll) is not undone. A mask reaching
outside the crop is completed only inside it (result.json counts the rest).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import cv2
import jax
import numpy as np
import PIL.Image
import PIL.ImageOps
from absl import flags

from jaxface import cli
from jaxface.data.photos import (
  Box,
  Framing,
  crop_image,
  detect_face,
  detection_box,
  framing_from_landmarks,
  open_image,
  read_image,
  refine_box,
  resize,
  window,
)
from jaxface.errors import ConfigError, InputFileError
from jaxface.methods.facefill import pipeline
from jaxface.methods.facefill.data import create_dataset
from jaxface.training import load_run

#: Files written into --output (refused if present, unless --overwrite).
OUTPUT_FILES = (
  "completion.png", "crop_input.png", "crop_masked.png", "crop_completion.png",
  "crop_rendered.png", "uv_partial.png", "uv_albedo.png", "novel_views.png", "result.json",
)  # fmt: skip
#: Examples of the run's eval data `dataset_framing` measures (the median is stable well below).
FRAMING_EXAMPLES = 256


# --------------------------------------------------------------------------- reading


def mask_from_array(values: np.ndarray, has_alpha: bool) -> np.ndarray:
  """(H, W[, C]) mask image -> (H, W) bool holes.

  A pixel is a hole when its brightest colour channel is on (> 127 for 8-bit,
  > 32767 for 16-bit, > 0.5 for float, nonzero for 1-bit) and, where the
  image has alpha (its last channel), that is on too (not transparent).
  """
  values = np.asarray(values)
  if values.dtype == bool:
    on = values
  elif np.issubdtype(values.dtype, np.floating):
    on = values > 0.5
  elif values.dtype == np.uint16 or values.max(initial=0) > 255:
    on = values > 32767
  else:
    on = values > 127
  if on.ndim == 2:
    return on
  if has_alpha:
    return on[..., :-1].any(-1) & on[..., -1]
  return on.any(-1)


def read_mask(path: str | pathlib.Path, shape: tuple[int, int], image_name: str = "the photo"):
  """The mask file as (H, W) bool holes; ValueError naming it when it is not `shape` (H, W)."""
  path = pathlib.Path(path)
  with open_image(path, "mask") as image:
    image = PIL.ImageOps.exif_transpose(image)
    if image.mode in ("P", "PA"):  # palette indices are not brightness
      image = image.convert("RGBA")
    elif image.mode not in ("1", "L", "LA", "I", "I;16", "F", "RGB", "RGBA"):
      image = image.convert("RGB")
    has_alpha = "A" in image.getbands()
    values = np.asarray(image)
  if values.shape[:2] != tuple(shape):
    raise InputFileError(
      f"mask {path} is {values.shape[0]} x {values.shape[1]} (H x W) but {image_name} is "
      f"{shape[0]} x {shape[1]}: the mask must have the photo's size"
    )
  return mask_from_array(values, has_alpha)


# --------------------------------------------------------------------------- alignment


def dataset_framing(dataset, count: int = FRAMING_EXAMPLES) -> Framing:
  """`framing_from_landmarks` of a FaceFillDataset's first `count` examples."""
  indices = range(min(count, len(dataset.source)))
  landmarks = np.stack([np.asarray(dataset.source[i]["landmarks"]) for i in indices])
  return framing_from_landmarks(landmarks, dataset.image_size)


# --------------------------------------------------------------------------- crop and paste


def crop_mask(mask: np.ndarray, box: Box, size: int) -> np.ndarray:
  """(H, W) bool photo holes -> (size, size) bool crop holes: a crop pixel is a hole when any
  photo pixel under it is (outside the photo nothing is)."""
  square = np.zeros((box.size, box.size), np.float32)
  photo, inside = window(box, mask.shape)
  square[inside] = mask[photo]
  if box.size > size:
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA) > 0
  return resize(square, size, nearest=True) > 0


def paste(
  photo: np.ndarray, completed: np.ndarray, holes: np.ndarray, box: Box, photo_holes=None
) -> tuple[np.ndarray, np.ndarray]:
  """Writes a completed crop back into the photo, over its hole pixels only.

  Args:
    photo: (H, W, 3) uint8.
    completed: (S, S, 3) float in [0, 1], the completed crop of `box`.
    holes: (S, S) bool, the crop's completed pixels (used when photo_holes is None).
    box: the crop's square in the photo.
    photo_holes: (H, W) bool, the photo pixels to replace (a user's mask); None: `holes`
      resized to the box (nearest).

  Returns:
    the (H, W, 3) uint8 result, equal to `photo` outside the replaced pixels, and the (H, W)
    bool map of those pixels (holes inside the box and the photo).
  """
  region, inside = window(box, photo.shape[:2])
  upscaled = resize(np.asarray(completed, np.float32), box.size)  # (box.size, box.size, 3)
  colours = (np.clip(upscaled, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)[inside]
  replaced = np.zeros(photo.shape[:2], bool)
  if photo_holes is None:
    replaced[region] = resize(np.asarray(holes, np.uint8), box.size, nearest=True)[inside] > 0
  else:
    replaced[region] = np.asarray(photo_holes, bool)[region]
  result = photo.copy()
  result[region] = np.where(replaced[region][..., None], colours, photo[region])
  return result, replaced


# --------------------------------------------------------------------------- the command


def _png(path: pathlib.Path, image) -> None:
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
  PIL.Image.fromarray(image).save(path)


def complete_photo(
  image: str | pathlib.Path,
  workdir: str | pathlib.Path,
  output: str | pathlib.Path,
  *,
  mask: str | pathlib.Path | None = None,
  step: int | None = None,
  iterations: int | None = None,
  overwrite: bool = False,
) -> dict:
  """The command: completes the face of the photo `image` with the run `workdir`, writes
  `OUTPUT_FILES` into `output` and returns result.json's content."""
  started = time.perf_counter()
  timings = {}

  def lap(name: str, since: float) -> float:
    now = time.perf_counter()
    timings[f"{name}_ms"] = round(1000 * (now - since), 1)
    return now

  image, output = pathlib.Path(image), pathlib.Path(output)
  if iterations is not None and int(iterations) < 1:
    raise ConfigError(f"--iterations must be >= 1, got {iterations}")
  cli.check_outputs(output, OUTPUT_FILES, overwrite)
  photo = read_image(image)  # (H, W, 3) uint8
  holes = None if mask is None else read_mask(mask, photo.shape[:2], f"the photo {image}")
  now = lap("read", started)
  # One device: a single photo gains nothing from replicating the state over several.
  run = load_run(workdir, step, method="facefill", num_devices=1)
  config, state = run.config, run.state
  size = config.data.image_size
  iterations = config.facefill.iterations if iterations is None else int(iterations)
  framing = dataset_framing(create_dataset(config, "eval"))
  now = lap("restore", now)

  detection = detect_face(photo, f"image {image}")
  detected = detection_box(detection, framing)
  now = lap("detect", now)

  def crops(box: Box):  # (S, S, 3) float32, (S, S) bool
    hidden = np.zeros((size, size), bool) if holes is None else crop_mask(holes, box, size)
    return crop_image(photo, box, size), hidden

  crop, hidden = crops(detected)
  landmarks = np.asarray(pipeline.encoder_landmarks_jit(state, crop[None], hidden[None], config))[
    0
  ]  # (L, 2)
  refined = refine_box(detected, landmarks, size, framing)
  box = detected if refined is None else refined
  if refined is not None:
    crop, hidden = crops(box)
  now = lap("refine", now)

  masks = None if holes is None else hidden[None].astype(np.float32)  # (1, S, S)
  completion = jax.device_get(
    pipeline.complete_jit(state, crop[None], masks, config=config, iterations=iterations)
  )
  now = lap("complete", now)
  views = np.asarray(pipeline.novel_views_jit(state, completion, config=config))[0]  # (V, S, S, 3)
  now = lap("novel_views", now)

  result_photo, replaced = paste(photo, completion.image[0], completion.holes[0], box, holes)
  outside = 0 if holes is None else int(holes.sum() - (holes & replaced).sum())
  now = lap("paste", now)

  output.mkdir(parents=True, exist_ok=True)
  crop_holes = np.asarray(completion.holes[0])  # (S, S) bool
  _png(output / "completion.png", result_photo)
  _png(output / "crop_input.png", crop)
  _png(output / "crop_masked.png", crop * ~crop_holes[..., None])
  _png(output / "crop_completion.png", completion.image[0])
  _png(output / "crop_rendered.png", completion.rendered[0])
  _png(output / "uv_partial.png", completion.uv_input[0])
  _png(output / "uv_albedo.png", completion.uv_completed[0])
  _png(output / "novel_views.png", np.concatenate(list(views), axis=1))  # (S, V*S, 3)
  lap("write", now)
  timings["total_ms"] = round(1000 * (time.perf_counter() - started), 1)
  result = {
    "image": str(image),
    "mask": None if mask is None else str(mask),
    "workdir": str(workdir),
    "variant": str(config.get("variant", "")),
    "ablation": str(config.get("ablation", "")),
    "step": run.step,
    "iterations": iterations,
    "photo_size": list(photo.shape[:2]),
    "crop_size": size,
    "detection": dict(zip(("x", "y", "width", "height"), detection, strict=True)),
    "detection_crop": dataclasses.asdict(detected),
    "crop": dataclasses.asdict(box),
    "refined": refined is not None,
    "framing": framing._asdict(),
    "completed_pixels": int(replaced.sum()),
    "mask_pixels_outside_crop": outside,
    "timings": timings,
  }
  (output / "result.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def describe(result: dict, output: str | pathlib.Path) -> str:
  """A short summary of a `complete_photo` result for the terminal."""
  crop = result["crop"]
  lines = [
    f"completed {result['completed_pixels']} pixels of {result['image']} with "
    f"{result['workdir']} step {result['step']} ({result['iterations']} iterations, "
    f"{result['timings']['total_ms'] / 1000:.1f} s)",
    f"face crop: {crop['size']} px square at ({crop['x']}, {crop['y']}), "
    f"{'refined by the encoder' if result['refined'] else 'from the detector alone'}",
  ]
  if result["mask_pixels_outside_crop"]:
    lines.append(f"{result['mask_pixels_outside_crop']} mask pixels lie outside it (left as is)")
  lines.append(f"wrote {', '.join(OUTPUT_FILES)} into {output}")
  return "\n".join(lines)


def main() -> None:
  """The command line. Flags are defined here, not at import, so that importing this module
  (tests, notebooks, train/main.py in one process) never clashes with other flags."""
  image = flags.DEFINE_string("image", None, "The photo (any format Pillow reads).")
  mask = flags.DEFINE_string(
    "mask", None, "Image of the photo's size, bright = pixels to complete; default: de-occlusion."
  )
  workdir = flags.DEFINE_string(
    "workdir", None, "The trained facefill run (config.json, checkpoints)."
  )
  output = flags.DEFINE_string("output", None, "Folder for the results.")
  step = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest that restores).")
  iterations = flags.DEFINE_integer(
    "iterations", None, "Refinement passes (default: the run's config.facefill.iterations)."
  )
  overwrite = flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
  flags.mark_flags_as_required(["image", "workdir", "output"])

  def run_from_flags(argv):
    del argv
    result = complete_photo(
      image.value, workdir.value, output.value, mask=mask.value, step=step.value,
      iterations=iterations.value, overwrite=overwrite.value,
    )  # fmt: skip
    print(describe(result, output.value))

  cli.run(run_from_flags)


if __name__ == "__main__":
  main()
