"""What users install: the sdist, the compiled wheel and the pure wheel.

These tests build the project the way a release does (``python -m build``,
build isolation, build requirements from the package index) from a copy of
the source tree, so the checkout is never touched, then install the wheels
into fresh virtual environments and parse a stream with them.  They take a
minute or two: most of it compiling the engine.

The compiled parts are skipped only while ``src/xmpp/_tokens.pyx`` does not
exist; once it does, a wheel without the compiled engine is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
HAVE_PYX = (ROOT / "src" / "xmpp" / "_tokens.pyx").is_file()
needs_pyx = pytest.mark.skipif(
    not HAVE_PYX, reason="src/xmpp/_tokens.pyx is not written yet: no compiled engine to package"
)

# Never part of a build's input, whatever git says about them.
_ARTEFACTS = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "*.so", "*.pyd",
    ".venv", ".pytest_cache", ".hypothesis", ".benchmarks", ".mypy_cache",
    "_tokens.c", "*.html",
)


def _source_files() -> list[Path] | None:
    """Files a commit of the work tree would hold: tracked plus new, not ignored."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
    return [Path(n) for n in names if (ROOT / n).is_file()]  # a deleted file is not copied


def _copy_tree(dest: Path) -> Path:
    """A clean copy of the source tree at ``dest`` (no build artefacts)."""
    files = _source_files()
    if files is None:
        shutil.copytree(ROOT, dest, ignore=_ARTEFACTS)
        return dest
    for rel in files:
        if any(part in {"build", "dist", "__pycache__"} for part in rel.parts[:-1]):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dest


def _env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child: no engine switches, no path leaking the checkout in."""
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"XMPP_NO_EXTENSIONS", "XMPP_REQUIRE_COMPILED", "PYTHONPATH", "PYTHONHOME",
                     "PYTHONSAFEPATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"}
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("PIP_ROOT_USER_ACTION", "ignore")
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-6000:]}\n--- stderr (tail) ---\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def _build(tmp: Path, *args: str, env: dict[str, str]) -> Path:
    """``python -m build ARGS`` on a fresh copy of the tree; returns the output folder."""
    src = _copy_tree(tmp / "src-copy")
    out = tmp / "dist"
    _run([sys.executable, "-m", "build", *args, "--outdir", str(out), str(src)], cwd=tmp, env=env)
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {[p.name for p in found]}"
    return found[0]


def _wheel_tags(wheel: Path) -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) from a wheel's file name."""
    parts = wheel.name[: -len(".whl")].split("-")
    assert len(parts) in (5, 6), wheel.name
    return parts[-3], parts[-2], parts[-1]


def _wheel_metadata(zf: zipfile.ZipFile) -> str:
    (name,) = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
    return zf.read(name).decode()


def _make_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True, symlinks=os.name != "nt").create(path)
    py = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    assert py.exists(), py
    return py


def _install(py: Path, wheel: Path, cwd: Path) -> None:
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=cwd, env=_env())


