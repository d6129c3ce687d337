"""List and retry Meta lead-ad submissions (docs/lead-ads.md), straight on the
leads service's database, so it works while the service is down too:

    python -m leads.lead_ads_cli list [--status failed] [--limit 50] [--json]
    python -m leads.lead_ads_cli retry (--all | LEADGEN_ID ...)

`retry` makes failed submissions pending and due now; a running leads
service fetches them within a second. Reads DATABASE_URL and CRM_DB_PREFIX.
"""
import argparse
import json
import sys

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from crm_common.config import Settings
from crm_common.db import UnitOfWork
from leads import lead_ads

COLUMNS = ("leadgenId", "status", "attempts", "receivedAt", "leadId", "lastError")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m leads.lead_ads_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="submissions, newest first")
    listing.add_argument("--status", choices=("pending", "done", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    retry = commands.add_parser("retry", help="make failed submissions pending again")
    retry.add_argument("leadgen_ids", nargs="*")
    retry.add_argument("--all", action="store_true", help="every failed submission")
    args = parser.parse_args(argv)
    if args.command == "retry" and not (args.all or args.leadgen_ids):
        parser.error("retry needs leadgen ids or --all")

    engine = sa.create_engine(Settings.from_env().database_dsn("leads"))
    try:
        with UnitOfWork(sessionmaker(engine)) as tx:
            if args.command == "list":
                found = lead_ads.list_submissions(tx, args.status, args.limit)
                show(found["items"], found["total"], args.json)
            else:
                ids = lead_ads.retry(tx, None if args.all else args.leadgen_ids)
                print("%d submission(s) made pending: %s" % (len(ids), " ".join(ids) or "-"))
    finally:
        engine.dispose()
    return 0


def show(items, total, as_json):
    if as_json:
        for item in items:
            print(json.dumps(item))
        return
    rows = [[str(item[c] if item[c] is not None else "-") for c in COLUMNS] for item in items]
    widths = [max([len(c)] + [len(r[i][:60]) for r in rows]) for i, c in enumerate(COLUMNS)]
    for row in [list(COLUMNS)] + rows:
        print("  ".join(cell[:60].ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("(%d of %d)" % (len(items), total))


if __name__ == "__main__":
    sys.exit(main())
