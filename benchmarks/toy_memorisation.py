"""Memorisation on the toy model: does a trained adapter carry its clip's path from fresh noise?

    python benchmarks/toy_memorisation.py --method motion-inversion --timesteps 0.6 1 --log runs.jsonl
    python benchmarks/toy_memorisation.py --report runs.jsonl --write

For each held-out reference clip (``toy_transfer.references``) and seed, an adapter of ``--method``
(``motion_core.toy.methods``) is trained on the clip with the clip's own caption, then two clips
are sampled from *fresh* Gaussian noise of the same seed (no inverted noise: whatever path comes
out, the adapter put it there):

- memorisation: the clip's own caption; motion fidelity to the clip's path;
- transfer: a prompt of another shape and colour, both unlike the clip's (``evaluate.target_for``:
  "a green square moving" for a red circle's clip), scored as
  ``toy_transfer`` scores it (fidelity, target colour and shape, leakage).

The no-adapter row samples the same noise seeds with the same prompts: the baseline every row is
read against. Each trained (reference, seed) is appended to ``--log`` as one JSON line as soon as it
is measured, so a long measurement can run as several commands (one per method and timestep range)
and be resumed; ``--report`` reads the logs and writes one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import BOOTSTRAP_RESAMPLES, mean_and_interval, publish, table  # noqa: E402
from benchmarks.toy_transfer import cases, load_toy_model, parse_fields, sampler  # noqa: E402
from motion_core.adapters import ADAPTER_KINDS, AdapterUse  # noqa: E402
from motion_core.cli import OBJECTIVE_PRESETS  # noqa: E402
from motion_core.objectives import ObjectiveSpec  # noqa: E402
from motion_core.pipeline import VideoLatents, make_noise, train_adapter  # noqa: E402
from motion_core.sampling import LOSS_WEIGHTINGS, LossWeighting, TimestepDistribution  # noqa: E402
from motion_core.toy import evaluate  # noqa: E402
from motion_core.toy.methods import METHODS  # noqa: E402
from motion_core.train import TrainOptions  # noqa: E402

NO_ADAPTER = "none"
LOG = "benchmarks/results/toy_memorisation.jsonl"


def config_label(record: dict) -> str:
    """``method · t ∈ [low, high] · steps × lr`` (``no adapter`` for the baseline)."""
    if record["method"] == NO_ADAPTER:
        return "no adapter"
    low, high, shift = record["timesteps"]
    timesteps = "t uniform" if (low, high, shift) == (0.0, 1.0, 1.0) else f"t ∈ [{low:g}, {high:g}]"
    if shift != 1.0:
        timesteps += f", shift {shift:g}"
    objective = f" ({record['objective']})" if record.get("objective") else ""
    debias = f", debias {record['debias']}" if record.get("debias") else ""
    debias += f", sampled at strength {record['strength']:g}" if record.get("strength", 1.0) != 1.0 else ""
    weighting = f", {record['loss_weighting']}-weighted loss" if record.get("loss_weighting") else ""
    return (f"{record['method']}{objective} · {timesteps} · {record['steps']} steps, lr {record['lr']:g}{weighting}"
            f"{debias}")


def read_logs(paths: list[Path]) -> list[dict]:
    records = []
    for path in paths:
        if path.exists():
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def measure(args: argparse.Namespace) -> None:
    """Train and sample every (reference, seed) of the requested configuration not yet in ``--log``."""
    log = Path(args.log)
    done = {(config_label(r), r["reference"], r["seed"]) for r in read_logs([log])}
    backbone = load_toy_model(args.model)
    method = METHODS.get(args.method)
    timesteps = (TimestepDistribution(*args.timesteps, args.shift).validate() if args.timesteps
                 else method.timesteps if method else TimestepDistribution())
    lr = args.lr or (ADAPTER_KINDS[method.kind].default_lr if method else 0.0)
    # Motion embeddings are sampled both ways: debiased (the kind's default, as Motion Inversion
    # generates) and as trained.
    debias_modes = list(args.debias) if method and "debias" in ADAPTER_KINDS[method.kind].SETTINGS else [None]
    objective = ObjectiveSpec(**OBJECTIVE_PRESETS[args.objective]).validate() if args.objective else (
        method.spec() if method else None)
    objective_label = args.objective
    if args.objective_fields:  # e.g. x0_estimate=released: one more change to the objective, in the label
        objective = dataclasses.replace(objective, **parse_fields(args.objective_fields)).validate()
        objective_label = ", ".join(filter(None, [args.objective, args.objective_fields]))

    sample = sampler(backbone, args.sampling_steps, args.cfg)

    for case in cases(backbone, args.references):
        index, clip, reference, shape, colour, target = (case.index, case.clip, case.reference, case.shape,
                                                         case.colour, case.target)
        shaped = VideoLatents(reference.samples, backbone.fingerprint, noise=True)  # only its shape is used
        for seed in range(args.seeds):
            common = {"method": args.method, "objective": objective_label,
                      "timesteps": [timesteps.low, timesteps.high, timesteps.shift], "steps": args.steps, "lr": lr,
                      "reference": index, "seed": seed, "caption": clip.caption, "target": target,
                      "model": args.model, "sampling_steps": args.sampling_steps, "cfg": args.cfg,
                      **({"loss_weighting": args.loss_weighting} if args.loss_weighting != "none" else {})}
            settings = [{**({"debias": mode} if mode else {}), **({"strength": strength} if strength != 1.0 else {})}
                        for mode in debias_modes for strength in args.strengths]
            records = [record for record in ({**common, **setting} for setting in settings)
                       if (config_label(record), index, seed) not in done]
            if not records:
                continue
            trained, started = {}, time.time()
            if method is not None:
                result = train_adapter(backbone, reference, clip.caption, objective, method.kind, steps=args.steps,
                                       lr=lr, seed=seed, options=TrainOptions(
                                           timesteps=timesteps, loss_weighting=LossWeighting(args.loss_weighting)))
                losses = [h["total"] for h in result.history]
                trained = {"loss": [float(np.mean(losses[:20])), float(np.mean(losses[-20:]))],
                           "train_seconds": time.time() - started}
            noise = make_noise(shaped, "random", seed)
            for record in records:
                adapters = [] if method is None else [AdapterUse(result.adapter, record.get("strength", 1.0), (
                    {"debias": record["debias"]} if "debias" in record else {}))]
                own = evaluate.score_transfer(clip, sample(noise, clip.caption, adapters), clip.shape, clip.colour)
                other = evaluate.score_transfer(clip, sample(noise, target, adapters), shape, colour)
                record.update(trained, memorisation=own.fidelity, transfer={
                    "fidelity": other.fidelity, "target_colour": other.target_colour,
                    "target_shape": other.target_shape, "leaked": other.leaked, "found": other.found})
                with log.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                print(f"{config_label(record)}: reference {index}, seed {seed}: memorisation {own.fidelity:+.2f}, "
                      f"transfer {other.fidelity:+.2f}", file=sys.stderr, flush=True)


def by_case(group: list[dict]) -> dict[tuple[int, int], dict]:
    return {(r["reference"], r["seed"]): r for r in group}


def memorisation(record: dict) -> float:
    return record["memorisation"]


def transfer(record: dict) -> float:
    return record["transfer"]["fidelity"]


def paired(group: list[dict], other: list[dict], score) -> np.ndarray:
    """``score`` of each record of ``group`` minus that of ``other``'s record of the same reference and
    seed (the same noise), for the cases both have."""
    cases = by_case(other)
    return np.array([score(r) - score(cases[key]) for key, r in by_case(group).items() if key in cases])


def grouped(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[config_label(record)].append(record)
    return dict(sorted(groups.items(), key=lambda item: (item[0] != "no adapter", item[0])))


def summarise(records: list[dict]) -> list[list]:
    """One row per configuration: n; memorisation and transfer fidelity (mean ± sd [95 % interval]),
    each also as the difference from the no-adapter clip of the same reference and seed; appearance,
    leakage, training loss and time."""
    groups = grouped(records)
    baseline = groups.get("no adapter", [])

    def versus_baseline(group: list[dict], score) -> str:
        differences = paired(group, baseline, score)
        return mean_and_interval(differences, spread=False) if group[0]["method"] != NO_ADAPTER and len(differences) else "–"

    def percent(flags) -> str:
        return f"{100 * np.mean(flags):.0f} %"

    rows = []
    for label, group in groups.items():
        transferred = [r["transfer"] for r in group]
        trained = [r for r in group if "loss" in r]
        loss = (f"{np.mean([r['loss'][0] for r in trained]):.4f} → {np.mean([r['loss'][1] for r in trained]):.4f}"
                if trained else "–")
        seconds = f"{np.mean([r['train_seconds'] for r in trained]):.0f}" if trained else "–"
        rows.append([label, len(group), mean_and_interval(np.array([memorisation(r) for r in group])),
                     versus_baseline(group, memorisation), mean_and_interval(np.array([transfer(r) for r in group])),
                     versus_baseline(group, transfer), percent([t["target_colour"] for t in transferred]),
                     percent([t["target_shape"] for t in transferred]),
                     percent([t["leaked"] for t in transferred]), loss, seconds])
    return rows


def paired_comparisons(records: list[dict], twin: Callable[[dict], dict | None], twin_name: str) -> list[str]:
    """For each configuration whose ``twin`` (its first record with one setting put back; None: no
    twin) also has a row: the paired difference on the (reference, seed) both have, one line each."""
    groups = grouped(records)
    lines = []
    for label, group in groups.items():
        first = group[0]
        twinned = twin(first) if first["method"] != NO_ADAPTER else None
        other = groups.get(config_label(twinned)) if twinned else None
        if not other:
            continue
        own, transferred = paired(group, other, memorisation), paired(group, other, transfer)
        lines.append(f"- {label} minus {twin_name}, on the {len(own)} (reference, seed) both have: "
                     f"memorisation {mean_and_interval(own, spread=False)} ({int((own > 0).sum())} of {len(own)} "
                     f"higher), transfer {mean_and_interval(transferred, spread=False)}.")
    return lines


def timestep_comparisons(records: list[dict]) -> list[str]:
    """Each configuration trained on part of the noise range against its uniform-draw twin (the same
    method, objective, steps, lr and debiasing)."""
    return paired_comparisons(records, lambda r: None if tuple(r["timesteps"]) == (0.0, 1.0, 1.0)
                              else {**r, "timesteps": [0.0, 1.0, 1.0]}, "the same with t uniform")


def objective_comparisons(records: list[dict]) -> list[str]:
    """Each configuration with objective fields changed (``--objective``, ``--objective-fields``)
    against the same with its method's own objective."""
    return paired_comparisons(records, lambda r: {**r, "objective": None} if r.get("objective") else None,
                              "the same with the method's own objective")


