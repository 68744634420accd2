"""Hostile files: every file the library reads, wrong, truncated, huge or malicious.

Exports (``model.json`` and its weights), checkpoints and their entries, weights files and
safetensors metadata -- each spoiled one way and fed to the command or call that reads it.
The checks every case passes are described in tests/reliability/hostile.py.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import torch

import finetune_kit as fk
from tests.reliability.hostile import Ctx, api_refusal, cli_refusal, digest, says

UNKNOWN = fk.FinetuneKitError
FIX_EXPORT = "export the checkpoint again"
FIX_CKPT = "use an earlier checkpoint"


class Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def case(kind, id, make, words, error=UNKNOWN):
    return pytest.param(make, words, error, id=f"{kind}/{id}")


def predict(target, ctx):
    return ["predict", "--checkpoint", str(target), str(ctx.world.image)]


def meta(key, value):
    return lambda d: d["data_meta"].__setitem__(key, value)


def info(key, value):
    return lambda d: d["model_info"].__setitem__(key, value)


def kwargs(key, value):
    return lambda d: d["model_info"]["build_kwargs"].__setitem__(key, value)


def both(first, second):
    return lambda d: (first(d), second(d))


def json_edit(key, value):
    return lambda d: d.__setitem__(key, value)


def via_predict(edit):
    return lambda c: predict(c.export(edit), c)


def via_load(edit):
    def make(c: Ctx):
        target = c.export(edit)
        return lambda: fk.load_model(target)

    return make


def load(target):
    """Load ``target`` later (it is made now, before the files are hashed)."""
    return lambda: fk.load_model(target)


# ---------------------------------------------------------------- model.json
EXPORT_CASES = [
    case("export", "std-zero", via_predict(meta("std", [0.0])), f"data_meta.std[0] | > 0 | {FIX_EXPORT}"),
    case("export", "std-negative", via_load(meta("std", [-0.2])), "data_meta.std[0] | finite number > 0"),
    case("export", "std-nan", via_predict(meta("std", [float("nan")])), "data_meta.std[0] | got nan"),
    case("export", "mean-infinite", via_load(meta("mean", [float("inf")])), "data_meta.mean[0] | finite"),
    case("export", "std-per-channel", via_predict(meta("std", [0.2, 0.2])), "data_meta.std | 1 numbers"),
    case("export", "std-text", via_load(meta("std", "0.2")), "data_meta.std | one number per channel"),
    case("export", "mean-empty", via_load(meta("mean", [])), "data_meta.mean | one number per channel"),
    case(
        "export",
        "classes-huge",
        via_predict(meta("num_classes", 10**12)),
        "data_meta.num_classes | [1, 1000000]",
    ),
    case("export", "classes-bool", via_load(meta("num_classes", True)), "data_meta.num_classes | got true"),
    case(
        "export",
        "class-names-text",
        via_predict(meta("class_names", "abc")),
        "class_names | list of class names",
    ),
    case(
        "export", "class-names-short", via_load(meta("class_names", ["a"])), "class_names | 3 names | got 1"
    ),
    case(
        "export",
        "class-name-number",
        via_predict(meta("class_names", ["a", 2, "c"])),
        "class_names[1] | text",
    ),
    case(
        "export",
        "class-name-huge",
        via_load(meta("class_names", ["a", "b" * 5000, "c"])),
        "class_names[1] | 1000 characters",
    ),
    case("export", "channels-zero", via_predict(meta("in_channels", 0)), "data_meta.in_channels | [1, 1024]"),
    case("export", "channels-text", via_load(meta("in_channels", "x")), "data_meta.in_channels | got 'x'"),
    case("export", "image-size-zero", via_predict(meta("image_size", [0, 16])), "image_size[0] | [1, 8192]"),
    case(
        "export",
        "image-size-one-side",
        via_load(meta("image_size", [16])),
        "image_size | pair [height, width]",
    ),
    case(
        "export",
        "image-size-huge",
        via_predict(meta("image_size", [10**6, 10**6])),
        "image_size[0] | [1, 8192]",
    ),
    case("export", "input-size-negative", via_load(meta("input_size", [-16, 16])), "input_size[0] | got -16"),
    case(
        "export",
        "meta-no-mean",
        via_predict(lambda d: d["data_meta"].pop("mean")),
        f"data_meta has no mean | {FIX_EXPORT}",
    ),
    case("export", "meta-list", via_load(json_edit("data_meta", [1, 2])), "data_meta must be a table"),
    case(
        "export",
        "meta-extra-object",
        via_load(meta("extra", {"x": float("nan")})),
        "data_meta.extra.x | finite",
    ),
    case(
        "export", "info-no-head", via_predict(lambda d: d["model_info"].pop("head")), "model_info has no head"
    ),
    case("export", "info-unknown-field", via_load(info("evil", 1)), "unknown fields ['evil']"),
    case("export", "info-name-empty", via_predict(info("name", "")), "model_info.name | non-empty text"),
    case(
        "export",
        "info-name-unregistered",
        via_load(info("name", "resnet999")),
        "unknown model 'resnet999' | available models",
    ),
    case("export", "info-stages-text", via_predict(info("stages", "all")), "model_info.stages | pairs"),
    case(
        "export",
        "info-classes-disagree",
        via_load(both(info("num_classes", 4), kwargs("num_classes", 4))),
        "model_info.num_classes is 4 but data_meta.num_classes is 3",
    ),
    case(
        "export",
        "kwargs-weights-path",
        via_predict(kwargs("weights", "/etc/passwd")),
        "build_kwargs.weights | absent",
    ),
    case(
        "export",
        "kwargs-pretrained",
        via_load(kwargs("pretrained", True)),
        "build_kwargs.pretrained | absent",
    ),
    case(
        "export",
        "kwargs-classes-huge",
        via_predict(kwargs("num_classes", 10**12)),
        "build_kwargs.num_classes must be 3",
    ),
    case(
        "export",
        "kwargs-input-size-huge",
        via_load(kwargs("input_size", 10**6)),
        "build_kwargs.input_size | [1, 8192]",
    ),
    case(
        "export",
        "kwargs-input-size-big",
        via_predict(kwargs("input_size", 4096)),
        "fc1.weight has shape | in the file but",
    ),
    case(
        "export", "kwargs-unknown-option", via_load(kwargs("evil", 1)), "cannot be rebuilt | no option 'evil'"
    ),
    case("export", "kwargs-dropout", via_predict(kwargs("dropout", 2.0)), "build_kwargs.dropout | [0, 1)"),
    case("export", "kwargs-seed", via_load(kwargs("seed", -1)), "build_kwargs.seed | got -1"),
    case("export", "kwargs-list", via_predict(info("build_kwargs", [1])), "build_kwargs must be a table"),
    case(
        "export",
        "kwargs-small-input",
        via_load(kwargs("small_input", "yes")),
        "build_kwargs.small_input | true or false",
    ),
    case(
        "export",
        "format-version-text",
        via_predict(json_edit("format_version", "1")),
        "format_version | integer",
    ),
    case(
        "export",
        "format-version-newer",
        via_load(json_edit("format_version", 99)),
        "newer finetune_kit | upgrade",
    ),
    case(
        "export",
        "format-other",
        via_predict(json_edit("format", "other.tool")),
        "not a finetune_kit export | finetune_kit.export",
    ),
    case(
        "export",
        "weights-file-escapes",
        via_load(json_edit("weights_file", "../../etc/passwd")),
        "malformed | export the checkpoint again",
    ),
    case(
        "export", "weights-file-empty", via_predict(json_edit("weights_file", "")), "malformed | weights_file"
    ),
    case("export", "sha-number", via_load(json_edit("weights_sha256", 5)), "weights_sha256 must be a text"),
    case(
        "export",
        "deep-nesting",
        lambda c: predict(c.export(raw=b"[" * 100_000 + b"]" * 100_000), c),
        f"nests too deeply | {FIX_EXPORT}",
    ),
    case(
        "export",
        "not-utf8",
        lambda c: load(c.export(raw=b'{"format": "caf\xe9"}')),
        "cannot read export description | utf-8",
    ),
    case(
        "export",
        "truncated-json",
        lambda c: predict(c.export(raw=(c.world.export / "model.json").read_bytes()[:200]), c),
        "cannot read export description | export the checkpoint again",
    ),
    case(
        "export",
        "empty-json",
        lambda c: load(c.export(raw=b"")),
        "cannot read export description | expecting value",
    ),
    case(
        "export",
        "bom-json",
        lambda c: predict(c.export(raw=b"\xef\xbb\xbf" + (c.world.export / "model.json").read_bytes()), c),
        "bom",
    ),
    case(
        "export",
        "huge-json",
        lambda c: predict(sparse(c.export(), "model.json", 300 * 2**20), c),
        "300 mib | at most 256 mib",
    ),
    case(
        "export",
        "weights-nan",
        lambda c: predict(c.export_weights(lambda t: t["fc3.bias"].fill_(float("nan"))), c),
        "fc3.bias holds nan | edited or mixed up",
    ),
    case(
        "export",
        "weights-complex",
        lambda c: load(
            c.export_weights(lambda t: t.__setitem__("fc3.bias", t["fc3.bias"].to(torch.complex64)))
        ),
        "fc3.bias is torch.complex64 in the file",
    ),
    case(
        "export",
        "weights-int",
        lambda c: predict(
            c.export_weights(lambda t: t.__setitem__("fc1.weight", t["fc1.weight"].to(torch.int32))), c
        ),
        "fc1.weight is torch.int32 | torch.float32 in the model",
    ),
    case(
        "export",
        "weights-missing",
        lambda c: load(c.export_weights(lambda t: t.pop("fc3.bias"))),
        "missing fc3.bias",
    ),
    case(
        "export",
        "weights-extra",
        lambda c: predict(c.export_weights(lambda t: t.__setitem__("evil", torch.zeros(10**4))), c),
        "unexpected evil",
    ),
    case(
        "export",
        "weights-shape",
        lambda c: load(c.export_weights(lambda t: t.__setitem__("conv2.weight", torch.zeros(3, 3, 3, 3)))),
        "conv2.weight has shape (3, 3, 3, 3) in the file but (16, 6, 5, 5)",
    ),
    case(
        "export",
        "weights-garbage",
        lambda c: predict(c.export_weights(raw=b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"), c),
        "not a valid safetensors file",
    ),
    case(
        "export",
        "weights-missing-file",
        lambda c: load(unlinked(c.export(), "model.safetensors")),
        "keep the two exported files together",
    ),
    case("export", "weights-swapped", lambda c: predict(swapped(c), c), "sha-256 differs | export again"),
]


def sparse(directory, name, size):
    with open(directory / name, "r+b") as handle:
        handle.truncate(size)  # a sparse file: huge for stat, nothing on disk
    return directory


def unlinked(directory, name):
    (directory / name).unlink()
    return directory


def swapped(c: Ctx):
    target = c.export()
    blob = bytearray((target / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF  # one bit of one weight
    (target / "model.safetensors").write_bytes(bytes(blob))
    return target


# ---------------------------------------------------------------- checkpoints
def ckpt_info(key, value):
    return lambda s: s["model_info"].__setitem__(key, value)


def ckpt_meta(key, value):
    return lambda s: s["data_meta"].__setitem__(key, value)


def entry(key, value):
    return lambda s: s.__setitem__(key, value)


def sub(key, inner, value):
    return lambda s: s[key].__setitem__(inner, value)


def command(name, edit):
    """``finetune-kit NAME`` on a copy of the world's run whose last.ckpt is spoiled."""

    def make(c: Ctx):
        run = c.run(edit)
        ckpt = str(run / "last.ckpt")
        return {
            "evaluate": ["evaluate", "--checkpoint", ckpt, "--device", "cpu"],
            "export": ["export", "--checkpoint", ckpt, "--output", str(c.out)],
            "predict": ["predict", "--checkpoint", ckpt, str(c.world.image)],
            "resume": ["train", "--resume", ckpt],
        }[name]

    return make


