"""``modelguard`` sub-commands answer a bad setting, an unreadable secret file or an
unreachable Redis with one line on stderr and an exit code, not a traceback.

No server: Redis is a closed port.
"""

from __future__ import annotations

import pytest

from modelguard.cli import main

CLOSED_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _closed_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGUARD_REDIS_URL", CLOSED_REDIS)
    monkeypatch.setenv("MODELGUARD_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)


COMMANDS = [
    ["routing", "show", "fraud"],
    ["routing", "history", "fraud"],
    ["control", "freeze", "fraud", "--reason", "incident 42"],
    ["control", "rollback", "fraud"],
]


@pytest.mark.parametrize("argv", COMMANDS)
def test_an_unreachable_redis_is_one_line_and_exit_1(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a redis.exceptions.ConnectionError traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"modelguard {argv[0]}: Redis: Error 111 connecting to 127.0.0.1:1")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", COMMANDS)
@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"MODELGUARD_REDIS_PREFIX": "bad prefix"},
            "invalid settings: MODELGUARD_REDIS_PREFIX: String should match pattern",
        ),
        (
            {"MODELGUARD_REDIS_USERNAME": "operator", "MODELGUARD_REDIS_PASSWORD_FILE": "/no/file"},
            "MODELGUARD_REDIS_PASSWORD_FILE: cannot read /no/file",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: a pydantic ValidationError or SecretFileError traceback."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modelguard {argv[0]}: ") and said in err
    assert err.count("\n") == 1


def test_other_errors_still_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelguard.cli.routing as routing

    def boom(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routing, "run", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["routing", "show", "fraud"])
