"""A local fake of the part of Stripe's API that StripeGateway uses.

It serves HTTP on 127.0.0.1 (a free port), speaks the form encoding the SDK
sends, and behaves like Stripe's test mode for the test payment methods (the
table in :data:`recurbill.payments.memory.TEST_CARDS`). It is strict where
a fake is usually lenient:

- every request parameter must be allowed by the SDK's own typed parameter
  definitions (``stripe.params.*Params``), nested keys such as
  ``metadata[...]`` and ``invoice_settings[default_payment_method]`` included,
  and every leaf value must fit its declared type; required keys must be there;
- ``Idempotency-Key`` is honoured as Stripe does: a replay returns the saved
  answer, the same key with other parameters is an ``idempotency_error``;
- the API key must be the expected one.

Faults are scripted with :meth:`FakeStripe.fail_next`: a 429, a 500, a
connection dropped before or after the work was done, or an answer held back
until the client times out. Every request body received is kept in
:attr:`FakeStripe.received`. With :attr:`FakeStripe.search_lags`, a search
of PaymentIntents finds nothing, as Stripe's (not read-after-write) search
does for an object made or changed in the last minute.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs
import stripe
import stripe.params
import typing_extensions
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject

from recurbill.payments.memory import TEST_CARDS, TestCard
from recurbill.payments.protocol import IDEMPOTENCY_METADATA_KEY

__all__ = ["API_KEY", "FakeStripe", "Received", "allowed_form_keys", "check_form"]

API_KEY = "sk_test_fake"

FaultKind = Literal["rate_limit", "server_error", "drop_before", "drop_after", "hold"]

_REQUEST_OPTION_KEYS = frozenset(RequestOptions.__annotations__)


# -- the SDK's typed parameters ---------------------------------------------------


def _hints(typed_dict: type) -> dict[str, Any]:
    """Resolved annotations of a params TypedDict, without the request options.

    Params classes inherit ``RequestOptions`` (api_key, idempotency_key, …),
    which the SDK sends as headers, never as form fields: they are left out.
    """
    annotations = {
        key: value
        for key, value in typed_dict.__annotations__.items()
        if key not in _REQUEST_OPTION_KEYS
    }
    probe = type("_Probe", (), {"__annotations__": annotations})
    probe.__module__ = typed_dict.__module__
    return typing.get_type_hints(probe)


def _arms(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [arm for a in typing.get_args(annotation) for arm in _arms(a)]
    return [annotation]


def _leaf_fits(annotation: Any, value: str) -> bool:
    for arm in _arms(annotation):
        origin = typing.get_origin(arm)
        if arm is str or arm is Any:
            return True
        if arm is bool and value in ("true", "false"):
            return True
        if arm is int and re.fullmatch(r"-?\d+", value):
            return True
        if arm is float and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return True
        if origin is Literal and value in [
            str(v).lower() if isinstance(v, bool) else str(v)
            for v in typing.get_args(arm)
        ]:
            return True
    return False


def _child(arm: Any, head: str) -> Any:
    """The annotation of key *head* inside *arm*, or None if it has no such key."""
    origin = typing.get_origin(arm)
    args = typing.get_args(arm)
    if typing_extensions.is_typeddict(arm):
        return _hints(arm).get(head)
    if origin in (dict, typing.Dict, Mapping, UntypedStripeObject):  # noqa: UP006
        return (args[-1] if args else Any) if head else None
    if origin in (list, typing.List):  # noqa: UP006
        return (args[0] if args else Any) if head.isdigit() else None
    return None


def _path_fits(annotation: Any, path: tuple[str, ...], value: str) -> bool:
    if not path:
        return _leaf_fits(annotation, value)
    for arm in _arms(annotation):
        child = _child(arm, path[0])
        if child is not None and _path_fits(child, path[1:], value):
            return True
    return False


def _split_key(key: str) -> tuple[str, ...]:
    match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
    if match is None:
        return (key, "\x00")  # malformed: never fits
    return (match[1], *re.findall(r"\[([^\[\]]*)\]", match[2]))


def allowed_form_keys(typed_dict: type) -> frozenset[str]:
    """Top-level form keys the SDK's TypedDict allows (request options excluded)."""
    return frozenset(_hints(typed_dict))


