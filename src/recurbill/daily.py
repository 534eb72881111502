"""The daily run: issue every due occurrence exactly once, then collect.

Templates are streamed from storage in chunks, in order of due instant; each
chunk is issued in one transaction that locks its templates, allocates gapless
numbers (in order of due instant, then template id) and stores the
invoices, the occurrence records (unique per template and index) and, for
customers charged automatically, the pending payments. Only after that commit
does the gateway hear of the payments (see :mod:`recurbill.collection`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import attrs

from recurbill.arguments import aware
from recurbill.chargeable import CARD_LIMITS, no_automatic_charge
from recurbill.collection import Collector, local_date, outbox_message, run_day
from recurbill.errors import (
    ConflictError,
    GatewayAuthenticationError,
    GatewayError,
    InvalidInputError,
    NotFoundError,
    RecurbillError,
    UnreadableRecordError,
)
from recurbill.ids import IdFactory, automatic_charge_id, derived_id, random_id
from recurbill.issuing import build_invoice, due_from, plan_collection, run_accounts
from recurbill.notify.render import render_invoice, render_summary
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
    OccurrenceOutcome,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    RecurringTemplate,
    RunReport,
    SkippedLine,
    SummaryLines,
    TemplateStatus,
    UnchargedLine,
    UnreadableLine,
    due_instant,
    past_calendar,
)
from recurbill.schedule import OccurrenceStatus
from recurbill.set_aside import SetAside, Unanswered
from recurbill.storage.protocol import Storage, Transaction, skipping
from recurbill.summaries import Lines, PaymentRef, decoded, held, summary_report

__all__ = ["DailyRun"]

_CONFLICT_RETRIES = 5


def _describe(template: RecurringTemplate) -> str:
    return template.memo or template.lines[0].description


def _cursor(template: RecurringTemplate) -> tuple[datetime, str]:
    """Where a walk of the due templates continues after *template*."""
    assert template.next_due_at is not None  # it is due
    return template.next_due_at, template.id


@attrs.define
class _Issued:
    """What issuing one chunk produced, merged into the reports after commit."""

    issued: dict[str, list[IssuedLine]] = attrs.Factory(dict)
    skipped: dict[str, list[SkippedLine]] = attrs.Factory(dict)
    ended: dict[str, list[EndedLine]] = attrs.Factory(dict)
    failed: dict[str, list[FailedLine]] = attrs.Factory(dict)
    uncharged: dict[str, list[UnchargedLine]] = attrs.Factory(dict)
    payments: list[tuple[Payment, Customer, PaymentMethod]] = attrs.Factory(list)
    # written once per chunk, in its transaction
    invoices: list[Invoice] = attrs.Factory(list)
    occurrences: list[OccurrenceRecord] = attrs.Factory(list)
    notes: list[Notification] = attrs.Factory(list)
    templates: list[RecurringTemplate] = attrs.Factory(list)
    # what the summary prints for each new payment: invoice number, customer
    labels: dict[str, tuple[str, str]] = attrs.Factory(dict)
    # the summary lines stored, by record id (the summary need not decode them)
    stored: dict[str, Lines] = attrs.Factory(dict)

    @property
    def handled(self) -> bool:
        """Whether an occurrence was issued or skipped, or a template ended."""
        return bool(self.issued or self.skipped or self.ended)

    def add_lines(self, other: _Issued) -> None:
        """Add *other*'s report lines; a template fails once per run, not per pass."""
        for kind in ("issued", "skipped", "ended", "uncharged"):
            mine: dict[str, list[object]] = getattr(self, kind)
            for account_id, lines in getattr(other, kind).items():
                mine.setdefault(account_id, []).extend(lines)
        for account_id, failed in other.failed.items():
            known = self.failed.setdefault(account_id, [])
            seen = {line.template_id for line in known}
            known.extend(line for line in failed if line.template_id not in seen)
        self.stored.update(other.stored)


@attrs.define
class _Charges:
    """The run's charge lines by account, and the payments they show as the
    run left them (the summary need not read those again)."""

    lines: dict[str, list[ChargeLine]] = attrs.Factory(dict)
    payments: dict[str, Payment] = attrs.Factory(dict)


@attrs.frozen(kw_only=True)
class _Plan:
    """What one step does with a due template (the template is locked).

    It handles the occurrences from the template's ``next_index`` up to
    ``stop``; those from ``stop`` up to ``due`` are due as well but come after
    the chunk in date order, so a later chunk of the walk handles them.
    """

    template: RecurringTemplate
    account: Account
    customer: Customer
    stop: int
    due: int


