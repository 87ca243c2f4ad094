"""`vuonminh keys create|list|revoke` and `vuonminh tokens create|list|revoke|keygen`.

A credential record is written to every service's database (its schema on the PostgreSQL server
when DATABASE_URL is set, else the embedded SQLite files in the data dir): each service checks
callers on its own. Writes replace by id, so a command that failed half-way is simply run again.
A new key or token is printed once, on standard output (explanations go to standard error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.shared import db
from vuonminh.shared.auth import (
    SCOPE_OF_ROLE,
    Caller,
    CredentialRecord,
    Role,
    SigningKey,
    create_api_key,
    credential_id_of,
    issue_token,
    list_credentials,
    revoke_credential,
    signing_key_for,
    write_credential,
)
from vuonminh.shared.runtime import SERVICE_NAMES, load_service
from vuonminh.shared.settings import Settings, get_settings
from vuonminh.shared.timeutil import utc_now


def add_access_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="embedded mode: where the services' SQLite files live")
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--role", required=True, choices=[role.value for role in Role])
    scope.add_argument("--seller", action="append", default=[], help="a seller it acts for (repeat for several)")
    scope.add_argument("--shop", action="append", default=[], help="a shop it integrates (platform role)")
    scope.add_argument("--ward", action="append", default=[], help="a commune's 2025 ward code (commune official)")
    scope.add_argument("--province", action="append", default=[], help="a province code (province official)")
    scope.add_argument("--carrier", help="the carrier it is (carrier role), e.g. ghn")
    scope.add_argument("--subject", help="who it is, for audit trails (default: role and scope)")
    scope.add_argument("--label", help="what it is for, shown by list")

    keys = commands.add_parser("keys", help="API keys for machines: create (shown once), list, revoke")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common, scope], help="a new API key, printed once")
    create.add_argument("--expires-days", type=float, help="the key stops working after this many days")
    actions.add_parser("list", parents=[common], help="the API keys (never their secrets)")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key (by its id or the whole key)")
    revoke.add_argument("key")
    keys.set_defaults(func=cmd_keys)

    tokens = commands.add_parser("tokens", help="signed bearer tokens: create, list, revoke, keygen")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[common, scope], help="a new token, printed once")
    create.add_argument("--ttl-hours", type=float, default=12.0, help="how long it is valid (default 12)")
    actions.add_parser("list", parents=[common], help="the tokens issued here and the revoked ones")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token by its id (jti)")
    revoke.add_argument("token_id")
    keygen = actions.add_parser("keygen", help="a new token signing key (for VUONMINH_TOKEN_SIGNING_KEY)")
    keygen.add_argument("--kid", help="its key id (default: date + random)")
    tokens.set_defaults(func=cmd_tokens)


def cmd_keys(args: argparse.Namespace) -> None:
    _run(args, KEY_ACTIONS)


def cmd_tokens(args: argparse.Namespace) -> None:
    if args.action == "keygen":
        key = SigningKey.generate(args.kid)
        print("Token signing key (VUONMINH_TOKEN_SIGNING_KEY, keep it secret):", file=sys.stderr)
        print(str(key))
        print("Its public key, for every service's VUONMINH_TOKEN_VERIFY_KEYS:", file=sys.stderr)
        print(key.public_text, flush=True)
        return
    _run(args, TOKEN_ACTIONS)


def _run(args: argparse.Namespace, actions: dict[str, Any]) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = get_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    try:
        asyncio.run(_with_engines(args, settings, data_dir, actions[args.action]))
    except ValueError as error:
        raise SystemExit(f"vuonminh {args.command} {args.action}: {error}") from None


def service_engines(settings: Settings, data_dir: Path) -> list[AsyncEngine]:
    if settings.database_url:
        return [db.postgres_engine(settings.database_url, schema=name) for name in SERVICE_NAMES]
    return [db.sqlite_engine(data_dir / f"{name}.sqlite3") for name in SERVICE_NAMES]


async def _with_engines(args: argparse.Namespace, settings: Settings, data_dir: Path, action: Any) -> None:
    engines = service_engines(settings, data_dir)
    try:
        for name, engine in zip(SERVICE_NAMES, engines, strict=True):
            await db.migrate(engine, load_service(name).metadata, service=name)
        await action(engines, args, settings, data_dir)
    finally:
        for engine in engines:
            await engine.dispose()


# The flag that gives each role's scope.
_SCOPE_FLAGS = {"seller_ids": "--seller", "shop_ids": "--shop", "ward_codes": "--ward"} | {
    "province_codes": "--province",
    "carrier": "--carrier",
}


def _caller(args: argparse.Namespace) -> Caller:
    role = Role(args.role)
    scope = {
        "seller_ids": frozenset(args.seller),
        "shop_ids": frozenset(args.shop),
        "ward_codes": frozenset(args.ward),
        "province_codes": frozenset(args.province),
        "carrier": args.carrier,
    }
    needed = SCOPE_OF_ROLE.get(role)
    if needed and not scope[needed]:
        raise ValueError(f"role {role.value} needs {_SCOPE_FLAGS[needed]}")
    # The default subject names the role and what it acts for, e.g. seller:co-ba-hong.
    value = scope[needed] if needed else None
    shown = value if isinstance(value, str) else ",".join(sorted(value or ()))
    subject = args.subject or (f"{role.value}:{shown}" if shown else role.value)
    return Caller(role=role, subject=subject, **scope)


def _scope_text(row: dict) -> str:
    return json.dumps(row["scope"], ensure_ascii=False, sort_keys=True) if row["scope"] else "-"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


async def _key_create(engines: list[AsyncEngine], args: argparse.Namespace, *_: Any) -> None:
    caller = _caller(args)
    expires_at = utc_now() + timedelta(days=args.expires_days) if args.expires_days else None
    key = await create_api_key(engines, caller, label=args.label, expires_at=expires_at)
    print(f"API key for {caller.subject} ({caller.role.value}), shown this once:", file=sys.stderr)
    print(key, flush=True)
    print("Send it as 'Authorization: Bearer <key>'.", file=sys.stderr)


async def _list(engines: list[AsyncEngine], kind: str) -> None:
    rows = [row for row in await list_credentials(engines[0]) if row["kind"] == kind]
    if not rows:
        print(f"No {kind.replace('_', ' ')}s recorded.", file=sys.stderr)
        return
    table = [("ID", "ROLE", "SUBJECT", "SCOPE", "LABEL", "CREATED", "EXPIRES", "REVOKED")]
    for row in rows:
        table.append(
            (
                row["id"],
                row["role"],
                row["subject"],
                _scope_text(row),
                row["label"] or "-",
                _when(row["created_at"]),
                _when(row["expires_at"]),
                _when(row["revoked_at"]),
            )
        )
    _table(table)


async def _key_list(engines: list[AsyncEngine], *_: Any) -> None:
    await _list(engines, "api_key")


async def _revoke(engines: list[AsyncEngine], credential_id: str, caller: Caller | None) -> None:
    found = [await revoke_credential(engine, credential_id, caller=caller) for engine in engines]
    if not any(found):
        raise ValueError(f"no key or token {credential_id!r} is recorded")
    print(f"{credential_id} revoked; the services refuse it within VUONMINH_CREDENTIALS_REFRESH_S.", file=sys.stderr)


async def _key_revoke(engines: list[AsyncEngine], args: argparse.Namespace, *_: Any) -> None:
    await _revoke(engines, credential_id_of(args.key), None)


async def _token_create(
    engines: list[AsyncEngine], args: argparse.Namespace, settings: Settings, data_dir: Path
) -> None:
    if not settings.token_signing_key and settings.database_url:
        raise ValueError("VUONMINH_TOKEN_SIGNING_KEY is not set (`vuonminh tokens keygen` makes one)")
    signing = SigningKey.parse(signing_key_for(settings, data_dir))
    caller = _caller(args)
    ttl = timedelta(hours=args.ttl_hours)
    now = utc_now()
    token_id = now.strftime("t%Y%m%d-") + secrets.token_hex(6)
    record = CredentialRecord(token_id, "token", caller, label=args.label, created_at=now, expires_at=now + ttl)
    for engine in engines:
        await write_credential(engine, record)
    token = issue_token(signing, caller, ttl=ttl, token_id=record.id, now=now)
    print(f"Token {record.id} for {caller.subject} ({caller.role.value}), valid {args.ttl_hours:g} h:", file=sys.stderr)
    print(token, flush=True)


async def _token_list(engines: list[AsyncEngine], *_: Any) -> None:
    await _list(engines, "token")


async def _token_revoke(engines: list[AsyncEngine], args: argparse.Namespace, *_: Any) -> None:
    # A token issued elsewhere (not recorded) is still revoked by its id.
    await _revoke(engines, args.token_id, Caller(Role.operator, "unrecorded token"))


KEY_ACTIONS = {"create": _key_create, "list": _key_list, "revoke": _key_revoke}
TOKEN_ACTIONS = {"create": _token_create, "list": _token_list, "revoke": _token_revoke}
