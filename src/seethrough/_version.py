"""The package version, in a module of its own: the report and the explorer stamp it, and taking it
from ``seethrough/__init__`` (which imports every subpackage) made them import the package that
imports them (an import cycle, issue 19). Keep it equal to ``version`` in pyproject.toml."""
__version__ = "0.1.0"
