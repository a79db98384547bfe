"""Mesh export and import round trips through trimesh."""

import numpy as np
import pytest
import trimesh
from PIL import Image

from jaxface.io import export_mesh, load_mesh


@pytest.fixture(scope="module")
def face(procedural):
  identity = np.linspace(-1, 1, procedural.num_identity).astype(np.float32)
  return np.asarray(procedural.shape(identity)), procedural


def test_obj_round_trip_with_texture(tmp_path, face):
  vertices, model = face
  path = export_mesh(
    tmp_path / "face.obj", vertices, model.triangles, model.uv, model.triangle_uv, model.albedo_mean
  )
  assert {p.name for p in tmp_path.iterdir()} == {"face.obj", "face.mtl", "face.png"}
  loaded_vertices, loaded_triangles = load_mesh(path)
  np.testing.assert_allclose(loaded_vertices, vertices, atol=1e-6)
  np.testing.assert_array_equal(loaded_triangles, model.triangles)
  texture = np.asarray(Image.open(tmp_path / "face.png")) / 255.0
  np.testing.assert_allclose(texture[..., :3], np.asarray(model.albedo_mean), atol=1 / 255)
  # An independent reader sees the same UVs at every corner.
  mesh = trimesh.load(path, process=False, maintain_order=True)
  corner_uv = mesh.visual.uv[mesh.faces]
  np.testing.assert_allclose(
    corner_uv, np.asarray(model.uv)[np.asarray(model.triangle_uv)], atol=1e-6
  )


def test_seamed_mesh_round_trip(tmp_path, ict_model):
  model = ict_model
  path = export_mesh(
    tmp_path / "ict.obj", model.vertices, model.triangles, model.uv, model.triangle_uv
  )
  vertices, triangles = load_mesh(path)
  assert vertices.shape == model.vertices.shape  # seam duplicates merged again
  np.testing.assert_allclose(vertices, model.vertices, atol=1e-6)
  np.testing.assert_array_equal(triangles, model.triangles)


def test_ply_gets_vertex_colours(tmp_path, face):
  vertices, model = face
  path = export_mesh(
    tmp_path / "face.ply", vertices, model.triangles, model.uv, model.triangle_uv, model.albedo_mean
  )
  mesh = trimesh.load(path, process=False)
  assert mesh.visual.vertex_colors.shape == (len(vertices), 4)
  loaded_vertices, loaded_triangles = load_mesh(path)
  np.testing.assert_allclose(loaded_vertices, vertices, atol=1e-5)
  np.testing.assert_array_equal(loaded_triangles, model.triangles)
  lips = model.landmarks[62]
  colour = mesh.visual.vertex_colors[lips, :3] / 255.0
  assert colour[0] > colour[1]  # reddish


def test_nothing_is_overwritten(tmp_path, face):
  vertices, model = face
  export_mesh(
    tmp_path / "a.obj", vertices, model.triangles, model.uv, model.triangle_uv, model.albedo_mean
  )
  before = (tmp_path / "a.png").read_bytes()
  with pytest.raises(FileExistsError):
    export_mesh(tmp_path / "a.obj", vertices, model.triangles)
  # A texture of the same name beside a new mesh is not replaced either.
  (tmp_path / "b.png").write_text("keep me")
  with pytest.raises(FileExistsError, match=r"b\.png"):
    export_mesh(
      tmp_path / "b.obj", vertices, model.triangles, model.uv, model.triangle_uv, model.albedo_mean
    )
  assert not (tmp_path / "b.obj").exists()
  assert (tmp_path / "a.png").read_bytes() == before
  assert (tmp_path / "b.png").read_text() == "keep me"


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match="unsupported mesh format"):
    export_mesh(tmp_path / "x.stl", np.zeros((3, 3)), np.array([[0, 1, 2]]))
  with pytest.raises(ValueError, match=r"\(V, 3\)"):
    export_mesh(tmp_path / "x.obj", np.zeros((3, 2)), np.array([[0, 1, 2]]))
  with pytest.raises(FileNotFoundError):
    load_mesh(tmp_path / "missing.obj")
  (tmp_path / "empty.obj").write_text("# nothing\n")
  with pytest.raises(ValueError, match=r"empty\.obj"):
    load_mesh(tmp_path / "empty.obj")
