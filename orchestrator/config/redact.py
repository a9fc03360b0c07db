"""The one rule that keeps credentials out of everything a run writes.

A config value is a credential when the last part of its key is `key`, `secret`, `password`,
`passwd`, `token` or `credential(s)`, alone or after an underscore (`data.s3.key`, `data.s3.secret`,
a reward plugin's `options.api_key`, any future `*_token`). Such a value, the password part of a
URL (`scheme://user:PASSWORD@host`) and the value of a `key=value` override naming such a key
(`sweep.trial_overrides`) are replaced by `REDACTED` wherever the config is flattened or saved:
MLflow params, summary.json, checkpoints' controller.json, sweep configs. Credentials reach the
run only in memory (see README, "Credentials").
"""
from __future__ import annotations

import logging
import re
from typing import Any, Iterable

REDACTED = "<redacted>"
"""What a credential's value reads as once saved."""
SECRET_NAME = re.compile(r"(^|_)(key|secret|password|passwd|token|credentials?)$", re.IGNORECASE)
"""Leaf key names that hold credentials."""
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@/\s]+)(?P<at>@)")


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) config key names a credential, judged by its last part."""
    return bool(SECRET_NAME.search(str(key).rsplit(".", 1)[-1]))


def redact_text(text: str) -> str:
    """`text` with URL passwords and `secret_key=value` overrides masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED + m.group("at"), text)
    if "=" in text:
        key, value = text.split("=", 1)
        if is_secret_key(key.strip()) and value:
            return f"{key}={REDACTED}"
    return text


def redact(data: Any, key: str = "") -> Any:
    """A copy of a nested dict/list config with every credential masked (None and '' stay: nothing to hide)."""
    if isinstance(data, dict):
        return {k: redact(v, str(k)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact(v, key) for v in data]
    if key and is_secret_key(key) and data not in (None, ""):
        return REDACTED
    if isinstance(data, str):
        return redact_text(data)
    return data


def secret_values(data: Any, key: str = "") -> list[str]:
    """Every non-empty credential value in a nested dict (to mask them in log lines)."""
    out: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out += secret_values(v, str(k))
    elif isinstance(data, (list, tuple)):
        for v in data:
            out += secret_values(v, key)
    elif isinstance(data, str):
        if key and is_secret_key(key) and data:
            out.append(data)
        m = _URL_PASSWORD.search(data)
        if m:
            out.append(m.group("pw"))
        if "=" in data and is_secret_key(data.split("=", 1)[0].strip()) and data.split("=", 1)[1]:
            out.append(data.split("=", 1)[1])
    return out


class RedactingFilter(logging.Filter):
    """Masks given credential values in every record that passes through a handler."""

    def __init__(self, values: Iterable[str]):
        super().__init__()
        self.values = sorted({v for v in values if v}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.values:
            message = record.getMessage()
            masked = message
            for v in self.values:
                masked = masked.replace(v, REDACTED)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


def mask_secrets_in_logs(data: Any) -> None:
    """Install a `RedactingFilter` for the credentials in `data` (a config dict) on the root logger's handlers."""
    values = secret_values(data)
    if not values:
        return
    flt = RedactingFilter(values)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
