"""Drift alerts: Slack incoming webhook, generic JSON webhook, SMTP email, and always a local JSONL log.

:func:`send_alerts` consumes a :class:`DriftSummary`. The same condition is not re-alerted on a channel
within ``alerts.cooldown_minutes`` of its delivery there; a recovery after drift sends an all-clear. A
failing channel is retried with exponential backoff, reported, and never stops the others; the alert stays
in the local log, marked undelivered, and the channel gets it again on the next check. Secrets (webhook
URLs, SMTP credentials) come from settings as ``SecretStr`` and are redacted from everything written.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from medpipe.config import AlertsConfig
from medpipe.errors import TransientError, is_transient
from medpipe.settings import Settings
from monitoring.summary import DriftSummary

if TYPE_CHECKING:
    from monitoring.retrain import RetrainDecision

log = logging.getLogger(__name__)
STATE_FILE = "alert-state.json"
NO_CHANNEL = "No channel configured: written to alerts.jsonl"
_URL = re.compile(r"(https?://[^/\s'\"]+)[^\s'\"]*")


@dataclass
class AlertOutcome:
    """What happened: ``action`` is drift | recovered | suppressed | none; per-channel delivery results."""

    action: str
    reason: str
    # channel -> "delivered" | "failed: ..." | "suppressed: ..."
    deliveries: dict[str, str] = field(default_factory=dict)
    delivered: bool = True
    alert: dict[str, Any] | None = None

    @property
    def failed_channels(self) -> list[str]:
        return [c for c, r in self.deliveries.items() if r.startswith("failed")]


def redact(text: str, secrets: list[SecretStr | None] = ()) -> str:
    """Remove secret values and URL paths (where webhook tokens live) from ``text``."""
    for secret in secrets:
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return _URL.sub(r"\1/***", text)


def _secrets(settings: Settings) -> list[SecretStr | None]:
    return [settings.slack_webhook_url, settings.webhook_url, settings.smtp_user, settings.smtp_password]


# --- message ---------------------------------------------------------------------------------
def build_alert(
    summary: DriftSummary, kind: str, report_path: str | None = None, retrain: RetrainDecision | None = None
) -> dict[str, Any]:
    """The alert payload: what drifted (p-values vs thresholds, 4 significant digits), window, model
    version, the report, and the retraining decision with its reason."""
    signals = [
        {
            "name": s.name,
            "kind": s.kind,
            "score": float(f"{s.score:.4g}"),
            "value": None if s.value is None else float(f"{s.value:.4g}"),
            "threshold": float(f"{s.threshold:.4g}"),
            "rule": s.rule,
            "drifted": s.drifted,
        }
        for s in summary.signals
    ]
    report = report_path or summary.report_paths.get("html")
    drifted = [s.name for s in summary.drifted_signals]
    if kind == "drift":
        title = f"medpipe: drift detected ({', '.join(drifted)})"
    else:
        title = "medpipe: all clear, drift has recovered"
    return {
        "kind": kind,
        "title": title,
        "condition": summary.condition(),
        "drifted": drifted,
        "signals": signals,
        "window_size": summary.window_size,
        "window_start": summary.window_start,
        "window_end": summary.window_end,
        "estimated_accuracy": summary.estimated_accuracy,
        "reference_accuracy": summary.reference_accuracy,
        "model_version": summary.model_version,
        "source": summary.source,
        "report": report,
        "retrain": None
        if retrain is None
        else {"started": retrain.started, "reason": retrain.reason, "run": retrain.run, "text": retrain.text()},
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def format_text(alert: dict[str, Any]) -> str:
    lines = [alert["title"]]
    for s in alert["signals"]:
        mark = ("DRIFT" if s.get("kind") != "estimate" else "WARN") if s["drifted"] else "ok"
        what = "p" if s.get("kind", "test") == "test" else "value"
        lines.append(f"- {s['name']}: {what} {s['score']} (drift if {s['rule']} {s['threshold']}) {mark}")
    est = alert.get("estimated_accuracy")
    ref = alert.get("reference_accuracy")
    if est is not None:
        lines.append(f"estimated accuracy {est:.3f}" + (f" (reference {ref:.3f})" if ref is not None else ""))
    window = f"{alert['window_size']} images"
    if alert.get("window_start"):
        window += f" from {alert['window_start']} to {alert['window_end']}"
    lines.append(f"window: {window}; model version: {alert.get('model_version') or 'unknown'}")
    if alert.get("retrain"):
        lines.append(f"retraining: {alert['retrain']['text']}")
    if alert.get("report"):
        lines.append(f"report: {alert['report']}")
    if alert.get("delivery"):
        lines.append(alert["delivery"])
    return "\n".join(lines)


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook format: ``text`` fallback + one section block in mrkdwn."""
    text = format_text(alert)
    return {"text": alert["title"], "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


# --- channels --------------------------------------------------------------------------------
def _post_json(url: SecretStr, payload: dict[str, Any]) -> None:
    """POST JSON through httpx's transport: ``httpx.Client`` logs every request URL at INFO, and a webhook URL
    carries its token. 5xx/429 and an unreachable receiver are transient (retried), any other answer is not."""
    import httpx

    request = httpx.Request(
        "POST",
        url.get_secret_value(),
        content=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        extensions={"timeout": httpx.Timeout(10.0).as_dict()},
    )
    try:
        with httpx.HTTPTransport() as transport:
            response = transport.handle_request(request)
            response.read()
    except httpx.TransportError as err:
        raise ConnectionError(f"webhook unreachable: {type(err).__name__}") from None
    status = response.status_code
    if status >= 500 or status == 429:
        raise TransientError(f"HTTP {status}")
    if status >= 300:
        raise RuntimeError(f"HTTP {status}")


def _send_email(alert: dict[str, Any], cfg: AlertsConfig, settings: Settings) -> None:
    email = cfg.email
    if not email.recipients:
        raise ValueError("alerts.email.recipients is empty; list at least one address in params.yaml")
    msg = EmailMessage()
    msg["Subject"] = alert["title"]
    msg["From"] = email.sender
    msg["To"] = ", ".join(email.recipients)
    msg.set_content(format_text(alert))
    with smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=15) as smtp:
        if email.starttls:
            context = ssl.create_default_context(cafile=email.ca_file) if email.ca_file else None
            smtp.starttls(context=context or ssl.create_default_context())
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user.get_secret_value(), settings.smtp_password.get_secret_value())
        smtp.send_message(msg)


