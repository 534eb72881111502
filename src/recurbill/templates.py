"""Recurring templates: creating, changing, pausing, resuming and ending them.

Every change works out the template's next due instant again. A start whose
first invoice would never be due is refused, and a template a daily run has
finished can no longer change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Context, Decimal
from enum import Enum
from typing import Any

import attrs

from recurbill.arguments import (
    allowance_charges,
    aware,
    chosen_id,
    differ,
    invoice_lines,
)
from recurbill.collection import local_date
from recurbill.errors import (
    ConflictError,
    InvalidInputError,
    InvalidScheduleError,
    StateError,
)
from recurbill.ids import IdFactory
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.issuing import check_lines, next_due
from recurbill.money import Currency
from recurbill.records import (
    LAST_YEAR,
    Account,
    RecurringTemplate,
    TemplateStatus,
    due_instant,
    past_calendar,
)
from recurbill.schedule import OccurrenceStatus, Period, Schedule
from recurbill.storage.protocol import Storage, stored_or_none

__all__ = ["Templates"]


@attrs.define
class Templates:
    """Recurring templates and their schedules; see the methods of :class:`Billing`."""

    storage: Storage
    ids: IdFactory

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
        rate), on every invoice it produces; they, and the allowances and
        charges of each line, are checked as
        :meth:`~recurbill.sessions.Sessions.record_session` checks them.
        The daily run issues the template as stored, without checking it
        again.

        The earliest start is tomorrow in the account's time zone (invoices are
        produced by the daily run); an earlier one raises
        :class:`~recurbill.errors.StartTooEarlyError` naming the earliest date.
        A start so late that its first invoice would be due after the end of
        recurbill's calendar (the year 9998, in UTC) would never produce one:
        it raises :class:`~recurbill.errors.InvalidScheduleError` naming the
        latest start.

        Pass your own ``template_id`` to make this call safe to repeat (None
        generates one; empty text raises
        :class:`~recurbill.errors.InvalidInputError`). Ids are unique across
        the database, not per account: one another account uses raises
        :class:`~recurbill.errors.ConflictError` saying so. A call for a
        ``template_id`` this account has returns the template as it is now,
        changing nothing, when its arguments are those it was created with
        (also after :meth:`change_template`, a pause, a resume or an end) or
        its details as they are now; ``now`` may differ. Numbers compare as
        values in both (``quantity=Decimal("1.0")`` repeats ``quantity=1``).
        Other details raise :class:`~recurbill.errors.ConflictError` naming
        the ones that differ from its details as they are now, and saying
        whether they differ from the arguments it was created with too: only
        a digest of these is kept, so after a change it cannot name them.
        (A template stored before schema version 7 is known by its details
        as they are now only.)
        """
        aware(now, "now")
        chosen = chosen_id(template_id, "template_id", one_per="template")
        items = invoice_lines(lines)
        discounts = allowance_charges(allowances, is_charge=False)
        fees = allowance_charges(charges, is_charge=True)
        timing: dict[str, Any] = {  # the schedule asked for, new or repeated
            "start": start,
            "period": period,
            "every": every,
            "end": end,
            "max_count": max_count,
            "month_end": month_end,
        }

        def asked(
            schedule: Schedule, id_: str, currency: Currency
        ) -> RecurringTemplate:
            """The template these arguments ask for, with their digest."""
            template = RecurringTemplate(
                id=id_,
                account_id=account_id,
                customer_id=customer_id,
                currency=currency,
                lines=items,
                allowances=discounts,
                charges=fees,
                schedule=schedule,
                memo=memo,
                created_at=now,
            )
            return attrs.evolve(template, created_with=_created_with(template))

        try:
            with self.storage.transaction() as tx:
                account = tx.get_account(account_id)
                tx.get_customer(account_id, customer_id)
                stored = (
                    None
                    if chosen is None
                    else stored_or_none(tx.get_template, account_id, chosen)
                )
                if stored is None:
                    schedule = Schedule.create(today=local_date(account, now), **timing)
                    check_lines(items, account, allowances=discounts, charges=fees)
                    template = _with_next_due(
                        asked(schedule, chosen or self.ids("tpl"), account.currency),
                        account,
                    )
                    _refuse_never_due(template, account)
                    tx.add_template(template)
                    tx.commit()
                    return template
        except ConflictError:  # added by another call meanwhile, or id taken
            stored = None if chosen is None else self._find(account_id, chosen)
            if stored is None:  # in use in another account: not this one's
                raise
        # a repeat is compared as asked: its start may be past by now
        repeated = Schedule(**timing)
        _refuse_another(stored, asked(repeated, stored.id, stored.currency))
        return stored

    def _find(self, account_id: str, template_id: str) -> RecurringTemplate | None:
        """The template as stored now; None when this account has no such one."""
        with self.storage.transaction(read_only=True) as tx:
            return stored_or_none(tx.get_template, account_id, template_id)

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

        What is left out (None) stays as it is; ``allowances=[]`` removes
        them. The lines (with their allowances and charges), allowances and
        charges it ends up with are checked together, as
        :meth:`create_template` checks them, when any of them is given: a
        template stored before a rule was added gets lines that keep it then.

        A change reaches only occurrences due after ``now``. While one that
        was due by ``now`` (its date at the account's run time) waits to be
        issued, because the daily run has not run since, a change of what
        the template invoices, or a re-dating, raises
        :class:`~recurbill.errors.StateError` naming its date and changes
        nothing: run the daily job first, then change the template. An
        occurrence the run will only record as skipped (paused) does not
        hold a change up, nor does a change that gives what the template has.
        With ``reach_due=True`` the change reaches those waiting occurrences
        too, on purpose: to correct a template the run could not issue (it
        stays due and fails again until corrected), or to re-date a template
        whose first occurrence fell due before the run reached it.

        Re-dating is only possible before the daily run has handled its first
        occurrence (issued it, or skipped it because of a pause), and the new
        start must be tomorrow or later and not after the latest start, like
        a new template's.
        """
        aware(now, "now")
        if not isinstance(reach_due, bool):
            raise InvalidInputError(
                problem=f"reach_due {reach_due!r} is not True or False",
                allowed="reach_due=True to let the change reach occurrences due "
                "and not issued yet, or leave it out",
            )
        items = None if lines is None else invoice_lines(lines)
        discounts = (
            None
            if allowances is None
            else allowance_charges(allowances, is_charge=False)
        )
        fees = None if charges is None else allowance_charges(charges, is_charge=True)
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            stored = _unfinished(
                tx.get_template(account_id, template_id, for_update=True)
            )
            template = stored
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
            changes = start is not None or _content(template) != _content(stored)
            if changes and not reach_due:
                _refuse_due_unissued(stored, account, now)
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


_TEMPLATE_DETAILS = ("customer_id", "lines", "allowances", "charges", "memo")
_SCHEDULE_DETAILS = ("start", "period", "every", "end", "max_count", "month_end")
"""The details ``create_template`` sets, by the names of its arguments."""


def _created_with(template: RecurringTemplate) -> str:
    """The digest of the ``create_template`` call that asks for *template*.

    Its ids and every detail it sets, as hex SHA-256 of their canonical form
    (:func:`_canonical`), so arguments that are equal give one digest however
    they are spelled: it tells a repeat of the call after the template
    changed without keeping what it was.
    """
    schedule = template.schedule.to_dict()  # ISO dates, the period's value
    arguments = [
        template.account_id,
        template.id,
        template.customer_id,
        _canonical(template.lines),
        _canonical(template.allowances),
        _canonical(template.charges),
        template.memo,
        *(schedule[name] for name in _SCHEDULE_DETAILS),
    ]
    return hashlib.sha256(json.dumps(arguments).encode()).hexdigest()


def _canonical(value: object) -> object:
    """*value* as JSON-safe data that values equal to it share.

    An attrs value is the fields its equality compares, a Decimal its
    normalized text (``Decimal("800.00")`` and ``800`` are ``"800"``), an
    enum its value and a tuple a list; text, numbers and None stay as they
    are.
    """
    kind = type(value)
    if attrs.has(kind):
        return {
            field.name: _canonical(getattr(value, field.name))
            for field in attrs.fields(kind)
            if field.eq
        }
    if isinstance(value, Decimal):
        if not value:
            return "0"  # also -0
        exact = Context(prec=len(value.as_tuple().digits))  # never rounds
        return f"{value.normalize(exact):f}"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_canonical(item) for item in value]
    return value


def _refuse_another(stored: RecurringTemplate, asked: RecurringTemplate) -> None:
    """Refuse *asked* under the id of *stored* unless it repeats the call that
    created *stored* or asks for *stored* as it is now (ConflictError naming
    what differs from its details now, and what is known of the call that
    created it)."""
    differing = [
        name
        for name in _TEMPLATE_DETAILS
        if getattr(asked, name) != getattr(stored, name)
    ] + [
        name
        for name in _SCHEDULE_DETAILS
        if getattr(asked.schedule, name) != getattr(stored.schedule, name)
    ]
    if not differing or asked.created_with == stored.created_with:
        return
    listed, verb = differ(differing)
    raise ConflictError(
        problem=f"template {stored.id!r} exists already with other details: the "
        f"{listed} given {verb} {_not_its_own(stored)}",
        allowed="to create another template, give a new template_id (or none); "
        "to repeat the call that created it, give the arguments it was "
        "created with or its details as they are now; to change it, call "
        "change_template, pause_template, resume_template or end_template",
    )


def _not_its_own(stored: RecurringTemplate) -> str:
    """How the details given differ from *stored*: from its details now, and
    from the arguments it was created with where these are known (the digest
    keeps which arguments they were, not what each was)."""
    if stored.created_with is None:
        return (
            "not its own, and the arguments it was created with are not known "
            "(it was stored without their digest, e.g. before schema version 7)"
        )
    if _created_with(stored) == stored.created_with:
        return "not its own, now or when it was created"
    return (
        "not its own now, nor are these the arguments it was created with "
        "(it has changed since, and only their digest is kept, so which of "
        "them differ is not known)"
    )


def _unfinished(template: RecurringTemplate) -> RecurringTemplate:
    """*template*, unless a run finished it: StateError, it can no longer change."""
    if template.status is TemplateStatus.FINISHED:
        raise StateError(
            problem=f"template {template.id} has finished "
            "(a daily run reached its end)",
            allowed="create a new template to bill again",
        )
    return template


def _content(template: RecurringTemplate) -> tuple[object, ...]:
    """What each invoice of *template* says: lines, allowances, charges, memo."""
    return (template.lines, template.allowances, template.charges, template.memo)


def _due_unissued(
    template: RecurringTemplate, account: Account, now: datetime
) -> list[date]:
    """The dates of *template*'s occurrences due by *now* that the daily run
    has not handled yet and will issue (not those a pause skips)."""
    schedule = template.schedule
    due = schedule.due_count(now, run_time=account.run_time, zone=account.timezone)
    dates = (schedule.occurrence(n) for n in range(template.next_index, due))
    return [
        on
        for n, on in enumerate(dates, start=template.next_index)
        if schedule.status(n) is OccurrenceStatus.SCHEDULED
        and not past_calendar(on, account)
    ]


def _refuse_due_unissued(
    template: RecurringTemplate, account: Account, now: datetime
) -> None:
    """StateError when an occurrence of *template* due by *now* waits to be
    issued: a change made now must not reach it."""
    waiting = _due_unissued(template, account, now)
    if not waiting:
        return
    shown = ", ".join(str(on) for on in waiting[:3])
    more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
    raise StateError(
        problem=f"template {template.id} has occurrences due by "
        f"{now.isoformat()} that the daily run has not issued yet: "
        f"{shown}{more}",
        allowed="call run (the daily run) first, so they are issued as the "
        "template stood when they fell due, then change it (a change reaches "
        "only occurrences due after it); or give reach_due=True to change "
        "them too (to correct a template the run could not issue, or to "
        "re-date one whose first occurrence is waiting)",
    )


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
