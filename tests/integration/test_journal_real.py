"""The push journal on the real registry: its notifications (configured as regvault's setup renders
them, with the shared secret header) reach the JournalFunction's handler on a loopback Function URL;
pushes and deletes are kept with who did them, pulls and blob uploads are not, and
`regvault history --reports-bucket` says who set each digest."""

import json
import urllib.error
import urllib.request

from harness.distclient import DistributionClient
from harness.local import LocalRegistry
from regvault.aws.s3 import S3Store
from regvault.journal.record import read_journal

from .support import until


def test_the_registry_journals_who_pushed_and_deleted(tmp_path, capsys, monkeypatch):
    with LocalRegistry(tmp_path / "env", journal=True) as env:
        lay = env.layout
        a = env.push(
            lay.tag("j-a", lay.image([lay.layer("j-base"), lay.layer("j-a")], label="a")), "jr/app:1.0"
        )
        b = env.push(
            lay.tag("j-b", lay.image([lay.layer("j-base"), lay.layer("j-b")], label="b")), "jr/app:1.0"
        )
        client = DistributionClient(env.registry.address, env.registry.user, env.registry.password)
        client.pull("jr/app", "1.0")  # a pull: not journaled
        assert client.delete_manifest("jr/app", a) == 202
        reports = S3Store(env.reports_bucket, env.s3)

        def entries():
            found = read_journal(reports, env.bucket, "")
            return found if any(e.action == "delete" for e in found) else None

        journal = until("the registry's notifications in the journal", entries)
        pushes = [(e.repository, e.tag, e.digest, e.actor) for e in journal if e.action == "push"]
        assert ("jr/app", "1.0", a, env.registry.user) in pushes and (
            "jr/app",
            "1.0",
            b,
            env.registry.user,
        ) in pushes
        assert {e.action for e in journal} == {"push", "delete"}  # no pull, and no blob upload
        assert all(e.media_type != "application/octet-stream" for e in journal)
        deleted = [e for e in journal if e.action == "delete"]
        assert deleted[0].repository == "jr/app" and deleted[0].digest == a
        assert all(e.source_address and e.source_address.startswith("127.0.0.1") for e in journal)
        assert set(env.journal.requests) == {200}

        # who set each digest of the tag, from the journal
        from regvault.cli.main import main

        for name, value in env.client_env().items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "history.json"
        argv = ["history", "jr/app:1.0", "--reports-bucket", env.reports_bucket, "--format", "json"]
        code = main([*argv, "--output", str(out)])
        doc = json.loads(out.read_text())
        assert code == 0
        by = {h["digest"]: h["by"] for h in doc["tags"][0]["history"]}
        assert by[a] == env.registry.user and by[b] == env.registry.user

        # a request without the secret is refused and writes nothing
        before = len(read_journal(reports, env.bucket, ""))
        request = urllib.request.Request(env.journal.url, data=b'{"events": []}', method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("accepted without the secret")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        assert len(read_journal(reports, env.bucket, "")) == before
