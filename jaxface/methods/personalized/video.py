r"""The supplement's three applications on a video: personalised reconstruction, retargeting to
another user's personal model, and retargeting to an external puppet.

    python -m jaxface.methods.personalized.video --input=VIDEO_OR_FRAMES --workdir=RUN \
        --output=DIR [--retarget_to=VIDEO_OR_FRAMES] [--puppet=ict|procedural|PATH] \
        [--box=detect|full|X,Y,SIZE] [--smooth=SIGMA] [--model_frames=K] [--max_frames=N] \
        [--step=N] [--overwrite]

The input is a video file (read by imageio's ffmpeg plugin: mp4, avi,
mov, ...) or a folder of frames (png/jpg, in name order). RUN is a trained
personalized run. The face box of the first frame comes from the face
detector (`--box=detect`, `jaxface.data.photos`), the whole frame
(`--box=full`, for videos that are already face crops, as the synthetic
sequences are) or a given square `X,Y,SIZE` in pixels; the box of each
later frame comes from the landmarks predicted in the frame before
(`tracking.next_box`). Those landmarks are projected from the personal
model built on the first frame; the final model is built from
`--model_frames` frames spread over the whole video, and `--smooth` (in
frames, 0: off) smooths the tracked weights and pose over time.

DIR receives (refused if they exist, unless --overwrite):
  meshes/frame_NNNNN.obj    the personalised reconstruction of every frame (face frame)
  retarget/frame_NNNNN.obj  with --retarget_to: the other user's model driven by these weights
  puppet/frame_NNNNN.obj    with --puppet: the puppet's blendshapes driven by these weights
  video.mp4                 per frame: crop | reconstruction | overlay | retarget | puppet
  grid.png                  the same panels for 6 frames spread over the video (rows)
  tracking.json             per frame: box, blendshape weights by name, rotation, translation
  result.json               counts, the puppet's matched and unmatched blendshape names, timings
A missing or unreadable input, run or puppet stops with one line on
stderr and exit status 2, and nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import time
import warnings

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL.Image
import tqdm
from absl import flags

from jaxface import cli
from jaxface.data.photos import (
  IMAGE_SUFFIXES,
  Box,
  Framing,
  crop_image,
  detect_face,
  detection_box,
  framing_from_landmarks,
  read_image,
)
from jaxface.errors import InputFileError, NotFoundError
from jaxface.io.mesh import export_mesh
from jaxface.methods.personalized import networks, rig, tracking
from jaxface.methods.personalized.image_formation import (
  grey_render,
  personal_model,
  render_frames,
)
from jaxface.methods.personalized.networks import State, Track
from jaxface.morphable import load as load_model
from jaxface.training import load_run

OUTPUT_FILES = ("meshes", "retarget", "puppet", "video.mp4", "grid.png", "tracking.json",
                "result.json")  # fmt: skip
GRID_FRAMES = 6
DEFAULT_FPS = 25.0


# --------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _ffmpeg_quiet():
  """imageio runs ffmpeg as a subprocess; JAX warns on every fork of a process with its threads,
  but the child only execs ffmpeg, which is safe, so that one warning is silenced here."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    yield


def read_frames(path: str | pathlib.Path, max_frames: int = 0) -> tuple[list[np.ndarray], float]:
  """A video file or a folder of frames -> (frames (H, W, 3) uint8, frames per second)."""
  path = pathlib.Path(path)
  if path.is_dir():
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise InputFileError(f"the folder {path} holds no frames ({', '.join(IMAGE_SUFFIXES)})")
    files = files[:max_frames] if max_frames else files
    frames = [read_image(file) for file in files]
    if len({frame.shape for frame in frames}) > 1:
      raise InputFileError(f"the frames of {path} do not all have one size")
    return frames, DEFAULT_FPS
  if not path.exists():
    raise NotFoundError(f"video {path} not found")
  try:
    frames = []
    with _ffmpeg_quiet():
      for frame in iio.imiter(path):
        frames.append(np.asarray(frame)[..., :3])
        if max_frames and len(frames) == max_frames:
          break
      fps = float(iio.immeta(path).get("fps", DEFAULT_FPS))
  except Exception as error:  # imageio's plugins raise many kinds; name the file
    raise InputFileError(f"video {path} could not be read by imageio ({error})") from None
  if not frames:
    raise InputFileError(f"video {path} has no frames")
  return frames, fps


