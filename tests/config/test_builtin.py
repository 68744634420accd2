"""The configs shipped inside the package: the same files as examples/configs, usable by name,
also from an installed wheel without the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import finetune_kit as fk
from finetune_kit.config import builtin_config, list_configs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "configs"


def test_the_shipped_configs_are_the_examples():
    shipped = {name: builtin_config(name).read_bytes() for name in list_configs()}
    readable = {p.stem: p.read_bytes() for p in EXAMPLES.glob("*.toml")}
    assert shipped == readable, "copy examples/configs/*.toml to src/finetune_kit/config/builtin/"


def test_a_config_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not from the repository
    assert fk.load_config("quickstart") == fk.load_config(EXAMPLES / "quickstart.toml")
    assert fk.load_config("quickstart.toml").model.name == fk.load_config("quickstart").model.name
    with pytest.raises(fk.ConfigError, match="shipped config by name: cifar10_lenet"):
        fk.load_config("quikstart")


@pytest.mark.slow
def test_an_installed_wheel_runs_the_quickstart_without_the_repository(tmp_path, fashion_mnist_dir):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The fresh environment gets torch and friends from this one (a path line: its .pth files,
    # including this checkout's editable install, are not read), and finetune_kit from the wheel.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("finetune_kit-*.whl"))
    # Without PYTHONPATH: a source tree on it (with the egg-info the wheel build leaves there)
    # would look to pip like finetune-kit already installed.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env=clean,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FINETUNE_KIT_DATA": str(fashion_mnist_dir),
    }
    where = subprocess.run(
        [str(python), "-c", "import finetune_kit; print(finetune_kit.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where
    listed = subprocess.run(
        [str(venv / "bin" / "finetune-kit"), "list", "configs"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "quickstart" in listed
    run = subprocess.run(
        [
            str(venv / "bin" / "finetune-kit"),
            "train",
            "--config",
            "quickstart",
            "--epochs",
            "1",
            "--set",
            "data.limit=200",
            "--set",
            "train.progress=false",
            "--output-dir",
            "run",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "run" / "report.json").is_file()
