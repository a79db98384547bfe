"""Shu et al. (FG 2020): monocular face depth learnt with 3DMM regularisation and multi-view
photo-consistency.

DepthNet f predicts per-pixel normalised depth from one image; 3DMMNet g
predicts morphable-model coefficients and the camera pose, which regularise
f (a depth render of the fit), estimate the views' relative pose for the
photo-consistency loss and, warped between views, its occlusion mask; a
suitability network h down-weights pixels (specular, non-Lambertian) whose
colours do not agree across views.

The package is the method the trainer runs (`config.method =
"multiview_depth"`): `method` (config checks, stages, state), `steps` (each
stage's step), `networks`, `geometry` and `losses` (eqs. 1-16), `data` (the
training pairs and evaluation faces) and `evaluation` (sec. V-B and the
summaries); `predict` is the one-photo command.
"""

from jaxface.methods.multiview_depth.data import create_dataset
from jaxface.methods.multiview_depth.evaluation import evaluate, summaries
from jaxface.methods.multiview_depth.method import create_state, stages

__all__ = ["create_dataset", "create_state", "evaluate", "stages", "summaries"]
