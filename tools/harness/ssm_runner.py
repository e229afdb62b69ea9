"""SSM Run Command that really runs: ``SendCommand`` to an Online instance with a registered host runs
the document's ``aws:runShellScript`` there, asynchronously, and ``GetCommandInvocation`` answers as
SSM does. moto records commands and answers ``Success`` at once; this module (installed into the
emulator process, or in-process in unit tests) replaces that for registered instances only.

What SSM does, and this does too:
- parameters: the document's defaults, then the command's; every value must match its parameter's
  ``allowedPattern`` / ``allowedValues`` (else ``InvalidParameters``); ``{{ Name }}`` substituted in
  the ``runCommand`` lines, which are written to ``_script.sh`` and run as ``sh -c <that file>`` (so
  the script's ``#!`` line picks the shell) with the agent's small environment;
- status ``Pending`` (instance not Online yet; ``DeliveryTimedOut`` after the command's
  ``TimeoutSeconds``), ``InProgress``, then ``Success`` (exit 0), ``Failed`` (exit code kept),
  ``TimedOut`` after the step's ``timeoutSeconds`` (the process group is killed), ``Cancelled``
  (``CancelCommand``);
- ``StandardOutputContent`` is the first 24,000 characters of stdout, ``StandardErrorContent`` the
  first 8,000 of stderr.

A host is registered per instance id: in the emulator process by a JSON file
``<REGVAULT_INSTANCES_DIR>/<instance id>.json`` (``harness.instance.EmulatedInstance.registration``
plus ``localize``, see ``Host``); in-process with ``register``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
_PARAMETER = re.compile(r"\{\{\s*([A-Za-z0-9_.:-]+)\s*\}\}")


@dataclass
class Host:
    """Where an instance's commands run. ``argv_prefix`` wraps ``sh -c <script>`` (``nsenter`` into
    the instance's namespace); ``localize`` maps parameters the way only a real instance would make
    them work (the registry's S3 endpoint and keys, see ``harness.instance``)."""

    env: dict[str, str]
    argv_prefix: list[str] = field(default_factory=list)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="regvault-ssm-")))
    localize: Callable[[dict[str, str]], dict[str, str]] = lambda parameters: parameters


_HOSTS: dict[str, Host] = {}


def register(instance_id: str, host: Host) -> None:
    _HOSTS[instance_id] = host


def _host(instance_id: str) -> Host | None:
    if instance_id in _HOSTS:
        return _HOSTS[instance_id]
    directory = os.environ.get("REGVAULT_INSTANCES_DIR")
    path = Path(directory) / f"{instance_id}.json" if directory else None
    if path is None or not path.exists():
        return None
    spec = json.loads(path.read_text())
    host = Host(
        env=spec["env"],
        argv_prefix=["nsenter", f"--mount=/proc/{spec['holder_pid']}/ns/mnt", "--"],
        work=Path(spec["run_dir"]) / "commands",
        localize=lambda parameters: localize_launch(parameters, spec.get("s3", {})),
    )
    _HOSTS[instance_id] = host
    return host


def localize_launch(parameters: dict[str, str], s3: dict[str, Any]) -> dict[str, str]:
    """On EC2 the registry's S3 driver finds the region's endpoint and the instance role by itself;
    here the rendered config (the launch document's ``ConfigBase64``) gets the emulator's endpoint
    and keys added under ``storage.s3``: lines inserted, every other byte as the setup rendered it."""
    if not s3 or "ConfigBase64" not in parameters:
        return parameters
    text = base64.b64decode(parameters["ConfigBase64"]).decode()
    anchor = "\n  s3:\n"
    if anchor not in text:
        return parameters
    added = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in s3.items())
    text = text.replace(anchor, anchor + added, 1)
    return {**parameters, "ConfigBase64": base64.b64encode(text.encode()).decode()}


