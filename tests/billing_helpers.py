"""A small world for the billing tests: one service over the in-memory adapters."""

from __future__ import annotations

import contextlib
import threading
import time as clock
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from recurbill.billing import Billing
from recurbill.collection import RetryPolicy
from recurbill.errors import ConflictError, GatewayUnavailableError
from recurbill.invoice import InvoiceLine
from recurbill.money import Money
from recurbill.notify import Outbox, deliver_pending
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import RefundResult
from recurbill.records import Account, CollectionMethod, Customer, Invoice, Payment
from recurbill.references import ReferenceScheme
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage

OSLO = ZoneInfo("Europe/Oslo")


def line(
    price: str = "800", rate: str = "25", description: str = "Session"
) -> InvoiceLine:
    """One standard-rated line."""
    return InvoiceLine(
        description=description, quantity=1, unit_price=price, vat_rate=Decimal(rate)
    )


def at(day: date, hour: int = 12, zone: ZoneInfo = OSLO) -> datetime:
    """A local instant on *day*."""
    return datetime.combine(day, time(hour), tzinfo=zone)


class CustomersMade(InMemoryGateway):
    """Remembers the gateway customers made (a replayed key makes none) or
    found made by an earlier call whose answer was lost. With a *barrier*,
    each creation first waits (up to 2 s) for another call to reach it."""

    def __init__(self) -> None:
        super().__init__(environ={})
        self.made: set[str] = set()
        self.barrier: threading.Barrier | None = None

    def create_customer(self, **kwargs: Any) -> str:
        if self.barrier is not None:  # the other call may never come
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=2)
        made = super().create_customer(**kwargs)
        self.made.add(made)
        return made

    def find_customer(self, **kwargs: Any) -> str | None:
        found = super().find_customer(**kwargs)
        if found is not None:
            self.made.add(found)
        return found


class CrashError(Exception):
    """The process died here."""


@attrs.define
class Faults:
    """Counts calls; the call numbered ``fail_at`` fails in the chosen way."""

    fail_at: int | None = None
    mode: str = "crash"
    calls: int = 0
    fail_on: str | None = None  # or the next call of this name fails

    def tick(self, name: str = "") -> bool:
        self.calls += 1
        if name and name == self.fail_on:
            self.fail_on = None
            return True
        return self.calls == self.fail_at


class _Tx:
    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._faults.tick(name):
                return target(*args, **kwargs)
            if self._faults.mode == "timeout_after":  # done, then the answer lost
                target(*args, **kwargs)
            if self._faults.mode == "lock_timeout":  # another holds the lock
                raise ConflictError(
                    problem=f"storage call {name} waited too long for a lock",
                    allowed="try again",
                )
            raise CrashError(f"storage call {name}")

        return call


