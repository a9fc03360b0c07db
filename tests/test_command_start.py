"""The shared start of every subcommand (orchestrator/config/argv.py): help, own arguments, and the
config's credentials masked in the log lines of any command, not only `prismrl train`."""
from __future__ import annotations

import logging

from orchestrator.config.argv import command_config, split_own

SECRET = "PLANTED-cmd-s3cr3t"


def test_help_prints_the_doc_and_loads_nothing(capsys):
    assert command_config(["tiny", "--help"], "sweep", "the sweep's doc") is None
    assert "the sweep's doc" in capsys.readouterr().out


def test_own_arguments_are_split_from_config_overrides():
    argv, own = split_own(["tiny", "steps=3", "grpo.lr=1e-5", "pretrained=/p"], ("steps", "pretrained"))
    assert argv == ["tiny", "grpo.lr=1e-5"] and own == {"steps": "3", "pretrained": "/p"}


def test_credentials_are_masked_in_every_log_line_after_the_start(tmp_path):
    stream = tmp_path / "log.txt"
    handler = logging.FileHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        cfg = command_config(["tiny", f"run_dir={tmp_path}", f"data.s3.secret={SECRET}"], "eval", None)
        assert cfg.data.s3.secret == SECRET  # the run itself still has it
        logging.getLogger("prismrl.anything").warning("connecting with %s", cfg.data.s3.secret)
    finally:
        root.removeHandler(handler)
        handler.close()
    text = stream.read_text()
    assert "connecting with" in text and SECRET not in text