def _in_date_order(
    plans: list[_Plan], bound: tuple[datetime, str] | None
) -> tuple[list[_Plan], list[tuple[_Plan, int]]]:
    """The chunk's plans, cut at *bound*, and their occurrences in number order.

    Occurrences are numbered by their due instant, then template id: the order
    of the walk, so a catch-up numbers them as a run on each missed day would
    have. An occurrence due after *bound* (the chunk's last ``(next_due_at,
    id)``; None for a chunk shorter than the limit, the walk's last) is left
    to the chunk that reaches it.
    """
    if all(len(range(p.template.next_index, p.due)) <= 1 for p in plans):
        # at most one occurrence each (the everyday case): the walk's order
        return plans, [
            (p, p.template.next_index) for p in plans if p.stop > p.template.next_index
        ]
    cut: list[_Plan] = []
    keyed: list[tuple[tuple[datetime, str], int, int]] = []
    for plan in plans:
        template = plan.template
        stop = template.next_index
        while stop < plan.due:
            on = template.schedule.occurrence(stop)
            instant = due_instant(on, plan.account)
            assert instant is not None  # _plan stops at the calendar's end
            key = (instant, template.id)
            if bound is not None and key > bound:
                break
            keyed.append((key, len(cut), stop))
            stop += 1
        cut.append(attrs.evolve(plan, stop=stop))
    keyed.sort(key=lambda item: item[0])
    return cut, [(cut[i], n) for _, i, n in keyed]


@attrs.define
class _Reads:
    """Accounts, customers and cards read once per chunk (one transaction)."""

    tx: Transaction
    accounts: dict[str, Account] = attrs.Factory(dict)
    customers: dict[tuple[str, str], Customer] = attrs.Factory(dict)
    methods: dict[tuple[str, str], PaymentMethod] = attrs.Factory(dict)

    def load(self, templates: Sequence[RecurringTemplate]) -> None:
        """Read the chunk's customers and their default cards, a call per account."""
        wanted: dict[str, set[str]] = {}
        for template in templates:
            wanted.setdefault(template.account_id, set()).add(template.customer_id)
        for account_id, customer_ids in wanted.items():
            customers = self.tx.get_customers(account_id, sorted(customer_ids))
            self.customers.update(((account_id, c.id), c) for c in customers)
            cards = sorted(
                {
                    c.default_payment_method_id
                    for c in customers
                    if c.default_payment_method_id is not None
                    and c.collection_method is CollectionMethod.CHARGE_AUTOMATICALLY
                }
            )
            methods = self.tx.get_payment_methods(account_id, cards)
            self.methods.update(((account_id, m.id), m) for m in methods)

    def account(self, account_id: str) -> Account:
        if account_id not in self.accounts:
            self.accounts[account_id] = self.tx.get_account(account_id)
        return self.accounts[account_id]

    def customer(self, account_id: str, customer_id: str) -> Customer:
        key = (account_id, customer_id)
        if key not in self.customers:
            self.customers[key] = self.tx.get_customer(account_id, customer_id)
        return self.customers[key]

    def method(self, account_id: str, method_id: str) -> PaymentMethod:
        key = (account_id, method_id)
        if key not in self.methods:
            self.methods[key] = self.tx.get_payment_method(account_id, method_id)
        return self.methods[key]


