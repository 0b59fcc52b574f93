"""A local HTTP server that behaves like the Stripe endpoints billing uses, for the real SDK.

Implements, as api.stripe.com does: bearer-key authentication; form-encoded bodies with
bracketed nesting (`payload[value]=3`); `POST /v1/customers`; `POST /v1/billing/meter_events`
(event_name, payload with stripe_customer_id and value, identifier, timestamp within the
past 35 days); `Idempotency-Key` (a repeat with the same parameters replays the first answer
with `Idempotent-Replayed: true`, with other parameters it is a 400 `idempotency_error`);
Stripe's error body `{"error": {"type", "message"}}`. Faults can be injected: a 500 or 429
before anything happens, or a 500 *after* the request took effect (the answer is lost, the
effect is not: the idempotent retry must replay it). Webhook payloads are signed as
Stripe signs them (`t=<ts>,v1=<HMAC-SHA256 of "<ts>.<body>">`).

Every accepted meter event is kept in `meter_events` (by identifier); a second event with
an identifier already accepted is kept in `duplicate_identifiers` (what double billing
would look like).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

#: A fault to inject: "500" / "429" before the effect, "500-after" after it.
Fault = str


@dataclass
class FakeStripe:
    faults: Callable[[str], Fault | None] = lambda path: None
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_identifiers: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)   # (path, idempotency key, status)
    replays: int = 0
    _idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    url: str = ""

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._reply(self, 404, _error("invalid_request_error", f"Unrecognized request URL (GET: {self.path})"))

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- what was received ------------------------------------------------------------------
    def totals_by_customer_and_event(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for event in self.meter_events.values():
                key = (event["payload"]["stripe_customer_id"], event["event_name"])
                out[key] = out.get(key, 0) + int(event["payload"]["value"])
        return out

    # -- handling -----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        params = nested(parse_qsl(h.rfile.read(length).decode(), keep_blank_values=True))
        key = h.headers.get("Idempotency-Key", "")
        if not re.fullmatch(r"Bearer sk_(test|live)_\w+", h.headers.get("Authorization", "")):
            return self._reply(h, 401, _error("invalid_request_error", "Invalid API Key provided"))
        fingerprint = json.dumps([h.path, params], sort_keys=True)
        with self._lock:
            if key and key in self._idempotent:
                first, status, body = self._idempotent[key]
                if first != fingerprint:
                    return self._reply(h, 400, _error("idempotency_error", "Keys for idempotent requests can only "
                                                      "be used with the same parameters they were first used with."))
                self.replays += 1
                return self._reply(h, status, body, replayed=True)
        fault = self.faults(h.path)
        if fault in ("500", "429"):
            message = "Too many requests" if fault == "429" else "An unknown error occurred"
            return self._reply(h, int(fault), _error("api_error", message), retry="true")
        with self._lock:
            status, body = self._route(h.path, params)
            if key and status < 500:
                self._idempotent[key] = (fingerprint, status, body)
        if fault == "500-after":
            return self._reply(h, 500, _error("api_error", "An unknown error occurred"), retry="true")
        return self._reply(h, status, body)

    def _route(self, path: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/v1/customers":
            customer = {"id": f"cus_{secrets.token_hex(7)}", "object": "customer", "name": p.get("name"),
                        "metadata": p.get("metadata", {}), "created": int(time.time()), "livemode": False}
            self.customers[customer["id"]] = customer
            return 200, customer
        if path == "/v1/billing/meter_events":
            return self._meter_event(p)
        return 404, _error("invalid_request_error", f"Unrecognized request URL (POST: {path})")

    def _meter_event(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        payload = p.get("payload") or {}
        if not p.get("event_name"):
            return 400, _error("invalid_request_error", "Missing required param: event_name.", "event_name")
        if payload.get("stripe_customer_id") not in self.customers:
            return 400, _error("invalid_request_error", "No such customer", "payload[stripe_customer_id]")
        if not re.fullmatch(r"\d+(\.\d+)?", str(payload.get("value", ""))):
            return 400, _error("invalid_request_error", "Invalid value", "payload[value]")
        now = int(time.time())
        timestamp = int(p.get("timestamp") or now)
        if not now - 35 * 86400 <= timestamp <= now + 300:
            return 400, _error("invalid_request_error", "Timestamp out of range", "timestamp")
        identifier = p.get("identifier") or f"gen_{secrets.token_hex(8)}"
        event = {"object": "billing.meter_event", "created": now, "event_name": p["event_name"],
                 "identifier": identifier, "livemode": False, "payload": payload, "timestamp": timestamp}
        if identifier in self.meter_events:
            self.duplicate_identifiers.append(identifier)
        else:
            self.meter_events[identifier] = event
        return 200, event

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: dict[str, Any], *, replayed: bool = False,
               retry: str | None = None) -> None:
        data = json.dumps(body).encode()
        with self._lock:
            self.requests.append((h.path, h.headers.get("Idempotency-Key", ""), status))
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        if replayed:
            h.send_header("Idempotent-Replayed", "true")
        if retry:
            h.send_header("Stripe-Should-Retry", retry)
        h.end_headers()
        h.wfile.write(data)


def faults_every(n: int, seed: int = 0) -> Callable[[str], Fault | None]:
    """About one request in `n` fails: 500 before, 429, or 500 after the effect (seeded)."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def pick(path: str) -> Fault | None:
        with lock:
            if rng.randrange(n):
                return None
            return rng.choice(["500", "429", "500-after"])

    return pick


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: `payload[value]=3` -> {"payload": {"value": "3"}}."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _error(kind: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def sign_webhook(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload`."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"
