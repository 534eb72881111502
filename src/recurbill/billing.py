"""The billing service: what applications call. It owns the invoices and the ledger.

:class:`Billing` is the shell around the pure core. It reads and writes
:class:`~recurbill.storage.protocol.Storage`, calls the
:class:`~recurbill.payments.protocol.PaymentGateway`, and queues e-mail in the
storage's outbox. It never reads a clock: every call that needs "now" takes it.

>>> from datetime import datetime, timezone
>>> from recurbill.payments.memory import InMemoryGateway
>>> from recurbill.storage.memory import InMemoryStorage
>>> billing = Billing(storage=InMemoryStorage(), gateway=InMemoryGateway())
>>> account = billing.create_account(
...     name="Fjord Fysio", currency="NOK", locale="nb_NO",
...     timezone="Europe/Oslo", summary_email="post@fjordfysio.no")
>>> account.run_time.isoformat()
'06:15:00'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from babel import Locale, UnknownLocaleError

from recurbill.arguments import (
    allowance_charges,
    aware,
    caller_key,
    day,
    invoice_lines,
    to_collection_method,
)
from recurbill.collection import (
    NO_OUTCOME,
    ONE_INVOICE_ADVICE,
    RECEIPT_SERIES,
    Collector,
    RetryPolicy,
    check_chargeable,
    local_date,
    paying,
)
from recurbill.corrections import CREDIT_NOTE_SERIES, Corrections
from recurbill.credit import Credits
from recurbill.daily import (
    DailyRun,
    build_invoice,
    check_lines,
    collect_or_send,
    next_due,
    run_accounts,
)
from recurbill.errors import (
    ConflictError,
    FixedSettingError,
    GatewayAuthenticationError,
    GatewayUnavailableError,
    InvalidInputError,
    InvalidRecordError,
    InvalidScheduleError,
    NotFoundError,
    StateError,
)
from recurbill.ids import IdFactory, derived_id, random_id
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.mass_payment import MassPayment, MassPaymentConfirmation
from recurbill.money import Currency, Money, as_currency
from recurbill.payments import check_customer
from recurbill.payments.protocol import (
    ACCOUNT_METADATA_KEY,
    CUSTOMER_METADATA_KEY,
    PAYMENT_METADATA_KEY,
    REFUND_METADATA_KEY,
    CardSetup,
    PaymentGateway,
)
from recurbill.records import (
    LAST_YEAR,
    Account,
    CollectionMethod,
    CreditNoteRecord,
    Customer,
    Invoice,
    InvoiceStatus,
    NoChargeReason,
    Payment,
    PaymentMethod,
    PaymentStatus,
    RecurringTemplate,
    Refund,
    RunReport,
    TemplateStatus,
    due_instant,
)
from recurbill.references import ReferenceMethod, ReferenceScheme
from recurbill.schedule import DEFAULT_RUN_TIME, Period, Schedule
from recurbill.settlement import AllocationResult, SettlementPlan
from recurbill.storage.protocol import Storage, Transaction
from recurbill.views import (
    CustomerOverview,
    PaymentOutcome,
    TemplateView,
    customer_overview,
    template_view,
)

__all__ = ["Billing"]


def _chunk_size(_: object, __: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            problem=f"chunk_size={value!r}",
            allowed="chunk_size must be a whole number of templates, 1 or more",
        )


@attrs.define
class Billing:
    """The billing service over a storage, a gateway and (for e-mail) an outbox.

    ``ids`` makes new record ids (random by default; pass your own for
    reproducible tests). ``retry_policy`` says when declined automatic
    charges are tried again. ``chunk_size`` is how many due templates the
    daily run issues per transaction: larger chunks commit less often (the
    run is faster) but hold their locks longer (on SQLite, the database's
    write lock, which every other writer waits for meanwhile).
    """

    storage: Storage
    gateway: PaymentGateway
    ids: IdFactory = random_id
    retry_policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    chunk_size: int = attrs.field(default=1000, validator=_chunk_size)
    _collector: Collector = attrs.field(init=False)
    _daily: DailyRun = attrs.field(init=False)
    _mass: MassPayment = attrs.field(init=False)
    _corrections: Corrections = attrs.field(init=False)
    _credits: Credits = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._collector = Collector(
            self.storage, self.gateway, self.ids, self.retry_policy
        )
        self._daily = DailyRun(
            self.storage, self._collector, self.ids, chunk_size=self.chunk_size
        )
        self._mass = MassPayment(self.storage, self._collector, self.ids)
        self._corrections = Corrections(
            self.storage, self.gateway, self._collector, self.ids
        )
        self._credits = Credits(self.storage, self.ids)

    # accounts and customers -----------------------------------------------
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
        """
        _check_settings(
            timezone=timezone,
            locale=locale,
            run_time=run_time,
            invoice_series=invoice_series,
        )
        chosen = {}  # left out: the Account's default for its currency
        if reference_scheme is not None:
            chosen["reference_scheme"] = reference_scheme
        account = Account(
            id=account_id or self.ids("acct"),
            name=name,
            currency=as_currency(currency),
            locale=locale,
            timezone=timezone,
            run_time=run_time,
            payment_terms_days=payment_terms_days,
            invoice_series=invoice_series,
            summary_email=summary_email,
            rounding=rounding,
            **chosen,
        )
        with self.storage.transaction() as tx:
            tx.add_account(account)
            tx.commit()
        return account

    def add_customer(
        self,
        account_id: str,
        *,
        name: str,
        email: str,
        locale: str | None = None,
        collection_method: CollectionMethod | str = (
            CollectionMethod.CHARGE_AUTOMATICALLY
        ),
        customer_id: str | None = None,
    ) -> Customer:
        """Add a customer, then create it at the gateway.

        The customer is stored first; then the gateway customer is created
        with an idempotency key derived from the customer's id, and its id is
        stored. So no failure leaves a gateway customer recurbill does not
        know of: if the gateway call or the last write fails, the error is
        raised and the customer stays stored without a gateway customer. To
        finish it, call ``add_customer`` again with the same ``customer_id``
        and arguments, or go on: :meth:`start_card_setup` and
        :meth:`save_card` create it first. The same key makes the gateway
        return the customer it made for the lost answer while the gateway
        remembers the key (Stripe: 24 hours); to find it later too, a repeat
        first looks for a gateway customer with this customer's metadata
        (:meth:`~recurbill.payments.protocol.PaymentGateway.find_customer`).
        Pass your own ``customer_id`` to make this call safe to repeat.

        A call for a ``customer_id`` that exists repeats the one that added
        it, and returns the customer as it is now, when its arguments are
        those it was added with (``locale`` left out means the account's,
        even once the account's changes), or its name, e-mail address,
        locale and collection method as they are now. So a repeat after
        :meth:`change_customer` or :meth:`set_collection_method` returns the
        changed customer and undoes nothing. Other details are another
        customer: :class:`~recurbill.errors.ConflictError` names the ones
        that differ, and nothing changes. (A customer stored before schema
        version 6 is known by its details as they are now only.)
        """
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
        chosen_locale = locale or account.locale
        _check_locale(chosen_locale)
        customer = Customer(
            id=customer_id or self.ids("cus"),
            account_id=account_id,
            name=name,
            email=email,
            locale=chosen_locale,
            collection_method=to_collection_method(collection_method),
        )
        customer = attrs.evolve(customer, added_with=_added_with(customer, locale))
        check_customer(email=email, name=name)  # as the gateway will, first
        try:
            with self.storage.transaction() as tx:
                stored = _stored_customer(tx, account_id, customer.id)
                if stored is None:
                    tx.add_customer(customer)
                    tx.commit()
        except ConflictError:  # added by another call meanwhile
            stored = self._customer(account_id, customer.id)
        if stored is not None:
            _refuse_another(stored, customer)
            customer = stored
        return self._with_gateway_customer(customer, look_up=stored is not None)

    def _with_gateway_customer(
        self, customer: Customer, *, look_up: bool = True
    ) -> Customer:
        """*customer* with its gateway customer, created now if it has none.

        With *look_up* (an earlier call may have created it, its answer
        lost), the gateway is first asked for a customer carrying this one's
        metadata: the idempotency key, derived from the stored customer,
        returns the same one only while the gateway remembers it (Stripe: 24
        hours). Stripe's search is eventually consistent (a minute, an hour
        in an outage): this narrows the window for a second gateway
        customer, it does not guarantee there is none.
        """
        if customer.gateway_customer_id is not None:
            return customer
        metadata = {
            CUSTOMER_METADATA_KEY: customer.id,
            ACCOUNT_METADATA_KEY: customer.account_id,
        }
        gateway_id = (
            self.gateway.find_customer(metadata=metadata) if look_up else None
        ) or self.gateway.create_customer(
            email=customer.email,
            name=customer.name,
            metadata=metadata,
            idempotency_key="recurbill-"
            + derived_id("gcus", customer.account_id, customer.id),
        )
        with self.storage.transaction() as tx:
            fresh = tx.get_customer(customer.account_id, customer.id, for_update=True)
            if fresh.gateway_customer_id is None:  # else a call stored it first
                fresh = attrs.evolve(fresh, gateway_customer_id=gateway_id)
                tx.update_customer(fresh)
                tx.commit()
        return fresh

    def set_collection_method(
        self, account_id: str, customer_id: str, method: CollectionMethod | str
    ) -> Customer:
        """Charge this customer's card automatically, or send invoices to pay."""
        with self.storage.transaction() as tx:
            customer = attrs.evolve(
                tx.get_customer(account_id, customer_id, for_update=True),
                collection_method=to_collection_method(method),
            )
            tx.update_customer(customer)
            tx.commit()
        return customer

    def change_customer(
        self,
        account_id: str,
        customer_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        locale: str | None = None,
    ) -> Customer:
        """Change a customer's name, e-mail address or locale; None keeps one.

        Checked as :meth:`add_customer` checks them, before anything changes;
        the collection method has :meth:`set_collection_method`. What comes
        later (invoices, receipts, notices) uses the new details; what was
        issued or queued before keeps the old (an e-mail in the outbox goes
        to the address it was written for).

        The gateway keeps the name and e-mail address too (Stripe's receipts
        use them), so they are checked as the gateway checks them (no card
        numbers) before anything is stored. The change is stored first, then
        the gateway customer is given the stored name and address, and
        storage is read again: a change another call stored meanwhile is sent
        as well, so the gateway ends with what storage holds. If the gateway
        call fails, its error is raised with the change stored, and nothing
        repairs the gateway later on its own (its receipts keep the old
        details): the caller must call again with the same arguments until
        it returns (the call sets values, so repeating it is harmless). A
        customer whose gateway customer was never created gets it first,
        with the details it was added with, so the key :meth:`add_customer`
        used finds the same one.
        """
        if locale is not None:
            _check_locale(locale)
        given = {
            field: value
            for field, value in (("name", name), ("email", email), ("locale", locale))
            if value is not None
        }
        customer = self._customer(account_id, customer_id)
        wanted = attrs.evolve(customer, **given)  # refuses a bad name or address
        mirrored = name is not None or email is not None
        if mirrored:  # and what the gateway would refuse, before it is stored
            check_customer(email=wanted.email, name=wanted.name)
        if mirrored and customer.gateway_customer_id is None:
            self._with_gateway_customer(customer)
        with self.storage.transaction() as tx:
            fresh = tx.get_customer(account_id, customer_id, for_update=True)
            changed = attrs.evolve(fresh, **given)
            if changed != fresh:
                tx.update_customer(changed)
                tx.commit()
        return self._mirror(changed) if mirrored else changed

    def _mirror(self, customer: Customer) -> Customer:
        """Give the gateway customer the stored name and e-mail until they agree.

        Each round sends what was read, then reads again. Whoever stores a
        change sends after storing it, so the last value sent is one read
        after the last change: the gateway ends with what storage holds.
        """
        for _ in range(_MIRROR_ROUNDS):
            if customer.gateway_customer_id is None:
                return customer
            self.gateway.update_customer(
                customer.gateway_customer_id, email=customer.email, name=customer.name
            )
            latest = self._customer(customer.account_id, customer.id)
            if (latest.email, latest.name) == (customer.email, customer.name):
                return latest
            customer = latest
        raise ConflictError(
            problem=f"customer {customer.id!r} was changed again by other calls "
            f"each time its gateway customer was updated ({_MIRROR_ROUNDS} times)",
            allowed="call change_customer again once the other changes are done",
        )

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
    ) -> Account:
        """Change an account's name, payment terms, summary address, locale or
        payment-reference scheme; None keeps one.

        Checked as :meth:`create_account` checks them (a reference scheme
        must be one the currency uses), before anything changes. A change
        applies to what is made after it: invoices issued later get the new
        payment terms and reference scheme, e-mails written later the new
        name, and the next daily summary goes to the new address in the new
        locale. Issued invoices and queued e-mails never change (an invoice
        rendered again, with :func:`~recurbill.notify.render.render_invoice`,
        shows the account's current name), and customers keep their own
        locale (:meth:`change_customer`); customers added later get the new
        one by default. An invoice being issued meanwhile gets the settings
        the account has when its number is taken: the change waits for one
        that holds its number.

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
            )
            if value is not None
        }
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

    # cards -------------------------------------------------------------
    def start_card_setup(self, account_id: str, customer_id: str) -> CardSetup:
        """Start saving a card; the browser completes it with the client secret.

        A customer whose gateway customer :meth:`add_customer` could not
        create gets it first.
        """
        customer = self._with_gateway_customer(self._customer(account_id, customer_id))
        return self.gateway.start_card_setup(customer.gateway_customer_id or "")

    def save_card(
        self,
        account_id: str,
        customer_id: str,
        *,
        token: str,
        make_default: bool = True,
    ) -> PaymentMethod:
        """Store a confirmed payment method (a gateway token) for the customer.

        As :meth:`start_card_setup`, it creates a missing gateway customer
        first. Then it attaches the token at the gateway, stores the card and,
        with ``make_default`` (or when the customer has no default card),
        makes it the default, in storage and then at the gateway.

        Safe to repeat with the same token: a card stored under it for this
        customer is returned, not stored again, and what the earlier call left
        undone (the default) is done. If storing fails after the attach, the
        card is detached again (best effort) and the error raised, so no card
        stays at the gateway that recurbill does not show and cannot remove;
        a detached card cannot be attached again, so the customer saves the
        card anew (a new :meth:`start_card_setup`). It stays attached only if
        storage, read again, holds it after all (a commit whose answer was
        lost), storing only waited too long for a lock (``ConflictError``:
        nothing was written, and the lock passes), or the gateway cannot
        detach it: then a repeat with the same token adopts it.
        If the gateway's default cannot be set, the card stays stored (and the
        default in storage) and the error is raised: repeat to finish.
        Stripe's test ids (``pm_card_visa``) make a new card at each attach,
        so only the token of a confirmed setup names the same card twice.
        """
        customer = self._with_gateway_customer(self._customer(account_id, customer_id))
        gateway_customer = customer.gateway_customer_id or ""
        method = self._card_stored_as(account_id, customer_id, token)
        if method is None:
            details = self.gateway.attach_payment_method(gateway_customer, token=token)
            method, default = self._keep_attached(
                PaymentMethod(
                    id=self.ids("pm"),
                    account_id=account_id,
                    customer_id=customer_id,
                    token=details.token,
                    brand=details.brand,
                    last4=details.last4,
                    exp_month=details.exp_month,
                    exp_year=details.exp_year,
                ),
                make_default=make_default,
            )
        else:  # stored by an earlier call: finish what it left undone
            method, default = self._store_card(method, make_default=make_default)
        if default:
            self.gateway.set_default_payment_method(
                gateway_customer, token=method.token
            )
        return method

    def _card_stored_as(
        self, account_id: str, customer_id: str, token: str
    ) -> PaymentMethod | None:
        """The customer's stored card with gateway token *token*, if any."""
        with self.storage.transaction(read_only=True) as tx:
            return _with_token(tx.list_payment_methods(account_id, customer_id), token)

    def _store_card(
        self, method: PaymentMethod, *, make_default: bool
    ) -> tuple[PaymentMethod, bool]:
        """Store *method* unless the customer has a card with its token; make
        the stored card the default if asked or if there is none; return it
        and whether it is the default.

        The customer's row is locked first, so two calls saving one token
        store it once.
        """
        account_id, customer_id = method.account_id, method.customer_id
        with self.storage.transaction() as tx:
            customer = tx.get_customer(account_id, customer_id, for_update=True)
            stored = _with_token(
                tx.list_payment_methods(account_id, customer_id), method.token
            )
            if stored is None:
                tx.add_payment_method(method)
                stored = method
            default = customer.default_payment_method_id
            if (make_default or default is None) and default != stored.id:
                tx.update_customer(
                    attrs.evolve(customer, default_payment_method_id=stored.id)
                )
                default = stored.id
            tx.commit()
        return stored, default == stored.id

    def _keep_attached(
        self, method: PaymentMethod, *, make_default: bool
    ) -> tuple[PaymentMethod, bool]:
        """Store a card just attached; if that fails, detach it again before
        the error is raised, unless storage shows it stored after all (a
        commit whose answer was lost).

        Storage that cannot be read then is taken to hold no new card: a card
        wrongly left attached would be hidden, one wrongly detached is shown,
        its charges fail, and it can be removed. A lock waited for too long
        (``ConflictError``: the daily run's chunk, another save) passes, and
        wrote nothing: the card stays attached for the repeat to store.
        """
        try:
            return self._store_card(method, make_default=make_default)
        except ConflictError:
            raise
        except Exception:
            stored: PaymentMethod | None = None
            with contextlib.suppress(Exception):
                stored = self._card_stored_as(
                    method.account_id, method.customer_id, method.token
                )
            if stored is None:
                with contextlib.suppress(Exception):  # the first error is raised
                    self.gateway.detach_payment_method(method.token)
            raise

    def set_default_card(
        self, account_id: str, customer_id: str, method_id: str
    ) -> Customer:
        """Make a saved card the one automatic charges use."""
        with self.storage.transaction() as tx:
            method = tx.get_payment_method(account_id, method_id)
            if method.customer_id != customer_id:
                raise NotFoundError(
                    kind="payment method", key=method_id, account=account_id
                )
            customer = attrs.evolve(
                tx.get_customer(account_id, customer_id, for_update=True),
                default_payment_method_id=method.id,
            )
            tx.update_customer(customer)
            tx.commit()
        self.gateway.set_default_payment_method(
            customer.gateway_customer_id or "", token=method.token
        )
        return customer

    def remove_card(
        self, account_id: str, customer_id: str, method_id: str, *, now: datetime
    ) -> None:
        """Forget a saved card (and detach it at the gateway).

        A charge of this card that waits for the customer's authentication is
        canceled at the gateway first (recorded as declined if the bank
        declined it meanwhile: an automatic charge then follows the retry
        policy, with the customer's default card at the time of the retry).
        Refused while a payment with the card has no outcome yet (pending,
        unknown or processing): its outcome must still be recorded against
        the card.

        The card is detached at the gateway before it is forgotten, so a
        failure at either step leaves it stored and shown, and a repeat
        finishes the job (a card no longer attached is not detached again).
        """
        self._cancel_waiting(account_id, customer_id, method_id, now=aware(now, "now"))
        with self.storage.transaction(read_only=True) as tx:
            method = self._removable_card(tx, account_id, customer_id, method_id)
            owner = tx.get_customer(account_id, customer_id).gateway_customer_id
        attached = owner and self.gateway.list_payment_methods(owner)
        if attached and method.token in {card.token for card in attached}:
            self.gateway.detach_payment_method(method.token)
        with self.storage.transaction() as tx:
            self._removable_card(tx, account_id, customer_id, method_id)
            customer = tx.get_customer(account_id, customer_id, for_update=True)
            tx.remove_payment_method(account_id, method_id)
            if customer.default_payment_method_id == method_id:
                tx.update_customer(
                    attrs.evolve(customer, default_payment_method_id=None)
                )
            tx.commit()

    def _cancel_waiting(
        self,
        account_id: str,
        customer_id: str,
        method_id: str,
        *,
        now: datetime,
    ) -> None:
        with self.storage.transaction() as tx:
            waiting = [
                p
                for p in tx.list_payments(
                    account_id,
                    customer_id=customer_id,
                    statuses=[PaymentStatus.REQUIRES_ACTION],
                )
                if p.payment_method_id == method_id
            ]
        for payment in waiting:
            self._collector.cancel(account_id, payment.id, now=now)

    def _removable_card(
        self, tx: Transaction, account_id: str, customer_id: str, method_id: str
    ) -> PaymentMethod:
        method = tx.get_payment_method(account_id, method_id)
        if method.customer_id != customer_id:
            raise NotFoundError(
                kind="payment method", key=method_id, account=account_id
            )
        busy = [
            p
            for p in tx.list_payments(
                account_id,
                customer_id=customer_id,
                statuses=NO_OUTCOME,
            )
            if p.payment_method_id == method_id
        ]
        if busy:
            raise StateError(
                problem=(
                    f"card {method.brand} ····{method.last4} has a payment in progress "
                    f"({busy[0].status.value})"
                ),
                allowed="remove it once that payment has an outcome "
                "(confirm_payment asks the gateway)",
            )
        return method

    def replace_card(
        self,
        account_id: str,
        customer_id: str,
        *,
        old_method_id: str,
        token: str,
        now: datetime,
    ) -> PaymentMethod:
        """Update card details: save the new card as default, forget the old one.

        As :meth:`remove_card`: a charge of the old card waiting for
        authentication is canceled; one with no outcome yet refuses the
        change, checked before anything changes. So is a *token* that is the
        old card's own (:class:`~recurbill.errors.InvalidInputError`): saving
        it returns the old card, which would then be forgotten, leaving none.
        A repeat after a failure is safe (:meth:`save_card` returns the new
        card it stored); once the old card is gone it raises ``NotFoundError``.
        """
        now = aware(now, "now")
        with self.storage.transaction(read_only=True) as tx:
            old = self._removable_card(tx, account_id, customer_id, old_method_id)
        if old.token == token:
            raise InvalidInputError(
                problem=f"token {token!r} is the card being replaced "
                f"({old.brand} ····{old.last4})",
                allowed="give the token of the new card, from a new card setup",
            )
        self._cancel_waiting(account_id, customer_id, old_method_id, now=now)
        with self.storage.transaction() as tx:
            self._removable_card(tx, account_id, customer_id, old_method_id)
        method = self.save_card(account_id, customer_id, token=token)
        self.remove_card(account_id, customer_id, old_method_id, now=now)
        return method

    # recurring templates ---------------------------------------------------
    def create_template(
        self,
        account_id: str,
        customer_id: str,
        *,
        lines: Sequence[InvoiceLine],
        start: date,
        period: Period | str,
        now: datetime,
        every: int = 1,
        end: date | None = None,
        max_count: int | None = None,
        month_end: bool = False,
        memo: str = "",
        template_id: str | None = None,
        allowances: Sequence[AllowanceCharge] = (),
        charges: Sequence[AllowanceCharge] = (),
    ) -> RecurringTemplate:
        """A recurring invoice: these lines, on this schedule, from ``start``.

        ``allowances`` and ``charges`` are document-level (a discount or a fee
        on the whole invoice, each with its reason and own VAT category and
        rate), on every invoice it produces; they are checked as
        :meth:`record_session` checks them.

        The earliest start is tomorrow in the account's time zone (invoices are
        produced by the daily run); an earlier one raises
        :class:`~recurbill.errors.StartTooEarlyError` naming the earliest date.
        A start so late that its first invoice would be due after the end of
        recurbill's calendar (the year 9998, in UTC) would never produce one:
        it raises :class:`~recurbill.errors.InvalidScheduleError` naming the
        latest start.
        """
        aware(now, "now")
        items = invoice_lines(lines)
        discounts = allowance_charges(allowances, is_charge=False)
        fees = allowance_charges(charges, is_charge=True)
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            tx.get_customer(account_id, customer_id)
            schedule = Schedule.create(
                today=local_date(account, now),
                start=start,
                period=period,
                every=every,
                end=end,
                max_count=max_count,
                month_end=month_end,
            )
            check_lines(items, account, allowances=discounts, charges=fees)
            template = RecurringTemplate(
                id=template_id or self.ids("tpl"),
                account_id=account_id,
                customer_id=customer_id,
                currency=account.currency,
                lines=items,
                allowances=discounts,
                charges=fees,
                schedule=schedule,
                memo=memo,
                created_at=now,
            )
            template = _with_next_due(template, account)
            _refuse_never_due(template, account)
            tx.add_template(template)
            tx.commit()
        return template

    def change_template(
        self,
        account_id: str,
        template_id: str,
        *,
        now: datetime,
        lines: Sequence[InvoiceLine] | None = None,
        memo: str | None = None,
        start: date | None = None,
        allowances: Sequence[AllowanceCharge] | None = None,
        charges: Sequence[AllowanceCharge] | None = None,
    ) -> RecurringTemplate:
        """Change a template's lines, document allowances and charges or memo
        (later invoices only), or re-date it.

        What is left out (None) stays as it is; ``allowances=[]`` removes
        them. The lines, allowances and charges it ends up with are checked
        together, as :meth:`create_template` checks them.

        Re-dating is only possible before the daily run has handled its first
        occurrence (issued it, or skipped it because of a pause), and the new
        start must be tomorrow or later and not after the latest start, like
        a new template's.
        """
        aware(now, "now")
        items = None if lines is None else invoice_lines(lines)
        discounts = (
            None
            if allowances is None
            else allowance_charges(allowances, is_charge=False)
        )
        fees = None if charges is None else allowance_charges(charges, is_charge=True)
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            template = _unfinished(
                tx.get_template(account_id, template_id, for_update=True)
            )
            if items is not None or discounts is not None or fees is not None:
                template = attrs.evolve(
                    template,
                    lines=template.lines if items is None else items,
                    allowances=template.allowances if discounts is None else discounts,
                    charges=template.charges if fees is None else fees,
                )
                check_lines(
                    template.lines,
                    account,
                    allowances=template.allowances,
                    charges=template.charges,
                )
            if memo is not None:
                template = attrs.evolve(template, memo=memo)
            if start is not None:
                if template.next_index > 0:
                    raise StateError(
                        problem=f"template {template_id} has handled occurrences "
                        f"(issued or skipped), the first on "
                        f"{template.schedule.start}",
                        allowed="re-date only a template the daily run has not "
                        "reached yet; end this one and create a new template",
                    )
                schedule = template.schedule.redated(
                    today=local_date(account, now), start=start
                )
                template = attrs.evolve(template, schedule=schedule)
            template = _with_next_due(template, account)
            if start is not None:
                _refuse_never_due(template, account)
            tx.update_template(template)
            tx.commit()
        return template

    def pause_template(
        self,
        account_id: str,
        template_id: str,
        *,
        on: date,
        resume: date | None = None,
    ) -> RecurringTemplate:
        """Pause from day ``on`` (until ``resume``, if planned); no back-filling.

        A pause may come before or after the template's other pauses but not
        overlap one. It never changes what the run already did: one that
        starts on or before the last date the run handled (pausing "from
        today" after this morning's invoice) starts the day after it, and one
        that would then end before it starts changes nothing.
        """
        return self._reschedule(
            account_id,
            template_id,
            lambda schedule, first_open: schedule.paused(
                on=on, resume=resume, open_from=first_open
            ),
        )

    def resume_template(
        self, account_id: str, template_id: str, *, on: date
    ) -> RecurringTemplate:
        """Bill again from day ``on``; the original rhythm continues.

        The last pause that starts before ``on`` now ends on ``on``, earlier
        or later than planned; when none does, the next pause, which has not
        begun, is cancelled. Dates the run already handled keep their outcome:
        resuming on or before the last of them resumes the day after it. See
        :meth:`~recurbill.schedule.Schedule.resumed`.
        """
        return self._reschedule(
            account_id,
            template_id,
            lambda schedule, first_open: schedule.resumed(on=on, open_from=first_open),
        )

    def cancel_pause(
        self, account_id: str, template_id: str, *, start: date
    ) -> RecurringTemplate:
        """Cancel the pause that starts on day ``start``, as if it was never asked.

        Only a pause that has not begun can be cancelled: the run has not yet
        handled an occurrence on or after its start. Otherwise this raises
        :class:`~recurbill.errors.InvalidPauseError` naming the first date that
        can still change; resume the template to end such a pause.
        """
        return self._reschedule(
            account_id,
            template_id,
            lambda schedule, first_open: schedule.without_pause(
                start=start, open_from=first_open
            ),
        )

    def end_template(
        self, account_id: str, template_id: str, *, on: date
    ) -> RecurringTemplate:
        """Set the last day (inclusive) on which the template may produce invoices.

        The template stays active until the first daily run at or after the
        end date's run time, which finishes it and reports it under
        ``ended``; until then the end can be moved, later or earlier. It
        cannot come before the last occurrence the run already handled:
        that raises :class:`~recurbill.errors.InvalidScheduleError` naming
        the earliest end allowed.
        """

        def end(schedule: Schedule, first_open: date | None) -> Schedule:
            ended = schedule.ended(on=on)  # refuses a non-date or one before start
            if first_open is not None and on < first_open - timedelta(days=1):
                last = first_open - timedelta(days=1)
                raise InvalidScheduleError(
                    problem=f"end date {on} is before {last}, an occurrence "
                    f"the daily run already handled",
                    allowed=f"end on {last} or later (void or credit invoices "
                    "that should not have been issued)",
                )
            return ended

        return self._reschedule(account_id, template_id, end)

    def _reschedule(
        self,
        account_id: str,
        template_id: str,
        change: Callable[[Schedule, date | None], Schedule],
    ) -> RecurringTemplate:
        """Apply *change* to the template's schedule, given the first date the
        run has not handled yet (None before its first occurrence)."""
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            template = _unfinished(
                tx.get_template(account_id, template_id, for_update=True)
            )
            handled = template.next_index - 1
            first_open = (
                None
                if handled < 0
                else template.schedule.occurrence(handled) + timedelta(days=1)
            )
            schedule = change(template.schedule, first_open)
            template = _with_next_due(
                attrs.evolve(template, schedule=schedule), account
            )
            tx.update_template(template)
            tx.commit()
        return template

    def template_view(
        self, account_id: str, template_id: str, *, upcoming: int = 5
    ) -> TemplateView:
        """The invoices a template produced, its skipped dates, and the next ones.

        See :func:`template_view`, which needs only a storage.
        """
        return template_view(self.storage, account_id, template_id, upcoming=upcoming)

    # the daily run ---------------------------------------------------------
    def run(
        self,
        as_of: datetime,
        *,
        account_ids: Sequence[str] | None = None,
        send_summaries: bool = True,
        summary_when_empty: bool = False,
    ) -> list[RunReport]:
        """Issue every due occurrence by ``as_of`` exactly once, charge, and report.

        Catches up missed days (each invoice dated its own occurrence, numbers
        given in date order as runs on each of those days would), records
        paused occurrences as skipped, charges ``charge_automatically``
        customers, retries declined charges per the retry policy, finishes
        payments and refunds an earlier crash or timeout left open, looks up
        refunds the gateway answered ``pending`` (one that then failed leaves
        its amount as the customer's credit), and queues
        each account's daily summary in the outbox (only when there is
        something to report, unless ``summary_when_empty``). Safe to run twice,
        concurrently, or after a crash.

        ``account_ids`` limits the run to these accounts, one report each in
        that order; a single string or an id given twice raises
        :class:`~recurbill.errors.InvalidInputError`.

        A template that cannot be issued, or whose stored row cannot be read
        (:class:`~recurbill.errors.UnreadableRecordError`), is left as it is
        and reported in ``RunReport.failed``; the others are issued.

        A refused API key or a gateway outage stops the charging, not the
        run: it issues every due invoice, queues the summaries, then raises
        the :class:`~recurbill.errors.GatewayError` with the reports it would
        have returned as the error's ``reports``.
        """
        aware(as_of, "as_of")
        asked = run_accounts(account_ids)
        with self.storage.transaction() as tx:
            accounts = tx.list_account_ids() if asked is None else asked
        refused: GatewayAuthenticationError | None = None
        for step in (
            self._corrections.finish_unanswered,
            self._corrections.follow_pending,
        ):
            try:
                step(accounts, now=as_of)
            except GatewayAuthenticationError as error:
                refused = error  # those refunds wait; the run goes on, then says so
        reports = self._daily.run(
            as_of,
            account_ids=asked,
            send_summaries=send_summaries,
            summary_when_empty=summary_when_empty,
        )
        if refused is not None:
            refused.reports = tuple(reports)
            raise refused
        return reports

    # sessions and single payments -----------------------------------------
    def record_session(
        self,
        account_id: str,
        customer_id: str,
        *,
        lines: Sequence[InvoiceLine],
        now: datetime,
        memo: str = "",
        session_id: str | None = None,
        allowances: Sequence[AllowanceCharge] = (),
        charges: Sequence[AllowanceCharge] = (),
    ) -> PaymentOutcome:
        """Invoice a session; charge the default card at once if so chosen.

        ``allowances`` and ``charges`` are document-level (EN 16931 BG-20,
        BG-21): a discount or a fee on the whole invoice, each an
        :class:`~recurbill.invoice.AllowanceCharge` with a reason, its own VAT
        category and rate, and a positive amount, or a percentage (above 0, at
        most 100) of a positive base amount, in the account's currency
        decimals. Bad ones raise :class:`~recurbill.errors.InvalidInvoiceError`
        (:class:`~recurbill.errors.VatCategoryError` for VAT), and so does an
        invoice that would total less than zero; nothing is written then.

        With ``session_id`` the call is idempotent: recording the same session
        again returns the first result and never invoices or charges twice.

        When nothing is charged, the outcome's ``reason`` says why (a
        :class:`~recurbill.records.NoChargeReason`: not charged automatically,
        no card, nothing due, or an amount the card cannot take); the invoice
        e-mail then asks for payment by the due date with the reference (and,
        for an amount the card cannot take, first says so).
        """
        aware(now, "now")
        items = invoice_lines(lines)
        discounts = allowance_charges(allowances, is_charge=False)
        fees = allowance_charges(charges, is_charge=True)
        invoice_id = (
            derived_id(
                "inv",
                account_id,
                "session",
                caller_key(session_id, "session_id", one_per="session"),
            )
            if session_id is not None
            else self.ids("inv")
        )
        payment: Payment | None = None
        reason: NoChargeReason | None = None
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            customer = tx.get_customer(account_id, customer_id)
            check_lines(items, account, allowances=discounts, charges=fees)
            try:
                existing = tx.get_invoice(account_id, invoice_id)
            except NotFoundError:
                existing = None
            if existing is not None and existing.customer_id != customer_id:
                raise ConflictError(
                    problem=f"session {session_id!r} was recorded for another customer",
                    allowed="give each session its own session_id",
                )
            if existing is None:
                number = tx.allocate_invoice_numbers(account_id, account.invoice_series)
                # read again under the counter's lock: a change_account of the
                # reference scheme, payment terms or name is in, or waits
                account = tx.get_account(account_id)
                invoice = build_invoice(
                    invoice_id=invoice_id,
                    account=account,
                    customer=customer,
                    lines=items,
                    allowances=discounts,
                    charges=fees,
                    number=number,
                    issue_date=local_date(account, now),
                    now=now,
                    memo=memo,
                )
                tx.add_invoices([invoice])
                plan = collect_or_send(
                    tx,
                    self._collector,
                    account=account,
                    customer=customer,
                    invoices=[invoice],
                    now=now,
                )
                payment = plan.payments[0] if plan.payments else None
                reason = plan.reasons.get(invoice.id)
                tx.commit()
        if payment is not None:
            self._collector.execute(account_id, payment.id, now=now)
        else:  # a repeated session: finish a charge an earlier call left open
            for unfinished in self._open_payments(account_id, invoice_id):
                self._collector.reconcile(account_id, unfinished.id, now=now)
        return attrs.evolve(self._outcome(account_id, invoice_id), reason=reason)

    def pay(
        self,
        account_id: str,
        invoice_id: str,
        *,
        payment_method_id: str,
        now: datetime,
    ) -> PaymentOutcome:
        """The customer pays one open invoice with a saved card (on-session).

        An invoice that is not open, or whose amount the gateway cannot charge
        (:class:`~recurbill.errors.ChargeAmountError`: below its minimum or
        above its maximum for one payment), is refused before anything else.
        Earlier payments of the invoice whose outcome is open are then asked of
        the gateway. A second submit while one is unfinished returns that
        payment's outcome instead of charging again; so does paying with the
        card of a payment of this invoice alone that waits for authentication
        (complete it with its ``client_secret``). Any other payment of it
        waiting for authentication (another card, or a mass payment) is
        canceled at the gateway first (unless it finished meanwhile), then
        this one pays; not while another payment of it has no outcome (that
        one is returned), nor if the invoice turns out paid meanwhile. A
        payment whose outcome the gateway could not tell is never sent again
        here: it is returned as it stands (``failed_unknown``, say) until a
        look-up answers.
        """
        aware(now, "now")
        with self.storage.transaction() as tx:
            invoice, _ = self._payable(tx, account_id, invoice_id, payment_method_id)

        def same_attempt(payment: Payment) -> bool:
            return (
                payment.settlement_id is None
                and payment.invoice_ids == (invoice_id,)
                and payment.payment_method_id == payment_method_id
            )

        def refuse() -> None:
            with self.storage.transaction() as tx:
                self._payable(tx, account_id, invoice_id, payment_method_id)

        self._collector.make_way(
            account_id,
            invoice.customer_id,
            [invoice_id],
            keep=same_attempt,
            check=refuse,
            now=now,
        )
        with self.storage.transaction() as tx:
            invoice, method = self._payable(
                tx, account_id, invoice_id, payment_method_id, lock=True
            )
            # after make_way, what is still in flight is this attempt, or a
            # payment without an outcome: returned, never charged beside
            busy = paying(tx, account_id, invoice.customer_id).get(invoice_id)
            if busy is not None:
                payment = busy
            else:
                earlier = [
                    p
                    for p in tx.list_payments(
                        account_id, customer_id=invoice.customer_id
                    )
                    if invoice_id in p.invoice_ids
                ]
                account = tx.get_account(account_id)
                customer = tx.get_customer(account_id, invoice.customer_id)
                payment = self._collector.new_payment(
                    account=account,
                    customer=customer,
                    method=method,
                    invoices=[invoice],
                    amount=invoice.outstanding,
                    now=now,
                    off_session=False,
                    key_parts=(invoice.id, "pay", str(len(earlier) + 1)),
                )
                tx.add_payment(payment)
                tx.commit()
        if busy is None:
            # (one still without an outcome is not sent again: the look-up
            # above got no answer, and sending it again could charge twice)
            self._collector.execute(account_id, payment.id, now=now)
        return self._outcome(account_id, invoice_id, payment_id=payment.id)

    def _payable(
        self,
        tx: Transaction,
        account_id: str,
        invoice_id: str,
        method_id: str,
        *,
        lock: bool = False,
    ) -> tuple[Invoice, PaymentMethod]:
        """The invoice and the customer's card, if the card can pay the invoice."""
        invoice = tx.get_invoice(account_id, invoice_id, for_update=lock)
        if invoice.status is not InvoiceStatus.OPEN or invoice.outstanding.amount <= 0:
            raise StateError(
                problem=(
                    f"invoice {invoice.display_number} is {invoice.status.value}"
                    f" and owes {invoice.outstanding}"
                ),
                allowed="only an open invoice with something to pay can be paid",
            )
        method = tx.get_payment_method(account_id, method_id)
        if method.customer_id != invoice.customer_id:
            raise NotFoundError(
                kind="payment method", key=method_id, account=account_id
            )
        check_chargeable(
            self.gateway,
            invoice.outstanding,
            what=f"invoice {invoice.display_number}",
            advice=ONE_INVOICE_ADVICE,
        )
        return invoice, method

    def _open_payments(self, account_id: str, invoice_id: str) -> list[Payment]:
        with self.storage.transaction(read_only=True) as tx:
            customer_id = tx.get_invoice(account_id, invoice_id).customer_id
        return self._collector.in_flight(account_id, customer_id, [invoice_id])

    def confirm_payment(
        self, account_id: str, payment_id: str, *, now: datetime
    ) -> PaymentOutcome:
        """Ask the gateway how a payment ended (after 3-D Secure, a timeout, …)."""
        payment = self._collector.reconcile(
            account_id, payment_id, now=aware(now, "now")
        )
        return self._outcome(account_id, payment.invoice_ids[0], payment_id=payment.id)

    def _outcome(
        self, account_id: str, invoice_id: str, *, payment_id: str | None = None
    ) -> PaymentOutcome:
        with self.storage.transaction(read_only=True) as tx:
            invoice = tx.get_invoice(account_id, invoice_id)
            payments = [
                p
                for p in tx.list_payments(account_id, customer_id=invoice.customer_id)
                if invoice_id in p.invoice_ids
                and (payment_id is None or p.id == payment_id)
            ]
            payment = max(payments, key=lambda p: p.created_at) if payments else None
            receipt = None
            if payment is not None and payment.status is PaymentStatus.SUCCEEDED:
                receipt = next(
                    r
                    for r in tx.list_receipts(account_id, invoice.customer_id)
                    if r.payment_id == payment.id
                )
        return PaymentOutcome(invoices=(invoice,), payment=payment, receipt=receipt)

    # mass payment and bank transfers ---------------------------------------
    def plan_mass_payment(
        self, account_id: str, customer_id: str, invoice_ids: Sequence[str]
    ) -> SettlementPlan:
        """What paying these invoices together costs now (before "confirm").

        Raises :class:`~recurbill.errors.InvalidSelectionError` for an empty
        selection, a duplicate, an invoice not found (or of someone else), one
        that is not open, mixed currencies, or one inside a payment without an
        outcome yet; its subclass :class:`~recurbill.errors.SelectionAmountError`
        for a total the gateway cannot charge at once (above its maximum or
        below its minimum). An invoice in a payment waiting for the customer's
        authentication is payable: :meth:`mass_pay` cancels that payment first.
        :meth:`mass_pay` refuses what this refuses.
        """
        return self._mass.plan(account_id, customer_id, invoice_ids)

    def mass_pay(
        self,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
        *,
        payment_method_id: str,
        now: datetime,
    ) -> MassPaymentConfirmation:
        """Settle several open invoices with one charge and one receipt.

        The selection is re-checked against the invoices as they are now, as
        :meth:`plan_mass_payment` checks it. Submitting the same selection
        again (a double click, a second tab) returns the first settlement's
        confirmation and never charges twice. A payment of these invoices
        waiting for authentication is replaced: canceled at the gateway first,
        unless it is the same selection on the same card (then it is returned,
        to be completed). It is canceled only once the selection is accepted:
        a refused payment cancels nothing.
        An invoice paid another way before the charge turns its share into
        customer credit. To pay with a new card, :meth:`save_card` it first
        (``make_default=False`` keeps the current default) and pass its id.
        """
        return self._mass.pay(
            account_id,
            customer_id,
            invoice_ids,
            payment_method_id=payment_method_id,
            now=aware(now, "now"),
        )

    def mass_payment(
        self, account_id: str, settlement_id: str
    ) -> MassPaymentConfirmation:
        """The confirmation of an earlier mass payment, as it stands now."""
        return self._mass.confirmation(account_id, settlement_id)

    def confirm_mass_payment(
        self, account_id: str, settlement_id: str, *, now: datetime
    ) -> MassPaymentConfirmation:
        """Ask the gateway how a mass payment ended (after authentication)."""
        confirmation = self._mass.confirmation(account_id, settlement_id)
        if confirmation.payment is not None:
            self._collector.reconcile(
                account_id, confirmation.payment.id, now=aware(now, "now")
            )
        return self._mass.confirmation(account_id, settlement_id)

    def record_bank_transfer(
        self,
        account_id: str,
        customer_id: str,
        *,
        amount: Money,
        now: datetime,
        reference: str,
    ) -> AllocationResult:
        """Apply money received another way across the customer's open invoices.

        Oldest due date first, each fully or partly; what is left over becomes
        customer credit. ``reference`` is the bank's transaction id: recording
        the same reference again raises :class:`StateError` and applies nothing,
        so an importer that reads a statement twice never applies a transfer
        twice (catch the error to skip transfers already recorded).
        """
        return self._credits.record_transfer(
            account_id, customer_id, amount=amount, now=now, reference=reference
        )

    def apply_credit(
        self, account_id: str, customer_id: str, *, now: datetime
    ) -> AllocationResult:
        """Use the customer's credit balance on their open invoices.

        Oldest due date first, as a bank transfer is; invoices with a payment
        in progress are left out. ``result.total`` is the balance before and
        ``result.credit`` the balance after (what the overview shows): what is
        left to use, or, below zero, what the customer owes (nothing is used).
        """
        return self._credits.apply(account_id, customer_id, now=now)

    # overview, void, credit, refund ---------------------------------------
    def overview(
        self, account_id: str, customer_id: str, *, on: date
    ) -> CustomerOverview:
        """Paid, open and overdue invoices with totals, receipts, cards and credit."""
        return customer_overview(
            self.storage, account_id, customer_id, on=day(on, "on")
        )

    def void_invoice(self, account_id: str, invoice_id: str) -> Invoice:
        """Void an open invoice that nothing has been paid or credited on.

        Refused while a payment of it has no outcome yet; see
        :meth:`Corrections.void_invoice`.
        """
        return self._corrections.void_invoice(account_id, invoice_id)

    def mark_uncollectible(self, account_id: str, invoice_id: str) -> Invoice:
        """Write off an open invoice as a bad debt; see
        :meth:`Corrections.mark_uncollectible`."""
        return self._corrections.mark_uncollectible(account_id, invoice_id)

    def credit_invoice(
        self,
        account_id: str,
        invoice_id: str,
        *,
        amount: Money,
        reason: str,
        now: datetime,
    ) -> CreditNoteRecord:
        """Issue a credit note lowering what is owed (on a paid invoice: credit)."""
        return self._corrections.credit_invoice(
            account_id, invoice_id, amount=amount, reason=reason, now=now
        )

    def refund(
        self,
        account_id: str,
        payment_id: str,
        *,
        now: datetime,
        amount: Money | None = None,
        reopen: bool = True,
    ) -> Refund:
        """Refund all or part of a succeeded payment.

        The rules (what is reopened or credited, in which order, and how a
        lost answer is finished) are :meth:`Corrections.refund`'s.
        """
        return self._corrections.refund(
            account_id, payment_id, now=now, amount=amount, reopen=reopen
        )

    # gateway events --------------------------------------------------------
    def handle_webhook(
        self, payload: bytes, *, signature: str, now: datetime
    ) -> Payment | Refund | None:
        """Verify a gateway webhook and finish the payment or refund it is about.

        Order does not matter, because the state is read back from the
        gateway, not taken from the event, and applying it is idempotent. A
        refund event (``refund.updated``, ``refund.failed``,
        ``charge.refund.updated``) records how the refund stands: a pending
        one that ended, or one answered ``succeeded`` that failed later, whose
        amount then becomes the customer's credit, once, whichever of its
        events, their redeliveries and the daily run records it first
        (:meth:`Corrections.follow`). A duplicate delivery (an event id seen
        before) returns None, and so does an event about nothing this
        recurbill made: one without recurbill's metadata, or naming an
        account, payment or refund this storage does not hold (another
        deployment's, sharing the gateway account), so answer it with a 2xx
        and the gateway stops sending it. The event id is remembered only
        after the work is done: if the gateway cannot be asked, the error is
        raised and the gateway's redelivery is processed again.
        """
        aware(now, "now")
        event = self.gateway.parse_webhook(
            payload, signature=signature, now=int(now.timestamp())
        )
        metadata = event.data.get("metadata")
        about: Payment | Refund | None = None
        if isinstance(metadata, dict):
            account_id = metadata.get(ACCOUNT_METADATA_KEY)
            payment_id = metadata.get(PAYMENT_METADATA_KEY)
            refund_id = metadata.get(REFUND_METADATA_KEY)
            # done before the event is remembered: a failure here leaves it
            # unrecorded, so the gateway's redelivery is processed again
            if (
                isinstance(account_id, str)
                and isinstance(payment_id, str)
                and self._ours(account_id, payment_id, refund_id, event.refund)
            ):
                if event.refund is None:
                    done = self._collector.finish(account_id, payment_id, now=now)
                    if not done.answered:
                        raise GatewayUnavailableError(
                            problem=f"the gateway could not be asked about payment "
                            f"{payment_id} (event {event.event_id})",
                            allowed="answer with a 5xx status: the gateway "
                            "delivers the event again",
                        )
                    about = done.payment
                elif isinstance(refund_id, str):
                    about = self._corrections.follow(
                        account_id, payment_id, refund_id, now=now
                    )
        with self.storage.transaction() as tx:
            fresh = tx.record_webhook_event(event.event_id)
            tx.commit()
        return about if fresh else None

    def _ours(
        self, account_id: str, payment_id: str, refund_id: object, refund: object
    ) -> bool:
        """Whether this storage holds what an event names (its account, its
        payment, and for a refund event its refund).

        Another recurbill on the same gateway account (a staging copy) gets
        the events of its own payments too. They cannot be this one's yet to
        come: a payment and a refund are stored before the gateway is called,
        so their events never arrive before them.
        """
        with self.storage.transaction(read_only=True) as tx:
            try:
                tx.get_account(account_id)
                tx.get_payment(account_id, payment_id)
            except NotFoundError:
                return False
            return refund is None or any(
                r.id == refund_id for r in tx.list_refunds(account_id, payment_id)
            )

    def _customer(self, account_id: str, customer_id: str) -> Customer:
        with self.storage.transaction(read_only=True) as tx:
            return tx.get_customer(account_id, customer_id)


