"""The kernels' build cache is keyed by what the build depends on, not by the checkout's path."""

from __future__ import annotations

import shutil

import grokking.native as native


def checkout_copy(tmp_path, name):
    folder = tmp_path / name / "grokking" / "native"
    folder.mkdir(parents=True)
    for p in native.SOURCES + native.HEADERS:
        shutil.copy(p, folder / p.name)
    return [folder / p.name for p in native.SOURCES + native.HEADERS]


def test_two_checkouts_with_the_same_sources_share_one_build_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKKING_NATIVE_DIR", str(tmp_path / "cache"))
    a, b = checkout_copy(tmp_path, "a"), checkout_copy(tmp_path, "b")
    assert native.sources_digest(a) == native.sources_digest(b) == native.sources_digest()
    assert native.build_dir(native.sources_digest(a)) == native.build_dir(native.sources_digest(b))


def test_changed_sources_get_their_own_build_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKKING_NATIVE_DIR", str(tmp_path / "cache"))
    a, b = checkout_copy(tmp_path, "a"), checkout_copy(tmp_path, "b")
    b[-1].write_text(b[-1].read_text() + "\n// changed\n")  # a header counts too
    assert native.build_dir(native.sources_digest(a)) != native.build_dir(native.sources_digest(b))


def test_the_build_compiles_copies_whose_paths_do_not_depend_on_the_checkout(tmp_path):
    staged = native.staged_sources(tmp_path / "build")
    assert [p.parent for p in staged] == [tmp_path / "build" / "src"] * len(native.SOURCES)
    assert all((tmp_path / "build" / "src" / h.name).read_bytes() == h.read_bytes() for h in native.HEADERS)
    before = {p: p.stat().st_mtime_ns for p in staged}
    native.staged_sources(tmp_path / "build")  # unchanged sources are not rewritten (no rebuild)
    assert {p: p.stat().st_mtime_ns for p in staged} == before
