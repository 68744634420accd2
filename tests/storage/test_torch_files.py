"""Reading torch files: whatever the bytes, the data or one clear CheckpointError."""

from __future__ import annotations

import io
import os

import pytest
import torch

from finetune_kit.errors import CheckpointError
from finetune_kit.storage.torch_files import read_torch_file


class Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def saved(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not a PyTorch file (it is empty)"),
        (b"epochs = 3\n", "not a PyTorch file (it looks like a text file)"),
        (b"\x89PNG\r\n\x1a\n....", "it looks like an image"),
        (b"\x00\x01\x02\x03", "it starts with the bytes 00010203"),
        (b"PK\x03\x04junk", "truncated or corrupted (PytorchStreamReader failed"),
        (b"\x80\x02junk", "truncated or corrupted (its contents do not follow the PyTorch format)"),
        (saved({"w": Payload()}), "(posix.system), which could run code"),
        (saved({"w": Payload()}, _use_new_zipfile_serialization=False), "posix.system"),
    ],
)
def test_every_kind_of_bad_file_is_one_clear_error(tmp_path, data, words):
    path = tmp_path / "given.ckpt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        read_torch_file(path, what="checkpoint", fix="Use another one.")
    text = str(info.value)
    assert words in text, text
    assert text.startswith(("Cannot read checkpoint", "Refused to load checkpoint")), text
    assert "\n" not in text and "weights_only=False" not in text and "If you are seeing" not in text


def test_a_good_file_loads_and_a_truncated_one_names_the_fix(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(3.0)}, path)
    assert read_torch_file(path)["w"].tolist() == [0.0, 1.0, 2.0]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"w.pt: it is truncated or corrupted .*Use a backup\.$"):
        read_torch_file(path, fix="Use a backup.")
