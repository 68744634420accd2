"""Models and their weights: registry, heads, input adaptation, safe loading, summaries.

Build any registered model for your task with :func:`create_model`; torchvision's pretrained
weights, weight files, checkpoints and run directories load through :func:`load_weights`, which
reports every tensor that did not fit. Each model carries a :class:`ModelInfo` (stages,
head, input size, normalisation) read with :func:`model_info`.

Example:
    >>> import finetune_kit.models as fm
    >>> fm.list_models("mobilenet*")
    ['mobilenet_v3_large', 'mobilenet_v3_small']
    >>> net = fm.create_model("resnet9", num_classes=10, in_channels=1)
    >>> fm.get_head(net)[0], fm.model_info(net).input_size
    ('fc', (32, 32))
"""

from __future__ import annotations

from finetune_kit.models import bn_convnet as _bn_convnet
from finetune_kit.models import resnet9 as _resnet9
from finetune_kit.models import small_nets as _small_nets
from finetune_kit.models import torchvision_models as _torchvision_models
from finetune_kit.models.adapt import adapt_input_channels, adapt_small_input
from finetune_kit.models.factory import create_model
from finetune_kit.models.heads import DropoutLinear, get_head, replace_head
from finetune_kit.models.info import ModelInfo, model_info, set_model_info
from finetune_kit.models.load import LoadReport, load_weights
from finetune_kit.models.registry import MODELS, BuildSpec, ModelEntry, list_models, register_model
from finetune_kit.models.stages import Stage, model_stages, stage_of
from finetune_kit.models.summary import ModelSummary, StageSummary, model_summary
from finetune_kit.models.unwrap import unwrap_model

__all__ = [
    "MODELS",
    "BuildSpec",
    "DropoutLinear",
    "LoadReport",
    "ModelEntry",
    "ModelInfo",
    "ModelSummary",
    "Stage",
    "StageSummary",
    "adapt_input_channels",
    "adapt_small_input",
    "create_model",
    "get_head",
    "list_models",
    "load_weights",
    "model_info",
    "model_stages",
    "model_summary",
    "register_model",
    "replace_head",
    "set_model_info",
    "stage_of",
    "unwrap_model",
]

del _bn_convnet, _resnet9, _small_nets, _torchvision_models
