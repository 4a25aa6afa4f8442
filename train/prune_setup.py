"""What `mdx prune` prunes and how: its config, the parent run it reads, the layers it wraps, and a
schedule whose masks are certain to update.

Which layers: Conv2D and Dense kernels. DepthwiseConv2D is not pruned: tfmot's PruneRegistry lists it
with no prunable weights, its 3x3 kernels hold ~2% of MobileNetV2's weights (so pruning them saves
little), and XNNPACK's sparse kernels are for 1x1 convolutions only. The first conv (3 input channels,
the whole image goes through it) and the final classifier Dense are skipped by default
(`skip_first_last`): they are small and cost the most accuracy per pruned weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase, require
from mdx.errors import ArtifactError, ConfigError
from mdx.records import RECORD_NAME, read_record
from mdx.train.config import TrainConfig

SCHEDULES = ("constant", "polynomial")
PARENT_STAGES = ("train", "prune")
MODEL_NAME = "model.keras"
# tfmot's default pruning frequency; capped by the real steps per epoch so small data sets prune too.
MAX_FREQUENCY = 100


def parse_m_by_n(text: str) -> tuple[int, int]:
    """'2:4' -> (2, 4): m zeros in every n consecutive input-channel weights.

    Raises:
        ConfigError: not of the form M:N with 0 < M < N.
    """
    try:
        m, n = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"--structured {text!r} is invalid; expected M:N such as 2:4") from None
    require(0 < m < n <= 16, f"--structured {text!r} is invalid; expected M:N with 0 < M < N <= 16, such as 2:4")
    return m, n


@dataclass(frozen=True)
class PruneConfig(ConfigBase):
    """Target sparsity, schedule and fine-tuning of one prune run.

    `learning_rate` and `batch_size` default to the parent run's fine-tuning values. `structured`
    ('2:4') prunes m of every n weights instead of the smallest ones anywhere; its sparsity is m/n.
    `tolerance` is how far (in sparsity, 0.01 = 1 pt) any pruned kernel may miss the target.
    `clusters` (K) then clusters every pruned kernel to K values, zeros kept (train/cluster.py), with
    `cluster_epochs` more epochs of fine-tuning at `cluster_learning_rate`.
    """

    sparsity: float = 0.5
    schedule: str = "constant"
    epochs: int = 2
    structured: str | None = None
    skip_first_last: bool = True
    learning_rate: float | None = None
    batch_size: int | None = None
    tolerance: float = 0.01
    clusters: int | None = None
    cluster_epochs: int = 1
    # tfmot's clustering guide fine-tunes centroids at 1e-5; the pruning rate moves them too far
    cluster_learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        require(isinstance(self.sparsity, (int, float)) and not isinstance(self.sparsity, bool)
                and 0.0 < self.sparsity < 1.0,
                f"--sparsity {self.sparsity!r} is invalid; expected a fraction of weights to zero, "
                "greater than 0 and less than 1 (e.g. 0.5)")
        require(self.schedule in SCHEDULES,
                f"--schedule {self.schedule!r} is unknown; expected one of {', '.join(SCHEDULES)}")
        require(isinstance(self.epochs, int) and 1 <= self.epochs <= 1000,
                f"--epochs {self.epochs!r} is invalid; expected 1 to 1000 fine-tuning epochs")
        if self.structured is not None:
            m, n = parse_m_by_n(self.structured)
            require(abs(self.sparsity - m / n) < 1e-9,
                    f"--structured {self.structured} zeros {m / n:g} of the weights but --sparsity is "
                    f"{self.sparsity:g}; drop --sparsity or pass --sparsity {m / n:g}")
            require(self.schedule == "constant",
                    f"--schedule {self.schedule} has no effect with --structured {self.structured} "
                    "(tfmot sets m:n masks once, at the first step); drop --schedule")
        require(self.learning_rate is None or 0.0 < self.learning_rate < 1.0,
                f"--learning-rate {self.learning_rate!r} is invalid; expected a value in (0, 1) such as 1e-4")
        require(self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size >= 1),
                f"--batch-size {self.batch_size!r} is invalid; expected a positive integer")
        require(self.clusters is None or (isinstance(self.clusters, int) and not isinstance(self.clusters, bool)
                                           and 3 <= self.clusters <= 256),
                f"--clusters {self.clusters!r} is invalid; expected 3 to 256 values per kernel (zero is one of them), "
                "e.g. 16")
        require(isinstance(self.cluster_epochs, int) and 1 <= self.cluster_epochs <= 1000,
                f"--cluster-epochs {self.cluster_epochs!r} is invalid; expected 1 to 1000 fine-tuning epochs")
        require(0.0 < self.cluster_learning_rate < 1.0,
                f"--cluster-learning-rate {self.cluster_learning_rate!r} is invalid; expected a value in (0, 1) such as 1e-5")
        require(0.0 < self.tolerance <= 0.1,
                f"tolerance {self.tolerance!r} is invalid; expected (0, 0.1] (0.01 = 1 pt)")

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        return None if self.structured is None else parse_m_by_n(self.structured)

    def folder_name(self) -> str:
        """'prune-0.5', 'prune-0.5-2of4' for structured sparsity, 'prune-0.5-c16' with 16 clusters."""
        suffix = "" if self.m_by_n is None else "-{}of{}".format(*self.m_by_n)
        if self.clusters is not None:
            suffix += f"-c{self.clusters}"
        return f"prune-{self.sparsity:g}{suffix}"


@dataclass(frozen=True)
class Parent:
    """The stage folder a prune run starts from (train, or an earlier prune) and what it recorded."""

    folder: Path
    record: dict[str, Any]
    model: Path
    train_config: TrainConfig
    train_config_dict: dict[str, Any]
    data_dir: Path

    @property
    def run(self) -> Path:
        """The run folder: where prune-<sparsity>/ goes by default."""
        return self.folder.parent


def resolve_parent(source: Path) -> Parent:
    """Find the parent stage of RUN, RUN/train (or RUN/prune-*) or its model.keras; check its hashes.

    Raises:
        ArtifactError: no such folder or model, no record, a changed output, or an unusable record.
    """
    source = Path(source)
    hint = "pass a run folder (RUN/train/record.json), its train/ folder, or the model.keras inside it"
    if not source.exists():
        raise ArtifactError(f"{source} not found; {hint}")
    if source.is_file():
        if source.name != MODEL_NAME or not (source.parent / RECORD_NAME).is_file():
            raise ArtifactError(f"{source} is not the {MODEL_NAME} of an mdx stage folder (no {RECORD_NAME} beside "
                                f"it); {hint}: prune needs the run's record for its data and preprocessing")
        folder = source.parent
    elif (source / "train" / RECORD_NAME).is_file():
        folder = source / "train"
    elif (source / RECORD_NAME).is_file():
        folder = source
    else:
        raise ArtifactError(f"{source} holds no {RECORD_NAME} (nor train/{RECORD_NAME}); {hint}")
    record = read_record(folder)  # refuses a record whose outputs changed since it was written
    record_path = folder / RECORD_NAME
    stage = record.get("stage")
    if stage not in PARENT_STAGES:
        raise ArtifactError(f"{record_path} is a {stage!r} record; "
                            "mdx prune takes the folder of a train (or prune) stage")
    model = folder / MODEL_NAME
    if not model.is_file():
        raise ArtifactError(f"{model} not found next to {record_path}; rerun mdx {stage}")
    config_key = "config" if stage == "train" else "train_config"
    try:
        train_dict = dict(record[config_key])
        data_dir = Path((record.get("data") or {}).get("root") or train_dict["data_dir"])
        for key in ("preprocessing", "labels", "data"):  # the child record copies these
            record[key]
        train_config = TrainConfig.from_record(train_dict)
    except KeyError as exc:
        raise ArtifactError(f"{record_path} has no {exc.args[0]!r}; "
                            f"rerun mdx {stage} to write a complete record") from None
    except ConfigError as exc:
        raise ArtifactError(f"{record_path}: its training config is unusable ({exc}); rerun mdx {stage}") from None
    return Parent(folder, record, model, train_config, train_dict, data_dir)


def prunable_layers(model: Any, skip_first_last: bool) -> tuple[list[str], list[str]]:
    """(layers to prune, Conv2D/Dense layers left dense) of a flat model, in layer order.

    Raises:
        ArtifactError: the model has nothing to prune.
    """
    from mdx.train.keras_shim import keras

    candidates = [layer for layer in model.layers
                  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
                  and not isinstance(layer, keras.layers.DepthwiseConv2D)]  # DepthwiseConv2D subclasses Conv2D
    skipped: list[str] = []
    if skip_first_last and len(candidates) > 2:
        convs = [layer for layer in candidates if isinstance(layer, keras.layers.Conv2D)]
        ends = {convs[0].name if convs else candidates[0].name, candidates[-1].name}
        skipped = [layer.name for layer in candidates if layer.name in ends]
        candidates = [layer for layer in candidates if layer.name not in ends]
    if not candidates:
        raise ArtifactError(f"{model.name} has no Conv2D or Dense layer to prune")
    return [layer.name for layer in candidates], skipped


def check_m_by_n_fits(model: Any, names: list[str], m_by_n: tuple[int, int] | None) -> None:
    """Refuse m:n pruning of a kernel whose input channels are not a multiple of n: tfmot pads the
    last group, so such a kernel can never reach m/n (Conv1's 3 channels reach 1/3 with 2:4).

    Raises:
        ConfigError: naming the layer and the fix.
    """
    if m_by_n is None:
        return
    for name in names:
        channels = int(model.get_layer(name).kernel.shape[-2])
        if channels % m_by_n[1]:
            raise ConfigError(f"layer {name} has {channels} input channels, not a multiple of {m_by_n[1]}: "
                              f"{m_by_n[0]}:{m_by_n[1]} pruning cannot reach {m_by_n[0] / m_by_n[1]:g} there; "
                              "keep --skip-first-last")


@dataclass(frozen=True)
class Schedule:
    """When masks update, in optimizer steps (tfmot counts from 1): every `frequency` steps from
    `begin_step`, the polynomial ramp reaching the target at `end_step` (-1: constant, no end)."""

    kind: str
    target: float
    begin_step: int
    end_step: int
    frequency: int
    steps_per_epoch: int
    total_steps: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def build(self) -> Any:
        """The tfmot PruningSchedule."""
        import tensorflow_model_optimization as tfmot

        if self.kind == "polynomial":
            return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=self.target,
                                                        begin_step=self.begin_step, end_step=self.end_step,
                                                        frequency=self.frequency)
        return tfmot.sparsity.keras.ConstantSparsity(self.target, begin_step=self.begin_step, end_step=self.end_step,
                                                     frequency=self.frequency)


def pruning_schedule(config: PruneConfig, steps_per_epoch: int) -> Schedule:
    """A schedule whose masks surely reach the target within `config.epochs` epochs.

    tfmot updates masks only at steps where (step - begin) % frequency == 0; with its default
    frequency of 100, a run of fewer than 100 steps never prunes, and a polynomial end_step that is not
    such a step never reaches the final sparsity. So the frequency is capped at a quarter epoch and
    the polynomial ramp ends on a pruning step after (epochs - 1) epochs, leaving the last epoch to
    recover at the final sparsity (with one epoch, it ends on the last pruning step).
    """
    steps_per_epoch = max(1, int(steps_per_epoch))
    total = steps_per_epoch * config.epochs
    frequency = max(1, min(MAX_FREQUENCY, steps_per_epoch // 4))
    if config.schedule == "polynomial":
        ramp = steps_per_epoch * max(1, config.epochs - 1)
        end = max(frequency, (ramp // frequency) * frequency)
    else:
        end = -1
    return Schedule(config.schedule, config.sparsity, 0, end, frequency, steps_per_epoch, total)


def steps_for(images: int, batch_size: int) -> int:
    return max(1, math.ceil(images / batch_size))
