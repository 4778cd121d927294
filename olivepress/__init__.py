"""olivepress: a declarative model-optimization workflow engine."""

__version__ = "0.1.0"
