"""The Docker SDK for Python's own integration tests: through the manager against one engine, side by side.

Run: .venv/bin/python -m bench.bench_sdk_suite DOCKER_PY_CHECKOUT [--python PY] [--keep DIR]

DOCKER_PY_CHECKOUT is a checkout of github.com/docker/docker-py (its
``tests/`` folder is what is used; it is not shipped on PyPI). PY must have
``docker``, ``pytest``, ``pytest-timeout``, ``six`` and ``paramiko`` (the
tests import them); the default is this interpreter.

In this run, the same test files are run twice: against one real dockerd
(the baseline), then against ``swarmctl manage`` in front of two real
dockerd nodes. There is no registry here, so every node is given the
suite's test image (``alpine:3.10``, made from Debian's static busybox with
all its applets, and tagged ``alpine:latest``, ``busybox:latest`` and
``hello-world:latest``), the very same image on each node (saved once,
loaded everywhere), as a pull would give. It prints the counts of both runs,
the ratio of tests passed, and every test whose outcome differs, with its
first line of failure.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import docker as dk
from tests.support.manager import managing

#: The files of the suite about containers, exec, images, networks, volumes, builds and the client.
FILES = [
    "api_client_test.py",
    "client_test.py",
    "errors_test.py",
    "regression_test.py",
    "api_container_test.py",
    "api_exec_test.py",
    "api_image_test.py",
    "api_network_test.py",
    "api_volume_test.py",
    "models_containers_test.py",
    "models_images_test.py",
    "models_networks_test.py",
    "models_volumes_test.py",
    "api_build_test.py",
    "api_healthcheck_test.py",
]
#: Dials 192.168.10.2 to time out: off loopback, and nothing to do with the engine.
DESELECT = ["tests/integration/api_client_test.py::ConnectionTimeoutTest::test_timeout"]
TAGS = ["alpine:3.10", "alpine:latest", "busybox:latest", "hello-world:latest"]


def rootfs(directory: Path) -> Path:
    """A busybox root file system with every applet, and the users the suite runs as (root, postgres)."""
    path = directory / "rootfs.tar"
    busybox = shutil.which("busybox")
    assert busybox is not None, "busybox-static is not installed"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(path, "w") as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for folder, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777), ("var", 0o755)):
            add(folder, tarfile.DIRTYPE, mode)
        with open(busybox, "rb") as fh:
            add("bin/busybox", tarfile.REGTYPE, 0o755, fh.read())
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70::/var:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:root\npostgres:x:70:\n")
    return path


def test_image(node: dk.DockerNode, directory: Path) -> Path:
    """Make the suite's image on ``node`` and save it (with every tag) for the other nodes."""
    changes = ["--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    imported = node.docker("import", *changes, "--change", 'CMD ["/bin/sh"]', str(rootfs(directory)), TAGS[0])
    assert imported.returncode == 0, imported.stderr
    for tag in TAGS[1:]:
        node.docker("tag", TAGS[0], tag)
    saved = directory / "image.tar"
    assert node.docker("save", "-o", str(saved), *TAGS).returncode == 0
    return saved


def run_suite(python: str, checkout: Path, url: str, out: Path, config: Path) -> dict[str, tuple[str, str]]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "DOCKER_HOST": url,
        "DOCKER_TEST_API_VERSION": "1.41",
        "DOCKER_CONFIG": str(config),
        "HOME": str(config),
    }
    argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "--timeout=120", "-q", "-o", "junit_family=xunit2"]
    argv += [f"--junitxml={out}", *(f"--deselect={d}" for d in DESELECT)]
    argv += [f"tests/integration/{name}" for name in FILES if (checkout / "tests/integration" / name).exists()]
    result = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=False)
    print(f"  {url}: {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]}")
    return outcomes(out)


def outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """Test id -> (passed|failed|skipped|xfailed, the first line of why) from a JUnit file."""
    found: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        status, why = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status = "failed"
                raised = [line[2:].strip() for line in (child.text or "").splitlines() if line.startswith("E ")]
                docker_errors = [line for line in raised if line.startswith("docker.errors.")]
                why = (docker_errors or raised or (child.get("message") or "").splitlines() or [""])[0]
                break
            if child.tag == "skipped":
                status = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        if found.get(test, ("", ""))[0] != "failed":  # a teardown error after a failure keeps the failure
            found[test] = (status, why[:200])
    return found


def count(results: dict[str, tuple[str, str]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for status, _ in results.values():
        totals[status] = totals.get(status, 0) + 1
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of github.com/docker/docker-py")
    parser.add_argument("--python", default=sys.executable, help="a Python with docker, pytest, six, paramiko")
    args = parser.parse_args()
    if not (args.checkout / "tests" / "integration").is_dir():
        parser.error(f"{args.checkout} has no tests/integration folder")
    work = Path(tempfile.mkdtemp(prefix="sdk-suite-", dir="/tmp"))
    config = work / "docker-config"  # an empty client configuration: no credentials, no proxies
    config.mkdir()
    (config / "config.json").write_text("{}")
    try:
        print("one engine:")
        with dk.running_nodes([dk.DockerNode("sdkbase")], work) as (base,):
            saved = test_image(base, work)
            engine = run_suite(args.python, args.checkout, f"tcp://{base.addr}", work / "engine.xml", config)
        print("swarmctl manage, two nodes:")
        nodes = [dk.DockerNode("sdknode1"), dk.DockerNode("sdknode2")]
        with dk.running_nodes(nodes, work):
            for node in nodes:
                assert node.docker("load", "-i", str(saved)).returncode == 0
            with managing(work, nodes) as manager:
                through = run_suite(args.python, args.checkout, f"tcp://{manager.addr}", work / "manager.xml", config)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    passed_engine = count(engine).get("passed", 0)
    passed_manager = count(through).get("passed", 0)
    print(f"\n{'':<24}{'passed':>8}{'failed':>8}{'skipped':>9}{'xfailed':>9}{'total':>7}")
    for label, results in (("one engine", engine), ("swarmctl manage", through)):
        totals = count(results)
        row = [totals.get(k, 0) for k in ("passed", "failed", "skipped", "xfailed")]
        print(f"{label:<24}{row[0]:>8}{row[1]:>8}{row[2]:>9}{row[3]:>9}{len(results):>7}")
    print(f"ratio of tests passed (manager / engine): {passed_manager / max(passed_engine, 1):.3f}")
    for title, wanted in (("pass on one engine, fail through the manager", ("passed", "failed")),
                          ("fail on one engine, pass through the manager", ("failed", "passed"))):  # fmt: skip
        differing = sorted(t for t in engine if (engine[t][0], through.get(t, ("", ""))[0]) == wanted)
        print(f"\n{title}: {len(differing)}")
        for test in differing:
            why = through[test][1] if wanted[1] == "failed" else engine[test][1]
            print(f"  {re.sub(r'^tests[.]integration[.]', '', test)}\n      {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
