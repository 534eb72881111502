"""Runs the Python blocks of the docs and the doctests of the sources (Sybil)."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser
from sybil.parsers.rest import DocTestParser

pytest_collect_file = (
    Sybil(parsers=[PythonCodeBlockParser()], patterns=["*.md"], path="docs")
    + Sybil(parsers=[DocTestParser()], patterns=["*.py"], path="src")
).pytest()
