"""Generate a synthetic paired ECG–CMR cohort in UK Biobank formats.

Writes phenotypes.csv, covariates.csv (eid,sex,height_cm,weight_kg as UK Biobank fields 31,
50 and 21002: sex 0 female, 1 male), truth.csv (tests only), cohort.json (generator version,
seed), cmr/{eid}/sa.nii.gz + seg_sa.nii.gz and ecg/{eid}_20205_2_0.xml into --out; the same
--seed gives the same bytes for any --workers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ptacl synth", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--subjects", type=int, required=True, help="number of subjects (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (>= 0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (>= 1)")
    parser.add_argument("--preview", action="store_true", help="also write preview.png")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous cohort")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from ptacl.synth.cohort import SynthError, generate_cohort

    try:
        generate_cohort(
            args.out,
            args.subjects,
            args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except SynthError as err:
        print(f"ptacl synth: error: {err}", file=sys.stderr)
        return 2
    if args.preview:
        from ptacl.synth.preview import write_preview

        print(f"preview: {write_preview(args.out)}")
    print(f"cohort: {args.out} ({args.subjects} subjects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
