"""Alembic for every service: one env.py here, each service's revisions in its own folder.

A service keeps its revisions in `services/<name>/migrations/`; its database (its schema on
PostgreSQL, or its SQLite file) has its own `alembic_version` table. Services upgrade to head
when they start. `vuonminh db revision <service> -m "..."` writes a new revision from the
difference between the models and the migrated schema.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData


def versions_dir(service: str) -> Path:
    return Path(str(resources.files(f"vuonminh.{service}").joinpath("migrations")))


def alembic_config(service: str, metadata: MetaData, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files(__package__)))
    config.set_main_option("version_locations", str(versions_dir(service)))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = metadata
    config.attributes["service"] = service
    return config


def upgrade_to_head(connection: Connection, *, service: str, metadata: MetaData) -> None:
    """Runs inside the caller's transaction (so an advisory lock there covers it)."""
    command.upgrade(alembic_config(service, metadata, connection), "head")


def write_revision(connection: Connection, *, service: str, metadata: MetaData, message: str) -> None:
    command.upgrade(alembic_config(service, metadata, connection), "head")
    # Numbered revisions (0001, 0002, ...) read better in a review than random hex.
    rev_id = f"{len(list(versions_dir(service).glob('[0-9]*.py'))) + 1:04d}"
    config = alembic_config(service, metadata, connection)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
