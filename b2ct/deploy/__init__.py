"""Deploy: run the site playbook and roles/ through ansible-runner, with progress and a per-host summary."""

from b2ct.deploy.result import DeployResult, HostStats
from b2ct.deploy.runner import content_root, run

__all__ = ["DeployResult", "HostStats", "content_root", "run"]
