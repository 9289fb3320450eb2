"""The command line, ``zrealism``: the only face of the package that parses arguments. The library never imports it."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
