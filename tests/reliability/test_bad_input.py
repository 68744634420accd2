"""Bad input is refused clearly, before any training work is lost (issue 12).

Every case gives a :class:`~finetune_kit.errors.FinetuneKitError` subclass whose message names
the problem and the fix. Through the CLI, it is exactly one line on stderr starting with
``finetune-kit: error:`` and exit status 2 (no traceback); the run directory is left as it was
(not created, or empty, for a bad config; untouched when it holds a run).

Expected words are written ``"problem | fix"``: every ``|``-separated part must appear in the
message (case-insensitive). Cases marked ``xfail(strict=True)`` are gaps the library does not
handle yet; each reason says what is missing. They fail (XPASS) as soon as the library is
fixed, so the mark must then be removed.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import finetune_kit as fk
from finetune_kit.cli import main
from finetune_kit.data.idx import write_idx
from finetune_kit.storage import atomic as atomic_module
from finetune_kit.storage import checkpoint as ckpt_module
from finetune_kit.storage.checkpoint import load_checkpoint

FAKE_OPTIONS = (
    "options = {train_size = 48, test_size = 12, num_classes = 3, in_channels = 1, image_size = 16}\n"
)
FAKE = f"""
[data]
dataset = "fake"
val_fraction = 0.25
{FAKE_OPTIONS}[loader]
batch_size = 16
[model]
name = "lenet"
options = {{input_size = 16}}
[optim]
optimizer = "sgd"
scheduler = "constant"
loss = "cross_entropy"
lr = 0.05
[finetune]
strategy = "full"
bn_policy = "eval"
[train]
epochs = 1
device = "cpu"
precision = "32"
progress = false
"""


def write_config(tmp_path: Path, text: str = FAKE) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def error_line(capsys, argv: list[str], *, started: bool = False) -> str:
    """Run the CLI; it must exit 2 with its error on one stderr line (no traceback).

    Before training starts, that line is all of stderr. A fault inside a run that had started
    (``started=True``) comes after the run's own log lines (the start summary, epoch lines).
    """
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 or (started and not any("Traceback" in line for line in err)), err
    assert err[-1].startswith("finetune-kit: error: "), err
    return err[-1]


def assert_says(message: str, words: str) -> None:
    """Every ``|``-separated part of ``words`` is in ``message`` (case-insensitive)."""
    for word in words.split(" | "):
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"


def assert_untouched(run: Path) -> None:
    """Nothing was written: the run directory does not exist or is empty."""
    assert not run.exists() or not any(run.iterdir()), sorted(p.name for p in run.iterdir())


def digest(run: Path) -> dict[str, str]:
    files = sorted(p for p in run.rglob("*") if p.is_file())
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def gap(reason: str):
    """A known gap of the library: the test is right, the code is not (yet)."""
    return pytest.mark.xfail(strict=True, reason=reason)


# ------------------------------------------------------------------ config (CLI)
def case(id: str, edit: str, words: str, marks=()):
    """``edit`` is ``"OLD => NEW"`` (a change to FAKE) or command-line flags (``"--lr 0"``)."""
    if edit.startswith("--"):
        flag, value = edit.split(" ", 1)
        return pytest.param("", "", [flag, value], words, id=id, marks=marks)
    old, new = edit.split(" => ")
    return pytest.param(old, new, [], words, id=id, marks=marks)


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")

CONFIG_CASES = [
    case("typo-key", "epochs = 1 => epochz = 1", "unknown key 'epochz' in [train] | did you mean 'epochs'"),
    case("typo-section", "[train] => [trian]", "unknown section [trian] | did you mean 'train'"),
    case("typo-set-key", "--set optim.lrr=0.1", "unknown key 'lrr' | did you mean 'lr'"),
    case("typo-set-bare-key", "--set lrr=0.1", "unknown key 'lrr' | did you mean 'lr'"),
    case("typo-set-section", "--set optm.lr=0.1", "unknown section 'optm' | did you mean 'optim'"),
    case("set-without-value", "--set optim.lr", "--set expects key=value | optim.lr=0.1"),
    case(
        "typo-model-option",
        "{input_size = 16} => {input_sise = 16}",
        "no option 'input_sise' | did you mean 'input_size'",
    ),
    case(
        "typo-dataset-option",
        "train_size = 48 => train_sise = 48",
        "no option 'train_sise' | did you mean 'train_size'",
    ),
    case("type-epochs-str", 'epochs = 1 => epochs = "three"', "train.epochs must be int | 'three'"),
    case("type-epochs-bool", "epochs = 1 => epochs = true", "train.epochs must be int | true"),
    case("type-lr-str", 'lr = 0.05 => lr = "fast"', "optim.lr must be a number > 0 or \"find\" | 'fast'"),
    case("type-batch-float", "batch_size = 16 => batch_size = 1.5", "loader.batch_size must be int | 1.5"),
    case("type-options-not-table", "{input_size = 16} => 16", "model.options must be a table"),
    case("zero-epochs", "epochs = 1 => epochs = 0", "train.epochs must be >= 1 | got 0"),
    case("zero-batch", "--batch-size 0", "loader.batch_size must be >= 1 | got 0"),
    case("negative-batch", "batch_size = 16 => batch_size = -4", "loader.batch_size must be >= 1 | got -4"),
    case("zero-lr", "--lr 0", "optim.lr must be > 0 | got 0.0"),
    case("negative-lr", "lr = 0.05 => lr = -0.1", "optim.lr must be > 0 | got -0.1"),
    case("nan-lr", "lr = 0.05 => lr = nan", "optim.lr must be > 0 | nan"),
    case("inf-lr", "lr = 0.05 => lr = inf", "optim.lr must be > 0 | inf"),
    case("negative-weight-decay", "--set optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
    case("zero-grad-accum", "--set optim.grad_accum=0", "optim.grad_accum must be >= 1"),
    case("label-smoothing-1.5", "--set optim.label_smoothing=1.5", "optim.label_smoothing must be in [0, 1)"),
    case(
        "val-fraction-1",
        "val_fraction = 0.25 => val_fraction = 1.0",
        "data.val_fraction must be in [0, 1) | 0.1",
    ),
    case("zero-image-size", "image_size = 16 => image_size = 0", "image_size=0 | [1, 8192]"),
    case("zero-classes", "num_classes = 3 => num_classes = 0", "num_classes=0 | [1, "),
    case(
        "precision-typo",
        'precision = "32" => precision = "16-mixd"',
        "train.precision must be one of | did you mean '16-mixed'",
    ),
    case("loader-choice", "--set loader.loader=gpu", "loader.loader must be one of | 'dataloader'"),
    case(
        "bn-policy-typo",
        'bn_policy = "eval" => bn_policy = "evl"',
        "finetune.bn_policy must be one of | did you mean 'eval'",
    ),
    case(
        "unknown-dataset",
        'dataset = "fake" => dataset = "fashon_mnist"',
        "unknown dataset 'fashon_mnist' | did you mean 'fashion_mnist'",
    ),
    case(
        "unknown-model",
        'name = "lenet" => name = "resnet81"',
        "unknown model 'resnet81' | did you mean 'resnet18'",
    ),
    case(
        "unknown-optimizer",
        'optimizer = "sgd" => optimizer = "sgdd"',
        "unknown optimizer 'sgdd' | did you mean 'sgd'",
    ),
    case(
        "unknown-scheduler",
        'scheduler = "constant" => scheduler = "cosin"',
        "unknown scheduler 'cosin' | did you mean 'cosine'",
    ),
    case(
        "unknown-loss",
        'loss = "cross_entropy" => loss = "cross_entropyy"',
        "unknown loss 'cross_entropyy' | did you mean 'cross_entropy'",
    ),
    case(
        "unknown-strategy",
        'strategy = "full" => strategy = "linear_prob"',
        "unknown strategy 'linear_prob' | did you mean 'linear_probe'",
    ),
    case("unknown-weights-name", "--set model.weights=imagenett", "weights='imagenett' | weights=None"),
    case("model-too-small-input", "input_size = 16 => input_size = 8", "lenet input_size must be | >= 16"),
    case("invalid-toml", "[train] => [train", "is not valid TOML | fix the syntax"),
    case("unknown-device", "--device tpu", "unknown device 'tpu' | 'cpu'"),
    case("gpu-index-missing", "--device cuda:99", "cuda:99 | cuda"),
    case("gpu-absent", "--device cuda", "no cuda gpu is available | device='cpu'", marks=NO_GPU),
]


@pytest.mark.parametrize(("old", "new", "argv", "words"), CONFIG_CASES)
def test_bad_config_cli(tmp_path, capsys, old, new, argv, words):
    assert old in FAKE
    config = write_config(tmp_path, FAKE.replace(old, new) if old else FAKE)
    run = tmp_path / "out"
    line = error_line(capsys, ["train", "--config", str(config), "--output-dir", str(run), *argv])
    assert_says(line, words)
    assert_untouched(run)


def test_config_cases_are_many():
    assert len(CONFIG_CASES) >= 40


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        pytest.param(
            "train --config nope.toml",
            "config file not found: nope.toml | check the path",
            id="missing-config",
        ),
        pytest.param("train", "needs --config FILE | --resume", id="no-config"),
        pytest.param(
            "train --config {tmp}",
            "cannot read config file | give the path of a .toml file",
            id="config-is-directory",
        ),
        pytest.param("list modles", "unknown kind 'modles' | did you mean 'models'", id="list-kind-typo"),
    ],
)
def test_bad_command_line(tmp_path, capsys, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv.split()]
    assert_says(error_line(capsys, argv), words)


def test_debug_shows_the_traceback_instead(capsys):
    assert main(["--debug", "train", "--config", "nope.toml"]) == 2
    assert "Traceback" in capsys.readouterr().err


# -------------------------------------------------------------------- data files
MNIST_CONFIG = (
    FAKE.replace('dataset = "fake"', 'dataset = "mnist"\nroot = "{root}"\ndownload = false')
    .replace(FAKE_OPTIONS, "")
    .replace("options = {input_size = 16}", "options = {input_size = 28}")
)
IDX = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def write_mnist(root: Path, n: int = 20, labels: torch.Tensor | None = None) -> Path:
    """Tiny but valid MNIST IDX files (the same 20 images for train and test)."""
    root.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n, dtype=torch.uint8) % 10 if labels is None else labels
    for split in ("train", "test"):
        write_idx(root / IDX[f"{split}_x"], images)
        write_idx(root / IDX[f"{split}_y"], labels)
    return root


def truncated_images(root: Path) -> None:
    raw = gzip.decompress(write_mnist(root).joinpath(IDX["train_x"]).read_bytes())
    (root / IDX["train_x"]).write_bytes(gzip.compress(raw[: len(raw) // 2]))


def corrupt_gzip(root: Path) -> None:
    path = write_mnist(root) / IDX["train_x"]
    path.write_bytes(path.read_bytes()[:100])


def wrong_magic(root: Path) -> None:
    (write_mnist(root) / IDX["train_x"]).write_bytes(gzip.compress(b"<html>404</html>" * 40))


def label_out_of_range(root: Path) -> None:
    write_mnist(root, labels=torch.tensor([0, 1, 12] + [2] * 17, dtype=torch.uint8))


def count_mismatch(root: Path) -> None:
    write_idx(write_mnist(root) / IDX["train_y"], torch.zeros(7, dtype=torch.uint8))


def missing_file(root: Path) -> None:
    (write_mnist(root) / IDX["test_y"]).unlink()


def empty_dir(root: Path) -> None:
    root.mkdir()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(
            truncated_images, "train-images-idx3-ubyte | truncated | download it again", id="truncated-idx"
        ),
        pytest.param(
            corrupt_gzip,
            "train-images-idx3-ubyte | corrupt or truncated | download it again",
            id="corrupt-gzip",
        ),
        pytest.param(wrong_magic, "not an IDX file | download it again", id="wrong-magic"),
        pytest.param(label_out_of_range, "label 12 is outside [0, 10) | corrupt", id="label-out-of-range"),
        pytest.param(
            count_mismatch, "20 images but | 7 labels | replace the mismatched one", id="count-mismatch"
        ),
        pytest.param(missing_file, "t10k-labels-idx1-ubyte | root=", id="missing-file"),
        pytest.param(empty_dir, "mnist | root=", id="missing-data"),
    ],
)
def test_bad_data_files_cli(tmp_path, capsys, monkeypatch, make, words):
    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", str(tmp_path / "no-system-data"))
    root = tmp_path / "mnist"
    make(root)
    config = write_config(tmp_path, MNIST_CONFIG.replace("{root}", str(root)))
    run = tmp_path / "out"
    line = error_line(capsys, ["train", "--config", str(config), "--output-dir", str(run)])
    assert_says(line, words)
    assert_untouched(run)


def test_good_mnist_files_train(tmp_path):
    """The control: the same files, intact, train (so the cases above fail for their reason)."""
    root = write_mnist(tmp_path / "mnist")
    config = write_config(tmp_path, MNIST_CONFIG.replace("{root}", str(root)))
    argv = ["train", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--no-test"]
    assert main(argv) == 0


def test_corrupt_cifar_pickle_cli(tmp_path, capsys):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (root / name).write_bytes(b"\x80\x02}q\x00(X\x04\x00\x00")  # a pickle cut short
    text = (
        MNIST_CONFIG.replace('"mnist"', '"cifar10"')
        .replace("{root}", str(root))
        .replace("input_size = 28", "input_size = 32")
    )
    argv = ["train", "--config", str(write_config(tmp_path, text)), "--output-dir", str(tmp_path / "out")]
    assert_says(
        error_line(capsys, argv),
        "cifar-10-batches-py | not a readable CIFAR pickle | extract the archive again",
    )


def undecodable_image(root: Path) -> None:
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "a.png").write_bytes(b"not a png")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(Path.mkdir, "holds no class folders | one folder per class", id="no-classes"),
        pytest.param(lambda root: None, "does not exist", id="missing-folder"),
        pytest.param(
            undecodable_image,
            "a.png | not a readable PNG or JPEG | replace or remove",
            id="undecodable-image",
        ),
    ],
)
def test_bad_image_folder_api(tmp_path, make, words):
    root = tmp_path / "images"
    make(root)
    with pytest.raises(fk.DataError) as info:
        fk.create_datasets("image_folder", root=str(root))
    assert_says(str(info.value), words)


# ------------------------------------------------------------ in-memory data (API)
X = np.random.default_rng(0).random((24, 8, 8)).astype(np.float32)
Y = np.arange(24) % 3


def with_value(value: float) -> np.ndarray:
    x = X.copy()
    x[5, 3, 3] = value
    return x


@pytest.mark.parametrize(
    ("train", "kwargs", "words"),
    [
        pytest.param((with_value(np.nan), Y), {}, "NaN | train images", id="nan-images"),
        pytest.param((with_value(np.inf), Y), {}, "inf | train images", id="inf-images"),
        pytest.param((with_value(-np.inf), Y), {}, "inf | train images", id="minus-inf-images"),
        pytest.param(
            (X, Y + 3),
            {"class_names": ["a", "b", "c"]},
            "label 5 is outside [0, 3) | fix the labels",
            id="label-out-of-range",
        ),
        pytest.param((X, Y - 1), {}, "label -1 is outside | fix the labels", id="negative-label"),
        pytest.param((X, Y[:5]), {}, "24 images but 5 labels", id="count-mismatch"),
        pytest.param((X, Y.astype(np.float64)), {}, "integer class indices", id="float-labels"),
        pytest.param((X * 255, Y), {}, "expected [0, 1] | divide by 255", id="float-0-255"),
        pytest.param((X[:0], Y[:0]), {}, "no images | at least one", id="empty-dataset"),
        pytest.param(
            (X[:, :, :, None].repeat(2, axis=3), Y), {}, "cannot tell the channel axis", id="two-channels"
        ),
    ],
)
def test_bad_tensors_api(train, kwargs, words):
    with pytest.raises(fk.DataError) as info:
        fk.create_datasets("tensors", train=train, val_fraction=0, **kwargs)
    assert_says(str(info.value), words)


# ---------------------------------------------------------- model / trainer (API)
@pytest.fixture(scope="module")
def data():
    return fk.create_datasets(
        "fake", num_classes=3, in_channels=1, image_size=16, train_size=48, test_size=12, val_fraction=0.25
    )


def lenet(**kw):
    options = dict(num_classes=3, in_channels=1, input_size=16)
    options.update(kw)
    return fk.create_model("lenet", **options)


def fit(model, data, run):
    return fk.Trainer(model, data, output_dir=run, device="cpu", progress=False).fit()


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        pytest.param(
            lambda d, r: fk.Trainer(lenet(), d, epochz=3),
            fk.ConfigError,
            "unknown option 'epochz' | did you mean 'epochs'",
            id="trainer-typo",
        ),
        pytest.param(
            lambda d, r: fk.Trainer(lenet(), d, lr=-1.0),
            fk.ConfigError,
            "optim.lr must be > 0",
            id="trainer-negative-lr",
        ),
        pytest.param(
            lambda d, r: fk.Trainer(lenet(), d, batch_size=0),
            fk.ConfigError,
            "loader.batch_size must be >= 1",
            id="trainer-zero-batch",
        ),
        pytest.param(
            lambda d, r: fk.Trainer(lenet(), d, device="cuda:99"),
            fk.DeviceError,
            "cuda:99",
            id="trainer-missing-gpu",
        ),
        pytest.param(
            lambda d, r: fit(lenet(in_channels=3), d, r),
            fk.ShapeError,
            "1-channel | in_channels=1",
            id="trainer-channel-mismatch",
        ),
        pytest.param(
            lambda d, r: fit(lenet(num_classes=2), d, r),
            fk.ShapeError,
            "3 classes | num_classes=3",
            id="trainer-class-mismatch",
        ),
        pytest.param(
            lambda d, r: fit(lenet(input_size=32), d, r),
            fk.ShapeError,
            "32x32 | input_size=(16, 16)",
            id="trainer-size-mismatch",
        ),
        pytest.param(
            lambda d, r: fk.create_model("resnet81", num_classes=3),
            fk.UnknownNameError,
            "did you mean 'resnet18'",
            id="model-unknown",
        ),
        pytest.param(
            lambda d, r: fk.create_model("lenet", num_classes=0),
            fk.ConfigError,
            "num_classes | >= 1",
            id="model-zero-classes",
        ),
        pytest.param(
            lambda d, r: fk.create_model("lenet", num_classes=3, input_sise=16),
            fk.ConfigError,
            "did you mean 'input_size'",
            id="model-option-typo",
        ),
        pytest.param(
            lambda d, r: fk.create_datasets("fashon_mnist"),
            fk.UnknownNameError,
            "did you mean 'fashion_mnist'",
            id="dataset-unknown",
        ),
        pytest.param(
            lambda d, r: fk.create_datasets("fake", val_fraction=1.0),
            fk.ConfigError,
            "[0, 1)",
            id="dataset-val-fraction",
        ),
        pytest.param(
            lambda d, r: fk.create_loss("focall"),
            fk.UnknownNameError,
            "did you mean 'focal'",
            id="loss-unknown",
        ),
        pytest.param(
            lambda d, r: fk.apply_strategy(lenet(), "lora_"),
            fk.UnknownNameError,
            "did you mean 'lora'",
            id="strategy-unknown",
        ),
        pytest.param(
            lambda d, r: fk.apply_overrides(fk.RunConfig(), ["train.epocs=3"]),
            fk.ConfigError,
            "did you mean 'epochs'",
            id="override-typo",
        ),
    ],
)
def test_bad_api_input(data, tmp_path, build, error, words):
    run = tmp_path / "run"
    with pytest.raises(error) as info:
        build(data, str(run))
    assert_says(str(info.value), words)
    assert not list(run.glob("*.ckpt"))  # refused before any checkpoint was written


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished one-epoch CLI run of FAKE (lenet, 3 classes)."""
    root = tmp_path_factory.mktemp("trained")
    argv = ["train", "--config", str(write_config(root)), "--output-dir", str(root / "run"), "--no-test"]
    assert main(argv) == 0
    return root / "run"


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


