"""Render recurbill's e-mails in the recipient's language, with Babel.

Five messages: the daily summary to the account, and to the customer the
invoice, the receipt, "your payment needs confirmation" and "your payment did
not go through". Each comes back as a :class:`~recurbill.notify.protocol.Message`
with a plain-text body that reads well on its own and a simple HTML
alternative (every value escaped, no images, no external resources).

The plain text keeps its lines within 72 columns: paragraphs wrap, and so
does a table cell, a totals label or a field value too long for its column.
Words and amounts are never broken, so only a word longer than the room it
has (a long URL) makes a longer line. Paragraphs and tables count columns as
a fixed-width font shows them (:func:`_width`: an emoji or CJK character
takes two, a combining mark none); field values count characters.

Texts exist in Norwegian bokmål, Swedish, Icelandic and English (see
:mod:`recurbill.notify.texts`). :func:`resolve_locale` picks them: ``nb``,
``nn`` and ``no`` read Norwegian bokmål, ``sv_FI`` reads Swedish, and any other
language reads English. Dates and amounts follow the recipient's own locale
when it is a variant of that language (``sv_FI``, ``en_US``), otherwise the
text's locale; amounts go through :func:`~recurbill.money.format_money`.

>>> resolve_locale("nn_NO"), resolve_locale("sv_FI"), resolve_locale("de_DE")
('nb_NO', 'sv_SE', 'en_GB')
"""

from __future__ import annotations

import functools
import re
import string
import textwrap
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent

from recurbill import arguments, errors
from recurbill.errors import InvalidInputError, RecurbillError
from recurbill.invoice import (
    AllowanceCharge,
    InvoiceLine,
    Totals,
    allowance_charge_amount,
    compute_totals,
    line_net,
)
from recurbill.money import EXACT, Currency, Money, format_money
from recurbill.notify.message import Message
from recurbill.notify.texts import TEXTS
from recurbill.payee import PayeeAccount
from recurbill.records import (
    Account,
    ChargeLine,
    CollectionMethod,
    Customer,
    EndedLine,
    FailedLine,
    Invoice,
    IssuedLine,
    NoChargeReason,
    Notification,
    PaymentStatus,
    Receipt,
    RunReport,
    SkippedLine,
    UnchargedLine,
    UnreadableLine,
)
from recurbill.references import reference_kind

__all__ = [
    "SUMMARY_ROWS",
    "notification_for",
    "render_invoice",
    "render_payment_failed",
    "render_payment_needs_action",
    "render_receipt",
    "render_summary",
    "resolve_locale",
]

_LANGUAGES = {"en": "en_GB", "nb": "nb_NO", "nn": "nb_NO", "no": "nb_NO"}
_LANGUAGES |= {"sv": "sv_SE", "is": "is_IS"}
_FALLBACK = "en_GB"
_WIDTH = 72
_SPACES = re.compile("( +)")
_BREAKS = re.compile("[ \t\n\r\x0b\x0c]+")  # where _wrap may break a line
_BLANKS = str.maketrans(dict.fromkeys("\r\x0b\x0c", " "))
_ZERO_WIDTH = frozenset({"Mn", "Me", "Cf"})
_NARROW = re.compile(  # characters one column wide, text that is only them
    "[\x00-\xac\xae-\u02ff\u0370-\u0482\u048a-\u052f\u1e00-\u1eff\u2000-\u200a"
    "\u2010-\u2029\u202f-\u205f\u20a0-\u20c0\u2100-\u214f\u2190-\u21ff"
    "\u2200-\u22ff]*"
)
_RIGHT = ' style="text-align:right"'

_DECLINES = {
    "insufficient_funds": "decline.insufficient_funds",
    "expired_card": "decline.expired_card",
    "card_velocity_exceeded": "decline.limit",
    "withdrawal_count_limit_exceeded": "decline.limit",
    "processing_error": "decline.processing_error",
    "try_again_later": "decline.processing_error",
    "issuer_not_available": "decline.processing_error",
    "reenter_transaction": "decline.processing_error",
    "gateway_error": "decline.not_charged",  # refused before reaching the bank
    "invoice_closed": "decline.invoice_closed",  # records.INVOICE_CLOSED
}
"""Decline codes worth explaining. Others (``lost_card``, ``fraudulent`` …)
read as a plain decline, as card networks advise."""

_PROBLEMS: dict[type[RecurbillError], str] = {
    errors.InvalidAmountError: "summary.problem.amount",
    errors.UnknownCurrencyError: "summary.problem.unknown_currency",
    errors.CurrencyMismatchError: "summary.problem.currencies",
    errors.VatCategoryError: "summary.problem.vat",
    errors.InvalidInvoiceError: "summary.problem.lines",
    errors.InvalidScheduleError: "summary.problem.schedule",
    errors.ReferenceLengthError: "summary.problem.reference_length",
    errors.InvalidReferenceError: "summary.problem.reference",
    errors.InvalidRecordError: "summary.problem.record",
    errors.UnreadableRecordError: "summary.problem.unreadable",
}
"""What the summary calls a template's problem, by the class of its error or
the nearest base class listed; any other error is ``summary.problem.other``."""

_OUTCOMES = (
    PaymentStatus.SUCCEEDED,
    PaymentStatus.DECLINED,
    PaymentStatus.REQUIRES_ACTION,
    PaymentStatus.PROCESSING,
    PaymentStatus.FAILED_UNKNOWN,
    PaymentStatus.CANCELED,
    PaymentStatus.PENDING,
)
"""The order of the summary's card-payment totals: one per
:class:`PaymentStatus` (a test checks none is missing), so that the totals
count every payment the heading counts."""

_NOT_CHARGED = {
    NoChargeReason.BELOW_MINIMUM: "invoice.not_charged.below_minimum",
    NoChargeReason.ABOVE_MAXIMUM: "invoice.not_charged.above_maximum",
    NoChargeReason.NOT_INCREMENT: "invoice.not_charged.not_increment",
}
"""Why a card was not charged, told in the invoice e-mail: the card limits.
The other reasons are no news to the customer (they pay by invoice, have no
card, or owe nothing)."""


# -- locale -----------------------------------------------------------------


