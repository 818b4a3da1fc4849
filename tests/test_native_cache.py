"""The kernels' build cache is keyed by what the build depends on, not by the checkout's path."""

from __future__ import annotations

import shutil

import pytest

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


def test_a_build_lock_left_by_a_dead_build_is_taken_over_with_a_note(tmp_path, capsys):
    import fcntl
    import threading
    import time

    (tmp_path / "lock").write_text("")  # torch's lock file, left by a build that was killed
    (tmp_path / native.OWNER).write_text("999999")  # its owner's pid: gone (no flock is held)
    with native.build_owner(tmp_path):
        assert not (tmp_path / "lock").exists()
        assert (tmp_path / native.OWNER).read_text() == str(__import__("os").getpid())
    assert "taking over the build lock" in capsys.readouterr().err

    # a live builder holds the owner lock: the next one waits for it (and says so), then finds no stale lock
    held, released = threading.Event(), threading.Event()

    def builder():
        with open(tmp_path / native.OWNER, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            (tmp_path / "lock").write_text("")
            held.set()
            time.sleep(0.3)
            (tmp_path / "lock").unlink()
            released.set()

    thread = threading.Thread(target=builder)
    thread.start()
    held.wait()
    with native.build_owner(tmp_path):
        assert released.is_set() and not (tmp_path / "lock").exists()
    thread.join()
    err = capsys.readouterr().err
    assert "waiting for process" in err and "taking over" not in err


def test_ninja_is_stopped_with_sigterm_when_the_build_is_interrupted(tmp_path):
    """Ctrl-C during the build: ninja gets SIGTERM (it stops its compilers, which run in process groups
    of their own, and exits), not subprocess.run's SIGKILL, which would leave the compilers running."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    started, got = tmp_path / "started", tmp_path / "got"
    fake_ninja = tmp_path / "ninja.py"  # run as "ninja": notes the signal it is stopped with
    fake_ninja.write_text(
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(got)!r}, 'w').write('TERM'), sys.exit(1)))\n"
        f"open({str(started)!r}, 'w').write('')\n"
        "time.sleep(30)\n"
    )

    def ctrl_c_once_started():
        while not started.exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C

    real = subprocess.run
    with native.ninja_dies_with_this_process():
        thread = threading.Thread(target=ctrl_c_once_started)
        thread.start()
        t0 = time.time()
        with pytest.raises(KeyboardInterrupt):
            subprocess.run(["ninja", str(fake_ninja)], executable=sys.executable, check=True)
        thread.join()
    assert got.read_text() == "TERM" and time.time() - t0 < 10
    assert subprocess.run is real


def test_ninja_runs_as_torch_calls_it_also_through_check_output(tmp_path):
    """torch asks ``ninja --version`` through check_output (run with check and timeout) and builds
    through run(check=True): both work while the build's ninja is wrapped."""
    import subprocess
    import sys

    fake_ninja = tmp_path / "ninja.py"
    fake_ninja.write_text("import sys; print('1.11.1'); sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)\n")
    with native.ninja_dies_with_this_process():
        assert subprocess.check_output(["ninja", str(fake_ninja)], executable=sys.executable).strip() == b"1.11.1"
        done = subprocess.run(["ninja", str(fake_ninja)], executable=sys.executable, stdout=subprocess.PIPE, check=True)
        assert done.returncode == 0 and done.stdout.strip() == b"1.11.1"
        with pytest.raises(subprocess.CalledProcessError):
            subprocess.run(
                ["ninja", str(fake_ninja), "3"], executable=sys.executable, stdout=subprocess.PIPE, check=True
            )
