"""Invoice lines, allowances and charges, VAT breakdown, totals, credit notes.

Pure calculations after the European e-invoicing norm EN 16931 (Norway's EHF
and the Peppol BIS Billing 3.0 invoices are profiles of it):

* line net = round(quantity × net price / base quantity) + line charges
  − line allowances, each amount rounded to the currency's decimals;
* VAT per category **and rate**, never per line: taxable = Σ line nets
  + Σ document charges − Σ document allowances of that category and rate,
  tax = round(taxable × rate / 100) (BR-CO-17);
* document totals BT-106 … BT-115 after BR-CO-10 … BR-CO-16.

Rounding is half-up unless the caller passes another :mod:`decimal` rounding
mode. Every amount is rounded once, from its exact value: the calculators
compute in recurbill's own decimal context (:data:`~recurbill.money.EXACT`),
whatever context the caller has set. No clock, no I/O.

>>> from decimal import Decimal
>>> line = InvoiceLine(description="Session", quantity=Decimal(1),
...                    unit_price=Decimal("800"), vat_rate=Decimal(25))
>>> str(compute_totals([line], currency="NOK").amount_due)
'1000.00 NOK'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import attrs

from recurbill.errors import (
    CreditExceedsInvoiceError,
    CurrencyMismatchError,
    InvalidInputError,
    InvalidInvoiceError,
    VatCategoryError,
)
from recurbill.inputs import instance, sequence, text
from recurbill.money import (
    EXACT,
    ROUNDING_MODES,
    Currency,
    Money,
    decimals_of,
    divide,
    round_decimal,
    to_decimal,
)

__all__ = [
    "AllowanceCharge",
    "CreditNote",
    "Inconsistency",
    "InvoiceLine",
    "Totals",
    "VatCategory",
    "VatSubtotal",
    "allowance_charge_amount",
    "amount_owed",
    "cash_rounding",
    "check_consistency",
    "compute_totals",
    "credit_note",
    "creditable_amount",
    "full_credit_note",
    "line_net",
    "totals_from_line_nets",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
MAX_LINE_DIGITS = 12
"""Digits a line's quantity, prices or VAT rate, and an allowance or charge's
amount, base or percentage, may have before the decimal point..."""
MAX_LINE_DECIMALS = 28
"""... and after it (a quantity of 4/3 hours has 27). Within these limits every
amount the calculators make is exact before it is rounded, and far below
:data:`~recurbill.money.MAX_AMOUNT_DIGITS`."""
_LINE_LIMIT = Decimal(10**MAX_LINE_DIGITS)
_TOLERANCE = Decimal("0.02")


class VatCategory(str, enum.Enum):
    """EN 16931 VAT category codes (UNCL 5305 subset, BT-151 / BT-118).

    ``S`` is the only category of the core set with a positive rate; ``Z``,
    ``E``, ``AE``, ``K``, ``G`` and ``O`` have rate 0, and ``E``, ``AE``,
    ``K``, ``G`` and ``O`` need an exemption reason. The regional codes of the
    norm are also accepted: ``B`` (Italian split payment, positive rate, never
    together with ``S``), ``L`` (Canary Islands IGIC) and ``M`` (Ceuta and
    Melilla IPSI), whose rate is zero or positive.
    """

    STANDARD = "S"
    ZERO = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    OUTSIDE_SCOPE = "O"
    SPLIT_PAYMENT = "B"
    CANARY_ISLANDS = "L"
    CEUTA_MELILLA = "M"


_POSITIVE_RATE = frozenset({VatCategory.STANDARD, VatCategory.SPLIT_PAYMENT})
_ANY_RATE = frozenset({VatCategory.CANARY_ISLANDS, VatCategory.CEUTA_MELILLA})
_NEEDS_REASON = frozenset(
    {
        VatCategory.EXEMPT,
        VatCategory.REVERSE_CHARGE,
        VatCategory.INTRA_COMMUNITY,
        VatCategory.EXPORT,
        VatCategory.OUTSIDE_SCOPE,
    }
)
_CODES = ", ".join(c.value for c in VatCategory)


def _to_category(value: object) -> VatCategory:
    if isinstance(value, VatCategory):
        return value
    try:
        return VatCategory(str(value).strip().upper())
    except ValueError:
        raise VatCategoryError(
            problem=f"unknown VAT category {value!r}",
            allowed=f"use one of the EN 16931 codes {_CODES}",
        ) from None


def _to_optional_category(value: object) -> VatCategory | None:
    return None if value is None else _to_category(value)


def _to_optional_decimal(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _to_reason(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInvoiceError(
            problem=f"exemption reason {value!r} is not text",
            allowed="give the VAT exemption reason as a string, or None",
        )
    return value.strip() or None


def _check_vat(
    category: VatCategory, rate: Decimal, reason: str | None, where: str
) -> None:
    """Raise VatCategoryError when *rate* or *reason* break *category*'s rules."""
    code = category.value
    if not 0 <= rate <= _HUNDRED:
        raise VatCategoryError(
            problem=f"{where} has VAT rate {rate}",
            allowed="VAT rates are percentages from 0 to 100, e.g. 25",
        )
    if category in _POSITIVE_RATE:
        if rate == 0:
            raise VatCategoryError(
                problem=f"{where} has VAT category {code} with rate 0 (the "
                "default when no vat_rate is given)",
                allowed=(
                    f"give category {code} its positive rate, e.g. vat_rate=25; "
                    "use Z for zero-rated goods or E/AE/K/G/O with an exemption "
                    "reason"
                ),
            )
    elif category not in _ANY_RATE and rate != 0:
        raise VatCategoryError(
            problem=f"{where} has VAT category {code} with rate {rate}",
            allowed=f"category {code} must have rate 0; only S (and B, L, M) carry VAT",
        )
    if category in _NEEDS_REASON:
        if reason is None:
            raise VatCategoryError(
                problem=f"{where} has VAT category {code} without an exemption reason",
                allowed=(
                    f"category {code} needs an exemption reason text or code "
                    "(e.g. 'VATEX-EU-AE' or 'Reverse charge')"
                ),
            )
    elif reason is not None:
        raise VatCategoryError(
            problem=f"{where} has VAT category {code} with reason {reason!r}",
            allowed=f"only E, AE, K, G and O take an exemption reason, not {code}",
        )


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@attrs.frozen(kw_only=True)
class AllowanceCharge:
    """An allowance (discount) or charge, on a line or on the whole document.

    Give either ``amount`` or ``percentage`` with ``base_amount``; the amount
    is then round(base × percentage / 100) in the invoice currency. When all
    three are given (imported documents), the stated ``amount`` counts.
    Document-level ones need ``vat_category`` (and ``vat_rate``); line-level
    ones take the line's VAT category.

    Amount, base amount and percentage may be negative, zero or (percentage)
    above 100: EN 16931 gives them no sign or range (BT-92 to BT-94, BT-99 to
    BT-101, BT-136 to BT-138, BT-141 to BT-143; its rules only require the
    amount), and published documents use them, e.g. a charge of -25 in a
    correction invoice. A negative allowance then raises the total. The
    service (``Billing.record_session``, ``create_template``,
    ``change_template``) is stricter for the ones it issues, on the document
    and on its lines: a reason, and an amount above zero, or a percentage
    above 0 and at most 100 of a base amount above zero.

    >>> AllowanceCharge(is_charge=False, percentage=10, base_amount=250).percentage
    Decimal('10')
    """

    is_charge: bool
    amount: Decimal | None = attrs.field(default=None, converter=_to_optional_decimal)
    percentage: Decimal | None = attrs.field(
        default=None, converter=_to_optional_decimal
    )
    base_amount: Decimal | None = attrs.field(
        default=None, converter=_to_optional_decimal
    )
    reason: str = ""
    vat_category: VatCategory | None = attrs.field(
        default=None, converter=_to_optional_category
    )
    vat_rate: Decimal | None = attrs.field(default=None, converter=_to_optional_decimal)
    exemption_reason: str | None = attrs.field(default=None, converter=_to_reason)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.is_charge, bool) or not isinstance(self.reason, str):
            raise InvalidInvoiceError(
                problem=(
                    f"allowance/charge with is_charge={self.is_charge!r}, "
                    f"reason={self.reason!r}"
                ),
                allowed="is_charge is True or False and reason is text",
            )
        kind = "charge" if self.is_charge else "allowance"
        for name in ("amount", "percentage", "base_amount", "vat_rate"):
            _check_size(getattr(self, name), name, f"{kind} {self.reason!r}")
        if self.amount is None and (
            self.percentage is None or self.base_amount is None
        ):
            raise InvalidInvoiceError(
                problem=f"{kind} {self.reason!r} has no amount",
                allowed="give amount, or percentage together with base_amount",
            )
        if self.vat_category is not None:
            rate = _ZERO if self.vat_rate is None else self.vat_rate
            _check_vat(
                self.vat_category,
                rate,
                self.exemption_reason,
                f"{kind} {self.reason!r}",
            )
        elif self.vat_rate is not None or self.exemption_reason is not None:
            raise VatCategoryError(
                problem=f"{kind} {self.reason!r} has VAT rate/reason, no category",
                allowed="give vat_category with vat_rate, or neither (line level)",
            )

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict (decimals as strings) that :meth:`from_dict` reads."""
        return {
            "is_charge": self.is_charge,
            "amount": _decimal_text(self.amount),
            "percentage": _decimal_text(self.percentage),
            "base_amount": _decimal_text(self.base_amount),
            "reason": self.reason,
            "vat_category": None
            if self.vat_category is None
            else self.vat_category.value,
            "vat_rate": _decimal_text(self.vat_rate),
            "exemption_reason": self.exemption_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AllowanceCharge:
        """Rebuild an allowance or charge from :meth:`to_dict` output (validated)."""
        fields = _known_fields(cls, data)
        return cls(**fields)


def _known_fields(cls: type, data: Mapping[str, object]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInvoiceError(
            problem=f"{cls.__name__}.from_dict() got {type(data).__name__}",
            allowed="give the mapping that to_dict() returned",
        )
    names = {a.name for a in attrs.fields(cls) if a.init}
    unknown = sorted(set(map(str, data)) - names)
    if unknown:
        raise InvalidInvoiceError(
            problem=f"{cls.__name__}.from_dict() got unknown keys {unknown}",
            allowed=f"keys are {sorted(names)}",
        )
    missing = sorted(
        a.name
        for a in attrs.fields(cls)
        if a.init and a.default is attrs.NOTHING and a.name not in data
    )
    if missing:
        raise InvalidInvoiceError(
            problem=f"{cls.__name__}.from_dict() is missing keys {missing}",
            allowed="give the mapping that to_dict() returned",
        )
    return {str(k): v for k, v in data.items()}


def _check_kinds(
    items: Sequence[AllowanceCharge], *, is_charge: bool, where: str
) -> None:
    kind, other = ("charges", "allowance") if is_charge else ("allowances", "charge")
    for item in items:
        if not isinstance(item, AllowanceCharge):
            raise InvalidInvoiceError(
                problem=f"{where} {kind} contain {type(item).__name__}",
                allowed="give AllowanceCharge values",
            )
        if item.is_charge is not is_charge:
            raise InvalidInvoiceError(
                problem=f"{where} {kind} contain a {other} ({item.reason!r})",
                allowed=f"put each in its own list: is_charge={is_charge} in {kind}",
            )


def _to_acs(value: object) -> tuple[AllowanceCharge, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise InvalidInvoiceError(
            problem=f"allowances/charges given as {type(value).__name__}",
            allowed="give a tuple or list of AllowanceCharge",
        )
    return tuple(
        AllowanceCharge.from_dict(v) if isinstance(v, Mapping) else v for v in value
    )


@attrs.frozen(kw_only=True)
class InvoiceLine:
    """One invoice line (EN 16931 BG-25).

    ``unit_price`` is the net price (BT-146) per ``base_quantity`` (BT-149),
    never negative; ``quantity`` may be negative (returns, corrections).
    ``gross_price`` and ``price_discount`` (BT-148, BT-147) are informative:
    when both are given, ``unit_price`` must equal their difference. Amounts
    accept a Decimal, an int or a decimal string; floats are refused.

    The VAT category defaults to standard rate (``S``), which needs a positive
    ``vat_rate``: give the rate (``vat_rate=25``), or choose another category
    (``Z`` zero-rated, or ``E``/``AE``/``K``/``G``/``O`` with an
    ``exemption_reason``).

    >>> line = InvoiceLine(description="Hosting", quantity=3, unit_price="9.99",
    ...                    vat_rate=25)
    >>> InvoiceLine.from_dict(line.to_dict()) == line
    True
    """

    description: str
    quantity: Decimal = attrs.field(converter=to_decimal)
    unit_price: Decimal = attrs.field(converter=to_decimal)
    base_quantity: Decimal = attrs.field(default=_ONE, converter=to_decimal)
    gross_price: Decimal | None = attrs.field(
        default=None, converter=_to_optional_decimal
    )
    price_discount: Decimal | None = attrs.field(
        default=None, converter=_to_optional_decimal
    )
    allowances: tuple[AllowanceCharge, ...] = attrs.field(default=(), converter=_to_acs)
    charges: tuple[AllowanceCharge, ...] = attrs.field(default=(), converter=_to_acs)
    vat_category: VatCategory = attrs.field(
        default=VatCategory.STANDARD, converter=_to_category
    )
    vat_rate: Decimal = attrs.field(default=_ZERO, converter=to_decimal)
    exemption_reason: str | None = attrs.field(default=None, converter=_to_reason)
    line_id: str | None = None
    """Optional line identifier (BT-126), reported by :func:`check_consistency`."""
    _plain: bool = attrs.field(init=False, repr=False, eq=False)
    """No base quantity, gross price, allowance or charge: the totals' fast path."""

    def __attrs_post_init__(self) -> None:
        if (
            not isinstance(self.description, str)
            or not self.description.strip()
            or not (self.line_id is None or isinstance(self.line_id, str))
        ):
            raise InvalidInvoiceError(
                problem=(
                    f"line with description {self.description!r} and line_id "
                    f"{self.line_id!r}"
                ),
                allowed="the description (the item name, EN 16931 BT-153) is "
                "non-empty text and the line_id text or None",
            )
        where = f"line {self.description!r}"
        for name in (
            "quantity",
            "unit_price",
            "base_quantity",
            "gross_price",
            "price_discount",
            "vat_rate",
        ):
            _check_size(getattr(self, name), name, where)
        if self.unit_price < 0:
            raise InvalidInvoiceError(
                problem=f"{where} has a negative unit price {self.unit_price}",
                allowed=(
                    "the net unit price must be zero or more (EN 16931 BR-27); "
                    "use a negative quantity for returns or an allowance for discounts"
                ),
            )
        if self.base_quantity <= 0:
            raise InvalidInvoiceError(
                problem=f"{where} has base quantity {self.base_quantity}",
                allowed="the base quantity (price per how many units) must be above 0",
            )
        if self.gross_price is not None and self.gross_price < 0:
            raise InvalidInvoiceError(
                problem=f"{where} has a negative gross price {self.gross_price}",
                allowed="the gross price must be zero or more (EN 16931 BR-28)",
            )
        _check_kinds(self.allowances, is_charge=False, where=where)
        _check_kinds(self.charges, is_charge=True, where=where)
        for item in self.allowances + self.charges:
            if item.vat_category is not None and (
                item.vat_category is not self.vat_category
                or (item.vat_rate or _ZERO) != self.vat_rate
            ):
                raise VatCategoryError(
                    problem=f"{where} has an allowance or charge with its own VAT",
                    allowed="line allowances and charges take the line's VAT category",
                )
        _check_vat(self.vat_category, self.vat_rate, self.exemption_reason, where)
        plain = (
            self.base_quantity == _ONE
            and self.gross_price is None
            and not self.allowances
            and not self.charges
        )
        object.__setattr__(self, "_plain", plain)

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict (decimals as strings) that :meth:`from_dict` reads."""
        return {
            "description": self.description,
            "quantity": str(self.quantity),
            "unit_price": str(self.unit_price),
            "base_quantity": str(self.base_quantity),
            "gross_price": _decimal_text(self.gross_price),
            "price_discount": _decimal_text(self.price_discount),
            "allowances": [a.to_dict() for a in self.allowances],
            "charges": [c.to_dict() for c in self.charges],
            "vat_category": self.vat_category.value,
            "vat_rate": str(self.vat_rate),
            "exemption_reason": self.exemption_reason,
            "line_id": self.line_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> InvoiceLine:
        """Rebuild a line from :meth:`to_dict` output, validating every field."""
        return cls(**_known_fields(cls, data))


@attrs.frozen(kw_only=True)
class VatSubtotal:
    """One VAT breakdown group (BG-23): a category and rate with its amounts."""

    category: VatCategory
    rate: Decimal
    taxable: Money
    """BT-116: Σ line nets + charges − allowances of this category and rate."""
    tax: Money
    """BT-117: round(taxable × rate / 100)."""
    exemption_reason: str | None


@attrs.frozen(kw_only=True)
class Totals:
    """Document totals (BG-22) and VAT breakdown of an invoice or credit note."""

    currency: Currency
    line_nets: tuple[Money, ...]
    """BT-131 of each line, in line order."""
    line_net_total: Money
    """BT-106: Σ line nets."""
    allowance_total: Money
    """BT-107: Σ document allowances."""
    charge_total: Money
    """BT-108: Σ document charges."""
    tax_exclusive: Money
    """BT-109: BT-106 − BT-107 + BT-108."""
    vat_total: Money
    """BT-110: Σ VAT of the breakdown."""
    tax_inclusive: Money
    """BT-112: BT-109 + BT-110."""
    prepaid: Money
    """BT-113: amount paid in advance."""
    rounding: Money
    """BT-114: rounding amount added to reach a cash amount."""
    amount_due: Money
    """BT-115: BT-112 − BT-113 + BT-114."""
    vat_breakdown: tuple[VatSubtotal, ...]
    """BG-23 groups, in order of first appearance."""


def _currency(value: Currency | str) -> Currency:
    return value if isinstance(value, Currency) else Currency(value)


def _check_rounding(rounding: object) -> None:
    if not isinstance(rounding, str) or rounding not in ROUNDING_MODES:
        raise InvalidInputError(
            problem=f"unknown rounding mode {rounding!r}",
            allowed="use a decimal rounding mode such as decimal.ROUND_HALF_UP",
        )


def _quantized(value: Decimal, decimals: int, what: str, currency: Currency) -> Decimal:
    """*value* with exactly the currency's decimals; refuse one with more."""
    rounded = round_decimal(value, decimals)
    if value != rounded:
        raise InvalidInvoiceError(
            problem=f"{what} {value} has more decimals than {currency.code} allows",
            allowed=f"{currency.code} amounts have at most {decimals} decimals",
        )
    return rounded if rounded else rounded.copy_abs()  # not -0.00


