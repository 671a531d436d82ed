"""Fetching missing weights: served by a local HTTP server on 127.0.0.1, good and corrupted."""

import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ibprune_lib import download


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_good_file_is_fetched_once_and_verified(server, tmp_path):
    served, url = server
    (served / "w.th").write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(b"weights" * 1000).hexdigest()
    destination = tmp_path / "weights" / "w.th"
    assert download.fetch(url + "w.th", destination, digest, progress=False) == destination
    assert destination.read_bytes() == b"weights" * 1000 and download.sha256_of(destination) == digest
    (served / "w.th").unlink()  # a second call must not go to the server
    assert download.fetch(url + "w.th", destination, digest, progress=False) == destination
    assert [p.name for p in destination.parent.iterdir()] == ["w.th"]


def test_a_corrupted_download_is_deleted_and_named(server, tmp_path):
    served, url = server
    (served / "w.th").write_bytes(b"corrupted")
    destination = tmp_path / "weights" / "w.th"
    with pytest.raises(ValueError, match="differs from the expected .*the download was deleted"):
        download.fetch(url + "w.th", destination, "0" * 64, progress=False)
    assert list(destination.parent.iterdir()) == []


def test_a_missing_file_or_no_server_is_a_clear_error(server, tmp_path):
    _, url = server
    with pytest.raises(FileNotFoundError, match="could not be fetched.*Fix: download it by hand"):
        download.fetch(url + "absent.th", tmp_path / "a.th", "0" * 64, progress=False)
    with pytest.raises(FileNotFoundError, match="could not be fetched"):
        download.fetch("http://127.0.0.1:9/none.th", tmp_path / "b.th", "0" * 64, timeout=2, progress=False)
    assert list(tmp_path.glob("*.th")) == []


def test_pretrained_weights_uses_the_weights_folder_and_the_pinned_hash(server, tmp_path, monkeypatch):
    served, url = server
    (served / "resnet20-12fca82f.th").write_bytes(b"not the real file")
    monkeypatch.setenv("IBPRUNE_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setitem(download.PRETRAINED, "resnet20-12fca82f.th",
                        (url + "resnet20-12fca82f.th", download.PRETRAINED["resnet20-12fca82f.th"][1]))
    with pytest.raises(ValueError, match="sha256"):
        download.pretrained_weights("resnet20-12fca82f.th", progress=False)
    with pytest.raises(ValueError, match="no pretrained weights named"):
        download.pretrained_weights("vgg16.th")
