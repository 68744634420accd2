"""A study's config file: an ordinary run config plus a ``[tune]`` section.

The ``[tune]`` section is split off and parsed as the :class:`SearchSpace`; the other sections
are the config every trial starts from, checked as ``finetune-kit train`` checks them.
``finetune-kit train`` refuses a file with a ``[tune]`` section (it would silently train one
config of the search); it trains the ``best.toml`` a study writes.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "study.toml"
    >>> _ = path.write_text('[train]\\nepochs = 3\\n[tune]\\n"optim.lr" = [0.01, 0.1]\\n')
    >>> config, space = load_tune_config(path)
    >>> config.train.epochs, space.keys
    (3, ['optim.lr'])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from finetune_kit.config import RunConfig, apply_overrides, read_config_file
from finetune_kit.errors import ConfigError
from finetune_kit.tuning.space import SearchSpace

__all__ = ["load_tune_config"]

EXAMPLE_ENTRY = '"optim.lr" = {low = 1e-4, high = 0.1, log = true}'


def load_tune_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[RunConfig, SearchSpace]:
    """Read a study's TOML file: the base config (with ``--set`` overrides) and the search space.

    Args:
        path: the TOML file.
        overrides: ``section.key=value`` strings applied to the base config.

    Returns:
        ``(base config, search space)``.

    Raises:
        ConfigError: unreadable file, no ``[tune]`` section, or a bad key or value anywhere.
    """
    raw = read_config_file(path)
    tune = raw.pop("tune", None)
    if tune is None:
        raise ConfigError(
            f"{path} has no [tune] section: add one entry per config key to search, e.g. "
            f"[tune] {EXAMPLE_ENTRY}."
        )
    base = RunConfig.from_dict(raw, source=str(path))
    if overrides:
        base = apply_overrides(base, list(overrides))
    return base, SearchSpace.from_dict(tune, source=f"{path}: [tune]")
