"""BFM 2009, BFM 2017, FLAME and jaxface .npz loaders on small files in the published layouts."""

import pickle
import sys
import types

import h5py
import numpy as np
import pytest
import scipy.io

from jaxface.morphable import ModelFileError, load, load_npz, save_npz
from jaxface.morphable.flame import CHUMPY_HELP
from tests.helpers import grid_mesh

NUM_SHAPE, NUM_EXPRESSION, NUM_COLOUR = 4, 3, 2


@pytest.fixture(scope="module")
def small_face():
  """A bent 7 x 8 grid (cm): a disk-like 'face' whose front faces +z."""
  vertices, triangles = grid_mesh(7, 8, size=6.0)
  vertices[:, 2] = 2.0 - 0.05 * ((vertices[:, 0] - 3) ** 2 + (vertices[:, 1] - 3) ** 2)
  rng = np.random.default_rng(0)
  num = len(vertices)
  return {
    "vertices": vertices,
    "triangles": triangles,
    "shape_components": np.linalg.qr(rng.standard_normal((3 * num, NUM_SHAPE)))[0],
    "shape_std": np.array([2.0, 1.0, 0.5, 0.25]),
    "expression_components": np.linalg.qr(rng.standard_normal((3 * num, NUM_EXPRESSION)))[0],
    "expression_std": np.array([1.5, 0.7, 0.3]),
    # Colours linear in position, so baking them into a texture is exact.
    "colours": np.clip(0.3 + 0.05 * vertices[:, [0, 1, 0]] + np.array([0.0, 0.0, 0.1]), 0, 1),
    "colour_components": np.linalg.qr(rng.standard_normal((3 * num, NUM_COLOUR)))[0],
    "colour_std": np.array([0.2, 0.1]),
  }


def _expected_modes(components, std, scale):
  return (components * std).T.reshape(len(std), -1, 3) * scale


def _texture_at_vertices(model):
  albedo = np.asarray(model.albedo_mean)
  height, width = albedo.shape[:2]
  uv = np.asarray(model.vertex_uv)
  rows = np.clip(((1 - uv[:, 1]) * height).astype(int), 0, height - 1)
  cols = np.clip((uv[:, 0] * width).astype(int), 0, width - 1)
  return albedo[rows, cols]


def _write_bfm2009(path, face, drop=None, reverse_winding=True):
  micrometres = 1e4
  triangles = face["triangles"][:, ::-1] if reverse_winding else face["triangles"]
  data = {
    "shapeMU": (face["vertices"] * micrometres).reshape(-1, 1),
    "shapePC": face["shape_components"],
    "shapeEV": (face["shape_std"] * micrometres).reshape(-1, 1),
    "texMU": (face["colours"] * 255).reshape(-1, 1),
    "texPC": face["colour_components"],
    "texEV": (face["colour_std"] * 255).reshape(-1, 1),
    "tl": triangles + 1.0,  # MATLAB: 1-based doubles
  }
  if drop:
    del data[drop]
  scipy.io.savemat(path, data)
  return path


def test_bfm2009(tmp_path, small_face):
  model = load(_write_bfm2009(tmp_path / "01_MorphableModel.mat", small_face), albedo_size=(64, 64))
  np.testing.assert_allclose(model.vertices, small_face["vertices"], atol=1e-5)
  # Clockwise triangles in the file come back counter-clockwise (facing +z).
  np.testing.assert_array_equal(model.triangles, small_face["triangles"])
  np.testing.assert_allclose(
    model.identity_basis,
    _expected_modes(small_face["shape_components"], small_face["shape_std"], 1.0),
    atol=1e-5,
  )
  assert model.num_expression == 0 and model.num_albedo == NUM_COLOUR
  np.testing.assert_allclose(_texture_at_vertices(model), small_face["colours"], atol=0.02)
  assert model.landmarks.shape == (0,)
  assert np.all((model.uv >= 0) & (model.uv <= 1))


def test_bfm2009_landmarks_from_a_file(tmp_path, small_face):
  path = _write_bfm2009(tmp_path / "bfm.mat", small_face)
  ids = np.arange(68) % 56
  np.savetxt(tmp_path / "landmarks.txt", ids, fmt="%d")
  model = load(path, landmarks=str(tmp_path / "landmarks.txt"), albedo_size=(32, 32))
  np.testing.assert_array_equal(model.landmarks, ids)
  with pytest.raises(ModelFileError, match="landmarks must be 68 vertex ids"):
    load(path, landmarks=list(range(10)), albedo_size=(32, 32))


