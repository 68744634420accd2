"""Config files: TOML read into a checked :class:`~finetune_kit.config.RunConfig`, and written back.

Files are parsed as data with :mod:`tomllib`; nothing in them is ever evaluated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from finetune_kit.config.run_config import RunConfig
from finetune_kit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["load_config", "read_config_file", "save_config", "tomllib"]


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML file into a :class:`RunConfig`.

    Args:
        path: the TOML file.

    Returns:
        The checked configuration.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or holds a bad key or value.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
        >>> _ = p.write_text('[train]\\nepochs = 2\\n')
        >>> load_config(p).train.epochs
        2
    """
    return RunConfig.from_dict(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML config file as plain data, unchecked (parsed, never evaluated).

    Args:
        path: the TOML file.

    Returns:
        ``{section: {key: value}}``.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
        >>> _ = p.write_text('[tune]\\n"optim.lr" = [0.1, 0.2]\\n')
        >>> read_config_file(p)
        {'tune': {'optim.lr': [0.1, 0.2]}}
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}. Check the path.") from None
    except IsADirectoryError:
        raise ConfigError(
            f"Cannot read config file {path}: it is a directory; give the path of "
            "a .toml file (e.g. examples/configs/quickstart.toml)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the syntax.") from None


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as TOML (the resolved config saved next to a run).

    Args:
        config: the configuration.
        path: the ``.toml`` file to write.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.toml"
        >>> save_config(RunConfig(), path)
        >>> load_config(path) == RunConfig()
        True
    """
    import tomli_w

    Path(path).write_text(tomli_w.dumps(config.to_dict()), encoding="utf-8")
