"""`mimicry serve`, `mimicry worker`, `mimicry service keys create` (alias `mimicry keys create`):
the guarded fine-tuning service."""

from __future__ import annotations

import argparse
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", type=Path, help="provider policy YAML (default: the embedded defaults)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: $MIMICRY_DATABASE_URL or SQLite under the home)")
    p.add_argument(
        "--home",
        type=Path,
        help="service home: store, work dirs, SQLite db (default: $MIMICRY_SERVICE_HOME or $MIMICRY_HOME/service)",
    )


def _add_keys(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_sub.add_parser("create", help="create an API key for an organisation (shown once)")
    create.add_argument("--org", required=True, help="organisation name (created on first use)")
    create.add_argument("--database-url", help="SQLAlchemy URL (default: $MIMICRY_DATABASE_URL or SQLite)")
    create.add_argument("--home", type=Path, help="service home (default: $MIMICRY_SERVICE_HOME)")
    create.set_defaults(handler=keys_create_handler)


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the OpenAI-compatible fine-tuning API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    _common(serve)
    serve.set_defaults(handler=serve_handler)

    worker = sub.add_parser("worker", help="run queued fine-tuning jobs, guarded by the policy")
    _common(worker)
    worker.add_argument("--id", help="worker id (default: host:pid)")
    worker.add_argument("--exit-when-idle", action="store_true", help="stop when no job is waiting")
    worker.set_defaults(handler=worker_handler)

    service = sub.add_parser("service", help="administer the fine-tuning service")
    actions = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    _add_keys(actions)
    review = actions.add_parser("review", help="release or reject the model of a held job")
    review.add_argument("job", help="the held job's id (ftjob-...)")
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--release", action="store_true", help="publish the model to its owner")
    verdict.add_argument("--reject", action="store_true", help="fail the job; the model is not published")
    _common(review)
    review.set_defaults(handler=review_handler)
    _add_keys(sub)


def _runtime(args: argparse.Namespace):
    from mimicry.service.policy import load_policy
    from mimicry.service.runtime import Runtime

    return Runtime.open(load_policy(getattr(args, "policy", None)), args.database_url, args.home)


def serve_handler(args: argparse.Namespace) -> int:
    import uvicorn

    from mimicry.console import info
    from mimicry.service.app import create_app

    rt = _runtime(args)
    info(f"database {rt.db.dialect} (schema v{rt.db.version}), store {rt.store.root}")
    uvicorn.run(create_app(rt), host=args.host, port=args.port, log_level="warning")
    return 0


def worker_handler(args: argparse.Namespace) -> int:
    from mimicry.console import info
    from mimicry.service.worker import Worker

    worker = Worker(_runtime(args), args.id)
    info(f"worker {worker.id} polling {worker.rt.db.dialect}")
    worker.run_forever(exit_when_idle=args.exit_when_idle)
    return 0


def keys_create_handler(args: argparse.Namespace) -> int:
    from mimicry.console import out
    from mimicry.service.auth import create_key

    rt = _runtime(args)
    key, org_id = create_key(rt.db, args.org)
    out.print(f"organisation {args.org} ({org_id})", highlight=False)
    out.print(key, highlight=False, markup=False)
    out.print("store this key now: it is shown once and kept only as a hash", highlight=False)
    return 0


def review_handler(args: argparse.Namespace) -> int:
    from mimicry.console import out
    from mimicry.service.worker import review

    result = review(_runtime(args), args.job, release=args.release)
    out.print(f"released {result}" if args.release else f"rejected {result}", highlight=False, markup=False)
    return 0
