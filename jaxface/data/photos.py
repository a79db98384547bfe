"""Finding and cropping a face in a photo as a method's training data frames faces.

A method trained on synthetic renders only ever saw faces at one framing:
the 68 landmarks' bounding box at a typical centre and size relative to the
image (`Framing`, measured on the method's own data). A photo is aligned to
it by detection (scikit-image's LBP frontal-face cascade, the largest face;
OpenCV 5's wheel ships no cascade) turned into a landmark-box estimate by
`DETECTOR_TO_LANDMARKS`, optionally refined by landmarks a network predicts
on that first crop (`refine_box`). Squares that leave the photo are filled
by mirroring it. The measurements behind the constants are in the docstring
of `jaxface.methods.facefill.complete`, whose command this module served
first; `jaxface.methods.multiview_depth.predict` uses it too.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import NamedTuple

import cv2
import numpy as np
import PIL.Image
import PIL.ImageOps
from skimage.data import lbp_frontal_face_cascade_filename
from skimage.feature import Cascade

from jaxface.errors import InputFileError, NotFoundError

#: Detector box -> landmark box: (centre x offset, centre y offset, size), in detector widths
#: (image y down). See the module docstring for the measurement.
DETECTOR_TO_LANDMARKS = (0.0, 0.18, 0.92)
#: File suffixes read as images when a folder of frames is given.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Photos are shrunk to this longer side before detection (the cascade's cost grows with pixels).
DETECTION_SIDE = 512
#: Refinement is refused when the encoder's face scale differs from the framing by more than
#: this factor, or its centre lies more than MAX_SHIFT crop widths from the framing's.
MAX_RESCALE = 1.5
MAX_SHIFT = 0.25


class Framing(NamedTuple):
  """Where the dataset's faces sit: their landmark box's centre and sqrt(w h), image fractions."""

  centre_x: float
  centre_y: float
  size: float


@dataclasses.dataclass(frozen=True)
class Box:
  """A square crop in photo pixels: top-left corner (may lie outside the photo) and side."""

  x: int
  y: int
  size: int


# --------------------------------------------------------------------------- reading


def open_image(path: pathlib.Path, what: str) -> PIL.Image.Image:
  """The file as a Pillow image; one error naming it when it is missing or not an image."""
  if not path.is_file():
    raise NotFoundError(f"{what} {path} not found")
  try:
    image = PIL.Image.open(path)
    image.load()
  except (PIL.UnidentifiedImageError, OSError) as error:
    raise InputFileError(f"{what} {path} is not an image Pillow can read ({error})") from None
  return image


def read_image(path: str | pathlib.Path) -> np.ndarray:
  """The photo as (H, W, 3) uint8 RGB, EXIF orientation applied."""
  with open_image(pathlib.Path(path), "image") as image:
    return np.asarray(PIL.ImageOps.exif_transpose(image).convert("RGB"))


# --------------------------------------------------------------------------- alignment


def detect_face(photo: np.ndarray, name: str = "the image") -> tuple[int, int, int, int]:
  """The largest frontal face of an (H, W, 3) uint8 photo: (x, y, width, height) pixels.

  ValueError naming `name` when there is none.
  """
  height, width = photo.shape[:2]
  shrink = min(1.0, DETECTION_SIDE / max(height, width))
  gray = cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2GRAY)
  if shrink < 1.0:
    size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
  detector = Cascade(lbp_frontal_face_cascade_filename())
  found = detector.detect_multi_scale(
    img=gray.astype(np.float32) / 255.0, scale_factor=1.1, step_ratio=1, min_size=(24, 24),
    max_size=gray.shape, min_neighbor_number=4, intersection_score_threshold=0.5,
  )  # fmt: skip
  if not found:
    raise InputFileError(
      f"no face found in {name}: the detector needs a roughly frontal face at least "
      f"{round(24 / shrink)} px wide"
    )
  best = max(found, key=lambda d: d["width"] * d["height"])
  return tuple(round(v / shrink) for v in (best["c"], best["r"], best["width"], best["height"]))


def landmark_box(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(..., L, 2) points -> their bounding box's centre (..., 2) and sqrt(width x height) (...)."""
  landmarks = np.asarray(landmarks, np.float64)
  low, high = landmarks.min(-2), landmarks.max(-2)
  return (low + high) / 2, np.sqrt(np.prod(high - low, axis=-1))


