"""Revision 0002 keeps the orders stored before it (the PostgreSQL run is in tests/integration)."""

from vuonminh.shared import db
from vuonminh.wiring.testing import check_orders_upgrade_keeps_stored_orders


async def test_upgrading_from_0001_keeps_stored_orders_on_sqlite(tmp_path):
    engine = db.sqlite_engine(tmp_path / "orders.sqlite3")
    try:
        await check_orders_upgrade_keeps_stored_orders(engine)
    finally:
        await engine.dispose()
