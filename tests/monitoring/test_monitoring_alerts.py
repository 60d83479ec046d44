"""Alerts through real local receivers: an HTTP server (Slack + JSON webhook) and an SMTP server (aiosmtpd,
STARTTLS + AUTH). Cooldown, recovery, a dead channel, and secrets that never leak."""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medpipe.config import AlertsConfig
from monitoring.alerts import read_alert_log, redact, send_alerts
from monitoring.summary import DriftSummary, Signal
from tests.helpers.ports import free_port

SLACK_TOKEN = "T000/B000/slack-secret-token"
HOOK_TOKEN = "hook-secret-token"
SMTP_PASSWORD = "smtp-secret-password"


@pytest.fixture
def failing_paths() -> set[str]:
    """Path prefixes the local receiver answers with HTTP 500 (a channel that is down); edit it in a test."""
    return set()


@pytest.fixture
def http_receiver(failing_paths: set[str]):
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if any(self.path.startswith(p) for p in failing_paths):
                self.send_response(500)
                self.end_headers()
                return
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import ipaddress

    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def smtp_receiver(tmp_path: Path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    messages: list = []
    logins: list[str] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            messages.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"alerts" and auth_data.password == SMTP_PASSWORD.encode()
        logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    yield port, str(cert), messages, logins
    controller.stop()


def _summary(drift: bool = True, names: tuple[str, ...] = ("embedding",)) -> DriftSummary:
    signals = [Signal(n, 0.9, 0.6, drift, ">") for n in names] + [Signal("confidence", 0.5, 0.01, False, "<")]
    return DriftSummary(
        drift_detected=drift,
        status="drift" if drift else "ok",
        signals=signals,
        window_size=120,
        reference_size=624,
        estimated_accuracy=0.71,
        reference_accuracy=0.83,
        model_version="7",
        report_paths={"html": "/reports/drift-1.html"},
    )


@pytest.fixture
def alert_env(medpipe_home, monkeypatch, http_receiver, smtp_receiver):
    from medpipe.settings import get_settings

    url, received = http_receiver
    port, ca, messages, logins = smtp_receiver
    monkeypatch.setenv("MEDPIPE_SLACK_WEBHOOK_URL", f"{url}/services/{SLACK_TOKEN}")
    monkeypatch.setenv("MEDPIPE_WEBHOOK_URL", f"{url}/hook/{HOOK_TOKEN}")
    monkeypatch.setenv("MEDPIPE_SMTP_USER", "alerts")
    monkeypatch.setenv("MEDPIPE_SMTP_PASSWORD", SMTP_PASSWORD)
    get_settings.cache_clear()
    cfg = AlertsConfig.model_validate(
        {
            "slack": {"enabled": True},
            "webhook": {"enabled": True},
            "email": {
                "enabled": True,
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "starttls": True,
                "recipients": ["oncall@example.org"],
                "ca_file": ca,
            },
            "cooldown_minutes": 60,
            "retries": 1,
            "backoff_s": 0.01,
        }
    )
    return cfg, get_settings(), received, messages, logins


def test_all_channels_deliver_then_cooldown_then_all_clear(alert_env, caplog) -> None:
    cfg, settings, received, messages, logins = alert_env
    caplog.set_level(logging.DEBUG)  # every logger, httpx/urllib included
    t0 = datetime(2026, 1, 1, tzinfo=dt.UTC)
    out = send_alerts(_summary(), cfg, settings, now=t0)
    assert out.action == "drift" and out.delivered, out.deliveries
    assert out.deliveries == {"slack": "delivered", "webhook": "delivered", "email": "delivered"}
    paths = {p.split("/")[1]: body for p, body in received}
    assert paths["services"]["text"].startswith("medpipe: drift detected (embedding)")
    block = paths["services"]["blocks"][0]
    assert block["type"] == "section" and "0.9" in block["text"]["text"]
    hook = paths["hook"]
    assert hook["drifted"] == ["embedding"] and hook["window_size"] == 120 and hook["model_version"] == "7"
    expected = {"name": "embedding", "kind": "test", "score": 0.9, "value": None, "threshold": 0.6, "rule": ">"}
    assert {**expected, "drifted": True} in hook["signals"]
    assert hook["report"] == "/reports/drift-1.html"
    assert len(messages) == 1 and logins == ["alerts"]
    body = messages[0].content.decode()
    assert "drift detected" in body and "oncall@example.org" in messages[0].rcpt_tos

    # the same condition inside the cooldown: suppressed, nothing sent
    again = send_alerts(_summary(), cfg, settings, now=t0 + timedelta(minutes=30))
    assert again.action == "suppressed" and len(received) == 2 and len(messages) == 1
    # after the cooldown it alerts again; a new condition alerts at once
    assert send_alerts(_summary(), cfg, settings, now=t0 + timedelta(minutes=61)).action == "drift"
    new = send_alerts(_summary(names=("embedding", "image_features")), cfg, settings, now=t0 + timedelta(minutes=62))
    assert new.action == "drift" and len(messages) == 3
    # recovery sends an all-clear once
    clear = send_alerts(_summary(drift=False), cfg, settings, now=t0 + timedelta(minutes=63))
    slack_texts = [body["text"] for path, body in received if path.startswith("/services/")]
    assert clear.action == "recovered" and "all clear" in slack_texts[-1]
    assert send_alerts(_summary(drift=False), cfg, settings, now=t0 + timedelta(minutes=64)).action == "none"
    records = read_alert_log(settings.alert_log)
    assert [r["kind"] for r in records] == ["drift", "drift", "drift", "recovered"]
    assert all(r["delivered"] for r in records)
    # secrets never in the local log, the state file or the logs
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))  # not the server's
    blob = settings.alert_log.read_text() + (settings.home / "alert-state.json").read_text() + ours
    for secret in (SLACK_TOKEN, HOOK_TOKEN, SMTP_PASSWORD):
        assert secret not in blob