def _ac_amount(
    item: AllowanceCharge, currency: Currency, decimals: int, rounding: str
) -> Decimal:
    if item.amount is not None:
        return _quantized(item.amount, decimals, f"amount of {item.reason!r}", currency)
    base = item.base_amount
    pct = item.percentage
    assert base is not None  # both checked in __attrs_post_init__
    assert pct is not None
    amount = round_decimal(
        EXACT.multiply(base, pct).scaleb(-2, EXACT), decimals, rounding
    )
    return amount if amount else amount.copy_abs()  # not -0.00


def _raw_net(
    line: InvoiceLine, currency: Currency, decimals: int, rounding: str
) -> Decimal:
    amount = EXACT.multiply(line.quantity, line.unit_price)
    if line.base_quantity != _ONE:
        net = divide(amount, line.base_quantity, decimals, rounding)
    else:
        net = round_decimal(amount, decimals, rounding)
    if not net:
        net = net.copy_abs()  # not -0.00
    for charge in line.charges:
        net = EXACT.add(net, _ac_amount(charge, currency, decimals, rounding))
    for allowance in line.allowances:
        net = EXACT.subtract(net, _ac_amount(allowance, currency, decimals, rounding))
    return net


_NEW = object.__new__
_SET_AMOUNT = Money.__dict__["amount"].__set__
_SET_CURRENCY = Money.__dict__["currency"].__set__