def report(args: argparse.Namespace) -> None:
    records = read_logs([Path(p) for p in args.report])
    logs = "`, `".join(args.report)
    references_seen = sorted({r["reference"] for r in records})
    seeds_seen = sorted({r["seed"] for r in records})
    first = records[0]
    header = ["method · training timesteps · steps, lr", "n", "memorisation", "memorisation − no adapter",
              "transfer", "transfer − no adapter", "target colour", "target shape", "leakage",
              "training loss (first → last 20 steps)", "training s"]
    body = (f"Model `{first['model']}`; {len(references_seen)} held-out random-path references × "
            f"{len(seeds_seen)} seeds (n per row in the table; the same seeds in every row: seed = training seed = "
            "noise seed). Each adapter is trained on its clip with the clip's own caption (e.g. \"a yellow square moving\"; "
            "each method's objective; the lr in the row, the kind's published one unless `--lr` changed it), then "
            f"sampled from fresh Gaussian noise (`random`, no inverted noise) with {first['sampling_steps']} "
            f"sampling steps (DDIM; Euler on a flow model) at cfg {first['cfg']}: "
            "*memorisation* with the clip's own caption, *transfer* with another shape and colour "
            "(\"a <colour> <shape> moving\", both unlike the clip's: `evaluate.target_for`). "
            "Fidelity: cosine of the per-frame displacements of the clip's and the "
            "generated object's tracked paths (`tracker.motion_fidelity`; lost or static objects count 0). "
            "Cells: mean ± sd [95 % interval of the mean, percentile bootstrap, "
            f"{BOOTSTRAP_RESAMPLES} resamples]; \"− no adapter\": the mean difference from the no-adapter clip of the "
            "same reference and seed (the same noise), with its interval. Training timesteps "
            "as fractions of the noise range (`TimestepDistribution`; 1 = pure noise), before a flow model's own "
            "shift (the toy Wan model's 3 turns t ≥ 0.6 into σ ≥ 0.82, and draws σ ≥ 0.6 two times in three from "
            "the uniform range). Each row was measured by "
            "`python benchmarks/toy_memorisation.py --method M --timesteps LOW HIGH --steps S --lr LR "
            f"[--strengths S ...] --references R --seeds N --threads 1 --log {logs}` (n = R × N); the logs are "
            f"in `{logs}`.\n\n"
            + table(header, summarise(records)) + "\n\nHigh-noise timesteps against the uniform draw, paired:\n\n"
            + ("\n".join(timestep_comparisons(records)) or "(no row has a uniform-draw twin in these logs)") + "\n"
            + ("\nObjective settings against the method's own, paired:\n\n" + "\n".join(comparisons)
               if (comparisons := objective_comparisons(records)) else ""))
    model_name = Path(first["model"]).name
    suffix = "" if model_name == "toy-t2v" else f"_{model_name}"  # one section per toy model
    title = "Memorisation and transfer from fresh noise on the toy model" + (f" ({model_name})" if suffix else "")
    publish(body, args.write, f"toy_memorisation{suffix}", title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=[NO_ADAPTER, *METHODS], default=NO_ADAPTER)
    parser.add_argument("--timesteps", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="training timestep range (default: the method's own)")
    parser.add_argument("--shift", type=float, default=1.0, help="timestep shift with --timesteps (1 = none)")
    parser.add_argument("--objective", choices=list(OBJECTIVE_PRESETS),
                        help="objective preset instead of the method's own (as the command line's --objective)")
    parser.add_argument("--objective-fields", metavar="FIELD=VALUE,...",
                        help="fields of the objective changed, e.g. x0_estimate=released (named in the row)")
    parser.add_argument("--debias", nargs="+", default=["object", "none"],
                        help="motion embeddings: sample with each of these debiasing settings")
    parser.add_argument("--strengths", nargs="+", type=float, default=[1.0],
                        help="sample with the adapter at each of these strengths (default: 1, as trained)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the adapter kind's published one)")
    parser.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default="none",
                        help="weight each step's loss by its noise level (default: none, as the methods)")
    parser.add_argument("--steps", type=int, default=600, help="adapter training steps")
    parser.add_argument("--model", default="models/toy-t2v")
    parser.add_argument("--references", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--log", default=LOG, help="JSON lines to append each result to (default: %(default)s)")
    parser.add_argument("--report", nargs="+", metavar="LOG", help="summarise these logs instead of measuring")
    parser.add_argument("--write", action="store_true", help="with --report: write the table to BENCHMARKS.md")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.report:
        report(args)
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
