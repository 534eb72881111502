"""The daily run at scale: invoices issued per second against a raw-insert ceiling.

Seeds N active templates (default 1,000,000) on SQLite, about 1/30 of them due
on the benchmark day, and runs the daily job (issue, charge the automatic
customers through the in-memory gateway, queue the e-mails). Then, in the same
process, it copies every row the run wrote into an empty database of the same
schema with the raw driver's ``executemany`` (``sqlite3``, or psycopg for
PostgreSQL) in one transaction, three times into fresh databases: the fastest
is the ceiling (the slower ones waited on the disk or the machine).
It prints both rates, their ratio, and the process's peak memory (RSS).

    python benchmarks/bench_run.py                   # 1,000,000 templates
    python benchmarks/bench_run.py --storm           # every template due at once
    python benchmarks/bench_run.py --postgres        # the same on PostgreSQL
    python benchmarks/bench_run.py --templates 30000 # a quick look
    python benchmarks/bench_run.py --breakdown       # where the run's time goes

``--breakdown`` also times every storage and gateway call of the run and
prints the totals per method; what is left is the service's own work
(computing, rendering e-mails, building records).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recurbill.billing import Billing
from recurbill.invoice import InvoiceLine
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import RecurringTemplate
from recurbill.schedule import DEFAULT_RUN_TIME, Schedule, due_at
from recurbill.storage import rows, schema
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 1, 31)  # a month end: the storm scenario's worst day
AS_OF = datetime(2027, 1, 31, 12, tzinfo=timezone.utc)
CUSTOMERS = 500
WRITTEN = (
    "invoices",
    "occurrences",
    "payments",
    "payment_invoices",
    "receipts",
    "notifications",
)
PERIODS = ("month", "month", "month", "quarter", "year", "week")
CEILING_TRIES = 3  # the ceiling is a best case: the fastest of three fresh copies


def _seed(
    storage: SqlStorage, gateway: InMemoryGateway, templates: int, *, storm: bool
) -> None:
    """Accounts and customers through the service; templates in bulk."""
    billing = Billing(storage=storage, gateway=gateway)
    billing.create_account(
        account_id="acct",
        name="Bench AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="bench@example.no",
    )
    for c in range(CUSTOMERS):
        customer = billing.add_customer(
            "acct",
            name=f"Customer {c}",
            email=f"c{c}@example.no",
            collection_method="charge_automatically" if c % 2 else "send_invoice",
            customer_id=f"cus_{c:05d}",
        )
        if c % 2:
            billing.save_card("acct", customer.id, token="pm_card_visa")
    lines = (
        InvoiceLine(
            description="Service", quantity=1, unit_price="499", vat_rate=Decimal(25)
        ),
        InvoiceLine(
            description="Support", quantity=2, unit_price="120.50", vat_rate=Decimal(25)
        ),
        InvoiceLine(
            description="Books", quantity=1, unit_price="99", vat_rate=Decimal(12)
        ),
    )
    created = datetime(2027, 1, 1, tzinfo=timezone.utc)
    engine = storage.engine
    batch: list[dict[str, Any]] = []
    for t in range(templates):
        start = DAY if storm else DAY + timedelta(days=t % 30)
        schedule = Schedule(start=start, period=PERIODS[t % len(PERIODS)])
        template = RecurringTemplate(
            id=f"tpl_{t:07d}",
            account_id="acct",
            customer_id=f"cus_{(t // 30) % CUSTOMERS:05d}",
            currency="NOK",
            lines=lines,
            schedule=schedule,
            next_due_at=due_at(start, run_time=DEFAULT_RUN_TIME, zone="Europe/Oslo"),
            created_at=created,
        )
        batch.append(rows.encode_template(template))
        if len(batch) == 10_000 or t == templates - 1:
            with engine.begin() as conn:
                conn.execute(sa.insert(schema.templates), batch)
            batch = []


class _Timed:
    """Wraps an object: each method call's time is added to *spent* by name."""

    def __init__(
        self, inner: Any, spent: collections.defaultdict[str, float], kind: str
    ) -> None:
        self._inner, self._spent, self._kind = inner, spent, kind

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self._spent[f"{self._kind}.{name}"] += spent

        return timed


class _TimedStorage:
    """A storage whose transactions' calls are timed (see :class:`_Timed`)."""

    def __init__(
        self, inner: SqlStorage, spent: collections.defaultdict[str, float]
    ) -> None:
        self._inner, self._spent = inner, spent

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self._inner.transaction(read_only=read_only) as tx:
            yield _Timed(tx, self._spent, "storage")


