"""Generate a synthetic paired ECG–CMR cohort in UK Biobank layouts.

Layout of the output folder::

    phenotypes.csv                 index eid, the ten PHENOTYPES columns (measured on the phantom)
    covariates.csv                 eid,sex,height_cm,weight_kg as UK Biobank codes them: sex
                                   field 31 (0 female, 1 male), height field 50 (cm), weight
                                   field 21002 (kg); the inputs of sex/body-size-specific limits
    truth.csv                      latents, timing and true R peaks: for tests only
    cohort.json                    marker: generator, generator_version, size and seed (`ptacl
                                   prepare` records the store's origin as synthetic from it)
    cmr/{eid}/sa.nii.gz            (X, Y, Z, T) int16 cine stack
    cmr/{eid}/seg_sa.nii.gz        (X, Y, Z, T) uint8: 1 LV pool, 2 LV myocardium, 3 RV pool
    ecg/{eid}_20205_2_0.xml        CardioSoft CardiologyXML resting ECG

Subject i is drawn from its own generator seeded by (seed, i), so every file is the same bytes
whatever the number of workers, and subject i's latents do not depend on the cohort size.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ptacl.errors import PtaclError
from ptacl.phenotypes import PHENOTYPES
from ptacl.synth.cardiosoft_xml import visit_time, write_cardiosoft_xml
from ptacl.synth.cmr import render_cine, write_nifti
from ptacl.synth.ecg import synth_ecg
from ptacl.synth.geometry import FRAMES, build_geometry
from ptacl.synth.latents import Latents, sample_latents
from ptacl.synth.marker import SYNTH_MARKER, marker_contents

COVARIATES = "covariates.csv"
OUTPUTS = ("cmr", "ecg", "phenotypes.csv", COVARIATES, "truth.csv", SYNTH_MARKER, "preview.png")
_EID_STREAM = 0x5EED  # spawn key of the eid generator, apart from every subject's


class SynthError(PtaclError, ValueError):
    """Bad arguments or an output folder that cannot be written."""


def subject_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent generators (latents, cmr, ecg) of subject `index` in the cohort `seed`."""
    children = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(3)
    return tuple(np.random.default_rng(c) for c in children)


def subject_latents(seed: int, index: int) -> Latents:
    """Subject `index`'s latents alone (cheap: no rendering)."""
    return sample_latents(subject_rngs(seed, index)[0])


def make_eids(n: int, seed: int) -> list[str]:
    """`n` distinct 7-digit eids like UK Biobank's (1000000-9999999), ascending."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_EID_STREAM, 0)))
    return [str(1_000_000 + int(v)) for v in np.sort(rng.choice(9_000_000, n, replace=False))]


def make_subject(out: Path, eid: str, seed: int, index: int) -> dict[str, float | str]:
    """Render and write one subject; return its phenotype and truth row."""
    rng_lat, rng_cmr, rng_ecg = subject_rngs(seed, index)
    lat = sample_latents(rng_lat)
    geo = build_geometry(lat, rng_cmr)
    cine = render_cine(geo, rng_cmr)
    folder = out / "cmr" / eid
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(folder / "sa.nii.gz", cine.image, cine.frame_interval_s)
    write_nifti(folder / "seg_sa.nii.gz", cine.seg, cine.frame_interval_s)

    ecg = synth_ecg(lat, rng_ecg)
    write_cardiosoft_xml(out / "ecg" / f"{eid}_20205_2_0.xml", eid, ecg, lat, visit_time(rng_ecg))

    rr_cmr = FRAMES * geo.frame_interval_s
    lv_volume = geo.areas()["lv"].sum(axis=1)
    row: dict[str, float | str] = {"eid": eid, **geo.phenotypes()}
    row.update({f"latent_{k}": v for k, v in lat.as_dict().items()})
    row.update(
        index=index,
        frame_interval_s=geo.frame_interval_s,
        es_frame=int(np.argmin(lv_volume)),
        es_time_s=geo.es_time_s,
        es_fraction=geo.es_time_s / rr_cmr,
        n_slices=geo.n_slices,
        mid_slice=geo.mid_slice,
        heart_row=cine.heart_centre[0],
        heart_col=cine.heart_centre[1],
        lv_row=cine.lv_centre[0],
        lv_col=cine.lv_centre[1],
        ecg_hr_bpm=float(ecg.measurements["VentricularRate"]),
        r_peaks=" ".join(str(int(r)) for r in ecg.r_peaks),
    )
    return row


def _work(job: tuple[Path, str, int, int]) -> dict[str, float | str]:
    return make_subject(*job)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SynthError(f"{out}: folder is not empty; choose another or pass --overwrite")
        for name in OUTPUTS:  # remove only what a previous run wrote
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / "cmr").mkdir(parents=True, exist_ok=True)
    (out / "ecg").mkdir(parents=True, exist_ok=True)


def generate_cohort(
    out: str | Path,
    n: int,
    seed: int = 0,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a cohort of `n` subjects into `out`; return the phenotype table (index eid)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SynthError(f"number of subjects must be an integer >= 1, got {n!r}")
    if n > 9_000_000:
        raise SynthError(f"at most 9,000,000 subjects fit in 7-digit eids, got {n}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SynthError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    _prepare_out(out, overwrite)
    jobs = [(out, eid, seed, i) for i, eid in enumerate(make_eids(n, seed))]
    bar = tqdm(total=n, desc="synth", unit="subject", disable=not progress)
    rows: list[dict] = []
    for row in _run(jobs, workers):
        rows.append(row)
        bar.update()
    bar.close()

    table = pd.DataFrame(rows).set_index("eid")
    pheno = table[list(PHENOTYPES)]
    pheno.to_csv(out / "phenotypes.csv", float_format="%.4f")
    covariates(table).to_csv(out / COVARIATES, float_format="%.1f")
    table.drop(columns=list(PHENOTYPES)).to_csv(out / "truth.csv", float_format="%.6g")
    (out / SYNTH_MARKER).write_text(marker_contents(n, seed), encoding="utf-8")
    return pheno


def covariates(table: pd.DataFrame) -> pd.DataFrame:
    """The covariates.csv table (index eid) from the rows `make_subject` returned."""
    return pd.DataFrame(
        {
            "sex": table["latent_male"].astype(bool).astype(int),  # UKB field 31: 1 is male
            "height_cm": table["latent_height_cm"],
            "weight_kg": table["latent_weight_kg"],
        },
        index=table.index,
    )


def _run(jobs: list, workers: int) -> Iterator[dict]:
    if workers == 1 or len(jobs) == 1:
        yield from map(_work, jobs)
        return
    # spawn, not fork: the parent may hold threads (tqdm's monitor), and forking those is unsafe.
    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_work, jobs, chunksize=1)
