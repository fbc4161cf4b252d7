"""The release version lives in ONE place: ``__version__`` in include/cryptoetl/__init__.py.

Python reads it from there: pyproject.toml (dynamic version) and config.py (the default image).
Files that cannot import Python (helm-values.yaml, k8s/init-db-job.yaml, the Dockerfile, docs)
carry it as a literal; this module finds every image tag and git ref of the project in the
repository and asserts that each names ``cryptoetl.__version__``. A failure names the one place
to change and the files to update (docs/RELEASING.md).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path

import yaml

import cryptoetl
from cryptoetl.config import IMAGE_REPOSITORY, Settings

REPO = Path(__file__).resolve().parents[1]
SOURCE = "include/cryptoetl/__init__.py"
# The literal copies of the version, where they are: what a release updates by hand.
LITERAL_FILES = {
    "helm-values.yaml": "images.airflow.tag, CRYPTOETL_IMAGE, CRYPTOETL_SENTIMENT_IMAGE, dags.gitSync.ref (vX.Y.Z)",
    "k8s/init-db-job.yaml": "the container image",
    "Dockerfile": "ARG CRYPTOETL_VERSION=X.Y.Z (the default)",
    "README.md": "the configuration table (CRYPTOETL_IMAGE)",
}
DEPLOY_FILES = ("helm-values.yaml", "k8s/init-db-job.yaml", "Dockerfile")

# A release version: X.Y.Z with an optional pre-release/local suffix (0.2.0rc1, 0.2.0.dev1, 0.2.0-rc.1).
VERSION = r"\d+\.\d+\.\d+[0-9A-Za-z]*(?:[-+.][0-9A-Za-z]+)*"
# kind -> (pattern whose group 1 is the version as written, prefix the version must carry)
PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    # ghcr.io/cryptoetl/cryptoetl:X.Y.Z and ...-sentiment:X.Y.Z, in any registry
    "image tag": (re.compile(rf"\bcryptoetl(?:-sentiment)?:(v?{VERSION})"), ""),
    # the chart's images.airflow: repository .../cryptoetl, then tag: "X.Y.Z"
    "chart image tag": (re.compile(rf"\brepository:\s*\S*/cryptoetl\s*\n\s*tag:\s*[\"']?(v?{VERSION})"), ""),
    # git-sync's ref (helm-values.yaml dags.gitSync.ref): the git tag vX.Y.Z
    "git ref": (re.compile(rf"\bref:\s*[\"']?(v?{VERSION})"), "v"),
    # the Dockerfile's ARG default, or a --build-arg in a build command
    "build arg": (re.compile(rf"\bCRYPTOETL_VERSION=[\"']?(v?{VERSION})"), ""),
}


def version_mentions(text: str) -> list[tuple[int, str, str, str]]:
    """(line, kind, matched text, version as written) of every project image tag / git ref in text."""
    found = []
    for kind, (pattern, _) in PATTERNS.items():
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            found.append((line, kind, " ".join(match.group(0).split()), match.group(1)))
    return sorted(found)


def mismatches(texts: Mapping[str, str], version: str) -> list[str]:
    """One line per mention in texts (path -> content) that does not name version."""
    problems = []
    for path, text in texts.items():
        for line, kind, matched, written in version_mentions(text):
            want = PATTERNS[kind][1] + version
            if written != want:
                problems.append(f"{path}:{line}: {kind} {matched!r}, want {want!r}")
    return problems


def report(problems: list[str], version: str) -> str:
    files = "\n".join(f"  {path}: {where}" for path, where in LITERAL_FILES.items())
    return (
        f"The release version is {version!r}; it is set in ONE place: {SOURCE} (__version__).\n"
        f"The files that cannot import it carry a literal copy; update them to match:\n{files}\n"
        "(then tag the release commit v<version>; see docs/RELEASING.md). Mismatches:\n"
        + "\n".join(f"  {problem}" for problem in problems)
    )


def _repo_texts() -> dict[str, str]:
    """path -> text of every project file (tracked or new, not ignored), this module excepted."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split("\0")
        paths = [REPO / p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an sdist)
        skip = {"__pycache__", "data", "build", "dist"}
        paths = [
            p for p in REPO.rglob("*")
            if not any(part.startswith(".") or part in skip for part in p.relative_to(REPO).parts[:-1])
        ]
    texts = {}
    for path in paths:
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            texts[path.relative_to(REPO).as_posix()] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary
            continue
    return texts


def test_the_version_is_set_in_one_place_and_python_reads_it_from_there():
    version = cryptoetl.__version__
    assert re.fullmatch(VERSION, version), f"{SOURCE}: __version__ {version!r} is not X.Y.Z[suffix]"
    assert re.search(r"^__version__ = \"(.+)\"$", (REPO / SOURCE).read_text(), re.M)[1] == version, (
        "the imported cryptoetl is not this checkout's")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cryptoetl.__version__"}
    assert Settings().image == f"{IMAGE_REPOSITORY}:{version}"
    assert Settings().image_for("sentiment") == f"{IMAGE_REPOSITORY}-sentiment:{version}"