OTHER_DATA = "data.options={train_size=48, test_size=12, num_classes=4, in_channels=1, image_size=16}"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        pytest.param(
            ["train", "--resume", "{run}/missing.ckpt"],
            "checkpoint not found | check the path",
            id="resume-missing",
        ),
        pytest.param(
            ["train", "--resume", "{trunc}"],
            "truncated or corrupted | earlier checkpoint",
            id="resume-truncated",
        ),
        pytest.param(
            ["train", "--resume", "{run}/last.ckpt", "--set", "model.name=convnet"],
            "written for model 'lenet' | has 'convnet' | resume with the same model",
            id="resume-other-architecture",
        ),
        pytest.param(
            ["train", "--resume", "{run}/last.ckpt", "--set", OTHER_DATA],
            "split.json was made for other data | data.root",
            id="resume-other-dataset",
        ),
        pytest.param(
            ["evaluate", "--checkpoint", "{trunc}"],
            "truncated or corrupted | earlier checkpoint",
            id="evaluate-truncated",
        ),
        pytest.param(
            ["evaluate", "--checkpoint", "{plain}"],
            "not a finetune_kit checkpoint | weights=PATH",
            id="evaluate-plain-state-dict",
        ),
        pytest.param(
            ["evaluate", "--checkpoint", "{empty}"],
            "no checkpoint in run directory | last.ckpt",
            id="evaluate-empty-dir",
        ),
        pytest.param(
            ["evaluate", "--checkpoint", "{run}/config.toml"],
            "cannot read checkpoint | not a pytorch file | a text file",
            id="evaluate-not-a-checkpoint",
        ),
    ],
)
def test_bad_checkpoint_cli(run_copy, tmp_path, capsys, argv, words):
    shutil.copy(run_copy / "last.ckpt", tmp_path / "trunc.ckpt")
    torch.save(lenet().state_dict(), tmp_path / "plain.ckpt")
    (tmp_path / "empty").mkdir()
    places = {
        "{run}": run_copy,
        "{trunc}": truncate(tmp_path / "trunc.ckpt"),
        "{plain}": tmp_path / "plain.ckpt",
        "{empty}": tmp_path / "empty",
    }
    for key, value in places.items():
        argv = [a.replace(key, str(value)) for a in argv]
    before = digest(run_copy)
    assert_says(error_line(capsys, argv + ["--no-test"] * (argv[0] == "train")), words)
    assert digest(run_copy) == before  # the run's checkpoints were not touched


