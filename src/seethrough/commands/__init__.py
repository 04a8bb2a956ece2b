"""CLI sub-commands, one module per family; each registers its commands on ``seethrough.cli.app``.

A module here defines functions decorated with ``@app.command()`` (import ``app``,
``ModelOpt``, ``ArchOpt``, ``UnsafeOpt``, ``ShaOpt`` and ``load`` from :mod:`seethrough.commands.base`,
never from ``seethrough.cli``: cli imports this package to register the commands, so the other
direction would be an import cycle, which tests/test_import_cycles.py refuses).
Every registered command is then wrapped by ``seethrough.cli.friendly``, the one error path:
raise ``ValueError``/``TypeError`` for bad input and it becomes one ``error:`` line, exit 2.
"""
import importlib
import pkgutil


def register_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
