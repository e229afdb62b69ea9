import json
import socket

import pytest

from regvault.cli.main import main

from .builders import RegistryWriter, push_image


@pytest.fixture
def registry(s3, bucket):
    w = RegistryWriter(s3, bucket, root="/team-root")
    push_image(w, "team/app", "1.0", "a")
    push_image(w, "team/app", "1.0", "b")
    push_image(w, "base", "latest", "c")
    return w


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_common_flags_work_before_and_after_the_command(registry, capsys):
    a = run(capsys, "ls", "--format", "json", "--bucket", "reg", "--root", "team-root")
    b = run(capsys, "--bucket", "reg", "--root", "/team-root", "--format", "json", "ls")
    assert a[0] == b[0] == 0
    doc_a, doc_b = json.loads(a[1]), json.loads(b[1])
    assert doc_a["repositories"] == doc_b["repositories"]
    assert [r["name"] for r in doc_a["repositories"]] == ["base", "team/app"]
    app = doc_a["repositories"][1]["tags"][0]
    assert app["earlier_digests"] == 1 and app["state"] == "live"
    assert doc_a["summary"]["s3_requests"] >= 1 and doc_a["root"] == "team-root"


def test_environment_supplies_bucket_and_root(registry, capsys, monkeypatch):
    monkeypatch.setenv("REGVAULT_BUCKET", "reg")
    monkeypatch.setenv("REGVAULT_ROOT", "team-root")
    code, out, err = run(capsys, "ls", "team/app", "--format", "json")
    assert code == 0 and err == ""
    assert [r["name"] for r in json.loads(out)["repositories"]] == ["team/app"]


def test_table_output_and_output_file(registry, capsys, tmp_path):
    code, out, _ = run(capsys, "ls", "--bucket", "reg", "--root", "team-root")
    assert code == 0
    assert "team/app" in out and "oci-manifest" in out and "2 repositories, 2 tags" in out
    target = tmp_path / "ls.json"
    code, out, _ = run(
        capsys, "ls", "--bucket", "reg", "--root", "team-root", "--format", "json", "--output", str(target)
    )
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["summary"]["tags"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ls"], "no bucket given"),
        (["ls", "--bucket", "nope"], "bucket 'nope' does not exist"),
        (["ls", "--bucket", "reg"], "no registry under root '(empty)'"),
        (["ls", "--bucket", "reg", "--root", "team-root", "Team/App"], "invalid repository name"),
        (["ls", "--bucket", "reg", "--root", "team-root", "missing/repo"], "no repository 'missing/repo'"),
        (["ls", "--bucket", "reg", "--page-size", "0"], "--page-size"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(registry, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_endpoint_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run(capsys, "ls", "--bucket", "b", "--endpoint-url", f"http://127.0.0.1:{port}")
    assert code == 2 and out == ""
    assert (
        err == f"regvault: error: cannot reach S3 at http://127.0.0.1:{port}: check --endpoint-url / "
        "AWS_ENDPOINT_URL and that the service is running\n"
    )


def test_help_explains_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ls", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "examples:" in out and "--endpoint-url" in out
    assert "regvault ls team/app --format json" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "REGVAULT_BUCKET" in top and "exit codes" in top and "ls" in top


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
