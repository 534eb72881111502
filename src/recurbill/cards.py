"""Cards: saving, choosing, replacing and removing a customer's cards.

A card is attached at the gateway before it is stored, and detached before
it is forgotten; what a failure in between leaves is undone, or finished by a
repeat of the call (:meth:`Cards.save_card`, :meth:`Cards.remove_card`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import attrs

from recurbill.arguments import aware
from recurbill.collection import NO_OUTCOME, Collector
from recurbill.customers import Customers
from recurbill.errors import ConflictError, InvalidInputError, NotFoundError, StateError
from recurbill.ids import IdFactory
from recurbill.payments.protocol import CardSetup, PaymentGateway
from recurbill.records import Customer, PaymentMethod, PaymentStatus
from recurbill.storage.protocol import Storage, Transaction

__all__ = ["Cards"]


@attrs.define
class Cards:
    """A customer's saved cards; see the methods of :class:`Billing`."""

    storage: Storage
    gateway: PaymentGateway
    collector: Collector
    customers: Customers
    ids: IdFactory

    def start_card_setup(self, account_id: str, customer_id: str) -> CardSetup:
        """Start saving a card; the browser completes it with the client secret.

        A customer whose gateway customer :meth:`Billing.add_customer` could
        not create gets it first.
        """
        customer = self._at_gateway(account_id, customer_id)
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
        customer = self._at_gateway(account_id, customer_id)
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

    def _at_gateway(self, account_id: str, customer_id: str) -> Customer:
        """The customer, with its gateway customer (created now if it has none)."""
        customers = self.customers
        return customers.with_gateway_customer(customers.get(account_id, customer_id))

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
            self.collector.cancel(account_id, payment.id, now=now)

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


def _with_token(methods: Sequence[PaymentMethod], token: str) -> PaymentMethod | None:
    """The card of *methods* with gateway token *token* (the first, if several)."""
    return next((m for m in methods if m.token == token), None)