def check_form(typed_dict: type, pairs: list[tuple[str, str]]) -> str | None:
    """The first form key that *typed_dict* does not allow (or a missing one)."""
    hints = _hints(typed_dict)
    for key, value in pairs:
        path = _split_key(key)
        if path[0] not in hints or not _path_fits(hints[path[0]], path[1:], value):
            return key
    present = {_split_key(key)[0] for key, _ in pairs}
    required = set(getattr(typed_dict, "__required_keys__", ())) - _REQUEST_OPTION_KEYS
    missing = sorted(required - present)
    return f"missing:{missing[0]}" if missing else None


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs as nested dicts (list indices stay string keys)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = _split_key(key)
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root


# -- the fake -------------------------------------------------------------------------


class _Reply(Exception):  # noqa: N818  (control flow, not an error)
    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, type_: str, message: str, **extra: Any) -> _Reply:
    return _Reply(status, {"error": {"type": type_, "message": message, **extra}})


def _missing(kind: str, key: str, param: str | None = None) -> _Reply:
    return _error(
        404,
        "invalid_request_error",
        f"No such {kind}: '{key}'",
        code="resource_missing",
        param=param,
    )


@attrs.frozen(kw_only=True)
class Received:
    """One request the fake received: method, path, query and raw body text."""

    method: str
    path: str
    query: str
    body: str
    idempotency_key: str | None


@attrs.define
class _Fault:
    kind: FaultKind
    method: str
    path: str


_Handler = Callable[["FakeStripe", re.Match[str], dict[str, Any]], Mapping[str, Any]]


