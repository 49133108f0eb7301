"""Config -> jobs and their paths. Plain Python: no torch, no training code.

The Snakefile and the tests both plan through this module, so a path is computed in one
place. So far it plans the labels stage (the stages after it arrive with the engine,
methods and workflow issues).
"""

from __future__ import annotations

from dataclasses import dataclass

from .data import dataset_names, get_entry
from .errors import UserError
from .noise import NoiseSpec

LABELS_PATTERN = "results/labels/{dataset}/{noise_id}/seed{seed}.npz"


@dataclass(frozen=True)
class LabelsJob:
    dataset: str
    noise: NoiseSpec
    seed: int

    @property
    def path(self) -> str:
        return labels_path(self.dataset, self.noise.id, self.seed)


def labels_path(dataset: str, noise_id: str, seed: int) -> str:
    return LABELS_PATTERN.format(dataset=dataset, noise_id=noise_id, seed=seed)


def noise_specs(config: dict) -> list[NoiseSpec]:
    """Expand the ``noise`` entries of a config into specs, in config order, without repeats."""
    entries = config.get("noise")
    if not isinstance(entries, list) or not entries:
        raise UserError("config key 'noise': needs a non-empty list of noise entries")
    specs: list[NoiseSpec] = []
    for i, entry in enumerate(entries):
        where = f"config key 'noise[{i}]'"
        if not isinstance(entry, dict) or "type" not in entry:
            raise UserError(f"{where}: needs a mapping with 'type'")
        unknown = set(entry) - {"type", "rates", "variants", "include_true"}
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        kind = entry["type"]
        try:
            if kind == "human":
                if not entry.get("variants"):
                    raise UserError("human noise needs 'variants' (e.g. [aggre, worst])")
                new = [NoiseSpec("human", variant=v) for v in entry["variants"]]
            else:
                if not entry.get("rates"):
                    raise UserError(f"noise {kind!r} needs a non-empty 'rates' list")
                new = [NoiseSpec(kind, rate=r, include_true=bool(entry.get("include_true")))
                       for r in entry["rates"]]
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        specs += [s for s in new if s not in specs]
    return specs


def labels_jobs(config: dict) -> list[LabelsJob]:
    """Every labels file the config's grid needs; raises ``UserError`` naming the bad key."""
    datasets = config.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise UserError("config key 'datasets': needs a non-empty list of dataset names")
    for name in datasets:
        if name not in dataset_names():
            raise UserError(f"config key 'datasets': unknown dataset {name!r}; "
                            f"known: {', '.join(dataset_names())}")
    seeds = config.get("seeds")
    if not isinstance(seeds, list) or not seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise UserError("config key 'seeds': needs a non-empty list of non-negative integers")
    specs = noise_specs(config)
    for d in datasets:
        for s in specs:
            if s.kind == "human" and s.variant not in get_entry(d).human_variants:
                raise UserError(f"config key 'noise': human variant {s.variant!r} does not exist "
                                f"for dataset {d!r} (human noise: cifar10 aggre/worst/"
                                "random1-3, cifar100 noisy)")
    return [LabelsJob(d, s, seed) for d in datasets for s in specs for seed in seeds]


def labels_cli_args(noise_id: str) -> str:
    """The ``noisykd labels`` arguments that reproduce a noise id."""
    spec = NoiseSpec.parse(noise_id)
    if spec.kind == "human":
        return f"--noise human --variant {spec.variant}"
    incl = " --include-true" if spec.include_true else ""
    return f"--noise {spec.kind} --rate {spec.rate!r}{incl}"