def _money(amount: Decimal, currency: Currency) -> Money:
    """Money from an exact Decimal already quantized here (skips re-validation).

    The hot path of the totals: the same value as ``Money(amount, currency)``,
    made by setting the two slots directly instead of running the converters.
    """
    money: Money = _NEW(Money)
    _SET_AMOUNT(money, amount)
    _SET_CURRENCY(money, currency)
    return money


def _check_line(line: object) -> InvoiceLine:
    if not isinstance(line, InvoiceLine):
        raise InvalidInvoiceError(
            problem=f"invoice lines contain {type(line).__name__}",
            allowed="give InvoiceLine values",
        )
    gross, discount = line.gross_price, line.price_discount
    if (
        gross is not None
        and discount is not None
        and EXACT.subtract(gross, discount) != line.unit_price
    ):
        raise InvalidInvoiceError(
            problem=(
                f"line {line.description!r}: net price {line.unit_price} is not "
                f"gross price {gross} − discount {discount}"
            ),
            allowed="the net price must equal gross price − price discount",
        )
    return line


def line_net(
    line: InvoiceLine, currency: Currency | str, *, rounding: str = ROUND_HALF_UP
) -> Money:
    """The line net amount (BT-131) in *currency*.

    round(quantity × unit price / base quantity) + charges − allowances, every
    amount rounded to the currency's decimals. Negative when the allowances
    exceed the rest (an allowance of 150 %, say), as EN 16931 allows: see
    :class:`AllowanceCharge`. Raises
    :class:`~recurbill.errors.InvalidInvoiceError` when the net price is not
    gross price − price discount or an allowance or charge amount has more
    decimals than the currency.

    >>> from decimal import Decimal
    >>> line = InvoiceLine(description="Power", quantity=Decimal(132),
    ...                    unit_price=Decimal("15.24"), base_quantity=Decimal(12),
    ...                    vat_rate=Decimal(21))
    >>> str(line_net(line, "EUR"))
    '167.64 EUR'
    """
    _check_rounding(rounding)
    cur = _currency(currency)
    net = _raw_net(_check_line(line), cur, cur.decimals, rounding)
    return _money(net, cur)