@attrs.define
class DailyRun:
    """Issues due occurrences and collects; see :meth:`recurbill.Billing.run`."""

    storage: Storage
    collector: Collector
    ids: IdFactory
    chunk_size: int = 1000

    def run(
        self,
        as_of: datetime,
        *,
        account_ids: Sequence[str] | None = None,
        send_summaries: bool = True,
        summary_when_empty: bool = False,
        set_aside: SetAside | None = None,
    ) -> list[RunReport]:
        """Issue every due occurrence by *as_of*, charge, retry, and report.

        A refused API key or a gateway outage stops the charging, not the run:
        every due invoice is still issued (its payment waits, pending, for the
        next run, and is reported ``pending``), the summaries are queued, and
        then the error is raised with the reports as its ``reports``.

        A payment in flight, a declined payment due for a retry, or that
        retry's invoice whose stored row cannot be read is set aside (left as
        it is, not charged) and reported in its account's ``unreadable``; the
        next run reads it again. An account whose row cannot be read is set
        aside too: the others run, their summaries are queued, and then its
        :class:`UnreadableRecordError` is raised (the first such account's)
        with the reports as its ``reports``; a gateway stop is raised
        instead, as above. Any other error stops the run at once, after
        queuing the summaries of what it did until then.

        *set_aside* holds the rows set aside before (the refunds step of
        :meth:`recurbill.Billing.run`): they are reported as well.

        The reports tell what this call did; the summaries are built from the
        stored lines not summarised yet (:mod:`recurbill.summaries`), which
        include those of a run that crashed before queuing its own.
        """
        aware(as_of, "as_of")
        accounts, unreadable = self._accounts(account_ids)
        wanted = [a.id for a in accounts]
        charges = _Charges()
        done = _Issued()
        set_aside = SetAside() if set_aside is None else set_aside
        unanswered = Unanswered()  # gateway calls in a row, across the run
        try:
            stop = self._finish_unfinished(
                wanted, as_of, charges, unanswered, set_aside, done.stored
            )
            stop = self._issue_all(as_of, wanted, charges, done, stop, unanswered)
            if stop is None:
                stop = self._retry_all(
                    accounts, as_of, charges, done, unanswered, set_aside
                )
        except RecurbillError:
            if send_summaries:  # what was done before the stop is reported
                with contextlib.suppress(RecurbillError):
                    reports = self._reports(accounts, as_of, done, charges, set_aside)
                    self._queue_summaries(
                        accounts, reports, as_of, False, run=(charges, done)
                    )
            raise
        reports = self._reports(accounts, as_of, done, charges, set_aside)
        self._queue_summaries(
            accounts,
            reports,
            as_of,
            summary_when_empty,
            stopped=stop is not None,
            send=send_summaries,
            run=(charges, done),
        )
        if stop is not None:
            stop.reports = tuple(reports)
            raise stop
        if unreadable:
            unreadable[0].reports = tuple(reports)
            raise unreadable[0]
        return reports

    def _finish_unfinished(
        self,
        account_ids: list[str],
        as_of: datetime,
        charges: _Charges,
        unanswered: Unanswered,
        set_aside: SetAside,
        stored: dict[str, Lines],
    ) -> GatewayError | None:
        """Finish payments earlier calls left without an outcome; report the
        news (``Finished.news``). One that cannot be finished now is left for the
        next run, and so is one whose row, or a row its finishing needs (its
        invoice's, its customer's), cannot be read: that row is in
        *set_aside*. A refused API key, or the gateway not answering
        :data:`~recurbill.set_aside.UNKNOWN_IN_A_ROW` calls in a row, ends
        this and is returned. The payments are stored for the summary first,
        with their status: one whose status this (or a rerun) changes is
        summarised, whatever crash comes in between."""
        unfinished = self.collector.unfinished(account_ids, set_aside=set_aside)
        if unfinished:
            self._store_unfinished(unfinished, as_of, stored)
        for payment in unfinished:
            try:
                done = self.collector.finish(payment.account_id, payment.id, now=as_of)
            except GatewayAuthenticationError as error:
                return error
            except UnreadableRecordError as error:  # nothing was recorded
                set_aside.add(payment.account_id, error)
                continue
            except RecurbillError:
                continue  # a conflict, the gateway: the next run tries again
            if done.news:
                self._report_charge(charges, done.payment)
            stop = unanswered.after(done.answered)
            if stop is not None:
                return stop
        return None

    def _store_unfinished(
        self, payments: list[Payment], as_of: datetime, stored: dict[str, Lines]
    ) -> None:
        """Store summary lines for payments about to be finished (and note
        them in *stored*, the lines this run stored)."""
        lines: dict[str, Lines] = {}
        with self.storage.transaction() as tx:
            for payment in payments:
                try:
                    number, name = self._label(tx, payment)
                except (NotFoundError, UnreadableRecordError):
                    continue  # set aside by its finishing, stored by a later run
                ref = PaymentRef(
                    payment_id=payment.id,
                    invoice_number=number,
                    customer_name=name,
                    before=payment.status,
                )
                lines.setdefault(payment.account_id, Lines()).payments.append(ref)
            records = {random_id("sml"): (a, found) for a, found in lines.items()}
            tx.add_summary_lines(
                [found.stored(key, a, as_of) for key, (a, found) in records.items()]
            )
            tx.commit()
        stored.update((key, found) for key, (_, found) in records.items())

    def _retry_all(
        self,
        accounts: list[Account],
        as_of: datetime,
        charges: _Charges,
        done: _Issued,
        unanswered: Unanswered,
        set_aside: SetAside,
    ) -> GatewayError | None:
        """Make the retries that are due and report the ones this run sends,
        and those that end because the card cannot take the amount (in
        *done*). One that needs a row that cannot be read waits for the next
        run (the row is in *set_aside*). A refused key or an outage ends them
        (and is returned)."""
        days = {account.id: run_day(account, as_of) for account in accounts}
        for declined, attempt in self.collector.due_retries(
            on=days, set_aside=set_aside
        ):
            try:
                tried = self._retry(declined, attempt, as_of, done.stored)
            except UnreadableRecordError as error:  # nothing was stored
                set_aside.add(declined.account_id, error)
                continue
            if tried is None:
                continue
            if isinstance(tried, UnchargedLine):
                done.uncharged.setdefault(declined.account_id, []).append(tried)
                continue
            try:
                outcome, sent = self.collector.execute_sent(
                    tried.account_id, tried.id, now=as_of
                )
            except GatewayAuthenticationError as error:
                self._report_charge(charges, tried)  # saved, not sent: pending
                return error
            if sent:
                self._report_charge(charges, outcome)
            answered = outcome.status is not PaymentStatus.FAILED_UNKNOWN
            stop = unanswered.after(answered)
            if stop is not None:
                return stop
        return None

    @staticmethod
    def _reports(
        accounts: list[Account],
        as_of: datetime,
        done: _Issued,
        charges: _Charges,
        set_aside: SetAside,
    ) -> list[RunReport]:
        return [
            RunReport(
                account_id=account.id,
                as_of=as_of,
                issued=tuple(done.issued.get(account.id, ())),
                charges=tuple(charges.lines.get(account.id, ())),
                skipped=tuple(done.skipped.get(account.id, ())),
                ended=tuple(done.ended.get(account.id, ())),
                failed=tuple(done.failed.get(account.id, ())),
                uncharged=tuple(done.uncharged.get(account.id, ())),
                unreadable=tuple(
                    UnreadableLine(kind=kind, key=key, problem=str(error))
                    for (kind, key), error in set_aside.errors.get(
                        account.id, {}
                    ).items()
                ),
            )
            for account in accounts
        ]

    def _accounts(
        self, account_ids: Sequence[str] | None
    ) -> tuple[list[Account], list[UnreadableRecordError]]:
        """The accounts to run, and the errors of those whose rows cannot be
        read (set aside: the run raises the first at its end)."""
        asked = run_accounts(account_ids)
        accounts: list[Account] = []
        unreadable: list[UnreadableRecordError] = []
        with self.storage.transaction() as tx:
            for account_id in tx.list_account_ids() if asked is None else asked:
                try:
                    accounts.append(tx.get_account(account_id))
                except UnreadableRecordError as error:
                    unreadable.append(error)
        return accounts, unreadable

    def _issue_all(
        self,
        as_of: datetime,
        account_ids: list[str],
        charges: _Charges,
        total: _Issued,
        stop: GatewayError | None,
        unanswered: Unanswered,
    ) -> GatewayError | None:
        """Issue chunk by chunk; charge each chunk's payments once it is committed.

        Once charging has stopped (*stop*, or a stop a batch returns), the
        chunks are still issued and their payments left pending (and reported
        so); the stop is returned.

        Charging per chunk keeps memory bounded (nothing but the report grows
        with the number of templates) and the window between a committed
        payment and its charge short. A first pass passes over templates
        another transaction holds (another worker's chunk, so workers share
        the job); a second pass from the start waits for whatever is still
        due (a template being edited, a chunk whose worker failed), and goes
        again while it handles something: a template another worker left
        still due (its later occurrences wait for their turn in date order)
        can come back from PostgreSQL with its new ``next_due_at``, out of
        order, and carry the cursor past templates the pass has not reached.
        """
        skip_locked, again = True, True
        unreadable: set[str] = set()  # rows set aside: every later read skips them
        while again:
            after: tuple[datetime, str] | None = None
            again = skip_locked
            while (
                chunk := self._issue_next(
                    as_of, account_ids, after, skip_locked, unreadable
                )
            ) is not None:
                after, issued = chunk
                again = again or issued.handled
                total.add_lines(issued)
                unsent = issued.payments
                if stop is None:
                    outcomes, stop = self.collector.charge_batch(
                        issued.payments, now=as_of, unanswered=unanswered
                    )
                    for outcome in outcomes:
                        label = issued.labels.get(outcome.id)
                        self._report_charge(charges, outcome, label)
                    sent = {outcome.id for outcome in outcomes}
                    unsent = [p for p in issued.payments if p[0].id not in sent]
                for payment, _, _ in unsent:  # charging stopped: they wait, pending
                    label = issued.labels.get(payment.id)
                    self._report_charge(charges, payment, label)
            skip_locked = False
        return stop

    def _issue_next(
        self,
        as_of: datetime,
        account_ids: list[str],
        after: tuple[datetime, str] | None,
        skip_locked: bool,
        unreadable: set[str],
        limit: int | None = None,
    ) -> tuple[tuple[datetime, str] | None, _Issued] | None:
        """Issue the next chunk after *after* in one transaction; None when done.

        Returns where the next chunk starts (the last template's
        ``(next_due_at, id)`` as read) and what it issued. A row that cannot
        be read is reported and its id joins *unreadable*, which every later
        read of the run skips (:meth:`_past_unreadable`). A template's
        occurrences due after that point are left to the chunk that reaches
        them (its ``next_due_at`` is written back past the cursor), so numbers
        follow due dates (:func:`_in_date_order`); a chunk shorter than the
        limit is the walk's last and handles everything due. A conflict
        (another worker issued some of these first, or a deadlock) rolls the
        chunk back and reads it again. A template whose data cannot be issued
        (an :class:`InvalidInputError`), or that needs a stored row that
        cannot be read (its customer's: :class:`UnreadableRecordError`), rolls
        the chunk back too; the chunk is then issued a template at a time and
        the one that fails is reported (:meth:`_isolate`).
        """
        conflicts = 0
        while True:
            templates: list[RecurringTemplate] = []
            try:
                with self.storage.transaction() as tx:
                    try:
                        templates = tx.due_templates(
                            as_of,
                            account_ids=account_ids,
                            after=after,
                            limit=limit or self.chunk_size,
                            for_update=True,
                            skip_locked=skip_locked,
                            **skipping(unreadable),
                        )
                    except UnreadableRecordError as error:
                        templates = list(error.read)  # what _isolate retries
                        step = self._past_unreadable(tx, as_of, after, error)
                        unreadable.add(str(error.fields["key"]))  # committed
                        return step
                    if not templates:
                        return None
                    limited = len(templates) == (limit or self.chunk_size)
                    bound = _cursor(templates[-1]) if limited else None
                    chunk = self._issue_chunk(_Reads(tx), templates, as_of, bound)
                    tx.commit()
                return _cursor(templates[-1]), chunk
            except ConflictError:
                conflicts += 1
                if conflicts > _CONFLICT_RETRIES:
                    raise
            except (InvalidInputError, UnreadableRecordError) as error:
                if not templates:
                    raise  # reading failed: there is no template to set aside
                return self._isolate(
                    as_of, account_ids, after, skip_locked, unreadable, templates, error
                )

    def _past_unreadable(
        self,
        tx: Transaction,
        as_of: datetime,
        after: tuple[datetime, str] | None,
        error: UnreadableRecordError,
    ) -> tuple[tuple[datetime, str] | None, _Issued]:
        """Issue the templates read before a row that cannot be read, as a
        chunk that ends with them, and report that one (left as it is). The
        walk goes on from the last of them (or *after*), skipping the row by
        its id: its stored due instant may not sort as the cursor would
        (text another program wrote), or not be readable at all."""
        templates = list(error.read)
        chunk = _Issued()
        end = after
        if templates:  # a chunk cut short: later occurrences wait their turn
            end = _cursor(templates[-1])
            chunk = self._issue_chunk(_Reads(tx), templates, as_of, end)
        account_id = str(error.fields["account"])
        customer_id = name = str(error.fields["customer"])
        with contextlib.suppress(NotFoundError, UnreadableRecordError):
            name = tx.get_customer(account_id, customer_id).name
        tx.commit()
        line = FailedLine(
            template_id=str(error.fields["key"]),
            customer_name=name,
            problem=str(error),
            error=type(error).__name__,
        )
        chunk.failed.setdefault(account_id, []).append(line)
        return end, chunk

    def _isolate(
        self,
        as_of: datetime,
        account_ids: list[str],
        after: tuple[datetime, str] | None,
        skip_locked: bool,
        unreadable: set[str],
        templates: list[RecurringTemplate],
        error: InvalidInputError | UnreadableRecordError,
    ) -> tuple[tuple[datetime, str] | None, _Issued]:
        """Issue a chunk that failed a template at a time, reporting who fails.

        A template that fails on its own is left as it is (still due, tried
        again by the next run) and becomes a :class:`FailedLine`; the others
        are issued as usual, each in its own transaction.
        """
        end = _cursor(templates[-1])
        out = _Issued()
        if len(templates) == 1:
            (template,) = templates
            out.failed[template.account_id] = [self._failed_line(template, error)]
            return end, out
        cursor = after
        while cursor is None or cursor < end:
            step = self._issue_next(
                as_of, account_ids, cursor, skip_locked, unreadable, limit=1
            )
            if step is None:
                break
            cursor, issued = step
            out.add_lines(issued)
            out.payments.extend(issued.payments)
            out.labels.update(issued.labels)
        return max(end, cursor or end), out

    def _failed_line(
        self,
        template: RecurringTemplate,
        error: InvalidInputError | UnreadableRecordError,
    ) -> FailedLine:
        try:
            with self.storage.transaction() as tx:
                name = tx.get_customer(template.account_id, template.customer_id).name
        except RecurbillError:
            name = template.customer_id
        return FailedLine(
            template_id=template.id,
            customer_name=name,
            problem=str(error),
            description=_describe(template),
            error=type(error).__name__,
        )

    def _plan(
        self, reads: _Reads, template: RecurringTemplate, as_of: datetime
    ) -> _Plan:
        """What is due for one due template, read under its lock."""
        account_id = template.account_id
        account = reads.account(account_id)
        schedule = template.schedule
        due = schedule.due_count(
            as_of, run_time=account.run_time, zone=account.timezone
        )
        for n in range(template.next_index, due):  # usually one
            if past_calendar(schedule.occurrence(n), account):
                due = n  # past the end of the calendar: next_due ends it there
                break
        return _Plan(
            template=template,
            account=account,
            customer=reads.customer(account_id, template.customer_id),
            stop=due,
            due=due,
        )

    def _issue_chunk(
        self,
        reads: _Reads,
        templates: list[RecurringTemplate],
        as_of: datetime,
        bound: tuple[datetime, str] | None,
    ) -> _Issued:
        """Issue a chunk: plans, numbers (one block per account, given in date
        order), then records."""
        out = _Issued()
        reads.load(templates)
        plans, steps = _in_date_order(
            [self._plan(reads, template, as_of) for template in templates], bound
        )
        scheduled = OccurrenceStatus.SCHEDULED
        issues = [plan.template.schedule.status(n) is scheduled for plan, n in steps]
        needed: dict[str, int] = {}
        series: dict[str, str] = {}
        for (plan, _), issue in zip(steps, issues, strict=True):
            if issue:
                account = plan.account
                needed[account.id] = needed.get(account.id, 0) + 1
                series[account.id] = account.invoice_series
        next_number = {  # counters in account order: workers never deadlock
            account_id: reads.tx.allocate_invoice_numbers(
                account_id, series[account_id], count=count
            )
            for account_id, count in sorted(needed.items())
        }
        # read again under the counters' locks: a change_account (of the
        # reference scheme, payment terms, name) is in, or waits for the chunk
        reads.accounts.update(
            (account_id, reads.tx.get_account(account_id)) for account_id in needed
        )
        for (plan, n), issue in zip(steps, issues, strict=True):
            number = None
            if issue:
                number = next_number[plan.account.id]
                next_number[plan.account.id] = number + 1
            self._handle(reads, plan, n, number, as_of, out)
        for plan in plans:
            self._advance(plan, as_of, out)
        tx = reads.tx
        tx.add_invoices(out.invoices)
        tx.add_occurrences(out.occurrences)
        if out.payments:
            tx.add_payments([payment for payment, _, _ in out.payments])
        if out.notes:
            tx.add_notifications(out.notes)
        tx.update_templates(out.templates)
        records = self._chunk_lines(out, as_of)
        tx.add_summary_lines(records)
        return out

    def _chunk_lines(self, out: _Issued, as_of: datetime) -> list[SummaryLines]:
        """The summary lines of a chunk, one record per account (kept in
        ``out.stored`` too)."""
        lines: dict[str, Lines] = {}
        for kind in ("issued", "skipped", "ended", "uncharged"):
            for account_id, found in getattr(out, kind).items():
                getattr(lines.setdefault(account_id, Lines()), kind).extend(found)
        for payment, _, _ in out.payments:
            number, name = out.labels[payment.id]
            ref = PaymentRef(
                payment_id=payment.id, invoice_number=number, customer_name=name
            )
            lines.setdefault(payment.account_id, Lines()).payments.append(ref)
        records = []
        for account_id, found in lines.items():
            record = found.stored(random_id("sml"), account_id, as_of)
            out.stored[record.id] = found
            records.append(record)
        return records

    def _handle(
        self,
        reads: _Reads,
        plan: _Plan,
        n: int,
        number: int | None,
        as_of: datetime,
        out: _Issued,
    ) -> None:
        """Issue occurrence *n* as invoice *number*, or record it skipped (None).

        The account is the one read after the numbers were taken.
        """
        template, customer = plan.template, plan.customer
        account = reads.account(plan.account.id)
        on = template.schedule.occurrence(n)
        invoice: Invoice | None = None
        if number is not None:
            invoice = build_invoice(
                invoice_id=derived_id("inv", template.id, str(n)),
                account=account,
                customer=customer,
                lines=template.lines,
                allowances=template.allowances,
                charges=template.charges,
                number=number,
                issue_date=on,
                now=as_of,
                memo=template.memo,
                template_id=template.id,
                occurrence_index=n,
            )
        out.occurrences.append(
            OccurrenceRecord(
                account_id=account.id,
                template_id=template.id,
                index=n,
                on=on,
                outcome=OccurrenceOutcome.SKIPPED
                if invoice is None
                else OccurrenceOutcome.ISSUED,
                invoice_id=None if invoice is None else invoice.id,
            )
        )
        if invoice is None:
            out.skipped.setdefault(account.id, []).append(
                SkippedLine(
                    template_id=template.id,
                    customer_name=customer.name,
                    on=on,
                    description=_describe(template),
                )
            )
            return
        out.invoices.append(invoice)
        out.issued.setdefault(account.id, []).append(
            IssuedLine(
                invoice_id=invoice.id,
                invoice_number=invoice.display_number,
                customer_name=customer.name,
                issue_date=on,
                total=invoice.total,
            )
        )
        self._collect_or_send(reads, account, customer, [invoice], as_of, out)

    def _advance(self, plan: _Plan, as_of: datetime, out: _Issued) -> None:
        """Write the template's next index and due instant back; end it when
        nothing is left (not while occurrences wait for a later chunk)."""
        template, account = plan.template, plan.account
        # never back: a template stored with its end before handled dates
        # (end_template did not check it before) just finishes
        next_index = max(plan.stop, template.next_index)
        upcoming = due_from(template.schedule, next_index, account)
        status = template.status
        waiting = plan.stop < plan.due
        if not waiting and (upcoming is None or upcoming <= as_of):  # its end came
            upcoming, status = None, TemplateStatus.FINISHED
            out.ended.setdefault(account.id, []).append(
                EndedLine(
                    template_id=template.id,
                    customer_name=plan.customer.name,
                    description=_describe(template),
                )
            )
        out.templates.append(
            attrs.evolve(
                template, next_index=next_index, next_due_at=upcoming, status=status
            )
        )

    def _collect_or_send(
        self,
        reads: _Reads,
        account: Account,
        customer: Customer,
        invoices: list[Invoice],
        as_of: datetime,
        out: _Issued,
    ) -> None:
        plan = plan_collection(
            self.collector,
            account=account,
            customer=customer,
            invoices=invoices,
            now=as_of,
            method=lambda method_id: reads.method(account.id, method_id),
        )
        numbers = {invoice.id: invoice.display_number for invoice in invoices}
        for payment in plan.payments:
            method = reads.method(account.id, payment.payment_method_id)
            out.payments.append((payment, customer, method))
            out.labels[payment.id] = (numbers[payment.invoice_ids[0]], customer.name)
        out.notes.extend(plan.notes)
        if plan.reasons:
            for invoice in invoices:
                reason = plan.reasons.get(invoice.id)
                if (
                    reason is not None and reason in CARD_LIMITS
                ):  # the others are no news to the owner
                    out.uncharged.setdefault(account.id, []).append(
                        UnchargedLine(
                            invoice_number=invoice.display_number,
                            customer_name=customer.name,
                            amount=invoice.total,
                            reason=reason,
                        )
                    )

    def _retry(
        self,
        declined: Payment,
        attempt: int,
        as_of: datetime,
        stored: dict[str, Lines],
    ) -> Payment | UnchargedLine | None:
        """Store attempt *attempt*, pending, for the caller to charge (another
        worker may have stored it first); None when there is nothing to try.

        The customer's current default card is used; without one (or when the
        invoice no longer owes anything) the invoice simply stays open. The
        rule of first attempts holds
        (:func:`~recurbill.chargeable.no_automatic_charge`): when the card
        cannot take what is left to pay (a part payment left less than
        the gateway's minimum), nothing is charged. The attempt is stored
        ``canceled`` with the reason as its ``error_code`` (never sent: it
        ends the retries) and the invoice is e-mailed with what is left to
        pay, its due date and reference (to pay now if the due date has
        passed); the line for the summary is returned.
        """
        with self.storage.transaction() as tx:
            account = tx.get_account(declined.account_id)
            customer = tx.get_customer(account.id, declined.customer_id)
            invoice = tx.get_invoice(
                account.id, declined.invoice_ids[0], for_update=True
            )
            card_id = customer.default_payment_method_id
            if card_id is None or not self.collector.retry_due(
                tx, declined, on=run_day(account, as_of)
            ):
                return None  # checked again under the invoice's lock
            reason = no_automatic_charge(
                self.collector.gateway, customer, invoice.outstanding
            )
            if reason is not None and reason not in CARD_LIMITS:
                return None  # (retry_due has ruled these out)
            payment = self.collector.new_payment(
                account=account,
                customer=customer,
                method=tx.get_payment_method(account.id, card_id),
                invoices=[invoice],
                amount=invoice.outstanding,
                now=as_of,
                off_session=True,
                attempt=attempt,
                payment_id=automatic_charge_id(account.id, invoice.id, attempt),
            )
            if reason is not None:
                return self._end_retries(
                    tx, account, customer, invoice, payment, reason, stored
                )
            ref = PaymentRef(
                payment_id=payment.id,
                invoice_number=invoice.display_number,
                customer_name=customer.name,
            )
            lines, key = Lines(payments=[ref]), random_id("sml")
            try:
                tx.add_payment(payment)
                tx.add_summary_lines([lines.stored(key, account.id, as_of)])
                tx.commit()
                stored[key] = lines
            except ConflictError:
                pass  # this attempt exists already: the caller finishes it
        return payment

    def _end_retries(
        self,
        tx: Transaction,
        account: Account,
        customer: Customer,
        invoice: Invoice,
        payment: Payment,
        reason: NoChargeReason,
        stored: dict[str, Lines],
    ) -> UnchargedLine | None:
        """Store *payment* canceled, never sent, and e-mail the invoice instead
        (written on the run's local day: a due date passed while the charge
        was retried reads as due now), saying the card cannot take what is
        left (*reason*); None if another worker stored this attempt first."""
        today = local_date(account, payment.created_at)
        note = outbox_message(
            self.ids,
            account_id=account.id,
            kind="invoice",
            message=render_invoice(
                account, customer, invoice, on=today, not_charged=reason
            ),
            now=payment.created_at,
        )
        line = UnchargedLine(
            invoice_number=invoice.display_number,
            customer_name=customer.name,
            amount=payment.amount,
            reason=reason,
            retry=True,
        )
        lines, key = Lines(uncharged=[line]), random_id("sml")
        try:
            tx.add_payment(
                attrs.evolve(
                    payment, status=PaymentStatus.CANCELED, error_code=reason.value
                )
            )
            tx.add_notifications([note])
            tx.add_summary_lines([lines.stored(key, account.id, payment.created_at)])
            tx.commit()
        except ConflictError:
            return None  # this attempt exists already: that worker reports it
        stored[key] = lines
        return line

    def _report_charge(
        self,
        charges: _Charges,
        payment: Payment,
        label: tuple[str, str] | None = None,
    ) -> None:
        """Add *payment*'s line to its account's charges in the run's report;
        *label* (invoice numbers, customer name) spares reading them."""
        if label is None:
            with self.storage.transaction() as tx:
                label = self._label(tx, payment)
        line = ChargeLine.of(payment, invoice_number=label[0], customer_name=label[1])
        charges.lines.setdefault(payment.account_id, []).append(line)
        charges.payments[payment.id] = payment

    @staticmethod
    def _label(tx: Transaction, payment: Payment) -> tuple[str, str]:
        """What a summary prints for *payment*: invoice numbers, customer."""
        customer = tx.get_customer(payment.account_id, payment.customer_id)
        numbers = [
            tx.get_invoice(payment.account_id, invoice_id).display_number
            for invoice_id in payment.invoice_ids
        ]
        return ", ".join(numbers), customer.name

    def _queue_summaries(
        self,
        accounts: list[Account],
        reports: list[RunReport],
        as_of: datetime,
        when_empty: bool,
        *,
        stopped: bool = False,
        send: bool = True,
        run: tuple[_Charges, _Issued],
    ) -> None:
        """Queue each account's summary of the lines not summarised yet (this
        run's, and those of runs that crashed before queuing theirs) and of
        what this run found failing (*reports*), removing those lines in the
        same transaction; lines that wait (:func:`~recurbill.summaries.held`)
        are stored again. Without *send* only the lines this run stored are
        removed: an earlier run's wait for the next summary. The payments
        this run charged and the lines it stored (*run*) are not read again."""
        with self.storage.transaction() as tx:
            taken = tx.take_summary_lines([a.id for a in accounts])
            if not send:  # not this run's: put back (same ids, same lines)
                earlier = [r for r in taken if r.id not in run[1].stored]
                if earlier:
                    tx.add_summary_lines(earlier)
            else:
                found = _by_account(taken, run[1].stored)
                notes: list[Notification] = []
                for account, report in zip(accounts, reports, strict=True):
                    mine = found.get(account.id, [])
                    payments = _readable_payments(tx, account.id, mine, run[0].payments)
                    summary, kept = _summary(report, mine, payments, stopped=stopped)
                    if kept:
                        tx.add_summary_lines(kept)
                    if when_empty or not summary.is_empty:
                        notes.append(self._summary_note(account, summary, as_of))
                tx.add_notifications(notes)
            tx.commit()

    def _summary_note(
        self, account: Account, summary: RunReport, as_of: datetime
    ) -> Notification:
        """The outbox message of *account*'s *summary*."""
        return outbox_message(
            self.ids,
            account_id=account.id,
            kind="daily_summary",
            message=render_summary(account, summary),
            now=as_of,
        )