def test_checkpoint_of_other_classes_api(run_copy):
    four = fk.create_datasets(
        "fake", num_classes=4, in_channels=1, image_size=16, train_size=48, test_size=12
    )
    trainer = fk.Trainer(lenet(num_classes=4), four, progress=False, device="cpu", output_dir=str(run_copy))
    with pytest.raises(fk.CheckpointError) as info:
        trainer.fit(resume=run_copy / "last.ckpt")
    assert_says(str(info.value), "with 3 classes | 4 classes | same model")


@pytest.mark.parametrize(
    ("source", "kwargs", "words"),
    [
        pytest.param(
            "convnet.pth", {}, "none of the | another architecture", id="weights-other-architecture"
        ),
        pytest.param("trunc.pth", {}, "cannot read | truncated", id="weights-truncated"),
        pytest.param("missing.pth", {}, "does not exist | pass an existing", id="weights-missing"),
        pytest.param(
            "run",
            {"strict": True},
            "strict load refused | fc1.weight | strict=False",
            id="weights-strict-other-model",
        ),
    ],
)
def test_bad_weights_api(run_copy, tmp_path, source, kwargs, words):
    torch.save(fk.create_model("convnet", num_classes=3).state_dict(), tmp_path / "convnet.pth")
    (tmp_path / "trunc.pth").write_bytes((run_copy / "last.ckpt").read_bytes()[:1000])
    model = lenet(input_size=32) if kwargs else lenet()  # strict: lenet at 32 px, fc1 differs
    with pytest.raises(fk.CheckpointError) as info:
        fk.load_weights(model, str(tmp_path / source), **kwargs)
    assert_says(str(info.value), words)


