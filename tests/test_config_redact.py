"""The one redaction rule of the config layer: which keys are credentials and how they are masked."""
from __future__ import annotations

import logging

from orchestrator.config import flatten, from_dict, load_config, to_dict
from orchestrator.config.load import carry_secrets
from orchestrator.config.redact import REDACTED, RedactingFilter, is_secret_key, redact, redact_text

PLANTED = "PLANTED-s3cr3t-9f1c"


def test_credential_names_and_no_false_positives_in_the_schema():
    for key in ("data.s3.key", "data.s3.secret", "rewards.semantic.options.api_key", "x.password",
                "x.session_token", "x.credentials", "x.access_key", "x.SECRET"):
        assert is_secret_key(key), key
    full = flatten(to_dict(load_config("tiny"), secrets=True))
    # Only the two S3 fields of today's schema are credentials (max_tokens_per_module, vocab_size are not).
    assert sorted(k for k in full if is_secret_key(k)) == ["data.s3.key", "data.s3.secret"]


def test_config_dict_masks_fields_urls_and_overrides_and_carries_secrets_back():
    cfg = load_config("tiny", [f"data.s3.secret={PLANTED}", "data.s3.key=AKIAPLANTED",
                               f"tracking.tracking_uri=postgresql://bob:{PLANTED}@db:5432/mlflow",
                               f"sweep.trial_overrides=[data.s3.secret={PLANTED},grpo.steps=3]",
                               "rewards.semantic.options={}"])
    saved = to_dict(cfg)
    assert PLANTED not in repr(saved) and "AKIAPLANTED" not in repr(saved)
    assert saved["data"]["s3"] == {"endpoint_url": None, "key": REDACTED, "secret": REDACTED, "region": None}
    assert saved["tracking"]["tracking_uri"] == f"postgresql://bob:{REDACTED}@db:5432/mlflow"
    assert saved["sweep"]["trial_overrides"] == [f"data.s3.secret={REDACTED}", "grpo.steps=3"]
    assert to_dict(cfg, secrets=True)["data"]["s3"]["secret"] == PLANTED  # in memory only
    back = carry_secrets(cfg, from_dict(saved))  # a config loaded from the redacted copy gets them back
    assert (back.data.s3.key, back.data.s3.secret) == ("AKIAPLANTED", PLANTED)
    assert redact({"options": {"api_key": "k", "n": 3, "none_key": None}}) == {
        "options": {"api_key": REDACTED, "n": 3, "none_key": None}}
    assert redact_text("grpo.steps=3") == "grpo.steps=3"


def test_log_filter_masks_values():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "opening with %s", (PLANTED,), None)
    assert RedactingFilter([PLANTED]).filter(record)
    assert record.getMessage() == f"opening with {REDACTED}"


def test_sweep_config_file_is_redacted_and_trials_get_credentials_from_memory(tmp_path):
    from omegaconf import OmegaConf

    from orchestrator.sweeps.sweep import trial_template

    cfg = load_config("tiny", [f"run_dir={tmp_path}", f"data.s3.secret={PLANTED}", "data.s3.key=AKIAPLANTED",
                               "sweep.trial_overrides=[grpo.steps=3]"])
    saved = tmp_path / "sweep_config.yaml"
    OmegaConf.save(OmegaConf.create(to_dict(cfg)), saved)  # as run_sweep saves it
    assert PLANTED not in saved.read_text() and "AKIAPLANTED" not in saved.read_text()
    template = trial_template(cfg, str(saved))
    assert (template.data.s3.key, template.data.s3.secret, template.grpo.steps) == ("AKIAPLANTED", PLANTED, 3)
