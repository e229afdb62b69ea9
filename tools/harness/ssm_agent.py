"""The SSM agent of emulated EC2 instances (moto lacks DescribeInstanceInformation): registered or
not as AWS documents the agent's behaviour, so that a setup that only waits fails here as it would on
AWS. Used by the emulator process (make demo) and by unit tests in-process."""

from __future__ import annotations

import threading
from typing import Any


class AgentModel:
    """The SSM agent of an emulated EC2 instance, as AWS documents it.

    An agent registers with the credentials of the instance's profile. One whose instance ran without
    a profile retries with exponential back-off (capped around a day): after a profile is associated it
    comes Online only after a reboot, an agent restart, or once its back-off has run out
    (``backoff_s``, from ``REGVAULT_AGENT_BACKOFF_S``; default a day). An instance launched with a
    profile registers at boot. The emulator forgives less this way: a setup that just waits fails.
    """

    def __init__(self) -> None:
        import os

        self.backoff_s = float(os.environ.get("REGVAULT_AGENT_BACKOFF_S", 86400))
        self.lock = threading.Lock()
        self.profile_since: dict[str, float] = {}  # instance id -> when its current profile came
        self.booted_at: dict[str, float] = {}  # instance id -> last (re)boot, launches included
        self.reboots: dict[str, int] = {}

    def launched(self, instance: Any) -> None:
        import time

        with self.lock:
            self.booted_at[instance.id] = time.time()
            if getattr(instance, "instance_profile", None) or getattr(instance, "iam_instance_profile", None):
                self.profile_since[instance.id] = self.booted_at[instance.id] - 1

    def associated(self, instance_id: str) -> None:
        import time

        with self.lock:
            self.profile_since.setdefault(instance_id, time.time())

    def rebooted(self, instance_id: str) -> None:
        import time

        with self.lock:
            self.booted_at[instance_id] = time.time()
            self.reboots[instance_id] = self.reboots.get(instance_id, 0) + 1

    def online(self, instance: Any) -> bool:
        import time

        since = self.profile_since.get(instance.id)
        if since is None or instance.state != "running":
            return False
        booted = self.booted_at.get(instance.id, 0.0)
        return booted > since or time.time() >= since + self.backoff_s


AGENT = AgentModel()


def describe_instance_information(self: Any) -> Any:
    """moto lacks SSM's DescribeInstanceInformation: emulated instances answer as their agent would
    (see AgentModel): Online once registered, absent from the list before."""
    from moto.core.responses import ActionResult
    from moto.ec2.models import ec2_backends

    wanted: set[str] = set()
    for item in self._get_param("Filters", []) or []:
        if item.get("Key") == "InstanceIds":
            wanted.update(item.get("Values", []))
    ec2 = ec2_backends[self.current_account][self.region]
    infos = [
        {
            "InstanceId": instance.id,
            "PingStatus": "Online",
            "PlatformType": "Linux",
            "AgentVersion": "3.3.0.0",
        }
        for reservation in ec2.reservations.values()
        for instance in reservation.instances
        if (not wanted or instance.id in wanted) and AGENT.online(instance)
    ]
    return ActionResult({"InstanceInformationList": infos})


def model_ssm_agent() -> None:
    """Answer DescribeInstanceInformation from the agent model and feed it launches, profile
    associations and reboots (idempotent; in the emulator process and in unit tests)."""
    from moto.ec2.models import instances as ec2_instances
    from moto.ec2.models.iam_instance_profile import IamInstanceProfileAssociation
    from moto.ssm.responses import SimpleSystemManagerResponse

    if getattr(SimpleSystemManagerResponse, "_regvault_agent", False):
        return
    init, reboot = ec2_instances.Instance.__init__, ec2_instances.Instance.reboot
    assoc_init = IamInstanceProfileAssociation.__init__

    def instance_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        AGENT.launched(self)
        # RunInstances with IamInstanceProfile: moto associates the profile just after the instance, but
        # the instance booted with it (its agent registers at boot)
        if kwargs.get("iam_instance_profile_name") or kwargs.get("iam_instance_profile_arn"):
            AGENT.profile_since.setdefault(self.id, AGENT.booted_at[self.id] - 1)

    def instance_reboot(self: Any) -> None:
        reboot(self)
        AGENT.rebooted(self.id)

    def association_init(self: Any, *args: Any, **kwargs: Any) -> None:
        assoc_init(self, *args, **kwargs)
        AGENT.associated(self.instance_id)

    ec2_instances.Instance.__init__ = instance_init  # type: ignore[method-assign]
    ec2_instances.Instance.reboot = instance_reboot  # type: ignore[method-assign]
    IamInstanceProfileAssociation.__init__ = association_init  # type: ignore[method-assign]
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information  # type: ignore[attr-defined]
    SimpleSystemManagerResponse._regvault_agent = True  # type: ignore[attr-defined]
