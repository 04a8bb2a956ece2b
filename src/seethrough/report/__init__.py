"""The self-contained HTML report: a registry of sections, each family adding its own.

>>> import seethrough as see
>>> "model-card" in see.report.SECTIONS
True
"""
from .registry import SECTIONS, Context, Figure, Section, Table, Text, section  # noqa: F401
from . import sections  # noqa: F401  (registers every family's section)
from .html import ReportResult, write_report  # noqa: F401

__all__ = ["SECTIONS", "Context", "Figure", "Section", "Table", "Text", "section", "write_report", "ReportResult"]
