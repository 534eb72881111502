"""Accounts: the businesses that bill, and the settings they bill with.

An account's settings are checked before anything is stored; those its
invoices depend on once issued (currency, zone, run time, series, rounding)
are fixed when it is created.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import time
from decimal import ROUND_HALF_UP
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from recurbill.arguments import check_locale, chosen_id
from recurbill.collection import RECEIPT_SERIES
from recurbill.corrections import CREDIT_NOTE_SERIES
from recurbill.errors import FixedSettingError, InvalidInputError, InvalidRecordError
from recurbill.ids import IdFactory
from recurbill.money import Currency, as_currency
from recurbill.payee import PayeeAccount
from recurbill.records import Account
from recurbill.references import ReferenceMethod, ReferenceScheme
from recurbill.schedule import DEFAULT_RUN_TIME
from recurbill.storage.protocol import Storage

__all__ = ["Accounts"]


@attrs.define
class Accounts:
    """Creating and changing accounts; see the methods of :class:`Billing`."""

    storage: Storage
    ids: IdFactory

    def create_account(
        self,
        *,
        name: str,
        currency: Currency | str,
        summary_email: str,
        locale: str = "en_GB",
        timezone: str = "UTC",
        run_time: time = DEFAULT_RUN_TIME,
        payment_terms_days: int = 14,
        invoice_series: str = "INV",
        account_id: str | None = None,
        rounding: str = ROUND_HALF_UP,
        reference_scheme: ReferenceScheme | None = None,
        payee_account: PayeeAccount | None = None,
        vat_number: str | None = None,
    ) -> Account:
        """Create the business that bills; validates its zone, locale and series.

        ``rounding`` is the :mod:`decimal` rounding mode of its invoice amounts
        (line amounts, percentages and VAT): half-up unless given, such as
        ``decimal.ROUND_HALF_EVEN``; another value raises
        :class:`~recurbill.errors.InvalidRecordError`.

        ``reference_scheme`` is how its invoice numbers become payment
        references, as its bank agreement says: a KID (MOD10 or MOD11) for
        NOK, an OCR number (with or without length digit) for SEK, each with
        an optional fixed length. Left out (None), it is the currency's
        default (:meth:`ReferenceScheme.default_for`); a scheme the currency
        does not use raises :class:`~recurbill.errors.InvalidRecordError`.

        ``payee_account`` is where customers who pay by invoice pay to (a
        :class:`~recurbill.payee.PayeeAccount`: a Norwegian account number,
        a Bankgiro or Plusgiro number, or an IBAN with optional BIC), and
        ``vat_number`` the seller's VAT or organisation number (e.g.
        ``"NO 999 999 999 MVA"``); its invoice e-mails show both, and the
        request to pay names the account. Left out (None), they show
        neither. A number that fails its check raises
        :class:`~recurbill.errors.InvalidPayeeError`.

        ``locale``, ``timezone``, ``run_time`` and ``invoice_series`` given
        as None raise :class:`~recurbill.errors.InvalidRecordError`: leave
        them out for their defaults.

        ``account_id`` left out (None) is generated; empty text raises
        :class:`~recurbill.errors.InvalidInputError`, and an id in use raises
        :class:`~recurbill.errors.ConflictError`.
        """
        settings = _given(
            timezone=timezone,
            locale=locale,
            run_time=run_time,
            invoice_series=invoice_series,
        )
        _check_settings(**settings)
        chosen = {}  # left out: the Account's default for its currency
        if reference_scheme is not None:
            chosen["reference_scheme"] = reference_scheme
        account = Account(
            id=chosen_id(account_id, "account_id", one_per="account")
            or self.ids("acct"),
            name=name,
            currency=as_currency(currency),
            locale=locale,
            timezone=timezone,
            run_time=run_time,
            payment_terms_days=payment_terms_days,
            invoice_series=invoice_series,
            summary_email=summary_email,
            rounding=rounding,
            payee_account=payee_account,
            vat_number=vat_number,
            **chosen,
        )
        with self.storage.transaction() as tx:
            tx.add_account(account)
            tx.commit()
        return account

    def change_account(
        self,
        account_id: str,
        *,
        name: str | None = None,
        payment_terms_days: int | None = None,
        summary_email: str | None = None,
        locale: str | None = None,
        reference_scheme: ReferenceScheme | None = None,
        currency: Currency | str | None = None,
        timezone: str | None = None,
        run_time: time | None = None,
        invoice_series: str | None = None,
        rounding: str | None = None,
        payee_account: PayeeAccount | None = None,
        vat_number: str | None = None,
        clear: Iterable[str] = (),
    ) -> Account:
        """Change an account's name, payment terms, summary address, locale,
        payment-reference scheme, payee account or VAT number; None keeps one.

        ``clear`` names the optional settings to remove: ``"payee_account"``
        and ``"vat_number"`` (an account that stops taking bank transfers, or
        a VAT number registered by mistake); the invoice e-mails written after
        it show neither. Another name, a bare string, bytes or a mapping, or
        a setting both given and cleared is an
        :class:`~recurbill.errors.InvalidInputError`.

        Checked as :meth:`create_account` checks them (a reference scheme
        must be one the currency uses), before anything changes. A change
        applies to what is made after it: invoices issued later get the new
        payment terms and reference scheme, e-mails written later the new
        name, and the next daily summary goes to the new address in the new
        locale. Issued invoices and queued e-mails never change (an invoice
        rendered again, with :func:`~recurbill.notify.render.render_invoice`,
        shows the account's current name), and customers keep their own
        locale (:meth:`Billing.change_customer`); customers added later get the new
        one by default. An invoice being issued meanwhile gets the settings
        the account has when its number is taken: the change waits for one
        that holds its number. A new payee account or VAT number shows on
        the invoice e-mails written after it (an issued invoice rendered
        again shows the current ones, as it shows the current name).

        A new reference scheme must hold the account's next invoice number
        (:class:`~recurbill.errors.ReferenceLengthError` names the largest
        it holds) and, once invoices are issued, may not drop the OCR length
        digit: a later invoice's reference could then repeat an issued one's
        (:class:`~recurbill.errors.FixedSettingError`).

        ``currency``, ``timezone``, ``run_time``, ``invoice_series`` and
        ``rounding`` are fixed when the account is created. A bad value is
        refused as :meth:`create_account` refuses it; given with their
        current value they are accepted (a settings form may send every
        field); another value raises
        :class:`~recurbill.errors.FixedSettingError`, saying why and what to
        do instead. Two changes at once each keep the other's: the account
        is locked while it changes.
        """
        _check_settings(
            timezone=timezone,
            locale=locale,
            run_time=run_time,
            invoice_series=invoice_series,
        )
        given: dict[str, Any] = {
            field: value
            for field, value in (
                ("name", name),
                ("payment_terms_days", payment_terms_days),
                ("summary_email", summary_email),
                ("locale", locale),
                ("reference_scheme", reference_scheme),
                ("payee_account", payee_account),
                ("vat_number", vat_number),
            )
            if value is not None
        }
        given.update(_cleared(clear, given))
        fixed: dict[str, Any] = {
            field: value
            for field, value in (
                ("currency", None if currency is None else as_currency(currency)),
                ("timezone", timezone),
                ("run_time", run_time),
                ("invoice_series", invoice_series),
            )
            if value is not None
        }
        with self.storage.transaction() as tx:
            fresh = tx.get_account(account_id, for_update=True)
            # refuses a bad value first, as create_account does (its Account)
            changed = attrs.evolve(fresh, **given)
            if rounding is not None:
                attrs.evolve(changed, rounding=rounding)
                fixed["rounding"] = rounding
            _refuse_fixed(fresh, **fixed)
            if changed.reference_scheme != fresh.reference_scheme:
                # the counter stays locked until the change is committed: an
                # invoice numbered meanwhile reads the account after its number
                next_number = tx.lock_invoice_numbers(account_id, fresh.invoice_series)
                _check_new_scheme(fresh, changed.reference_scheme, next_number)
            if changed != fresh:
                tx.update_account(changed)
                tx.commit()
        return changed


CLEARABLE = ("payee_account", "vat_number")
"""The account settings :meth:`Accounts.change_account` can remove (``clear``)."""


def _cleared(clear: object, given: Mapping[str, object]) -> dict[str, None]:
    """The settings *clear* names, each set to None, or a clear error."""
    allowed = f"a list of the settings to remove, out of {', '.join(CLEARABLE)}"
    if isinstance(clear, (str, bytes, Mapping)) or not isinstance(clear, Iterable):
        raise InvalidInputError(
            problem=f"clear={clear!r} is not a list of setting names", allowed=allowed
        )
    names = list(clear)
    for name in names:
        if name not in CLEARABLE:
            raise InvalidInputError(
                problem=f"clear names {name!r}, which cannot be removed",
                allowed=allowed,
            )
        if name in given:
            raise InvalidInputError(
                problem=f"{name} is both given and cleared",
                allowed=f"give a new {name} or clear it, not both",
            )
    return dict.fromkeys(names)


_FIXED: dict[str, tuple[str, str]] = {
    "currency": (
        "every invoice, template, payment and credit balance of the account is in it",
        "bill in another currency from a new account (create_account)",
    ),
    "timezone": (
        "it places every template's due instants and every invoice's date: "
        "a new zone would move the occurrences already scheduled",
        "bill in another zone from a new account (create_account)",
    ),
    "run_time": (
        "it fixes the instant each template's next occurrence is due, stored "
        "with the template: a new time would move them all",
        "call run() at the hour you want instead: each run issues what is due "
        "by its as_of",
    ),
    "invoice_series": (
        "invoice numbers are gapless within their series, and KID and OCR "
        "references are made from the number alone: a new series would start "
        "again at 1 and repeat the references of issued invoices",
        "keep the series; a new numbering needs a new account (create_account)",
    ),
    "rounding": (
        "issued invoices are shown (render_invoice) by computing their lines "
        "again with it: a new mode would change how they read",
        "keep the mode; round otherwise from a new account (create_account)",
    ),
}
"""Account settings fixed at creation: why, and what to do instead."""


def _refuse_fixed(account: Account, **given: object) -> None:
    """Refuse a fixed setting given (checked already) with another value than
    the account's."""
    for setting, value in given.items():
        current = getattr(account, setting)
        if value != current:
            why, instead = _FIXED[setting]
            raise FixedSettingError(
                setting=setting,
                problem=f"{setting} of account {account.id!r} cannot change from "
                f"{_shown(current)} to {_shown(value)}: {why}",
                allowed=instead,
            )


def _shown(value: object) -> str:
    if isinstance(value, Currency):
        return value.code
    if isinstance(value, time):
        return f"{value:%H:%M}"
    return repr(value)


def _check_new_scheme(
    account: Account, scheme: ReferenceScheme, next_number: int
) -> None:
    """Refuse a reference scheme that cannot serve the account's next invoice,
    or whose references could repeat those of issued invoices.

    KID and OCR references hold their invoice number before the check digit
    (and length digit), so two numbers never share one, whatever the method
    or length; except that an OCR without length digit reads an issued OCR
    with one as a ten times larger number (invoice 47's 4747 is invoice
    474's too), which a later invoice reaches.
    """
    scheme.reference(next_number, series=account.invoice_series)
    if (
        next_number > 1
        and account.reference_scheme.method is ReferenceMethod.OCR_LENGTH_DIGIT
        and scheme.method is ReferenceMethod.OCR
    ):
        raise FixedSettingError(
            setting="reference_scheme",
            problem=f"account {account.id!r} has issued OCR numbers with a "
            "length digit: without it a later invoice's reference could repeat "
            "an issued one (invoice 47's OCR 4747 is invoice 474's without the "
            "length digit)",
            allowed="keep 'ocr_length_digit' (its fixed length may change), or "
            "drop the length digit before the account's first invoice",
        )


def _check_settings(
    *,
    timezone: str | None,
    locale: str | None,
    run_time: time | None,
    invoice_series: str | None,
) -> None:
    """Check the settings ``create_account`` or ``change_account`` is given
    (None: not given) that the Account record does not check itself."""
    if timezone is not None:
        _check_zone(timezone)
    if locale is not None:
        check_locale(locale)
    if run_time is not None and (
        not isinstance(run_time, time) or run_time.tzinfo is not None
    ):
        raise InvalidRecordError(
            problem=f"run_time {run_time!r} is not a naive time of day",
            allowed="give a datetime.time such as time(6, 15) (local time)",
        )
    reserved = (RECEIPT_SERIES, CREDIT_NOTE_SERIES)
    if invoice_series is not None and (
        not isinstance(invoice_series, str)
        or not invoice_series.isalnum()
        or invoice_series.upper() in reserved
    ):
        raise InvalidRecordError(
            problem=f"invoice series {invoice_series!r} is not allowed",
            allowed="use letters and digits only, e.g. 'INV' "
            f"({' and '.join(reserved)} are reserved)",
        )


def _given(**settings: Any) -> dict[str, Any]:
    """*settings* of a new account, each given: None is no setting (for
    ``change_account`` it keeps one, so :func:`_check_settings` passes it)."""
    for name, value in settings.items():
        if value is None:
            raise InvalidRecordError(
                problem=f"{name} None is not a setting",
                allowed=f"give {name}, or leave it out for the default",
            )
    return settings


def _check_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidRecordError(
            problem=f"time zone {zone!r} is unknown",
            allowed="give an IANA zone such as 'Europe/Oslo' or 'Atlantic/Reykjavik'",
        ) from None
