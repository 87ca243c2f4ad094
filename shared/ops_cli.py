"""Operator commands: `vuonminh topics create|describe` and `vuonminh dlq list|show|replay`.

docs/operations.md says when to use which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vuonminh.shared.dlq import (
    DeadLetter,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetterLog,
    DeadLetters,
    KafkaDeadLetterLog,
    LocalDeadLetterLog,
    Progress,
    parse_group,
    parse_time,
    parse_topic,
)
from vuonminh.shared.events import ALL_TOPICS
from vuonminh.shared.settings import get_settings
from vuonminh.shared.transport.kafka_topics import KafkaTopics, TopicPolicy, TopicPolicyError, TopicState


def register(commands: argparse._SubParsersAction) -> None:
    topics = commands.add_parser("topics", help="Kafka topics: create them as the settings say, or compare")
    topic_actions = topics.add_subparsers(dest="topics_action", required=True)
    create = topic_actions.add_parser(
        "create", help="create the missing topics (the admin step when VUONMINH_TOPIC_AUTO_CREATE=false)"
    )
    create.set_defaults(func=cmd_topics_create)
    describe = topic_actions.add_parser("describe", help="each topic's partitions, replicas and retention")
    describe.add_argument("--check", action="store_true", help="exit 1 when a topic is missing or differs")
    describe.set_defaults(func=cmd_topics_describe)

    dlq = commands.add_parser("dlq", help="dead letters: list, show and replay parked records")
    dlq_actions = dlq.add_subparsers(dest="dlq_action", required=True)
    listing = dlq_actions.add_parser("list", help="the parked records, oldest first")
    _source_options(listing)
    _filter_options(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_dlq_list)

    show = dlq_actions.add_parser("show", help="everything about parked records: error, headers, payload")
    _source_options(show)
    show.add_argument("refs", nargs="*", metavar="REF", help="<topic>.dlq:<partition>:<offset> from `dlq list`")
    show.add_argument("--event-id", help="the records of this CloudEvents id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_dlq_show)

    replay = dlq_actions.add_parser("replay", help="send parked records back to their topics")
    _source_options(replay)
    replay.add_argument("refs", nargs="*", metavar="REF", help="<topic>.dlq:<partition>:<offset> from `dlq list`")
    _filter_options(replay)
    replay.add_argument("--all", action="store_true", help="every parked record (no REF or filter needed)")
    replay.add_argument("--force", action="store_true", help="replay records that were replayed before, again")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    replay.set_defaults(func=cmd_dlq_replay)


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="the embedded platform's data dir (its local log); default: Kafka when KAFKA_BOOTSTRAP_SERVERS "
        "is set, else VUONMINH_DATA_DIR",
    )


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", action="append", default=[], help="original topic (repeatable)")
    parser.add_argument("--group", help="consumer group that parked it (a service name will do)")
    parser.add_argument("--since", help="parked at or after: ISO time with offset, or a duration ago (2h, 7d)")
    parser.add_argument("--until", help="parked before: ISO time with offset, or a duration ago")
    parser.add_argument("--event-id", help="CloudEvents id")


def _filter(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        topics=tuple(parse_topic(t) for t in args.topic),
        group=parse_group(args.group) if args.group else None,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        event_id=args.event_id,
    )


def _dead_letter_log(args: argparse.Namespace) -> DeadLetterLog:
    settings = get_settings()
    if args.data_dir:
        return LocalDeadLetterLog(Path(args.data_dir) / "log.sqlite3")
    if settings.kafka_bootstrap_servers:
        return KafkaDeadLetterLog(settings.kafka_bootstrap_servers, namespace=settings.kafka_namespace)
    return LocalDeadLetterLog(settings.data_dir / "log.sqlite3")


_open_bars: list[tqdm] = []


def _progress(description: str) -> Callable[[int], Progress]:
    """A progress bar on stderr when it is a terminal (tqdm leaves pipes and logs alone)."""

    def start(total: int) -> Progress:
        bar = tqdm(total=total, desc=description, unit="record", file=sys.stderr, disable=None, leave=False)
        _open_bars.append(bar)
        return bar.update

    return start


def _run(coroutine_factory: Callable[[DeadLetters], Any], args: argparse.Namespace) -> Any:
    log = _dead_letter_log(args)

    async def run() -> Any:
        await log.open()
        try:
            return await coroutine_factory(DeadLetters(log))
        finally:
            while _open_bars:
                _open_bars.pop().close()
            await log.close()

    print(f"dead letters in {log.description}", file=sys.stderr)
    try:
        return asyncio.run(run())
    except DeadLetterError as error:
        raise SystemExit(f"vuonminh dlq: {error}") from error


# -- dlq --------------------------------------------------------------------------------------------
def cmd_dlq_list(args: argparse.Namespace) -> None:
    try:
        wanted = _filter(args)
    except DeadLetterError as error:
        raise SystemExit(f"vuonminh dlq: {error}") from error
    dead_letters = _run(lambda box: box.load(wanted.topics, progress=_progress("reading")), args)
    selected = [d for d in dead_letters if wanted.matches(d)]
    if args.json:
        for dead_letter in selected:
            print(json.dumps(dead_letter.summary(), ensure_ascii=False))
        return
    if not selected:
        print("no dead letters" + ("" if wanted.is_empty() else " match"))
        return
    rows = [
        (
            d.ref,
            d.failed_at.strftime("%Y-%m-%d %H:%M:%S%z"),
            d.group or "-",
            d.event_type or "-",
            d.event_id or "-",
            f"replayed {d.replays[-1].at[:19]}" if d.replays else "parked",
            _one_line(d.error or "-", 70),
        )
        for d in selected
    ]
    header = ("REF", "PARKED AT", "GROUP", "EVENT TYPE", "EVENT ID", "STATUS", "ERROR")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    parked = sum(1 for d in selected if not d.replays)
    print(f"{len(selected)} dead letters, {parked} never replayed", file=sys.stderr)


def cmd_dlq_show(args: argparse.Namespace) -> None:
    if not args.refs and not args.event_id:
        raise SystemExit("vuonminh dlq show: name records (REF as `dlq list` prints them) or --event-id")

    async def find(box: DeadLetters) -> list[DeadLetter]:
        found = await box.find(args.refs) if args.refs else []
        if args.event_id:
            found += [d for d in await box.load() if d.event_id == args.event_id]
            if not found:
                raise DeadLetterError(f"no dead letter carries event id {args.event_id}")
        return found

    for dead_letter in _run(find, args):
        if args.json:
            print(json.dumps(_details(dead_letter), ensure_ascii=False))
            continue
        details = _details(dead_letter)
        payload = details.pop("value")
        headers = details.pop("headers")
        for name, value in details.items():
            print(f"{name + ':':<20} {value}")
        print("headers:")
        for name, value in headers:
            print(f"  {name}: {value}")
        print("value:")
        print(json.dumps(payload, ensure_ascii=False, indent=2) if not isinstance(payload, str) else payload)
        print()


def _details(dead_letter: DeadLetter) -> dict[str, Any]:
    value = (dead_letter.value or b"").decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return {
        **dead_letter.summary(),
        "key": (dead_letter.key or b"").decode("utf-8", errors="replace"),
        "headers": [[name, v.decode("utf-8", errors="replace")] for name, v in dead_letter.headers],
        "value": parsed,
    }


def cmd_dlq_replay(args: argparse.Namespace) -> None:
    try:
        wanted = _filter(args)
    except DeadLetterError as error:
        raise SystemExit(f"vuonminh dlq: {error}") from error
    if not args.refs and wanted.is_empty() and not args.all:
        raise SystemExit(
            "vuonminh dlq replay: name records (REF as `dlq list` prints them), or filter them "
            "(--topic, --group, --since, --until, --event-id), or say --all"
        )

    async def replay(box: DeadLetters):  # noqa: ANN202
        if args.refs:
            chosen = [d for d in await box.find(args.refs) if wanted.matches(d)]
        else:
            chosen = [d for d in await box.load(wanted.topics, progress=_progress("reading")) if wanted.matches(d)]
        if args.dry_run:
            return chosen, None
        with tqdm(total=len(chosen), desc="replaying", unit="record", file=sys.stderr, disable=None) as bar:
            return chosen, await box.replay(chosen, force=args.force, progress=bar.update)

    chosen, result = _run(replay, args)
    if result is None:
        for dead_letter in chosen:
            state = " (replayed before)" if dead_letter.replays else ""
            print(f"would replay {dead_letter.ref} -> {dead_letter.original_topic}{state}")
        print(f"{len(chosen)} dead letters would be replayed (dry run: nothing sent)")
        return
    for dead_letter in result.replayed:
        print(f"replayed {dead_letter.ref} -> {dead_letter.original_topic} (event {dead_letter.event_id})")
    for dead_letter in result.already_replayed:
        print(
            f"skipped {dead_letter.ref}: already replayed at {dead_letter.replays[-1].at} "
            "(--force sends it again; consumers skip events they have applied)"
        )
    by_topic = ", ".join(f"{topic}: {n}" for topic, n in sorted(result.by_topic().items())) or "none"
    print(f"{len(result.replayed)} replayed ({by_topic}), {len(result.already_replayed)} skipped as already replayed")


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- topics -----------------------------------------------------------------------------------------
def _topics() -> KafkaTopics:
    settings = get_settings()
    if not settings.kafka_bootstrap_servers:
        raise SystemExit('vuonminh topics: set KAFKA_BOOTSTRAP_SERVERS (eval "$(scripts/dev-services env)")')
    return KafkaTopics(
        settings.kafka_bootstrap_servers,
        namespace=settings.kafka_namespace,
        policy=TopicPolicy.from_settings(settings),
    )


def cmd_topics_create(_args: argparse.Namespace) -> None:
    topics = _topics()
    try:
        created, existing = asyncio.run(topics.create(ALL_TOPICS))
    except TopicPolicyError as error:
        raise SystemExit(f"vuonminh topics create: {error}") from error
    for name in created:
        print(f"created {topics.namespace}{name}: {_wanted(topics.policy, name)}")
    for state in existing:
        drift = state.drift(topics.policy)
        print(f"exists  {topics.namespace}{state.name}" + (f": differs: {'; '.join(drift)}" if drift else ""))


def cmd_topics_describe(args: argparse.Namespace) -> None:
    topics = _topics()
    states = asyncio.run(topics.describe(ALL_TOPICS))
    header = ("TOPIC", "PARTITIONS", "REPLICAS", "MIN.INSYNC", "RETENTION", "STATE")
    rows = [header] + [_describe_row(topics, state) for state in states]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if args.check and any(state.drift(topics.policy) for state in states):
        raise SystemExit(1)


def _describe_row(topics: KafkaTopics, state: TopicState) -> tuple[str, ...]:
    name = topics.namespace + state.name
    if not state.exists:
        return (name, "-", "-", "-", "-", "missing")
    retention = state.configs.get("retention.ms")
    drift = state.drift(topics.policy)
    return (
        name,
        str(state.partitions),
        str(state.replication_factor),
        state.configs.get("min.insync.replicas", "?"),
        _days(retention),
        "ok" if not drift else "differs: " + "; ".join(drift),
    )


def _wanted(policy: TopicPolicy, topic: str) -> str:
    configs = policy.configs_for(topic)
    return (
        f"{policy.partitions} partitions, {policy.replication_factor} replicas, "
        f"min.insync.replicas={configs['min.insync.replicas']}, retention {_days(configs['retention.ms'])}"
    )


def _days(retention_ms: str | None) -> str:
    if retention_ms is None:
        return "?"
    if retention_ms == "-1":
        return "forever"
    return f"{int(retention_ms) / 86_400_000:g} d"