def raw_ckpt(name, data):
    def make(c: Ctx):
        path = c.write("given.ckpt", data(c) if callable(data) else data)
        return {
            "evaluate": ["evaluate", "--checkpoint", str(path), "--device", "cpu"],
            "resume": ["train", "--resume", str(path)],
            "export": ["export", "--checkpoint", str(path), "--output", str(c.out)],
            "predict": ["predict", "--checkpoint", str(path), str(c.world.image)],
        }[name]

    return make


def saved(obj, **kwargs):
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def zip_with_bad_pickle(c: Ctx) -> bytes:
    source = zipfile.ZipFile(c.world.run / "last.ckpt")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"\x80\x02\xff\xfe" if name.endswith("data.pkl") else source.read(name))
    return out.getvalue()


def png_bytes(c: Ctx) -> bytes:
    return c.world.image.read_bytes()


CHECKPOINT_CASES = [
    case(
        "checkpoint",
        "classes-huge",
        command("evaluate", ckpt_info("num_classes", 10**10)),
        f"model_info.num_classes | [1, 1000000] | {FIX_CKPT}",
    ),
    case("checkpoint", "std-zero", command("predict", ckpt_meta("std", [0.0])), "data_meta.std[0] | > 0"),
    case(
        "checkpoint",
        "class-names-short",
        command("export", ckpt_meta("class_names", ["a", "b"])),
        "data_meta.class_names | 3 names",
    ),
    case(
        "checkpoint",
        "meta-not-table",
        command("evaluate", entry("data_meta", "fake")),
        "data_meta must be a table",
    ),
    case(
        "checkpoint",
        "info-input-size",
        command("evaluate", ckpt_info("input_size", [10**5, 10**5])),
        "model_info.input_size[0] | [1, 8192]",
    ),
    case(
        "checkpoint",
        "info-name-number",
        command("predict", ckpt_info("name", 7)),
        "model_info.name | non-empty text",
    ),
    case(
        "checkpoint",
        "info-class-names",
        command("resume", ckpt_info("class_names", ["only one"])),
        "model_info.class_names | 3 names",
    ),
    case(
        "checkpoint",
        "kwargs-weights",
        command("export", lambda s: s["model_info"]["build_kwargs"].__setitem__("weights", "imagenet")),
        "build_kwargs.weights | absent",
    ),
    case(
        "checkpoint",
        "freezing-text",
        command("resume", entry("freezing", "full")),
        "freezing must be a table",
    ),
    case(
        "checkpoint",
        "freezing-level",
        command("resume", sub("freezing", "level", -1)),
        "freezing.level | got -1",
    ),
    case(
        "checkpoint",
        "freezing-trainable",
        command("resume", sub("freezing", "trainable", "fc3.weight")),
        "freezing.trainable | list of parameter names",
    ),
    case(
        "checkpoint",
        "freezing-options",
        command("export", sub("freezing", "options", [1])),
        "freezing.options | table",
    ),
    case(
        "checkpoint",
        "position-negative",
        command("resume", sub("position", "epoch", -5)),
        "position.epoch | got -5",
    ),
    case(
        "checkpoint",
        "position-text",
        command("resume", sub("position", "global_step", "3")),
        "position.global_step | integer",
    ),
    case(
        "checkpoint",
        "position-list",
        command("resume", entry("position", [1, 0])),
        "position must be a table",
    ),
    case(
        "checkpoint",
        "config-list",
        command("resume", entry("config", [1])),
        "config entry must be a table of sections",
    ),
    case(
        "checkpoint",
        "config-code",
        command("resume", sub("config", "train", {"epochs": "__import__('os')"})),
        "train.epochs must be int",
    ),
    case(
        "checkpoint",
        "model-list",
        command("export", entry("model", [1, 2])),
        "model entry must be a table of named tensors",
    ),
    case(
        "checkpoint",
        "model-non-tensor",
        command("resume", sub("model", "fc3.bias", [0.0, 0.0, 0.0])),
        "'fc3.bias' holds a list",
    ),
    case(
        "checkpoint",
        "model-nan",
        command("export", lambda s: s["model"]["fc3.weight"].fill_(float("nan"))),
        "fc3.weight holds nan",
    ),
    case(
        "checkpoint",
        "model-missing",
        command("predict", lambda s: s["model"].pop("conv1.weight")),
        "missing conv1.weight",
    ),
    pytest.param(
        command("resume", sub("model", "conv2.weight", torch.zeros(3, 3, 3, 3))),
        "weights do not fit this model | conv2.weight",
        UNKNOWN,
        id="checkpoint/model-shape",
    ),
    pytest.param(
        command("evaluate", lambda s: s.pop("config")),
        "config",
        UNKNOWN,
        id="checkpoint/no-config",
    ),
    case(
        "checkpoint",
        "ema-malformed",
        command("export", entry("ema", {"decay": 0.9})),
        "ema entry has no 'module'",
    ),
    case(
        "checkpoint",
        "evil-in-history",
        command("resume", entry("history", [Evil()])),
        "refused to load | could run code | nothing in it was run",
    ),
    case(
        "checkpoint",
        "text-file",
        raw_ckpt("evaluate", "accuracy: 0.93\n"),
        "not a pytorch file | a text file",
    ),
    case(
        "checkpoint", "image-file", raw_ckpt("export", png_bytes), "not a pytorch file | looks like an image"
    ),
    case("checkpoint", "empty-file", raw_ckpt("resume", b""), "not a pytorch file | it is empty"),
    case(
        "checkpoint",
        "zip-junk",
        raw_ckpt("predict", b"PK\x03\x04" + b"\0" * 64),
        "truncated or corrupted | failed finding central directory",
    ),
    case(
        "checkpoint",
        "pickle-junk",
        raw_ckpt("evaluate", b"\x80\x02junkjunk"),
        "truncated or corrupted | do not follow the pytorch format",
    ),
    case(
        "checkpoint",
        "bad-operand",
        raw_ckpt("resume", zip_with_bad_pickle),
        "corrupted | unsupported operand 255",
    ),
    case(
        "checkpoint",
        "legacy-evil",
        raw_ckpt("export", lambda c: saved({"model": Evil()}, _use_new_zipfile_serialization=False)),
        "refused to load | posix.system | could run code",
    ),
    case(
        "checkpoint",
        "a-list",
        raw_ckpt("evaluate", lambda c: saved([1, 2, 3])),
        "not a finetune_kit checkpoint | create_model(..., weights=path)",
    ),
    case(
        "checkpoint",
        "truncated",
        raw_ckpt("resume", lambda c: (c.world.run / "last.ckpt").read_bytes()[:5000]),
        "truncated or corrupted | use an earlier checkpoint",
    ),
    case(
        "checkpoint",
        "dir-named-ckpt",
        lambda c: ["evaluate", "--checkpoint", str(c.write("last.ckpt/readme.txt", "x").parent)],
        "no checkpoint in run directory",
    ),
]


