"""Storing issued invoices: SqlStorage against the raw driver's executemany.

Stores N issued invoices of three lines each (default 200,000) twice per
database, each time into a fresh database with recurbill's schema:

- **SqlStorage**, through the public protocol: one transaction per batch
  (``--batch``, default 5,000) that allocates the batch's invoice numbers and
  calls ``add_invoices``, then commits.
- **The ceiling**: the raw driver (``sqlite3`` / psycopg 3) turning the same
  records into the same column values (lines as JSON via ``to_dict``, amounts
  as exact decimals) and inserting them with one ``executemany`` in a single
  transaction, with no number allocation, no checks and no savepoints.

The ``Invoice`` records are built before either clock starts. Also printed is
the bare insert of pre-encoded tuples (no encoding at all), for reference.
SQLite runs on a file in a temporary directory (WAL, synchronous=FULL, the
defaults SqlStorage uses); PostgreSQL on a throwaway local server started like
the test fixture (``fsync=off``), skipped if its binaries are missing. Exits
with status 1 if SqlStorage reaches less than half the ceiling on SQLite.

    python benchmarks/bench_storage.py                  # 200,000 invoices
    python benchmarks/bench_storage.py --invoices 20000 --no-postgres
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy

from recurbill.invoice import InvoiceLine
from recurbill.money import Money
from recurbill.records import Invoice, InvoiceStatus
from recurbill.storage import schema
from recurbill.storage.sql import SqlStorage
from recurbill.testing.storage import make_account, make_customer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import PostgresServer, PostgresUnavailableError

MIN_RATIO = 0.5
ACCOUNT = "acme"
CUSTOMERS = 100
COLUMNS = [column.name for column in schema.invoices.columns]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def make_invoices(count: int, seed: int) -> list[Invoice]:
    """*count* open invoices of three lines, numbered 1..count, reproducible."""
    rnd = random.Random(seed)
    created = datetime(2025, 3, 1, 5, 15, tzinfo=timezone.utc)
    invoices = []
    cent = Decimal("0.01")
    for n in range(1, count + 1):
        lines = tuple(
            InvoiceLine(
                description=f"Session {n}-{k}",
                quantity=rnd.randint(1, 5),
                unit_price=Decimal(rnd.randint(100, 200_000)) * cent,
                vat_rate=25,
            )
            for k in range(3)
        )
        net = sum((line.quantity * line.unit_price for line in lines), Decimal(0))
        vat = (net * Decimal("0.25")).quantize(cent)
        issue = date(2025, 3, 1) + timedelta(days=n % 28)
        invoices.append(
            Invoice(
                id=f"inv-{n:07d}",
                account_id=ACCOUNT,
                customer_id=f"cust-{n % CUSTOMERS}",
                series="INV",
                number=n,
                status=InvoiceStatus.OPEN,
                currency="NOK",
                issue_date=issue,
                due_date=issue + timedelta(days=14),
                lines=lines,
                net_total=Money(net, "NOK"),
                vat_total=Money(vat, "NOK"),
                total=Money(net + vat, "NOK"),
                paid=Money("0.00", "NOK"),
                credited=Money("0.00", "NOK"),
                payment_reference=f"{n:010d}",
                memo="",
                created_at=created + timedelta(seconds=n),
            )
        )
    return invoices


def _setup(storage: SqlStorage) -> None:
    storage.migrate()
    with storage.transaction() as tx:
        tx.add_account(make_account(ACCOUNT))
        for c in range(CUSTOMERS):
            tx.add_customer(make_customer(f"cust-{c}", account_id=ACCOUNT))
        tx.commit()


def via_sqlstorage(
    storage: SqlStorage, invoices: Sequence[Invoice], batch: int
) -> float:
    """Seconds to store *invoices* through the protocol, *batch* per transaction."""
    _setup(storage)
    start = time.perf_counter()
    for offset in range(0, len(invoices), batch):
        chunk = invoices[offset : offset + batch]
        with storage.transaction() as tx:
            first = tx.allocate_invoice_numbers(ACCOUNT, "INV", count=len(chunk))
            assert first == chunk[0].number, (first, chunk[0].number)
            tx.add_invoices(chunk)
            tx.commit()
    return time.perf_counter() - start


def _utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(sep=" ", timespec="microseconds")


def encode_sqlite(invoice: Invoice) -> tuple[Any, ...]:
    """The invoice as the SQLite column values, written by hand."""
    return (
        invoice.id,
        invoice.account_id,
        invoice.customer_id,
        invoice.series,
        invoice.number,
        invoice.status.value,
        invoice.currency.code,
        invoice.issue_date.isoformat(),
        invoice.due_date.isoformat(),
        _dumps([line.to_dict() for line in invoice.lines]),
        str(invoice.net_total.amount),
        str(invoice.vat_total.amount),
        str(invoice.total.amount),
        str(invoice.paid.amount),
        str(invoice.credited.amount),
        invoice.payment_reference,
        invoice.template_id,
        invoice.occurrence_index,
        invoice.memo,
        _utc_text(invoice.created_at),
        _utc_text(invoice.paid_at),
    )


def encode_postgres(invoice: Invoice) -> tuple[Any, ...]:
    """The invoice as the PostgreSQL column values (the driver adapts types)."""
    return (
        invoice.id,
        invoice.account_id,
        invoice.customer_id,
        invoice.series,
        invoice.number,
        invoice.status.value,
        invoice.currency.code,
        invoice.issue_date,
        invoice.due_date,
        _dumps([line.to_dict() for line in invoice.lines]),
        invoice.net_total.amount,
        invoice.vat_total.amount,
        invoice.total.amount,
        invoice.paid.amount,
        invoice.credited.amount,
        invoice.payment_reference,
        invoice.template_id,
        invoice.occurrence_index,
        invoice.memo,
        invoice.created_at,
        invoice.paid_at,
    )


def raw_sqlite(path: Path, invoices: Sequence[Invoice], *, pre_encoded: bool) -> float:
    """Seconds for sqlite3 executemany of *invoices* in one transaction."""
    with SqlStorage.sqlite(path) as storage:
        _setup(storage)
    sql = (
        f"INSERT INTO invoices ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    rows = [encode_sqlite(i) for i in invoices] if pre_encoded else None
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows or map(encode_sqlite, invoices))
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def raw_postgres(
    server: PostgresServer,
    database: str,
    invoices: Sequence[Invoice],
    *,
    pre_encoded: bool,
) -> float:
    """Seconds for psycopg executemany of *invoices* in one transaction."""
    import psycopg

    with SqlStorage.from_url(server.url(database)) as storage:
        _setup(storage)
    sql = (
        f"INSERT INTO invoices ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    rows = [encode_postgres(i) for i in invoices] if pre_encoded else None
    with psycopg.connect(server.conninfo(database)) as conn:
        start = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows or [encode_postgres(i) for i in invoices])
        conn.commit()
        return time.perf_counter() - start


def _count(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sqlalchemy.select(sqlalchemy.func.count()).select_from(
                schema.invoices
            )
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _best(runs: int, measure: Callable[[int], float]) -> float:
    return min(measure(run) for run in range(runs))


def _report(name: str, n: int, ours: float, ceiling: float, bare: float) -> float:
    ratio = ceiling / ours
    rows = [
        ("SqlStorage (batches, protocol)", ours),
        ("raw executemany (the ceiling)", ceiling),
        ("raw, rows pre-encoded", bare),
    ]
    print(name)
    for label, seconds in rows:
        print(f"  {label:<31}: {seconds:7.2f} s  {n / seconds:9,.0f} invoices/s")
    print(f"  {'SqlStorage / ceiling':<31}: {ratio:7.2f}")
    print(f"  {'SqlStorage / pre-encoded rows':<31}: {bare / ours:7.2f}")
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if SqlStorage misses half the ceiling."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    n = args.invoices

    print(
        f"Python {platform.python_version()} on {platform.machine()}; "
        f"SQLAlchemy {sqlalchemy.__version__}; SQLite {sqlite3.sqlite_version}"
    )
    started = time.perf_counter()
    invoices = make_invoices(n, args.seed)
    print(
        f"built {n:,} Invoice records of 3 lines in "
        f"{time.perf_counter() - started:.1f} s (not timed); batch {args.batch:,}"
    )

    with tempfile.TemporaryDirectory(prefix="recurbill-bench-") as tmp:
        root = Path(tmp)

        def sqlite_ours(run: int) -> float:
            path = root / f"ours-{run}.db"
            with SqlStorage.sqlite(path) as storage:
                seconds = via_sqlstorage(storage, invoices, args.batch)
            assert _count(f"sqlite:///{path}") == n
            return seconds

        ours = _best(args.repeat, sqlite_ours)
        ceiling = _best(
            args.repeat,
            lambda run: raw_sqlite(root / f"raw-{run}.db", invoices, pre_encoded=False),
        )
        bare = _best(
            args.repeat,
            lambda run: raw_sqlite(root / f"bare-{run}.db", invoices, pre_encoded=True),
        )
    sqlite_ratio = _report(f"SQLite, {n:,} invoices", n, ours, ceiling, bare)

    if not args.no_postgres:
        try:
            server = PostgresServer.start()
        except PostgresUnavailableError as exc:
            print(f"PostgreSQL skipped: {exc}")
        else:
            try:
                names = iter(range(1000))

                def fresh() -> str:
                    name = f"bench_{next(names)}"
                    server.execute(f"CREATE DATABASE {name}")
                    return name

                def pg_ours(run: int) -> float:
                    url = server.url(fresh())
                    with SqlStorage.from_url(url) as storage:
                        seconds = via_sqlstorage(storage, invoices, args.batch)
                    assert _count(url) == n
                    return seconds

                pg = _best(args.repeat, pg_ours)
                pg_ceiling = _best(
                    args.repeat,
                    lambda run: raw_postgres(
                        server, fresh(), invoices, pre_encoded=False
                    ),
                )
                pg_bare = _best(
                    args.repeat,
                    lambda run: raw_postgres(
                        server, fresh(), invoices, pre_encoded=True
                    ),
                )
                _report(
                    f"PostgreSQL (local, fsync=off), {n:,} invoices",
                    n,
                    pg,
                    pg_ceiling,
                    pg_bare,
                )
            finally:
                server.stop()

    if sqlite_ratio < MIN_RATIO:
        print(f"FAIL: SqlStorage reaches {sqlite_ratio:.2f} of the SQLite ceiling")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
