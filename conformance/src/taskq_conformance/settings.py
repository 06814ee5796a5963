"""The suite's tunable figures: timing tolerance, model budget and seed, check timeout."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

#: name -> (command-line option, ini key, environment variable, default, help)
OPTIONS: dict[str, tuple[str, str, str, str, str]] = {
    "tolerance": (
        "--taskq-timing-tolerance",
        "taskq_timing_tolerance",
        "TASKQ_TIMING_TOLERANCE",
        "0.5",
        "seconds a promised moment may be missed by: a delayed message's lateness, a notify "
        "wake-up, a wait's return after its timeout (default 0.5)",
    ),
    "budget": (
        "--taskq-model-budget",
        "taskq_model_budget",
        "TASKQ_MODEL_BUDGET",
        "10",
        "seconds each randomized model check runs new rounds for (default 10)",
    ),
    "seed": (
        "--taskq-model-seed",
        "taskq_model_seed",
        "TASKQ_MODEL_SEED",
        "",
        "replay one round of the model checks: the seed a failure printed (default: random)",
    ),
    "check_timeout": (
        "--taskq-check-timeout",
        "taskq_check_timeout",
        "TASKQ_CHECK_TIMEOUT",
        "120",
        "seconds a check may run, beyond the model budget, before it fails naming the call it "
        "waits on (default 120)",
    ),
}


@dataclass(frozen=True)
class Settings:
    """The figures of one run of the suite."""

    #: Seconds a promised moment may be missed by.
    tolerance: float
    #: Seconds each model check keeps starting new rounds for.
    budget: float
    #: The one seed to replay; None: random seeds.
    seed: int | None
    #: Seconds a check may run, beyond the model budget.
    check_timeout: float


def add_options(parser: pytest.Parser) -> None:
    """Add the options and ini keys of the settings."""
    group = parser.getgroup("taskq")
    for option, ini, env, _, help_text in OPTIONS.values():
        group.addoption(option, default=None, help=f"{help_text} (env {env})")
        parser.addini(ini, help_text, default="")


def read_settings(config: pytest.Config) -> Settings:
    """The settings from the command line, else the ini file, else the environment."""
    values = {name: _raw(config, name) for name in OPTIONS}
    try:
        tolerance, budget = float(values["tolerance"]), float(values["budget"])
        seed = int(values["seed"]) if values["seed"] else None
        check_timeout = float(values["check_timeout"])
    except ValueError as exc:
        raise pytest.UsageError(f"taskq conformance settings: {exc}") from None
    if not min(tolerance, budget, check_timeout) > 0:
        raise pytest.UsageError(
            "taskq conformance settings: tolerance, budget and check timeout must be > 0"
        )
    return Settings(tolerance, budget, seed, check_timeout)


def _raw(config: pytest.Config, name: str) -> str:
    option, ini, env, default, _ = OPTIONS[name]
    for value in (config.getoption(option), config.getini(ini), os.environ.get(env)):
        if value:
            return str(value)
    return default