def _print_breakdown(
    spent: collections.defaultdict[str, float], elapsed: float, issued: int
) -> None:
    print("where the run's time went (per issued invoice):")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:38s} {seconds:7.2f} s {seconds / issued * 1e6:7.1f} us")
    rest = elapsed - sum(spent.values())
    print(f"  {'the service itself':38s} {rest:7.2f} s {rest / issued * 1e6:7.1f} us")


def _written_rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: [
                tuple(r) for r in conn.execute(sa.select(schema.metadata.tables[name]))
            ]
            for name in WRITTEN
        }


def _ceiling_postgres(
    written: dict[str, list[tuple[Any, ...]]], server: Any, attempt: int
) -> float:
    """Seconds to insert the same rows with raw psycopg in one transaction."""
    import psycopg

    database = f"ceiling{attempt}"
    server.execute(f"CREATE DATABASE {database}")
    target = sa.create_engine(server.url(database))
    schema.metadata.create_all(target)
    target.dispose()
    with psycopg.connect(server.conninfo(database)) as conn:
        # like sqlite3's default: no foreign-key checks (the parents are not copied)
        conn.execute("SET session_replication_role = replica")
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for name, values in written.items():
                if values:
                    marks = ",".join(["%s"] * len(values[0]))
                    cursor.executemany(f"INSERT INTO {name} VALUES ({marks})", values)
        conn.commit()
        return time.perf_counter() - started


def _as_sqlite3(
    written: dict[str, list[tuple[Any, ...]]],
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows with the values sqlite3 stores (Decimal and dates as text)."""
    return {
        name: [tuple(_plain(v) for v in row) for row in rows_]
        for name, rows_ in written.items()
    }


def _ceiling(converted: dict[str, list[tuple[Any, ...]]]) -> float:
    """Seconds to insert *converted* rows with raw sqlite3 in one transaction."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ceiling.sqlite3"
        target = sa.create_engine(f"sqlite:///{path}")
        schema.metadata.create_all(target)
        target.dispose()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        started = time.perf_counter()
        with conn:
            for name, values in converted.items():
                if values:
                    marks = ",".join("?" * len(values[0]))
                    conn.executemany(f"INSERT INTO {name} VALUES ({marks})", values)
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--storm", action="store_true")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp())
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    server = None
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from postgres_server import PostgresServer

        server = PostgresServer.start()
        server.execute("CREATE DATABASE bench")
        url = server.url("bench")
    try:
        storage = SqlStorage.from_url(url)
        storage.migrate()
        started = time.perf_counter()
        gateway = InMemoryGateway()
        _seed(storage, gateway, args.templates, storm=args.storm)
        seeded = time.perf_counter() - started
        print(f"seeded {args.templates:,} templates in {seeded:.1f} s")
        spent: collections.defaultdict[str, float] = collections.defaultdict(float)
        billing = (
            Billing(
                storage=_TimedStorage(storage, spent),
                gateway=_Timed(gateway, spent, "gateway"),
            )
            if args.breakdown
            else Billing(storage=storage, gateway=gateway)
        )
        started = time.perf_counter()
        (report,) = billing.run(AS_OF)
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        issued = len(report.issued)
        written = _written_rows(storage.engine)
        storage.close()
        if server is not None:
            ceilings = [
                _ceiling_postgres(written, server, n) for n in range(CEILING_TRIES)
            ]
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    total_rows = sum(len(v) for v in written.values())
    if server is None:
        converted = _as_sqlite3(written)  # once for every try
        ceilings = [_ceiling(converted) for _ in range(CEILING_TRIES)]
    ceiling = min(ceilings)
    driver = "psycopg" if args.postgres else "sqlite3"
    run_rate = issued / elapsed
    ceiling_rate = issued / ceiling
    print(
        f"scenario: {'storm (all due)' if args.storm else '1/30 due'}, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    print(
        f"run:     {issued:,} invoices issued ({len(gateway.ledger):,} charged, "
        f"{total_rows:,} rows) in {elapsed:.2f} s = {run_rate:,.0f} invoices/s"
    )
    print(
        f"ceiling: the same {total_rows:,} rows by raw {driver} executemany in "
        f"{ceiling:.2f} s = {ceiling_rate:,.0f} invoices/s "
        f"(fastest of {', '.join(f'{c:.2f}' for c in ceilings)} s)"
    )
    print(f"ratio:   {run_rate / ceiling_rate:.1%} of the ceiling")
    print(f"peak memory (RSS, seeding included): {peak / 2**20:.0f} MiB")
    if args.breakdown:
        _print_breakdown(spent, elapsed, issued)
    return 0


if __name__ == "__main__":
    sys.exit(main())