# Run inside an installed environment: which engine loaded, from where, and
# what it made of a small stream fed whole and byte by byte.
_PROBE = textwrap.dedent(
    r'''
    import json, sys
    import xmpp
    from xmpp import xmlstream
    from xmpp.stream import StreamError

    DATA = (
        b"<?xml version='1.0'?>"
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='example.com' version='1.0' xml:lang='en'>"
        b"<message to='juliet@example.com/balcony' type='chat' id='m1'>"
        b"<body>Wherefore art thou, R\xc3\xb6meo? &amp; &lt;&#x1F339;&gt;</body>"
        b"<x xmlns='jabber:x:oob'><url>https://example.com/?a=1&amp;b=2</url></x>"
        b"</message>"
        b"<iq type='get' id='p1' from='a@b/c'><ping xmlns='urn:xmpp:ping'/></iq>"
        b"<presence><show>away</show></presence>"
        b"</stream:stream>"
    )

    def tok(t):
        kind = type(t).__name__
        if kind == "StartElement":
            return ["start", list(t.name), sorted([list(a.name), a.value] for a in t.attrs)]
        if kind == "EndElement":
            return ["end", list(t.name)]
        if kind == "CharData":
            return ["text", t.text]
        raise AssertionError("unexpected token " + repr(t))

    def ev(e):
        if isinstance(e, xmlstream.Element):
            return ["element", [tok(t) for t in e], e.encode().decode("utf-8")]
        return tok(e)

    whole = [ev(e) for e in xmlstream.StreamParser().feed(DATA)]
    p = xmlstream.StreamParser()
    split = []
    for i in range(len(DATA)):
        split.extend(ev(e) for e in p.feed(DATA[i : i + 1]))
    assert split == whole, (split, whole)
    assert [e[0] for e in whole] == ["start", "element", "element", "element", "end"], whole

    try:
        xmlstream.StreamParser().feed(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>")
        refused = None
    except StreamError as exc:
        refused = exc.condition.value

    engine = sys.modules[xmlstream.StreamParser.__module__]
    print(json.dumps({
        "compiled": xmlstream.COMPILED,
        "engine": engine.__name__,
        "engine_file": getattr(engine, "__file__", None),
        "package_file": xmpp.__file__,
        "events": whole,
        "refused": refused,
    }))
    '''
)


def _probe(py: Path, cwd: Path, **env: str | None) -> dict[str, object]:
    script = cwd / "probe_xmpp.py"
    script.write_text(_PROBE)
    out = _run([str(py), str(script)], cwd=cwd, env=_env(**env), timeout=300)
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _inside(path: object, folder: Path) -> bool:
    return isinstance(path, str) and Path(path).resolve().is_relative_to(folder.resolve())


# --------------------------------------------------------------------------
# The release: sdist, then the wheel built from that sdist


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(sdist, wheel): ``python -m build`` builds the sdist, then the wheel from it.

    Building the wheel from the sdist (not from the tree) is what
    .github/workflows/wheels.yml does, so a file missing from the sdist
    shows up here as a failed build.
    """
    if not HAVE_PYX:
        pytest.skip("src/xmpp/_tokens.pyx is not written yet")
    tmp = tmp_path_factory.mktemp("release")
    out = _build(tmp, env=_env())
    yield _one(out, "xmpp-*.tar.gz"), _one(out, "xmpp-*.whl")


@needs_pyx
def test_sdist_has_what_a_build_needs(release: tuple[Path, Path]) -> None:
    sdist, _ = release
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for required in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "src/xmpp/_tokens.pyx",
        "src/xmpp/_tokens.pyi",
        "src/xmpp/_tokens_py.py",
        "src/xmpp/_expat_capi.h",
        "src/xmpp/py.typed",
        "src/xmpp/xmlstream.py",
    ):
        assert required in names, f"{required} missing from {sdist.name}"
    assert not any(n.endswith((".so", ".pyd", ".pyc")) for n in names), sorted(names)


@needs_pyx
def test_sdist_carries_the_test_suite(release: tuple[Path, Path]) -> None:
    """wheels.yml tests each wheel with the suite from the sdist (cibuildwheel's
    test-sources are taken from the unpacked sdist), so all of tests/ must be in it."""
    sdist, _ = release
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    tracked = {p.as_posix() for p in (_source_files() or []) if p.parts[0] == "tests"}
    tracked |= {"tests/conftest.py"}
    missing = sorted(t for t in tracked if t.endswith(".py") and t not in names)
    assert not missing, (
        f"not in {sdist.name}: {missing} (setuptools puts only tests/test*.py in an sdist by "
        "default; a MANIFEST.in with 'graft tests' fixes it)"
    )


@needs_pyx
def test_wheel_is_compiled_and_typed(release: tuple[Path, Path]) -> None:
    _, wheel = release
    py_tag, abi_tag, plat_tag = _wheel_tags(wheel)
    assert plat_tag != "any" and abi_tag != "none", f"not a platform wheel: {wheel.name}"
    assert py_tag == f"cp{sys.version_info.major}{sys.version_info.minor}", wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "Root-Is-Purelib: false" in _wheel_metadata(zf)
    compiled = [n for n in names if re.fullmatch(r"xmpp/_tokens\.[^/]*(\.so|\.pyd)", n)]
    assert compiled, f"no compiled xmpp/_tokens module in {wheel.name}: {sorted(names)}"
    for required in ("xmpp/__init__.py", "xmpp/py.typed", "xmpp/_tokens.pyi", "xmpp/_tokens_py.py",
                     "xmpp/xmlstream.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert "xmpp/_tokens.c" not in names, "generated C source shipped in the wheel"
    assert not any(n.startswith(("tests/", "src/")) for n in names), sorted(names)


@pytest.fixture(scope="module")
def installed(release: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python, venv) of a fresh virtualenv with the release wheel installed."""
    _, wheel = release
    tmp = tmp_path_factory.mktemp("venv-compiled")
    py = _make_venv(tmp / "venv")
    _install(py, wheel, cwd=tmp)
    return py, tmp / "venv"