def allowance_charge_amount(
    item: AllowanceCharge, currency: Currency | str, *, rounding: str = ROUND_HALF_UP
) -> Money:
    """The amount of an allowance or charge in *currency*, as the totals take it.

    Its stated amount, or else round(base amount × percentage / 100), of
    either sign (see :class:`AllowanceCharge`).

    >>> item = AllowanceCharge(is_charge=False, percentage=10, base_amount=1998)
    >>> str(allowance_charge_amount(item, "NOK"))
    '199.80 NOK'
    """
    _check_rounding(rounding)
    cur = _currency(currency)
    if not isinstance(item, AllowanceCharge):
        raise InvalidInvoiceError(
            problem=f"allowance_charge_amount() got {type(item).__name__}",
            allowed="give an AllowanceCharge",
        )
    return _money(_ac_amount(item, cur, cur.decimals, rounding), cur)


def _given_money(value: object, currency: Currency, what: str) -> Decimal:
    """The amount of a Money given for *what*, checked against *currency*."""
    if not isinstance(value, Money):
        raise InvalidInputError(
            problem=f"{what} given as {type(value).__name__}",
            allowed=f"give {what} as Money in {currency.code}",
        )
    if value.currency != currency:
        raise CurrencyMismatchError(left=currency, right=value.currency)
    return _quantized(value.amount, currency.decimals, what, currency)


_Groups = dict[tuple[VatCategory, Decimal], list[Any]]
"""(category, rate) -> [taxable amount, exemption reason], in first-seen order."""

_MIX_RULES = frozenset({VatCategory.OUTSIDE_SCOPE, VatCategory.SPLIT_PAYMENT})


def _slot_setters(cls: type) -> tuple[Any, ...]:
    """The slot setters of an attrs class's fields, in field order."""
    return tuple(cls.__dict__[f.name].__set__ for f in attrs.fields(cls))


_SET_VAT_SUBTOTAL = _slot_setters(VatSubtotal)
_SET_TOTALS = _slot_setters(Totals)


