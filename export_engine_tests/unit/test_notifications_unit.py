"""Pure parts of the notifications: signatures (checked by the `standardwebhooks` package), address
rules, the retry schedule and the Telegram texts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from export_engine.db.events import EVENT_TYPES
from export_engine.notifications import signing
from export_engine.notifications.dispatch import MAX_DELAY_SECONDS, retry_delay
from export_engine.notifications.errors import UnsafeUrl
from export_engine.notifications.ssrf import check_url, parse_networks
from export_engine.notifications.telegram import completion_text, failure_text, humanize


def test_our_signature_verifies_with_the_standardwebhooks_package():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "export.completed", "data": {"reference_id": "r"}}).encode()
    import time

    headers = signing.headers("evt_1", int(time.time()), body, [secret])
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(secret).verify(body + b" ", headers)


def test_during_a_rotation_both_secrets_sign():
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"type":"export.failed"}'
    import time

    headers = signing.headers("evt_2", int(time.time()), body, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/x", "loopback"),
        ("http://10.0.0.1/x", "private"),
        ("http://172.16.5.4/x", "private"),
        ("http://192.168.1.1/x", "private"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://[::1]/x", "loopback"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://[::ffff:10.0.0.1]/x", "private"),
        ("http://0.0.0.0/x", "unspecified"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://1.1.1.1/", "only http and https"),
        ("http://user:pw@1.1.1.1/", "credentials"),
    ],
)
def test_urls_that_are_not_public_http_are_refused(url, reason):
    with pytest.raises(UnsafeUrl, match=reason):
        check_url(url, [])


def test_public_and_allow_listed_addresses_pass():
    check_url("https://1.1.1.1/hook", [])
    check_url("http://127.0.0.1:8080/hook", parse_networks("127.0.0.0/8, ::1/128"))
    with pytest.raises(UnsafeUrl):
        check_url("http://10.0.0.1/hook", parse_networks("127.0.0.0/8"))


def test_retry_delays_double_with_jitter_and_are_capped():
    for attempt, nominal in [(1, 5), (2, 10), (3, 20), (6, 160)]:
        delays = [retry_delay(attempt, 5) for _ in range(200)]
        assert nominal * 0.8 <= min(delays) and max(delays) <= nominal * 1.2
        assert max(delays) - min(delays) > 0  # jittered
    assert retry_delay(40, 5) <= MAX_DELAY_SECONDS * 1.2


@pytest.mark.parametrize(
    ("lifetime", "text"),
    [
        (timedelta(hours=24), "24 hours"),
        (timedelta(hours=23, minutes=59, seconds=58), "24 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=45), "45 minutes"),
        (timedelta(seconds=20), "1 minute"),
        (timedelta(days=7), "7 days"),
    ],
)
def test_link_lifetimes_read_naturally(lifetime, text):
    assert humanize(lifetime) == text


def test_the_completion_text_is_the_seeds_and_escaped():
    text = completion_text(
        dataset_name="Spend <by> tag & co",
        row_count=1234567,
        url="https://s3.example/x?a=1&b=2",
        label="CSV",
        lifetime=timedelta(hours=1),
    )
    assert text == (
        "<b>Export Ready</b>\n\nYour <b>Spend &lt;by&gt; tag &amp; co</b> export is ready.\nRows: 1,234,567\n\n"
        '<a href="https://s3.example/x?a=1&amp;b=2">Download CSV</a>\n\n<i>Link expires in 1 hour</i>'
    )
    assert "&lt;script&gt;" in failure_text(dataset_name="T", reason="<script>")


def test_the_event_types_are_listed_once():
    assert EVENT_TYPES == (
        "export.created",
        "export.running",
        "export.completed",
        "export.failed",
        "export.canceled",
        "export.expired",
        "export.superseded",
    )