def parse_box(text: str) -> str | Box:
  """--box: "detect", "full" or "X,Y,SIZE"; InputFileError naming the flag otherwise."""
  if text in ("detect", "full"):
    return text
  try:
    x, y, size = (int(v) for v in text.split(","))
  except ValueError:
    raise InputFileError(f"--box={text!r} must be detect, full or X,Y,SIZE in pixels") from None
  if size < 1:
    raise InputFileError(f"--box={text!r}: SIZE must be positive")
  return Box(x, y, size)


# --------------------------------------------------------------------------- the networks


def training_framing(state: State, config) -> Framing:
  """Where the training frames put a face: the mean face's landmarks, frontal, at the nominal
  camera distance."""
  size = config.data.image_size
  height = networks.face_height(state.arrays)
  track = Track(
    jnp.eye(3)[None], jnp.asarray([[0.0, 0.0, -config.personalized.nominal_distance]]) * height,
    jnp.zeros((1, state.arrays.expression_basis.shape[0])), jnp.zeros((1, 27)),
  )  # fmt: skip
  camera = networks.cameras(track, size)
  landmarks, _ = camera.project(state.arrays.mean[state.arrays.landmarks][None])
  return framing_from_landmarks(np.asarray(landmarks), size)


@functools.partial(jax.jit, static_argnames=("config",))
def build_person(state: State, crops: jax.Array, config: ml_collections.FrozenConfigDict):
  """The personal model (batch of 1) of (1, K, H, W, 3) crops."""
  maps = networks.model_users(config, state, None, crops, train=False)
  return personal_model(config, state.arrays, maps)


@functools.partial(jax.jit, static_argnames=("config",))
def track_crops(state: State, crops: jax.Array, person, config: ml_collections.FrozenConfigDict):
  """The tracks of (N, H, W, 3) crops and their landmarks (N, 68, 2) on `person`'s mesh."""
  track = networks.track_frames(config, state, None, crops)
  vertices = rig.frame_shape(state.arrays, jax.tree.map(lambda x: x[0], person), track.weights)
  landmarks, _ = networks.cameras(track, crops.shape[1]).project(
    vertices[:, state.arrays.landmarks]
  )
  return track, landmarks


@functools.partial(jax.jit, static_argnames=("config",))
def render_person(state: State, person, track: Track, config: ml_collections.FrozenConfigDict):
  """Renders N frames of one person: (meshes (N, V, 3), images (N, H, W, 3), masks (N, H, W))."""
  frames = track.weights.shape[0]
  out = render_frames(state.arrays, person, track, config.data.image_size, frames)
  return out.vertices[0], out.render.image, out.render.mask


def track_video(state, config, frames: list[np.ndarray], first: Box, person, desc: str):
  """Crops and tracks `frames` one by one, each box from the previous frame's landmarks.

  Returns (crops (T, H, W, 3), boxes, the Track of the T frames).
  """
  size = config.data.image_size
  framing = training_framing(state, config)
  box, crops, boxes, tracks = first, [], [], []
  for frame in tqdm.tqdm(frames, desc=desc, leave=False):
    crop = crop_image(frame, box, size)
    track, landmarks = jax.device_get(track_crops(state, jnp.asarray(crop[None]), person, config))
    crops.append(crop)
    boxes.append(box)
    tracks.append(track)
    box = tracking.next_box(box, np.asarray(landmarks[0]), size, framing)
  track = Track(*(np.concatenate(field) for field in zip(*tracks, strict=True)))
  return np.stack(crops), boxes, track