def _totals(
    nets: list[Decimal],
    groups: _Groups,
    currency: Currency,
    zero: Decimal,
    allowances: Sequence[AllowanceCharge],
    charges: Sequence[AllowanceCharge],
    prepaid: Money | None,
    rounding_amount: Money | None,
    rounding: str,
) -> Totals:
    """Totals from line nets already grouped by VAT category and rate.

    The hot path of :func:`compute_totals`. Every amount here is an exact
    Decimal with the currency's decimals and every field is computed here, so
    the frozen result values are filled in directly (no converters to re-run),
    and fields with the same amount share one immutable Money.
    """
    if not nets:
        raise InvalidInvoiceError(
            problem="the invoice has no lines",
            allowed="an invoice needs at least one line (EN 16931 BR-16)",
        )
    if type(allowances) is not tuple:  # the default () needs no check
        allowances = _document_items(allowances, "allowances")
    if type(charges) is not tuple:
        charges = _document_items(charges, "charges")
    decimals = currency.decimals
    allowance_total = charge_total = prepaid_amount = rounding_value = zero
    if allowances:
        allowance_total = _doc_level(
            allowances, False, groups, currency, zero, rounding
        )
    if charges:
        charge_total = _doc_level(charges, True, groups, currency, zero, rounding)
    if prepaid is not None:
        prepaid_amount = _given_money(prepaid, currency, "prepaid amount")
    if rounding_amount is not None:
        rounding_value = _given_money(rounding_amount, currency, "rounding amount")
    zero_money = _money(zero, currency)
    set_category, set_rate, set_taxable, set_tax, set_reason = _SET_VAT_SUBTOTAL
    breakdown = []
    vat_total = zero
    mixed = False
    for (category, rate), (taxable, reason) in groups.items():
        tax = round_decimal((taxable * rate).scaleb(-2), decimals, rounding)
        if not tax:
            tax = zero  # not -0.00
        vat_total += tax
        subtotal = _NEW(VatSubtotal)
        set_category(subtotal, category)
        set_rate(subtotal, rate)
        money = _NEW(Money)  # _money() inlined, here and below
        _SET_AMOUNT(money, taxable)
        _SET_CURRENCY(money, currency)
        set_taxable(subtotal, money)
        money = _NEW(Money)
        _SET_AMOUNT(money, tax)
        _SET_CURRENCY(money, currency)
        set_tax(subtotal, money)
        set_reason(subtotal, reason)
        breakdown.append(subtotal)
        mixed = mixed or category in _MIX_RULES
    if mixed and len(groups) > 1:
        _check_mix(groups)
    net_monies = []
    for net in nets:
        money = _NEW(Money)
        _SET_AMOUNT(money, net)
        _SET_CURRENCY(money, currency)
        net_monies.append(money)
    line_nets = tuple(net_monies)
    line_total = sum(nets, zero)
    line_total_money = line_nets[0] if len(nets) == 1 else _money(line_total, currency)
    if allowance_total is zero and charge_total is zero:
        tax_exclusive, tax_exclusive_money = line_total, line_total_money
    else:
        tax_exclusive = line_total - allowance_total + charge_total
        tax_exclusive_money = _money(tax_exclusive, currency)
    tax_inclusive = tax_exclusive + vat_total
    tax_inclusive_money = _money(tax_inclusive, currency)
    if prepaid_amount is zero and rounding_value is zero:
        amount_due_money = tax_inclusive_money
    else:
        amount_due = tax_inclusive - prepaid_amount + rounding_value
        amount_due_money = Money(amount_due, currency)  # within Money's limits
    values = (
        currency,
        line_nets,
        line_total_money,
        zero_money if allowance_total is zero else _money(allowance_total, currency),
        zero_money if charge_total is zero else _money(charge_total, currency),
        tax_exclusive_money,
        _money(vat_total, currency),
        tax_inclusive_money,
        zero_money if prepaid_amount is zero else _money(prepaid_amount, currency),
        zero_money if rounding_value is zero else _money(rounding_value, currency),
        amount_due_money,
        tuple(breakdown),
    )
    totals: Totals = _NEW(Totals)
    for setter, value in zip(_SET_TOTALS, values, strict=True):
        setter(totals, value)
    return totals


def _document_items(value: object, name: str) -> tuple[AllowanceCharge, ...]:
    """*value* as a tuple: document allowances or charges (each item is
    checked where it is used)."""
    return sequence(
        value,
        name,
        allowed=f"give {name} as a list or tuple of AllowanceCharge "
        "(or leave it out for none)",
        error=InvalidInvoiceError,
    )


def _add_to_group(
    groups: _Groups,
    key: tuple[VatCategory, Decimal],
    amount: Decimal,
    reason: str | None,
) -> None:
    group = groups.get(key)
    if group is None:
        groups[key] = [amount, reason]
    else:
        group[0] += amount
        if group[1] != reason:
            _reason_clash(key, group[1], reason)


def _reason_clash(
    key: tuple[VatCategory, Decimal], first: str | None, other: str | None
) -> None:
    raise VatCategoryError(
        problem=(
            f"VAT category {key[0].value} at rate {key[1]} has two exemption "
            f"reasons, {first!r} and {other!r}"
        ),
        allowed="EN 16931 has one VAT breakdown per category and rate: use one reason",
    )


def _check_mix(groups: Mapping[tuple[VatCategory, Decimal], object]) -> None:
    categories = {category for category, _ in groups}
    if VatCategory.OUTSIDE_SCOPE in categories:
        raise VatCategoryError(
            problem="the invoice mixes category O (outside scope) with others",
            allowed="an invoice with O items has only O items (EN 16931 BR-O-11..14)",
        )
    if {VatCategory.SPLIT_PAYMENT, VatCategory.STANDARD} <= categories:
        raise VatCategoryError(
            problem="the invoice mixes categories B (split payment) and S",
            allowed="an invoice with B items has no S items (EN 16931 BR-B-02)",
        )


def _doc_level(
    items: Sequence[AllowanceCharge],
    is_charge: bool,
    groups: _Groups,
    currency: Currency,
    zero: Decimal,
    rounding: str,
) -> Decimal:
    total = zero
    _check_kinds(items, is_charge=is_charge, where="document")
    for item in items:
        if item.vat_category is None:
            kind = "charge" if is_charge else "allowance"
            raise VatCategoryError(
                problem=f"document {kind} {item.reason!r} has no VAT category",
                allowed="document allowances/charges need vat_category and vat_rate",
            )
        amount = _ac_amount(item, currency, currency.decimals, rounding)
        total += amount
        key = (item.vat_category, _ZERO if item.vat_rate is None else item.vat_rate)
        _add_to_group(
            groups, key, amount if is_charge else -amount, item.exemption_reason
        )
    return total


def _check_size(value: Decimal | None, name: str, where: str) -> None:
    if value is None:
        return
    if value.copy_abs() >= _LINE_LIMIT or decimals_of(value) > MAX_LINE_DECIMALS:
        raise InvalidInvoiceError(
            problem=f"{where} has the {name} {value}",
            allowed=f"at most {MAX_LINE_DIGITS} digits before the decimal point "
            f"and {MAX_LINE_DECIMALS} after it",
        )


