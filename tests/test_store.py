"""AdapterStore: the fast tier is private and verified, writes are atomic with their metadata."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest

from t2l_vllm.peft_format import WEIGHTS_FILE
from t2l_vllm.serving import store as store_module
from t2l_vllm.serving.store import META_FILE, AdapterStore, StoredAdapterInvalid, files_digest, private_dir


@pytest.fixture
def adapter(tiny_generator):
    [a] = tiny_generator.generate(["Reply with the plural of the noun."])
    return a


def put(store, adapter):
    return store.put(adapter.adapter_id, adapter.tensors, adapter.peft_config, adapter.description)


def test_fast_root_is_created_private(tmp_path):
    store = AdapterStore(tmp_path / "durable", tmp_path / "shm" / "t2l_vllm-x" / "tag")
    for d in (store.fast_root, store.fast_root.parent):
        assert d.stat().st_mode & 0o777 == 0o700 and d.stat().st_uid == os.getuid()


@pytest.mark.parametrize("kind", ["open", "symlink", "foreign"])
def test_fast_root_that_others_control_is_refused(tmp_path, kind):
    fast = tmp_path / "fast"
    if kind == "open":
        fast.mkdir(mode=0o700)
        os.chmod(fast, 0o777)
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        fast.symlink_to(tmp_path / "elsewhere")
    else:
        if os.getuid() != 0:
            pytest.skip("needs root to create a folder owned by another user")
        fast.mkdir(mode=0o700)
        os.chown(fast, 65534, 65534)
    with pytest.raises(ValueError, match="refusing adapter folder"):
        AdapterStore(tmp_path / "durable", fast)


def test_ancestor_another_user_controls_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # world-writable without the sticky bit: anyone may rename our folder
    with pytest.raises(ValueError, match="ancestor"):
        private_dir(shared / "mine")
    os.chmod(shared, 0o1777)  # like /dev/shm and /tmp: fine
    assert private_dir(shared / "mine").is_dir()


def test_planted_fast_copy_is_replaced_before_use(tmp_path, adapter, tiny_generator):
    store = AdapterStore(tmp_path / "durable", tmp_path / "fast")
    fast = put(store, adapter)
    [other] = tiny_generator.generate(["A different task entirely."])
    planted = tmp_path / "planted"
    store_module.write_adapter(other.tensors, other.peft_config, planted)
    (fast / WEIGHTS_FILE).write_bytes((planted / WEIGHTS_FILE).read_bytes())

    path = store.verified_path(adapter.adapter_id)
    assert files_digest(path) == files_digest(tmp_path / "durable" / adapter.adapter_id)
    # Planted before the first write too: put() checks what it finds instead of trusting it.
    store.delete(adapter.adapter_id)
    store_module.write_adapter(other.tensors, other.peft_config, fast)
    path = put(store, adapter)
    assert files_digest(path) == files_digest(tmp_path / "durable" / adapter.adapter_id)


def test_corrupt_durable_copy_is_reported(tmp_path, adapter):
    store = AdapterStore(tmp_path / "durable", None)
    folder = put(store, adapter)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(StoredAdapterInvalid):
        store.verified_path(adapter.adapter_id)
    assert store.description(adapter.adapter_id) == adapter.description


def test_metadata_lands_with_the_folder_or_not_at_all(tmp_path, adapter, monkeypatch):
    store = AdapterStore(tmp_path / "durable", None)

    def killed(folder):
        raise KeyboardInterrupt  # the process dies between the PEFT files and the metadata

    monkeypatch.setattr(store_module, "files_digest", killed)
    with pytest.raises(KeyboardInterrupt):
        put(store, adapter)
    assert not (tmp_path / "durable" / adapter.adapter_id).exists()
    monkeypatch.undo()
    folder = put(store, adapter)
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["sha256"] == files_digest(folder) and store.ids() == [adapter.adapter_id]


def test_touch_never_creates_anything(tmp_path):
    store = AdapterStore(tmp_path / "durable", None)
    store.touch("t2l-" + "a" * 32)
    assert list((tmp_path / "durable").iterdir()) == []


def test_concurrent_restores_of_one_fast_copy(tmp_path, adapter):
    store = AdapterStore(tmp_path / "durable", tmp_path / "fast")
    put(store, adapter)
    expected = files_digest(tmp_path / "durable" / adapter.adapter_id)
    for _ in range(5):
        shutil.rmtree(tmp_path / "fast" / adapter.adapter_id)
        results, errors = [], []

        def restore():
            try:
                results.append(files_digest(store.verified_path(adapter.adapter_id)))
            except Exception as e:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(e)

        threads = [threading.Thread(target=restore) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and results == [expected] * 8
    assert not [p for p in (tmp_path / "fast").iterdir() if p.name.startswith(".")]
