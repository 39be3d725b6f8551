"""vector-tiering: keep a vector database small by moving cold embeddings to object storage."""

from tiering.errors import TieringError
from tiering.records import Hit, Metric, Record

__version__ = "0.1.0"

__all__ = ["Hit", "Metric", "Record", "TieringError", "__version__"]
