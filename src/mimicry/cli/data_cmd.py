"""`mimicry data check`: verify the bundle and list its datasets."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect the public data bundle")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_sub.add_parser(
        "check", help="verify every file against SHA256SUMS; list rows and licences (exit 3 if any fails)"
    )
    check.add_argument("--json", action="store_true", help="print each file's status as JSON")
    check.set_defaults(handler=check_handler)


def check_handler(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from mimicry.console import err, out
    from mimicry.data.root import data_root

    root = data_root()
    results = root.check()
    manifest = root.manifest()
    bad = [r for r in results if r.status != "ok"]
    if args.json:
        import json

        out.print_json(json.dumps({"root": str(root.path), "files": [vars(r) for r in results], "failed": len(bad)}))
        return 3 if bad else 0
    table = Table(title=escape(f"data root {root.path}"))
    for col in ("file", "status", "rows", "licence"):
        table.add_column(col, overflow="fold")
    for r in results:
        entry = manifest.get(r.path)
        style = "green" if r.status == "ok" else "bold red"
        table.add_row(
            escape(r.path),
            f"[{style}]{r.status}[/{style}]",
            str(entry.rows) if entry else "",
            escape(entry.license) if entry else "",
        )
    out.print(table)
    for r in bad:
        err.print(f"[bold red]{r.status}:[/bold red] {escape(str(root.path / r.path))}")
    if bad:
        err.print(f"{len(bad)} of {len(results)} files failed the check")
        return 3
    out.print(f"all {len(results)} files verified")
    return 0
