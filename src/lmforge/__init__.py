"""lmforge: the whole life of a GPT-2-family language model in one package and CLI."""

__version__ = "0.1.0"
