"""The command line: the only code that prints or exits.

One module per command group: `main` (``list``/``validate``/``pairs`` and the entry point),
`parser` (every command's flags), `run` and `run_args` (``run``/``train``, their flags and early
checks), `report` (``report``, ``correlate``), `score` (``score``); the
shared argparse value types (`argtypes`), progress bars and plain progress lines (`progress`) and
writing a run's outputs (`outputs`).
"""