def compute_totals(
    lines: Sequence[InvoiceLine],
    *,
    currency: Currency | str,
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
    prepaid: Money | None = None,
    rounding_amount: Money | None = None,
    rounding: str = ROUND_HALF_UP,
) -> Totals:
    """Compute line nets, VAT breakdown and document totals (EN 16931).

    *allowances* and *charges* are document-level and carry their own VAT
    category and rate. *prepaid* (BT-113) and *rounding_amount* (BT-114, see
    :func:`cash_rounding`) are Money in *currency*. Raises
    :class:`~recurbill.errors.InvalidInvoiceError` (or its
    :class:`~recurbill.errors.VatCategoryError`) for input that breaks a rule
    of EN 16931 (no line, net price not gross price − discount, VAT category
    rules, a document allowance or charge without VAT category, a stated
    amount with more decimals than the currency), for *lines* that are not
    a list, tuple or other iterable of InvoiceLine values (text and a mapping
    are not), for *allowances* or *charges* given as text, a mapping, None or
    a lone value (leave them out for none), and
    :class:`~recurbill.errors.CurrencyMismatchError` for amounts in another
    currency.

    Allowance and charge amounts and percentages of any sign are computed,
    not refused, because the norm allows them (see :class:`AllowanceCharge`):
    an allowance of -40 adds 40 to the net total. The service refuses such
    items, on the document and on lines: a preview of what it will issue keeps
    to its rules (amounts above zero, or percentages above 0 and at most 100
    of a base amount above zero).
    """
    with localcontext(EXACT):  # every sum and product exact
        return _compute_totals(
            lines, currency, allowances, charges, prepaid, rounding_amount, rounding
        )


def _compute_totals(
    lines: Sequence[InvoiceLine],
    currency: Currency | str,
    allowances: Sequence[AllowanceCharge],
    charges: Sequence[AllowanceCharge],
    prepaid: Money | None,
    rounding_amount: Money | None,
    rounding: str,
) -> Totals:
    if rounding is not ROUND_HALF_UP:
        _check_rounding(rounding)
    if (
        type(lines) is not tuple
        and type(lines) is not list
        and (
            isinstance(lines, (str, bytes, Mapping)) or not isinstance(lines, Iterable)
        )
    ):
        raise InvalidInvoiceError(
            problem=f"lines {lines!r} is not a sequence of InvoiceLine values",
            allowed="give a list or tuple of InvoiceLine",
        )
    cur = currency if type(currency) is Currency else _currency(currency)
    decimals = cur.decimals
    zero = _ZERO.scaleb(-decimals)
    nets: list[Decimal] = []
    groups: _Groups = {}
    for line in lines:
        if type(line) is InvoiceLine and line._plain:  # the common case, inlined
            net = round_decimal(line.quantity * line.unit_price, decimals, rounding)
            if not net:
                net = zero  # not -0.00
        else:
            net = _raw_net(_check_line(line), cur, decimals, rounding)
        nets.append(net)
        key = (line.vat_category, line.vat_rate)
        group = groups.get(key)
        if group is None:
            groups[key] = [net, line.exemption_reason]
        else:
            group[0] += net
            if group[1] != line.exemption_reason:
                _reason_clash(key, group[1], line.exemption_reason)
    return _totals(
        nets, groups, cur, zero, allowances, charges, prepaid, rounding_amount, rounding
    )


def totals_from_line_nets(
    lines: Sequence[InvoiceLine],
    line_nets: Sequence[Money],
    *,
    currency: Currency | str,
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
    prepaid: Money | None = None,
    rounding_amount: Money | None = None,
    rounding: str = ROUND_HALF_UP,
) -> Totals:
    """Like :func:`compute_totals`, but with the line nets a document states.

    For imported documents: the totals and VAT breakdown are computed from
    *line_nets* (one per line, in order) instead of recomputing each line, so
    a document whose lines disagree with their stated nets still adds up the
    way its issuer meant. Use :func:`check_consistency` to find such lines.
    *lines* and *line_nets* given as text, a mapping or a lone value (a
    list, tuple or other iterable will do), or not as many stated nets as
    lines, raise :class:`~recurbill.errors.InvalidInvoiceError`, as do such
    *allowances* or *charges*; a stated net that is not Money raises
    :class:`~recurbill.errors.InvalidInputError`.
    """
    _check_rounding(rounding)
    cur = _currency(currency)
    given, nets = _stated_nets(lines, line_nets, cur)
    with localcontext(EXACT):  # every sum and product exact
        groups: _Groups = {}
        for line, net in zip(given, nets, strict=True):
            if not isinstance(line, InvoiceLine):
                _check_line(line)
            key = (line.vat_category, line.vat_rate)
            _add_to_group(groups, key, net, line.exemption_reason)
        zero = _ZERO.scaleb(-cur.decimals)
        return _totals(
            nets,
            groups,
            cur,
            zero,
            allowances,
            charges,
            prepaid,
            rounding_amount,
            rounding,
        )


def _stated_nets(
    lines: object, line_nets: object, currency: Currency
) -> tuple[tuple[InvoiceLine, ...], list[Decimal]]:
    """The lines (each checked where it is used) and their stated nets."""
    given: tuple[InvoiceLine, ...] = sequence(
        lines,
        "lines",
        allowed="give lines as a list or tuple of InvoiceLine",
        error=InvalidInvoiceError,
    )
    nets: tuple[object, ...] = sequence(
        line_nets,
        "line_nets",
        allowed="give line_nets as a list or tuple of Money, one per line",
        error=InvalidInvoiceError,
    )
    if len(given) != len(nets):
        raise InvalidInvoiceError(
            problem=f"{len(given)} lines but {len(nets)} stated line nets",
            allowed="give one stated net amount per line, in line order",
        )
    return given, [_given_money(net, currency, "stated line net") for net in nets]


@attrs.frozen(kw_only=True)
class Inconsistency:
    """A line of an imported document whose data disagrees with itself."""

    index: int
    """Position of the line (0-based)."""
    line_id: str | None
    """The line's identifier (BT-126), if it has one."""
    rule: str
    """The Peppol rule it breaks: ``PEPPOL-EN16931-R120`` (line net) or ``-R046``."""
    stated: Decimal
    """What the document states (line net, or net price)."""
    expected: Decimal
    """What the line's own data gives."""
    message: str