# ---------------------------------------------------------------- weights files
def weights_model(path):
    return lambda: fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16, weights=str(path))


def safetensors_with(c: Ctx, metadata: dict[str, str]) -> str:
    import safetensors.torch

    blob = (c.world.export / "model.safetensors").read_bytes()
    tensors = safetensors.torch.load(blob)
    path = c.path("given.safetensors")
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    return path


def weights_case(id, make_path, words):
    return case("weights", id, lambda c: weights_model(make_path(c)), words)  # made now, loaded later


WEIGHTS_CASES = [
    weights_case(
        "text-pth",
        lambda c: c.write("w.pth", "not weights"),
        "weights file | not a pytorch file | a text file",
    ),
    weights_case(
        "evil-pth",
        lambda c: c.write("w.pth", saved({"conv1.weight": Evil()})),
        "refused to load | could run code",
    ),
    weights_case(
        "list-pth", lambda c: c.write("w.pth", saved([torch.zeros(1)])), "holds a list, not a state dict"
    ),
    weights_case(
        "non-tensor-pth",
        lambda c: c.write("w.pth", saved({"conv1.weight": 3})),
        "not a state dict of named tensors",
    ),
    weights_case(
        "meta-not-json",
        lambda c: safetensors_with(c, {"model_info": "{not json"}),
        "model_info' is not valid json",
    ),
    weights_case(
        "meta-deep",
        lambda c: safetensors_with(c, {"model_info": "[" * 50_000 + "]" * 50_000}),
        "model_info' is not valid json",
    ),
    weights_case(
        "meta-std-zero",
        lambda c: safetensors_with(c, {"model_info": json.dumps({"mean": [0.5], "std": [0.0]})}),
        "model_info.std[0] | > 0",
    ),
    weights_case(
        "meta-names-number",
        lambda c: safetensors_with(c, {"model_info": json.dumps({"class_names": 3})}),
        "model_info.class_names | list of class names",
    ),
    weights_case(
        "meta-list", lambda c: safetensors_with(c, {"model_info": "[1, 2]"}), "model_info must be a table"
    ),
    weights_case(
        "ckpt-info-nan",
        lambda c: c.write(
            "w.ckpt", saved({"model": dict(c.world.state["model"]), "model_info": {"mean": [float("nan")]}})
        ),
        "model_info.mean[0] | finite",
    ),
    weights_case(
        "truncated-safetensors",
        lambda c: c.write("w.safetensors", (c.world.export / "model.safetensors").read_bytes()[:300]),
        "truncated or not a safetensors file",
    ),
    case(
        "weights",
        "cli-evil",
        lambda c: [
            "train",
            "--config",
            str(c.config()),
            "--output-dir",
            str(c.out),
            "--set",
            f"model.weights={json.dumps(str(c.write('w.pth', saved({'x': Evil()}))))}",
        ],
        "refused to load | could run code",
    ),
]


ALL = EXPORT_CASES + CHECKPOINT_CASES + WEIGHTS_CASES


@pytest.mark.parametrize(("make", "words", "error"), ALL)
def test_hostile_file_is_refused_clearly(ctx, capsys, make, words, error):
    target = make(ctx)
    before = digest(ctx.tmp, ctx.world.root, skip=ctx.out)
    if isinstance(target, list):
        message = cli_refusal(capsys, [str(a) for a in target])
    else:
        message = api_refusal(target, error)
    says(message, words)
    assert digest(ctx.tmp, ctx.world.root, skip=ctx.out) == before, "a file outside the run directory changed"
    assert not ctx.out.exists()
    assert not (ctx.tmp / "PWNED").exists() and not os.path.exists("PWNED")
