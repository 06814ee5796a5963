"""Rounds of a randomized model check: seeds, the time budget, and failures that name the seed.

A round is a program of random steps drawn from ``random.Random(seed)``: the same seed draws
the same steps again (``--taskq-model-seed``), though what a step picks among the messages or
results at hand can depend on timing. A check runs rounds with consecutive seeds, from a random
one, until its budget is spent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

import pytest

from taskq_conformance.settings import Settings


class Violation(Exception):
    """What an implementation did that the model of its capabilities does not allow."""


class Round:
    """One round's seed, random draws and log of steps, for the failure message."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.steps: list[str] = []
        self.started = time.monotonic()

    def log(self, step: str) -> None:
        """Record a step (with the time since the round started)."""
        self.steps.append(f"{time.monotonic() - self.started:6.2f} s  {step}")

    def report(self, why: str) -> str:
        """The failure message: why, the seed and how to replay it, then the steps."""
        steps = "\n".join(f"  {n:>3}. {step}" for n, step in enumerate(self.steps, 1))
        return (
            f"model check failed, seed {self.seed} (replay it with --taskq-model-seed "
            f"{self.seed}): {why}\nthe round's steps:\n{steps}"
        )


RoundBody = Callable[[Round], Awaitable[None]]


async def run_rounds(settings: Settings, body: RoundBody) -> int:
    """Run ``body`` on rounds until the budget is spent (or once, on the given seed).

    A `Violation`, or any error from the implementation, fails the test with the round's
    report. Returns how many rounds ran.
    """
    if settings.seed is not None:
        seeds: list[int] | range = [settings.seed]
    else:
        first = random.SystemRandom().randrange(1, 2**31)
        seeds = range(first, first + 1_000_000)
    deadline = time.monotonic() + settings.budget
    rounds = 0
    for seed in seeds:
        current = Round(seed)
        try:
            await body(current)
        except Violation as exc:
            pytest.fail(current.report(str(exc)), pytrace=False)
        except Exception as exc:
            raise AssertionError(current.report(f"{type(exc).__name__}: {exc}")) from exc
        rounds += 1
        if time.monotonic() >= deadline:
            break
    return rounds
