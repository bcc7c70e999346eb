"""The ECG-criteria baseline of the clinical endpoints on a prepared store, without any run.

    .venv/bin/python benchmarks/ecg_criteria.py --data STORE --out /tmp/criteria.json

The row `ECG criteria (logistic)` that `ptacl evaluate` adds to every evaluation's endpoints
(`ptacl.eval.endpoint_eval.endpoints_section`, criteria only: the classic criteria of each
recording, an L2 logistic model fitted on train, the threshold fixed on val, every metric on
test with bootstrap CIs), for a store alone: what a clinician's measurements score before any
model is trained. Prints one line per endpoint and writes the section as JSON to --out.

--millivolts: the criteria measured instead on each recording's source file (qc.csv), in mV:
resampled to 500 Hz and wavelet-filtered as `ptacl prepare` does, but not z-scored, with the
store's R peaks; the same subjects, splits and model. What the store's per-lead z-scoring
costs the voltage criteria.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.atomic import atomic_file
from ptacl.data.store import Store
from ptacl.ecg.criteria import CRITERIA as FEATURES
from ptacl.ecg.criteria import ecg_criteria
from ptacl.eval.endpoint_eval import CRITERIA, endpoints_section
from ptacl.eval.endpoints import load_endpoints


def _cell(value: list | None) -> str:
    if not value or value[0] is None:
        return "—"
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def millivolt_criteria(store: Store, rows: np.ndarray) -> np.ndarray:
    """(N, F) criteria of the store's rows measured on their source ECG files, in mV."""
    from ptacl.ecg.preprocess import resample_ecg, wavelet_filter
    from ptacl.io import read_ecg
    from ptacl.schema import ECG_FS, ECG_SAMPLES, LEADS

    qc = pd.read_csv(store.root / "qc.csv", dtype={"eid": str})
    files = qc[qc["modality"] == "ecg"].set_index("eid")["file"]
    out = np.full((len(rows), len(FEATURES)), np.nan)
    for i, row in enumerate(rows):
        eid = store.subjects["eid"][row]
        if eid not in files.index:
            raise SystemExit(f"--millivolts: {store.root / 'qc.csv'} names no ECG file of {eid}")
        record = read_ecg(Path(files[eid]))
        signal = wavelet_filter(resample_ecg(record.signal, record.fs)[:, :ECG_SAMPLES])
        peaks = store.peaks(int(row))
        found = ecg_criteria(signal, peaks[peaks < signal.shape[-1]], ECG_FS, LEADS)
        out[i] = [found[k] for k in FEATURES]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared store")
    parser.add_argument("--out", type=Path, required=True, help="the endpoint section (JSON)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--millivolts", action="store_true", help="measure on the source files")
    args = parser.parse_args(argv)
    store = Store.open(args.data)
    start = time.perf_counter()
    section = endpoints_section(
        load_endpoints(), store, "ecg", None, None,
        {"n_boot": args.n_boot, "seed": args.seed}, criteria=True,
        **(dict(measure=millivolt_criteria, units="mV, from the source files (--millivolts)")
           if args.millivolts else {}),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.out) as tmp:
        tmp.write_text(json.dumps(section, indent=2), encoding="utf-8")
    notes = section["ecg_criteria"]
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; store {args.data} "
          f"({notes.get('subjects')}); {seconds:.0f} s")  # fmt: skip
    print(f"unmeasured: {notes.get('recordings_with_an_unmeasured_criterion')}")
    print("| endpoint | test prevalence | AUROC | AUPRC | sensitivity | specificity |")
    print("|---|---|---|---|---|---|")
    for key, r in section[CRITERIA].items():
        if not isinstance(r, dict) or not r.get("evaluable"):
            print(f"| {key} | not evaluable: {r.get('why') if isinstance(r, dict) else r} |")
            continue
        cells = [_cell(r[m]) for m in ("AUROC", "AUPRC", "sensitivity", "specificity")]
        print(f"| {key} | {r['prevalence']:.3f} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
