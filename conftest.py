"""Runs the Python blocks of the docs and README and the sources' doctests (Sybil).

The contract suites of ``recurbill.testing`` are installed code, whose asserts
pytest does not rewrite unless asked before they are imported: asked here, so
a failing contract check shows the values it compared.
"""

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser
from sybil.parsers.rest import DocTestParser
from sybil.sybil import SybilCollection

pytest.register_assert_rewrite("recurbill.testing")

pytest_collect_file = SybilCollection(
    [
        Sybil(parsers=[PythonCodeBlockParser()], patterns=["*.md"], path="docs"),
        Sybil(parsers=[PythonCodeBlockParser()], patterns=["README.md"], path="."),
        Sybil(parsers=[DocTestParser()], patterns=["*.py"], path="src"),
    ]
).pytest()