class InvalidParameters(Exception):
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass
class Invocation:
    command_id: str
    instance_id: str
    document_name: str
    comment: str
    script: str
    timeout_s: float  # the step's timeoutSeconds
    delivery_timeout_s: float  # the command's TimeoutSeconds
    host: Host
    online: Callable[[], bool]
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    started: str = ""
    ended: str = ""
    proc: subprocess.Popen[bytes] | None = None
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"ssm-{self.command_id[:8]}", daemon=True).start()

    def _paths(self) -> tuple[Path, Path, Path]:
        base = self.host.work / self.command_id
        base.mkdir(parents=True, exist_ok=True)
        return base / "_script.sh", base / "stdout", base / "stderr"

    def _run(self) -> None:
        sent = time.monotonic()
        while not self.online():
            if self.cancelled:
                return self._end("Cancelled", "Cancelled", -1)
            if time.monotonic() - sent > self.delivery_timeout_s:
                return self._end("TimedOut", "DeliveryTimedOut", -1)
            time.sleep(0.5)
        script, out, err = self._paths()
        with self.lock:
            if self.cancelled:
                return self._end("Cancelled", "Cancelled", -1)
            try:
                script.write_text(self.script)
                script.chmod(0o700)
                with out.open("wb") as stdout, err.open("wb") as stderr:
                    self.proc = subprocess.Popen(
                        # the agent's `sh -c <file>`; exec: the script is the process we wait for
                        [*self.host.argv_prefix, "sh", "-c", 'exec "$0"', str(script)],
                        stdout=stdout,
                        stderr=stderr,
                        stdin=subprocess.DEVNULL,
                        env=self.host.env,
                        start_new_session=True,  # its own process group: a timeout or cancel kills it all
                    )
            except OSError as exc:  # the instance is gone (nsenter, its holder): the agent reports a failure
                err.write_text(f"the emulated agent could not start the command: {exc}\n")
                return self._end("Failed", "Failed", -1)
            self.status = self.details = "InProgress"
            self.started = _now()
        try:
            code = self.proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()
            return self._end("TimedOut", "ExecutionTimedOut", -1)
        if self.cancelled:
            return self._end("Cancelled", "Cancelled", -1)
        self._end("Success" if code == 0 else "Failed", "Success" if code == 0 else "Failed", code)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.status == "InProgress":
                self.status = self.details = "Cancelling"
        self._kill()

    def _end(self, status: str, details: str, code: int) -> None:
        self.code, self.ended = code, _now()
        self.status, self.details = status, details

    def response(self) -> dict[str, Any]:
        _script, out, err = self._paths()
        stdout = out.read_text(errors="replace")[:STDOUT_LIMIT] if out.exists() else ""
        stderr = err.read_text(errors="replace")[:STDERR_LIMIT] if err.exists() else ""
        return {
            "CommandId": self.command_id,
            "InstanceId": self.instance_id,
            "Comment": self.comment,
            "DocumentName": self.document_name,
            "DocumentVersion": "$DEFAULT",
            "PluginName": "aws:runShellScript",
            "ResponseCode": self.code,
            "ExecutionStartDateTime": self.started,
            "ExecutionElapsedTime": "",
            "ExecutionEndDateTime": self.ended,
            "Status": self.status,
            "StatusDetails": self.details,
            "StandardOutputContent": stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }


_RUNS: dict[tuple[str, str], Invocation] = {}
# a command over several instances: the first of these that any of its invocations has
_COMMAND_STATUS_ORDER = ("InProgress", "Pending", "Cancelling", "Failed", "TimedOut", "Cancelled", "Success")


