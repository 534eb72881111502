"""Mass payment: one charge settles several open invoices of one customer.

The service re-reads and locks the selected invoices, re-checks the selection
with the pure calculator (:func:`recurbill.settlement.plan_settlement`),
stores a settlement (a snapshot of the invoices and amounts) and its pending
payment in one transaction, and only then charges, once, with the payment's
idempotency key. Applying the outcome is the collector's job: on success every
invoice is paid and one receipt lists them all, in one transaction; on a
decline only the settlement's and payment's outcome change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from recurbill.chargeable import ONE_INVOICE_ADVICE, check_chargeable
from recurbill.collection import IN_FLIGHT, NO_OUTCOME, Collector, paying
from recurbill.errors import (
    ConflictError,
    InvalidSelectionError,
    NotFoundError,
    SelectionAmountError,
)
from recurbill.ids import IdFactory, derived_id
from recurbill.money import Money
from recurbill.payments.protocol import ChargeBound
from recurbill.records import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    Settlement,
    SettlementItem,
    SettlementStatus,
)
from recurbill.settlement import SettlementPlan, plan_settlement
from recurbill.storage.protocol import Storage, Transaction, payment_receipts

__all__ = ["MassPayment", "MassPaymentConfirmation"]

_LIVE = (SettlementStatus.PENDING, SettlementStatus.REQUIRES_ACTION)
_ADVICE: dict[ChargeBound, str] = {
    "maximum": "select fewer invoices and pay the others in a second payment",
    "minimum": "select more invoices, or pay these another way (a bank transfer)",
    "increment": "pay these invoices another way (a bank transfer)",
}
_ADVICE_ONE: dict[ChargeBound, str] = {
    **ONE_INVOICE_ADVICE,  # as pay() advises, but here more can be selected
    "minimum": "select more invoices, or pay it another way (a bank transfer)",
}


@attrs.frozen(kw_only=True)
class MassPaymentConfirmation:
    """What the confirmation screen shows after a mass payment.

    ``status`` is the settlement's: ``succeeded`` (then ``receipt`` lists every
    invoice), ``declined`` (nothing changed; try again or with another card),
    ``requires_action`` (``client_secret`` completes it in the browser; None
    while a charge whose invoices were closed meanwhile is being canceled) or
    ``pending`` (the outcome is not known yet; ask again later).
    """

    settlement: Settlement
    invoices: tuple[Invoice, ...]
    total: Money
    card_brand: str
    """The card paid with; from the receipt if the card was removed since
    (empty when there is neither)."""
    card_last4: str
    payment: Payment | None
    receipt: Receipt | None

    @property
    def status(self) -> SettlementStatus:
        """The settlement's status."""
        return self.settlement.status

    @property
    def receipt_number(self) -> str | None:
        """The receipt's number once the payment succeeded."""
        return None if self.receipt is None else self.receipt.number

    @property
    def client_secret(self) -> str | None:
        """What the customer's browser needs when the bank asks for authentication."""
        return None if self.payment is None else self.payment.client_secret


