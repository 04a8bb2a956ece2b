"""CLI sub-commands, one module per family; each registers its commands on ``seethrough.cli.app``.

A module here defines functions decorated with ``@app.command()`` (import ``app``,
``friendly``, ``ModelOpt``, ``ArchOpt``, ``UnsafeOpt`` and ``load`` from ``seethrough.cli``).
"""
import importlib
import pkgutil


def register_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
