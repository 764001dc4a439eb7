"""The `z4j` command's shared machinery, as a user meets it: --help on every subcommand, a
"did you mean" for a mistyped option, subcommand or value, the one time format (tables and
--json), tables that fit the terminal, profiles, and shell completion run in a real bash.
No brain here: the commands that talk to one are in z4j-brain's operator CLI tests."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from z4j_core.cli import build_parser, main
from z4j_core.cli import tables as tables_module
from z4j_core.cli.completion import script, walk
from z4j_core.cli.http import BrainClient
from z4j_core.cli.parser import suggest
from z4j_core.cli.tables import (
    emit_json,
    format_table,
    instant,
    json_times,
    resolve_display_zone,
    set_display_zone,
)


def z4j(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    clean["Z4J_CONFIG_DIR"] = "/nonexistent/z4j-test-config"  # never the user's profiles
    return subprocess.run(
        [sys.executable, "-m", "z4j_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


@pytest.fixture(autouse=True)
def _utc_display() -> Any:
    set_display_zone(timezone.utc)
    yield
    set_display_zone(timezone.utc)


# -- --help and did-you-mean -------------------------------------------------------------------


def _paths(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name != "brain":  # the brain's own parser: its tests cover it
                    found += _paths(child, [*path, name])
    return found


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _paths(build_parser(), [])
    assert ["tasks", "show"] in paths and ["events", "tail"] in paths and len(paths) > 25
    for path in paths:
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        assert done.value.code == 0, path
        out = capsys.readouterr().out
        assert out.startswith(f"usage: z4j {' '.join(path)}".rstrip()), (path, out[:80])


def test_a_mistyped_option_names_the_subcommand_and_suggests() -> None:
    result = z4j("tasks", "--limt", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: z4j tasks ")
    assert "unrecognized option '--limt' (did you mean --limit?)" in result.stderr
    deeper = z4j("schedules", "history", "x", "--limti", "3")
    assert deeper.returncode == 2 and deeper.stderr.startswith("usage: z4j schedules history")
    assert "did you mean --limit?" in deeper.stderr
    option_equals = z4j("tasks", "list", "--engien=huey")
    assert "unrecognized option '--engien' (did you mean --engine?)" in option_equals.stderr


def test_a_mistyped_subcommand_is_suggested() -> None:
    result = z4j("tsks")
    assert result.returncode == 2
    assert "unknown command 'tsks' (did you mean tasks?)" in result.stderr
    nested = z4j("schedules", "lst")
    assert nested.returncode == 2 and "did you mean list?" in nested.stderr


def test_an_unknown_state_is_refused_naming_the_valid_ones() -> None:
    result = z4j("tasks", "--state", "failedd")
    assert result.returncode == 2
    assert "unknown value 'failedd' (did you mean failed?)" in result.stderr
    assert "enqueued" in result.stderr and "succeeded" in result.stderr
    tail = z4j("events", "tail", "--state", "succeded")
    assert tail.returncode == 2 and "did you mean succeeded?" in tail.stderr


def test_brain_help_reaches_the_brain_or_says_what_to_install() -> None:
    result = z4j("brain", "--help")
    assert "unrecognized arguments" not in result.stderr
    try:
        import z4j_brain  # noqa: F401
    except ImportError:
        assert result.returncode == 2 and "pip install 'z4j[brain]'" in result.stderr
    else:
        assert result.returncode == 0 and result.stdout.startswith("usage: z4j brain")


def test_suggest() -> None:
    assert suggest("--limt", ["--limit", "--json"]) == "--limit"
    assert suggest("FAILED", ["failed", "started"]) == "failed"
    assert suggest("zzz", ["failed", "started"]) is None


def test_cron_help_explains_the_sixth_field() -> None:
    text = z4j("schedules", "preview", "--help").stdout
    flat = " ".join(text.split())
    assert '"*/10 * * * * *" at every second of every tenth minute' in flat
    assert '"* * * * * */10" every ten seconds' in flat


def test_exit_codes_are_in_the_top_level_help() -> None:
    text = z4j("--help").stdout
    assert "exit codes:" in text and "130" in text and "usage: a bad option" in text


# -- one time format ---------------------------------------------------------------------------

AT = datetime(2026, 12, 6, 15, 0, 0, tzinfo=timezone.utc).timestamp()


def test_instants_are_iso_8601_with_an_offset_in_the_display_zone() -> None:
    assert instant(AT) == "2026-12-06T15:00:00+00:00"
    assert instant("2026-12-06T15:00:00Z") == "2026-12-06T15:00:00+00:00"
    assert instant(None) == "-"
    set_display_zone(resolve_display_zone("Europe/Paris"))
    assert instant(AT) == "2026-12-06T16:00:00+01:00"
    assert instant("2026-07-01T12:00:00Z") == "2026-07-01T14:00:00+02:00"
    set_display_zone(resolve_display_zone("local"))
    assert instant(AT) == datetime.fromtimestamp(AT).astimezone().isoformat(timespec="seconds")
    with pytest.raises(ValueError, match="did you mean Europe/Berlin"):
        resolve_display_zone("Europe/Berln")


def test_json_times_become_iso_strings(capsys: pytest.CaptureFixture[str]) -> None:
    answer = {
        "updated_at": AT,
        "expires_at": None,
        "slot": AT,
        "runtime": 0.5,
        "position": 7,
        "events": [{"at": AT, "seq": 1}],
        "next_runs": [AT],
    }
    converted = json_times(answer)
    assert converted["updated_at"] == "2026-12-06T15:00:00+00:00"
    assert converted["events"][0] == {"at": "2026-12-06T15:00:00+00:00", "seq": 1}
    assert converted["next_runs"] == ["2026-12-06T15:00:00+00:00"]
    assert converted["runtime"] == 0.5 and converted["position"] == 7
    assert converted["expires_at"] is None
    emit_json(answer)
    assert json.loads(capsys.readouterr().out)["slot"] == "2026-12-06T15:00:00+00:00"
    audit_row = {"at": AT, "after": {"updated_at": AT}}
    emit_json(audit_row, verbatim=("before", "after"))
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"at": "2026-12-06T15:00:00+00:00", "after": {"updated_at": AT}}


def test_an_unknown_display_zone_is_a_usage_error() -> None:
    result = z4j("--tz", "Europe/Berln", "tasks", Z4J_BRAIN_URL="http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr.startswith("z4j: error: --tz: unknown time zone 'Europe/Berln'")
    assert "did you mean Europe/Berlin?" in result.stderr
    from_env = z4j("agents", Z4J_TZ="Mars/Base", Z4J_BRAIN_URL="http://127.0.0.1:9")
    assert from_env.returncode == 2 and "unknown time zone 'Mars/Base'" in from_env.stderr


# -- tables fit the terminal ---------------------------------------------------------------------


def test_a_table_fits_the_width_and_cuts_with_an_ellipsis() -> None:
    rows = [("shop.tasks.a_very_long_task_name_indeed", "failed", "x" * 90, "12")]
    text = format_table(("name", "state", "failure", "n"), rows, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines), lines
    assert "…" in lines[1] and "failed" in lines[1] and lines[1].rstrip().endswith("12")
    assert lines[0].split() == ["NAME", "STATE", "FAILURE", "N"]
    whole = format_table(("name", "state"), [("short", "ok")], width=80)
    assert "…" not in whole
    piped = format_table(("failure",), [("y" * 200,)], width=None)
    assert len(piped.splitlines()[1]) == tables_module.MAX_CELL


def test_columns_from_the_environment_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    assert tables_module.terminal_width() == 50
    monkeypatch.delenv("COLUMNS")
    assert tables_module.terminal_width() is None  # pytest's stdout is not a terminal


# -- profiles --------------------------------------------------------------------------------------


def test_login_saves_a_private_profile_and_options_still_win(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"Z4J_CONFIG_DIR": str(config)}
    saved = z4j(
        "login", "--brain-url", "http://brain.example:7400", "--admin-token", "z4j_admin_secret",
        "--profile", "prod", "--no-check", **env,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert "z4j_admin_secret" not in saved.stdout + saved.stderr
    path = config / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["current"] == "prod"
    assert data["profiles"]["prod"]["admin_token"] == "z4j_admin_secret"
    z4j("login", "--brain-url", "http://other:7400", "--profile", "dev", "--no-check",
        Z4J_ADMIN_TOKEN="z4j_admin_dev", **env)  # fmt: skip
    listing = z4j("profiles", **env)
    assert "prod" in listing.stdout and "dev" in listing.stdout
    assert "z4j_admin" not in listing.stdout
    assert z4j("profiles", "use", "prod", **env).returncode == 0
    typo = z4j("profiles", "use", "prdo", **env)
    assert typo.returncode == 2 and "did you mean prod?" in typo.stderr

    def client(*argv: str, **extra: str) -> BrainClient:
        args = argparse.Namespace(brain_url=None, admin_token=None, ca_bundle=None,
                                  profile=None, timeout=None)  # fmt: skip
        for key, value in zip(argv[::2], argv[1::2], strict=True):
            setattr(args, key, value)
        saved_env = dict(os.environ)
        os.environ.update({"Z4J_CONFIG_DIR": str(config), **extra})
        try:
            return BrainClient.from_args(args)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)

    current = client()
    assert current.base_url == "http://brain.example:7400"
    assert current.admin_token == "z4j_admin_secret"
    assert client("profile", "dev").base_url == "http://other:7400"
    assert client(Z4J_PROFILE="dev").admin_token == "z4j_admin_dev"
    assert client(Z4J_BRAIN_URL="http://env:1").base_url == "http://env:1"
    # A profile's token goes to its own brain only: another URL never receives it.
    assert client("brain_url", "http://flag:2").admin_token != "z4j_admin_secret"
    assert client(Z4J_BRAIN_URL="http://env:1").admin_token != "z4j_admin_secret"
    assert client("brain_url", "http://brain.example:7400").admin_token == "z4j_admin_secret"
    removed = z4j("profiles", "rm", "prod", **env)
    assert removed.returncode == 0 and json.loads(path.read_text())["current"] is None
    unknown = z4j("agents", "--profile", "nope", **env)
    assert unknown.returncode == 2 and "no profile named 'nope'" in unknown.stderr


# -- completion ----------------------------------------------------------------------------------


def _complete(script_path: Path, line: str) -> list[str]:
    """What bash completes for ``line`` (the cursor at its end), with the script sourced."""
    words = line.split(" ")
    quoted = " ".join(shlex.quote(w) for w in words)
    program = (
        f"source {script_path}\n"
        f"COMP_WORDS=({quoted})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_z4j_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_registers_the_function(tmp_path: Path) -> None:
    path = tmp_path / "z4j.bash"
    path.write_text(z4j("completion", "bash").stdout)
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {path}; complete -p z4j"],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "complete -o default -F _z4j_complete z4j", done


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_from_the_parser(tmp_path: Path) -> None:
    generated = z4j("completion", "bash")
    assert generated.returncode == 0, generated.stderr
    path = tmp_path / "z4j.bash"
    path.write_text(generated.stdout)
    assert set(_complete(path, "z4j ta")) == {"tasks"}
    assert {"show", "run", "list"} <= set(_complete(path, "z4j tasks "))
    assert _complete(path, "z4j tasks --sta") == ["--state"]
    assert "failed" in _complete(path, "z4j tasks --state ")
    assert _complete(path, "z4j tasks --state fa") == ["failed"]
    # An option's value is skipped when finding the subcommand.
    assert "--engine" in _complete(path, "z4j tasks --limit 5 show x --")
    assert set(_complete(path, "z4j schedules add n --catch-up ")) == {"skip", "one", "all"}
    assert set(_complete(path, "z4j completion ")) == {"bash", "zsh"}


def test_zsh_script_wraps_the_bash_one() -> None:
    text = script("zsh", build_parser())
    assert text.startswith("#compdef z4j\nautoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -o default -F _z4j_complete z4j" in text
    paths = {path for path, *_ in walk(build_parser(), "z4j")}
    assert {"z4j", "z4j tasks show", "z4j events tail", "z4j profiles use"} <= paths


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh (apt-get install zsh)")
def test_zsh_completion_under_compinit(tmp_path: Path) -> None:
    """The zsh script in a real zsh: registered with compinit through bashcompinit, and its
    function completing with zsh's own array and word-splitting rules."""
    path = tmp_path / "z4j.zsh"
    path.write_text(z4j("completion", "zsh").stdout)
    lines = ["z4j ta", "z4j tasks --sta", "z4j tasks --state fa", "z4j schedules add n --catch-up "]
    program = (
        "autoload -U compinit && compinit -u\n"
        f"source {shlex.quote(str(path))}\n"
        'print -r -- "registered: $_comps[z4j]"\n'
        "setopt ksharrays\n"
        f"for line in {' '.join(shlex.quote(line) for line in lines)}; do\n"
        '  COMP_WORDS=(${=line}); [[ $line == *" " ]] && COMP_WORDS+=("")\n'
        "  COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
        '  _z4j_complete; print -r -- "${COMPREPLY[*]}"\n'
        "done\n"
    )
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "registered: _bash_complete -o default -F _z4j_complete", out
    assert out[1:] == ["tasks", "--state", "failed", "skip one all"], out
