"""A bot's third-party packages: the policy applied before anything is installed, and the install.

A bot's `requirements.txt` is untrusted input, and installing it is the one step of a bot's life
that runs on the host, outside the sandbox. So:

- **Plain named requirements only** (PEP 508, parsed by `packaging`): `name`, `name[extra]`,
  `name>=1,<2`, `name; python_version < "3.13"`. Every pip option is refused (`-e`, `-r`,
  `--index-url`, `--extra-index-url`, `--find-links`, `--hash`, ...): where packages come from is
  the operator's choice (`TRADEGUARD_BOT_INDEX_URL`, `TRADEGUARD_BOT_WHEELHOUSE`), not the bot's.
  Direct references (`name @ https://...`), URLs, local paths and archive files are refused too:
  they bypass the index and any name-based check. Continued lines (`\\`) are refused rather than
  joined, so what is checked is exactly what a person reads.
- **A denylist** of names (PEP 503-normalized; a trailing `*` matches a prefix), extended by
  `TRADEGUARD_BOT_PACKAGE_DENYLIST`. The built-in entries and why:
    - `pip`, `setuptools`, `wheel`, `distribute`, `pkg-resources`: installers and build tools. A
      bot needs none at run time; replacing them in the venv changes how the next install
      behaves, and setuptools ships `distutils-precedence.pth`, a hook that runs at every start
      of the venv's Python.
    - `tradeguard`, `tradeguard-*`: the SDK comes from the platform, never from an index; a
      package of that name on an index is dependency confusion (or shadows the SDK).
  Packages that install import hooks or run code at interpreter start are *not* listed by name:
  a list of names is never complete. They are refused by what they contain, below.
- **A typosquat check**: a name one edit (insert, delete, substitute, swap two neighbours) away
  from a well-known package (`POPULAR_PACKAGES`) is refused unless the operator names it in
  `TRADEGUARD_BOT_PACKAGE_ALLOW`. Well-known names shorter than four characters (`ta`, `six`)
  are not used as targets: one edit from a two-letter name is half the name, and flagging every
  short name would teach operators to allow-list without reading.
- **What was installed is checked again**, dependencies included: every distribution the
  install added or changed must pass the denylist and the typosquat check, and must not ship a
  start-up hook: a `.pth` file or `sitecustomize`/`usercustomize` module (Python runs these
  whenever the venv's interpreter starts, and pip's `--python` starts it on the host, outside
  the sandbox, on the next install), nor files under `tradeguard/` (the SDK's place). If any
  fails, every distribution this install added is removed again from the venv (by its RECORD,
  confined to the venv, without running the venv's Python) and `PackageRefused` is raised. A
  distribution the install *upgraded* is removed too, not restored: recreate the venv before
  the next attempt.

The install runs the host's pip against the bot's venv (`pip --python <venv>/bin/python`) with
`--only-binary=:all:` (an sdist's `setup.py` would run arbitrary code on the host), no cache, no
prompts, and an environment built from scratch: no `TRADEGUARD_*` variable (the master key may
be one), no pip configuration file or `PIP_*` variable except the few that say how to reach the
network (proxy, CA bundle, timeout, retries). The index URL travels in the environment, not in
argv (which every local user can read in `ps`); pip's output is scrubbed of URL credentials
before it appears in an error. Every package installed is shown, logged and audited
(`bot.package.installed`, with name and version); every refusal is audited
(`bot.package.refused`, with the name and a reason code).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tradeguard.config import Settings
from tradeguard.core.clock import Clock, SystemClock
from tradeguard.core.errors import ConfigError
from tradeguard.core.events import Detail, DomainEvent, EventName, EventSink
from tradeguard.secrets.patterns import redact_text

__all__ = [
    "BUILTIN_DENYLIST",
    "POPULAR_PACKAGES",
    "InstallPlan",
    "Installed",
    "PackageError",
    "PackageInstallFailed",
    "PackageRefused",
    "PlannedRequirement",
    "Refusal",
    "RefusalReason",
    "install",
    "name_problem",
    "parse_requirements",
    "plan_install",
    "scrub",
]

log = logging.getLogger(__name__)

BUILTIN_DENYLIST: tuple[str, ...] = (
    "pip",
    "setuptools",
    "wheel",
    "distribute",
    "pkg-resources",
    "tradeguard",
    "tradeguard-*",
)

# Well-known PyPI names: the targets of the typosquat check. The most downloaded packages plus
# what a trading strategy plausibly imports. An exact match is fine; a name one edit away is not.
_POPULAR = """
    absl-py aiobotocore aiofiles aiohappyeyeballs aiohttp aiosignal alembic altair aniso8601
    annotated-types anyio appdirs apscheduler argon2-cffi arrow asn1crypto asttokens async-timeout
    asyncpg attrs autograd azure-core babel backoff bcrypt beautifulsoup4 binance-connector
    bitarray black bleach blinker boto3 botocore bottleneck cachetools ccxt certifi cffi chardet
    charset-normalizer click cloudpickle colorama coloredlogs contourpy coverage cryptography
    cycler cython dask databricks-sdk dataclasses-json dateparser decorator defusedxml deprecated
    dill distlib distro django dnspython docker docutils ecdsa email-validator empyrical
    et-xmlfile eth-abi eth-account eth-hash eth-typing eth-utils exceptiongroup executing
    fastapi fastjsonschema filelock flake8 flask fonttools frozenlist fsspec gitdb gitpython
    google-api-core google-auth googleapis-common-protos greenlet grpcio gunicorn h11 h2 hpack
    httpcore httptools httpx huggingface-hub hyperframe hyperliquid-python-sdk hypothesis idna
    importlib-metadata importlib-resources iniconfig ipython isodate isort itsdangerous jax jedi
    jinja2 jmespath joblib jsonpatch jsonpointer jsonschema kiwisolver lightgbm llvmlite lxml
    mako markdown markdown-it-py markupsafe matplotlib matplotlib-inline mccabe mdurl mock
    more-itertools mpmath msgpack multidict mypy mypy-extensions nest-asyncio networkx nltk
    numba numexpr numpy oauthlib openai openpyxl opentelemetry-api orjson packaging pandas
    pandas-ta paramiko parso pathspec patsy pendulum pexpect pillow platformdirs plotly pluggy
    polars prometheus-client prompt-toolkit propcache protobuf psutil psycopg psycopg2
    psycopg2-binary ptyprocess pure-eval py4j pyarrow pyasn1 pyasn1-modules pybit pycodestyle
    pycparser pycryptodome pydantic pydantic-core pydantic-settings pyflakes pygments pyjwt
    pylint pymongo pynacl pyopenssl pyparsing pyportfolioopt pyrsistent pysocks pytest
    pytest-asyncio pytest-cov pytest-mock python-binance python-dateutil python-dotenv
    python-json-logger python-multipart python-telegram-bot pytz pyyaml pyzmq quantstats redis
    referencing regex requests requests-oauthlib requests-toolbelt rfc3339-validator rich
    rpds-py rsa ruamel-yaml ruff s3fs s3transfer scikit-learn scipy seaborn shapely simplejson
    six smmap sniffio sortedcontainers soupsieve sqlalchemy sqlparse stack-data starlette
    statsmodels structlog sympy ta ta-lib tabulate tenacity termcolor threadpoolctl tiktoken
    tokenizers toml tomli tomlkit toolz torch tornado tqdm traitlets transformers typer
    types-requests typing-extensions typing-inspect tzdata tzlocal ujson urllib3 uvicorn
    uvloop virtualenv wcwidth web3 websocket-client websockets werkzeug wrapt xgboost xlrd
    yarl yfinance zipp zstandard
