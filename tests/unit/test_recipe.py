"""`mdx train --config recipe.json|.yaml`: the file's keys (TrainConfig's or the CLI's names), unknown keys
refused with the valid ones, options typed on the command line over the file, defaults not. No TensorFlow:
the train stage is replaced by one that records the config it is handed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mdx.train.fit
from mdx.cli import app
from mdx.train.config import TrainConfig
from mdx.train.recipe import merge, read_recipe

REPO = Path(__file__).resolve().parents[2]


class Handed(Exception):
    pass


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[TrainConfig]:
    seen: list[TrainConfig] = []

    def fake_train(data_dir, config, out, **kwargs):
        seen.append(config)
        raise Handed

    monkeypatch.setattr(mdx.train.fit, "train", fake_train)
    return seen


def invoke(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["train", str(REPO / "data" / "chest_xray"), "--out", str(tmp_path / "run"),
                                    "--no-audit", *args])


def test_recipe_file_sets_the_config_and_typed_flags_override_it(tmp_path: Path, handed: list) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"input_size": 160, "epochs_finetune": 6, "lr": 5e-4, "rotation": 3.0,
                                  "augmentation": {"contrast": 0.2}}))
    invoke(tmp_path, "--config", str(recipe), "--epochs-finetune", "2", "--seed", "0")
    [config] = handed
    assert (config.input_size, config.epochs_finetune, config.lr_frozen) == (160, 2, 5e-4)
    assert (config.augmentation.rotation_degrees, config.augmentation.contrast) == (3.0, 0.2)
    assert config.augmentation.zoom == TrainConfig().augmentation.zoom  # neither file nor flag: the default


def test_the_options_defaults_are_the_configs_defaults(tmp_path: Path, handed: list) -> None:
    # `mdx train` with no option trains what TrainConfig() and `mdx pipeline` train: one default recipe
    invoke(tmp_path)
    assert handed == [TrainConfig()]


def test_a_runs_recorded_config_is_a_recipe(tmp_path: Path, handed: list) -> None:
    stored = TrainConfig(input_size=96, finetune_blocks=8, patience=0, average_epochs=2)
    recipe = tmp_path / "config.json"
    recipe.write_text(stored.to_json())
    invoke(tmp_path, "--config", str(recipe))
    assert handed == [stored]


def test_yaml_recipe(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("input_size: 128\nflip: false\n")
    expected = TrainConfig.from_dict({"input_size": 128, "augmentation": {"horizontal_flip": False}})
    assert merge(read_recipe(recipe), {}) == expected


@pytest.mark.parametrize(("text", "message"), [
    ('{"epoch": 3}', "unknown key(s) ['epoch']; valid keys: alpha, augmentation,"),
    ("[1, 2]", "holds a list; a recipe is a mapping"),
    ("{not json", "not valid JSON"),
    ('{"input_size": 8}', "recipe.json (with the options given): input_size=8 must be from 32 to 1024"),
])
def test_bad_recipe_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str, handed: list) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text(text)
    done = invoke(tmp_path, "--config", str(recipe))
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in done.output.replace("\n", " "), done.output
    assert not handed


def test_missing_recipe_file(tmp_path: Path, handed: list) -> None:
    done = invoke(tmp_path, "--config", str(tmp_path / "nope.json"))
    assert done.exit_code == 2 and "nope.json: cannot be read" in done.output, done.output
