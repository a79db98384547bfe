"""3DFaceFill (Dey & Boddeti, WACV 2022): face completion by analysis-by-synthesis.

A 3DMM encoder factorises a face image into shape, pose, illumination and UV
albedo; a symmetric gated U-Net completes the albedo's occluded part in UV
space; the completed face is re-rendered and blended into the input.

The package is the method the trainer runs (`config.method = "facefill"`):
`method` (config checks, stages, state), `steps` (each stage's step),
`pipeline` (the completion pipeline shared by training and inference),
`evaluation` (metrics and summaries); `complete` is the real-photo command
and `report` prints the completion tables of evaluated runs.
"""

from jaxface.methods.facefill.data import create_dataset
from jaxface.methods.facefill.evaluation import evaluate, summaries
from jaxface.methods.facefill.method import create_state, stages

__all__ = ["create_dataset", "create_state", "evaluate", "stages", "summaries"]
