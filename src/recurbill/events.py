"""Gateway events: a verified webhook finishes the payment or refund it names.

The state is read back from the gateway, never taken from the event, so the
order of events does not matter; an event id is remembered once its work is
done, so a redelivery after a failure is processed again.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from recurbill.arguments import aware
from recurbill.collection import Collector
from recurbill.corrections import Corrections
from recurbill.errors import GatewayUnavailableError, NotFoundError
from recurbill.payments.protocol import (
    ACCOUNT_METADATA_KEY,
    PAYMENT_METADATA_KEY,
    REFUND_METADATA_KEY,
    PaymentGateway,
)
from recurbill.records import Payment, Refund
from recurbill.storage.protocol import Storage

__all__ = ["GatewayEvents"]


@attrs.define
class GatewayEvents:
    """The gateway's webhook events; see :meth:`Billing.handle_webhook`."""

    storage: Storage
    gateway: PaymentGateway
    collector: Collector
    corrections: Corrections

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
        raised and the gateway's redelivery is processed again. (A charge
        found waiting for the customer's authentication though its invoices
        were closed meanwhile is canceled; should the cancel not get through,
        it is stored waiting without a ``client_secret`` and canceled by the
        next look-up.)
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
                    done = self.collector.finish(account_id, payment_id, now=now)
                    if not done.answered:
                        raise GatewayUnavailableError(
                            problem=f"the gateway could not be asked about payment "
                            f"{payment_id} (event {event.event_id})",
                            allowed="answer with a 5xx status: the gateway "
                            "delivers the event again",
                        )
                    about = done.payment
                elif isinstance(refund_id, str):
                    about = self.corrections.follow(
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
