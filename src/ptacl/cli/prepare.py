"""Build a prepared store from raw ECG, CMR and phenotype files (every subject in qc.csv).

    ptacl prepare --ecg DIR --cmr DIR --phenotypes CSV --out STORE [--val 0.1 --test 0.2]
                  [--seed S] [--workers K] [--instance 2] [--overwrite]
                  [--cmr-limit NAME=SIZE ...]

ECGs may also be GE MUSE XML (`{eid}.xml`) or HDF5 files of many records (CODE-15%-style;
`--ecg-ids` maps their exam_id to the eid).
UK Biobank bulk files are read as delivered: ECGs `{eid}_20205_2_0.xml`, short-axis cines
`{eid}_20209_2_0.zip` (or the folder it unzips to); `--instance` picks the visit (2, the first
imaging visit; 3, the repeat). Every file not used is listed in qc.csv with the reason.
What one CMR archive may make a worker inflate and hold is bounded (`--cmr-limit`, defaults in
`ptacl.io.cmr_limits.CmrLimits`); each of K workers stays within those limits.

Exit status 0 when at least one subject is usable (bad subjects are reported in qc.csv, not
fatal) and, when both --ecg and --cmr are given, at least one is paired; 1 when no subject is
usable, when ECG and CMR folders were given but no subject has both (the store is still
written, for single-modality pretraining: qc.csv says why nothing paired), or when writing
failed (disk full, I/O error: nothing is left behind); 2 for unusable arguments (missing
folder, existing store, bad table) or a store that another process is writing.

Phenotype eids join the files' eids as integers however they are spelled (`1038021.0`,
`1.038021e+06`, `01038021`); two spellings of one eid in the table are duplicates (exit 2).
A table that matches none of the paired subjects (or, with one folder, of the subjects) is
refused, exit 2, nothing written; one that matches fewer than 90 % gives a warning on stderr
and in the manifest, saying how many matched and how both sides spell their eids (exit 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ptacl prepare", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--ecg", help="folder of ECG files named by eid ({eid}_20205_2_0.xml, ...)")
    p.add_argument(
        "--cmr",
        help="folder of {eid}_20209_2_0.zip (UK Biobank, zipped or unzipped) or {eid}/sa.nii.gz "
        "(seg_sa.nii.gz beside it is used)",
    )
    p.add_argument(
        "--phenotypes",
        help="CSV with an eid column and ukbb_cardiac columns, or a UK Biobank showcase export "
        "(24100-2.0, f.24100.2.0 or p24100_i2 columns, read for --instance)",
    )
    p.add_argument(
        "--phenotype-map",
        help="CSV or YAML: column name or UK Biobank field ID -> phenotype (e.g. 24100: LVEDV), "
        "over the built-in field table",
    )
    p.add_argument(
        "--ecg-ids",
        help="CSV with columns exam_id and eid: the subject of each record of the HDF5 ECG "
        "files in --ecg (without it a record's eid is its exam_id)",
    )
    p.add_argument(
        "--covariates",
        help="CSV of eid, sex (0 female, 1 male), height_cm, weight_kg (or UK Biobank fields 31, "
        "50, 21002) for the clinical endpoints; default: a synthetic cohort's covariates.csv",
    )
    p.add_argument("--out", required=True, help="store folder to write")
    p.add_argument("--val", type=float, default=0.1, help="validation fraction (default 0.1)")
    p.add_argument("--test", type=float, default=0.2, help="test fraction (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--instance",
        type=int,
        default=None,  # DEFAULT_INSTANCE, read in main: ptacl.io imports numpy and pandas
        help="UK Biobank visit read from {eid}_{field}_{instance}_{array} names and showcase "
        "columns (default 2, the first imaging visit; 3 is the repeat imaging visit)",
    )
    p.add_argument(
        "--cmr-limit",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="raise or lower a bound on one CMR archive: members, member_bytes, archive_bytes, "
        "header_bytes or cine_bytes (e.g. cine_bytes=512MiB); repeatable",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported after parsing, so `ptacl prepare --help` does not load numpy, pandas and scipy.
    from ptacl.atomic import OutputBusy
    from ptacl.data.prepare import STATUSES, prepare_store
    from ptacl.io import InputError
    from ptacl.io.cmr_limits import DEFAULT_LIMITS
    from ptacl.io.names import DEFAULT_INSTANCE

    if args.instance is None:
        args.instance = DEFAULT_INSTANCE
    if args.ecg is None and args.cmr is None:
        print("ptacl prepare: give --ecg and/or --cmr", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a cluster's time limit, `kill`) unwinds like Ctrl-C, so the temporary
        # folders are removed and no half store is left behind
        signal.signal(signal.SIGTERM, _terminate)
    try:
        cmr_limits = DEFAULT_LIMITS.with_overrides(args.cmr_limit)
        result = prepare_store(
            args.ecg,
            args.cmr,
            args.phenotypes,
            args.out,
            val=args.val,
            test=args.test,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
            instance=args.instance,
            phenotype_map=args.phenotype_map,
            ecg_ids=args.ecg_ids,
            cmr_limits=cmr_limits,
            covariates=args.covariates,
        )
    except (FileExistsError, FileNotFoundError, InputError, ValueError, OutputBusy) as err:
        print(f"ptacl prepare: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full (NoSpace), I/O errors: the temporary store is gone
        print(f"ptacl prepare: writing {args.out} failed: {err}", file=sys.stderr)
        return 1
    for note in result.warnings:
        print(f"ptacl prepare: warning: {note}", file=sys.stderr)
    counts = ", ".join(f"{result.counts[s]} {s}" for s in STATUSES)
    print(f"subjects: {counts}")
    print(
        f"files refused: {result.refused_files} (belonging to {result.refused_subjects} "
        f"subjects); phenotype values set to NaN: {result.labels_dropped} (belonging to "
        f"{result.label_subjects} subjects); reasons in {result.qc}"
    )
    if result.ignored_files:
        print(
            f"files ignored: {result.ignored_files} (not an ECG or CMR layout, another UK "
            f"Biobank field or visit than --instance {args.instance}); listed in {result.qc}"
        )
    if result.store is None:
        if not any(result.counts[s] for s in STATUSES if s != "no_images"):
            print(f"no ECG or CMR file found in {args.ecg} / {args.cmr}", file=sys.stderr)
        print(f"no usable subject; every file and reason is in {result.qc}", file=sys.stderr)
        return 1
    splits = ", ".join(f"{n} {s}" for s, n in result.splits.items())
    print(f"store: {result.store} ({splits})")
    print(f"qc: {result.qc}")
    if args.ecg is not None and args.cmr is not None and not result.counts["paired"]:
        print(
            f"ptacl prepare: no subject has both an ECG and a CMR: the eids of {args.ecg} and "
            f"{args.cmr} do not meet (file names, --instance {args.instance}); every file and "
            f"reason is in {result.qc}",
            file=sys.stderr,
        )
        return 1
    return 0
