"""Why is ECG SimCLR's linear probe below random init (issue 23 item 5)? An ablation of its
augmentations, each arm paired with the paper's augmentations by subject within seed.

    .venv/bin/python benchmarks/simclr_ablation.py --data STORE --out DIR --seeds 3 --jobs 2

Arms (overrides of the preset's simclr_ecg.yaml): `paper` (as shipped: two random 5 s crops,
FT surrogate p 0.5, jitter, one rescale of the whole recording), `no_ft` (FT surrogate off),
`no_rescale`, `no_jitter`, `no_crop` (both views start at sample 0: crop invariance gone),
`no_amplitude` (FT surrogate and rescale both off: the issue's hypothesis in one arm), and
`random` (a seeded random encoder of the same architecture, `ptacl evaluate --model none`).
Every arm is trained with `trainer.seed=<seed>` and evaluated with `ptacl evaluate --seed`;
finished steps are reused, so the command continues after a kill. Prints, per arm, the LP R²
difference against `paper` (A − paper) per phenotype with its paired CI over subjects and seeds
(`ptacl.eval.comparisons.compare_r2`) and writes it to DIR/ablation.json.

What the store does already matters here: leads are z-scored per recording, so no absolute
voltage reaches any encoder; a rescale of the whole recording can then remove nothing the
store still holds (it only changes the input's scale).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ptacl.benchmark.pipeline import Step, run_steps
from ptacl.benchmark.presets import PRESETS
from ptacl.eval.comparisons import LP_PREDICTIONS, compare_r2

ARMS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "no_ft": ("augment.ft_surrogate_p=0",),
    "no_rescale": ("augment.rescale_p=0",),
    "no_jitter": ("augment.jitter_p=0",),
    "no_crop": ("augment.random_crop=false",),
    "no_amplitude": ("augment.ft_surrogate_p=0", "augment.rescale_p=0"),
}
PHENOTYPES = ("LVEDV", "LVEF", "LVM", "RVEDV")


def build(store: Path, out: Path, preset: str, seeds: list[int], arms: list[str]) -> list[Step]:
    config = PRESETS[preset].configs["simclr_ecg"]
    steps: list[Step] = []
    for seed in seeds:
        for arm in arms:
            evals = out / f"seed{seed}" / "eval" / arm
            argv = ["evaluate", "--data", str(store), "--out", str(evals), "--seed", str(seed)]
            run = out / f"seed{seed}" / "runs" / ("paper" if arm == "random" else arm)
            if arm == "random":
                argv += ["--model", "none", "--like", str(run)]
            else:
                train = ["simclr", "ecg", "--data", str(store), "--out", str(run)]
                train += ["--config", str(config), *ARMS[arm], f"trainer.seed={seed}"]
                steps.append(Step(f"seed{seed}/train/{arm}", tuple(train), run))
                argv += ["--model", str(run)]
            argv += ["--no-progress", "--n-boot", "200"]
            steps.append(Step(f"seed{seed}/eval/{arm}", tuple(argv), evals))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared store")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=[*ARMS, "random"])
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    if "paper" not in args.arms:
        parser.error("the arms are compared with `paper`: keep it")
    seeds = list(range(args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    run_steps(build(args.data, args.out, args.preset, seeds, args.arms), args.out, jobs=args.jobs)

    def files(arm: str) -> list[Path]:
        return [args.out / f"seed{s}" / "eval" / arm / LP_PREDICTIONS for s in seeds]

    found = {}
    print(f"LP R², arm − paper, paired over {len(seeds)} seed(s) and the test subjects:")
    for arm in args.arms:
        if arm == "paper":
            continue
        found[arm] = {}
        for name, d in compare_r2(files(arm), files("paper")).items():
            found[arm][name] = {
                "estimate": d.estimate, "ci": list(d.ci), "p": d.p_value, "mde": d.mde,
                "per_seed": list(d.per_seed), "subjects": d.subjects,
            }  # fmt: skip
            if name in PHENOTYPES:
                seed_values = ", ".join(f"{v:+.3f}" for v in d.per_seed)
                print(
                    f"  {arm:10s} {name:6s} {d.estimate:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]"
                    f"  p {d.p_value:.3f}  per seed {seed_values}"
                )
    (args.out / "ablation.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
