"""Benchmark sending many tasks: one ``kiq_many`` against a loop of ``kiq``, taskq only.

Sends N calls of a no-op ``async def`` task through the in-memory broker, both ways, each run
in a fresh subprocess (so one run's heap does not slow the next), and reports the time to send
(from the first call to the last handle, the tasks not run yet): wall clock and the process's
CPU time (the figure to trust on a shared machine), best of ``--repeats`` runs each. Then the
tasks are run and checked, untimed.

Run from the repository root, with taskq installed in the current interpreter:

    python bench/kiq_many.py                # 100,000 tasks, best of 3
    python bench/kiq_many.py --tasks 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

HOW = ("kiq loop", "kiq_many")


async def send(how: str, n: int) -> dict[str, float]:
    from taskq_inmemory import InMemoryBroker

    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task
    async def noop(n: int) -> int:
        return n

    async with broker:
        wall, cpu = time.perf_counter(), time.process_time()
        if how == "kiq_many":
            handles = await noop.kiq_many(noop.call(i) for i in range(n))
        else:
            handles = [await noop.kiq(i) for i in range(n)]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await broker.wait_all()
        last = await handles[-1].wait_result()
        if last.return_value != n - 1:
            raise RuntimeError(f"the last task returned {last.return_value!r}")
    return {"wall": wall, "cpu": cpu}


def measure(how: str, n: int) -> dict[str, float]:
    code = f"import asyncio, json, sys; sys.path.insert(0, {sys.path[0]!r}); "
    code += f"from kiq_many import send; print(json.dumps(asyncio.run(send({how!r}, {n}))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for how in HOW:  # interleaved: load on the machine hits both alike
            run = measure(how, args.tasks)
            kept = best.setdefault(how, run)
            best[how] = {key: min(kept[key], run[key]) for key in run}
    print(f"{args.tasks:,} tasks, time to send, best of {args.repeats} (in-memory broker)")
    print(f"{'':10} {'wall s':>8} {'cpu s':>8} {'tasks/s (cpu)':>14}")
    for how in HOW:
        wall, cpu = best[how]["wall"], best[how]["cpu"]
        print(f"{how:10} {wall:8.3f} {cpu:8.3f} {args.tasks / cpu:14,.0f}")
    loop, many = best["kiq loop"], best["kiq_many"]
    print(
        f"kiq_many / kiq loop: wall {loop['wall'] / many['wall']:.2f}x faster, "
        f"cpu {loop['cpu'] / many['cpu']:.2f}x faster"
    )


if __name__ == "__main__":
    main()
