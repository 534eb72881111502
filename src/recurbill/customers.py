"""Customers: who is billed, and their customer at the payment gateway.

A customer is stored before its gateway customer is created, with an
idempotency key derived from its id, so no failure leaves a gateway customer
recurbill does not know of; a repeat finishes what a failed call left undone.
"""

from __future__ import annotations

import hashlib
import json

import attrs

from recurbill.arguments import (
    check_locale,
    chosen_id,
    differ,
    to_collection_method,
)
from recurbill.errors import ConflictError
from recurbill.ids import IdFactory, derived_id
from recurbill.payments import check_customer
from recurbill.payments.protocol import (
    ACCOUNT_METADATA_KEY,
    CUSTOMER_METADATA_KEY,
    PaymentGateway,
)
from recurbill.records import CollectionMethod, Customer
from recurbill.storage.protocol import Storage, stored_or_none

__all__ = ["Customers"]


@attrs.define
class Customers:
    """Adding and changing customers; see the methods of :class:`Billing`."""

    storage: Storage
    gateway: PaymentGateway
    ids: IdFactory

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
        and arguments, or go on: :meth:`Billing.start_card_setup` and
        :meth:`Billing.save_card` create it first. The same key makes the gateway
        return the customer it made for the lost answer while the gateway
        remembers the key (Stripe: 24 hours); to find it later too, a repeat
        first looks for a gateway customer with this customer's metadata
        (:meth:`~recurbill.payments.protocol.PaymentGateway.find_customer`).
        Pass your own ``customer_id`` to make this call safe to repeat (None
        generates one; empty text raises
        :class:`~recurbill.errors.InvalidInputError`). Ids are unique across
        the database, not per account: one another account uses raises
        :class:`~recurbill.errors.ConflictError` saying so, naming no account.
        ``locale`` left out (None) is the account's; an unknown one, empty
        text too, raises :class:`~recurbill.errors.InvalidRecordError`.

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
        chosen_locale = account.locale if locale is None else locale
        check_locale(chosen_locale)
        customer = Customer(
            id=chosen_id(customer_id, "customer_id", one_per="customer")
            or self.ids("cus"),
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
                stored = stored_or_none(tx.get_customer, account_id, customer.id)
                if stored is None:
                    tx.add_customer(customer)
                    tx.commit()
        except ConflictError:  # added by another call meanwhile, or id taken
            stored = self._find(account_id, customer.id)
            if stored is None:  # in use in another account: not this one's
                raise
        if stored is not None:
            _refuse_another(stored, customer)
            customer = stored
        return self.with_gateway_customer(customer, look_up=stored is not None)

    def with_gateway_customer(
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
            check_locale(locale)
        given = {
            field: value
            for field, value in (("name", name), ("email", email), ("locale", locale))
            if value is not None
        }
        customer = self.get(account_id, customer_id)
        wanted = attrs.evolve(customer, **given)  # refuses a bad name or address
        mirrored = name is not None or email is not None
        if mirrored:  # and what the gateway would refuse, before it is stored
            check_customer(email=wanted.email, name=wanted.name)
        if mirrored and customer.gateway_customer_id is None:
            self.with_gateway_customer(customer)
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
            latest = self.get(customer.account_id, customer.id)
            if (latest.email, latest.name) == (customer.email, customer.name):
                return latest
            customer = latest
        raise ConflictError(
            problem=f"customer {customer.id!r} was changed again by other calls "
            f"each time its gateway customer was updated ({_MIRROR_ROUNDS} times)",
            allowed="call change_customer again once the other changes are done",
        )

    def _find(self, account_id: str, customer_id: str) -> Customer | None:
        """The customer as stored now; None when this account has no such one."""
        with self.storage.transaction(read_only=True) as tx:
            return stored_or_none(tx.get_customer, account_id, customer_id)

    def get(self, account_id: str, customer_id: str) -> Customer:
        """The customer as stored now."""
        with self.storage.transaction(read_only=True) as tx:
            return tx.get_customer(account_id, customer_id)


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
    listed, verb = differ(differing)
    raise ConflictError(
        problem=f"customer {stored.id!r} exists already with other details: the "
        f"{listed} given {verb} not its own, "
        "nor was it added with these arguments",
        allowed="to add another customer, give a new customer_id (or none); to "
        "finish or repeat the call that added it, give the arguments it was "
        "added with or its details as they are now; to change it, call "
        "change_customer or set_collection_method",
    )


_MIRROR_ROUNDS = 5
"""How many times :meth:`Billing.change_customer` sends the gateway a customer
that other calls keep changing, before it gives up (ConflictError)."""
