import os

import pytest

from harness.local import LocalRegistry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_everything_started_is_stopped_by_pid_when_a_test_fails(tmp_path, monkeypatch):
    # Given AWS_CA_BUNDLE in the environment (the registry binary panics on it unless the harness drops it)
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    pids = []
    # When the body of the harness fails
    with pytest.raises(RuntimeError, match="boom"), LocalRegistry(tmp_path) as env:
        pids = [proc.pid for _, proc in env.supervisor.children]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        assert (tmp_path / "registry.pid").read_text() == str(env.registry.proc.pid)
        raise RuntimeError("boom")
    # Then the emulator and the registry are gone, and so are their pid files
    assert pids and not any(_alive(p) for p in pids)
    assert not list(tmp_path.glob("*.pid"))