@needs_pyx
def test_installed_wheel_runs_the_compiled_engine(installed: tuple[Path, Path], tmp_path: Path) -> None:
    py, env_dir = installed
    got = _probe(py, tmp_path)
    assert got["compiled"] is True, got
    assert got["engine"] == "xmpp._tokens", got
    assert _inside(got["engine_file"], env_dir), f"engine not loaded from the venv: {got['engine_file']}"
    assert _inside(got["package_file"], env_dir), f"xmpp not imported from the venv: {got['package_file']}"
    assert got["refused"] == "restricted-xml", got


@needs_pyx
def test_no_extensions_at_run_time_picks_the_pure_twin(installed: tuple[Path, Path], tmp_path: Path) -> None:
    py, env_dir = installed
    compiled = _probe(py, tmp_path)
    pure = _probe(py, tmp_path, XMPP_NO_EXTENSIONS="1")
    assert pure["compiled"] is False, pure
    assert pure["engine"] == "xmpp._tokens_py", pure
    assert _inside(pure["package_file"], env_dir), pure
    assert pure["events"] == compiled["events"], "the two engines parse the same stream differently"
    assert pure["refused"] == compiled["refused"] == "restricted-xml"


# --------------------------------------------------------------------------
# XMPP_NO_EXTENSIONS=1 at build time: a pure wheel that works anywhere


@pytest.fixture(scope="module")
def pure_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pure")
    out = _build(tmp, "--wheel", env=_env(XMPP_NO_EXTENSIONS="1"))
    return _one(out, "xmpp-*.whl")


def test_no_extensions_build_gives_a_pure_wheel(pure_wheel: Path) -> None:
    assert pure_wheel.name.endswith("-py3-none-any.whl"), pure_wheel.name
    with zipfile.ZipFile(pure_wheel) as zf:
        names = set(zf.namelist())
        assert "Root-Is-Purelib: true" in _wheel_metadata(zf)
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))], sorted(names)
    for required in ("xmpp/__init__.py", "xmpp/py.typed", "xmpp/_tokens.pyi", "xmpp/_tokens_py.py"):
        assert required in names, f"{required} missing from {pure_wheel.name}"


def test_pure_wheel_falls_back_by_itself(pure_wheel: Path, tmp_path: Path) -> None:
    """Installed where no compiled engine exists, the package runs on the twin
    without being told to (no XMPP_NO_EXTENSIONS at run time)."""
    py = _make_venv(tmp_path / "venv")
    _install(py, pure_wheel, cwd=tmp_path)
    got = _probe(py, tmp_path)
    assert got["compiled"] is False, got
    assert got["engine"] == "xmpp._tokens_py", got
    assert _inside(got["package_file"], tmp_path / "venv"), got
    assert got["refused"] == "restricted-xml", got
    assert [e[0] for e in got["events"]] == ["start", "element", "element", "element", "end"]
