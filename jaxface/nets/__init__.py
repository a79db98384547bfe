"""Neural network building blocks in Flax Linen shared by methods and metrics.

`resnet` holds the ResNet-18 of the decoupling evaluators; `densenet` the
DenseNet-BC encoder of multiview_depth's 3DMMNet; `layers` the
spectral-normalised, gated and GroupNorm blocks and the U-Net of 3DFaceFill
and multiview_depth, the decoupled GAN critic's `PatchConv` and `materialise`, and
`host_init_variables`, which initialises any module without compiling its
`init`.
"""

from jaxface.nets.densenet import DenseLayer, DenseNet, Transition
from jaxface.nets.layers import (
  ConvNormAct,
  DownBlock,
  GatedConv,
  GatedResUnit,
  GatedUpBlock,
  PatchConv,
  ResUnit,
  SpectralConv,
  UNet,
  UpBlock,
  group_count,
  host_init_variables,
  materialise,
  upsample_nearest,
)
from jaxface.nets.resnet import BasicBlock, ResNet18, host_init, norm_groups, scaled_width

__all__ = [
  "BasicBlock",
  "ConvNormAct",
  "DenseLayer",
  "DenseNet",
  "DownBlock",
  "GatedConv",
  "GatedResUnit",
  "GatedUpBlock",
  "PatchConv",
  "ResNet18",
  "ResUnit",
  "SpectralConv",
  "Transition",
  "UNet",
  "UpBlock",
  "group_count",
  "host_init",
  "host_init_variables",
  "materialise",
  "norm_groups",
  "scaled_width",
  "upsample_nearest",
]
