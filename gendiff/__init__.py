"""gendiff: see why two ways of running the same model, greedily, disagree."""

__version__ = "0.1.0"