def _channels(cfg: AlertsConfig, settings: Settings) -> dict[str, Callable[[dict[str, Any]], None]]:
    channels: dict[str, Callable[[dict[str, Any]], None]] = {}
    if cfg.slack.enabled:
        url = settings.slack_webhook_url

        def slack(alert: dict[str, Any]) -> None:
            if url is None:
                raise ValueError("MEDPIPE_SLACK_WEBHOOK_URL is not set")
            _post_json(url, slack_payload(alert))

        channels["slack"] = slack
    if cfg.webhook.enabled:
        hook = settings.webhook_url

        def webhook(alert: dict[str, Any]) -> None:
            if hook is None:
                raise ValueError("MEDPIPE_WEBHOOK_URL is not set")
            _post_json(hook, alert)

        channels["webhook"] = webhook
    if cfg.email.enabled:
        channels["email"] = lambda alert: _send_email(alert, cfg, settings)
    return channels


def _deliver(
    name: str, send: Callable[[dict[str, Any]], None], alert: dict[str, Any], cfg: AlertsConfig, settings: Settings
) -> str:
    """Send through one channel; transient failures (unreachable, 5xx) are retried ``alerts.retries`` times, a
    deterministic one (404, bad credentials) fails at once. Never raises: the outcome is reported."""
    secrets = _secrets(settings)

    def report(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        error = redact(f"{type(err).__name__}: {err}", secrets)
        log.warning("alert channel %s failed (attempt %d/%d): %s", name, state.attempt_number, cfg.retries + 1, error)

    retrying = Retrying(
        stop=stop_after_attempt(cfg.retries + 1),
        wait=wait_exponential(multiplier=cfg.backoff_s, min=cfg.backoff_s),
        retry=retry_if_exception(is_transient),
        after=report,
        reraise=True,
    )
    try:
        retrying(send, alert)
    except Exception as err:  # noqa: BLE001 - any channel failure is reported, never raised
        if not is_transient(err):
            report_once = f"{type(err).__name__}: {err}"
            log.warning("alert channel %s failed (not retried): %s", name, redact(report_once, secrets))
        return f"failed: {redact(f'{type(err).__name__}: {err}', secrets)}"
    return "delivered"


# --- state -----------------------------------------------------------------------------------
def _state_path(settings: Settings) -> Path:
    return settings.home / STATE_FILE


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _channel_action(
    summary: DriftSummary, channel: dict[str, Any], cfg: AlertsConfig, now: datetime
) -> tuple[str, str]:
    """What one channel should get, from what it was last *delivered*: drift | recovered | suppressed | none."""
    if summary.status == "not_enough_data":
        return "none", "not enough data for a verdict: no alert"
    if summary.drift_detected:
        last_sent = channel.get("last_sent")
        same = channel.get("condition") == summary.condition() and channel.get("kind") == "drift"
        if same and last_sent and now - datetime.fromisoformat(last_sent) < timedelta(minutes=cfg.cooldown_minutes):
            return "suppressed", f"same condition delivered at {last_sent} ({cfg.cooldown_minutes:g} min cooldown)"
        return "drift", "new drift condition" if not same else "cooldown expired"
    if channel.get("kind") == "drift":
        return "recovered", "drift has recovered: all-clear"
    return "none", "no drift"


def send_alerts(
    summary: DriftSummary,
    cfg: AlertsConfig,
    settings: Settings,
    now: datetime | None = None,
    retrain: RetrainDecision | None = None,
) -> AlertOutcome:
    """Alert on ``summary`` through every enabled channel, honouring dedup/cooldown; always log locally.

    State is kept per channel and only a delivered alert starts a channel's cooldown: a channel that failed
    gets the alert again on the next check, even while the channels that delivered it stay quiet. With no
    channel enabled, the local log itself is deduplicated the same way, and the alert says so ("No channel
    configured: written to alerts.jsonl") and counts as not delivered.
    """
    now = now or datetime.now(UTC)
    path = _state_path(settings)
    state = _read_state(path).get("channels", {})
    senders = _channels(cfg, settings)
    names = list(senders) or ["log"]
    plans = {name: _channel_action(summary, state.get(name, {}), cfg, now) for name in names}
    to_send = {name: kind for name, (kind, _) in plans.items() if kind in ("drift", "recovered")}
    if not to_send:
        action = "suppressed" if any(kind == "suppressed" for kind, _ in plans.values()) else "none"
        return AlertOutcome(action, next(reason for kind, reason in plans.values() if kind == action))
    action = "drift" if "drift" in to_send.values() else "recovered"
    alert = build_alert(summary, action, retrain=retrain)
    if not senders:
        alert["delivery"] = NO_CHANNEL
    deliveries = {name: _deliver(name, senders[name], alert, cfg, settings) for name in to_send if name in senders}
    deliveries |= {name: f"suppressed: {reason}" for name, (kind, reason) in plans.items() if kind == "suppressed"}
    # the local log is not a delivery: with no channel nothing was delivered, and the alert says so
    delivered = bool(senders) and all(deliveries[name] == "delivered" for name in to_send)
    _append_log(settings.alert_log, {**alert, "deliveries": deliveries, "delivered": delivered}, settings)
    for name, kind in to_send.items():
        if name not in senders or deliveries[name] == "delivered":
            state[name] = {"kind": kind, "condition": summary.condition(), "last_sent": now.isoformat()}
    _write_state(path, {"channels": state})
    reason = "; ".join(sorted({plans[name][1] for name in to_send}))
    return AlertOutcome(action, reason, deliveries, delivered, alert)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def _append_log(path: Path, record: dict[str, Any], settings: Settings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(redact(json.dumps(record, default=str), _secrets(settings)) + "\n")


def read_alert_log(path: Path) -> list[dict[str, Any]]:
    """Every alert in the local JSONL log (oldest first)."""
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


__all__ = ["AlertOutcome", "build_alert", "format_text", "read_alert_log", "redact", "send_alerts", "slack_payload"]
