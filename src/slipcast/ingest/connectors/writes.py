"""Writes into a tracker: the description of a Jira fix version or a GitHub milestone, and a Jira
project's entity property; each read just before it is written, so that the text written is
computed from the text as it is then (docs/architecture.md, "Publishing into the tracker").

The requests go through ``http.Client``: credentials from the environment to the configured
origin only, 429 and 502-504 retried, the sync's bounds, scrubbed errors; a 403 on a write is an
error naming the permission it needs. Which milestones of the store are a tracker's fix versions
or milestones is read from their ids, as the importers make them (``VERSION_PREFIX``,
``github.milestone_id``). No issue is written: a version's description and a project property
send no notifications (Jira's ``notifyUsers`` concerns issue edits only).
"""

from __future__ import annotations

import os
import re
from typing import Protocol

from slipcast.core.settings import SyncSettings
from slipcast.ingest.connectors.http import Client, ConnectorError, origin, parsed, segment
from slipcast.ingest.connectors.jira import credentials
from slipcast.ingest.importers.github import milestone_id
from slipcast.ingest.importers.jira_json import VERSION_PREFIX

JIRA_DESCRIPTION_BYTES = 16_384  # the most a Jira version's description holds
JIRA_PROPERTY_BYTES = 32_768  # the most a Jira entity property's value holds
JIRA_ADMIN = "the Administer Projects permission on the project (version descriptions and project properties)"
GITHUB_WRITE = "Issues: read and write (a fine-grained token) or the repo scope (a classic token)"
_VERSION = re.compile(re.escape(VERSION_PREFIX) + r"([0-9]{1,18})")


class Descriptions(Protocol):
    """What publishing needs of a tracker: its targets, their descriptions read and written."""

    tracker: str
    site: str

    def target(self, milestone: str, project: str) -> str | None:
        """The tracker's own id of a store's milestone (a version id, a milestone number), or None
        where the milestone is none of the tracker's (a sprint, another repository)."""

    def shown(self, target: str) -> str:
        """A target as reports and the ledger name it."""

    def description(self, target: str) -> str:
        """The target's description as it is now ("" where it has none)."""

    def describe(self, target: str, text: str) -> None:
        """Replace the target's description by ``text``."""

    def too_long(self, text: str) -> str | None:
        """Why the tracker would refuse ``text`` as a description, or None."""

    def close(self) -> None: ...


class JiraDescriptions:
    """A Jira site's fix versions (``/rest/api/3/version/{id}``, Data Center ``/2/``) and project
    properties."""

    tracker = "jira"

    def __init__(self, url: str, flavour: str, bounds: SyncSettings):
        headers, credential = credentials(flavour)
        self.api = "3" if flavour == "cloud" else "2"
        self.site = origin(url)
        self.client = Client(url, {**headers, "Accept": "application/json"}, credential, bounds)

    def target(self, milestone: str, project: str) -> str | None:
        found = _VERSION.fullmatch(milestone)
        return found.group(1) if found else None

    def shown(self, target: str) -> str:
        return f"version {target}"

    def _version(self, target: str) -> str:
        return f"/rest/api/{self.api}/version/{segment(target)}"

    def description(self, target: str) -> str:
        version = parsed(self.client.get(self._version(target)))
        text = version.get("description") if isinstance(version, dict) else None
        if not isinstance(version, dict) or not isinstance(text, str | None):
            raise ConnectorError(f"version {target}: the answer is not a version with a text description")
        return text or ""

    def describe(self, target: str, text: str) -> None:
        self.client.write("PUT", self._version(target), {"description": text}, JIRA_ADMIN)

    def too_long(self, text: str) -> str | None:
        size = len(text.encode())
        return f"{size} bytes, more than a Jira version's {JIRA_DESCRIPTION_BYTES}" \
            if size > JIRA_DESCRIPTION_BYTES else None

    def _property(self, project: str, key: str) -> str:
        return f"/rest/api/{self.api}/project/{segment(project)}/properties/{segment(key)}"

    def project_property(self, project: str, key: str) -> dict | None:
        """A project's entity property ``key`` (None where it has none)."""
        answer = self.client.get(self._property(project, key), missing=True)
        if answer.status_code == 404:
            return None
        found = parsed(answer)
        value = found.get("value") if isinstance(found, dict) else None
        return value if isinstance(value, dict) else None

    def set_project_property(self, project: str, key: str, value: dict, size: int) -> None:
        if size > JIRA_PROPERTY_BYTES:
            raise ConnectorError(f"project {project}: property {key} would be {size} bytes, more than Jira's "
                                 f"{JIRA_PROPERTY_BYTES}")
        self.client.write("PUT", self._property(project, key), value, JIRA_ADMIN)

    def close(self) -> None:
        self.client.close()


class GitHubDescriptions:
    """A GitHub repository's milestones (``/repos/{owner}/{repo}/milestones/{number}``)."""

    tracker = "github"

    def __init__(self, repo: str, api_url: str, bounds: SyncSettings):
        if repo.count("/") != 1:
            raise ValueError(f"--repo must be OWNER/NAME, not {repo!r}")
        token = os.environ.get("GITHUB_TOKEN")
        if not token:
            raise ConnectorError(f"set GITHUB_TOKEN (a token with {GITHUB_WRITE}) in the environment")
        self.repo = repo
        self.site = origin(api_url)
        self.base = "/repos/" + "/".join(segment(part) for part in repo.split("/"))
        self._number = re.compile(re.escape(milestone_id(repo, "")) + r"([0-9]{1,18})")
        self.client = Client(api_url, {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
                                       "Authorization": f"Bearer {token}"}, "GITHUB_TOKEN", bounds)

    def target(self, milestone: str, project: str) -> str | None:
        found = self._number.fullmatch(milestone) if project == self.repo else None
        return found.group(1) if found else None

    def shown(self, target: str) -> str:
        return f"milestone {target} of {self.repo}"

    def description(self, target: str) -> str:
        milestone = parsed(self.client.get(f"{self.base}/milestones/{segment(target)}"))
        text = milestone.get("description") if isinstance(milestone, dict) else None
        if not isinstance(milestone, dict) or not isinstance(text, str | None):
            raise ConnectorError(f"milestone {target}: the answer is not a milestone with a text description")
        return text or ""

    def describe(self, target: str, text: str) -> None:
        self.client.write("PATCH", f"{self.base}/milestones/{segment(target)}", {"description": text}, GITHUB_WRITE)

    def too_long(self, text: str) -> str | None:
        return None

    def close(self) -> None:
        self.client.close()