def _unfinished(template: RecurringTemplate) -> RecurringTemplate:
    """*template*, unless a run finished it: StateError, it can no longer change."""
    if template.status is TemplateStatus.FINISHED:
        raise StateError(
            problem=f"template {template.id} has finished "
            "(a daily run reached its end)",
            allowed="create a new template to bill again",
        )
    return template


def _with_next_due(template: RecurringTemplate, account: Account) -> RecurringTemplate:
    upcoming = next_due(template, account)
    return attrs.evolve(
        template,
        next_due_at=upcoming,
        status=TemplateStatus.ACTIVE if upcoming else TemplateStatus.FINISHED,
    )


def _refuse_never_due(template: RecurringTemplate, account: Account) -> None:
    """Refuse a new or re-dated template whose first date is never due.

    End dates and counts cannot cause it (an end before the start is refused
    and a count is at least 1): only a start whose run is after the end of
    recurbill's calendar can, and the daily run would only finish it, with
    no invoice and no report.
    """
    if template.next_due_at is not None:
        return
    latest = date(LAST_YEAR, 12, 31)
    while due_instant(latest, account) is None:  # at most a day or two back
        latest -= timedelta(days=1)
    raise InvalidScheduleError(
        problem=f"a template starting {template.schedule.start} would never "
        f"produce an invoice: its first is due after the end of recurbill's "
        f"calendar ({LAST_YEAR}-12-31 in UTC)",
        allowed=f"start on {latest} or earlier (the latest start for account "
        f"{account.id!r}, whose run time is {account.run_time:%H:%M} in "
        f"{account.timezone})",
    )


