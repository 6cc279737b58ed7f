"""Service load: N concurrent clients upload, create jobs and poll them against `mimicry serve`, while
W queue workers claim the jobs; on SQLite and on a throwaway PostgreSQL cluster.

The server runs as its own process (the real `mimicry serve`), on 127.0.0.1 only, with a policy whose
rate limit is out of the way. Workers here claim through the real lease query and finish each job
at once (no training): this measures the API and the queue, not fine-tuning. Prints per database:
requests/s, p50/p95 latency per route, HTTP errors, jobs created, lost (never claimed) and
claimed more than once.
Run: python benchmarks/bench_service.py [--clients 8] [--jobs-per-client 5] [--polls 10] [--workers 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

MAIN = "import sys; from mimicry.cli import main; sys.exit(main())"
ROWS = "".join(
    json.dumps(
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
    )
    + "\n"
    for i in range(20)
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(database_url: str, args: argparse.Namespace, home: Path) -> dict:
    import httpx
    from sqlalchemy import update

    from mimicry.service.auth import create_key
    from mimicry.service.db import Job, now
    from mimicry.service.policy import Policy
    from mimicry.service.runtime import Runtime
    from mimicry.service.worker import claim

    policy = home / "policy.yaml"
    policy.write_text("limits:\n  requests_per_minute: 10000000\n")
    rt = Runtime.open(Policy(), database_url, home)
    keys = [create_key(rt.db, f"org{i}")[0] for i in range(args.clients)]
    port = free_port()
    env = dict(os.environ, MIMICRY_SERVICE_HOME=str(home))
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            MAIN,
            "serve",
            "--port",
            str(port),
            "--policy",
            str(policy),
            "--database-url",
            database_url,
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")

        latencies: dict[str, list[float]] = defaultdict(list)
        errors: Counter[str] = Counter()
        created: list[str] = []
        claims: Counter[str] = Counter()
        lock = threading.Lock()
        clients_done = threading.Event()

        def call(client: httpx.Client, route: str, method: str, path: str, **kw) -> dict | None:
            started = time.perf_counter()
            try:
                r = client.request(method, path, **kw)
            except httpx.HTTPError as err:
                with lock:
                    errors[f"{route}: {type(err).__name__}"] += 1
                return None
            with lock:
                latencies[route].append(time.perf_counter() - started)
                if r.status_code >= 400:
                    errors[f"{route}: HTTP {r.status_code}"] += 1
            return r.json() if r.status_code < 400 else None

        def client_loop(key: str) -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
                for _ in range(args.jobs_per_client):
                    f = call(
                        c,
                        "POST /v1/files",
                        "POST",
                        "/v1/files",
                        data={"purpose": "fine-tune"},
                        files={"file": ("d.jsonl", ROWS)},
                    )
                    if f is None:
                        continue
                    job = call(
                        c,
                        "POST /v1/fine_tuning/jobs",
                        "POST",
                        "/v1/fine_tuning/jobs",
                        json={"model": "smollm2-135m", "training_file": f["id"]},
                    )
                    if job is None:
                        continue
                    with lock:
                        created.append(job["id"])
                    for _ in range(args.polls):
                        call(c, "GET /v1/fine_tuning/jobs/{id}", "GET", f"/v1/fine_tuning/jobs/{job['id']}")
                        call(c, "GET …/events", "GET", f"/v1/fine_tuning/jobs/{job['id']}/events")

        def worker_loop(name: str) -> None:
            while True:
                job = claim(rt, name)
                if job is None:
                    if clients_done.is_set():
                        return
                    time.sleep(0.05)
                    continue
                with lock:
                    claims[job.id] += 1
                with rt.db.session.begin() as s:
                    s.execute(
                        update(Job)
                        .where(Job.id == job.id, Job.lease_owner == name)
                        .values(status="succeeded", finished_at=now(), lease_owner=None)
                    )

        workers = [threading.Thread(target=worker_loop, args=(f"bench-w{i}",)) for i in range(args.workers)]
        clients = [threading.Thread(target=client_loop, args=(k,)) for k in keys]
        started = time.perf_counter()
        for t in workers + clients:
            t.start()
        for t in clients:
            t.join()
        elapsed = time.perf_counter() - started
        clients_done.set()
        for t in workers:
            t.join()
        with rt.db.session() as s:
            statuses = Counter(s.get(Job, j).status for j in created)
        requests = sum(len(v) for v in latencies.values())
        return {
            "requests": requests,
            "seconds": elapsed,
            "latencies": latencies,
            "errors": errors,
            "created": len(created),
            "lost": sum(1 for j in created if claims[j] == 0),
            "duplicated": sum(1 for j in created if claims[j] > 1),
            "statuses": statuses,
        }
    finally:
        server.terminate()
        server.wait(30)


def report(name: str, r: dict) -> None:
    print(
        f"\n{name}: {r['requests']} requests in {r['seconds']:.1f} s = {r['requests'] / r['seconds']:.1f} req/s; "
        f"HTTP errors {sum(r['errors'].values())}; jobs created {r['created']}, lost {r['lost']}, "
        f"claimed twice {r['duplicated']}; final statuses {dict(r['statuses'])}"
    )
    print(f"  {'route':<34} {'n':>5} {'p50 ms':>8} {'p95 ms':>8}")
    for route, values in r["latencies"].items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"  {route:<34} {len(values):>5} {statistics.median(values) * 1000:>8.1f} {p95 * 1000:>8.1f}")
    for what, n in r["errors"].items():
        print(f"  error {what}: {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs-per-client", type=int, default=5)
    parser.add_argument("--polls", type=int, default=10, help="retrieve + events polls per job")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(
        f"{args.clients} clients x {args.jobs_per_client} jobs (upload, create, {args.polls} x retrieve+events), "
        f"{args.workers} claiming workers; CPU cores: {os.cpu_count()}"
    )
    for name in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            home = Path(tmp)
            if name == "sqlite":
                url = f"sqlite:///{home / 'service.db'}"
            else:
                from mimicry.service.pgcluster import temporary_cluster

                url = stack.enter_context(temporary_cluster())
            report(name, run(url, args, home))


if __name__ == "__main__":
    main()