def check_consistency(
    lines: Sequence[InvoiceLine],
    line_nets: Sequence[Money],
    *,
    currency: Currency | str,
) -> list[Inconsistency]:
    """Lines whose stated data contradict themselves, for imported documents.

    Reports a line when its stated net differs from quantity × price / base
    quantity + charges − allowances by more than 0.02 (Peppol rule R120), and
    when a gross price and price discount are given and the net price is not
    their difference (R046). EN 16931 itself accepts such documents, so they
    are reported, not refused. Arguments of the wrong kind raise as for
    :func:`totals_from_line_nets`.
    """
    cur = _currency(currency)
    given, nets = _stated_nets(lines, line_nets, cur)
    found: list[Inconsistency] = []
    for index, (line, stated) in enumerate(zip(given, nets, strict=True)):
        if not isinstance(line, InvoiceLine):
            _check_line(line)
        expected = divide(
            EXACT.multiply(line.quantity, line.unit_price),
            line.base_quantity,
            MAX_LINE_DECIMALS,
        )
        for item in line.charges + line.allowances:
            amount = _ac_amount(item, cur, cur.decimals, ROUND_HALF_UP)
            expected = EXACT.add(
                expected, amount if item.is_charge else amount.copy_negate()
            )
        name = line.line_id if line.line_id is not None else str(index + 1)
        if EXACT.subtract(stated, expected).copy_abs() > _TOLERANCE:
            found.append(
                Inconsistency(
                    index=index,
                    line_id=line.line_id,
                    rule="PEPPOL-EN16931-R120",
                    stated=stated,
                    expected=expected,
                    message=(
                        f"line {name}: stated net {stated} but quantity × price "
                        f"/ base quantity + charges − allowances is {expected}"
                    ),
                )
            )
        gross, discount = line.gross_price, line.price_discount
        if gross is not None and discount is not None:
            net_price = EXACT.subtract(gross, discount)
            if net_price != line.unit_price:
                found.append(
                    Inconsistency(
                        index=index,
                        line_id=line.line_id,
                        rule="PEPPOL-EN16931-R046",
                        stated=line.unit_price,
                        expected=net_price,
                        message=(
                            f"line {name}: net price {line.unit_price} but gross "
                            f"price {gross} − discount {discount} is {net_price}"
                        ),
                    )
                )
    return found


def cash_rounding(amount: Money, *, increment: Decimal) -> Money:
    """The rounding amount (BT-114) that makes *amount* a multiple of *increment*.

    Half-up (away from zero at exactly half). Pass the amount due before
    rounding, in the currency's decimals (more are refused: rounding them
    away would leave an amount due that is no multiple of *increment*); add
    the result as ``rounding_amount`` to :func:`compute_totals`.

    >>> from decimal import Decimal
    >>> str(cash_rounding(Money("801.78", "NOK"), increment=Decimal(1)))
    '0.22 NOK'
    """
    if not isinstance(amount, Money):
        raise InvalidInputError(
            problem=f"cash_rounding() got {type(amount).__name__}",
            allowed="give the amount as Money",
        )
    step = to_decimal(increment)
    decimals = amount.currency.decimals
    if not amount.is_quantized:
        raise InvalidInputError(
            problem=(
                f"cash_rounding() got {amount}, with more decimals than "
                f"{amount.currency.code} has"
            ),
            allowed=(
                f"give the amount due with at most {decimals} decimals "
                "(Totals.amount_due is)"
            ),
        )
    if step <= 0 or step != round_decimal(step, decimals):
        raise InvalidInputError(
            problem=f"rounding increment {step} for {amount.currency.code}",
            allowed=(
                f"the increment must be positive with at most {decimals} decimals "
                "(e.g. 1 for whole kroner, 0.05 for 5 cents)"
            ),
        )
    target = EXACT.multiply(divide(amount.amount, step, 0), step)
    difference = EXACT.subtract(target, amount.amount)
    return Money(round_decimal(difference, decimals), amount.currency)


@attrs.frozen(kw_only=True)
class CreditNote:
    """A credit note (EN 16931 type 381) correcting one invoice, fully or in part.

    Amounts are positive for what is credited; ``totals.amount_due`` is the
    amount the credit note takes off the invoice. Build it with
    :func:`credit_note` or :func:`full_credit_note`.
    """

    invoice_number: str
    """The invoice it corrects (BT-25, preceding invoice reference)."""
    lines: tuple[InvoiceLine, ...]
    allowances: tuple[AllowanceCharge, ...] = ()
    charges: tuple[AllowanceCharge, ...] = ()
    totals: Totals
    reason: str = ""
    full: bool = False
    """Whether it reverses the whole invoice."""


def _document_total(totals: Totals) -> Decimal:
    return EXACT.add(totals.tax_inclusive.amount, totals.rounding.amount)


def _invoice_totals(invoice: object) -> Totals:
    return instance(
        invoice, Totals, "invoice", allowed="give the invoice's Totals (its totals)"
    )


def _invoice_number(value: object) -> str:
    return text(
        value,
        "invoice_number",
        allowed="give the number of the invoice it corrects, e.g. 'INV-000042'",
        error=InvalidInvoiceError,
    )


_AC = "AllowanceCharge"


def _items(value: object, name: str, kind: str) -> tuple[Any, ...]:
    """*value*, a credit note's *name* (items of *kind*, each checked where
    it is used), as a tuple."""
    return sequence(
        value,
        name,
        allowed=f"give {name} as a list or tuple of {kind}",
        error=InvalidInvoiceError,
    )


def _credit_notes(value: object, name: str) -> tuple[CreditNote, ...]:
    return sequence(
        value,
        name,
        of=CreditNote,
        allowed=f"give {name} as a list or tuple of CreditNote (or leave it out "
        "for none)",
        error=InvalidInvoiceError,
    )


def _credited(
    invoice_number: object, invoice: object, credit_notes: object, name: str
) -> Decimal:
    """What *credit_notes* (the parameter *name*) credit on the invoice."""
    number = _invoice_number(invoice_number)
    totals = _invoice_totals(invoice)
    total = _ZERO
    for note in _credit_notes(credit_notes, name):
        if note.invoice_number != number:
            raise InvalidInvoiceError(
                problem=(
                    f"credit note for invoice {note.invoice_number!r} given with "
                    f"invoice {number!r}"
                ),
                allowed="give only the credit notes that reference this invoice",
            )
        if note.totals.currency != totals.currency:
            raise CurrencyMismatchError(
                left=totals.currency, right=note.totals.currency
            )
        total = EXACT.add(total, note.totals.amount_due.amount)
    return total


