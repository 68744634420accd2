"""Security: no file can run code when loaded, outputs stay in the run directory, configs are data.

The malicious files below hold a pickle whose unpickling calls ``open(MARKER, "w")``: loading
one the unsafe way creates MARKER (a control test proves it), so "refused and MARKER absent"
shows that a load path did not unpickle it.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.cli.parser import build_parser
from finetune_kit.errors import CheckpointError, DataError, OutputDirError
from finetune_kit.storage.checkpoint import load_checkpoint
from finetune_kit.storage.run_dir import RunDir
from tests.reliability.hostile import CONFIG as FAKE

SRC = Path(fk.__file__).parent


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``, which creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a malicious pickle was unpickled: it created its marker file"


def evil_checkpoint(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    """A finetune_kit-looking checkpoint whose model state carries the payload."""
    state = {"model": {"conv1.weight": CreatesFile(marker)}, "config": {}, "position": {"epoch": 0}}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def evil_weights(path: Path, marker: Path) -> Path:
    torch.save({"conv1.weight": CreatesFile(marker)}, path)
    return path


def lenet() -> torch.nn.Module:
    return fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)


def tiny_data() -> fk.DataBundle:
    return fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16, train_size=32, test_size=8)


def one_error_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("finetune-kit: error: "), err
    return err[0]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_the_payload_is_live_when_loaded_unsafely(tmp_path, legacy):
    """Control: ``torch.load(weights_only=False)`` runs the payload, so refusals mean something."""
    marker = tmp_path / "control"
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker, legacy=legacy)
    torch.load(path, weights_only=False)
    assert marker.exists()


# --------------------------------------------------------------- every load path refuses
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_load_checkpoint_refuses(tmp_path, marker, legacy):
    path = evil_checkpoint(tmp_path / "evil.ckpt", marker, legacy=legacy)
    with pytest.raises(CheckpointError, match=r"Refused to load .*could run code"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["evaluate", "--checkpoint", "{ckpt}"], id="evaluate"),
        pytest.param(["evaluate", "--checkpoint", "{run}"], id="evaluate-run-dir"),
        pytest.param(["train", "--resume", "{ckpt}"], id="resume"),
        pytest.param(["train", "--resume", "{run}"], id="resume-run-dir"),
        pytest.param(["train", "--config", "{config}", "--resume", "{ckpt}"], id="resume-with-config"),
    ],
)
def test_cli_refuses(tmp_path, capsys, marker, argv):
    run = tmp_path / "run"
    run.mkdir()
    ckpt = evil_checkpoint(run / "last.ckpt", marker)
    config = tmp_path / "run.toml"
    config.write_text(FAKE)
    places = {"{ckpt}": str(ckpt), "{run}": str(run), "{config}": str(config)}
    argv = [places.get(a, a) for a in argv]
    line = one_error_line(capsys, argv)
    assert "Refused to load" in line and "could run code" in line


def test_cli_predict_refuses(tmp_path, capsys, marker):
    parser_commands = build_parser()._subparsers._group_actions[0].choices
    if "predict" not in parser_commands:
        pass
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    ckpt = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    line = one_error_line(capsys, ["predict", "--checkpoint", str(ckpt), str(image)])
    assert "Refused to load" in line


@pytest.mark.parametrize("source", ["evil.pth", "evil.ckpt", "run"])
def test_weights_loading_refuses(tmp_path, marker, source):
    (tmp_path / "run").mkdir()
    evil_checkpoint(tmp_path / "run" / "last.ckpt", marker)
    evil_checkpoint(tmp_path / "evil.ckpt", marker)
    evil_weights(tmp_path / "evil.pth", marker)
    path = str(tmp_path / source)
    with pytest.raises(CheckpointError, match=r"(?i)refus"):
        fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16, weights=path)
    with pytest.raises(CheckpointError, match=r"(?i)refus"):
        fk.load_weights(lenet(), path)


def test_trainer_resume_and_evaluate_refuse(tmp_path, marker):
    (tmp_path / "run").mkdir()
    ckpt = evil_checkpoint(tmp_path / "run" / "last.ckpt", marker)
    trainer = fk.Trainer(lenet(), tiny_data(), progress=False, device="cpu", output_dir=str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match="Refused to load"):
        trainer.fit(resume=ckpt)
    with pytest.raises(CheckpointError, match="Refused to load"):
        fk.evaluate_checkpoint(ckpt, device="cpu")


def test_inference_loading_refuses(tmp_path, marker):
    ckpt = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="Refused to load"):
        fk.load_model(ckpt)
    with pytest.raises(CheckpointError, match="Refused to load"):
        fk.predict(ckpt, torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(CheckpointError, match="Refused to load"):
        fk.export(ckpt, tmp_path / "out")


def test_cifar_batches_are_not_unpickled_unsafely(tmp_path, marker):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    meta = {b"label_names": [b"c%d" % i for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": CreatesFile(marker)}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="CIFAR pickle"):
        fk.create_datasets("cifar10", root=str(root), download=False)


# ------------------------------------------------------------- the source, checked
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "pickle.load",
    "pickle.loads",
    "marshal.loads",
    "yaml.load",
    "yaml.unsafe_load",
    "torch.jit.load",
    "dill.load",
    "dill.loads",
    "shelve.open",
}


def test_source_never_unpickles_unsafely_or_evaluates():
    """Every torch.load passes weights_only=True; no eval, exec, pickle.load, np.load pickles."""
    problems = []
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree):
            name = _dotted(call.func)
            where = f"{path.relative_to(SRC)}:{call.lineno} {name}"
            keywords = {k.arg: k.value for k in call.keywords}
            if name in FORBIDDEN_CALLS:
                problems.append(where)
            if name == "torch.load":
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where} without weights_only=True")
            if name in ("np.load", "numpy.load") and "allow_pickle" in keywords:
                problems.append(f"{where} with allow_pickle")
    assert not problems, problems


def test_every_unpickler_restricts_what_it_builds():
    """A pickle.Unpickler subclass must override find_class (as the CIFAR reader does)."""
    found = []
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = [_dotted(b) for b in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and any(b.endswith("Unpickler") for b in bases):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                found.append((path.name, node.name, "find_class" in methods))
            if isinstance(node, ast.Call) and _dotted(node.func) == "pickle.Unpickler":
                found.append((path.name, "pickle.Unpickler(...)", False))
    assert found and all(ok for *_, ok in found), found


def test_configs_are_parsed_with_tomllib():
    source = (SRC / "config" / "files.py").read_text(encoding="utf-8")
    assert "tomllib.loads" in source


# ---------------------------------------------------------------- configs are data
def test_a_config_value_is_never_evaluated(tmp_path, capsys, marker):
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    config = tmp_path / "run.toml"
    config.write_text(FAKE.replace('name = "lenet"', f'name = "{code}"'))
    argv = ["train", "--config", str(config), "--output-dir", str(tmp_path / "o")]
    assert "Unknown model" in one_error_line(capsys, argv)


def test_a_python_file_given_as_config_is_not_run(tmp_path, capsys, marker):
    script = tmp_path / "run.py"
    script.write_text(f"open({str(marker)!r}, 'w')\n")
    argv = ["train", "--config", str(script), "--output-dir", str(tmp_path / "o")]
    line = one_error_line(capsys, argv)
    assert "is not valid TOML" in line


@pytest.mark.parametrize(
    "override",
    [
        "model.name=__import__('os').system('touch {marker}')",
        "data.root=$(touch {marker})",
        "train.epochs=__import__('pathlib').Path('{marker}').touch()",
    ],
)
def test_override_values_are_data(tmp_path, capsys, marker, override):
    config = tmp_path / "run.toml"
    config.write_text(FAKE.replace('dataset = "fake"', 'dataset = "mnist"\ndownload = false'))
    argv = [
        "train",
        "--config",
        str(config),
        "--output-dir",
        str(tmp_path / "o"),
        "--set",
        override.replace("{marker}", str(marker)),
    ]
    one_error_line(capsys, argv)


def test_a_checkpoints_config_is_checked_as_data(tmp_path, capsys, marker):
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    state = {"model": {}, "config": {"train": {"epochs": code}}, "position": {"epoch": 0}}
    torch.save(state, tmp_path / "last.ckpt")
    line = one_error_line(capsys, ["train", "--resume", str(tmp_path / "last.ckpt")])
    assert "train.epochs must be int" in line


# ------------------------------------------------------- outputs stay in the run dir
@pytest.mark.parametrize(
    "name", ["../escape.ckpt", "a/../../escape.ckpt", "/tmp/escape.ckpt", "..", "sub/../.."]
)
def test_run_dir_names_cannot_escape(tmp_path, name):
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(OutputDirError, match="outside the run directory"):
        run.path(name)
    assert not (tmp_path / "escape.ckpt").exists()


def test_a_symlink_inside_the_run_dir_cannot_lead_out(tmp_path):
    run = RunDir.create(tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run" / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputDirError):
        run.path("link/escape.ckpt")


def test_plain_and_nested_names_stay_inside(tmp_path):
    run = RunDir.create(tmp_path / "run")
    for name in ("best.ckpt", "plots/curves.png", "./metrics.csv", "a/../b.txt"):
        assert (tmp_path / "run").resolve() in run.path(name).parents


def test_trainer_file_names_cannot_escape(tmp_path):
    trainer = fk.Trainer(
        lenet(),
        tiny_data(),
        epochs=1,
        progress=False,
        device="cpu",
        output_dir=str(tmp_path / "run"),
        callbacks=[fk.CSVLogger(filename="../escape.csv")],
    )
    with pytest.raises(OutputDirError):
        trainer.fit()
    with pytest.raises(OutputDirError):
        trainer.save_checkpoint("../escape.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_cli_run_writes_only_inside_its_run_dir(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.toml").write_text(FAKE)
    argv = ["train", "--config", str(work / "run.toml"), "--output-dir", str(work / "run")]
    assert main(argv) == 0
    assert sorted(p.name for p in work.iterdir()) == ["run", "run.toml"]
    names = {p.name for p in (work / "run").iterdir()}
    assert {"config.toml", "last.ckpt", "report.json"} <= names