def test_weights_of_another_architecture_via_create_model(run_copy):
    with pytest.raises(fk.CheckpointError) as info:
        fk.create_model("convnet", num_classes=3, in_channels=1, weights=str(run_copy))
    assert_says(str(info.value), "none of the | another architecture")


# ----------------------------------------------------------------- output directory
@pytest.mark.parametrize(
    ("where", "words"),
    [
        pytest.param("{run}", "already exists | --resume | --overwrite", id="existing-run"),
        pytest.param(
            "{file}/run", "cannot write to run directory | choose another --output-dir", id="under-a-file"
        ),
        pytest.param("{file}", "exists and is a file | choose a directory", id="is-a-file"),
        pytest.param(
            "{other}",
            "does not look like a run directory | choose another --output-dir",
            id="overwrite-other-files",
        ),
    ],
)
def test_bad_output_dir_cli(run_copy, tmp_path, capsys, where, words):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    places = {"{run}": run_copy, "{file}": tmp_path / "file", "{other}": tmp_path / "other"}
    out = where
    for key, value in places.items():
        out = out.replace(key, str(value))
    before = digest(run_copy), (tmp_path / "other" / "notes.txt").read_text()
    extra = ["--overwrite"] if where == "{other}" else []
    argv = ["train", "--config", str(write_config(tmp_path)), "--output-dir", out, *extra]
    assert_says(error_line(capsys, argv), words)
    assert (digest(run_copy), (tmp_path / "other" / "notes.txt").read_text()) == before


