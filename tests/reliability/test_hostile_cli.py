"""Hostile command lines: config files, --set values and flags of every command.

The checks every case passes are described in tests/reliability/hostile.py.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.reliability.hostile import CONFIG, Ctx, cli_refusal, digest, says

FAKE_OPTIONS = (
    "options = {train_size = 48, test_size = 12, num_classes = 3, in_channels = 1, image_size = 16}"
)


def case(kind, id, make, words):
    return pytest.param(make, words, id=f"{kind}/{id}")


def train(c: Ctx, *extra: str, config=None) -> list[str]:
    return ["train", "--config", str(config or c.config()), "--output-dir", str(c.out), *extra]


def with_config(data: bytes | str):
    return lambda c: train(c, config=c.write("given.toml", data))


def edited(old: str, new: str):
    return lambda c: train(c, config=c.config(old, new))


def setting(*pairs: str):
    return lambda c: train(c, *[x for p in pairs for x in ("--set", p)])


def image_folder_config(c: Ctx, options: str) -> list[str]:
    root = c.tmp / "images"
    shutil.copytree(c.world.folder, root)
    text = CONFIG.replace('dataset = "fake"', f'dataset = "image_folder"\nroot = {json.dumps(str(root))}')
    text = text.replace(
        "options = {train_size = 48, test_size = 12, num_classes = 3, in_channels = 1, image_size = 16}",
        f"options = {options}",
    )
    return train(c, config=c.write("folder.toml", text))


def predict_image(make_image):
    def make(c: Ctx):
        return ["predict", "--checkpoint", str(c.world.export), str(make_image(c))]

    return make


def bomb(c: Ctx):
    path = c.path("huge.png")
    Image.new("1", (20000, 20000)).save(path)
    return path


def export_to(make_target, *flags: str):
    def make(c: Ctx):
        return ["export", "--checkpoint", str(c.world.run), "--output", str(make_target(c)), *flags]

    return make


def unrelated_json(c: Ctx):
    c.write("weights.json", '{"my": "notes"}')
    return c.path("weights.safetensors")


def unrelated_safetensors(c: Ctx):
    from safetensors.numpy import save_file

    directory = c.path("deploy")
    directory.mkdir()
    save_file({"w": np.zeros(3, np.float32)}, str(directory / "model.safetensors"))
    return directory


def unrelated_model_json(c: Ctx):
    directory = c.path("deploy")
    c.write("deploy/model.json", '{"format": "another.tool", "weights_file": "model.safetensors"}')
    return directory


def linked_model_json(c: Ctx):
    directory = c.path("deploy")
    directory.mkdir()
    (directory / "model.json").symlink_to(c.write("mine.json", "{}"))
    return directory


CONFIG_CASES = [
    case(
        "config",
        "utf8-bom",
        with_config(b"\xef\xbb\xbf" + CONFIG.encode()),
        "byte-order mark (bom) | save the file as utf-8 without bom",
    ),
    case(
        "config",
        "latin-1",
        with_config("[data]\n# caf\xe9\n".encode("latin-1")),
        "not utf-8 text | byte 0xe9 | save it as utf-8",
    ),
    case("config", "an-image", lambda c: train(c, config=c.world.image), "not utf-8 text | save it as utf-8"),
    case(
        "config",
        "nested-array",
        with_config("x = " + "[" * 5000 + "]" * 5000 + "\n"),
        "nest too deeply | fix the file",
    ),
    case(
        "config",
        "nested-table",
        with_config("[data]\noptions = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"),
        "nest too deeply",
    ),
    case(
        "config",
        "fake-image-size",
        edited("image_size = 16}", "image_size = 100000}"),
        "image_size=100000 | [1, 8192]",
    ),
    case(
        "config",
        "fake-train-size",
        edited("train_size = 48", "train_size = 1000000000000"),
        "train_size=1000000000000 | [1, 10,000,000]",
    ),
    case(
        "config",
        "fake-memory",
        with_config(
            CONFIG.replace("train_size = 48", "train_size = 9000000").replace(
                "image_size = 16}", "image_size = 64}"
            )
        ),
        "gib of memory | fewer or smaller images",
    ),
    case(
        "config",
        "fake-channels",
        edited("in_channels = 1", "in_channels = 2"),
        "in_channels=2: expected 1 or 3",
    ),
    case("config", "fake-size-text", edited("image_size = 16}", 'image_size = "16"}'), "image_size='16'"),
    case(
        "config",
        "folder-workers",
        lambda c: image_folder_config(c, "{num_workers = -1}"),
        "num_workers=-1 | integer >= 1",
    ),
    case(
        "config",
        "folder-test-fraction",
        lambda c: image_folder_config(c, "{test_fraction = 1.5}"),
        "test_fraction=1.5 | (0, 1)",
    ),
    case(
        "config",
        "constant-images",
        lambda c: _flat(image_folder_config(c, "{test_fraction = 0.4, image_size = 16}"), c),
        "normalisation std of channel 0 | same value | check that the right images",
    ),
    case(
        "config",
        "seed-huge",
        setting("train.seed=18446744073709551616"),
        "seed=18446744073709551616 | [0, 2**64 - 1]",
    ),
    case(
        "config",
        "seed-flag-huge",
        lambda c: train(c, "--seed", str(2**70)),
        "seed=1180591620717411303424 | 64 bits",
    ),
    case(
        "config",
        "set-two-lines",
        setting("optim.lr=0.1\nepochs = 7"),
        "spans several lines | one value per --set",
    ),
    case(
        "config", "set-table-line", setting('model.name="lenet"\n[train]\nepochs = 99'), "spans several lines"
    ),
    case(
        "config",
        "root-nul",
        with_config(
            CONFIG.replace('dataset = "fake"', 'dataset = "mnist"\nroot = "im\\u0000ages"').replace(
                FAKE_OPTIONS, ""
            )
        ),
        "root='im\\x00ages' contains a nul byte | retype",
    ),
    case(
        "config",
        "nul-config-path",
        lambda c: ["train", "--config", "run\0.toml"],
        "contains a nul byte | retype it",
    ),
    case(
        "config", "nul-output-dir", lambda c: [*train(c)[:-2], "--output-dir", "ou\0t"], "contains a nul byte"
    ),
    case(
        "config",
        "escape-in-path",
        lambda c: ["train", "--config", "\x1b[2Jevil.toml"],
        "config file not found | \\x1b[2jevil.toml",
    ),
]


def _flat(argv: list[str], c: Ctx) -> list[str]:
    """Make every image of the copied folder one flat grey (every pixel 128)."""
    for path in (c.tmp / "images").rglob("*.png"):
        Image.new("L", (8, 8), 128).save(path)
    return argv


def cut_noise(c: Ctx):
    """A PNG of random pixels, cut in the middle of its image data."""
    path = c.path("cut.png")
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    path.write_bytes(path.read_bytes()[:150])
    return path


FLAG_CASES = [
    case(
        "flags",
        "top-k-zero",
        lambda c: ["predict", "--checkpoint", str(c.world.export), "--top-k", "0", str(c.world.image)],
        "top_k must be an integer >= 1",
    ),
    case(
        "flags",
        "top-k-negative",
        lambda c: ["predict", "--checkpoint", str(c.world.export), "--top-k", "-3", str(c.world.image)],
        "top_k must be an integer >= 1 | -3",
    ),
    case("flags", "predict-bomb", predict_image(bomb), "huge.png | decompression bomb | shrink the image"),
    case("flags", "predict-directory", predict_image(lambda c: c.tmp), "does not exist (or is not a file)"),
    case(
        "flags",
        "predict-text",
        predict_image(lambda c: c.write("notes.png", "hello")),
        "notes.png | not a readable png or jpeg | replace or remove",
    ),
    case(
        "flags",
        "predict-empty",
        predict_image(lambda c: c.write("empty.jpg", b"")),
        "empty.jpg | not a readable png or jpeg",
    ),
    case("flags", "predict-cut", predict_image(cut_noise), "cut.png | not a readable png"),
    case(
        "flags",
        "predict-nul",
        lambda c: ["predict", "--checkpoint", str(c.world.export), "im\0age.png"],
        "contains a nul byte",
    ),
    case(
        "flags",
        "predict-device",
        lambda c: ["predict", "--checkpoint", str(c.world.export), "--device", "tpu", str(c.world.image)],
        "unknown device 'tpu'",
    ),
    case(
        "flags",
        "export-nul",
        lambda c: ["export", "--checkpoint", str(c.world.run), "--output", "ou\0t"],
        "contains a nul byte",
    ),
    case("flags", "list-nul", lambda c: ["list", "models", "res\0net*"], "contains a nul byte"),
    case(
        "flags",
        "evaluate-export-dir",
        lambda c: ["evaluate", "--checkpoint", str(c.world.export)],
        "no checkpoint in run directory",
    ),
    case(
        "overwrite",
        "foreign-json",
        export_to(unrelated_json, "--overwrite"),
        "weights.json | not part of a finetune_kit export | nothing was written",
    ),
    case(
        "overwrite",
        "foreign-weights",
        export_to(unrelated_safetensors, "--overwrite"),
        "model.safetensors | not part of a finetune_kit export",
    ),
    case(
        "overwrite",
        "foreign-model-json",
        export_to(unrelated_model_json, "--overwrite"),
        "model.json | not part of a finetune_kit export",
    ),
    case(
        "overwrite",
        "linked-json",
        export_to(linked_model_json, "--overwrite"),
        "model.json | not part of a finetune_kit export",
    ),
    case(
        "overwrite",
        "refused-without-flag",
        export_to(unrelated_json),
        "refusing to overwrite | weights.json | overwrite=true",
    ),
    case(
        "overwrite",
        "onto-a-file",
        export_to(lambda c: c.write("taken", "mine")),
        "is an existing file | directory",
    ),
]


@pytest.mark.parametrize(("make", "words"), CONFIG_CASES + FLAG_CASES)
def test_hostile_command_line_is_refused_clearly(ctx, capsys, monkeypatch, make, words):
    monkeypatch.setenv("FINETUNE_KIT_SYSTEM_DATA_DIRS", str(ctx.tmp / "no-system-data"))
    argv = make(ctx)
    before = digest(ctx.tmp, ctx.world.root, skip=ctx.out)
    says(cli_refusal(capsys, [str(a) for a in argv]), words)
    assert digest(ctx.tmp, ctx.world.root, skip=ctx.out) == before, "a file outside the run directory changed"
    assert not ctx.out.exists() or not any(ctx.out.iterdir())


def test_control_characters_never_reach_the_terminal(ctx, capsys):
    """A file name made of escape sequences is shown escaped, in the one error line."""
    line = cli_refusal(capsys, ["evaluate", "--checkpoint", "\x1b]0;owned\x07\x1b[31m.ckpt"])
    assert "\\x1b]0;owned\\x07\\x1b[31m.ckpt" in line
