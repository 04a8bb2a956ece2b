"""Looking inside a network: its layers, parameters and activations."""
from .summary import LayerInfo, summary

__all__ = ["LayerInfo", "summary"]
