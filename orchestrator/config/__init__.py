"""Typed configuration: schema, presets and loading."""
from orchestrator.config.load import ConfigError, flatten, from_dict, load_config, to_dict
from orchestrator.config.schema import PrismConfig

__all__ = ["ConfigError", "PrismConfig", "flatten", "from_dict", "load_config", "to_dict"]