def creditable_amount(
    invoice_number: str, invoice: Totals, credit_notes: Sequence[CreditNote] = ()
) -> Money:
    """What may still be credited on an invoice: its total minus earlier credits.

    The total is BT-112 + BT-114 (what the invoice charged, before payments).
    Raises :class:`~recurbill.errors.InvalidInvoiceError` for an
    *invoice_number* that is empty or not text and for *credit_notes* that
    are not a list, tuple or other iterable of this invoice's CreditNote
    values,
    :class:`~recurbill.errors.InvalidInputError` for *invoice* not Totals.
    """
    return _creditable(invoice_number, invoice, credit_notes, "credit_notes")


def _creditable(
    invoice_number: object, invoice: Totals, credit_notes: object, name: str
) -> Money:
    credited = _credited(invoice_number, invoice, credit_notes, name)
    return Money(EXACT.subtract(_document_total(invoice), credited), invoice.currency)


def amount_owed(
    invoice_number: str, invoice: Totals, credit_notes: Sequence[CreditNote] = ()
) -> Money:
    """The amount still owed on an invoice after its credit notes.

    Amount due (BT-115) minus every credit. Negative when credits exceed what
    was left to pay after a prepayment: the customer is then owed that much
    (customer credit). Credits beyond the invoice's total raise
    :class:`~recurbill.errors.CreditExceedsInvoiceError`; bad arguments as
    for :func:`creditable_amount`.
    """
    credited = _credited(invoice_number, invoice, credit_notes, "credit_notes")
    if credited > _document_total(invoice):
        raise CreditExceedsInvoiceError(
            credit=Money(credited, invoice.currency),
            remaining=invoice.tax_inclusive + invoice.rounding,
            invoice=invoice_number,
        )
    return Money(EXACT.subtract(invoice.amount_due.amount, credited), invoice.currency)


def credit_note(
    *,
    invoice_number: str,
    invoice: Totals,
    lines: Sequence[InvoiceLine],
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
    rounding_amount: Money | None = None,
    previous: Sequence[CreditNote] = (),
    reason: str | None = None,
    rounding: str = ROUND_HALF_UP,
) -> CreditNote:
    """A credit note for part of invoice *invoice_number* (totals *invoice*).

    *lines* (positive quantities credit), *allowances* and *charges* are the
    credited items (lists, tuples or other iterables, each read once);
    *previous* are the credit notes already issued for this invoice;
    *reason* is text, or None or ``""`` for none (the note's ``reason`` is
    then ``""``, which may be given back). Raises
    :class:`~recurbill.errors.CreditExceedsInvoiceError` when the credit is
    larger than what is still creditable, and
    :class:`~recurbill.errors.InvalidInvoiceError` when it credits nothing,
    for an empty or non-text *invoice_number* or *reason*, and for items or
    *previous* given as text, a mapping or a lone value (bad arguments
    otherwise as for :func:`compute_totals` and :func:`creditable_amount`).
    """
    if reason:  # None and "" are no reason; blank text is refused
        text(
            reason,
            "reason",
            allowed="give the reason as non-empty text, or leave it out (None)",
            error=InvalidInvoiceError,
        )
    earlier = _credit_notes(previous, "previous")
    remaining = _creditable(invoice_number, invoice, earlier, "previous")
    # each read once: the note keeps the items its totals are computed from
    credited: tuple[InvoiceLine, ...] = _items(lines, "lines", "InvoiceLine")
    minus: tuple[AllowanceCharge, ...] = _items(allowances, "allowances", _AC)
    plus: tuple[AllowanceCharge, ...] = _items(charges, "charges", _AC)
    totals = compute_totals(
        credited,
        currency=invoice.currency,
        allowances=minus,
        charges=plus,
        rounding_amount=rounding_amount,
        rounding=rounding,
    )
    credit = totals.amount_due
    if credit.amount <= 0:
        raise InvalidInvoiceError(
            problem=f"the credit note totals {credit}",
            allowed="a credit note must credit a positive amount",
        )
    if credit > remaining:
        raise CreditExceedsInvoiceError(
            credit=credit, remaining=remaining, invoice=invoice_number
        )
    return CreditNote(
        invoice_number=invoice_number,
        lines=credited,
        allowances=minus,
        charges=plus,
        totals=totals,
        reason=reason or "",
        full=credit == remaining and not earlier,
    )


def full_credit_note(
    *,
    invoice_number: str,
    invoice: Totals,
    lines: Sequence[InvoiceLine],
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
    previous: Sequence[CreditNote] = (),
    reason: str | None = None,
    rounding: str = ROUND_HALF_UP,
) -> CreditNote:
    """A credit note reversing the whole invoice: all its lines, allowances,
    charges and its rounding amount.

    Give the invoice's own lines, allowances and charges; they must reproduce
    its totals and its VAT breakdown, category and rate by category and rate
    (else :class:`~recurbill.errors.InvalidInvoiceError`). After it,
    :func:`amount_owed` is zero (less any prepaid amount, then owed back) and
    the VAT of each rate nets to zero. Bad arguments raise as for
    :func:`credit_note` (*invoice* not Totals:
    :class:`~recurbill.errors.InvalidInputError`).
    """
    _invoice_totals(invoice)
    note = credit_note(
        invoice_number=invoice_number,
        invoice=invoice,
        lines=lines,
        allowances=allowances,
        charges=charges,
        rounding_amount=invoice.rounding,
        previous=previous,
        reason=reason,
        rounding=rounding,
    )
    if note.totals.tax_inclusive != invoice.tax_inclusive:
        raise InvalidInvoiceError(
            problem=(
                f"the lines given total {note.totals.tax_inclusive}, the invoice "
                f"{invoice.tax_inclusive}"
            ),
            allowed="a full credit note takes the invoice's own lines and amounts",
        )
    if _by_rate(note.totals) != _by_rate(invoice):
        raise InvalidInvoiceError(
            problem=(
                "the lines, allowances and charges given split the VAT over "
                "categories and rates otherwise than the invoice"
            ),
            allowed="a full credit note takes the invoice's own lines, "
            "allowances and charges, with their VAT categories and rates",
        )
    return attrs.evolve(note, full=True)


def _by_rate(totals: Totals) -> dict[tuple[VatCategory, Decimal], tuple[Money, Money]]:
    return {
        (group.category, group.rate): (group.taxable, group.tax)
        for group in totals.vat_breakdown
    }
