"""Shell completion of ``swarmctl`` (typer's), for bash and zsh, with the real command.

Two levels: the protocol itself (the real command run with
``_SWARMCTL_COMPLETE`` set, as the shell's completion function runs it, and
the words it offers), and the scripts ``--show-completion`` prints, sourced
into a real bash and a real zsh whose completion function is then called as
the shell would call it on TAB (zsh's ``_arguments``, which only draws the
menu, is replaced by one that prints what it is given). ``--install-completion``
is run with a throw-away home.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.swarm import SWARMCTL

BIN = str(Path(SWARMCTL).parent)
COMMANDS = {"join", "list", "create", "manage", "token-server", "certs"}
#: (words typed, the last one being completed) -> what must be offered
CASES = [
    (["swarmctl", ""], COMMANDS),
    (["swarmctl", "li"], {"list"}),
    (["swarmctl", "certs", ""], {"ca", "server", "client"}),
    (["swarmctl", "certs", "server", "--key-type", ""], {"ec", "rsa"}),
    (["swarmctl", "manage", "--strategy", ""], {"spread", "binpack", "random"}),
    (["swarmctl", "manage", "--filter", "con"], {"containerslots", "constraint"}),
    (["swarmctl", "--log-level", ""], {"debug", "info", "warning", "error", "fatal"}),
    (["swarmctl", "list", "--ti"], {"--timeout"}),
]
IDS = [" ".join(words).strip() or "empty" for words, _ in CASES]
needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (scripts/bootstrap --servers)")


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **extra}


def zsh_words(output: str) -> set[str]:
    """The words in zsh completion output: ``"word":"help"`` or ``"word"`` entries."""
    return {m.group(1).replace("\\\\:", ":") for m in re.finditer(r'"((?:[^"\\]|\\.)*)"(?::"[^"]*")?', output)} - {""}


def complete_with_protocol(shell: str, words: list[str]) -> set[str]:
    if shell == "bash":
        extra = {"COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    else:
        extra = {"_TYPER_COMPLETE_ARGS": " ".join(words)}
    result = subprocess.run(
        [SWARMCTL],
        env=env(_SWARMCTL_COMPLETE=f"complete_{shell}", **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split()) if shell == "bash" else zsh_words(result.stdout)


@pytest.mark.parametrize(("words", "offered"), CASES, ids=IDS)
@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_protocol_offers_the_words(shell: str, words: list[str], offered: set[str]) -> None:
    assert complete_with_protocol(shell, words) == offered


def completion_script(shell: str) -> str:
    """What ``swarmctl --show-completion`` prints when run from ``shell`` (it detects its parent shell)."""
    result = subprocess.run(
        [shell, "-c", f"{SWARMCTL} --show-completion; true"],  # `; true`: the shell must not exec swarmctl
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"_SWARMCTL_COMPLETE=complete_{shell}" in result.stdout, result.stdout
    return result.stdout


def test_bash_completes_through_its_script(tmp_path: Path) -> None:
    script = tmp_path / "swarmctl.bash"
    script.write_text(completion_script("bash"))
    for words, offered in CASES:
        # bash splits COMP_WORDS itself; an empty last word is an empty array element
        array = " ".join(f"'{w}'" for w in words)
        program = (
            f"source {script}\n"
            f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
            '_swarmctl_completion swarmctl\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        result = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", program],
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert set(result.stdout.split()) == offered, (words, result.stdout)


@needs_zsh
def test_zsh_completes_through_its_script(tmp_path: Path) -> None:
    script = tmp_path / "_swarmctl"
    script.write_text(completion_script("zsh"))
    for words, offered in CASES:
        quoted = " ".join(f"'{w}'" for w in words)
        program = (
            "autoload -U compinit && compinit -u -D\n"
            f"source {script}\n"
            '_arguments() { print -rl -- "$@" }\n'  # zsh's menu drawing, replaced by printing its input
            f"words=({quoted}); CURRENT={len(words)}\n"
            "_swarmctl_completion\n"
        )
        result = subprocess.run(
            ["zsh", "-f", "-c", program], env=env(), capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert zsh_words(result.stdout) == offered, (words, result.stdout)


@pytest.mark.parametrize("shell", ["bash", pytest.param("zsh", marks=needs_zsh)])
def test_install_completion_writes_the_shells_files(shell: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [shell, "-c", f"{SWARMCTL} --install-completion; true"],
        env=env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and f"{shell} completion installed in" in result.stdout, result.stdout
    rc = tmp_path / (".bashrc" if shell == "bash" else ".zshrc")
    assert rc.is_file() and rc.read_text().strip(), f"{rc} not written"
    scripts = [p for p in tmp_path.rglob("*") if p.is_file() and f"complete_{shell}" in p.read_text()]
    assert scripts, f"no completion script under {tmp_path}"