def _parse(locale: object) -> Locale | None:
    if not isinstance(locale, str) or not locale.strip():
        return None
    try:
        return Locale.parse(locale.strip().replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def resolve_locale(locale: str) -> str:
    """The locale whose texts a recipient with *locale* reads.

    A language-only or regional match counts (``"nb"``, ``"nn"``, ``"no"`` →
    ``"nb_NO"``; ``"sv_FI"`` → ``"sv_SE"``); anything else reads ``"en_GB"``.
    """
    parsed = _parse(locale)
    if parsed is None:
        return _FALLBACK
    return _LANGUAGES.get(parsed.language, _FALLBACK)


@attrs.frozen
class _Lang:
    texts: Mapping[str, str]
    babel: str  # the Babel locale of dates and amounts, e.g. "sv_FI"
    tag: str
    labels: Mapping[str, str]  # the texts without fields, formatted once
    dotted: Mapping[str, tuple[str, ...]]  # by text: its fields before a "."

    def __call__(self, key: str, **values: object) -> str:
        if not values:
            label = self.labels.get(key)
            if label is not None:
                return label
        template = self.texts[key]
        for name in self.dotted.get(key, ()):  # "1.835 kr." ends a sentence once
            if str(values[name]).endswith("."):
                template = template.replace("{" + name + "}.", "{" + name + "}")
        return template.format_map(values)


def _lang(locale: str) -> _Lang:
    return _lang_for(locale if isinstance(locale, str) else "")


@functools.lru_cache(maxsize=256)
def _lang_for(locale: str) -> _Lang:
    chosen = resolve_locale(locale)
    own = Locale.parse(chosen)
    parsed = _parse(locale)
    babel = own
    if parsed is not None and parsed.language == own.language and parsed.territory:
        babel = parsed  # the recipient's region: sv_FI, en_US
    texts = TEXTS[chosen]
    fields = {
        key: [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        for key, text in texts.items()
    }
    labels = {key: text.format() for key, text in texts.items() if not fields[key]}
    dotted = {
        key: tuple(name for name in fields[key] if "{" + name + "}." in text)
        for key, text in texts.items()
    }
    return _Lang(texts, str(babel), own.language, labels, dotted)


# -- formatting ---------------------------------------------------------------


def _money(value: Money, lang: _Lang) -> str:
    return format_money(value, lang.babel)


def _monies(values: Iterable[Money], lang: _Lang) -> str:
    """Sums per currency, joined with ' + ' (one currency: one amount)."""
    totals: dict[str, Decimal] = {}  # by code: hashing a str is cheap
    for value in values:
        code = value.currency.code
        totals[code] = EXACT.add(totals.get(code, Decimal(0)), value.amount)
    return " + ".join(_money(Money(s, code), lang) for code, s in totals.items())


def _price(amount: Decimal, currency: Currency, lang: _Lang) -> str:
    """A unit price: at least the currency's decimals, more if it has them."""
    return _format_price(str(amount), currency.code, lang.babel)


@functools.lru_cache(maxsize=1024)
def _format_price(amount: str, code: str, locale: str) -> str:
    """:func:`_price` by the amount's text (a template's prices recur)."""
    return format_money(Money(amount, code), locale, exact=True)


def _date(day: date, lang: _Lang, width: str = "long") -> str:
    return _format_date(day, width, lang.babel)


@functools.lru_cache(maxsize=1024)
def _format_date(day: date, width: str, locale: str) -> str:
    return format_date(day, width, locale=locale)


def _local_day(instant: datetime, account: Account) -> date:
    try:
        zone = ZoneInfo(account.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInputError(
            problem=f"account {account.id!r} has the time zone {account.timezone!r}",
            allowed="use an IANA time zone such as 'Europe/Oslo'",
        ) from None
    return instant.astimezone(zone).date()


def _rate(rate: Decimal, lang: _Lang) -> str:
    return _format_rate(str(rate), lang.babel)  # by text: 0 and -0 read differently


def _quantity(quantity: Decimal, lang: _Lang) -> str:
    return _format_quantity(str(quantity), lang.babel)


@functools.lru_cache(maxsize=1024)
def _format_rate(rate: str, locale: str) -> str:
    with localcontext(EXACT):  # cached: never the caller's precision
        text: str = format_percent(
            Decimal(rate) / 100, locale=locale, decimal_quantization=False
        )
    return text


@functools.lru_cache(maxsize=1024)
def _format_quantity(quantity: str, locale: str) -> str:
    with localcontext(EXACT):  # cached: never the caller's precision
        text: str = format_decimal(
            Decimal(quantity), locale=locale, decimal_quantization=False
        )
    return text


# -- blocks: one description, rendered as plain text and as HTML -------------


@attrs.frozen
class _Para:
    text: str


@attrs.frozen
class _Heading:
    text: str


@attrs.frozen
class _Fields:
    rows: tuple[tuple[str, str], ...]


@attrs.frozen
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[int] = frozenset()
    footer: tuple[tuple[str, ...], ...] = ()


@attrs.frozen
class _Link:
    text: str  # the sentence with the URL, for the plain text
    label: str
    url: str


_Block = _Para | _Heading | _Fields | _Table | _Link


def _width(text: str) -> int:
    """The columns *text* takes in a fixed-width font.

    A wide or full-width character (emoji, CJK; East Asian width W or F)
    takes two, a combining mark or other zero-width character (category Mn,
    Me or Cf) none, any other one. Text of Latin, Greek or Cyrillic letters,
    punctuation, currency and math signs (``_NARROW``: Nordic text and
    amounts) takes one column a character, found in one pass at C speed.
    """
    if text.isascii() or _NARROW.fullmatch(text):
        return len(text)
    return sum(
        0
        if unicodedata.category(c) in _ZERO_WIDTH
        else 2
        if unicodedata.east_asian_width(c) in "WF"
        else 1
        for c in text
    )


def _measure(text: str) -> Callable[[str], int]:
    """``len`` when every character of *text* takes one column, else :func:`_width`."""
    return len if text.isascii() or _NARROW.fullmatch(text) else _width


def _odd(text: str) -> bool:
    """Whether *text* has whitespace :func:`_clean` changes."""
    return "\t" in text or "\r" in text or "\x0b" in text or "\x0c" in text


def _one_line(text: str) -> bool:
    """Whether *text* is one line, without whitespace that :func:`_wrap` changes
    or drops (a tab, a trailing space)."""
    return "\n" not in text and not _odd(text) and not text[-1:].isspace()


def _clean(cell: str) -> str:
    """*cell*'s whitespace as :func:`_wrap` leaves it: tabs expanded to tab
    stops of 8 (per line), a carriage return, vertical tab or form feed made
    a space. Line breaks (``\\n``) stay: they break the cell."""
    if "\t" in cell:
        cell = cell.expandtabs()
    return cell.translate(_BLANKS)


def _wrap(
    text: str, width: int = _WIDTH, measure: Callable[[str], int] | None = None
) -> list[str]:
    """*text* in lines of at most *width* columns, as textwrap wraps it (no
    word broken), measured by :func:`_width` (*measure*: by len, if every
    character of *text* is known to take one column, or by _width)."""
    if measure is None:
        measure = _measure(text)
    if measure is len and len(text) <= width and _one_line(text):
        return [text]  # the common case: a line that fits
    lines: list[str] = []
    for line in text.split("\n"):
        if measure is not len:
            lines.extend(_fill(_clean(line), width, measure) or [""])
        elif "\t" in line or "\r" in line or "\x0b" in line or "\x0c" in line:
            lines.extend(
                textwrap.wrap(
                    line, width, break_long_words=False, break_on_hyphens=False
                )
                or [""]
            )
        else:
            lines.extend(_fill(line, width) or [""])
    return lines


def _fill(line: str, width: int, measure: Callable[[str], int] = len) -> list[str]:
    """textwrap's greedy lines for *line* of words and spaces, without its
    setup; *measure* gives a text's width."""
    if measure(line) <= width and not line[-1:].isspace():
        return [line]
    lines: list[str] = []
    words = line.split(" ")
    if "" not in words and all(map(str.strip, words)):
        if measure is len:
            return _greedy(line, width)
        lines.append(words[0])  # words one space apart: each line takes what fits
        size = measure(words[0])
        for word in words[1:]:
            more = measure(word)
            if size + 1 + more <= width:
                lines[-1] += " " + word
                size += 1 + more
            else:
                lines.append(word)
                size = more
        return lines
    chunks = [chunk for chunk in _SPACES.split(line) if chunk]
    chunks.reverse()
    while chunks:
        if lines and not chunks[-1].strip():
            del chunks[-1]  # no line starts with spaces but the first
        current: list[str] = []
        size = 0
        while chunks and size + measure(chunks[-1]) <= width:
            size += measure(chunks[-1])
            current.append(chunks.pop())
        if chunks and not current:
            current.append(chunks.pop())  # a word longer than a line stays whole
        if current and not current[-1].strip():
            del current[-1]
        if current:
            lines.append("".join(current))
    return lines


def _greedy(line: str, width: int) -> list[str]:
    """:func:`_fill` of words one space apart, a column each: every line
    ends at the last space that leaves it *width* long at most (or, if its
    first word is longer, after that word)."""
    lines = []
    while len(line) > width:
        cut = line.rfind(" ", 0, width + 1)
        if cut < 0:
            cut = line.find(" ")  # a word longer than a line stays whole
            if cut < 0:
                break
        lines.append(line[:cut])
        line = line[cut + 1 :]
    lines.append(line)
    return lines


def _span(row: tuple[str, ...]) -> int:
    """How many leading columns a footer row's label spans (up to its first value)."""
    for i in range(1, len(row)):
        if row[i]:
            return i
    return len(row)


def _longest_word(cell: str, measure: Callable[[str], int] = len) -> int:
    """The widest run of *cell* that :func:`_wrap` never breaks."""
    return max(map(measure, _BREAKS.split(cell)))


def _widest_word(cell: str) -> int:
    """:func:`_longest_word` in display width (:func:`_width`)."""
    return _longest_word(cell, _width)


def _row_width(widths: Sequence[int]) -> int:
    """The length of a table line whose columns have *widths* (all filled)."""
    return 2 + sum(widths) + 2 * (len(widths) - 1)


def _narrowed(
    widths: list[int], phases: Sequence[tuple[Sequence[int], Sequence[int]]]
) -> list[int]:
    """*widths* narrowed until a line fits in _WIDTH, if it can.

    Each phase narrows its columns, the widest first, none below its floor,
    until the line fits; the next phase goes on if it does not.
    """
    excess = _row_width(widths) - _WIDTH
    if excess <= 0:
        return widths
    widths = list(widths)
    for group, floors in phases:
        while excess > 0:
            narrow = [i for i in group if widths[i] > floors[i]]
            if not narrow:
                break
            i = max(narrow, key=lambda c: widths[c])
            below = max((widths[c] for c in narrow if c != i), default=0)
            step = max(1, min(excess, widths[i] - max(floors[i], below)))
            widths[i] -= step
            excess -= step
    return widths


def _balanced(text: str, width: int) -> list[str]:
    """*text* in as few lines as *width* takes, each as short as that allows
    (no "(1)" left alone on the last line)."""
    lines = _wrap(text, width)
    floor = _longest_word(text, _measure(text))
    while width > floor and len(_wrap(text, width - 1)) == len(lines):
        width -= 1
    return _wrap(text, width)


_Format = Callable[..., str]


def _formatter(widths: Sequence[int], right: Sequence[bool]) -> _Format:
    """A table line of its cells (given as arguments): two spaces in front and
    between, each cell padded to its column's display width (:func:`_width`),
    right-aligned where *right* says so."""
    measure = _width

    def padded(*cells: str) -> str:
        parts = []
        for cell, width, r in zip(cells, widths, right, strict=True):
            pad = " " * (width - measure(cell))
            parts.append(pad + cell if r else cell + pad)
        return "  " + "  ".join(parts)

    return padded


def _text_table(table: _Table) -> list[str]:
    """The table in plain text, each line at most _WIDTH columns wide.

    A cell too long for its column wraps inside it (the row's other values
    stay on its first line; a word too long for the column starts on the
    next one); so does a footer label
    too long for the columns it spans. Text columns give way first, down to
    their longest word, then amounts, down to theirs. Amounts and words are
    never broken: if they still do not fit, text columns narrow further (down
    to the words of their heading), and a word longer than its column sticks
    out of it. Widths are display widths (:func:`_width`), and each cell's
    whitespace is made what :func:`_wrap` makes it (:func:`_clean`).
    """
    body = (table.header, *table.rows)
    footer = table.footer
    text = "".join(map("".join, body))
    every = text + "".join(map("".join, footer))
    if _odd(every):  # a tab, a lone carriage return: as _wrap makes them
        body = tuple(tuple(map(_clean, row)) for row in body)
        footer = tuple(tuple(map(_clean, row)) for row in footer)
        text = "".join(map("".join, body))
    measure = _measure(every)
    spans = [_span(row) for row in footer]
    values = [("",) * k + row[k:] for row, k in zip(footer, spans, strict=True)]
    widths = _widths((*body, *values), measure)  # a footer's values never wrap
    fits = _row_width(widths) <= _WIDTH
    if not fits:
        longest = _longest_word if measure is len else _widest_word
        words = _widths(body, longest)
        if values:
            words = list(map(max, words, _widths(values, measure)))
        text_columns = [i for i in range(len(widths)) if i not in table.right]
        headings = [longest(cell) for cell in table.header]
        widths = _narrowed(
            widths,
            [
                (text_columns, words),
                (sorted(table.right), words),
                (text_columns, headings),
            ],
        )
    spare = _WIDTH - _row_width(widths)
    for row, k in zip(footer, spans, strict=True):
        room = sum(widths[:k]) + 2 * (k - 1)
        grow = min(measure(row[0]) - room, spare)
        if grow > 0:  # a longer label widens the last column it spans
            widths[k - 1] += grow
            spare -= grow
    right = _aligned(table.right, len(widths))
    line = _line(tuple(widths), right, measure)
    if fits and "\n" not in text:  # the common case: no cell wraps
        out = [line(*row).rstrip() for row in body]
    else:
        out = _wrapped_rows(body, widths, line, measure)
    if footer:
        rule = min(max(map(measure, out)), _row_width(widths))  # not a long word's
        out.append("  " + "-" * (rule - 2))
        out.extend(_footer_lines(footer, spans, widths, right, measure))
    return out


def _widths(
    rows: Sequence[tuple[str, ...]], measure: Callable[[str], int]
) -> list[int]:
    """Each column's widest cell of *rows*, by *measure*."""
    return [max(map(measure, column)) for column in zip(*rows, strict=True)]


@functools.lru_cache(maxsize=64)
def _aligned(right: frozenset[int], size: int) -> tuple[bool, ...]:
    """Which of *size* columns are right-aligned (those in *right*)."""
    return tuple(i in right for i in range(size))


def _line(
    widths: tuple[int, ...], right: tuple[bool, ...], measure: Callable[[str], int]
) -> _Format:
    """A table line of its cells: :func:`_formatter`, or with ``len`` for
    *measure* one format field per column ("{:>12}" is rjust(12))."""
    if measure is not len:
        return _formatter(widths, right)
    return _fields(widths, right).format


@functools.lru_cache(maxsize=256)
def _fields(widths: tuple[int, ...], right: tuple[bool, ...]) -> str:
    """The format string of a table line of columns this wide and aligned."""
    fields = [
        f"{{:{'>' if r else '<'}{width}}}" if width else "{}"
        for width, r in zip(widths, right, strict=True)
    ]
    return "  " + "  ".join(fields)


def _footer_lines(
    footer: Sequence[tuple[str, ...]],
    spans: Sequence[int],
    widths: Sequence[int],
    right: tuple[bool, ...],
    measure: Callable[[str], int],
) -> list[str]:
    """The footer's rows: each label in the columns it spans (wrapped in them
    if too long), then the values in theirs."""
    out: list[str] = []
    lines: dict[int, tuple[int, _Format]] = {}  # by span: its room, its line
    for row, k in zip(footer, spans, strict=True):
        if k not in lines:  # the label's room is a column of the line
            room = sum(widths[:k]) + 2 * (k - 1)
            lines[k] = room, _line((room, *widths[k:]), (False, *right[k:]), measure)
        room, line = lines[k]
        label = row[0]
        if measure(label) <= room and "\n" not in label:
            out.append(line(label, *row[k:]).rstrip())
        else:
            first, *more = _balanced(label, room)
            out.append(line(first, *row[k:]).rstrip())
            out.extend(("  " + label).rstrip() for label in more)
    return out


def _wrapped_rows(
    body: Sequence[tuple[str, ...]],
    widths: Sequence[int],
    line: _Format,
    measure: Callable[[str], int],
) -> list[str]:
    """*body*'s rows formatted by *line*, each cell wrapped in its column.

    A cell whose first line is a word wider than its column (a long URL)
    starts on the row's second line, so that the row's values to its right
    keep their place on the first line.
    """
    out: list[str] = []
    for row in body:
        if all(
            measure(cell) <= w and "\n" not in cell
            for cell, w in zip(row, widths, strict=True)
        ):
            out.append(line(*row).rstrip())
            continue
        cells = [
            [cell]
            if measure(cell) <= w and "\n" not in cell
            else _wrap(cell, w, measure)
            for cell, w in zip(row, widths, strict=True)
        ]
        for i, lines in enumerate(cells):
            if measure(lines[0]) > widths[i] and any(o[0] for o in cells[i + 1 :]):
                lines.insert(0, "")  # below the values it would push out
        for n in range(max(map(len, cells))):
            parts = [lines[n] if n < len(lines) else "" for lines in cells]
            out.append(line(*parts).rstrip())
    return out


def _text_fields(block: _Fields) -> list[str]:
    """Labels and values in two columns; a long value wraps in its column."""
    width = max(len(label) for label, _ in block.rows) + 1
    room = max(1, _WIDTH - width - 2)
    out: list[str] = []
    for label, value in block.rows:
        if len(value) <= room and "\n" not in value:
            out.append(f"{(label + ':').ljust(width)}  {value}")
            continue
        first, *rest = _wrap(value, room)
        out.append(f"{(label + ':').ljust(width)}  {first}".rstrip())
        out.extend((" " * (width + 2) + line).rstrip() for line in rest)
    return out


def _plain(blocks: Sequence[_Block]) -> str:
    text = glue = ""
    for block in blocks:
        if isinstance(block, _Para):
            lines = _wrap(block.text)
        elif isinstance(block, _Heading):
            lines = [block.text, "-" * len(block.text)]
        elif isinstance(block, _Fields):
            lines = _text_fields(block)
        elif isinstance(block, _Table):
            lines = _text_table(block)
        else:
            lines = _wrap(block.text)
        text += (glue if text else "") + "\n".join(lines)
        glue = "\n" if isinstance(block, _Heading) else "\n\n"
    return text + "\n"


def _e(value: str) -> str:
    """*value* escaped as html.escape(value, quote=True) escapes it."""
    if "&" in value or "<" in value or ">" in value or '"' in value or "'" in value:
        return (
            value.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&quot;")
            .replace("'", "&#x27;")
        )
    return value


def _escaped(rows: Sequence[tuple[str, ...]]) -> Sequence[tuple[str, ...]]:
    """*rows* with every cell escaped by :func:`_e` (as they are if none needs it)."""
    text = "".join(map("".join, rows))
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return [tuple(map(_e, row)) for row in rows]
    return rows


@functools.lru_cache(maxsize=256)
def _tr(tag: str, right: frozenset[int], span: int, size: int) -> str:
    """The format string of a table row of *size* cells, a field each: the
    first spanning *span* columns (a footer label, left-aligned) if *span*,
    the cells in *right* right-aligned. Cached: it depends on the layout only."""
    label = f'<th colspan="{span}" style="text-align:left">{{}}</th>' if span else ""
    cells = [
        f"<{tag}{_RIGHT if i in right else ''}>{{}}</{tag}>" for i in range(span, size)
    ]
    return "<tr>" + label + "".join(cells) + "</tr>"


def _table_html(table: _Table) -> str:
    """The table in HTML, each footer label spanning the columns before its values."""
    right, count = table.right, len(table.rows)
    header, *rows = _escaped((table.header, *table.rows, *table.footer))
    body = _tr("td", right, 0, len(header)).format
    foot = ""
    for row in rows[count:]:
        k = _span(row)
        foot += _tr("th", right, k, len(row)).format(row[0], *row[k:])
    return (
        '<table cellpadding="4">'
        f"<thead>{_tr('th', right, 0, len(header)).format(*header)}</thead>"
        f"<tbody>{''.join([body(*row) for row in rows[:count]])}</tbody>"
        + (f"<tfoot>{foot}</tfoot>" if foot else "")
        + "</table>"
    )


_FIELD = '<tr><th style="text-align:left">{}</th><td>{}</td></tr>'


def _html(blocks: Sequence[_Block], *, subject: str, lang: _Lang) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, _Para):
            body.append("<p>" + _e(block.text).replace("\n", "<br>") + "</p>")
        elif isinstance(block, _Heading):
            body.append(f"<h3>{_e(block.text)}</h3>")
        elif isinstance(block, _Fields):
            rows = "".join([_FIELD.format(*row) for row in _escaped(block.rows)])
            body.append(f"<table>{rows}</table>")
        elif isinstance(block, _Table):
            body.append(_table_html(block))
        else:
            body.append(f'<p><a href="{_e(block.url)}">{_e(block.label)}</a></p>')
    return (
        f'<!DOCTYPE html>\n<html lang="{_e(lang.tag)}">\n<head>'
        f'<meta charset="utf-8"><title>{_e(subject)}</title></head>\n'
        '<body style="font-family:sans-serif">\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _message(
    recipient: str, subject: str, blocks: Sequence[_Block], lang: _Lang
) -> Message:
    return Message(
        recipient=recipient,
        subject=" ".join(subject.split()),  # a name with a line break stays one line
        text=_plain(blocks),
        html=_html(blocks, subject=subject, lang=lang),
        headers={"Auto-Submitted": "auto-generated", "Content-Language": lang.tag},
    )


# -- input checks ---------------------------------------------------------------


def _need(value: object, kind: type, name: str) -> None:
    if not isinstance(value, kind):
        raise InvalidInputError(
            problem=f"{name} is {type(value).__name__}",
            allowed=f"give a recurbill {kind.__name__}",
        )


def _same_account(account: Account, what: str, account_id: str) -> None:
    if account_id != account.id:
        raise InvalidInputError(
            problem=f"{what} belongs to account {account_id!r}, not {account.id!r}",
            allowed="render a record with the account it belongs to",
        )


def _customer_of(account: Account, customer: Customer, what: str, owner: str) -> None:
    _need(account, Account, "account")
    _need(customer, Customer, "customer")
    _same_account(account, f"customer {customer.id!r}", customer.account_id)
    if owner != customer.id:
        raise InvalidInputError(
            problem=f"{what} belongs to customer {owner!r}, not {customer.id!r}",
            allowed="render a record with the customer it belongs to",
        )


def _numbers(invoice_numbers: object) -> tuple[str, ...]:
    if isinstance(invoice_numbers, str) or not isinstance(invoice_numbers, Sequence):
        raise InvalidInputError(
            problem=f"invoice_numbers {invoice_numbers!r} is not a list",
            allowed="give a list of invoice numbers, e.g. ['INV-000041']",
        )
    numbers = tuple(invoice_numbers)
    if not numbers or not all(isinstance(n, str) and n.strip() for n in numbers):
        raise InvalidInputError(
            problem=f"invoice_numbers {list(numbers)!r} is empty or has blanks",
            allowed="give at least one non-empty invoice number",
        )
    return numbers


def _amount(amount: object) -> Money:
    if not isinstance(amount, Money):
        raise InvalidInputError(
            problem=f"amount {amount!r} is not Money",
            allowed="give Money, e.g. Money('1234.50', 'NOK')",
        )
    return amount


# -- the messages ---------------------------------------------------------------


SUMMARY_ROWS = 500
"""The most lines a table of the daily summary lists, so that a month end that
issues a million invoices still makes an e-mail of a few hundred kB (mail
servers refuse messages of tens of MB)."""


_L = TypeVar("_L")


def _section(
    blocks: list[_Block],
    t: _Lang,
    heading: str,
    lines: Sequence[_L],
    table: Callable[[Sequence[_L]], _Table],
) -> None:
    """A heading with the count of *lines*, the *table* of the first
    :data:`SUMMARY_ROWS` of them, and how many it leaves out (nothing if none)."""
    if not lines:
        return
    blocks.append(_Heading(t(heading, count=len(lines))))
    blocks.append(table(lines[:SUMMARY_ROWS]))
    if len(lines) > SUMMARY_ROWS:
        blocks.append(_Para(t("summary.more", count=len(lines) - SUMMARY_ROWS)))


def render_summary(account: Account, report: RunReport) -> Message:
    """The daily summary of *report*, to the account's summary address.

    Lists what was issued (number, customer, date, amount, with a total), card
    payments and their outcome (paid, declined with the reason, waiting for the
    customer, still processing at the bank, outcome unknown and being checked,
    canceled, not sent yet because the gateway stopped the run), totalled per
    outcome, invoices not charged because a card cannot take their amount
    (e-mailed to the customer as invoices instead), occurrences skipped while
    paused and recurring invoices that ended; first of all, any that could not
    be issued, with the problem, then the stored payments and invoices the run
    set aside because their rows could not be read. Everything is in the
    account's language but the gateway's code of a rare decline and each
    problem's details, the error's own words (in English), which follow its
    table. An empty report says
    there is nothing to report. Each table lists at most :data:`SUMMARY_ROWS`
    lines and says how many more there are; its totals count them all (the
    report itself has every line).
    """
    _need(account, Account, "account")
    _need(report, RunReport, "report")
    _same_account(account, "the run report", report.account_id)
    t = _lang(account.locale)
    day = _date(_local_day(report.as_of, account), t)
    blocks: list[_Block] = [_Para(t("summary.intro", date=day, account=account.name))]
    if report.is_empty:
        blocks.append(_Para(t("summary.nothing")))
    if report.failed:  # first: it needs the reader's attention
        _section(blocks, t, "summary.failed", report.failed, lambda s: _failed(s, t))
        outgrown = sum(  # the account's reference scheme, not the templates
            line.error == errors.ReferenceLengthError.__name__ for line in report.failed
        )
        if outgrown < len(report.failed):
            blocks.append(_Para(t("summary.failed_note")))
        if outgrown:
            blocks.append(_Para(t("summary.failed_reference_note")))
        blocks.append(_Para(t("summary.failed_details")))
        blocks.extend(  # the errors' own words (English), to correct them by
            _Para(
                f"{line.customer_name}, {line.description or line.template_id}: "
                f"{line.problem}"
            )
            for line in report.failed[:SUMMARY_ROWS]
        )
    if report.unreadable:  # a person must correct these rows too
        _unreadable(blocks, t, report.unreadable)
    issued, charges = report.issued, report.charges
    _section(
        blocks, t, "summary.issued", issued, lambda shown: _issued(shown, issued, t)
    )
    _section(
        blocks,
        t,
        "summary.charges",
        charges,
        lambda shown: _charges(shown, charges, t),
    )
    uncharged = report.uncharged
    _section(
        blocks,
        t,
        "summary.uncharged",
        uncharged,
        lambda shown: _uncharged(shown, uncharged, t),
    )
    if uncharged:
        blocks.append(_Para(t("summary.uncharged_note")))
    _section(blocks, t, "summary.skipped", report.skipped, lambda s: _skipped(s, t))
    _section(blocks, t, "summary.ended", report.ended, lambda s: _ended(s, t))
    subject = t("summary.subject", account=account.name, date=day)
    return _message(account.summary_email, subject, blocks, t)


def _unreadable(
    blocks: list[_Block], t: _Lang, lines: Sequence[UnreadableLine]
) -> None:
    """The summary's stored rows the run set aside: a heading, what to do, and
    each error's own words (English), the first :data:`SUMMARY_ROWS` of them."""
    blocks.append(_Heading(t("summary.unreadable", count=len(lines))))
    blocks.append(_Para(t("summary.unreadable_note")))
    blocks.append(_Para(t("summary.failed_details")))
    blocks.extend(_Para(line.problem) for line in lines[:SUMMARY_ROWS])
    if len(lines) > SUMMARY_ROWS:
        blocks.append(_Para(t("summary.more", count=len(lines) - SUMMARY_ROWS)))


def _issued(
    shown: Sequence[IssuedLine], every: Sequence[IssuedLine], t: _Lang
) -> _Table:
    """The summary's issued invoices: *shown* listed, *every* one totalled."""
    return _Table(
        header=(
            t("summary.col.invoice"),
            t("summary.col.customer"),
            t("summary.col.date"),
            t("summary.col.amount"),
        ),
        rows=tuple(
            (
                line.invoice_number,
                line.customer_name,
                _date(line.issue_date, t, "medium"),
                _money(line.total, t),
            )
            for line in shown
        ),
        right=frozenset({3}),
        footer=(
            (
                t("summary.issued_total"),
                "",
                "",
                _monies((line.total for line in every), t),
            ),
        ),
    )


def _charges(
    shown: Sequence[ChargeLine], every: Sequence[ChargeLine], t: _Lang
) -> _Table:
    """The summary's card payments: *shown* listed, *every* one totalled by outcome."""

    def result(line: ChargeLine) -> str:
        status = t(f"status.{line.status.value}")
        if not line.decline_code:
            return status
        known = _DECLINES.get(line.decline_code)
        reason = t(f"summary.{known}") if known else line.decline_code
        return f"{status} ({reason})"

    footer = []
    for status in _OUTCOMES:
        chosen = [line for line in every if line.status is status]
        if chosen:
            footer.append(
                (
                    f"{t(f'summary.total_{status.value}')} ({len(chosen)})",
                    "",
                    _monies((line.amount for line in chosen), t),
                    "",
                )
            )
    return _per_payment(shown, t, result, footer)


def _uncharged(
    shown: Sequence[UnchargedLine], every: Sequence[UnchargedLine], t: _Lang
) -> _Table:
    """The summary's invoices a card could not be charged (sent as invoices)."""

    def result(line: UnchargedLine) -> str:
        reason = t(f"summary.uncharged.{line.reason.value}")
        return t("summary.uncharged.retry", reason=reason) if line.retry else reason

    total = (
        t("summary.uncharged_total"),
        "",
        _monies((line.amount for line in every), t),
        "",
    )
    return _per_payment(shown, t, result, [total])


_P = TypeVar("_P", ChargeLine, UnchargedLine)


def _per_payment(
    shown: Sequence[_P],
    t: _Lang,
    result: Callable[[_P], str],
    footer: Sequence[tuple[str, ...]],
) -> _Table:
    """A summary table of one payment (or uncharged invoice) per row: invoice,
    customer, amount and *result*, with *footer* below."""
    return _Table(
        header=(
            t("summary.col.invoice"),
            t("summary.col.customer"),
            t("summary.col.amount"),
            t("summary.col.result"),
        ),
        rows=tuple(
            (
                line.invoice_number,
                line.customer_name,
                _money(line.amount, t),
                result(line),
            )
            for line in shown
        ),
        right=frozenset({2}),
        footer=tuple(footer),
    )


def _skipped(shown: Sequence[SkippedLine], t: _Lang) -> _Table:
    """The summary's occurrences skipped while paused."""
    dates = [_date(line.on, t, "medium") for line in shown]
    return _per_template(shown, t, "summary.col.date", dates)


def _failed(shown: Sequence[FailedLine], t: _Lang) -> _Table:
    """The summary's recurring invoices that could not be issued, and why."""
    return _per_template(
        shown, t, "summary.col.problem", [_problem(line, t) for line in shown]
    )


def _problem(line: FailedLine, t: _Lang) -> str:
    """What was wrong with a template, in a few words of the reader's language."""
    kind = getattr(errors, line.error, None) if line.error in errors.__all__ else None
    for cls in kind.__mro__ if isinstance(kind, type) else ():
        key = _PROBLEMS.get(cls)
        if key is not None:
            return t(key)
    return t("summary.problem.other")


def _ended(shown: Sequence[EndedLine], t: _Lang) -> _Table:
    """The summary's recurring invoices that ended."""
    return _per_template(shown, t)


def _per_template(
    shown: Sequence[SkippedLine | FailedLine | EndedLine],
    t: _Lang,
    column: str | None = None,
    values: Sequence[str] = (),
) -> _Table:
    """A table of *shown*'s customers and recurring invoices, then *column*."""
    header = (t("summary.col.customer"), t("summary.col.template"))
    rows = [
        (line.customer_name, line.description or line.template_id) for line in shown
    ]
    if column is None:
        return _Table(header=header, rows=tuple(rows))
    return _Table(
        header=(*header, t(column)),
        rows=tuple((*row, value) for row, value in zip(rows, values, strict=True)),
    )


def _totals(invoice: Invoice, account: Account) -> Totals | None:
    """*invoice*'s totals computed from its lines, allowances and charges
    (None if they cannot be)."""
    try:
        return compute_totals(
            invoice.lines,
            currency=invoice.currency,
            allowances=invoice.allowances,
            charges=invoice.charges,
            rounding=account.rounding,
        )
    except RecurbillError:
        return None


def _vat_rows(
    invoice: Invoice, totals: Totals | None, t: _Lang
) -> list[tuple[str, str, str, str, str]]:
    """VAT per rate when the *totals* computed from the lines, allowances and
    charges reproduce the stored totals, else one row."""
    if (
        totals is not None
        and totals.tax_exclusive == invoice.net_total
        and totals.vat_total == invoice.vat_total
        and totals.vat_breakdown
    ):
        rows = []
        for group in totals.vat_breakdown:
            label = t(
                "invoice.vat_rate",
                rate=_rate(group.rate, t),
                base=_money(group.taxable, t),
            )
            if group.exemption_reason:
                label += f" ({group.exemption_reason})"
            rows.append((label, "", "", "", _money(group.tax, t)))
        return rows
    return [(t("invoice.vat"), "", "", "", _money(invoice.vat_total, t))]


def _line_rows(
    line: InvoiceLine, net: Money | None, invoice: Invoice, account: Account, t: _Lang
) -> list[tuple[str, str, str, str, str]]:
    """A line's row, then one row per line allowance or charge.

    A price per more than one unit reads "15,24 kr per 12". With allowances or
    charges, the line's amount is quantity × price (BT-131 before them) and
    each follows with its own amount, so the column adds up to the line net.
    *net* is the line's net (BT-131) if the totals computed it, else None.
    """
    currency, rounding = invoice.currency, account.rounding
    price = _price(line.unit_price, currency, t)
    if line.base_quantity != 1:
        price = t(
            "invoice.price_per", price=price, base=_quantity(line.base_quantity, t)
        )
    items = [*line.charges, *line.allowances]
    if net is not None and not items:
        amount = _money(net, t)  # the line's net is quantity × price
    else:
        try:
            plain = attrs.evolve(line, allowances=(), charges=()) if items else line
            amount = _money(line_net(plain, currency, rounding=rounding), t)
        except RecurbillError:
            amount = ""
    rows = [
        (
            line.description,
            _quantity(line.quantity, t),
            price,
            _rate(line.vat_rate, t),
            amount,
        )
    ]
    for item in items:
        label, shown = _item_cells(item, "invoice.line_", currency, rounding, t)
        rows.append((label, "", "", "", shown))
    return rows


def _item_cells(
    item: AllowanceCharge, prefix: str, currency: Currency, rounding: str, t: _Lang
) -> tuple[str, str]:
    """An allowance or charge's label (with its percentage and reason) and its
    amount: negative for an allowance, blank if it cannot be computed."""
    kind = "charge" if item.is_charge else "allowance"
    if item.amount is None and item.percentage is not None:
        base = Money(item.base_amount, currency)
        label = t(
            f"{prefix}{kind}_percent",
            percentage=_rate(item.percentage, t),
            base=format_money(base, t.babel, exact=True),
        )
    else:
        label = t(f"{prefix}{kind}")
    if item.reason:
        label += f" ({item.reason})"
    try:
        value = allowance_charge_amount(item, currency, rounding=rounding)
        shown = _money(value if item.is_charge else -value, t)
    except RecurbillError:
        shown = ""
    return label, shown


def _document_rows(
    invoice: Invoice, account: Account, t: _Lang
) -> list[tuple[str, str, str, str, str]]:
    """One row per document-level allowance, then charge: its label with the
    reason, its VAT rate and its amount (the column adds up to the net total)."""
    rows = []
    for item in (*invoice.allowances, *invoice.charges):
        label, shown = _item_cells(
            item, "invoice.", invoice.currency, account.rounding, t
        )
        rate = _rate(item.vat_rate or Decimal(0), t)
        rows.append((label, "", "", rate, shown))
    return rows


def render_invoice(
    account: Account,
    customer: Customer,
    invoice: Invoice,
    *,
    on: date | None = None,
    not_charged: NoChargeReason | None = None,
) -> Message:
    """The invoice e-mail to the customer, in the customer's language.

    Number, invoice and due dates, the account to pay to, payment reference
    (KID/OCR) and the seller's VAT number, the lines with VAT rate and
    amount, then each document-level allowance and charge with its reason,
    VAT rate and amount, totals with VAT per rate, what is left to pay, and a
    request to pay it by the due date, to the account, with the reference.
    The account to pay to and the VAT number are the account's
    :attr:`~recurbill.records.Account.payee_account` and
    :attr:`~recurbill.records.Account.vat_number`; without them the e-mail
    shows neither. (An invoice charged to a saved card gets no invoice
    e-mail but a receipt, or a note that the payment did not go through; so
    the e-mail never promises a card charge.)

    *on* is the day the e-mail is written (the account's local day). When the
    due date is before it (an automatic charge whose retries ended after the
    due date), the request is to pay now, saying when the invoice was due:
    the due date stays as issued (EN 16931 BT-9) and is never presented as a
    day still to pay by. Without *on*, the request is always to pay by the
    due date. An *on* that is not a date is an
    :class:`~recurbill.errors.InvalidInputError`.

    *not_charged* is why the customer's card was not charged automatically
    (:func:`~recurbill.chargeable.no_automatic_charge`). When the card cannot
    take the amount (``below_minimum``, ``above_maximum``,
    ``not_increment``), the request to pay starts with one sentence saying
    so, for a customer who expects card payments; the other reasons, like
    None, change nothing. A value that is not a
    :class:`~recurbill.records.NoChargeReason`, or a card limit for a
    customer who is not charged automatically (whose card is never charged), is
    an :class:`~recurbill.errors.InvalidInputError`.
    """
    what = f"invoice {invoice.id!r}"
    _customer_of(account, customer, what, invoice.customer_id)
    _need(invoice, Invoice, "invoice")
    _same_account(account, what, invoice.account_id)
    overdue = on is not None and invoice.due_date < arguments.day(on, "on")
    why = _why_not_charged(not_charged, customer)
    t = _lang(customer.locale)
    number = invoice.display_number
    due = _date(invoice.due_date, t)
    fields = [
        (t("invoice.number"), number),
        (t("invoice.issue_date"), _date(invoice.issue_date, t)),
        (t("invoice.due_date"), due),
    ]
    fields += _payee_fields(account.payee_account, t)
    kind = reference_kind(invoice.currency.code)  # named by what it is
    if invoice.payment_reference:
        fields.append((t(f"invoice.reference.{kind}"), invoice.payment_reference))
    if account.vat_number is not None:
        fields.append((t("invoice.vat_number"), account.vat_number))
    outstanding = invoice.outstanding
    totals = _totals(invoice, account)
    footer = [
        (t("invoice.net_total"), "", "", "", _money(invoice.net_total, t)),
        *_vat_rows(invoice, totals, t),
        (
            t("invoice.total"),
            "",
            "",
            "",
            _money(invoice.net_total + invoice.vat_total, t),
        ),
    ]
    settled = invoice.paid + invoice.credited
    if settled:
        footer.append((t("invoice.settled"), "", "", "", _money(-settled, t)))
    due_amount = _money(outstanding, t)
    footer.append((t("invoice.amount_due"), "", "", "", due_amount))
    nets = (None,) * len(invoice.lines) if totals is None else totals.line_nets
    blocks: list[_Block] = [
        _Para(t("greeting", name=customer.name)),
        _Para(t("invoice.intro", number=number, account=account.name)),
        _Fields(tuple(fields)),
        _Table(
            header=(
                t("invoice.col.description"),
                t("invoice.col.quantity"),
                t("invoice.col.unit_price"),
                t("invoice.col.vat"),
                t("invoice.col.amount"),
            ),
            rows=(
                *(
                    row
                    for line, net in zip(invoice.lines, nets, strict=True)
                    for row in _line_rows(line, net, invoice, account, t)
                ),
                *_document_rows(invoice, account, t),
            ),
            right=frozenset({1, 2, 3, 4}),
            footer=tuple(footer),
        ),
    ]
    if invoice.memo:
        blocks.append(_Para(invoice.memo))
    if outstanding.amount <= 0:
        blocks.append(_Para(t("invoice.paid")))
    else:
        request = "invoice.pay_now" if overdue else "invoice.pay_by_transfer"
        how = _request_to_pay(request, account.payee_account, t, due_amount, due)
        if why is not None:
            how = t(why) + " " + how
        if invoice.payment_reference:
            how += " " + t(
                f"invoice.use_reference.{kind}", reference=invoice.payment_reference
            )
        blocks.append(_Para(how))
    blocks.append(_Para(t("signoff", account=account.name)))
    subject = t("invoice.subject", number=number, account=account.name)
    return _message(customer.email, subject, blocks, t)


def _payee_fields(payee: PayeeAccount | None, t: _Lang) -> list[tuple[str, str]]:
    """The invoice fields of the account customers pay to: none without one."""
    if payee is None:
        return []
    fields = [(t(f"invoice.payee.{payee.kind.value}"), payee.display)]
    if payee.bic is not None:
        fields.append((t("invoice.payee.bic"), payee.bic))
    return fields


def _request_to_pay(
    request: str, payee: PayeeAccount | None, t: _Lang, amount: str, due: str
) -> str:
    """The sentence asking to pay *amount*, naming the account to pay to if any."""
    if payee is None:
        return t(request, amount=amount, due_date=due)
    to = t(f"invoice.pay_to.{payee.kind.value}", number=payee.display)
    return t(request + "_to", amount=amount, due_date=due, payee=to)


def _why_not_charged(not_charged: object, customer: Customer) -> str | None:
    """The text key of the sentence saying why *customer*'s card was not
    charged (*not_charged*), or None when the e-mail need not say it."""
    if not_charged is None:
        return None
    try:
        reason = NoChargeReason(not_charged)
    except ValueError:
        known = ", ".join(repr(r.value) for r in NoChargeReason)
        raise InvalidInputError(
            problem=f"not_charged {not_charged!r} is not a reason for no charge",
            allowed=f"None or a NoChargeReason: {known}",
        ) from None
    key = _NOT_CHARGED.get(reason)
    if key is not None and (
        customer.collection_method is not CollectionMethod.CHARGE_AUTOMATICALLY
    ):
        raise InvalidInputError(
            problem=f"not_charged {reason.value!r} for customer {customer.id!r}, "
            "who is not charged automatically",
            allowed="a card limit only for a charge_automatically customer; "
            "None or 'send_invoice' for one who pays by invoice",
        )
    return key


def render_receipt(
    account: Account,
    customer: Customer,
    receipt: Receipt,
) -> Message:
    """The receipt e-mail for a succeeded payment, in the customer's language.

    Lists every invoice the payment settled (a mass payment settles several)
    with the amount applied to each, any amount kept as credit, the total, the
    card (brand and last four digits) and the payment date: the day, in the
    account's time zone, of the receipt's ``paid_at`` (when the card was
    charged, which may be before the receipt was issued: a charge whose
    answer was lost).
    """
    what = f"receipt {receipt.id!r}"
    _customer_of(account, customer, what, receipt.customer_id)
    _need(receipt, Receipt, "receipt")
    _same_account(account, what, receipt.account_id)
    t = _lang(customer.locale)
    paid_on = _date(_local_day(receipt.paid_at, account), t)
    card = t(
        "receipt.card", brand=_brand(receipt.card_brand, t), last4=receipt.card_last4
    )
    amount = _money(receipt.amount, t)
    credit = _money(receipt.credit, t) if receipt.credit else ""
    footer = []
    if credit:
        footer.append((t("receipt.credit_label"), credit))
    footer.append((t("receipt.total"), amount))
    many = len(receipt.items) != 1
    blocks: list[_Block] = [
        _Para(t("greeting", name=customer.name)),
        _Para(t("receipt.intro", amount=amount)),
        _Fields(
            (
                (t("receipt.number"), receipt.number),
                (t("receipt.date"), paid_on),
                (t("receipt.method"), card),
            )
        ),
        _Heading(t("receipt.settled_other" if many else "receipt.settled_one")),
        _Table(
            header=(t("label.invoice"), t("label.amount")),
            rows=tuple(
                (item.invoice_number, _money(item.amount, t)) for item in receipt.items
            ),
            right=frozenset({1}),
            footer=tuple(footer),
        ),
    ]
    if credit:
        blocks.append(_Para(t("receipt.credit", amount=credit, account=account.name)))
    blocks.append(_Para(t("signoff", account=account.name)))
    subject = t("receipt.subject", number=receipt.number, account=account.name)
    return _message(customer.email, subject, blocks, t)


_BRANDS = {
    "amex": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos Australia",
    "interac": "Interac",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}
"""Card brands as the gateway names them (Stripe's codes), as people write them."""


def _brand(code: str, t: _Lang) -> str:
    """A card brand for people: its proper name, or "card" when it is not known."""
    known = _BRANDS.get(code.lower())
    if known is not None:
        return known
    return t("receipt.card_unknown") if code.lower() in ("", "unknown") else code


def _url(action_url: object) -> str | None:
    if action_url is None:
        return None
    if (
        not isinstance(action_url, str)
        or not action_url.startswith(("https://", "http://"))
        or any(c.isspace() for c in action_url)
    ):
        raise InvalidInputError(
            problem=f"action_url {action_url!r} is not a web address",
            allowed="give an http(s) URL without spaces, or None",
        )
    return action_url


def _invoice_fields(numbers: tuple[str, ...], amount: Money, t: _Lang) -> _Fields:
    label = t("label.invoice" if len(numbers) == 1 else "label.invoices")
    return _Fields(
        ((label, ", ".join(numbers)), (t("label.amount"), _money(amount, t)))
    )


def render_payment_needs_action(
    account: Account,
    customer: Customer,
    invoice_numbers: Sequence[str],
    amount: Money,
    action_url: str | None = None,
) -> Message:
    """Ask the customer to confirm a card payment their bank held back (3-D Secure).

    With *action_url* the message links to the confirmation page; without it,
    it sends the customer to their payment overview.
    """
    _customer_of(account, customer, "the payment", customer.id)
    numbers = _numbers(invoice_numbers)
    money = _amount(amount)
    url = _url(action_url)
    t = _lang(customer.locale)
    blocks: list[_Block] = [
        _Para(t("greeting", name=customer.name)),
        _Para(t("action.intro", amount=_money(money, t))),
        _invoice_fields(numbers, money, t),
        (
            _Link(t("action.link", url=url), t("action.button"), url)
            if url
            else _Para(t("action.no_link", account=account.name))
        ),
        _Para(t("signoff", account=account.name)),
    ]
    subject = t("action.subject", account=account.name)
    return _message(customer.email, subject, blocks, t)


def render_payment_failed(
    account: Account,
    customer: Customer,
    invoice_numbers: Sequence[str],
    amount: Money,
    decline_code: str | None,
) -> Message:
    """Tell the customer a card payment was declined and the invoices stay open.

    Common decline codes are explained (insufficient funds, expired card,
    limit reached, a temporary error); any other code, including the ones that
    must not be shown to a cardholder (``lost_card``, ``fraudulent``), reads as
    "the bank declined the payment".
    """
    _customer_of(account, customer, "the payment", customer.id)
    numbers = _numbers(invoice_numbers)
    money = _amount(amount)
    if decline_code is not None and not isinstance(decline_code, str):
        raise InvalidInputError(
            problem=f"decline_code {decline_code!r} is not text",
            allowed="give the gateway's decline code, e.g. 'insufficient_funds'",
        )
    t = _lang(customer.locale)
    reason = t(_DECLINES.get(decline_code or "", "decline.generic"))
    blocks: list[_Block] = [
        _Para(t("greeting", name=customer.name)),
        _Para(t("failed.intro", amount=_money(money, t))),
        _invoice_fields(numbers, money, t),
        _Para(t("failed.reason", reason=reason)),
        _Para(t("failed.next_one" if len(numbers) == 1 else "failed.next_other")),
        _Para(t("signoff", account=account.name)),
    ]
    subject = t("failed.subject", account=account.name)
    return _message(customer.email, subject, blocks, t)


def notification_for(
    message: Message,
    *,
    id: str,
    account_id: str,
    kind: str,
    created_at: datetime,
) -> Notification:
    """The outbox row that will deliver *message* (store it with its event)."""
    _need(message, Message, "message")
    return Notification(
        id=id,
        account_id=account_id,
        kind=kind,
        recipient=message.recipient,
        subject=message.subject,
        text=message.text,
        html=message.html or "",
        headers=dict(message.headers),
        created_at=created_at,
    )