@pytest.mark.parametrize("field", ["shapeEV", "tl", "texMU"])
def test_bfm2009_missing_field(tmp_path, small_face, field):
  path = _write_bfm2009(tmp_path / f"no_{field}.mat", small_face, drop=field)
  with pytest.raises(ModelFileError, match=rf"no_{field}\.mat: missing field '{field}'"):
    load(path)


def test_bfm2009_inconsistent_shapes(tmp_path, small_face):
  face = dict(small_face, shape_std=np.ones(NUM_SHAPE + 1))
  path = _write_bfm2009(tmp_path / "bad.mat", face)
  with pytest.raises(
    ModelFileError, match=r"bad\.mat: field 'shapeEV' has shape \(5, 1\), expected \(4, 1\)"
  ):
    load(path)
  (tmp_path / "garbage.mat").write_bytes(b"MATLAB? no")
  with pytest.raises(ModelFileError, match=r"garbage\.mat: not a readable MATLAB file"):
    load(tmp_path / "garbage.mat")


def _write_bfm2017(path, face, drop=None):
  millimetres = 10.0
  with h5py.File(path, "w") as h5:
    h5["shape/model/mean"] = (face["vertices"] * millimetres).ravel()
    h5["shape/model/pcaBasis"] = face["shape_components"]
    h5["shape/model/pcaVariance"] = (face["shape_std"] * millimetres) ** 2
    h5["shape/representer/cells"] = face["triangles"].T
    h5["shape/representer/points"] = (face["vertices"] * millimetres).T
    h5["expression/model/mean"] = np.zeros(face["vertices"].size)
    h5["expression/model/pcaBasis"] = face["expression_components"]
    h5["expression/model/pcaVariance"] = (face["expression_std"] * millimetres) ** 2
    h5["color/model/mean"] = face["colours"].ravel()
    h5["color/model/pcaBasis"] = face["colour_components"]
    h5["color/model/pcaVariance"] = face["colour_std"] ** 2
    if drop:
      del h5[drop]
  return path


def test_bfm2017(tmp_path, small_face):
  model = load(
    _write_bfm2017(tmp_path / "model2017-1_bfm_nomouth.h5", small_face), albedo_size=(64, 64)
  )
  np.testing.assert_allclose(model.vertices, small_face["vertices"], atol=1e-5)
  np.testing.assert_array_equal(model.triangles, small_face["triangles"])
  np.testing.assert_allclose(
    model.identity_basis,
    _expected_modes(small_face["shape_components"], small_face["shape_std"], 1.0),
    atol=1e-5,
  )
  np.testing.assert_allclose(
    model.expression_basis,
    _expected_modes(small_face["expression_components"], small_face["expression_std"], 1.0),
    atol=1e-5,
  )
  assert model.expression_names == ("expression_pca_00", "expression_pca_01", "expression_pca_02")
  np.testing.assert_allclose(_texture_at_vertices(model), small_face["colours"], atol=0.02)


def test_bfm2017_missing_field(tmp_path, small_face):
  path = _write_bfm2017(tmp_path / "broken.h5", small_face, drop="shape/model/pcaVariance")
  with pytest.raises(ModelFileError, match=r"broken\.h5: missing field 'shape/model/pcaVariance'"):
    load(path)


def _flame_dict(face):
  metres = 0.01
  modes = np.concatenate(
      [_expected_modes(face["shape_components"], face["shape_std"], metres),
       _expected_modes(face["expression_components"], face["expression_std"], metres)]
  )  # fmt: skip
  return {
    "v_template": face["vertices"] * metres,
    "f": face["triangles"].astype(np.uint32),
    "shapedirs": np.moveaxis(modes, 0, -1),  # (V, 3, K)
    "posedirs": np.zeros((len(face["vertices"]), 3, 36)),
    "kintree_table": np.zeros((2, 5), np.int64),
  }