@pytest.fixture
def tiny_disk(tmp_path):
    """Mount a small tmpfs (needs root); yields a function that mounts one of a given size."""
    mounts = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip()}); see the simulated test")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


@pytest.mark.parametrize(
    ("size", "fill", "words"),
    [
        pytest.param(
            "16k", 16 * 1024, "cannot write to run directory | no space left | free space", id="full"
        ),
        pytest.param("8k", 0, "no space left | free", id="room-for-no-run-files"),
        pytest.param(
            "64k",
            0,
            "could not write | .ckpt | no space left | free some disk space",
            id="room-for-no-checkpoint",
        ),
    ],
)
def test_full_disk_cli(tiny_disk, tmp_path, capsys, size, fill, words):
    disk = tiny_disk(size)
    if fill:
        with (disk / "filler").open("wb") as handle:
            try:
                handle.write(b"x" * fill)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    argv = ["train", "--config", str(write_config(tmp_path)), "--output-dir", str(disk / "run")]
    assert_says(error_line(capsys, argv, started=True), words)  # the last case fails mid-run
    assert not [p.name for p in disk.rglob("*.tmp")]  # no temp file left behind
    for path in disk.rglob("*.ckpt"):
        load_checkpoint(path)  # whatever is there is whole


_fdopen = os.fdopen


