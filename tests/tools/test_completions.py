"""Shell completion: click's scripts checked in up to date, click's protocol, and `make install`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest

from evtools.cli import main as cli_main
from tools.completions import COMPLETE_VAR, SCRIPT_NAMES, completion_script

REPO = Path(__file__).resolve().parents[2]
COMPLETIONS_DIR = REPO / "completions"
STALE = ("completions/ is out of date with click's scripts: run `make man completions` and commit "
         "(a different click version may also change them)")
#: Variables of an enclosing `make` (`make test`) that must not leak into the make runs below.
MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX")


def _evtools() -> Path:
    """The console script: under `python -m evtools` click expects another completion variable."""
    script = Path(sys.executable).parent / "evtools"
    if not script.exists():
        pytest.fail(f"no evtools console script next to {sys.executable}: pip install -e .",
                    pytrace=False)
    return script


def _complete(instruction: str, words: str, cword: str) -> list[str]:
    """Ask evtools for completions the way the shell scripts do; return the output lines."""
    env = {**os.environ, COMPLETE_VAR: instruction, "COMP_WORDS": words, "COMP_CWORD": cword}
    result = subprocess.run([str(_evtools())], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _subcommands() -> list[str]:
    ctx = click.Context(cli_main, info_name="evtools")
    return [name for name in cli_main.list_commands(ctx) if not cli_main.commands[name].hidden]


def test_checked_in_scripts_are_the_generated_ones() -> None:
    names = sorted(path.name for path in COMPLETIONS_DIR.iterdir())
    assert names == sorted(SCRIPT_NAMES.values()), STALE
    stale = [name for shell, name in SCRIPT_NAMES.items()
             if (COMPLETIONS_DIR / name).read_text(encoding="utf-8") != completion_script(shell)]
    assert not stale, f"{STALE} (differing: {', '.join(stale)})"


@pytest.mark.parametrize("shell", sorted(SCRIPT_NAMES))
def test_scripts_are_what_evtools_sources(shell: str) -> None:
    env = {**os.environ, COMPLETE_VAR: f"{shell}_source"}
    result = subprocess.run([str(_evtools())], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == completion_script(shell)
    assert f"{COMPLETE_VAR}={shell}_complete" in result.stdout


def test_unknown_shell() -> None:
    with pytest.raises(ValueError, match="tcsh"):
        completion_script("tcsh")


def test_bash_protocol_completes_options_and_subcommands() -> None:
    assert "plain,--dump" in _complete("bash_complete", "evtools events --du", "2")
    offered = _complete("bash_complete", "evtools ", "1")
    assert offered == [f"plain,{name}" for name in _subcommands()]


def test_zsh_protocol_completes_options() -> None:
    lines = _complete("zsh_complete", "evtools events --du", "2")
    # Triplets of type, value, description.
    triplets = [lines[i:i + 3] for i in range(0, len(lines), 3)]
    assert any(kind == "plain" and value == "--dump" and help_ != "_"
               for kind, value, help_ in triplets)


def test_fish_protocol_completes_options() -> None:
    # fish sends the whole command line in COMP_WORDS and the word under the cursor in COMP_CWORD.
    lines = _complete("fish_complete", "evtools events --du", "--du")
    assert any(line.startswith("plain,--dump\t") for line in lines)


def test_bash_script_completes_in_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("bash is not installed", pytrace=False)
    script = (f"source {COMPLETIONS_DIR / SCRIPT_NAMES['bash']}\n"
              "COMP_WORDS=(evtools events --du); COMP_CWORD=2\n"
              "_evtools_completion evtools --du events\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{_evtools().parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop(COMPLETE_VAR, None)
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", script], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.split() == ["--dump"]


@pytest.mark.parametrize(("shell", "check"), [("bash", ["-n"]), ("zsh", ["-n"]),
                                              ("fish", ["--no-execute"])])
def test_scripts_parse(shell: str, check: list[str]) -> None:
    executable = shutil.which(shell)
    if executable is None:
        pytest.fail(f"{shell} is not installed (make system-deps installs it)", pytrace=False)
    result = subprocess.run([executable, *check, str(COMPLETIONS_DIR / SCRIPT_NAMES[shell])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_python_m_evtools_completions_writes_the_scripts(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "tools.completions", str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == {
        name: completion_script(shell) for shell, name in SCRIPT_NAMES.items()}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.fail("make is not installed", pytrace=False)
    env = {key: value for key, value in os.environ.items() if key not in MAKE_VARS}
    command = ["make", "-C", str(REPO), "--no-print-directory", *args, f"PY={sys.executable}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _installed(root: Path) -> dict[Path, Path]:
    """Where `make install` puts each file, under ``root`` (the prefix, staged or not)."""
    share = root / "share"
    return {
        **{share / "man" / "man1" / page.name: page for page in (REPO / "man").glob("*.1")},
        share / "bash-completion" / "completions" / "evtools": COMPLETIONS_DIR / "evtools.bash",
        share / "zsh" / "site-functions" / "_evtools": COMPLETIONS_DIR / "_evtools",
        share / "fish" / "vendor_completions.d" / "evtools.fish": COMPLETIONS_DIR / "evtools.fish",
    }


def test_make_install_dry_run_lists_the_destinations() -> None:
    result = _make("-n", "install", "PREFIX=/tmp/x", "DESTDIR=")
    assert result.returncode == 0, result.stderr
    for destination in ("/tmp/x/share/man/man1/",
                        "/tmp/x/share/bash-completion/completions/evtools",
                        "/tmp/x/share/zsh/site-functions/_evtools",
                        "/tmp/x/share/fish/vendor_completions.d/evtools.fish"):
        assert destination in result.stdout
    assert "venv" not in result.stdout and "pip" not in result.stdout


@pytest.mark.parametrize("staged", [False, True], ids=["prefix", "destdir"])
def test_make_install(tmp_path: Path, staged: bool) -> None:
    if staged:
        result = _make("install", "PREFIX=/usr", f"DESTDIR={tmp_path}")
        root = tmp_path / "usr"
    else:
        result = _make("install", f"PREFIX={tmp_path}")
        root = tmp_path
    assert result.returncode == 0, result.stderr
    expected = _installed(root)
    assert len([path for path in expected if path.parent.name == "man1"]) >= 3
    assert sorted(path for path in root.rglob("*") if path.is_file()) == sorted(expected)
    for installed, source in expected.items():
        assert installed.read_bytes() == source.read_bytes()
        assert stat.S_IMODE(installed.stat().st_mode) == 0o644