def _stored_customer(
    tx: Transaction, account_id: str, customer_id: str
) -> Customer | None:
    try:
        return tx.get_customer(account_id, customer_id)  # one row, not the list
    except NotFoundError:
        return None


def _with_token(methods: Sequence[PaymentMethod], token: str) -> PaymentMethod | None:
    """The card of *methods* with gateway token *token* (the first, if several)."""
    return next((m for m in methods if m.token == token), None)


_DETAILS = ("name", "email", "locale", "collection_method")
"""The details ``add_customer`` sets, by the names of its arguments."""


def _added_with(customer: Customer, locale: str | None) -> str:
    """The digest of the ``add_customer`` call that asks for *customer*.

    Its ids, details and the locale as given (left out: the account's, even
    once the account's changes), as hex SHA-256: it tells a repeat of the
    call after the details changed without keeping them.
    """
    arguments = [
        customer.account_id,
        customer.id,
        customer.name,
        customer.email,
        locale or None,
        customer.collection_method.value,
    ]
    return hashlib.sha256(json.dumps(arguments).encode()).hexdigest()


def _refuse_another(stored: Customer, asked: Customer) -> None:
    """Refuse *asked* under the id of *stored* unless it repeats the call that
    added *stored* or asks for *stored* as it is now (ConflictError)."""
    differing = [f for f in _DETAILS if getattr(asked, f) != getattr(stored, f)]
    if not differing or asked.added_with == stored.added_with:
        return
    *rest, last = differing
    listed = f"{', '.join(rest)} and {last}" if rest else last
    raise ConflictError(
        problem=f"customer {stored.id!r} exists already with other details: the "
        f"{listed} given {'are' if rest else 'is'} not its own, "
        "nor was it added with these arguments",
        allowed="to add another customer, give a new customer_id (or none); to "
        "finish or repeat the call that added it, give the arguments it was "
        "added with or its details as they are now; to change it, call "
        "change_customer or set_collection_method",
    )


_MIRROR_ROUNDS = 5
"""How many times :meth:`Billing.change_customer` sends the gateway a customer
that other calls keep changing, before it gives up (ConflictError)."""

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
        _check_locale(locale)
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


def _check_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidRecordError(
            problem=f"time zone {zone!r} is unknown",
            allowed="give an IANA zone such as 'Europe/Oslo' or 'Atlantic/Reykjavik'",
        ) from None


def _check_locale(locale: str) -> None:
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidRecordError(
            problem=f"locale {locale!r} is unknown",
            allowed="give a locale such as 'nb_NO', 'sv_SE', 'is_IS' or 'en_GB'",
        ) from None