"""
POPULAR_PACKAGES: frozenset[str] = frozenset(_POPULAR.split())

_MIN_TYPOSQUAT_TARGET = 4  # see the module docstring: short names make noise, not signal
_MAX_REQUIREMENTS_BYTES = 64 * 1024
_PIP_TIMEOUT_S = 15 * 60
_PIP_MIN = Version("22.3")  # the first pip with --python
_TAIL_LINES = 12
_TAIL_CHARS = 1500

# How pip reaches the network is the host's business and passes through; what pip installs and
# from where is decided here alone.
_PIP_TRANSPORT_VARS = ("PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT",
                       "PIP_TIMEOUT", "PIP_RETRIES")  # fmt: skip
_HOST_VARS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SSL_CERT_FILE",
              "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy")  # fmt: skip

_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".egg")
_STARTUP_MODULES = ("sitecustomize", "usercustomize")


class PackageError(ConfigError):
    """A bot's packages cannot be installed; the message says which and what to do."""


class PackageRefused(PackageError):
    """The package policy refused a requirement line or an installed distribution."""

    def __init__(self, message: str, refusals: Iterable[Refusal] = ()) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)


class PackageInstallFailed(PackageError):
    """pip failed; the message carries the scrubbed tail of its output."""


class RefusalReason(StrEnum):
    """Why a requirement or a distribution was refused (the `reason` of the audit event)."""

    OPTION = "option"  # a pip option line: -e, -r, --index-url, ...
    DIRECT_REFERENCE = "direct_reference"  # name @ URL
    LOCAL_PATH = "local_path"  # ./pkg, /tmp/x, foo.whl
    CONTINUATION = "continuation"  # a line ending in a backslash
    INVALID = "invalid"  # not a PEP 508 requirement at all
    DUPLICATE = "duplicate"
    DENYLISTED = "denylisted"
    TYPOSQUAT = "typosquat"
    STARTUP_HOOK = "startup_hook"  # ships a .pth, sitecustomize or files under tradeguard/
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RefusalReason
    message: str  # one line, names the file and line or the package, says what to do
    package: str | None = None  # normalized name, when there is one
    line: int | None = None


