"""Config: TOML loading, type and range checks, unknown keys with suggestions, overrides."""

from __future__ import annotations

import pytest

from finetune_kit.config import RunConfig, load_config, save_config
from finetune_kit.config.overrides import apply_overrides
from finetune_kit.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_load_full_config(tmp_path):
    path = write(
        tmp_path,
        """
[data]
dataset = "fashion_mnist"
val_fraction = 0.2
[loader]
batch_size = 64
[model]
name = "convnet"
[optim]
lr = 1          # an int where a float is expected is accepted
scheduler = "onecycle"
[train]
epochs = 3
precision = "bf16-mixed"
""",
    )
    cfg = load_config(path)
    assert cfg.data.val_fraction == 0.2
    assert cfg.loader.batch_size == 64
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and cfg.train.precision == "bf16-mixed"
    assert cfg.model.name == "convnet"


def test_defaults_when_sections_are_missing(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg == RunConfig()


def test_unknown_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "[optim]\nlearning_rat = 0.1\n[train]\nepochs = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rat' in \\[optim\\]"):
        load_config(path)
    path = write(tmp_path, "[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_config(path)


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError, match="unknown section \\[optimizer\\].*Did you mean 'optim'"):
        load_config(write(tmp_path, "[optimizer]\nlr = 0.1\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nepochs = 'three'\n", "train.epochs must be int"),
        ("[train]\nepochs = 0\n", "train.epochs must be >= 1"),
        ("[optim]\nlr = -0.1\n", "optim.lr must be > 0"),
        ("[optim]\nlr = nan\n", "optim.lr must be > 0"),
        ("[loader]\nbatch_size = -4\n", "loader.batch_size must be >= 1"),
        ("[loader]\nbatch_size = 1.5\n", "loader.batch_size must be int"),
        ("[train]\nprecision = 'fp8'\n", "train.precision must be one of"),
        ("[data]\nval_fraction = 1.5\n", "data.val_fraction must be in"),
        ("[train]\ndeterministic = 'yes'\n", "train.deterministic must be bool"),
        ("[optim]\nema = 2.0\n", "optim.ema must be a decay"),
        ("[finetune]\nbn_policy = 'frozen'\n", "finetune.bn_policy must be one of"),
        ("[optim]\nlr = 'fnd'\n", 'optim.lr must be a number > 0 or "find"'),
        ("[train]\nverbosity = 3\n", "train.verbosity must be 0 .silent., 1"),
        ("[train]\nverbosity = true\n", "train.verbosity must be int"),
        (
            "[train]\nloggers = ['csv', 'tensorbord']\n",
            "train.loggers must be one of.*Did you mean 'tensorboard'",
        ),
        ("[train]\nplots = 'yes'\n", "train.plots must be bool or None"),
        ("[train]\nthreads = 0\n", "train.threads must be a positive integer or 'auto'"),
        ("[train]\nthreads = 'all'\n", "train.threads must be a positive integer or 'auto'"),
        ("[train]\nthreads = true\n", "train.threads must be int or str"),
    ],
)
def test_bad_values_name_key_and_expectation(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[train\nepochs = 1"))
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "nope.toml")


def test_observation_keys_and_lr_find(tmp_path):
    text = "[optim]\nlr = 'find'\n[train]\nverbosity = 2\nloggers = ['json', 'tensorboard']\nplots = false\n"
    cfg = load_config(write(tmp_path, text))
    assert (cfg.optim.lr, cfg.train.verbosity, cfg.train.loggers, cfg.train.plots) == (
        "find",
        2,
        ["json", "tensorboard"],
        False,
    )
    defaults = load_config(write(tmp_path, ""))
    assert (defaults.train.verbosity, defaults.train.loggers, defaults.train.plots) == (1, ["csv"], None)


def test_precision_accepts_integer_32(tmp_path):
    assert load_config(write(tmp_path, "[train]\nprecision = 32\n")).train.precision == "32"


def test_threads_and_auto_precision(tmp_path):
    train = load_config(write(tmp_path, "[train]\nthreads = 2\nprecision = 'auto'\n")).train
    assert (train.threads, train.precision) == (2, "auto")
    assert load_config(write(tmp_path, "[train]\nepochs = 1\n")).train.threads == "auto"


def test_overrides_dotted_bare_and_strings():
    cfg = apply_overrides(
        RunConfig(),
        [
            "optim.lr=0.2",
            "epochs=7",
            "model.name=resnet18",
            'train.device="cpu"',
            "data.options={train_size = 10}",
        ],
    )
    assert cfg.optim.lr == 0.2
    assert cfg.train.epochs == 7
    assert cfg.model.name == "resnet18"
    assert cfg.train.device == "cpu"
    assert cfg.data.options == {"train_size": 10}


def test_override_errors():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(RunConfig(), ["optim.lr"])
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        apply_overrides(RunConfig(), ["epoch=3"])
    with pytest.raises(ConfigError, match="unknown section 'optimizer'"):
        apply_overrides(RunConfig(), ["optimizer.lr=3"])
    with pytest.raises(ConfigError, match="several sections"):
        apply_overrides(RunConfig(), ["options={}"])
    with pytest.raises(ConfigError, match="train.epochs must be >= 1"):
        apply_overrides(RunConfig(), ["train.epochs=0"])


def test_save_and_load_round_trip(tmp_path):
    cfg = apply_overrides(RunConfig(), ["optim.lr=0.3", "optim.ema=0.99", "data.options={a = 1}"])
    save_config(cfg, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == cfg


def test_config_is_data_never_code(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"[model]\nname = \"__import__('os').system('touch {marker}')\"\n")
    cfg = load_config(path)
    assert cfg.model.name.startswith("__import__")
    assert not marker.exists()


def test_a_tune_section_is_refused_with_the_command_that_reads_it():
    with pytest.raises(
        ConfigError, match=r"\[tune\] is a search space for `finetune-kit tune --config FILE`"
    ):
        RunConfig.from_dict({"tune": {"optim.lr": [0.1]}, "train": {"epochs": 1}}, source="run.toml")
