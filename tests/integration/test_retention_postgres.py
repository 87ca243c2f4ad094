"""The janitor on PostgreSQL: old published outbox rows and dedupe rows go, young and unpublished
ones stay, and one replica of a service prunes at a time."""

from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import insert

from vuonminh.shared import db
from vuonminh.shared.retention import Janitor, ServiceTables
from vuonminh.shared.runtime import load_service
from vuonminh.shared.settings import Settings
from vuonminh.shared.timeutil import utc_now
from vuonminh.wiring.testing import asyncpg_dsn, count_rows

pytestmark = pytest.mark.integration


async def test_the_janitor_trims_outbox_and_dedupe_rows_on_postgres(database_url):
    spec = load_service("logistics")
    engine = db.postgres_engine(database_url, schema="logistics")
    await db.migrate(engine, spec.metadata, service="logistics")
    now = utc_now()
    outbox_rows = [
        {"published_at": now - timedelta(days=8)},  # published long ago: goes
        {"published_at": now - timedelta(days=6)},  # published within the retention: stays
        {"published_at": None},  # never published, however old: stays
    ]
    async with engine.begin() as conn:
        await conn.execute(
            insert(spec.outbox),
            [
                {
                    "event_id": f"e-{n}",
                    "event_type": "t",
                    "topic": "logistics.shipments",
                    "message_key": "k",
                    "headers": [],
                    "payload": "{}",
                    "created_at": now - timedelta(days=9),
                    **row,
                }
                for n, row in enumerate(outbox_rows)
            ],
        )
        await conn.execute(
            insert(spec.processed_events),
            [
                {"consumer_group": "vuonminh.logistics", "event_id": f"p-{n}", "event_type": "t", "processed_at": at}
                for n, at in enumerate([now - timedelta(days=46), now - timedelta(days=44)])
            ],
        )
    janitor = Janitor(
        services=[ServiceTables("logistics", engine, spec.outbox, spec.processed_events)],
        settings=Settings(outbox_retention_days=7, dedupe_window_days=45),
    )

    # Another replica holds the service's janitor lock: this one leaves the rows alone.
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    await other.execute("SELECT pg_advisory_lock(hashtext('vuonminh-janitor-logistics'))")
    held_back = await janitor.prune_once()
    await other.close()
    report = await janitor.prune_once()

    assert held_back.outbox_rows == {"logistics": 0} and held_back.processed_events_rows == {"logistics": 0}
    assert report.outbox_rows == {"logistics": 1} and report.processed_events_rows == {"logistics": 1}
    assert await count_rows(database_url, "SELECT count(*) FROM logistics.outbox WHERE event_id = 'e-0'") == 0
    assert await count_rows(database_url, "SELECT count(*) FROM logistics.outbox") == 2
    assert await count_rows(database_url, "SELECT count(*) FROM logistics.processed_events WHERE event_id = 'p-1'") == 1
    assert await count_rows(database_url, "SELECT count(*) FROM logistics.processed_events") == 1
    await engine.dispose()
