"""TensorBoard event files of a training run: what a trainer hands its loop to be watched live.

`TrainingLog` writes the scalars of one training (an aggregator's, the toy generator's) to
``ROOT/<run-name>/`` through torch's ``SummaryWriter``, imported on the first write (so
``import harness`` stays free of torch and tensorboard).  The caller that owns the run (the runner,
``harness score``) opens it with `open_training_log` and closes it; the training routine adds
what only it knows:

* `TrainingLog.step` -- ``train/loss`` and ``train/steps_per_s`` after every optimiser step (the
  runner does this through the step callback, for every aggregator);
* `TrainingLog.scalar` -- anything else, e.g. ``train/lr``;
* `TrainingLog.layer_weights` -- a learned extractor's softmax α as ``alpha/layer_<i>``, ``i`` the
  hidden-state index of each layer of the stack (its position when the caller gave no indices).

A run folder holds one training's events: an earlier training's event files in it are removed when
the log opens.  Steps count from 1 (step 0: before the first update, e.g. α at initialisation).
See docs/logging.md.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError

__all__ = ["TB_FOLDER", "TrainingLog", "accepts_log", "open_training_log", "require_tensorboard", "run_name",
           "tensorboard_available"]

TB_FOLDER = "tb"  # the default folder under a command's --output / --out
INSTALL = "pip install 'ted-harness[tb]'"


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (which torch's ``SummaryWriter`` writes through) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard(flag: str) -> None:
    """Refuse ``flag`` (logs asked for explicitly) when tensorboard is not installed: one `ConfigError`."""
    if not tensorboard_available():
        raise ConfigError(f"{flag} writes TensorBoard logs and needs the tensorboard package: {INSTALL} "
                          "(or drop the flag)")


def run_name(*parts: str) -> str:
    """A run folder's name: the parts joined by ``__``, anything but letters, digits, ``.``, ``_``, ``-`` as ``_``
    (``minilm__norm-avg__context__seed0``)."""
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]", "_", p) for p in parts)


def accepts_log(fit: Callable[..., Any]) -> bool:
    """Whether a training routine takes a ``log`` keyword (aggregators written before it existed do not)."""
    try:
        params = inspect.signature(fit).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "log" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class TrainingLog:
    """Scalars of one training run as TensorBoard events in ``folder`` (see the module docstring).

    ``layers``: the hidden-state index of each layer a learned layer weighting sees, for the
    ``alpha/layer_<i>`` tags.  Usable as a context manager; `close` flushes the events to disk."""

    def __init__(self, folder: str | Path, *, layers: Sequence[int] = (), flush_secs: int = 10) -> None:
        self.folder = Path(folder)
        self.layers = [int(i) for i in layers]
        self.flush_secs = flush_secs
        self._writer: Any = None
        self._last: tuple[int, float] = (0, time.perf_counter())

    def _write(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.folder.mkdir(parents=True, exist_ok=True)
            for old in self.folder.glob("events.out.tfevents.*"):  # an earlier training of the same run
                old.unlink()
            self._writer = SummaryWriter(str(self.folder), flush_secs=self.flush_secs)
        return self._writer

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One point of the curve ``tag``."""
        self._write().add_scalar(tag, float(value), int(step))

    def step(self, step: int, loss: float) -> None:
        """After optimiser step ``step``: its loss, and the steps per second since the previous call."""
        now = time.perf_counter()
        last_step, last_t = self._last
        self.scalar("train/loss", loss, step)
        if step > last_step and now > last_t:
            self.scalar("train/steps_per_s", (step - last_step) / (now - last_t), step)
        self._last = (step, now)

    def steps(self, first: int, losses: Sequence[float]) -> None:
        """Steps ``first``, ``first + 1``, ... read back together: one loss each, and the steps per
        second since the previous call at the last of them."""
        now = time.perf_counter()
        last_step, last_t = self._last
        for k, loss in enumerate(losses):
            self.scalar("train/loss", loss, first + k)
        end = first + len(losses) - 1
        if losses and end > last_step and now > last_t:
            self.scalar("train/steps_per_s", (end - last_step) / (now - last_t), end)
            self._last = (end, now)

    def layer_weights(self, step: int, weights: Sequence[float]) -> None:
        """The softmax layer weights at ``step`` (0: at initialisation), one curve per layer."""
        names = self.layers if len(self.layers) == len(weights) else list(range(len(weights)))
        for i, w in zip(names, weights):
            self.scalar(f"alpha/layer_{i}", w, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_training_log(root: str | Path | None, name: str, *, layers: Sequence[int] = ()) -> TrainingLog | None:
    """The log of run ``name`` under ``root`` (None: logging is off, or tensorboard is missing)."""
    if root is None or not tensorboard_available():
        return None
    return TrainingLog(Path(root) / name, layers=layers)