@dataclass(frozen=True, slots=True)
class PlannedRequirement:
    line: int
    name: str  # PEP 503-normalized
    text: str  # as packaging renders it: what pip is given


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """Requirements that passed the policy (`plan_install`); `install` checks them again."""

    source: str  # the file, for messages
    requirements: tuple[PlannedRequirement, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(r.name for r in self.requirements)


@dataclass(frozen=True, slots=True)
class Installed:
    name: str  # PEP 503-normalized
    version: str
    requested: bool  # named in requirements.txt, rather than pulled in as a dependency


# -- names -------------------------------------------------------------------------------------


def _normalize_pattern(pattern: str) -> str:
    star = pattern.strip().endswith("*")
    base = pattern.strip().rstrip("*")
    # "tradeguard-*" must keep its separator after normalizing
    normalized = re.sub(r"[-_.]+", "-", base).lower()
    return normalized + "*" if star else normalized


def _denied_by(name: str, settings: Settings) -> str | None:
    for pattern in (*BUILTIN_DENYLIST, *settings.bot_package_denylist):
        normalized = _normalize_pattern(pattern)
        if normalized.endswith("*"):
            if name.startswith(normalized[:-1]):
                return pattern
        elif name == normalized:
            return pattern
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """True when `a` and `b` differ by exactly one insertion, deletion, substitution or swap of
    two neighbouring characters (Damerau-Levenshtein distance 1, optimal string alignment)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]
    if a[i + 1 :] == b[i + 1 :]:
        return True  # one substitution
    return a[i + 2 :] == b[i + 2 :] and a[i : i + 2] == b[i : i + 2][::-1]


def _typosquat_target(name: str) -> str | None:
    if name in POPULAR_PACKAGES:
        return None
    targets = (*POPULAR_PACKAGES, *(p for p in BUILTIN_DENYLIST if not p.endswith("*")))
    for target in sorted(targets):
        if len(target) >= _MIN_TYPOSQUAT_TARGET and _one_edit_apart(name, target):
            return target
    return None


def name_problem(name: str, settings: Settings) -> tuple[RefusalReason, str] | None:
    """Why the package `name` may not be installed, or None. The denylist is checked first and
    cannot be overridden by the allow list; the typosquat check can."""
    normalized = canonicalize_name(name)
    pattern = _denied_by(normalized, settings)
    if pattern is not None:
        builtin = pattern in BUILTIN_DENYLIST
        where = "the built-in denylist" if builtin else "TRADEGUARD_BOT_PACKAGE_DENYLIST"
        return (
            RefusalReason.DENYLISTED,
            f"{normalized} is on {where} ({pattern}); bots may not install it",
        )
    allowed = {canonicalize_name(a) for a in settings.bot_package_allow}
    target = None if normalized in allowed else _typosquat_target(normalized)
    if target is not None:
        return (
            RefusalReason.TYPOSQUAT,
            f"{normalized} looks like a typosquat of {target}; if you really mean {normalized}, "
            "add it to TRADEGUARD_BOT_PACKAGE_ALLOW",
        )
    return None


# -- requirements.txt --------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    # pip's rule: a comment starts at a '#' at the start of the line or after whitespace
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or "/" in text.split(";")[0]
        or "\\" in text
        or text.lower().split(";")[0].strip().endswith(_ARCHIVE_SUFFIXES)
    )


def _line_refusal(source: str, number: int, text: str) -> Refusal | PlannedRequirement:
    at = f"{source} line {number}"
    if text.endswith("\\"):
        return Refusal(
            RefusalReason.CONTINUATION,
            f"{at}: continued lines are not accepted; put each requirement on one line",
            line=number,
        )
    if text.startswith("-"):
        option = text.split()[0].split("=")[0]
        return Refusal(
            RefusalReason.OPTION,
            f"{at}: {option} is a pip option, and requirements.txt may only name packages "
            "(one per line, like more-itertools>=10); the operator chooses where packages "
            "come from (TRADEGUARD_BOT_INDEX_URL, TRADEGUARD_BOT_WHEELHOUSE)",
            line=number,
        )
    if "://" in text and "@" not in text.split("://")[0]:
        return Refusal(
            RefusalReason.DIRECT_REFERENCE,
            f"{at}: a URL is not a requirement; name the package (like more-itertools>=10) "
            "and publish it to the index or wheelhouse the operator configured",
            line=number,
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        if _looks_like_path(text):
            return Refusal(
                RefusalReason.LOCAL_PATH,
                f"{at}: a file or folder is not a requirement; name the package (like "
                "more-itertools>=10) and put its wheel in the operator's wheelhouse",
                line=number,
            )
        # packaging's first line says what it expected; the rest quotes the line, which we
        # leave out (it may hold anything, a pasted token included)
        why = str(error).splitlines()[0].rstrip(".")
        return Refusal(
            RefusalReason.INVALID,
            f"{at}: not a PEP 508 requirement ({why}); write one package per line, like "
            "more-itertools>=10",
            line=number,
        )
    name = canonicalize_name(requirement.name)
    if requirement.url is not None:
        return Refusal(
            RefusalReason.DIRECT_REFERENCE,
            f"{at}: {name} is a direct reference (name @ URL), which bypasses the index and "
            f"every check; write {name} with a version instead, like {name}>=1",
            package=name,
            line=number,
        )
    if _looks_like_path(requirement.name) or requirement.name.lower().endswith(_ARCHIVE_SUFFIXES):
        return Refusal(
            RefusalReason.LOCAL_PATH,
            f"{at}: {requirement.name} looks like a file, not a package name; name the package "
            "and put its wheel in the operator's wheelhouse",
            package=name,
            line=number,
        )
    return PlannedRequirement(number, name, str(requirement))


def parse_requirements(
    text: str, *, source: str = "requirements.txt"
) -> list[Refusal | PlannedRequirement]:
    """Each meaningful line of a requirements file as a planned requirement or a refusal of its
    form (options, URLs, paths, garbage, duplicates). Package names are not judged here."""
    results: list[Refusal | PlannedRequirement] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        result = _line_refusal(source, number, line)
        if isinstance(result, PlannedRequirement):
            first = seen.setdefault(result.name, number)
            if first != number:
                result = Refusal(
                    RefusalReason.DUPLICATE,
                    f"{source} line {number}: {result.name} is already required on line "
                    f"{first}; merge the two lines into one",
                    package=result.name,
                    line=number,
                )
        results.append(result)
    return results


def _emit(
    events: EventSink,
    clock: Clock,
    name: EventName,
    bot: str,
    details: Mapping[str, Detail],
) -> None:
    events.emit(DomainEvent(name, clock.now(), actor="system", subject=f"bot:{bot}",
                            details=details))  # fmt: skip


def _refuse(
    refusals: list[Refusal], *, events: EventSink, clock: Clock, bot: str, suffix: str = ""
) -> PackageRefused:
    for refusal in refusals:
        details: dict[str, Detail] = {"package": refusal.package, "reason": refusal.reason.value}
        if refusal.line is not None:
            details["line"] = refusal.line
        details["message"] = refusal.message
        _emit(events, clock, EventName.BOT_PACKAGE_REFUSED, bot, details)
        log.warning("bot %s: package refused: %s", bot, refusal.message)
    more = len(refusals) - 1
    message = refusals[0].message
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''}: see the audit log)"
    return PackageRefused(message + suffix, refusals)


def plan_install(
    requirements: Path,
    *,
    settings: Settings,
    events: EventSink,
    bot: str,
    clock: Clock | None = None,
) -> InstallPlan:
    """Read and check a bot's `requirements.txt`; a missing file is an empty plan.

    Every problem in the file is audited (`bot.package.refused`); `PackageRefused` names the
    first, with the file and line, and says what to do.
    """
    clock = clock or SystemClock()
    source = str(requirements)
    if not requirements.exists():
        return InstallPlan(source, ())
    raw = requirements.read_bytes()
    if len(raw) > _MAX_REQUIREMENTS_BYTES:
        refusal = Refusal(
            RefusalReason.TOO_LARGE,
            f"{source} is {len(raw)} bytes; a bot's requirements file is at most "
            f"{_MAX_REQUIREMENTS_BYTES} bytes",
        )
        raise _refuse([refusal], events=events, clock=clock, bot=bot)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        refusal = Refusal(RefusalReason.INVALID, f"{source} is not UTF-8 text; save it as UTF-8")
        raise _refuse([refusal], events=events, clock=clock, bot=bot) from None
    refusals: list[Refusal] = []
    planned: list[PlannedRequirement] = []
    for result in parse_requirements(text, source=source):
        if isinstance(result, Refusal):
            refusals.append(result)
            continue
        problem = name_problem(result.name, settings)
        if problem is None:
            planned.append(result)
        else:
            reason, why = problem
            message = f"{source} line {result.line}: {why}"
            refusals.append(Refusal(reason, message, result.name, result.line))
    if refusals:
        raise _refuse(refusals, events=events, clock=clock, bot=bot)
    return InstallPlan(source, tuple(planned))


# -- the install -------------------------------------------------------------------------------


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without URL credentials (`scheme://user:token@host` keeps scheme and host), any
    of `secrets`, or anything else the log redaction recognises."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@", r"\1***@", text)
    return redact_text(text)


def _url_secrets(url: str | None) -> list[str]:
    """The userinfo of `url` as written and as pip may print it (percent-decoded)."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [v for v in (parts.username, parts.password) if v]
    userinfo = parts.netloc.rpartition("@")[0]
    return [userinfo, *found] if userinfo else found


def _check_index_url(url: str) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("TRADEGUARD_BOT_INDEX_URL: give an https URL such as "
                          "https://pypi.example.com/simple")  # fmt: skip
    if parts.scheme == "http" and not loopback:
        raise ConfigError(
            "TRADEGUARD_BOT_INDEX_URL: plain http is allowed only to 127.0.0.1 (a package "
            "fetched in clear can be swapped on the way); use https"
        )


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if len(found) != 1 or not (venv / "bin" / "python").exists():
        raise PackageError(
            f"{venv} is not a virtualenv with one site-packages folder; recreate the bot's "
            "venv (tradeguard bots create does) and try again"
        )
    return found[0]


@dataclass(frozen=True, slots=True)
class _Dist:
    name: str
    version: str
    path: Path  # its .dist-info folder
    files: tuple[str, ...]  # RECORD paths, relative to site-packages


def _distributions(site: Path) -> dict[str, _Dist]:
    """Installed distributions, read from their metadata files: the venv's Python never runs
    here (it could run a start-up hook a bad install left behind)."""
    found: dict[str, _Dist] = {}
    for info in sorted(site.glob("*.dist-info")):
        dist = metadata.PathDistribution(info)
        name = dist.metadata["Name"]
        if not name:
            continue
        files = tuple(str(f) for f in dist.files or ())
        found[canonicalize_name(name)] = _Dist(canonicalize_name(name), dist.version, info, files)
    return found


def _startup_files(site: Path) -> dict[str, str]:
    """Files at the top of site-packages that run when Python starts, with their sha256."""
    hooks: dict[str, str] = {}
    for entry in site.iterdir():
        if entry.is_file() and (entry.suffix == ".pth" or entry.stem in _STARTUP_MODULES):
            hooks[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
        elif entry.is_dir() and entry.name in _STARTUP_MODULES:
            hooks[entry.name] = "package"
    return hooks


def _hook_files(dist: _Dist) -> list[str]:
    """Files of `dist` that run at interpreter start or sit in the SDK's place."""
    found = []
    for file in dist.files:
        top = file.split("/")[0]
        stem = top.removesuffix(".py")
        pth = "/" not in file and file.endswith(".pth")
        if "__pycache__" in file:
            continue  # compiled copies of what is reported anyway
        if pth or stem in _STARTUP_MODULES or top == "tradeguard":
            found.append(file)
    return found


def _pip_environment(index_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _HOST_VARS or k in _PIP_TRANSPORT_VARS}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: pip reads no configuration file at all
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the host pip's own modules: nothing to cache
    if index_url:
        env["PIP_INDEX_URL"] = index_url  # not argv: every local user can read argv
    return env


def _pip_command(plan: InstallPlan, venv: Path, settings: Settings) -> list[str]:
    command = [
        sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
        "--only-binary=:all:", "--no-input", "--disable-pip-version-check", "--no-cache-dir",
        "--no-color", "--progress-bar", "off", "--no-warn-script-location",
    ]  # fmt: skip
    if settings.bot_wheelhouse is not None:
        command += ["--no-index", "--find-links", str(settings.bot_wheelhouse)]
    return [*command, *(r.text for r in plan.requirements)]


def _check_pip() -> None:
    try:
        version = Version(metadata.version("pip"))
    except metadata.PackageNotFoundError:
        version = None
    if version is None or version < _PIP_MIN:
        raise PackageError(
            f"installing a bot's packages needs pip >= {_PIP_MIN} next to tradeguard "
            f"({sys.executable}); run: {sys.executable} -m pip install -U pip"
        )


def _tail(output: str, secrets: Iterable[str]) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = " | ".join(lines[-_TAIL_LINES:])
    return scrub(text[-_TAIL_CHARS:], secrets)


def _remove(dists: Iterable[_Dist], site: Path, venv: Path, hooks: Iterable[str]) -> None:
    """Delete what `dists` installed (their RECORD) and the start-up `hooks`, staying inside
    the venv whatever a RECORD says."""
    root = venv.resolve()
    dists = list(dists)
    targets = [site / hook for hook in hooks]
    for dist in dists:
        targets += [site / file for file in dist.files]
    parents: set[Path] = set()
    for target in targets:
        path = Path(os.path.normpath(target))
        if not path.resolve().is_relative_to(root):
            log.warning("not removing %s: outside the venv %s", path, venv)
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        parents.add(path.parent)
    for dist in dists:
        if dist.path.resolve().is_relative_to(root):
            shutil.rmtree(dist.path, ignore_errors=True)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        _rmdir_empty(folder, site)


def _rmdir_empty(folder: Path, site: Path) -> None:
    while folder != site and folder.is_relative_to(site):
        try:
            for cache in folder.glob("__pycache__"):
                if not any(cache.iterdir()):
                    cache.rmdir()
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def install(
    plan: InstallPlan,
    venv: Path,
    *,
    settings: Settings,
    events: EventSink,
    bot: str,
    show: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> list[Installed]:
    """Install a checked plan into the bot's venv; return what was installed, dependencies
    included. Raises `PackageInstallFailed` when pip fails and `PackageRefused` when something
    pip installed fails the policy (it is removed again first)."""
    clock = clock or SystemClock()
    if not plan.requirements:
        return []
    refusals = _recheck(plan, settings)
    if refusals:  # a plan made by hand, or under other settings: the policy still holds
        raise _refuse(refusals, events=events, clock=clock, bot=bot)
    site = _site_packages(venv)
    _check_pip()
    index_url = None
    if settings.bot_wheelhouse is not None:
        if not settings.bot_wheelhouse.is_dir():
            raise ConfigError(
                f"TRADEGUARD_BOT_WHEELHOUSE: {settings.bot_wheelhouse} is not a folder; create "
                "it and put the bots' wheels there, or unset it to install from an index"
            )
    elif settings.bot_index_url:
        _check_index_url(settings.bot_index_url)
        index_url = settings.bot_index_url
    secrets = _url_secrets(settings.bot_index_url)
    before = _distributions(site)
    hooks_before = _startup_files(site)
    command = _pip_command(plan, venv, settings)
    log.info("bot %s: installing %s", bot, " ".join(r.text for r in plan.requirements))
    try:
        done = subprocess.run(  # argv list, no shell
            command,
            env=_pip_environment(index_url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PIP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PackageInstallFailed(
            f"pip did not finish installing {plan.source} within {_PIP_TIMEOUT_S} s; check "
            "that the index or wheelhouse is reachable and try again"
        ) from None
    after = _distributions(site)
    changed = [
        dist
        for name, dist in sorted(after.items())
        if name not in before or before[name].version != dist.version
    ]
    new_hooks = sorted(
        name for name, digest in _startup_files(site).items() if hooks_before.get(name) != digest
    )
    if done.returncode != 0:
        # whatever pip got in before it failed never passed the checks below: out it goes
        _remove(changed, site, venv, new_hooks)
        where = (
            f"the wheelhouse {settings.bot_wheelhouse}"
            if settings.bot_wheelhouse is not None
            else "the index"
            if index_url
            else "PyPI"
        )
        raise PackageInstallFailed(
            f"pip could not install {plan.source} from {where} (exit {done.returncode}); "
            "note that only wheels are installed, never sdists; pip said: "
            f"{_tail(done.stderr or done.stdout, secrets)}"
        )
    refusals = _installed_refusals(changed, new_hooks, settings)
    if refusals:
        _remove(changed, site, venv, new_hooks)
        raise _refuse(
            refusals,
            events=events,
            clock=clock,
            bot=bot,
            suffix=f"; what this install added ({', '.join(d.name for d in changed)}) was "
            f"removed from {venv} again" + _damage(changed, before),
        )
    installed = [Installed(d.name, d.version, d.name in plan.names) for d in changed]
    for item in installed:
        kind = "" if item.requested else " (dependency)"
        line = f"installed {item.name} {item.version}{kind}"
        if show is not None:
            show(line)
        log.info("bot %s: %s", bot, line)
        _emit(
            events,
            clock,
            EventName.BOT_PACKAGE_INSTALLED,
            bot,
            {"package": item.name, "version": item.version, "requested": item.requested},
        )
    return installed


def _recheck(plan: InstallPlan, settings: Settings) -> list[Refusal]:
    refusals = []
    for requirement in plan.requirements:
        checked = _line_refusal(plan.source, requirement.line, requirement.text)
        if isinstance(checked, Refusal):
            refusals.append(checked)
            continue
        problem = name_problem(checked.name, settings)
        if problem is not None:
            reason, why = problem
            message = f"{plan.source} line {requirement.line}: {why}"
            refusals.append(Refusal(reason, message, checked.name, requirement.line))
    return refusals


def _damage(changed: list[_Dist], before: Mapping[str, _Dist]) -> str:
    """What removing `changed` could not put back: an upgraded package's old version, or SDK
    files a refused package overwrote."""
    upgraded = any(d.name in before for d in changed)
    sdk = any(f.startswith("tradeguard/") for d in changed for f in d.files)
    if upgraded or sdk:
        return "; recreate the bot's virtualenv before the next install (it is now incomplete)"
    return ""


def _installed_refusals(
    changed: list[_Dist], new_hooks: list[str], settings: Settings
) -> list[Refusal]:
    refusals: list[Refusal] = []
    owned: set[str] = set()
    for dist in changed:
        problem = name_problem(dist.name, settings)
        if problem is not None:
            reason, why = problem
            refusals.append(Refusal(reason, f"installed {dist.name} {dist.version}: {why}",
                                    dist.name))  # fmt: skip
        hooks = _hook_files(dist)
        owned.update(hooks)
        if hooks:
            what = (
                "which would replace part of the tradeguard SDK; a bot's packages may not "
                "write there"
                if hooks[0].startswith("tradeguard/")
                else "which runs whenever the bot's Python starts (pip starts it on the host); "
                "choose a package without start-up hooks"
            )
            refusals.append(
                Refusal(
                    RefusalReason.STARTUP_HOOK,
                    f"installed {dist.name} {dist.version} ships {hooks[0]}, {what}",
                    dist.name,
                )
            )
    for hook in new_hooks:
        if hook not in owned:
            refusals.append(
                Refusal(
                    RefusalReason.STARTUP_HOOK,
                    f"the install added {hook} to the bot's site-packages, which runs "
                    "whenever the bot's Python starts; choose packages without start-up hooks",
                )
            )
    return refusals
