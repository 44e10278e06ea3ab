"""``--tensorboard DIR`` / ``--no-tensorboard``: the same two flags on ``harness run``, ``train`` and ``score``.

Every training (an aggregator per encoder x extractor x seed, a toy generator per row) writes its
TensorBoard events to ``DIR/<run-name>/`` (`harness.training_log`).  Without either flag, logs are on
by default where the command has an output folder (``harness run --output OUT``, ``harness score
--out OUT``: ``OUT/tb``) and off where it has none (``harness train``).  The folder is checked
writable before any work; an explicit ``--tensorboard`` without the tensorboard package is refused
(exit 2), a default one only notes it and the command goes on without logs.  Of the two flags the
last one given wins, so a command-line flag overrides a ``--config`` file's value.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError
from harness.cli.outputs import check_output_place
from harness.training_log import INSTALL, TB_FOLDER, require_tensorboard, tensorboard_available

__all__ = ["add_tensorboard_args", "clear_default_folder", "tensorboard_dir"]


class _LogTo(argparse._StoreAction):
    """``--tensorboard DIR``: also undoes an earlier ``--no-tensorboard`` (the last flag given wins, so a
    command-line flag overrides a ``--config`` file's)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        namespace.no_tensorboard = False
        super().__call__(parser, namespace, values, option_string)


class _NoLogs(argparse._StoreTrueAction):
    """``--no-tensorboard``: also undoes an earlier ``--tensorboard DIR``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        namespace.tensorboard = None
        super().__call__(parser, namespace, values, option_string)


def add_tensorboard_args(p: argparse.ArgumentParser, *, default: str) -> None:
    """Add ``--tensorboard DIR`` and ``--no-tensorboard`` (the last one given wins); ``default`` says where
    logs go without either."""
    p.add_argument("--tensorboard", action=_LogTo, metavar="DIR",
                   help=f"write TensorBoard events of every training to DIR/<run-name>/ (loss, lr, steps/s, "
                        f"α per layer; default: {default}); watch with: tensorboard --logdir DIR")
    p.add_argument("--no-tensorboard", action=_NoLogs, help="write no TensorBoard events")


def tensorboard_dir(args: argparse.Namespace, *, output: str | None, trains: bool, say: Callable[[str], None],
                    output_flag: str = "--output", check: bool = True, why: str = "") -> str | None:
    """Where this command's trainings log (None: nowhere), decided and checked before any work.

    ``output``: the command's output folder, given as ``output_flag`` (logs default to ``output/tb``; None:
    off by default).
    ``trains``: whether anything will be trained (an explicit ``--tensorboard`` is refused when not;
    ``why`` says why not).  ``check``: probe the folder (False on a torchrun rank that never writes)."""
    if args.no_tensorboard:
        return None
    if args.tensorboard is not None:
        if not trains:
            raise ConfigError(f"--tensorboard {args.tensorboard!r} does not apply: {why or 'nothing is trained'}; "
                              "drop --tensorboard")
        require_tensorboard("--tensorboard")
        if check:
            check_output_place(args.tensorboard, "--tensorboard")
        return str(args.tensorboard)
    if output is None or not trains:
        return None
    if not tensorboard_available():
        say(f"note: no TensorBoard logs: the tensorboard package is not installed ({INSTALL}; "
            "--no-tensorboard silences this)")
        return None
    folder = Path(output) / TB_FOLDER
    if check:
        check_output_place(folder, f"{output_flag} (its TensorBoard folder; --no-tensorboard skips it)")
    return str(folder)


def clear_default_folder(folder: str | None, args: argparse.Namespace) -> None:
    """Empty ``OUTPUT/tb`` when it is the default place of ``harness run --output OUTPUT``: the folder then
    holds this run's trainings only, as ``OUTPUT/results.json`` does (an explicit ``--tensorboard`` folder is
    never emptied: each training replaces only its own run folder)."""
    if folder is not None and args.tensorboard is None:
        shutil.rmtree(folder, ignore_errors=True)
