"""ICT-FaceKit: the original folder format and the compact npz agree; errors name files."""

import json
import shutil

import numpy as np
import pytest

from jaxface.morphable import ModelFileError, find_ict, load
from jaxface.morphable import ict as ict_module


@pytest.fixture(scope="module")
def raw_model(ict_raw):
  return load(ict_raw)


def test_npz_and_raw_agree_on_shared_vertices(ict_model, raw_model, ict_raw):
  assert ict_model.triangles.shape == (18460, 3)
  np.testing.assert_array_equal(raw_model.vertices, ict_model.vertices)
  np.testing.assert_array_equal(raw_model.triangles, ict_model.triangles)
  # Per-corner texture coordinates (ids may be numbered differently).
  np.testing.assert_allclose(
    raw_model.uv[raw_model.triangle_uv], ict_model.uv[ict_model.triangle_uv], atol=1e-7
  )
  # raw/ holds identity000 and identity001, and two expressions.
  assert raw_model.num_identity == 2
  np.testing.assert_allclose(raw_model.identity_basis, ict_model.identity_basis[:2], atol=1e-5)
  assert set(raw_model.expression_names) == {"jawOpen", "eyeBlink_L"}
  for name in raw_model.expression_names:
    np.testing.assert_allclose(
      raw_model.expression_basis[raw_model.expression_index(name)],
      ict_model.expression_basis[ict_model.expression_index(name)],
      atol=1e-5,
    )
  np.testing.assert_array_equal(raw_model.landmarks, ict_model.landmarks)
  np.testing.assert_array_equal(raw_model.mirror, ict_model.mirror)


def test_ict_model_contents(ict_model):
  m = ict_model
  assert m.num_vertices == 9409 and m.num_identity == 100 and m.num_expression == 53
  assert m.landmarks.min() >= 0 and m.landmarks.max() < m.num_vertices
  assert m.uv.shape == (9547, 2) and m.uv.min() >= 0 and m.uv.max() <= 1
  assert m.albedo_mean.shape == (256, 256, 3)
  assert m.albedo_mean.min() >= 0.0 and m.albedo_mean.max() <= 1.0


def test_narrow_area(ict_npz):
  narrow = ict_module.load_ict(ict_npz, area="narrow")
  assert narrow.vertices.shape == (6706, 3) and narrow.triangles.shape == (13120, 3)
  # The narrow face is seamless: one uv per vertex.
  pairs = np.unique(np.stack([narrow.triangles.ravel(), narrow.triangle_uv.ravel()], 1), axis=0)
  assert len(pairs) == len(np.unique(pairs[:, 0]))


def test_load_ict_by_name_through_the_environment(monkeypatch, data_dir, ict_model):
  monkeypatch.setenv("JAXFACE_DATA", str(data_dir))
  assert find_ict().name == "ict_face_area.npz"
  np.testing.assert_array_equal(load("ict").vertices, ict_model.vertices)
  monkeypatch.delenv("JAXFACE_DATA")
  with pytest.raises(FileNotFoundError, match="JAXFACE_DATA"):
    load("ict")


def test_convert_raw_folder_to_npz(tmp_path, ict_raw, raw_model):
  output = ict_module.convert(ict_raw, tmp_path / "ict.npz")
  converted = load(output)
  np.testing.assert_array_equal(converted.vertices, raw_model.vertices)
  np.testing.assert_array_equal(converted.triangles, raw_model.triangles)
  np.testing.assert_array_equal(converted.expression_names, raw_model.expression_names)
  with pytest.raises(FileExistsError):
    ict_module.convert(ict_raw, output)
  ict_module.main([str(ict_raw), str(tmp_path / "cli.npz")])
  assert (tmp_path / "cli.npz").exists()


def _copy_raw(ict_raw, tmp_path, names=("generic_neutral_mesh.obj", "vertex_indices.json")):
  folder = tmp_path / "FaceXModel"
  folder.mkdir()
  for name in names:
    shutil.copy(ict_raw / name, folder / name)
  return folder


def test_raw_folder_errors_name_the_file(tmp_path, ict_raw):
  folder = _copy_raw(ict_raw, tmp_path)
  (folder / "identity000.obj").write_text("v 0 0 0\nv 1 1 1\n")
  with pytest.raises(ModelFileError, match=r"identity000\.obj: has 2 vertices"):
    ict_module.load_ict(folder)
  (folder / "identity000.obj").unlink()
  (folder / "vertex_indices.json").write_text("{not json")
  with pytest.raises(ModelFileError, match=r"vertex_indices\.json: not valid JSON"):
    ict_module.load_ict(folder)
  (folder / "vertex_indices.json").write_text(json.dumps({"expressions": []}))
  with pytest.raises(ModelFileError, match="idx_to_landmark_verts"):
    ict_module.load_ict(folder)
  (folder / "vertex_indices.json").unlink()
  with pytest.raises(ModelFileError, match=r"vertex_indices\.json"):
    ict_module.read_raw(folder)


def test_raw_folder_without_neutral_mesh(tmp_path, ict_raw):
  folder = _copy_raw(ict_raw, tmp_path, names=("vertex_indices.json",))
  with pytest.raises(ModelFileError, match=r"generic_neutral_mesh\.obj: missing"):
    ict_module.load_ict(folder)


def test_npz_errors_name_the_field(tmp_path, ict_arrays):
  broken = dict(ict_arrays)
  del broken["landmarks_68"]
  path = tmp_path / "no_landmarks.npz"
  np.savez(path, **broken)
  # Without landmarks_68 the file is not recognised as ICT, nor as a jaxface npz.
  with pytest.raises(ModelFileError, match="landmarks_68"):
    ict_module.load_ict(path)
  broken = dict(ict_arrays)
  broken["identity_basis"] = broken["identity_basis"][:, :100]
  path = tmp_path / "bad_basis.npz"
  np.savez(path, **broken)
  with pytest.raises(
    ModelFileError, match=r"bad_basis\.npz: field 'identity_basis' has shape \(100, 100, 3\)"
  ):
    load(path)
  path = tmp_path / "garbage.npz"
  path.write_bytes(b"not a zip file")
  with pytest.raises(ModelFileError, match=r"garbage\.npz: not a readable npz"):
    load(path)
