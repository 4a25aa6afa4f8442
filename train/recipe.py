"""Training recipes as files: `mdx train --config recipe.json` (or .yaml), flags overriding the file.

A recipe holds TrainConfig's keys, the form `record.json` stores a run's effective config in, so a
run's `config` can be handed back as a recipe. The CLI's own names are accepted too where they differ
from TrainConfig's (`lr`, and the augmentation flags at the top level: `flip`, `zoom`, `rotation`, ...).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from mdx.errors import ConfigError
from mdx.train.config import Augmentation, TrainConfig

# CLI option name -> TrainConfig key, where they differ
TOP_ALIASES = {"lr": "lr_frozen"}
# CLI option name -> Augmentation key (the CLI has them at the top level)
AUGMENTATION_ALIASES = {"flip": "horizontal_flip", "zoom": "zoom", "stretch": "stretch", "shift": "shift",
                        "shear": "shear", "rotation": "rotation_degrees", "brightness": "brightness",
                        "contrast": "contrast"}


def valid_keys() -> list[str]:
    return sorted({f.name for f in dataclasses.fields(TrainConfig)} | set(TOP_ALIASES) | set(AUGMENTATION_ALIASES))


def read_recipe(path: Path) -> dict[str, Any]:
    """The recipe file as a dict of TrainConfig keys (aliases translated).

    Raises:
        ConfigError: the file is missing, not JSON/YAML, not a mapping, or names an unknown key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror}); give a JSON or YAML recipe file") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            values = _yaml(path, text)
        else:
            values = json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"--config {path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                          f"({exc}); see benchmarks/configs/ for examples") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: holds a {type(values).__name__}; a recipe is a mapping of keys to values")
    unknown = sorted(set(values) - set(valid_keys()))
    if unknown:
        raise ConfigError(f"--config {path}: unknown key(s) {unknown}; valid keys: {', '.join(valid_keys())}")
    return translate(values)


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ModuleNotFoundError:
        raise ConfigError(f"--config {path}: YAML needs PyYAML (pip install pyyaml), or write the recipe as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None


def translate(values: dict[str, Any]) -> dict[str, Any]:
    """CLI names -> TrainConfig keys, the augmentation flags gathered under `augmentation`."""
    config: dict[str, Any] = {}
    augmentation = dict(values.get("augmentation") or {})
    for key, value in values.items():
        if key in AUGMENTATION_ALIASES:
            augmentation[AUGMENTATION_ALIASES[key]] = value
        elif key != "augmentation":
            config[TOP_ALIASES.get(key, key)] = value
    if augmentation:
        config["augmentation"] = augmentation
    return config


def merge(recipe: dict[str, Any], flags: dict[str, Any]) -> TrainConfig:
    """The effective config: the recipe, then each flag given on the command line (CLI names) on top."""
    given = translate(flags)
    merged = {**recipe, **{k: v for k, v in given.items() if k != "augmentation"}}
    if "augmentation" in recipe or "augmentation" in given:
        base = recipe.get("augmentation", {})
        if isinstance(base, Augmentation):
            base = base.to_dict()
        merged["augmentation"] = {**base, **given.get("augmentation", {})}
    return TrainConfig.from_dict(merged)


def recipe_config(recipe: Path | None, typed: dict[str, Any]) -> TrainConfig:
    """`merge` of the recipe file (if any) and the typed options, an invalid result named by the file."""
    if recipe is None:
        return merge({}, typed)
    values = read_recipe(recipe)
    try:
        return merge(values, typed)
    except ConfigError as exc:
        raise ConfigError(f"--config {recipe} (with the options given): {exc}") from None