def _by_account(
    taken: list[SummaryLines], stored: dict[str, Lines]
) -> dict[str, list[tuple[SummaryLines, Lines]]]:
    """*taken* records and their lines, by account: earlier runs' first, then
    those this run *stored*, in its order (their lines need no decoding)."""
    order = {record_id: n for n, record_id in enumerate(stored)}
    found: dict[str, list[tuple[SummaryLines, Lines]]] = {}
    for record in sorted(taken, key=lambda r: (r.id in order, order.get(r.id, 0))):
        lines = stored[record.id] if record.id in order else decoded(record)
        found.setdefault(record.account_id, []).append((record, lines))
    return found


def _summary(
    report: RunReport,
    found: list[tuple[SummaryLines, Lines]],
    payments: dict[str, Payment],
    *,
    stopped: bool,
) -> tuple[RunReport, list[SummaryLines]]:
    """The summary of *found* lines and *report*'s failures, and the records
    whose lines wait for a later summary."""
    kept: list[SummaryLines] = []
    ready: list[Lines] = []
    later: set[str] = set()
    for record, lines in found:
        if held(lines, payments, stopped=stopped):
            kept.append(record)
            later.update(ref.payment_id for ref in lines.payments)
        else:
            ready.append(lines)
    return summary_report(report, ready, payments, later=later), kept


def _readable_payments(
    tx: Transaction,
    account_id: str,
    found: list[tuple[SummaryLines, Lines]],
    known: dict[str, Payment],
) -> dict[str, Payment]:
    """The payments *found* lines report, by id: *known* ones as they are,
    the others read; one whose row cannot be read is left out (its lines
    wait until it is corrected)."""
    refs = (ref.payment_id for _, lines in found for ref in lines.payments)
    readable: dict[str, Payment] = {}
    ids = []
    for payment_id in dict.fromkeys(refs):
        if payment_id in known:
            readable[payment_id] = known[payment_id]
        else:
            ids.append(payment_id)
    if not ids:
        return readable
    try:
        readable.update((p.id, p) for p in tx.get_payments(account_id, ids))
    except UnreadableRecordError:
        for payment_id in ids:
            with contextlib.suppress(UnreadableRecordError):
                readable[payment_id] = tx.get_payment(account_id, payment_id)
    return readable
