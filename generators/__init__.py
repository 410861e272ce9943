"""Task generators, the PENCIL trace engine and the dataset builder."""

__version__ = "0.1.0"
