"""The ``finetune-kit`` command: parse, run the subcommand, map errors to one line and exit 2.

``finetune-kit train --config FILE [--set key=value ...] [--resume CKPT] [--output-dir DIR]``,
``finetune-kit evaluate --checkpoint CKPT``, ``finetune-kit predict``, ``finetune-kit export``,
``finetune-kit list KIND``, ``finetune-kit verify-conv``. Bad input exits with status 2 and one
line on stderr saying what is wrong and how to fix it; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Sequence

from finetune_kit.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from finetune_kit.cli.parser import build_parser
from finetune_kit.errors import FinetuneKitError

__all__ = ["main"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(exc: BaseException) -> str:
    """An error message on one line (multi-line messages, such as lists of places, joined), with
    control characters (from file names, say) shown escaped rather than sent to the terminal."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _nul_argument(argv: Sequence[str]) -> str | None:
    """The first argument holding a NUL byte (no file name or value can), if any."""
    return next((arg for arg in argv if "\0" in arg), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        >>> main(["list", "losses", "cross*"])
        cross_entropy
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = _nul_argument(sys.argv[1:] if argv is None else argv)
    if bad is not None:
        print(
            f"finetune-kit: error: the argument {_CONTROL.sub('?', bad)!r} contains a NUL byte, "
            "which no file name or value can hold. Retype it.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except FinetuneKitError as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"finetune-kit: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("finetune-kit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun: leave the process group cleanly, also on errors (only if torch was used)."""
    if sys.modules.get("torch") is not None:
        from finetune_kit.runtime.distributed import teardown

        teardown()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