class FakeStripe:
    """The fake API server; start with :meth:`running` (a context manager)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.received: list[Received] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.behaviour: dict[str, TestCard] = {}
        self.detached: set[str] = set()
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._replies: dict[str, tuple[str, list[tuple[str, str]], int, bytes]] = {}
        self._faults: list[_Fault] = []
        self.stopping = threading.Event()
        self.hold_seconds = 5.0
        self.search_lags = False
        self._server: ThreadingHTTPServer | None = None

    # -- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base address of the API, e.g. ``http://127.0.0.1:54321``."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def running(self) -> _Running:
        """Serve in a background thread while the context lasts."""
        return _Running(self)

    def fail_next(
        self,
        kind: FaultKind,
        *,
        method: str = "POST",
        path: str = "/v1/payment_intents",
        times: int = 1,
    ) -> None:
        """Make the next *times* requests to *method* *path* fail with *kind*."""
        with self._lock:
            self._faults.extend(_Fault(kind, method, path) for _ in range(times))

    def succeeded_charges(self, key: str) -> int:
        """How many succeeded PaymentIntents carry idempotency key *key*."""
        with self._lock:
            return sum(
                pi["status"] == "succeeded"
                and pi["metadata"].get(IDEMPOTENCY_METADATA_KEY) == key
                for pi in self.intents.values()
            )

    def authenticate(self, intent_id: str) -> None:
        """The customer completes 3-D Secure: the PaymentIntent succeeds."""
        with self._lock:
            intent = self.intents[intent_id]
            intent.update(
                status="succeeded",
                next_action=None,
                last_payment_error=None,
                amount_received=intent["amount"],
            )

    # -- serving ---------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> FaultKind | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path == path:
                    self._faults.remove(fault)
                    return fault.kind
        return None

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, FaultKind | None]:
        """Answer one request: (status, JSON body, fault to apply after the work)."""
        split = urlsplit(target)
        text = body.decode()
        key = headers.get("Idempotency-Key")
        with self._lock:
            self.received.append(
                Received(
                    method=method,
                    path=split.path,
                    query=split.query,
                    body=text,
                    idempotency_key=key,
                )
            )
        fault = self._take_fault(method, split.path)
        if fault == "drop_before":
            return 0, b"", fault
        refusal = None
        if fault == "rate_limit":
            refusal = _error(
                429, "invalid_request_error", "Too many requests", code="rate_limit"
            )
        elif fault == "server_error":
            refusal = _error(500, "api_error", "Something went wrong")
        elif headers.get("Authorization") != f"Bearer {API_KEY}":
            refusal = _error(401, "invalid_request_error", "Invalid API Key provided")
        if refusal is not None:
            return (*self._encode(refusal), None)
        pairs = parse_qsl(
            split.query if method == "GET" else text, keep_blank_values=True
        )
        with self._lock:
            if method == "POST" and key is not None:
                saved = self._replies.get(key)
                if saved is not None:
                    if saved[0] != f"{method} {split.path}" or saved[1] != pairs:
                        reuse = _error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with.",
                        )
                        return (*self._encode(reuse), None)
                    return saved[2], saved[3], fault
            status, payload = self._encode(self._dispatch(method, split.path, pairs))
            if method == "POST" and key is not None:
                self._replies[key] = (f"{method} {split.path}", pairs, status, payload)
        return status, payload, fault

    @staticmethod
    def _encode(reply: _Reply | Mapping[str, Any]) -> tuple[int, bytes]:
        if isinstance(reply, _Reply):
            return reply.status, json.dumps(reply.body).encode()
        return 200, json.dumps(reply).encode()

    def _dispatch(
        self, method: str, path: str, pairs: list[tuple[str, str]]
    ) -> _Reply | Mapping[str, Any]:
        for route_method, pattern, params, handler in _ROUTES:
            match = re.fullmatch(pattern, path)
            if match is None or route_method != method:
                continue
            bad = check_form(params, pairs)
            if bad is not None:
                return _error(
                    400,
                    "invalid_request_error",
                    f"Received unknown parameter: {bad}",
                    code="parameter_unknown",
                    param=bad,
                )
            try:
                return handler(self, match, _nest(pairs))
            except _Reply as reply:
                return reply
        return _error(
            404, "invalid_request_error", f"Unrecognized request URL ({path})"
        )

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    # -- resources -------------------------------------------------------------------

    def _customer(self, customer: str, param: str = "customer") -> dict[str, Any]:
        found = self.customers.get(customer)
        if found is None:
            raise _missing("customer", customer, param)
        return found

    def create_customer(
        self, _: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        customer = {
            "id": self._id("cus"),
            "object": "customer",
            "email": form.get("email"),
            "name": form.get("name"),
            "metadata": form.get("metadata", {}),
            "invoice_settings": {"default_payment_method": None},
        }
        self.customers[customer["id"]] = customer
        return customer

    def search_customers(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        wanted: dict[str, str] = {}
        for clause in form["query"].split(" AND "):
            query = re.fullmatch(r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", clause)
            if query is None:
                raise _error(400, "invalid_request_error", "This fake knows metadata")
            wanted[query[1]] = re.sub(r"\\(.)", r"\1", query[2])
        data = [
            customer
            for customer in self.customers.values()
            if all(customer["metadata"].get(k) == v for k, v in wanted.items())
        ]
        return {
            "object": "search_result",
            "data": data[: int(form.get("limit", 10))],
            "has_more": False,
            "next_page": None,
            "url": match[0],
        }

    def update_customer(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        customer = self._customer(match[1], "id")
        default = form.get("invoice_settings", {}).get("default_payment_method")
        if default is not None:
            method = self.payment_methods.get(default)
            if method is None or method["customer"] != customer["id"]:
                raise _error(
                    400,
                    "invalid_request_error",
                    f"The customer has no payment method with the ID {default}.",
                    code="resource_missing",
                    param="invoice_settings[default_payment_method]",
                )
            customer["invoice_settings"]["default_payment_method"] = default
        for field in ("email", "name"):
            if field in form:
                customer[field] = form[field]
        return customer

    def list_customer_methods(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        customer = self._customer(match[1], "customer")
        every = [
            pm
            for pm in reversed(self.payment_methods.values())
            if pm["customer"] == customer["id"]
        ]
        after = form.get("starting_after")
        if after is not None:  # the page after that card, as Stripe pages
            every = every[[pm["id"] for pm in every].index(after) + 1 :]
        limit = int(form.get("limit", 10))
        data, has_more = every[:limit], len(every) > limit
        return {"object": "list", "data": data, "has_more": has_more, "url": match[0]}

    def create_setup_intent(
        self, _: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        self._customer(form.get("customer", ""))
        setup_id = self._id("seti")
        intent = {
            "id": setup_id,
            "object": "setup_intent",
            "client_secret": f"{setup_id}_secret_fake",
            "customer": form["customer"],
            "status": "requires_payment_method",
            "usage": form.get("usage", "off_session"),
        }
        self.setup_intents[setup_id] = intent
        return intent

    def _new_method(self, test_id: str, customer: str | None) -> dict[str, Any]:
        behaviour = TEST_CARDS.get(test_id)
        if behaviour is None:
            raise _missing("PaymentMethod", test_id, "payment_method")
        method: dict[str, Any] = {
            "id": self._id("pm"),
            "object": "payment_method",
            "type": "card",
            "customer": customer,
            "card": {
                "brand": behaviour.brand,
                "display_brand": behaviour.brand,
                "last4": behaviour.last4,
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "country": "US",
            },
        }
        self.payment_methods[method["id"]] = method
        self.behaviour[method["id"]] = behaviour
        return method

    def _refuse_detached(self, token: str) -> None:
        if token in self.detached:
            raise _error(
                400,
                "invalid_request_error",
                "The provided PaymentMethod was previously used without being "
                "attached to a Customer or was detached from a Customer, and may "
                "not be used again.",
                param="payment_method",
            )

    def attach_method(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        customer = self._customer(form.get("customer", ""))["id"]
        self._refuse_detached(match[1])
        method = self.payment_methods.get(match[1])
        if method is None:
            return self._new_method(match[1], customer)
        if method["customer"] not in (None, customer):
            raise _error(
                400,
                "invalid_request_error",
                "The payment method you provided has already been attached to "
                "a customer.",
                code="payment_method_unexpected_state",
            )
        method["customer"] = customer
        return method

    def detach_method(
        self, match: re.Match[str], _: dict[str, Any]
    ) -> Mapping[str, Any]:
        method = self.payment_methods.get(match[1])
        if method is None or method["customer"] is None:
            raise _error(
                400,
                "invalid_request_error",
                "The payment method you provided is not attached to a customer "
                "so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
        customer = self.customers[method["customer"]]
        if customer["invoice_settings"]["default_payment_method"] == method["id"]:
            customer["invoice_settings"]["default_payment_method"] = None
        method["customer"] = None
        self.detached.add(method["id"])
        return method

    def create_intent(
        self, _: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        customer = self._customer(form.get("customer", ""))["id"]
        token = form.get("payment_method", "")
        self._refuse_detached(token)
        method = self.payment_methods.get(token)
        if method is None:
            method = self._new_method(token, None)
        elif method["customer"] != customer:
            raise _error(
                400,
                "invalid_request_error",
                f"The provided PaymentMethod {token} does not belong to the customer.",
                param="payment_method",
            )
        currency = form["currency"]
        amount = int(form["amount"])
        if currency != currency.lower():
            raise _error(
                400, "invalid_request_error", "Invalid currency", param="currency"
            )
        step = {"isk": 100, "kwd": 10, "bhd": 10, "jod": 10, "omr": 10, "tnd": 10}
        if amount <= 0 or amount % step.get(currency, 1):
            raise _error(
                400,
                "invalid_request_error",
                "Invalid amount",
                code="invalid_charge_amount",
                param="amount",
            )
        if form.get("confirm") != "true":
            raise _error(400, "invalid_request_error", "This fake only confirms")
        intent_id = self._id("pi")
        card = self.behaviour[method["id"]]
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "customer": customer,
            "payment_method": method["id"],
            "client_secret": f"{intent_id}_secret_fake",
            "description": form.get("description"),
            "metadata": form.get("metadata", {}),
            "status": "succeeded",
            "last_payment_error": None,
            "next_action": None,
            "amount_refunded": 0,
        }
        self.intents[intent_id] = intent
        off_session = form.get("off_session") == "true"
        if card.requires_action and not off_session:
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            return intent
        if card.decline_code is not None:
            error = {
                "type": "card_error",
                "code": card.error_code,
                "decline_code": card.decline_code,
                "message": "Your card was declined.",
            }
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = error
            raise _Reply(402, {"error": {**error, "payment_intent": intent}})
        intent["amount_received"] = amount
        return intent

    def retrieve_intent(
        self, match: re.Match[str], _: dict[str, Any]
    ) -> Mapping[str, Any]:
        intent = self.intents.get(match[1])
        if intent is None:
            raise _missing("payment_intent", match[1], "intent")
        return intent

    def cancel_intent(
        self, match: re.Match[str], _: dict[str, Any]
    ) -> Mapping[str, Any]:
        intent = self.intents.get(match[1])
        if intent is None:
            raise _missing("payment_intent", match[1], "intent")
        if intent["status"] in ("succeeded", "canceled"):
            raise _error(
                400,
                "invalid_request_error",
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent["status"] = "canceled"
        intent["next_action"] = None
        intent["last_payment_error"] = None  # Stripe clears it on any update
        return intent

    def update_intent(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        """Set metadata (an empty value removes a key; the only update
        recurbill makes); like Stripe, an update clears ``last_payment_error``."""
        intent = self.intents.get(match[1])
        if intent is None:
            raise _missing("payment_intent", match[1], "intent")
        metadata = {**intent["metadata"], **form.get("metadata", {})}
        intent["metadata"] = {k: v for k, v in metadata.items() if v != ""}
        intent["last_payment_error"] = None
        return intent

    def list_intents(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        data = list(reversed(self.intents.values()))[: int(form.get("limit", 10))]
        return {"object": "list", "data": data, "has_more": False, "url": match[0]}

    def search_intents(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        query = re.fullmatch(
            r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", form["query"]
        )
        if query is None:
            raise _error(400, "invalid_request_error", "This fake knows one query form")
        wanted = re.sub(r"\\(.)", r"\1", query[2])
        data = [
            pi
            for pi in reversed(self.intents.values())
            if pi["metadata"].get(query[1]) == wanted and not self.search_lags
        ]
        return {
            "object": "search_result",
            "data": data[: int(form.get("limit", 10))],
            "has_more": False,
            "next_page": None,
            "url": match[0],
        }

    def create_refund(
        self, _: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None:
            raise _missing("payment_intent", form.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            raise _error(
                400,
                "invalid_request_error",
                "This PaymentIntent does not have a successful charge to refund.",
            )
        left = intent["amount"] - intent["amount_refunded"]
        if left == 0:
            raise _error(
                400,
                "invalid_request_error",
                "Charge has already been refunded.",
                code="charge_already_refunded",
            )
        amount = int(form.get("amount", left))
        if amount > left:
            raise _error(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount ({left})",
                code="amount_too_large",
                param="amount",
            )
        intent["amount_refunded"] += amount
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "metadata": form.get("metadata", {}),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return refund

    def list_refunds(
        self, match: re.Match[str], form: dict[str, Any]
    ) -> Mapping[str, Any]:
        data = [
            refund
            for refund in reversed(self.refunds.values())
            if form.get("payment_intent") in (None, refund["payment_intent"])
        ][: int(form.get("limit", 10))]
        return {"object": "list", "data": data, "has_more": False, "url": match[0]}


_ROUTES: list[tuple[str, str, type, _Handler]] = [
    (
        "POST",
        r"/v1/customers",
        stripe.params.CustomerCreateParams,
        FakeStripe.create_customer,
    ),
    (
        "GET",
        r"/v1/customers/search",
        stripe.params.CustomerSearchParams,
        FakeStripe.search_customers,
    ),
    (
        "POST",
        r"/v1/customers/([^/]+)",
        stripe.params.CustomerUpdateParams,
        FakeStripe.update_customer,
    ),
    (
        "GET",
        r"/v1/customers/([^/]+)/payment_methods",
        stripe.params.CustomerPaymentMethodListParams,
        FakeStripe.list_customer_methods,
    ),
    (
        "POST",
        r"/v1/setup_intents",
        stripe.params.SetupIntentCreateParams,
        FakeStripe.create_setup_intent,
    ),
    (
        "POST",
        r"/v1/payment_methods/([^/]+)/attach",
        stripe.params.PaymentMethodAttachParams,
        FakeStripe.attach_method,
    ),
    (
        "POST",
        r"/v1/payment_methods/([^/]+)/detach",
        stripe.params.PaymentMethodDetachParams,
        FakeStripe.detach_method,
    ),
    (
        "POST",
        r"/v1/payment_intents",
        stripe.params.PaymentIntentCreateParams,
        FakeStripe.create_intent,
    ),
    (
        "GET",
        r"/v1/payment_intents",
        stripe.params.PaymentIntentListParams,
        FakeStripe.list_intents,
    ),
    (
        "GET",
        r"/v1/payment_intents/search",
        stripe.params.PaymentIntentSearchParams,
        FakeStripe.search_intents,
    ),
    (
        "GET",
        r"/v1/payment_intents/((?!search$)[^/]+)",
        stripe.params.PaymentIntentRetrieveParams,
        FakeStripe.retrieve_intent,
    ),
    (
        "POST",
        r"/v1/payment_intents/((?!search$)[^/]+)",
        stripe.params.PaymentIntentUpdateParams,
        FakeStripe.update_intent,
    ),
    (
        "POST",
        r"/v1/payment_intents/([^/]+)/cancel",
        stripe.params.PaymentIntentCancelParams,
        FakeStripe.cancel_intent,
    ),
    (
        "POST",
        r"/v1/refunds",
        stripe.params.RefundCreateParams,
        FakeStripe.create_refund,
    ),
    (
        "GET",
        r"/v1/refunds",
        stripe.params.RefundListParams,
        FakeStripe.list_refunds,
    ),
]


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        status, payload, fault = fake.handle(
            self.command, self.path, dict(self.headers.items()), body
        )
        if fault in ("drop_before", "drop_after"):
            self.close_connection = True
            return
        if fault == "hold":
            fake.stopping.wait(fake.hold_seconds)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_fake{id(payload) % 10**8:08d}")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake


class _Running:
    def __init__(self, fake: FakeStripe) -> None:
        self._fake = fake

    def __enter__(self) -> FakeStripe:
        server = _Server(self._fake)
        self._fake._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self._fake

    def __exit__(self, *exc: object) -> None:
        server = self._fake._server
        assert server is not None
        self._fake.stopping.set()
        server.shutdown()
        self._thread.join()
        server.server_close()


def serve() -> Iterator[FakeStripe]:
    """Generator form of :meth:`FakeStripe.running`, for a pytest fixture."""
    with FakeStripe().running() as fake:
        yield fake
