"""File input and output: meshes (OBJ/PLY with UVs and textures)."""

from jaxface.io.mesh import export_mesh, load_mesh

__all__ = ["export_mesh", "load_mesh"]