@attrs.define
class MassPayment:
    """Plans, stores and charges mass payments; see :meth:`Billing.mass_pay`."""

    storage: Storage
    collector: Collector
    ids: IdFactory

    def plan(
        self, account_id: str, customer_id: str, invoice_ids: Sequence[str]
    ) -> SettlementPlan:
        """What the selection costs now (for the screen before "confirm").

        Refused as :meth:`pay` would refuse it: an invoice in a payment without
        an outcome blocks, one in a payment waiting for authentication does
        not (paying cancels that payment first), and a total the gateway
        cannot charge is a :class:`~recurbill.errors.SelectionAmountError`.
        """
        with self.storage.transaction(read_only=True) as tx:
            return self._plan(tx, account_id, customer_id, invoice_ids)

    def pay(
        self,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
        *,
        payment_method_id: str,
        now: datetime,
    ) -> MassPaymentConfirmation:
        """Settle the selected invoices with one charge to a saved card.

        What :meth:`plan` refuses is refused here too. All but the payments
        in flight is checked first, before the gateway is asked anything (a
        resubmit of a stored settlement is confirmed instead). Then each
        payment in flight of these invoices is asked of the gateway, and the
        whole check runs again on what it said: one without an outcome still
        blocks, and a refused payment cancels nothing. Only then is one
        waiting for the customer's authentication canceled at the gateway
        (its settlement becomes ``abandoned``) and this payment replaces it,
        unless it is this very settlement on this card (confirmed again) or
        it finished meanwhile.
        """
        selected = tuple(invoice_ids) if _texts(invoice_ids) else ()

        def refuse(blocking: Sequence[PaymentStatus] = NO_OUTCOME) -> None:
            with self.storage.transaction() as tx:
                try:
                    self._plan(
                        tx, account_id, customer_id, invoice_ids, blocking=blocking
                    )
                except InvalidSelectionError:
                    # a resubmit (the same selection on the same card, or one
                    # it paid) is confirmed, not refused; looked for after
                    # the plan's reads, so a first submit (another tab) that
                    # committed meanwhile is found (PostgreSQL reads each
                    # statement's own snapshot)
                    same = self._same_selection(
                        tx, account_id, customer_id, invoice_ids
                    )
                    if same is None or (
                        same.status in _LIVE
                        and same.payment_method_id != payment_method_id
                    ):
                        raise
                self._method(tx, account_id, customer_id, payment_method_id)

        refuse(blocking=())

        def same_attempt(payment: Payment) -> bool:
            return (
                payment.settlement_id is not None
                and payment.payment_method_id == payment_method_id
                and set(payment.invoice_ids) == set(selected)
            )

        self.collector.make_way(
            account_id, customer_id, selected, keep=same_attempt, check=refuse, now=now
        )
        try:
            settlement, payment = self._store(
                account_id, customer_id, invoice_ids, payment_method_id, now
            )
        except ConflictError:
            # the same selection was submitted at the same moment (two tabs):
            # the other request stored it first, so confirm that one
            settlement, payment = self._store(
                account_id, customer_id, invoice_ids, payment_method_id, now
            )
        if payment is not None:
            self.collector.execute(account_id, payment.id, now=now)
        return self.confirmation(account_id, settlement.id)

    def confirmation(
        self, account_id: str, settlement_id: str
    ) -> MassPaymentConfirmation:
        """The confirmation of a stored settlement, as it stands now."""
        with self.storage.transaction() as tx:
            settlement = tx.get_settlement(account_id, settlement_id)
            invoices = tuple(
                tx.get_invoice(account_id, item.invoice_id) for item in settlement.items
            )
            payment = (
                None
                if settlement.payment_id is None
                else tx.get_payment(account_id, settlement.payment_id)
            )
            receipt = None
            if settlement.receipt_id is not None:
                receipt = next(
                    r
                    for r in _receipts(tx, settlement)
                    if r.id == settlement.receipt_id
                )
            card = (receipt.card_brand, receipt.card_last4) if receipt else ("", "")
            methods = tx.list_payment_methods(account_id, settlement.customer_id)
            for method in methods:  # the card may have been removed since
                if method.id == settlement.payment_method_id:
                    card = (method.brand, method.last4)
        return MassPaymentConfirmation(
            settlement=settlement,
            invoices=invoices,
            total=settlement.total,
            card_brand=card[0],
            card_last4=card[1],
            payment=payment,
            receipt=receipt,
        )

    def _plan(
        self,
        tx: Transaction,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
        *,
        blocking: Sequence[PaymentStatus] = NO_OUTCOME,
        lock: bool = False,
    ) -> SettlementPlan:
        """The one check of a selection, for :meth:`plan` and :meth:`pay` alike.

        Invoices in a payment with a status in *blocking* are refused (see
        :func:`~recurbill.collection.paying`). :meth:`plan` reads storage
        only: a payment without an outcome blocks, one waiting for
        authentication does not, since paying cancels it first. :meth:`pay`
        checks the rest before it asks the gateway anything (``blocking=()``:
        the gateway may have news of those payments), all of it again once
        :meth:`Collector.make_way` has asked and before it cancels anything,
        and stores its payment after that, when every payment in flight
        blocks: one still waiting for authentication then was started
        meanwhile.
        """
        tx.get_customer(account_id, customer_id)
        found = _invoices(tx, account_id, invoice_ids, lock=lock)
        busy = (
            paying(tx, account_id, customer_id, statuses=blocking) if blocking else {}
        )
        plan = plan_settlement(
            invoice_ids,
            found,
            account_id=account_id,
            customer_id=customer_id,
            pending=set(busy),
        )
        many = len(plan.lines) > 1
        check_chargeable(
            self.collector.gateway,
            plan.total,
            what=(
                f"the total of the {len(plan.lines)} selected invoices"
                if many
                else "the selected invoice"
            ),
            advice=_ADVICE if many else _ADVICE_ONE,
            error=SelectionAmountError,
            reason="amount",
            invoice_ids=plan.invoice_ids,
        )
        return plan

    def _store(
        self,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
        method_id: str,
        now: datetime,
    ) -> tuple[Settlement, Payment | None]:
        with self.storage.transaction() as tx:
            # the invoices' locks first: a resubmit that waited for them then
            # sees the settlement the first submit stored, and confirms it
            _invoices(tx, account_id, invoice_ids, lock=True)
            same = self._same_selection(tx, account_id, customer_id, invoice_ids)
            if same is not None:
                return same, None
            plan = self._plan(
                tx,
                account_id,
                customer_id,
                invoice_ids,
                blocking=IN_FLIGHT,
                lock=True,
            )
            method = self._method(tx, account_id, customer_id, method_id)
            account = tx.get_account(account_id)
            customer = tx.get_customer(account_id, customer_id)
            settlement = Settlement(
                id=self.ids("stl"),
                account_id=account_id,
                customer_id=customer_id,
                selection_key=plan.selection_key,
                items=tuple(
                    SettlementItem(
                        invoice_id=line.invoice_id,
                        invoice_number=line.invoice_number,
                        amount=line.amount,
                    )
                    for line in plan.lines
                ),
                total=plan.total,
                payment_method_id=method.id,
                status=SettlementStatus.PENDING,
                created_at=now,
            )
            invoices = [tx.get_invoice(account_id, i) for i in plan.invoice_ids]
            payment = self.collector.new_payment(
                account=account,
                customer=customer,
                method=method,
                invoices=invoices,
                amount=plan.total,
                now=now,
                off_session=False,
                settlement_id=settlement.id,
                payment_id=derived_id("pay", account.id, settlement.id),
            )
            tx.add_settlement(attrs.evolve(settlement, payment_id=payment.id))
            tx.add_payment(payment)
            tx.commit()
        return attrs.evolve(settlement, payment_id=payment.id), payment

    @staticmethod
    def _same_selection(
        tx: Transaction,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
    ) -> Settlement | None:
        """A live or succeeded settlement of exactly these invoices (a resubmit)."""
        if not _texts(invoice_ids):
            return None
        wanted = set(invoice_ids)
        for settlement in reversed(
            tx.list_settlements(account_id, customer_id=customer_id)
        ):
            if {item.invoice_id for item in settlement.items} != wanted:
                continue
            if settlement.status in _LIVE:
                return settlement
            if settlement.status is SettlementStatus.SUCCEEDED and not any(
                tx.get_invoice(account_id, i).status is InvoiceStatus.OPEN
                for i in wanted
            ):
                return settlement  # already paid by this very selection
        return None

    @staticmethod
    def _method(
        tx: Transaction, account_id: str, customer_id: str, method_id: str
    ) -> PaymentMethod:
        method = tx.get_payment_method(account_id, method_id)
        if method.customer_id != customer_id:
            raise NotFoundError(
                kind="payment method", key=method_id, account=account_id
            )
        return method


def _invoices(
    tx: Transaction, account_id: str, invoice_ids: Sequence[str], *, lock: bool
) -> list[Invoice]:
    """The selected invoices that exist, in id order (locked with *lock*)."""
    found: list[Invoice] = []
    for invoice_id in sorted(set(invoice_ids) if _texts(invoice_ids) else ()):
        try:
            found.append(tx.get_invoice(account_id, invoice_id, for_update=lock))
        except NotFoundError:
            continue  # the calculator reports it as not found
    return found


def _texts(values: object) -> bool:
    return isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values)


def _receipts(tx: Transaction, settlement: Settlement) -> list[Receipt]:
    """The receipts of *settlement*'s payment (its receipt is one of them),
    read in *tx*: those of its customer while it has no payment."""
    if settlement.payment_id is None:
        return tx.list_receipts(settlement.account_id, settlement.customer_id)
    return payment_receipts(
        tx, settlement.account_id, settlement.customer_id, settlement.payment_id
    )
