"""The iBUG-68 landmark layout: a canonical frontal template and mirror pairs.

`CANONICAL_LANDMARKS` places the 68 points (iBUG / Multi-PIE order: jaw
0-16, brows 17-26, nose bridge 27-30, nostrils 31-35, eyes 36-47, outer lips
48-59, inner lips 60-67) on the procedural face's frontal plane, in cm, x to
the face's own left, y up. Index 0 is on the face's right side (image left
in a frontal view). The procedural model snaps these to vertices; the
procedural albedo aligns any model's landmarks onto them to find lips, eyes
and brows in its UV space.
"""

from __future__ import annotations

import numpy as np

_RIGHT_HALF = {
  # jaw, from the right ear down to the chin
  0: (-6.9, 3.4),
  1: (-6.85, 1.5),
  2: (-6.65, -0.4),
  3: (-6.25, -2.3),
  4: (-5.5, -4.3),
  5: (-4.35, -5.95),
  6: (-3.0, -7.0),
  7: (-1.5, -7.55),
  # right brow, outer to inner
  17: (-5.6, 5.0),
  18: (-4.7, 5.7),
  19: (-3.6, 6.0),
  20: (-2.4, 5.95),
  21: (-1.2, 5.7),
  # nostril base
  31: (-1.25, -1.1),
  32: (-0.6, -1.25),
  # right eye: outer corner, upper lid, inner corner, lower lid
  36: (-4.4, 3.45),
  37: (-3.8, 3.85),
  38: (-2.75, 3.9),
  39: (-1.85, 3.3),
  40: (-2.7, 3.05),
  41: (-3.8, 3.05),
  # outer lips: right corner, upper lip
  48: (-2.45, -3.45),
  49: (-1.6, -2.85),
  50: (-0.7, -2.55),
  # outer lips: lower lip, right half
  58: (-0.9, -4.35),
  59: (-1.7, -4.1),
  # inner lips
  60: (-2.2, -3.45),
  61: (-1.0, -3.28),
  67: (-1.0, -3.62),
}
_MIDLINE = {
  8: (0.0, -7.7),
  27: (0.0, 3.6),
  28: (0.0, 2.5),
  29: (0.0, 1.3),
  30: (0.0, 0.05),
  33: (0.0, -1.3),
  51: (0.0, -2.65),
  57: (0.0, -4.45),
  62: (0.0, -3.3),
  66: (0.0, -3.64),
}

#: iBUG-68 index of each landmark's left/right counterpart.
IBUG68_MIRROR = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
     27, 28, 29, 30,
     35, 34, 33, 32, 31,
     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
     64, 63, 62, 61, 60, 67, 66, 65],
    dtype=np.int32,
)  # fmt: skip

#: Landmark groups by anatomy, as index arrays into the 68 points.
IBUG68_GROUPS = {
  "jaw": np.arange(0, 17),
  "right_brow": np.arange(17, 22),
  "left_brow": np.arange(22, 27),
  "nose_bridge": np.arange(27, 31),
  "nostrils": np.arange(31, 36),
  "right_eye": np.arange(36, 42),
  "left_eye": np.arange(42, 48),
  "outer_lips": np.arange(48, 60),
  "inner_lips": np.arange(60, 68),
}


def _canonical() -> np.ndarray:
  points = np.full((68, 2), np.nan)
  for index, (x, y) in {**_RIGHT_HALF, **_MIDLINE}.items():
    points[index] = (x, y)
  for index, (x, y) in _RIGHT_HALF.items():
    points[IBUG68_MIRROR[index]] = (-x, y)
  assert not np.isnan(points).any()
  return points


#: (68, 2) canonical frontal landmark positions, cm.
CANONICAL_LANDMARKS = _canonical()