class FaultyStorage:
    """A storage whose k-th transaction call raises, before it acts or (mode
    ``timeout_after``) after: a commit made, its answer lost; mode
    ``lock_timeout`` raises the ConflictError of a lock waited for too long."""

    def __init__(self, inner: InMemoryStorage, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self._inner.transaction(read_only=read_only) as tx:
            yield _Tx(tx, self._faults)


class FaultyGateway:
    """A gateway whose k-th call crashes before, or loses its answer after."""

    def __init__(self, inner: InMemoryGateway, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        target: Callable[..., Any] = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._faults.tick(name):
                return target(*args, **kwargs)
            if self._faults.mode == "timeout_after":
                target(*args, **kwargs)
                raise GatewayUnavailableError(problem="timed out", allowed="retry")
            raise CrashError(f"gateway call {name}")

        return call


@attrs.define
class Counter:
    """Deterministic ids: ``cus_1``, ``cus_2``…"""

    seen: dict[str, int] = attrs.Factory(dict)

    def __call__(self, prefix: str) -> str:
        self.seen[prefix] = self.seen.get(prefix, 0) + 1
        return f"{prefix}_{self.seen[prefix]}"


@attrs.define
class World:
    """A billing service, its adapters, and one NOK account in Oslo."""

    billing: Billing
    storage: Storage
    gateway: InMemoryGateway
    account: Account

    def customer(
        self,
        name: str = "Kari Nordmann",
        *,
        card: str | None = "pm_card_visa",
        method: CollectionMethod = CollectionMethod.CHARGE_AUTOMATICALLY,
    ) -> Customer:
        customer = self.billing.add_customer(
            self.account.id,
            name=name,
            email=f"{name.split()[0].lower()}@example.no",
            collection_method=method,
        )
        if card is not None:
            self.billing.save_card(self.account.id, customer.id, token=card)
        return customer

    def paying_by_hand(self, name: str = "Per Olsen") -> tuple[Customer, str, str]:
        """A ``send_invoice`` customer with two cards: one asking for 3-D
        Secure (the default) and a Visa; returns the customer and both ids."""
        customer = self.customer(name, card=None, method=CollectionMethod.SEND_INVOICE)
        stuck = self.billing.save_card(
            self.account.id, customer.id, token="pm_card_authenticationRequired"
        ).id
        visa = self.billing.save_card(
            self.account.id, customer.id, token="pm_card_visa", make_default=False
        ).id
        return customer, stuck, visa

    def storage_invoices(self) -> list[Invoice]:
        with self.storage.transaction() as tx:
            return tx.list_invoices(self.account.id)

    def payments(self) -> list[Payment]:
        with self.storage.transaction() as tx:
            return tx.list_payments(self.account.id)

    def invoice_of(self, payment: Payment) -> Invoice:
        """The one invoice *payment* pays, as stored now."""
        (invoice_id,) = payment.invoice_ids
        with self.storage.transaction() as tx:
            return tx.get_invoice(self.account.id, invoice_id)

    def notification_kinds(self) -> list[str]:
        with self.storage.transaction() as tx:
            return [n.kind for n in tx.pending_notifications(limit=10_000)]

    def deliver(self, now: datetime) -> list[str]:
        """Send the outbox; the kinds of the messages sent, each checked to
        be the one the outbox received."""
        outbox = Outbox()
        result = deliver_pending(self.storage, outbox, now=now)
        with self.storage.transaction() as tx:
            sent = [tx.get_notification(self.account.id, key) for key in result.sent]
        assert [m.subject for m in outbox.sent] == [n.subject for n in sent]
        return [n.kind for n in sent]

    def template(
        self,
        customer: Customer,
        *,
        start: date,
        period: str = "month",
        created: date | None = None,
        lines: Sequence[InvoiceLine] = (),
        **kwargs: object,
    ) -> str:
        created_on = created or start - timedelta(days=1)
        template = self.billing.create_template(
            self.account.id,
            customer.id,
            lines=list(lines) or [line()],
            start=start,
            period=period,
            now=at(created_on),
            **kwargs,  # type: ignore[arg-type]
        )
        return template.id


def make_world(
    *,
    storage: Storage | None = None,
    gateway: InMemoryGateway | None = None,
    timezone: str = "Europe/Oslo",
    retry_policy: RetryPolicy | None = None,
    chunk_size: int = 1000,
    currency: str = "NOK",
    reference_scheme: ReferenceScheme | None = None,
) -> World:
    """A fresh service with deterministic ids and one account (NOK unless told)."""
    storage = storage if storage is not None else InMemoryStorage()
    gateway = gateway if gateway is not None else InMemoryGateway()
    billing = Billing(
        storage=storage,
        gateway=gateway,
        ids=Counter(),
        retry_policy=retry_policy or RetryPolicy(),
        chunk_size=chunk_size,
    )
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency=currency,
        locale="nb_NO",
        timezone=timezone,
        summary_email="post@fjordfysio.no",
        reference_scheme=reference_scheme,
    )
    return World(billing=billing, storage=storage, gateway=gateway, account=account)


def together(*calls: Callable[[], Any], stagger: float = 0.0) -> list[Any]:
    """Run *calls* on threads at once, each started *stagger* seconds after the
    one before; what each returned, or the error it raised, in order."""
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except Exception as error:  # reported to the test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
        clock.sleep(stagger)
    for thread in threads:
        thread.join(timeout=60)
    return results


class HeldRefunds(InMemoryGateway):
    """Holds each refund call at ``barrier`` (when set) until the other party
    arrives or two seconds pass, so two refunds meet at the gateway."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        super().__init__()
        self.barrier = barrier

    def refund(
        self,
        charge_id: str,
        *,
        amount: Money | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        if self.barrier is not None:
            # the other call may never come (a repeat, or refused first)
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=2)
        return super().refund(
            charge_id, amount=amount, idempotency_key=idempotency_key, metadata=metadata
        )
