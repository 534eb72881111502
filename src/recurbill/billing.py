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

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP

import attrs

from recurbill.accounts import Accounts
from recurbill.arguments import aware, day, flag
from recurbill.cards import Cards
from recurbill.collection import Collector, RetryPolicy
from recurbill.corrections import Corrections
from recurbill.credit import Credits
from recurbill.customers import Customers
from recurbill.daily import DailyRun
from recurbill.errors import GatewayAuthenticationError, InvalidInputError
from recurbill.events import GatewayEvents
from recurbill.ids import IdFactory, random_id
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.issuing import run_accounts
from recurbill.mass_payment import MassPayment, MassPaymentConfirmation
from recurbill.money import Currency, Money
from recurbill.payee import PayeeAccount
from recurbill.payments.protocol import CardSetup, PaymentGateway
from recurbill.records import (
    Account,
    CollectionMethod,
    CreditNoteRecord,
    Customer,
    Invoice,
    Payment,
    PaymentMethod,
    RecurringTemplate,
    Refund,
    RunReport,
)
from recurbill.references import ReferenceScheme
from recurbill.schedule import DEFAULT_RUN_TIME, Period
from recurbill.sessions import Sessions
from recurbill.set_aside import SetAside
from recurbill.settlement import AllocationResult, SettlementPlan
from recurbill.storage.protocol import Storage
from recurbill.templates import Templates
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

    These are fixed once it is made (the parts it delegates to hold them):
    for another storage or gateway, make another ``Billing``.

    Every method checks its arguments before it writes anything: a value of
    the wrong kind raises an :class:`~recurbill.errors.InvalidInputError`
    (or a subclass) naming the argument and what is allowed. A flag
    (``make_default``, ``reopen``, ``send_summaries``,
    ``summary_when_empty``) must be ``True`` or ``False``: ``1``, ``None``
    or ``"no"`` is refused, not taken as true or false.
    """

    storage: Storage = attrs.field(on_setattr=attrs.setters.frozen)
    gateway: PaymentGateway = attrs.field(on_setattr=attrs.setters.frozen)
    ids: IdFactory = attrs.field(default=random_id, on_setattr=attrs.setters.frozen)
    retry_policy: RetryPolicy = attrs.field(
        factory=RetryPolicy, on_setattr=attrs.setters.frozen
    )
    chunk_size: int = attrs.field(
        default=1000, validator=_chunk_size, on_setattr=attrs.setters.frozen
    )
    _collector: Collector = attrs.field(init=False)
    _daily: DailyRun = attrs.field(init=False)
    _mass: MassPayment = attrs.field(init=False)
    _corrections: Corrections = attrs.field(init=False)
    _credits: Credits = attrs.field(init=False)
    _accounts: Accounts = attrs.field(init=False)
    _customers: Customers = attrs.field(init=False)
    _cards: Cards = attrs.field(init=False)
    _templates: Templates = attrs.field(init=False)
    _sessions: Sessions = attrs.field(init=False)
    _events: GatewayEvents = attrs.field(init=False)

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
        self._credits = Credits(self.storage, self.ids, self._collector)
        self._accounts = Accounts(self.storage, self.ids)
        self._customers = Customers(self.storage, self.gateway, self.ids)
        self._cards = Cards(
            self.storage, self.gateway, self._collector, self._customers, self.ids
        )
        self._templates = Templates(self.storage, self.ids)
        self._sessions = Sessions(self.storage, self.gateway, self._collector, self.ids)
        self._events = GatewayEvents(
            self.storage, self.gateway, self._collector, self._corrections
        )

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
        payee_account: PayeeAccount | None = None,
        vat_number: str | None = None,
    ) -> Account:
        """Create the business that bills; validates its zone, locale and series.

        Its rounding mode, payment-reference scheme, payee account and VAT
        number: see :meth:`Accounts.create_account`.
        """
        return self._accounts.create_account(
            name=name,
            currency=currency,
            summary_email=summary_email,
            locale=locale,
            timezone=timezone,
            run_time=run_time,
            payment_terms_days=payment_terms_days,
            invoice_series=invoice_series,
            account_id=account_id,
            rounding=rounding,
            reference_scheme=reference_scheme,
            payee_account=payee_account,
            vat_number=vat_number,
        )

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

        What a failure leaves and how a repeat (the same ``customer_id``)
        finishes it: see :meth:`Customers.add_customer`.
        """
        return self._customers.add_customer(
            account_id,
            name=name,
            email=email,
            locale=locale,
            collection_method=collection_method,
            customer_id=customer_id,
        )

    def set_collection_method(
        self, account_id: str, customer_id: str, method: CollectionMethod | str
    ) -> Customer:
        """Charge this customer's card automatically, or send invoices to pay."""
        return self._customers.set_collection_method(account_id, customer_id, method)

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

        How the gateway customer follows, and what to do if it fails: see
        :meth:`Customers.change_customer`.
        """
        return self._customers.change_customer(
            account_id, customer_id, name=name, email=email, locale=locale
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
        payee_account: PayeeAccount | None = None,
        vat_number: str | None = None,
        clear: Iterable[str] = (),
    ) -> Account:
        """Change an account's name, payment terms, summary address, locale,
        payment-reference scheme, payee account or VAT number; None keeps one,
        and ``clear`` removes the payee account or the VAT number.

        What the change applies to, and which settings are fixed at creation:
        see :meth:`Accounts.change_account`.
        """
        return self._accounts.change_account(
            account_id,
            name=name,
            payment_terms_days=payment_terms_days,
            summary_email=summary_email,
            locale=locale,
            reference_scheme=reference_scheme,
            currency=currency,
            timezone=timezone,
            run_time=run_time,
            invoice_series=invoice_series,
            rounding=rounding,
            payee_account=payee_account,
            vat_number=vat_number,
            clear=clear,
        )

    # cards -------------------------------------------------------------
    def start_card_setup(self, account_id: str, customer_id: str) -> CardSetup:
        """Start saving a card; the browser completes it with the client secret.

        See :meth:`Cards.start_card_setup`.
        """
        return self._cards.start_card_setup(account_id, customer_id)

    def save_card(
        self,
        account_id: str,
        customer_id: str,
        *,
        token: str,
        make_default: bool = True,
    ) -> PaymentMethod:
        """Store a confirmed payment method (a gateway token) for the customer.

        Safe to repeat with the same token; what a failure leaves: see
        :meth:`Cards.save_card`.
        """
        return self._cards.save_card(
            account_id,
            customer_id,
            token=token,
            make_default=flag(make_default, "make_default"),
        )

    def set_default_card(
        self, account_id: str, customer_id: str, method_id: str
    ) -> Customer:
        """Make a saved card the one automatic charges use."""
        return self._cards.set_default_card(account_id, customer_id, method_id)

    def remove_card(
        self, account_id: str, customer_id: str, method_id: str, *, now: datetime
    ) -> None:
        """Forget a saved card (and detach it at the gateway).

        Refused while a payment with the card has no outcome yet; see
        :meth:`Cards.remove_card`.
        """
        self._cards.remove_card(account_id, customer_id, method_id, now=now)

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

        See :meth:`Cards.replace_card`.
        """
        return self._cards.replace_card(
            account_id,
            customer_id,
            old_method_id=old_method_id,
            token=token,
            now=now,
        )

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

        A repeat with the same ``template_id`` (unique across the database)
        returns the stored template: see :meth:`Templates.create_template`.
        """
        return self._templates.create_template(
            account_id,
            customer_id,
            lines=lines,
            start=start,
            period=period,
            now=now,
            every=every,
            end=end,
            max_count=max_count,
            month_end=month_end,
            memo=memo,
            template_id=template_id,
            allowances=allowances,
            charges=charges,
        )

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
        reach_due: bool = False,
    ) -> RecurringTemplate:
        """Change a template's lines, document allowances and charges or memo
        (later invoices only), or re-date it.

        Refused with :class:`~recurbill.errors.StateError` while an occurrence
        due by ``now`` waits to be issued: run the daily run first, or give
        ``reach_due=True`` to change those too (to correct a template the run
        could not issue). See :meth:`Templates.change_template`.
        """
        return self._templates.change_template(
            account_id,
            template_id,
            now=now,
            lines=lines,
            memo=memo,
            start=start,
            allowances=allowances,
            charges=charges,
            reach_due=reach_due,
        )

    def pause_template(
        self,
        account_id: str,
        template_id: str,
        *,
        on: date,
        resume: date | None = None,
    ) -> RecurringTemplate:
        """Pause from day ``on`` (until ``resume``, if planned); no back-filling.

        See :meth:`Templates.pause_template`.
        """
        return self._templates.pause_template(
            account_id, template_id, on=on, resume=resume
        )

    def resume_template(
        self, account_id: str, template_id: str, *, on: date
    ) -> RecurringTemplate:
        """Bill again from day ``on``; the original rhythm continues.

        See :meth:`Templates.resume_template`.
        """
        return self._templates.resume_template(account_id, template_id, on=on)

    def cancel_pause(
        self, account_id: str, template_id: str, *, start: date
    ) -> RecurringTemplate:
        """Cancel the pause that starts on day ``start``, as if it was never asked.

        See :meth:`Templates.cancel_pause`.
        """
        return self._templates.cancel_pause(account_id, template_id, start=start)

    def end_template(
        self, account_id: str, template_id: str, *, on: date
    ) -> RecurringTemplate:
        """Set the last day (inclusive) on which the template may produce invoices.

        See :meth:`Templates.end_template`.
        """
        return self._templates.end_template(account_id, template_id, on=on)

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

        The summary lists each line once: the lines are stored with the work
        they report and taken by the summary that lists them, so a run that
        crashed is summarised by the next (the returned reports tell only
        what this call did). Without ``send_summaries`` the lines this call
        stored are dropped; those of an earlier run that crashed before its
        summary wait for the next one.

        ``account_ids`` limits the run to these accounts, one report each in
        that order; a single string or an id given twice raises
        :class:`~recurbill.errors.InvalidInputError`.

        A template that cannot be issued, or whose stored row cannot be read
        (:class:`~recurbill.errors.UnreadableRecordError`), is left as it is
        and reported in ``RunReport.failed``; the others are issued. A
        payment in flight, a declined payment due for a retry, or that
        retry's invoice whose row cannot be read is left as it is and
        reported in ``RunReport.unreadable``; the rest is done. So is a
        payment in flight whose finishing needs a row that cannot be read
        (its invoice's, its customer's: that row is reported), and a refund
        to finish or follow whose row, payment's, or payment's earlier
        refund's cannot be read (the gateway is asked by its key again next
        time: nothing is refunded twice). An account
        whose row cannot be read is left out: the others run, their
        summaries are queued, then its ``UnreadableRecordError`` is raised
        with the reports as the error's ``reports`` (a gateway stop, below,
        is raised instead when there is one).

        A refused API key or a gateway outage stops the charging, not the
        run: it issues every due invoice, queues the summaries, then raises
        the :class:`~recurbill.errors.GatewayError` with the reports it would
        have returned as the error's ``reports``.
        """
        aware(as_of, "as_of")
        flag(send_summaries, "send_summaries")
        flag(summary_when_empty, "summary_when_empty")
        asked = run_accounts(account_ids)
        with self.storage.transaction() as tx:
            accounts = tx.list_account_ids() if asked is None else asked
        refused: GatewayAuthenticationError | None = None
        set_aside = SetAside()  # rows the refunds need and cannot read
        for step in (
            self._corrections.finish_unanswered,
            self._corrections.follow_pending,
        ):
            try:
                step(accounts, now=as_of, set_aside=set_aside)
            except GatewayAuthenticationError as error:
                refused = error  # those refunds wait; the run goes on, then says so
        reports = self._daily.run(
            as_of,
            account_ids=asked,
            send_summaries=send_summaries,
            summary_when_empty=summary_when_empty,
            set_aside=set_aside,
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

        See :meth:`Sessions.record_session`.
        """
        return self._sessions.record_session(
            account_id,
            customer_id,
            lines=lines,
            now=now,
            memo=memo,
            session_id=session_id,
            allowances=allowances,
            charges=charges,
        )

    def pay(
        self,
        account_id: str,
        invoice_id: str,
        *,
        payment_method_id: str,
        now: datetime,
    ) -> PaymentOutcome:
        """The customer pays one open invoice with a saved card (on-session).

        See :meth:`Sessions.pay`.
        """
        return self._sessions.pay(
            account_id, invoice_id, payment_method_id=payment_method_id, now=now
        )

    def confirm_payment(
        self, account_id: str, payment_id: str, *, now: datetime
    ) -> PaymentOutcome:
        """Ask the gateway how a payment ended (after 3-D Secure, a timeout, …).

        A charge found waiting for the customer's authentication though its
        invoices are no longer all open (paid by a bank transfer while its
        answer was unknown) is canceled at the gateway, with no "confirm
        your payment" e-mail, and the payment is returned ``canceled``.
        Should the cancel not get through now, the payment is returned
        ``requires_action`` without a ``client_secret``: nothing can complete
        it, and the next look-up (the daily run's at the latest) cancels it.
        """
        return self._sessions.confirm_payment(account_id, payment_id, now=now)

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
        the same reference again, for this customer or another of the account,
        raises :class:`StateError` naming that customer and applies nothing,
        so an importer that reads a statement twice never applies a transfer
        twice (catch the error to skip transfers already recorded). A card
        payment of an invoice it settles that waits for the customer's
        authentication is canceled first (its notice withdrawn), so it can
        never be completed; a gateway that does not answer that cancel raises
        :class:`GatewayUnavailableError` and nothing is recorded: try again.
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

    def void_invoice(
        self, account_id: str, invoice_id: str, *, now: datetime | None = None
    ) -> Invoice:
        """Void an open invoice that nothing has been paid or credited on.

        Refused while a payment of it has no outcome yet; with *now*, a
        payment of it waiting for the customer's authentication is canceled
        first (without, it refuses the void); see
        :meth:`Corrections.void_invoice`.
        """
        return self._corrections.void_invoice(account_id, invoice_id, now=now)

    def mark_uncollectible(
        self, account_id: str, invoice_id: str, *, now: datetime | None = None
    ) -> Invoice:
        """Write off an open invoice as a bad debt, a payment of it waiting
        for authentication canceled first (given *now*); see
        :meth:`Corrections.mark_uncollectible`."""
        return self._corrections.mark_uncollectible(account_id, invoice_id, now=now)

    def credit_invoice(
        self,
        account_id: str,
        invoice_id: str,
        *,
        amount: Money,
        reason: str,
        now: datetime,
    ) -> CreditNoteRecord:
        """Issue a credit note lowering what is owed (on a paid invoice: credit).

        One that settles the invoice first cancels a payment of it waiting
        for the customer's authentication; see
        :meth:`Corrections.credit_invoice`.
        """
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
        refund_id: str | None = None,
    ) -> Refund:
        """Refund all or part of a succeeded payment.

        The rules (what is reopened or credited, in which order, and how a
        lost answer is finished) are :meth:`Corrections.refund`'s.

        Give a ``refund_id`` of your own (recommended), one per refund asked
        for (the id of the merchant's refund request, say): the call is then
        safe to repeat.
        A call with a ``refund_id`` this account has used returns that
        refund, as stored now, and refunds nothing more; if its gateway
        answer was lost, it is finished first with its own idempotency key.
        The same refund is the same payment, ``amount`` (or none: the first
        call's) and ``reopen``; ``now`` may differ. Other content raises
        :class:`~recurbill.errors.ConflictError` naming what differs, and
        nothing is written. Empty or blank text raises
        :class:`~recurbill.errors.InvalidInputError`. Two calls with one
        ``refund_id`` at the same moment make one refund. Without it, a
        repeated call refunds again once the first one has its answer.
        """
        return self._corrections.refund(
            account_id,
            payment_id,
            now=now,
            amount=amount,
            reopen=flag(reopen, "reopen"),
            refund_id=refund_id,
        )

    # gateway events --------------------------------------------------------
    def handle_webhook(
        self, payload: bytes, *, signature: str, now: datetime
    ) -> Payment | Refund | None:
        """Verify a gateway webhook and finish the payment or refund it is about.

        See :meth:`GatewayEvents.handle_webhook`.
        """
        return self._events.handle_webhook(payload, signature=signature, now=now)
