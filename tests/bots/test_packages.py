"""The bot package policy and installer: real pip installs into a throwaway venv, offline.

Wheels come from tests/data/wheelhouse (a real one from PyPI) or are built here by hand (the ones
that must be refused), and pip runs with --no-index: no test touches the network. The venv is
shared by the module (a pip run costs about a second on a slow machine); every refused install
must leave it as it was, which the tests check.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from tradeguard.bots.packages import (
    BUILTIN_DENYLIST,
    POPULAR_PACKAGES,
    Installed,
    InstallPlan,
    PackageError,
    PackageInstallFailed,
    PackageRefused,
    PlannedRequirement,
    RefusalReason,
    _pip_environment,
    install,
    name_problem,
    plan_install,
    scrub,
)
from tradeguard.config import Settings
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import EventName, MemorySink

WHEELHOUSE = Path(__file__).parent.parent / "data" / "wheelhouse"
BOT = "test-bot"


# -- helpers -----------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(
    folder: Path, name: str, version: str, files: dict[str, str], requires: Iterable[str] = ()
) -> Path:
    """A minimal, valid pure-Python wheel (what a build back-end would make, without one)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    contents = {**files, f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel}
    record = [f"{p},{_record_hash(t.encode())},{len(t.encode())}" for p, t in contents.items()]
    contents[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in contents.items():
            zf.writestr(member, text)
    return path


def dists(venv: Path) -> set[str]:
    site = next(venv.glob("lib/python3*/site-packages"))
    return {p.name for p in site.glob("*.dist-info")}


def site_files(venv: Path) -> set[str]:
    site = next(venv.glob("lib/python3*/site-packages"))
    return {p.name for p in site.iterdir()}


def requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def refused(sink: MemorySink) -> list[dict[str, object]]:
    return [dict(e.details) for e in sink.events if e.name is EventName.BOT_PACKAGE_REFUSED]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", bot_wheelhouse=WHEELHOUSE)


# -- the install -------------------------------------------------------------------------------


def test_installs_from_the_wheelhouse_and_reports_each_package(
    venv: Path, settings: Settings, tmp_path: Path
) -> None:
    sink = MemorySink()
    shown: list[str] = []
    plan = plan_install(
        requirements(tmp_path, "# the strategy's helpers\nmore-itertools>=10  # windowed\n"),
        settings=settings,
        events=sink,
        bot=BOT,
    )
    assert [r.text for r in plan.requirements] == ["more-itertools>=10"]

    result = install(plan, venv, settings=settings, events=sink, bot=BOT, show=shown.append)

    assert result == [Installed("more-itertools", "11.2.1", requested=True)]
    assert shown == ["installed more-itertools 11.2.1"]
    [event] = sink.events
    assert event.name is EventName.BOT_PACKAGE_INSTALLED
    assert event.subject == f"bot:{BOT}"
    assert dict(event.details) == {
        "package": "more-itertools",
        "version": "11.2.1",
        "requested": True,
    }
    probe = "import more_itertools as m; print(m.__version__, m.__file__)"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "11.2.1"
    assert Path(out[1]).is_relative_to(venv)  # the venv's copy, not the host's


def test_a_denylisted_dependency_is_refused_and_removed_again(venv: Path, tmp_path: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    make_wheel(house, "carrier", "1.0", {"carrier/__init__.py": ""}, ["tradeguard-helper"])
    make_wheel(house, "tradeguard-helper", "1.0", {"tradeguard_helper/__init__.py": ""})
    settings = Settings(data_dir=tmp_path / "data", bot_wheelhouse=house)
    sink = MemorySink()
    plan = plan_install(
        requirements(tmp_path, "carrier\n"), settings=settings, events=sink, bot=BOT
    )
    before = site_files(venv)

    with pytest.raises(PackageRefused) as caught:
        install(plan, venv, settings=settings, events=sink, bot=BOT)

    assert "installed tradeguard-helper 1.0: tradeguard-helper is on the built-in denylist" in str(
        caught.value
    )
    assert str(caught.value).endswith(
        f"; what this install added (carrier, tradeguard-helper) was removed from {venv} again"
    )
    assert refused(sink) == [
        {
            "package": "tradeguard-helper",
            "reason": "denylisted",
            "message": caught.value.refusals[0].message,
        }
    ]
    assert EventName.BOT_PACKAGE_INSTALLED not in [e.name for e in sink.events]
    assert site_files(venv) == before  # carrier went too: the install as a whole was refused


@pytest.mark.parametrize(
    ("hook", "says"),
    [
        ("hooky.pth", "ships hooky.pth, which runs whenever the bot's Python starts"),
        ("sitecustomize.py", "ships sitecustomize.py, which runs whenever"),
        ("tradeguard/sdk/bot.py", "ships tradeguard/sdk/bot.py, which would replace part of"),
    ],
)
def test_a_package_with_a_startup_hook_is_refused_and_removed(
    venv: Path, tmp_path: Path, hook: str, says: str
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    make_wheel(house, "hooky", "1.0", {"hooky/__init__.py": "", hook: "import hooky\n"})
    settings = Settings(data_dir=tmp_path / "data", bot_wheelhouse=house)
    sink = MemorySink()
    plan = plan_install(requirements(tmp_path, "hooky\n"), settings=settings, events=sink, bot=BOT)
    before = site_files(venv)

    with pytest.raises(PackageRefused) as caught:
        install(plan, venv, settings=settings, events=sink, bot=BOT)

    assert caught.value.message.startswith(f"installed hooky 1.0 {says}")
    recreate = "recreate the bot's virtualenv" in caught.value.message
    assert recreate == hook.startswith("tradeguard/")  # SDK files it overwrote are gone
    assert [e["reason"] for e in refused(sink)] == ["startup_hook"]
    assert site_files(venv) == before  # the hook, the module and the dist-info are gone


def test_an_sdist_is_never_built(venv: Path, tmp_path: Path) -> None:
    # setup.py would run on the host, outside the sandbox: pip must not even look at it
    house = tmp_path / "house"
    house.mkdir()
    marker = tmp_path / "setup-py-ran"
    setup = f"open({str(marker)!r}, 'w').close()\nfrom setuptools import setup\nsetup()\n"
    pkg_info = "Metadata-Version: 2.1\nName: sdisty\nVersion: 1.0\n"
    with tarfile.open(house / "sdisty-1.0.tar.gz", "w:gz") as tar:
        for member, text in {"sdisty-1.0/setup.py": setup, "sdisty-1.0/PKG-INFO": pkg_info}.items():
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    settings = Settings(data_dir=tmp_path / "data", bot_wheelhouse=house)
    sink = MemorySink()
    plan = plan_install(requirements(tmp_path, "sdisty\n"), settings=settings, events=sink, bot=BOT)

    with pytest.raises(PackageInstallFailed) as caught:
        install(plan, venv, settings=settings, events=sink, bot=BOT)

    message = str(caught.value)
    assert f"from the wheelhouse {house}" in message
    assert "only wheels are installed, never sdists" in message
    assert "No matching distribution found for sdisty" in message
    assert "\n" not in message
    assert not marker.exists()
    assert not any(d.startswith("sdisty") for d in dists(venv))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_no_index_credential_reaches_an_error_or_event(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")  # the index is a closed port: fail at once
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "2")
    token = secrets.token_hex(12)
    url = f"http://operator:{token}@127.0.0.1:{_closed_port()}/simple"
    settings = Settings(data_dir=tmp_path / "data", bot_index_url=url)
    sink = MemorySink()
    plan = plan_install(
        requirements(tmp_path, "sortedcontainers\n"), settings=settings, events=sink, bot=BOT
    )

    with pytest.raises(PackageInstallFailed) as caught:
        install(plan, venv, settings=settings, events=sink, bot=BOT)

    message = str(caught.value)
    assert "from the index" in message
    assert "pip said:" in message
    assert token not in message
    assert token not in repr(sink.events)


def test_the_pip_environment_carries_no_tradeguard_setting_or_pip_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEGUARD_MASTER_KEY_FILE", "/somewhere")
    monkeypatch.setenv("PIP_FIND_LINKS", "/elsewhere")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://example.invalid/simple")
    monkeypatch.setenv("PYTHONPATH", "/injected")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")

    env = _pip_environment("https://mirror.example/simple")

    assert not [k for k in env if k.startswith("TRADEGUARD_")]
    assert "PIP_FIND_LINKS" not in env
    assert "PIP_EXTRA_INDEX_URL" not in env
    assert "PYTHONPATH" not in env
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"  # how to reach the network


def test_an_empty_plan_runs_nothing(tmp_path: Path, settings: Settings) -> None:
    sink = MemorySink()
    plan = plan_install(tmp_path / "requirements.txt", settings=settings, events=sink, bot=BOT)
    assert plan == InstallPlan(str(tmp_path / "requirements.txt"), ())
    # not a venv at all: nothing looks at it when there is nothing to install
    assert install(plan, tmp_path, settings=settings, events=sink, bot=BOT) == []
    assert sink.events == []


def test_a_plan_made_by_hand_is_checked_again(tmp_path: Path, settings: Settings) -> None:
    sink = MemorySink()
    plan = InstallPlan("by hand", (PlannedRequirement(1, "pip", "pip"),))
    with pytest.raises(PackageRefused, match="by hand line 1: pip is on the built-in denylist"):
        install(plan, tmp_path, settings=settings, events=sink, bot=BOT)
    assert [e["reason"] for e in refused(sink)] == ["denylisted"]


def test_a_folder_that_is_no_venv_is_refused(tmp_path: Path, settings: Settings) -> None:
    sink = MemorySink()
    plan = plan_install(
        requirements(tmp_path, "more-itertools\n"), settings=settings, events=sink, bot=BOT
    )
    with pytest.raises(PackageError, match="is not a virtualenv"):
        install(plan, tmp_path / "nowhere", settings=settings, events=sink, bot=BOT)


# -- the policy: requirements.txt --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason", "says"),
    [
        ("reqeusts", "typosquat", "reqeusts looks like a typosquat of requests; if you really "
         "mean reqeusts, add it to TRADEGUARD_BOT_PACKAGE_ALLOW"),
        ("pandsa>=2", "typosquat", "typosquat of pandas"),
        ("nunpy", "typosquat", "typosquat of numpy"),
        ("more-itertool", "typosquat", "typosquat of more-itertools"),
        ("python_dateutils", "typosquat", "typosquat of python-dateutil"),
        ("ccxxt", "typosquat", "typosquat of ccxt"),
        ("tradeguarf", "typosquat", "typosquat of tradeguard"),
        ("pip", "denylisted", "pip is on the built-in denylist (pip)"),
        ("setuptools>=70", "denylisted", "built-in denylist (setuptools)"),
        ("Wheel", "denylisted", "built-in denylist (wheel)"),
        ("tradeguard", "denylisted", "built-in denylist (tradeguard)"),
        ("TradeGuard_SDK==1.0", "denylisted", "tradeguard-sdk is on the built-in denylist"),
        ("-e .", "option", "-e is a pip option"),
        ("--index-url x", "option", "--index-url is a pip option"),
        ("--extra-index-url=https://example.org/simple", "option", "--extra-index-url is a pip"),
        ("-r other.txt", "option", "-r is a pip option"),
        ("--hash=sha256:00", "option", "--hash is a pip option"),
        ("foo @ https://example.org/foo-1.0-py3-none-any.whl", "direct_reference",
         "foo is a direct reference (name @ URL)"),
        ("https://example.org/foo-1.0.tar.gz", "direct_reference", "a URL is not a requirement"),
        ("git+https://example.org/foo.git", "direct_reference", "a URL is not a requirement"),
        ("./vendor/foo", "local_path", "a file or folder is not a requirement"),
        ("/tmp/foo-1.0-py3-none-any.whl", "local_path", "a file or folder is not a requirement"),
        ("foo-1.0-py3-none-any.whl", "local_path", "looks like a file, not a package name"),
        ("foo bar baz", "invalid", "not a PEP 508 requirement"),
        ("requests >= >= 2", "invalid", "not a PEP 508 requirement"),
        ("!!!", "invalid", "not a PEP 508 requirement"),
        ("numpy \\", "continuation", "continued lines are not accepted"),
    ],
)  # fmt: skip
def test_each_bad_requirement_is_refused_naming_file_line_and_fix(
    tmp_path: Path, settings: Settings, line: str, reason: str, says: str
) -> None:
    path = requirements(tmp_path, f"# ok so far\nmore-itertools>=10\n{line}\n")
    sink = MemorySink()

    with pytest.raises(PackageRefused) as caught:
        plan_install(path, settings=settings, events=sink, bot=BOT)

    error = caught.value
    assert isinstance(error, ConfigError)
    assert error.message.startswith(f"{path} line 3: ")
    assert says in error.message
    [event] = refused(sink)
    assert event["reason"] == reason
    assert event["line"] == 3
    assert [e.subject for e in sink.events] == [f"bot:{BOT}"]


def test_every_problem_is_audited_and_the_error_counts_the_rest(
    tmp_path: Path, settings: Settings
) -> None:
    path = requirements(tmp_path, "pip\nreqeusts\nmore-itertools\n-e .\nMore_Itertools>=10\n")
    sink = MemorySink()

    with pytest.raises(PackageRefused) as caught:
        plan_install(path, settings=settings, events=sink, bot=BOT)

    assert caught.value.message.endswith("(and 3 more problems: see the audit log)")
    assert [(e["package"], e["reason"], e["line"]) for e in refused(sink)] == [
        ("pip", "denylisted", 1),
        ("reqeusts", "typosquat", 2),
        (None, "option", 4),
        ("more-itertools", "duplicate", 5),
    ]
    assert "already required on line 3; merge the two lines" in refused(sink)[3]["message"]


def test_plain_requirements_with_extras_markers_and_comments_pass(
    tmp_path: Path, settings: Settings
) -> None:
    text = (
        "# pinned for the backtest\n\n"
        "more_itertools>=10,<12  # windowed\n"
        "requests[socks]>=2.31; python_version >= '3.11'\n"
        "TA-Lib\n"
    )
    sink = MemorySink()
    plan = plan_install(requirements(tmp_path, text), settings=settings, events=sink, bot=BOT)
    assert [(r.line, r.name) for r in plan.requirements] == [
        (3, "more-itertools"),
        (4, "requests"),
        (5, "ta-lib"),
    ]
    assert plan.requirements[1].text == 'requests[socks]>=2.31; python_version >= "3.11"'
    assert sink.events == []


def test_the_allow_list_spares_a_typosquat_but_never_a_denylisted_name(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", bot_package_allow=["Reqeusts", "pip"])
    sink = MemorySink()
    plan = plan_install(
        requirements(tmp_path, "reqeusts\n"), settings=settings, events=sink, bot=BOT
    )
    assert plan.names == {"reqeusts"}
    with pytest.raises(PackageRefused, match="pip is on the built-in denylist"):
        plan_install(requirements(tmp_path, "pip\n"), settings=settings, events=sink, bot=BOT)


def test_the_operator_denylist_extends_the_built_in_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", bot_package_denylist=["pandas", "acme_*"])
    assert name_problem("Pandas", settings) == (
        RefusalReason.DENYLISTED,
        "pandas is on TRADEGUARD_BOT_PACKAGE_DENYLIST (pandas); bots may not install it",
    )
    assert name_problem("acme-internal", settings) is not None
    assert name_problem("acme", settings) is None
    assert name_problem("numpy", settings) is None


def test_an_index_url_in_requirements_never_shows_its_credential(
    tmp_path: Path, settings: Settings
) -> None:
    token = secrets.token_hex(12)
    path = requirements(
        tmp_path,
        f"--index-url https://bot:{token}@pypi.example/simple\n"
        f"foo @ https://bot:{token}@pypi.example/foo-1.0-py3-none-any.whl\n"
        f"https://{token}@pypi.example/bar.whl\n"
        f"bar baz {token}\n",
    )
    sink = MemorySink()
    with pytest.raises(PackageRefused) as caught:
        plan_install(path, settings=settings, events=sink, bot=BOT)
    assert len(refused(sink)) == 4
    assert token not in str(caught.value)
    assert token not in repr(sink.events)


def test_an_oversized_or_binary_requirements_file_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"numpy\n" * 20_000)
    with pytest.raises(PackageRefused, match="is at most 65536 bytes"):
        plan_install(path, settings=settings, events=MemorySink(), bot=BOT)
    path.write_bytes(b"numpy\xff\n")
    with pytest.raises(PackageRefused, match="is not UTF-8 text"):
        plan_install(path, settings=settings, events=MemorySink(), bot=BOT)


# -- the policy: names -------------------------------------------------------------------------


def test_well_known_names_pass_in_any_spelling(settings: Settings) -> None:
    for name in ("requests", "NumPy", "more_itertools", "python-dateutil", "TA-Lib", "ta", "six"):
        assert name_problem(name, settings) is None, name


def test_short_well_known_names_are_no_typosquat_targets(settings: Settings) -> None:
    # one edit from `ta` or `six` is half the name: such neighbours are ordinary packages
    for name in ("tab", "sip", "six2", "tal"):
        assert name_problem(name, settings) is None, name


def test_the_popular_list_is_normalized_and_holds_the_names_strategies_use() -> None:
    from packaging.utils import canonicalize_name

    assert all(canonicalize_name(n) == n for n in POPULAR_PACKAGES)
    assert {"requests", "numpy", "pandas", "scipy", "ccxt", "ta-lib", "more-itertools"} <= (
        POPULAR_PACKAGES
    )
    assert 150 <= len(POPULAR_PACKAGES) <= 300
    assert not set(BUILTIN_DENYLIST) & POPULAR_PACKAGES


def test_scrub_removes_url_credentials_and_named_secrets() -> None:
    token = secrets.token_hex(12)
    text = (
        f"Looking in indexes: https://user:{token}@pypi.example/simple\n"
        f"ERROR: could not reach https://{token}@pypi.example/simple/foo/ ({token})"
    )
    clean = scrub(text, [token])
    assert token not in clean
    assert "https://***@pypi.example/simple" in clean
