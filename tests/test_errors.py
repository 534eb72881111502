import inspect

import pytest

import recurbill
from recurbill import errors


def _error_classes() -> list[type[errors.RecurbillError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.RecurbillError)
    ]


def test_every_error_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        assert cls.__name__ in doc, cls.__name__


def test_every_error_is_exported_and_documented() -> None:
    for cls in _error_classes():
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in recurbill.__all__
        assert cls.__doc__


def test_lookup_and_value_errors_subclass_the_builtins() -> None:
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.StartTooEarlyError, ValueError)
    assert issubclass(errors.WebhookError, ValueError)


def test_messages_are_built_from_keyword_fields() -> None:
    error = errors.StartTooEarlyError(start="2026-11-22", earliest="2026-11-23")
    assert "2026-11-23" in str(error)
    assert error.fields["earliest"] == "2026-11-23"
    generic = errors.InvalidInvoiceError(problem="base quantity 0", allowed="use > 0")
    assert str(generic) == "base quantity 0; use > 0"


def test_a_missing_field_is_a_bug_not_a_silent_message() -> None:
    with pytest.raises(KeyError):
        errors.NotFoundError(kind="invoice")


def test_errors_survive_pickling_with_their_fields() -> None:
    import pickle

    error = errors.StartTooEarlyError(start="2026-11-22", earliest="2026-11-23")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is errors.StartTooEarlyError
    assert str(again) == str(error)
    assert again.fields == error.fields