class _FullFile(io.RawIOBase):
    """A file on a disk with ``room`` bytes left: writes past that fail with ENOSPC."""

    def __init__(self, fd: int, room: int) -> None:
        self.handle = _fdopen(fd, "wb")
        self.room = room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.handle.fileno()

    def flush(self) -> None:
        if not self.handle.closed:
            self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        super().close()


@pytest.mark.parametrize(
    "room",
    [
        pytest.param(0, id="nothing-written"),
        pytest.param(20_000, id="part-written"),
    ],
)
def test_disk_full_while_saving_is_simulated_portably(tmp_path, monkeypatch, room):
    """The tmpfs test without root: the checkpoint file accepts only ``room`` bytes."""
    path = tmp_path / "last.ckpt"
    ckpt_module.save_checkpoint({"model": {"w": torch.zeros(1)}}, path)
    before = path.read_bytes()
    monkeypatch.setattr(atomic_module.os, "fdopen", lambda fd, mode: _FullFile(fd, room))
    with pytest.raises(fk.CheckpointError) as info:
        ckpt_module.save_checkpoint({"model": {"w": torch.zeros(50_000)}}, path)
    assert_says(str(info.value), "no space left | free some disk space | unchanged")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# ------------------------------------------------------------------ numerical faults
def test_nan_loss_stops_the_cli_and_keeps_a_good_checkpoint(tmp_path, capsys):
    text = FAKE.replace("lr = 0.05", "lr = 1e6").replace("epochs = 1", "epochs = 5")
    run = tmp_path / "out"
    argv = [
        "train",
        "--config",
        str(write_config(tmp_path, text)),
        "--output-dir",
        str(run),
        "--set",
        "train.log_every=1",
        "--set",
        "train.checkpoint_every=1",
    ]
    line = error_line(capsys, argv, started=True)
    assert_says(line, "training loss became nan | last good checkpoint | lower the learning rate")
    state = load_checkpoint(run / "last.ckpt")
    assert state["position"]["global_step"] >= 1
    bad = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    assert not bad, f"last.ckpt holds non-finite weights: {bad}"


