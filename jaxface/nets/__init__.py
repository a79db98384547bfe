"""Neural network building blocks in Flax Linen shared by methods and metrics."""

from jaxface.nets.resnet import BasicBlock, ResNet18, host_init, norm_groups, scaled_width

__all__ = ["BasicBlock", "ResNet18", "host_init", "norm_groups", "scaled_width"]