def test_flame(tmp_path, small_face):
  path = tmp_path / "generic_model.pkl"
  path.write_bytes(pickle.dumps(_flame_dict(small_face)))
  model = load(path, num_shape=NUM_SHAPE, albedo_size=(32, 32))
  np.testing.assert_allclose(model.vertices, small_face["vertices"], atol=1e-5)
  np.testing.assert_allclose(
    model.identity_basis,
    _expected_modes(small_face["shape_components"], small_face["shape_std"], 1.0),
    atol=1e-5,
  )
  assert model.num_expression == NUM_EXPRESSION
  assert model.num_albedo == 20  # procedural albedo, no landmarks: skin variation only


def test_flame_uv_from_template_obj(tmp_path, small_face):
  path = tmp_path / "flame.pkl"
  path.write_bytes(pickle.dumps(_flame_dict(small_face)))
  uv = small_face["vertices"][:, :2] / 6.0
  lines = [f"v {x} {y} {z}" for x, y, z in small_face["vertices"]]
  lines += [f"vt {u} {v}" for u, v in uv]
  lines += [
    f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in small_face["triangles"]
  ]
  (tmp_path / "head_template.obj").write_text("\n".join(lines))
  model = load(
    path, num_shape=NUM_SHAPE, uv_obj=str(tmp_path / "head_template.obj"), albedo_size=(32, 32)
  )
  np.testing.assert_allclose(model.uv[model.triangle_uv], uv[small_face["triangles"]], atol=1e-6)


def test_flame_chumpy_pickle_gets_conversion_help(tmp_path, monkeypatch):
  chumpy = types.ModuleType("chumpy")
  chumpy_ch = types.ModuleType("chumpy.ch")

  class Ch:  # stands in for chumpy's array class
    pass

  Ch.__module__ = "chumpy.ch"
  Ch.__qualname__ = "Ch"
  chumpy_ch.Ch = Ch
  monkeypatch.setitem(sys.modules, "chumpy", chumpy)
  monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
  path = tmp_path / "chumpy_model.pkl"
  path.write_bytes(pickle.dumps({"v_template": Ch(), "f": np.zeros((1, 3))}))
  monkeypatch.delitem(sys.modules, "chumpy")
  monkeypatch.delitem(sys.modules, "chumpy.ch")
  with pytest.raises(ModelFileError) as error:
    load(path)
  assert str(path) in str(error.value) and CHUMPY_HELP in str(error.value)


def test_flame_missing_field(tmp_path, small_face):
  data = _flame_dict(small_face)
  del data["shapedirs"]
  path = tmp_path / "no_dirs.pkl"
  path.write_bytes(pickle.dumps(data))
  with pytest.raises(ModelFileError, match=r"no_dirs\.pkl: missing field 'shapedirs'"):
    load(path)


def test_jaxface_npz_round_trip(tmp_path, procedural):
  path = save_npz(procedural, tmp_path / "procedural.npz")
  loaded = load(path)
  for field in (
    "vertices",
    "triangles",
    "uv",
    "identity_basis",
    "albedo_basis",
    "landmarks",
    "mirror",
  ):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(procedural, field))
  assert loaded.expression_names == procedural.expression_names and loaded.name == "procedural"
  with pytest.raises(FileExistsError):
    save_npz(procedural, path)


def test_jaxface_npz_errors(tmp_path, procedural):
  path = save_npz(procedural, tmp_path / "model.npz")
  with np.load(path) as data:
    arrays = {key: data[key] for key in data.files}
  broken = dict(arrays)
  del broken["mirror"]
  np.savez(tmp_path / "no_mirror.npz", **broken)
  with pytest.raises(ModelFileError, match=r"no_mirror\.npz: missing field 'mirror'"):
    load_npz(tmp_path / "no_mirror.npz")
  broken = dict(arrays, landmarks=np.full(68, 10**6))
  np.savez(tmp_path / "bad_landmarks.npz", **broken)
  with pytest.raises(ModelFileError, match=r"bad_landmarks\.npz: landmarks index vertices outside"):
    load(tmp_path / "bad_landmarks.npz")


def test_unknown_and_missing_paths(tmp_path):
  with pytest.raises(ModelFileError, match=r"nothing\.npz: missing"):
    load(tmp_path / "nothing.npz")
  (tmp_path / "model.xyz").write_text("?")
  with pytest.raises(ModelFileError, match="unknown model format"):
    load(tmp_path / "model.xyz")
  with pytest.raises(ModelFileError, match="not an ICT FaceXModel folder"):
    load(tmp_path)
