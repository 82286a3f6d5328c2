"""Settings refused at load: webhook addresses an alert must never be sent to."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from slipcast.core.settings import AlertSubscription, Settings

REFUSED = [
    "ftp://hooks.example/x",  # not http(s)
    "file:///etc/passwd",
    "hooks.example/x",  # no scheme
    "http:///x",  # no host
    "http://169.254.169.254/latest/meta-data/",  # link-local: the cloud metadata service
    "http://169.254.1.2:8080/hook",
    "http://[fe80::1]/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://[::ffff:169.254.169.254]/hook",  # the same, as an IPv4-mapped IPv6 address
    "http://2852039166/hook",  # 169.254.169.254 written as one number
    "http://0xa9.0xfe.0xa9.0xfe/hook",
    "http://[fd00:ec2::254]/latest",  # AWS's IPv6 metadata address
    "http://100.100.100.200/latest",  # Alibaba Cloud's
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://Metadata.Google.Internal./computeMetadata/v1/",
]
ACCEPTED = ["https://hooks.example/x", "http://127.0.0.1:9000/hook", "http://[::1]:9000/hook",
            "https://10.0.0.7/hooks/slipcast"]


@pytest.mark.parametrize("url", REFUSED)
@pytest.mark.parametrize("field", ["url", "page_url"])
def test_a_webhook_url_or_page_url_that_is_not_http_or_reaches_link_local_is_refused(field, url):
    fields = {"url": "https://hooks.example/x", "secret_env": "HOOK_SECRET", field: url}
    with pytest.raises(ValidationError, match=field):
        AlertSubscription(**fields)


@pytest.mark.parametrize("url", ACCEPTED)
def test_ordinary_webhook_addresses_are_accepted(url):
    assert AlertSubscription(url=url, secret_env="HOOK_SECRET", page_url=url).url == url


def test_a_link_local_address_is_taken_only_where_a_setting_allows_it():
    hook = AlertSubscription(url="http://169.254.10.1/hook", secret_env="HOOK_SECRET", allow_link_local=True)
    assert hook.url == "http://169.254.10.1/hook"
    with pytest.raises(ValidationError, match="url"):  # never another scheme
        AlertSubscription(url="gopher://169.254.10.1/hook", secret_env="HOOK_SECRET", allow_link_local=True)


def test_a_profile_or_environment_naming_a_metadata_address_fails_at_load(monkeypatch):
    monkeypatch.setenv("SLIPCAST_SERVING__ALERTS",
                       '[{"url": "http://169.254.169.254/latest/meta-data/", "secret_env": "HOOK_SECRET"}]')
    with pytest.raises(ValidationError, match="link-local"):
        Settings()
