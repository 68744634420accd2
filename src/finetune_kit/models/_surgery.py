"""Replace a submodule of a model by its qualified name, e.g. ``"layer1.0.conv1"``."""

from __future__ import annotations

from torch import nn

from finetune_kit.errors import ShapeError

__all__ = ["set_submodule"]


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the qualified ``name`` inside ``model``, replacing what is there.

    Args:
        model: the root module.
        name: dotted path of an existing submodule, e.g. ``"classifier.3"``.
        module: the replacement.

    Raises:
        ShapeError: there is no submodule at ``name`` (an empty name cannot be replaced).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        >>> set_submodule(net, "1", nn.Tanh())
        >>> type(net[1]).__name__
        'Tanh'
    """
    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
        parent.get_submodule(attr)
    except AttributeError as err:
        raise ShapeError(f"{type(model).__name__} has no submodule {name!r} to replace: {err}.") from err
    if not attr:
        raise ShapeError("Cannot replace the model itself; give the name of a submodule.")
    setattr(parent, attr, module)