def framing_from_landmarks(landmarks: np.ndarray, image_size: int) -> Framing:
  """The median landmark-box centre and size of (N, L, 2) pixel landmarks, image fractions."""
  centre, size = landmark_box(np.asarray(landmarks) / image_size)  # (N, 2), (N,)
  middle = np.median(centre, axis=0)
  return Framing(float(middle[0]), float(middle[1]), float(np.median(size)))


def box_for_face(centre, size: float, framing: Framing) -> Box:
  """The square crop in which a face of landmark-box `centre` (x, y) and `size` (pixels) sits
  as the dataset's faces do."""
  side = float(size) / framing.size
  x = float(centre[0]) - framing.centre_x * side
  y = float(centre[1]) - framing.centre_y * side
  return Box(round(x), round(y), max(1, round(side)))


def detection_box(detection: tuple[int, int, int, int], framing: Framing) -> Box:
  """The crop of a detector box (x, y, w, h), through `DETECTOR_TO_LANDMARKS`."""
  x, y, width, height = detection
  dx, dy, scale = DETECTOR_TO_LANDMARKS
  centre = (x + width / 2 + dx * width, y + height / 2 + dy * width)
  return box_for_face(centre, scale * width, framing)


def refine_box(box: Box, landmarks: np.ndarray, crop_size: int, framing: Framing) -> Box | None:
  """The crop that frames `landmarks` ((L, 2) pixels of the crop of `box` at `crop_size`) as the
  dataset does; None when they are implausible (see MAX_RESCALE, MAX_SHIFT)."""
  centre, size = landmark_box(np.asarray(landmarks) / crop_size)  # crop fractions
  if not (np.all(np.isfinite(centre)) and np.isfinite(size) and size > 0):
    return None
  shift = np.abs(centre - (framing.centre_x, framing.centre_y)).max()
  if not 1 / MAX_RESCALE <= size / framing.size <= MAX_RESCALE or shift > MAX_SHIFT:
    return None
  photo_centre = np.array([box.x, box.y]) + centre * box.size
  return box_for_face(photo_centre, size * box.size, framing)


# --------------------------------------------------------------------------- cropping


def reflected(start: int, count: int, length: int) -> np.ndarray:
  """Indices start..start+count-1 into an axis of `length`, mirrored (symmetric) past its ends."""
  index = np.arange(start, start + count) % (2 * length)
  return np.where(index < length, index, 2 * length - 1 - index)


def resize(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
  """(h, w[, C]) -> (size, size[, C]): area averaging when shrinking, linear when enlarging."""
  if nearest:
    interpolation = cv2.INTER_NEAREST
  else:
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
  return cv2.resize(image, (size, size), interpolation=interpolation)


def crop_image(photo: np.ndarray, box: Box, size: int) -> np.ndarray:
  """(H, W, 3) uint8 photo -> (size, size, 3) float32 in [0, 1]; mirrored past the edges."""
  rows = reflected(box.y, box.size, photo.shape[0])
  columns = reflected(box.x, box.size, photo.shape[1])
  square = photo[np.ix_(rows, columns)].astype(np.float32) / 255.0  # (box.size, box.size, 3)
  return np.clip(resize(square, size), 0.0, 1.0)


def window(box: Box, shape: tuple[int, int]):
  """The part of `box` inside a photo of `shape`: photo slices and the matching box slices."""
  top, left = max(box.y, 0), max(box.x, 0)
  bottom, right = min(box.y + box.size, shape[0]), min(box.x + box.size, shape[1])
  if bottom <= top or right <= left:
    raise ValueError(f"crop {box} lies outside the {shape[0]} x {shape[1]} photo")
  photo = (slice(top, bottom), slice(left, right))
  inside = (slice(top - box.y, bottom - box.y), slice(left - box.x, right - box.x))
  return photo, inside
