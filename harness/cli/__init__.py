"""The command line: the only code that prints or exits.

One module per command group: `main` (the parser, ``run``/``train``/``list``/``validate``/
``pairs`` and the entry point), `report` (``report``, ``correlate``), `score` (``score``); the
shared argparse value types (`argtypes`), progress bars and plain progress lines (`progress`) and
writing a run's outputs (`outputs`).
"""