def render(content: dict[str, Any], given: dict[str, str]) -> tuple[str, float]:
    """(the script, its timeoutSeconds) of a Command document's single aws:runShellScript step, with
    the parameters checked and substituted as SSM does."""
    declared = content.get("parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise InvalidParameters(f"document does not support parameters: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = str(spec["default"])
        else:
            raise InvalidParameters(f"missing required parameter {name}")
        pattern = spec.get("allowedPattern")
        if pattern is not None and not re.search(pattern, value):
            raise InvalidParameters(f"parameter {name} does not match its allowedPattern")
        if "allowedValues" in spec and value not in spec["allowedValues"]:
            raise InvalidParameters(f"parameter {name} is not one of its allowedValues")
        values[name] = value
    [step] = [s for s in content["mainSteps"] if s["action"] == "aws:runShellScript"]
    lines = step["inputs"]["runCommand"]
    script = "\n".join(lines) if isinstance(lines, list) else str(lines)
    script = _PARAMETER.sub(lambda m: values.get(m.group(1), m.group(0)), script)
    return script, float(step["inputs"].get("timeoutSeconds", 3600))


def install() -> None:
    """Patch moto's SSM in this process (idempotent): SendCommand, GetCommandInvocation, ListCommands'
    status (from the runs) and CancelCommand."""
    from moto.core.responses import ActionResult
    from moto.ec2.models import ec2_backends
    from moto.ssm.exceptions import SSMException as RESTError
    from moto.ssm.models import SimpleSystemManagerBackend
    from moto.ssm.responses import SimpleSystemManagerResponse

    if getattr(SimpleSystemManagerBackend, "_regvault_runner", False):
        return
    send, get = SimpleSystemManagerBackend.send_command, SimpleSystemManagerBackend.get_command_invocation
    listed = SimpleSystemManagerBackend.list_commands

    def online_check(backend: Any, instance_id: str) -> Callable[[], bool]:
        from harness.ssm_agent import AGENT

        def online() -> bool:
            ec2 = ec2_backends[backend.account_id][backend.region_name]
            for reservation in ec2.reservations.values():
                for instance in reservation.instances:
                    if instance.id == instance_id:
                        return AGENT.online(instance)
            return False

        return online

    def send_command(self: Any, **kwargs: Any) -> Any:
        found = {i: _host(i) for i in kwargs.get("instance_ids") or []}
        hosts = {i: h for i, h in found.items() if h is not None}
        scripts: dict[str, tuple[str, float]] = {}
        if hosts:
            documents = self._documents.get(kwargs.get("document_name"))
            if documents is None:
                raise RESTError("InvalidDocument", "document does not exist")
            content = yaml.safe_load(documents.get_default_version().content)
            for instance_id, host in hosts.items():
                given = {k: (v[0] if v else "") for k, v in (kwargs.get("parameters") or {}).items()}
                try:
                    scripts[instance_id] = render(content, host.localize(given))
                except InvalidParameters as exc:
                    raise RESTError("InvalidParameters", str(exc)) from exc
        command = send(self, **kwargs)
        for instance_id, (script, timeout_s) in scripts.items():
            run = Invocation(
                command.command_id, instance_id, str(command.document_name), command.comment, script,
                timeout_s, float(kwargs.get("timeout_seconds") or 600), hosts[instance_id],
                online_check(self, instance_id),
            )  # fmt: skip
            _RUNS[(command.command_id, instance_id)] = run
            run.start()
        return command

    def get_command_invocation(self: Any, command_id: str, instance_id: str, plugin_name: str | None) -> Any:
        run = _RUNS.get((command_id, instance_id))
        return run.response() if run is not None else get(self, command_id, instance_id, plugin_name)

    def list_commands(self: Any, command_id: str | None, instance_id: str | None) -> Any:
        """A command's status follows its invocations that run (moto's says Success from the start)."""
        commands = listed(self, command_id, instance_id)
        for command in commands:
            statuses = {r.status for (cid, _), r in _RUNS.items() if cid == command.command_id}
            if statuses:
                command.status = command.status_details = next(
                    (s for s in _COMMAND_STATUS_ORDER if s in statuses), "Success"
                )
        return commands

    def cancel_command(self: Any) -> Any:
        command_id = self._get_param("CommandId")
        self.ssm_backend.get_command_by_id(command_id)  # InvalidCommandId when unknown
        wanted = self._get_param("InstanceIds") or None
        for (cid, iid), run in list(_RUNS.items()):
            if cid == command_id and (wanted is None or iid in wanted):
                run.cancel()
        return ActionResult({})

    SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign,assignment]
    SimpleSystemManagerBackend.get_command_invocation = get_command_invocation  # type: ignore[method-assign]
    SimpleSystemManagerBackend.list_commands = list_commands  # type: ignore[method-assign]
    SimpleSystemManagerResponse.cancel_command = cancel_command  # type: ignore[attr-defined]
    SimpleSystemManagerBackend._regvault_runner = True  # type: ignore[attr-defined]
