"""The ``finetune-kit`` command: parse, run the subcommand, map errors to one line and exit 2.

``finetune-kit train --config FILE [--set key=value ...] [--resume CKPT] [--output-dir DIR]``,
``finetune-kit evaluate --checkpoint CKPT``, ``finetune-kit predict``, ``finetune-kit export``,
``finetune-kit list KIND``, ``finetune-kit verify-conv``. Bad input exits with status 2 and one
line on stderr saying what is wrong and how to fix it; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from finetune_kit.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from finetune_kit.cli.parser import build_parser
from finetune_kit.errors import FinetuneKitError

__all__ = ["main"]


def _one_line(exc: BaseException) -> str:
    """An error message on one line (multi-line messages, such as lists of places, joined)."""
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        >>> main(["list", "losses", "cross*"])
        cross_entropy
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
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
