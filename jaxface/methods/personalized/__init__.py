"""Chaudhuri et al. (ECCV 2020): personalised expression blendshapes and dynamic albedo, learnt by
a modeling network decoupled from a per-frame tracking network.

The modeling network reads several frames of one user and gives their
personal model: a neutral-shape correction, a correction of every generic
blendshape and a static and a per-blendshape (dynamic) albedo, as UV maps;
the tracking network gives each frame's pose, blendshape weights and SH
light. Both are trained self-supervised through jaxface's renderer, and
because the weights keep the generic rig's meaning, one user's tracked
weights drive another user's model or an external puppet.

The package is the method the trainer runs (`config.method =
"personalized"`): `method` (config checks, stages, state), `steps`,
`networks` (Table 1), `rig` (the personal model and retargeting),
`image_formation`, `losses` (the supplement's seven weighted terms), `data`
and `evaluation`.
"""

from jaxface.methods.personalized.data import create_dataset
from jaxface.methods.personalized.evaluation import evaluate, summaries
from jaxface.methods.personalized.method import create_state, stages

__all__ = ["create_dataset", "create_state", "evaluate", "stages", "summaries"]
