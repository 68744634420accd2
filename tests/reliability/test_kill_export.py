"""Kills during export: a killed export leaves the old export or none, never a half one that loads.

An export replaces two files (``model.safetensors`` and ``model.json``). Each trial exports
new weights over an existing export in a forked child and SIGKILLs it -- from inside at an
exact phase of the two-file write, or from outside after a random delay -- and then checks:

* if the export directory loads, its two files are exactly the old pair or exactly the new
  pair (never a mix), and the loaded model gives the old or the new logits;
* if it does not load, the refusal is a clear ``CheckpointError`` and ``model.json`` is gone
  (the export was invalidated before its files changed);
* ``export(..., overwrite=True)`` afterwards succeeds and loads the new weights (a weights file
  left without its description is still recognised as an export's, by its header).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import torch

import finetune_kit as fk
from finetune_kit.errors import CheckpointError
from finetune_kit.inference import export, load_model
from finetune_kit.storage.checkpoint import load_checkpoint, save_checkpoint
from tests.reliability import kill_helpers

RANDOM_TRIALS, ON_WRITE_TRIALS = 8, 6
CHILD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Two checkpoints of one tiny run: the weights as trained (old) and shifted (new)."""
    kill_helpers.boot()
    root = tmp_path_factory.mktemp("kill-export")
    data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16, train_size=32, test_size=8)
    model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    trainer = fk.Trainer(
        model, data, epochs=1, batch_size=16, progress=False, device="cpu", output_dir=root / "run"
    )
    trainer.fit()
    old = root / "run" / "last.ckpt"
    state = load_checkpoint(old)
    state["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    new = root / "new.ckpt"
    save_checkpoint(state, new)
    return old, new


def files(target: Path) -> tuple[bytes | None, bytes | None]:
    return tuple(
        (target / n).read_bytes() if (target / n).is_file() else None
        for n in ("model.safetensors", "model.json")
    )


def logits(target: Path) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 16 * 16).view(2, 1, 16, 16)
    with torch.no_grad():
        return load_model(target).model(x)


def trial(how: str, delay: float, checkpoints, root: Path, pairs: dict) -> str:
    old, new = checkpoints
    target = root / "exported"
    export(old, target)
    log = root / "export.log"
    if how in kill_helpers.EXPORT_PHASES:
        status = kill_helpers.start_export(new, target, log, how).wait(CHILD_TIMEOUT)
        assert status == -9, log.read_text()
    else:
        child = kill_helpers.start_export(new, target, log)
        time.sleep(delay)
        if how == "on_write":  # the moment a temp file of the export appears
            kill_helpers.kill_when_writing(child, target, deadline=time.monotonic() + CHILD_TIMEOUT)
        child.kill()
    now = files(target)
    try:
        got = logits(target)
    except CheckpointError:
        assert now[1] is None, f"{how}: a description is left but the export does not load"
        state = "none"
    else:
        assert now in (pairs["old"], pairs["new"]), f"{how}: old and new files are mixed"
        state = "old" if now == pairs["old"] else "new"
        assert torch.allclose(got, pairs[f"{state}_logits"]), f"{how}: the weights loaded are neither"
    export(new, target, overwrite=True)  # recovers from any of the three
    assert files(target) == pairs["new"]
    return state


@pytest.mark.timeout(300)
def test_a_killed_export_leaves_the_old_export_or_none(checkpoints, tmp_path):
    old, new = checkpoints
    pairs = {}
    for name, source in (("old", old), ("new", new)):
        out = export(source, tmp_path / f"ref-{name}")
        pairs[name], pairs[f"{name}_logits"] = files(out), logits(out)
    rng = random.Random(3)
    for attempt in range(2):  # the first child also waits for the fork server to start
        child = kill_helpers.start_export(new, tmp_path / f"timing{attempt}", tmp_path / "timing.log")
        assert child.wait(CHILD_TIMEOUT) == 0
    seconds = time.monotonic() - child.started
    trials = [(phase, 0.0) for phase in kill_helpers.EXPORT_PHASES]
    trials += [("random", rng.uniform(0.0, seconds)) for _ in range(RANDOM_TRIALS)]
    trials += [("on_write", rng.uniform(0.0, 0.3 * seconds)) for _ in range(ON_WRITE_TRIALS)]
    outcomes = []
    for index, (how, delay) in enumerate(trials):
        root = tmp_path / f"trial-{index:02d}"
        root.mkdir()
        outcomes.append((how, round(delay, 2), trial(how, delay, checkpoints, root, pairs)))
    print("\n".join(map(str, outcomes)))
    by_phase = {how: state for how, _, state in outcomes if how in kill_helpers.EXPORT_PHASES}
    assert {state for _, _, state in outcomes} == {"old", "new", "none"}
    assert by_phase == {
        "half_written": "old",
        "before_invalidate": "old",
        "after_invalidate": "none",
        "between_renames": "none",
        "after_commit": "new",
    }
