"""Runs the Python blocks of the docs and README and the sources' doctests (Sybil)."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser
from sybil.parsers.rest import DocTestParser
from sybil.sybil import SybilCollection

pytest_collect_file = SybilCollection(
    [
        Sybil(parsers=[PythonCodeBlockParser()], patterns=["*.md"], path="docs"),
        Sybil(parsers=[PythonCodeBlockParser()], patterns=["README.md"], path="."),
        Sybil(parsers=[DocTestParser()], patterns=["*.py"], path="src"),
    ]
).pytest()
