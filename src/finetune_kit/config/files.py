"""Config files: TOML read into a checked :class:`~finetune_kit.config.RunConfig`, and written back.

Files are parsed as data with :mod:`tomllib`; nothing in them is ever evaluated.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import sys
from pathlib import Path
from typing import Any

from finetune_kit.config.run_config import RunConfig
from finetune_kit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["builtin_config", "list_configs", "load_config", "read_config_file", "save_config", "tomllib"]

BUILTIN = "builtin"  # the folder of this package that holds the configs shipped with the library


def list_configs(pattern: str = "*") -> list[str]:
    """Names of the configs shipped with the library (``finetune-kit train --config NAME``).

    Args:
        pattern: a shell-style glob.

    Returns:
        The sorted names (file names without ``.toml``).

    Example:
        >>> "quickstart" in list_configs()
        True
    """
    folder = importlib.resources.files("finetune_kit.config") / BUILTIN
    names = [entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def builtin_config(name: str) -> Path | None:
    """The file of the shipped config ``name`` (with or without ``.toml``), or None."""
    stem = name.removesuffix(".toml")
    if stem not in list_configs():
        return None
    return Path(str(importlib.resources.files("finetune_kit.config") / BUILTIN / f"{stem}.toml"))


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML file into a :class:`RunConfig`.

    Args:
        path: the TOML file, or the name of a config shipped with the library (see
            :func:`list_configs`), e.g. ``"quickstart"``.

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
    if "\0" in str(path):
        raise ConfigError(
            f"Config path {str(path)!r} contains a NUL byte, which no file name can hold. Retype it."
        )
    if not path.exists() and builtin_config(str(path)) is not None:
        path = builtin_config(str(path))  # a name of a shipped config, e.g. "quickstart"
    try:
        text = path.read_text(encoding="utf-8")
        if text.startswith("\ufeff"):
            raise ConfigError(
                f"{path} starts with a UTF-8 byte-order mark (BOM), which TOML does not allow. "
                "Save the file as UTF-8 without BOM (most editors call it plain 'UTF-8')."
            )
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(
            f"Config file not found: {path}. Check the path, or use a shipped config by name: "
            f"{', '.join(list_configs())}."
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"Cannot read config file {path}: it is a directory; give the path of "
            "a .toml file (e.g. examples/configs/quickstart.toml)."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Cannot read config file {path}: it is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at position {exc.start}). Save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}. Check the path.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the syntax.") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: its values nest too deeply. Fix the file.") from None


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