def first_box(state, config, frame: np.ndarray, box: str | Box, name: str) -> Box:
  if isinstance(box, Box):
    return box
  if box == "full":
    height, width = frame.shape[:2]
    side = min(height, width)
    return Box((width - side) // 2, (height - side) // 2, side)
  return detection_box(detect_face(frame, name), training_framing(state, config))


def personalise(state, config, frames, box: str | Box, model_frames: int, name: str):
  """One user's video -> (their final personal model, crops, boxes, tracks)."""
  size = config.data.image_size
  start = first_box(state, config, frames[0], box, name)
  initial = build_person(state, jnp.asarray(crop_image(frames[0], start, size)[None, None]), config)
  crops, boxes, track = track_video(state, config, frames, start, initial, f"track {name}")
  ids = np.unique(
    np.linspace(0, len(frames) - 1, min(model_frames, len(frames))).round().astype(int)
  )
  person = build_person(state, jnp.asarray(crops[ids][None]), config)
  return person, crops, boxes, track


# --------------------------------------------------------------------------- puppets


def puppet_frames(puppet, match: rig.BlendshapeMatch, track: Track, source_height, size: int):
  """The puppet's own rig driven by the tracked weights under the tracked head pose.

  The puppet's mean face (no identity) plus its blendshapes at the matched weights;
  the camera distance is scaled by the puppet's face height over the source's, so
  both faces fill the crop alike. Returns (meshes (T, V, 3), images (T, H, W, 3)).
  """
  vertices = np.asarray(puppet.vertices, np.float32)
  mean = vertices - vertices.mean(0)
  height = float(np.ptp(vertices[:, 1]))
  weights = rig.retarget_weights(jnp.asarray(track.weights), match)  # (T, Kp)
  meshes = mean + jnp.einsum("tk,kvd->tvd", weights, jnp.asarray(puppet.expression_basis))
  scaled = track._replace(translation=np.asarray(track.translation) * height / float(source_height))
  camera = networks.cameras(Track(*(jnp.asarray(x) for x in scaled)), size)
  return np.asarray(meshes), np.asarray(grey_render(meshes, puppet.triangles, camera, size, height))


# --------------------------------------------------------------------------- the command


def _uint8(image: np.ndarray) -> np.ndarray:
  return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _export_all(folder: pathlib.Path, meshes: np.ndarray, triangles: np.ndarray) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for index, mesh in enumerate(meshes):
    export_mesh(folder / f"frame_{index:05d}.obj", mesh, triangles, overwrite=True)


def _render_in_chunks(state, person, track: Track, config, chunk: int = 16):
  meshes, images, masks = [], [], []
  for start in range(0, track.weights.shape[0], chunk):
    part = Track(*(jnp.asarray(field[start : start + chunk]) for field in track))
    mesh, image, mask = jax.device_get(render_person(state, person, part, config))
    meshes.append(mesh)
    images.append(image)
    masks.append(mask)
  return np.concatenate(meshes), np.concatenate(images), np.concatenate(masks)


def run_video(
  input_path, workdir, output, *, retarget_to=None, puppet: str = "", box: str = "detect",
  smooth: float = 0.0, model_frames: int = 4, max_frames: int = 0, step=None,
  overwrite: bool = False,
) -> dict:  # fmt: skip
  """The command (module docstring); returns result.json's content."""
  started = time.perf_counter()
  output = pathlib.Path(output)
  cli.check_outputs(output, OUTPUT_FILES, overwrite)
  chosen_box = parse_box(box)
  if model_frames < 1:
    raise InputFileError(f"--model_frames={model_frames} must be positive")
  frames, fps = read_frames(input_path, max_frames)
  other = read_frames(retarget_to, max_frames)[0] if retarget_to else None
  puppet_model = None
  if puppet:
    try:
      puppet_model = load_model(puppet)
    except (FileNotFoundError, ValueError) as error:
      raise InputFileError(f"--puppet={puppet}: {cli.one_line(error)}") from None
  run = load_run(workdir, step, method="personalized", num_devices=1)
  config, state = run.config, run.state
  size = config.data.image_size
  source_names = tuple(load_model(str(config.data.model)).expression_names)
  triangles = np.asarray(state.arrays.triangles)

  person, crops, boxes, track = personalise(
    state, config, frames, chosen_box, model_frames, str(input_path)
  )
  weights, rotation, translation = tracking.smooth_track(
    track.weights, track.rotation, track.translation, smooth
  )
  track = track._replace(weights=weights, rotation=rotation, translation=translation)
  meshes, images, masks = _render_in_chunks(state, person, track, config)
  overlay = np.where(masks[..., None] > 0.5, 0.5 * crops + 0.5 * np.clip(images, 0, 1), crops)
  panels = [crops, images, overlay]
  _export_all(output / "meshes", meshes, triangles)
  result = {"input": str(input_path), "workdir": str(workdir), "step": int(run.step),
            "frames": len(frames), "fps": fps, "model_frames": model_frames,
            "smooth": smooth}  # fmt: skip
  if other is not None:
    # The other user's model, built from their own video, driven by this video's track.
    other_person = personalise(state, config, other, chosen_box, model_frames, str(retarget_to))[0]
    retargeted, retarget_images, _ = _render_in_chunks(state, other_person, track, config)
    _export_all(output / "retarget", retargeted, triangles)
    panels.append(retarget_images)
    result["retarget_to"] = str(retarget_to)
  if puppet_model is not None:
    match = rig.match_blendshapes(source_names, tuple(puppet_model.expression_names))
    puppet_meshes, puppet_images = puppet_frames(
      puppet_model, match, track, networks.face_height(state.arrays), size
    )
    _export_all(output / "puppet", puppet_meshes, np.asarray(puppet_model.triangles))
    panels.append(puppet_images)
    result["puppet"] = {
      "model": puppet, "matched": int(match.matched.sum()), "blendshapes": len(match.matched),
      "unmatched_puppet": list(match.unmatched_target),
      "unmatched_source": list(match.unmatched_source),
    }  # fmt: skip
  strip = np.concatenate([_uint8(p) for p in panels], axis=2)  # (T, H, P W, 3)
  with _ffmpeg_quiet():
    iio.imwrite(output / "video.mp4", strip, fps=fps, macro_block_size=1)
  rows = np.unique(
    np.linspace(0, len(frames) - 1, min(GRID_FRAMES, len(frames))).round().astype(int)
  )
  PIL.Image.fromarray(np.concatenate(list(strip[rows]), axis=0)).save(output / "grid.png")
  per_frame = [
    {"frame": t, "box": {"x": b.x, "y": b.y, "size": b.size},
     "weights": dict(zip(source_names, np.round(track.weights[t], 4).tolist(), strict=True)),
     "rotation": np.round(track.rotation[t], 5).tolist(),
     "translation": np.round(track.translation[t], 4).tolist()}
    for t, b in enumerate(boxes)
  ]  # fmt: skip
  (output / "tracking.json").write_text(json.dumps(per_frame, indent=1) + "\n")
  result["seconds"] = round(time.perf_counter() - started, 2)
  (output / "result.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def main() -> None:
  """The command line (flags defined here, not at import)."""
  input_path = flags.DEFINE_string("input", None, "A video file or a folder of frames.")
  workdir = flags.DEFINE_string("workdir", None, "The trained personalized run.")
  output = flags.DEFINE_string("output", None, "Folder for the results.")
  retarget_to = flags.DEFINE_string(
    "retarget_to", None, "Another user's video or frames: their model is driven by this track."
  )
  puppet = flags.DEFINE_string(
    "puppet", "", "A face model (ict, procedural or a path) driven by matching ARKit names."
  )
  box = flags.DEFINE_string("box", "detect", "First frame's face box: detect, full or X,Y,SIZE.")
  smooth = flags.DEFINE_float("smooth", 0.0, "Temporal smoothing sigma in frames (0: off).")
  model_frames = flags.DEFINE_integer("model_frames", 4, "Frames the personal model is built from.")
  max_frames = flags.DEFINE_integer("max_frames", 0, "Read at most this many frames (0: all).")
  step = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest that restores).")
  overwrite = flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
  flags.mark_flags_as_required(["input", "workdir", "output"])

  def run_from_flags(argv):
    del argv
    result = run_video(
      input_path.value, workdir.value, output.value, retarget_to=retarget_to.value,
      puppet=puppet.value, box=box.value, smooth=smooth.value, model_frames=model_frames.value,
      max_frames=max_frames.value, step=step.value, overwrite=overwrite.value,
    )  # fmt: skip
    print(f"wrote {output.value}: {result['frames']} frames (step {result['step']})")

  cli.run(run_from_flags)


if __name__ == "__main__":
  main()