def test_each_deploy_setting_names_the_release_version():
    """The known places, read structurally (a regex scan alone could miss a reformatted one)."""
    version = cryptoetl.__version__
    values = yaml.safe_load((REPO / "helm-values.yaml").read_text())
    env = {item["name"]: item["value"] for item in values["env"]}
    airflow_image = values["images"]["airflow"]
    (container,) = yaml.safe_load((REPO / "k8s/init-db-job.yaml").read_text())["spec"]["template"]["spec"][
        "containers"]
    arg = re.search(r"^ARG\s+CRYPTOETL_VERSION=(\S*)", (REPO / "Dockerfile").read_text(), re.M)
    found = {
        "helm-values.yaml images.airflow": f"{airflow_image['repository']}:{airflow_image['tag']}",
        "helm-values.yaml CRYPTOETL_IMAGE": env["CRYPTOETL_IMAGE"],
        "helm-values.yaml CRYPTOETL_SENTIMENT_IMAGE": env["CRYPTOETL_SENTIMENT_IMAGE"],
        "helm-values.yaml dags.gitSync.ref": values["dags"]["gitSync"]["ref"],
        "k8s/init-db-job.yaml image": container["image"],
        "Dockerfile ARG CRYPTOETL_VERSION": arg and arg[1].strip("\"'"),
    }
    want = {
        "helm-values.yaml images.airflow": f"{IMAGE_REPOSITORY}:{version}",
        "helm-values.yaml CRYPTOETL_IMAGE": f"{IMAGE_REPOSITORY}:{version}",
        "helm-values.yaml CRYPTOETL_SENTIMENT_IMAGE": f"{IMAGE_REPOSITORY}-sentiment:{version}",
        "helm-values.yaml dags.gitSync.ref": f"v{version}",
        "k8s/init-db-job.yaml image": f"{IMAGE_REPOSITORY}:{version}",
        "Dockerfile ARG CRYPTOETL_VERSION": version,
    }
    problems = [f"{place}: {found[place]!r}, want {want[place]!r}" for place in want if found[place] != want[place]]
    assert not problems, report(problems, version)


def test_every_image_tag_and_git_ref_in_the_repository_is_the_release_version():
    texts = _repo_texts()
    assert set(DEPLOY_FILES) <= set(texts), "the scan must cover the deploy files"
    problems = mismatches(texts, cryptoetl.__version__)
    assert not problems, report(problems, cryptoetl.__version__)


def test_the_scan_reports_a_stray_or_old_tag():
    old, version = "1.2.3", "1.3.0"
    texts = {
        "helm-values.yaml": (
            f'    repository: ghcr.io/cryptoetl/cryptoetl\n    tag: "{old}"\n'
            f"    value: ghcr.io/cryptoetl/cryptoetl:{version}\n"
            f"    value: ghcr.io/cryptoetl/cryptoetl-sentiment:{old}\n"
            f"    ref: v{old}\n"
            f"    ref: {version}\n"  # a git ref without the v of the release tag
        ),
        "Dockerfile": f"ARG CRYPTOETL_VERSION={old}\nFROM ghcr.io/cryptoetl/cryptoetl:${{CRYPTOETL_VERSION}} AS s\n",
        "docs/notes.md": f"docker push registry.example/cryptoetl:{version}rc1 and cryptoetl:{version}0\n",
        "k8s/fine.yaml": f"image: ghcr.io/cryptoetl/cryptoetl:{version}\nref: v{version}\nlazy-importer=={old}\n",
    }
    problems = mismatches(texts, version)
    where = [p.split(": ", 1)[0] for p in problems]
    assert where == ["helm-values.yaml:2", "helm-values.yaml:4", "helm-values.yaml:5", "helm-values.yaml:6",
                     "Dockerfile:1",
                     "docs/notes.md:1", "docs/notes.md:1"], problems
    message = report(problems, version)
    assert SOURCE in message and all(path in message for path in LITERAL_FILES)
    assert f"cryptoetl-sentiment:{old}" in message and f"ref: v{old}" in message
    assert mismatches(texts, old)  # and the other way round


def test_bumping_the_version_flags_every_literal_copy():
    """Pretend __version__ moved on: the real deploy files must then all be reported."""
    flagged = {problem.split(":", 1)[0] for problem in mismatches(_repo_texts(), "99.0.0")}
    assert set(DEPLOY_FILES) <= flagged, f"not flagged: {set(DEPLOY_FILES) - flagged}"