def test_dead_channel_does_not_lose_the_alert(alert_env, monkeypatch, caplog) -> None:
    from medpipe.settings import get_settings

    cfg, _, received, messages, _ = alert_env
    dead = free_port()  # nothing listens there
    monkeypatch.setenv("MEDPIPE_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{dead}/services/{SLACK_TOKEN}")
    get_settings.cache_clear()
    settings = get_settings()
    caplog.set_level(logging.WARNING)
    out = send_alerts(_summary(), cfg, settings)
    assert out.deliveries["slack"].startswith("failed:") and out.failed_channels == ["slack"]
    assert out.deliveries["webhook"] == "delivered" and out.deliveries["email"] == "delivered"
    assert not out.delivered and len(received) == 1 and len(messages) == 1
    (record,) = read_alert_log(settings.alert_log)
    assert record["delivered"] is False and record["deliveries"]["slack"].startswith("failed")
    assert caplog.text.count("alert channel slack failed") == cfg.retries + 1  # retried, and reported
    blob = settings.alert_log.read_text() + caplog.text + json.dumps(out.deliveries)
    assert SLACK_TOKEN not in blob


def test_only_a_delivered_alert_starts_a_channel_cooldown(alert_env, failing_paths) -> None:
    """The webhook receiver answers 500 during the first check: that channel is not in cooldown afterwards."""
    cfg, settings, received, messages, _ = alert_env
    t0 = datetime(2026, 1, 1, tzinfo=dt.UTC)
    failing_paths.add("/hook/")
    first = send_alerts(_summary(), cfg, settings, now=t0)
    assert first.failed_channels == ["webhook"] and not first.delivered
    assert [p.split("/")[1] for p, _ in received] == ["services"] and len(messages) == 1

    failing_paths.clear()  # the webhook is back: the same condition, inside the cooldown
    second = send_alerts(_summary(), cfg, settings, now=t0 + timedelta(minutes=10))
    assert second.action == "drift" and second.deliveries["webhook"] == "delivered", second.deliveries
    assert second.deliveries["slack"].startswith("suppressed") and second.deliveries["email"].startswith("suppressed")
    assert [p.split("/")[1] for p, _ in received] == ["services", "hook"] and len(messages) == 1

    # now every channel has it: all in cooldown; recovery reaches every channel that got the drift
    assert send_alerts(_summary(), cfg, settings, now=t0 + timedelta(minutes=20)).action == "suppressed"
    clear = send_alerts(_summary(drift=False), cfg, settings, now=t0 + timedelta(minutes=30))
    assert clear.action == "recovered" and set(clear.deliveries) == {"slack", "webhook", "email"}
    records = read_alert_log(settings.alert_log)
    assert [(r["kind"], r["delivered"]) for r in records] == [("drift", False), ("drift", True), ("recovered", True)]


def test_not_enough_data_never_alerts(alert_env) -> None:
    cfg, settings, received, _, _ = alert_env
    summary = DriftSummary(False, "not_enough_data", [], window_size=3, reference_size=624)
    assert send_alerts(summary, cfg, settings).action == "none" and received == []
    assert not settings.alert_log.exists()


def test_no_channel_says_so_with_report_and_retrain_decision(medpipe_home) -> None:
    from medpipe.settings import get_settings
    from monitoring.alerts import NO_CHANNEL, format_text
    from monitoring.retrain import RetrainDecision

    settings = get_settings()
    summary = _summary()
    summary.signals.append(Signal("embedding_mmd", 3.2e-07, 0.0167, True, "<", "", 0.41))
    refused = RetrainDecision(False, "retrain cooldown: last retrain at 2026-01-01T00:00:00+00:00, 12 h cooldown")
    out = send_alerts(summary, AlertsConfig(), settings, retrain=refused)
    assert out.action == "drift" and out.deliveries == {} and out.delivered is False
    (record,) = read_alert_log(settings.alert_log)
    assert record["delivery"] == NO_CHANNEL == "No channel configured: written to alerts.jsonl"
    assert record["delivered"] is False and record["report"] == "/reports/drift-1.html"
    assert record["retrain"] == {"started": False, "reason": refused.reason, "run": None, "text": refused.text()}
    mmd = next(s for s in record["signals"] if s["name"] == "embedding_mmd")
    assert mmd["score"] == 3.2e-07 and mmd["value"] == 0.41  # p-values are not rounded away
    text = format_text(record)
    assert "retraining: not started: retrain cooldown" in text and NO_CHANNEL in text and "p 3.2e-07" in text


def test_redact() -> None:
    from pydantic import SecretStr

    text = redact("POST https://hooks.slack.com/services/T/B/xyz failed; pw=hunter2", [SecretStr("hunter2")])
    assert "xyz" not in text and "hunter2" not in text and "https://hooks.slack.com/***" in text
