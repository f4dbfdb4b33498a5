"""B-cos building blocks: each layer is dynamic-linear, with its input-dependent factors detachable."""

from aloe.bcos.activation import DetachableActivation
from aloe.bcos.attention import DynamicAttention
from aloe.bcos.linear import BcosConv2d, BcosLinear
from aloe.bcos.mlp import GatedMlp, Mlp
from aloe.bcos.mode import DynamicLinear, explanation_mode
from aloe.bcos.norm import BcosChannelNorm2d, BcosLayerNorm
from aloe.bcos.pooling import AttentionPooling
from aloe.bcos.render import explanation_to_rgba, save_rgba_png, smooth_for
from aloe.bcos.six_channel import fold_first_layer, to_six_channel
from aloe.bcos.stem import BcosConvStem

__all__ = [
    "AttentionPooling", "BcosChannelNorm2d", "BcosConv2d", "BcosConvStem", "BcosLayerNorm", "BcosLinear",
    "DetachableActivation", "DynamicAttention", "DynamicLinear", "GatedMlp", "Mlp", "explanation_mode",
    "explanation_to_rgba", "fold_first_layer", "save_rgba_png", "smooth_for", "to_six_channel",
]
