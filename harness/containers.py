"""Build and run the Bento's image for real: the slow image test and the image figures use this.

- ``docker_engine``: the Docker engine to use; where none is reachable (these machines), Debian's
  ``dockerd`` is started with its state in a temporary folder;
- ``ensure_base_image``: ``python:3.11-slim``, pulled, or where no registry answers, made from Debian
  packages with ``debootstrap`` (CA certificates of the host included, for a TLS proxy);
- ``containerize`` and ``running_container``: ``bentoml containerize``, then ``docker run`` with a volume.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bentoml

from harness.servers import answers_200, free_port
from tweet_sentiment.core.config import ROOT
from tweet_sentiment.core.models import image_labels

BASE_IMAGE = "python:3.11-slim"  # bentofile.yaml's docker.base_image
STATE = "/home/bentoml/state"  # the image's volume (deploy/bento.Dockerfile.j2)
DEBIAN_PACKAGES = "python3.11,python3-venv,python3-pip,ca-certificates"


def docker(env: dict[str, str], *args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done.stdout.strip()


def succeeds(env: dict[str, str], *args: str, timeout: float = 600) -> bool:
    return subprocess.run(["docker", *args], env=env, capture_output=True, timeout=timeout).returncode == 0


@contextmanager
def docker_engine() -> Iterator[dict[str, str]]:
    """An environment whose ``docker`` reaches an engine: the one configured, else a private ``dockerd``."""
    # Debian's client first: it has BuildKit built in (a client without the buildx plugin cannot build).
    env = {**os.environ, "PATH": f"/usr/bin:{os.environ.get('PATH', '')}", "DOCKER_BUILDKIT": "1"}
    if shutil.which("docker", path=env["PATH"]) and succeeds(env, "info", timeout=30):
        yield env
        return
    if not shutil.which("dockerd") or os.geteuid() != 0:
        raise RuntimeError("no Docker engine: install Debian's docker.io and run as root (.ci/run does)")
    # Under /tmp itself, whatever TMPDIR says: containerd's sockets live under it, and a socket's path has at
    # most 107 bytes. The folder is removed when the engine stops.
    folder = Path(tempfile.mkdtemp(prefix="tweet-sentiment-docker-", dir="/tmp"))
    socket = folder / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{socket}"
    with open(folder / "dockerd.log", "w") as log:
        daemon = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                folder / "data",
                "--exec-root",
                folder / "exec",
                "--pidfile",
                folder / "pid",
                "-H",
                env["DOCKER_HOST"],
                "--storage-driver",
                "overlay2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (socket.exists() and succeeds(env, "info", timeout=30)):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start:\n{(folder / 'dockerd.log').read_text()[-3000:]}")
            time.sleep(1)
        yield env
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        subprocess.run(["umount", "-R", str(folder / "data")], capture_output=True)  # overlay mounts left behind
        shutil.rmtree(folder, ignore_errors=True)


def _apt_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror apt uses on this machine for ``suite`` (debootstrap fetches from it)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):  # deb822 stanzas
        for stanza in Path(path).read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#")
            if suite in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    for path in filter(
        Path.is_file, map(Path, ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*.list")])
    ):
        for words in (line.split() for line in path.read_text().splitlines()):
            if words[:1] == ["deb"] and suite in words:
                return next(word for word in words[1:] if "://" in word)
    return "http://deb.debian.org/debian"


def ensure_base_image(env: dict[str, str]) -> str:
    """``python:3.11-slim`` in the engine: already there, pulled, or built from Debian packages."""
    if succeeds(env, "image", "inspect", BASE_IMAGE) or succeeds(env, "pull", BASE_IMAGE, timeout=300):
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="tweet-sentiment-rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm", rootfs, _apt_mirror()],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for certificate in glob.glob("/usr/local/share/ca-certificates/*"):  # a TLS proxy's, where there is one
            shutil.copy(certificate, f"{rootfs}/usr/local/share/ca-certificates/")
        inside = {k: v for k, v in os.environ.items() if k != "TMPDIR"}  # this host's TMPDIR is not in the rootfs
        subprocess.run(["chroot", rootfs, "update-ca-certificates"], check=True, capture_output=True, env=inside)
        # The official image has no PEP 668 marker: BentoML's Dockerfile pip-installs uv system-wide.
        Path(f"{rootfs}/usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [
                "docker",
                "import",
                "-c",
                "ENV LANG=C.UTF-8",
                "-c",
                "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                "-",
                BASE_IMAGE,
            ],
            stdin=tar.stdout,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        tar.wait()
    return BASE_IMAGE


def build(*args: str) -> bentoml.Bento:
    """``bentoml build`` with ``--arg``s etc.; the Bento it made."""
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-o", "tag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return bentoml.get(result.stdout.strip().splitlines()[-1].removeprefix("__tag__:"))


def containerize(bento_tag: str, image: str, env: dict[str, str]) -> str:
    """``bentoml containerize`` the Bento into ``image``, labelled as `make image` labels it; the build reaches
    package indexes as this host does.

    Run from the temporary folder: BentoML copies the Bento there first and refuses a Dockerfile
    template outside the current folder (as `make image` does too).
    """
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bentoml",
            "containerize",
            bento_tag,
            "--backend",
            "docker",
            "-t",
            image,
            "--opt",
            "network=host",
            *(f"--opt=label={key}={value}" for key, value in image_labels(bento_tag).items()),
        ],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode:
        raise RuntimeError(f"bentoml containerize {bento_tag} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return image


@contextmanager
def running_container(
    image: str, env: dict[str, str], volume: str, name: str, timeout: float = 120, options: tuple[str, ...] = ()
) -> Iterator[tuple[str, float]]:
    """``docker run`` the image (with ``options``) and ``volume`` on the state folder; yield its URL and the
    seconds until /readyz said 200. The container is removed on exit (the volume stays)."""
    port = free_port()
    start = time.monotonic()
    published = ("-p", f"127.0.0.1:{port}:3000", "-v", f"{volume}:{STATE}")
    docker(env, "run", "-d", "--name", name, *published, *options, image, "serve")
    url = f"http://127.0.0.1:{port}"
    try:
        while not answers_200(f"{url}/readyz"):
            if time.monotonic() - start > timeout or docker(env, "inspect", "-f", "{{.State.Running}}", name) != "true":
                raise RuntimeError(f"{image} not ready in {timeout} s:\n{docker(env, 'logs', name, check=False)}")
            time.sleep(0.2)
        yield url, time.monotonic() - start
    finally:
        docker(env, "rm", "-f", name, check=False)


def memory_mib(env: dict[str, str], name: str) -> float:
    """Resident memory of everything in the container, MiB (docker stats)."""
    usage = docker(env, "stats", "--no-stream", "--format", "{{.MemUsage}}", name).split("/")[0].strip()
    value, unit = float(usage.rstrip("KMGiB")), usage.lstrip("0123456789.")
    return value * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


# Run inside the container (the image has Python, not ps): each process's resident memory and command line.
_PROCESSES = """
import pathlib
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        rss = next(line.split()[1] for line in (proc / "status").read_text().splitlines() if line.startswith("VmRSS"))
        print(rss, (proc / "cmdline").read_bytes().replace(b"\\0", b" ").decode().strip())
    except (OSError, StopIteration):  # gone meanwhile, or a kernel thread
        pass
"""


def worker_rss_mib(env: dict[str, str], name: str) -> list[float]:
    """Resident memory of each BentoML worker process in the container, MiB (/proc VmRSS)."""
    listing = docker(env, "exec", name, "python", "-c", _PROCESSES).splitlines()
    return [int(rss) / 1024 for rss, _, command in (line.partition(" ") for line in listing) if "worker" in command]


def pins(path: Path) -> dict[str, str]:
    """``name: version`` of every ``name==version`` line (markers dropped), names normalized."""
    found = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line):
            found[re.sub(r"\[.*\]", "", match[1]).lower().replace("_", "-")] = match[2]
    return found
