"""
``receiver db upgrade``: bring the call-record database to the latest schema by hand.

Receivers, webhook listeners and workers apply missing migrations when they
start; this runs them ahead of a deployment (or checks that there are none
left) and says which were applied.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from receiver.cli._options import CONFIG_HELP, describe
from receiver.config import Settings

EXAMPLES = """\
examples:
  receiver db upgrade                                   # the database from the settings
  receiver db upgrade --database postgresql://user@db/receiver
"""


def add_parser(commands: Any) -> None:
    db = commands.add_parser(
        "db",
        help="manage the call-record database",
        description=describe(
            "Manage the call-record database. upgrade applies the schema migrations it lacks (receivers, "
            "listeners and workers also apply them when they start) and says which."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION", title="actions")
    upgrade = actions.add_parser("upgrade", help="apply the schema migrations the database lacks")
    upgrade.add_argument("--config", help=CONFIG_HELP)
    upgrade.add_argument("--database", help="a SQLite file or postgresql:// URL (default: from settings)")
    upgrade.set_defaults(run=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    from receiver.calls.migrations import LATEST, MIGRATIONS, current_version, migrate
    from receiver.calls.store import connect_database, is_postgres
    from receiver.calls.webhooks import StoreUnavailable
    from receiver.security.auth import redact_url

    database = args.database or Settings.load(args.config).database
    where = redact_url(database)
    try:
        # Opening without upgrading: the migrations run below, reported one by one.
        conn = connect_database(database, read_only=False, upgrade=False)
    except StoreUnavailable as exc:
        print(f"receiver: {exc.message}", file=sys.stderr)
        return 1
    try:
        before = current_version(conn)
        applied = migrate(conn, "postgresql" if is_postgres(database) else "sqlite")
    except Exception as exc:  # the engine's error, whichever engine: one clear line
        print(f"receiver: migrating {where} failed: {str(exc).strip()}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    names = {m.version: m.name for m in MIGRATIONS}
    for version in applied:
        print(f"applied {version}: {names[version]}")
    print(f"{where}: schema version {max([before, *applied])} (latest {LATEST})" + ("" if applied else ", up to date"))
    return 0