class InfLogits(torch.nn.Module):
    """Logits of +-3e38: the cross-entropy of every sample not of class 0 overflows to inf."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((x.shape[0], self.num_classes), -3e38)
        logits[:, 0] = 3e38
        return logits * self.scale


def test_inf_loss_stops_with_a_clear_error(data, tmp_path):
    trainer = fk.Trainer(
        InfLogits(3), data, progress=False, device="cpu", log_every=1, output_dir=str(tmp_path / "run")
    )
    with pytest.raises(fk.TrainingError) as info:
        trainer.fit()
    assert_says(str(info.value), "loss became inf | lower the learning rate")
    assert not list((tmp_path / "run").glob("*.ckpt"))  # nothing after the fault was saved


class Overflowing(torch.nn.Module):
    """A linear model whose fp16 gradients overflow under GradScaler's first loss scales."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_channels * 16 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * 1e3


@pytest.mark.cuda
def test_grad_scaler_skipped_steps_are_counted_and_reported(data, tmp_path):
    """16-mixed uses a GradScaler on CUDA; the steps it skips (inf/NaN gradients) are counted.

    Expected API (for Trainer._optimizer_step: compare ``scaler.get_scale()`` before and after
    ``scaler.update()``; a lower scale means the step was skipped): ``trainer.state.skipped_steps``
    (the total) and ``skipped_steps`` in each epoch row (so in metrics.csv).
    """
    trainer = fk.Trainer(
        Overflowing(3, 1),
        data,
        precision="16-mixed",
        device="cuda",
        epochs=2,
        batch_size=4,
        lr=1e-4,
        progress=False,
        output_dir=str(tmp_path / "run"),
    )
    history = trainer.fit()
    skipped = trainer.state.skipped_steps
    assert skipped >= 1
    assert sum(history["skipped_steps"]) == skipped
    assert trainer.scaler.get_scale() <= 2.0**16 / 2**skipped  # halved once per skip
