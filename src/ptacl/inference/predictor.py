"""Apply a bundle to ECG files or arrays: phenotypes, embeddings, one row per recording.

    predictor = ptacl.load("bundle/")
    predictor.predict("1000037_20205_2_0.xml")        # {'LVEDV (mL)': 151.2, ...}
    predictor.predict(signal, fs=500)                 # signal (12, S) in mV, LEADS order
    predictor.predict(["a.xml", "b.dcm"])             # DataFrame, one row per file
    predictor.predict("ecgs/")                        # a folder, "ecgs/*.xml", a Series ...
    predictor.predict("exams_part0.hdf5")             # DataFrame, one row per record

Every input goes through the code that built the training store (`ptacl.io.read_ecg`, the
store's checks `ptacl.qc.check_ecg`, `ptacl.ecg.preprocess_ecg` with the bundle's DWT
settings), then through the crops of `ptacl.embedding.crops`; outputs are averaged over crops.

Every output is checked (`ptacl.inference.plausibility`): NaN or physiologically impossible
values are errors; values beyond the training range and ECGs unlike the training ECGs are
warnings, and so are the input checks' own warnings (e.g. a lead pattern a real heart can
show but a mislabelled recording shows too). A file's own patient id is not judged: predict
pairs nothing with it. A table row carries the verdict in `status`; a single `predict` warns
(`ImplausiblePrediction`) unless it is 'ok'. A bundle exported before ranges were recorded is
checked against the physiological bounds only (`Predictor.checks` says which checks apply).

A bundle with intervals.json (`ptacl.eval.conformal`) adds `<phenotype> lower` and
`<phenotype> upper` per phenotype, after the phenotype columns so these keep their places: the
conformal prediction interval at the bundle's `interval_level` (e.g. 0.9). A bundle exported
before intervals, or without a store, has no such columns (`interval_level` is None).

A bundle with endpoints.json (`ptacl.inference.endpoints`) adds one column per clinical
endpoint fitted at export, after the bounds: `P(<key>)`, e.g. `P(lvsd)` (LV systolic
dysfunction, LVEF < 50 %), the calibrated probability from the ECG embedding alone (no sex,
height or weight is asked for, even where the label is indexed to body size).
`Predictor.endpoints` maps each column to its definition; older bundles have none.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ptacl.embedding.crops import crop_starts, run_over_crops
from ptacl.inference.bundle import half_widths, read_bundle
from ptacl.inference.bundle_format import Bundle, BundleError
from ptacl.inference.endpoints import endpoint_models, endpoint_probabilities
from ptacl.inference.modules import build_model
from ptacl.inference.plausibility import assess, ood_distances
from ptacl.inference.sources import Source, expand_records, expand_sources, is_hdf5_file
from ptacl.phenotypes import PHYSIOLOGICAL_RANGES
from ptacl.schema import LEADS


class ImplausiblePrediction(UserWarning):
    """A single prediction whose status is not 'ok' (the message is the status)."""


class Predictor:
    """A loaded bundle, ready to embed ECGs and predict their phenotypes."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        spec = self.bundle.preprocessing
        where = self.bundle.root / "preprocessing.json"
        try:
            self.fs = float(spec["fs"])
            self.samples = int(spec["samples"])
            self.crop = int(spec["crop"])
            leads = tuple(spec["leads"])
            self.dwt = {k: spec["dwt"][k] for k in ("wavelet", "level", "drop_details")}
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{where}: needs fs, samples, crop, leads and dwt ({e})") from e
        if leads != LEADS:
            raise BundleError(f"{where}: leads {leads}, this ptacl reads {LEADS}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = build_model(self.bundle).to(self.device)
        self.columns = self.bundle.columns
        self._check_outputs()
        self._load_checks()
        self._load_intervals()
        self._load_endpoints()

    def _load_endpoints(self) -> None:
        """The endpoint models of endpoints.json and their columns ('P(lvsd)', ...), after the
        bounds; `endpoints` maps each column to its label (none for older bundles)."""
        spec = self.bundle.endpoints
        models = endpoint_models(spec) if spec is not None else ([], None, None, None)
        self.endpoint_columns: list[str] = models[0]
        self._endpoint_models = models[1:] if self.endpoint_columns else None
        self.endpoints: dict[str, str] = {
            e["column"]: str(e.get("label", key))
            for key, e in ((spec or {}).get("endpoints") or {}).items()
        }

    def _load_intervals(self) -> None:
        """The half-widths of intervals.json (inf: unbounded) and the bound columns, after
        the phenotypes: '<column> lower', '<column> upper' for each column in turn."""
        spec = self.bundle.intervals
        self.interval_level: float | None = None if spec is None else float(spec["level"])
        self._widths = None if spec is None else half_widths(spec, self.columns)
        self.bound_columns = (
            []
            if spec is None
            else [f"{c} {side}" for c in self.columns for side in ("lower", "upper")]
        )

    def _load_checks(self) -> None:
        """Ranges and the OOD reference recorded at export; bounds only for older bundles."""
        ranges = self.bundle.phenotypes.get("ranges")
        ood = self.bundle.tensors.get("ood")
        spec = self.bundle.config.get("ood") or {}
        self._ood = None
        if ood is not None and "threshold" in spec:
            self._ood = (
                ood["mean"].double().numpy(),
                ood["whiten"].double().numpy(),
                float(spec["threshold"]),
            )
        self.ranges = ranges or {
            c: {"physiological": list(PHYSIOLOGICAL_RANGES[c])}
            for c in self.columns
            if c in PHYSIOLOGICAL_RANGES
        }
        trained = any("expected" in r for r in self.ranges.values())
        self.checks = ["finite", "physiological range"]
        self.checks += ["training range"] if trained else []
        self.checks += ["out-of-distribution score"] if self._ood else []
        if ranges is None:
            warnings.warn(
                f"{self.bundle.root}: exported before ptacl recorded plausibility ranges: its "
                "predictions are checked against the physiological bounds only (no training "
                "range, no out-of-distribution score); export it again to get both",
                stacklevel=3,
            )

    def _check_outputs(self) -> None:
        """One forward pass on zeros: a config that builds but cannot run fails here, at load."""
        with torch.no_grad():
            out = self.model(torch.zeros(1, len(LEADS), self.crop, device=self.device))
        if out["phenotypes"].shape != (1, len(self.columns)):
            raise BundleError(
                f"{self.bundle.root / 'phenotypes.json'}: {len(self.columns)} columns for a head "
                f"with output shape {tuple(out['phenotypes'].shape[1:])}"
            )

    # -- inputs ---------------------------------------------------------------------------------

    def prepare(self, source: Source, fs: float | None = None) -> np.ndarray:
        """A file or a (12, S) millivolt array -> (12, S500) preprocessed as in the store.

        The recording must pass the store's own checks (`ptacl.qc.check_record`: long
        enough, no flat, stuck or clipped lead, amplitudes in mV, recognisable beats at a rate
        consistent with the file, consistent and plausible leads); a model says nothing
        trustworthy about anything else.
        """
        return self._checked(source, fs)[0]

    def _checked(self, source: Source, fs: float | None) -> tuple[np.ndarray, tuple[str, ...]]:
        """`prepare`'s recording and the input checks' warnings."""
        from ptacl.ecg import preprocess_ecg
        from ptacl.qc import check_ecg, check_record

        if isinstance(source, np.ndarray | torch.Tensor):
            signal = np.asarray(source, dtype=np.float32)
            if fs is None:
                raise ValueError(
                    "an array needs its sampling rate: predict(signal, fs=...) "
                    f"(the model works at {self.fs:g} Hz and resamples)"
                )
            if signal.ndim != 2 or signal.shape[0] != len(LEADS):
                raise ValueError(
                    f"expected a (12, S) array in lead order {LEADS}, got shape {signal.shape}"
                )
            rate = float(fs)
            check = check_ecg(signal, rate, "array")
        else:
            from ptacl.io import read_ecg

            record = read_ecg(Path(source), fs=fs)
            signal, rate = record.signal, float(record.fs)
            check = check_record(record)
        ecg = preprocess_ecg(signal, rate, max_samples=self.samples, **self.dwt)
        return np.asarray(ecg, dtype=np.float32), check.warnings

    # -- model ----------------------------------------------------------------------------------

    def _run(self, ecgs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Preprocessed (12, S) recordings -> per-recording outputs averaged over their crops,
        plus `shared`, the projection of the averaged embedding, for an aligned bundle."""
        lengths = [e.shape[-1] for e in ecgs]
        out = run_over_crops(
            self.model, ecgs, lengths, self.crop, batch_size=self.batch_size, device=self.device
        )
        if self.model.projection is not None:
            with torch.no_grad():
                embedding = torch.from_numpy(out["embedding"]).float().to(self.device)
                out["shared"] = self.model.project(embedding).double().cpu().numpy()
        if self._widths is not None:
            lower, upper = out["phenotypes"] - self._widths, out["phenotypes"] + self._widths
            # interleaved as bound_columns: lower, upper of the first column, then the next
            out["bounds"] = np.stack([lower, upper], axis=-1).reshape(len(ecgs), -1)
        if self._endpoint_models is not None:
            out["endpoint_p"] = endpoint_probabilities(out["embedding"], *self._endpoint_models)
        if self._ood is not None:
            out["ood_score"] = ood_distances(out["embedding"], *self._ood[:2])
        threshold = None if self._ood is None else self._ood[2]
        scores = out.get("ood_score")
        out["status"] = assess(out["phenotypes"], self.columns, self.ranges, scores, threshold)
        # the embedding's own verdict: no phenotype read from it, only how unusual the ECG is
        out["ecg_status"] = assess(np.zeros((len(ecgs), 0)), [], {}, scores, threshold)
        return out

    def embed(
        self,
        source: Source | Iterable[Source],
        fs: float | None = None,
        *,
        space: str = "encoder",
    ) -> np.ndarray | pd.DataFrame:
        """Mean-pooled ECG embedding (D,) of one input; of several (a folder, a glob pattern,
        any iterable of paths), a table as `predict_files` writes it with the embedding in
        emb_0 .. emb_{D-1}: a file that cannot be read gets an error row, the rest still run.

        space="encoder": the encoder's pooled tokens (what the linear probe reads);
        space="shared": after the ECG projection head of an aligned run, the space where ECG and
        CMR embeddings are compared (`ptacl retrieve`).
        """
        key = self._space_key(space)
        many = expand_sources(source)
        if many is not None or is_hdf5_file(source):
            return self._table(
                [source] if many is None else many,
                fs,
                embeddings=True,
                progress=None,
                space=space,
                phenotypes=False,
            )
        return self._run([self.prepare(source, fs)])[key][0]

    def predict(
        self, source: Source | Iterable[Source], fs: float | None = None
    ) -> dict[str, float] | pd.DataFrame:
        """Phenotypes of one input as {column: value}, then their interval bounds
        ({'<column> lower': ..., '<column> upper': ...}, for a bundle with intervals) and the
        endpoint probabilities ({'P(lvsd)': ...}, for a bundle with endpoints); of several (a folder, a glob pattern such
        as "ecgs/*.xml", a list, generator, pandas Series or array of paths, an HDF5 file of
        records, `ptacl.io.ecg_hdf5`), `predict_files`'s table.

        A single input that cannot be read raises (`ptacl.io.InputError`); in a list, it gets an
        error row and the rest still run. A single prediction that is not plausible warns
        (`ImplausiblePrediction`, the message is its status); a table row says it in `status`.
        """
        many = expand_sources(source)
        if many is not None or is_hdf5_file(source):
            return self.predict_files([source] if many is None else many, fs=fs)
        ecg, doubts = self._checked(source, fs)
        out = self._run([ecg])
        status = _with_warnings(out["status"][0], doubts)
        if status != "ok":
            name = "array" if isinstance(source, np.ndarray | torch.Tensor) else str(source)
            warnings.warn(f"{name}: {status}", ImplausiblePrediction, stacklevel=2)
        values = {c: float(v) for c, v in zip(self.columns, out["phenotypes"][0])}
        if "bounds" in out:
            values.update({c: float(v) for c, v in zip(self.bound_columns, out["bounds"][0])})
        if "endpoint_p" in out:
            values.update(
                {c: float(v) for c, v in zip(self.endpoint_columns, out["endpoint_p"][0])}
            )
        return values

    def predict_files(
        self,
        paths: Iterable[Source],
        *,
        fs: float | None = None,
        embeddings: bool = False,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """One row per file: file, eid, status, duration_s, ood_score, phenotypes (columns with
        units), their interval bounds (`bound_columns`: '<column> lower', '<column> upper'; none
        for a bundle without intervals), the endpoint probabilities (`endpoint_columns`:
        'P(lvsd)', ...; none for a bundle without endpoints), and with `embeddings` the columns emb_0 .. emb_{D-1}.

        status is 'ok', 'warning: <reasons>' (beyond the training range, unlike the training
        ECGs, a doubt of the input checks such as an inverted recording) or 'error: <reason>'
        (unreadable or refused file, NaN or impossible values);
        ood_score is empty for a bundle without an OOD reference.

        Items may also be (12, S) arrays (all at `fs`): their file is "<array i>", their eid i;
        a folder or glob pattern among them stands for the ECG files it holds (`expand_sources`).
        An HDF5 file gives one row per record: its file is the record's address
        ("exams.hdf5[3]"), its eid the record's exam_id.
        `progress`: a tqdm bar on stderr (None: for several files, when stderr is a terminal).
        """
        return self._table(paths, fs, embeddings=embeddings, progress=progress)

    def _table(
        self,
        paths: Iterable[Source],
        fs: float | None,
        *,
        embeddings: bool,
        progress: bool | None,
        space: str = "encoder",
        phenotypes: bool = True,
    ) -> pd.DataFrame:
        """`predict_files`; without `phenotypes` (for `embed`) the table has no phenotype
        columns and a row's status judges only the ECG (readable, like the training ECGs)."""
        from tqdm.auto import tqdm

        many = expand_sources(paths)
        sources = expand_records([paths] if many is None else many)  # one file: a table of one
        key = self._space_key(space)
        judged = "status" if phenotypes else "ecg_status"

        rows: list[dict[str, Any]] = []
        pending: list[tuple[int, np.ndarray, tuple[str, ...]]] = []
        width = None

        def flush() -> None:
            nonlocal width
            if not pending:
                return
            out = self._run([ecg for _, ecg, _ in pending])
            width = out[key].shape[1]
            scores = out.get("ood_score", np.full(len(pending), np.nan))
            bounds = out.get("bounds", np.zeros((len(pending), 0)))
            chances = out.get("endpoint_p", np.zeros((len(pending), 0)))
            for (row, _, doubts), values, emb, status, score, bound, chance in zip(
                pending, out["phenotypes"], out[key], out[judged], scores, bounds, chances
            ):
                rows[row].update({c: float(v) for c, v in zip(self.columns, values)})
                rows[row].update({c: float(v) for c, v in zip(self.bound_columns, bound)})
                rows[row].update({c: float(v) for c, v in zip(self.endpoint_columns, chance)})
                rows[row].update(status=_with_warnings(status, doubts), ood_score=float(score))
                if embeddings:
                    rows[row].update({f"emb_{j}": float(x) for j, x in enumerate(emb)})
            pending.clear()

        # tqdm's disable=None means: off unless stderr is a terminal.
        auto = True if len(sources) < 2 else None
        bar = tqdm(
            sources,
            desc="predict" if phenotypes else "embed",
            unit="file",
            disable=auto if progress is None else not progress,
        )
        pending_crops = 0
        for index, (path, eid) in enumerate(bar):
            is_array = isinstance(path, np.ndarray | torch.Tensor)
            row: dict[str, Any] = {
                "file": f"<array {index}>" if is_array else str(path),
                "eid": str(index) if is_array else eid,
            }
            rows.append(row)
            try:
                ecg, doubts = self._checked(path, fs)
            except Exception as e:  # one bad file must not stop the others; its row says why
                row.update(status=f"error: {_describe(e, row['file'])}")
                continue
            row["duration_s"] = ecg.shape[-1] / self.fs
            pending.append((len(rows) - 1, ecg, doubts))
            pending_crops += len(crop_starts(ecg.shape[-1], self.crop))
            if pending_crops >= self.batch_size:
                flush()
                pending_crops = 0
        flush()
        table = pd.DataFrame(rows, columns=["file", "eid", "status", "duration_s", "ood_score"])
        outputs = [*self.columns, *self.bound_columns, *self.endpoint_columns] if phenotypes else []
        parts = [table, pd.DataFrame(rows, columns=outputs)]
        if embeddings:
            dim = self.embedding_dim if key == "embedding" else self._shared_dim
            names = [f"emb_{j}" for j in range(width or dim)]
            parts.append(pd.DataFrame(rows, columns=names))
        return pd.concat(parts, axis=1)

    def _space_key(self, space: str) -> str:
        """The output of `_run` holding embeddings of `space` ('encoder' or 'shared')."""
        key = {"encoder": "embedding", "shared": "shared"}.get(space)
        if key is None:
            raise ValueError(f"space must be 'encoder' or 'shared', got {space!r}")
        if key == "shared" and self.model.projection is None:
            raise ValueError(
                f"{self.bundle.root}: this bundle has no projection head (not an aligned run), "
                "so it has no shared ECG-CMR space"
            )
        return key

    @property
    def embedding_dim(self) -> int:
        return int(self.bundle.config["embedding"]["dim"])

    @property
    def _shared_dim(self) -> int:
        return int(self.bundle.config["embedding"].get("shared_dim") or 0)

    def to(self, device: str | torch.device) -> Predictor:
        """Move the model to `device` (e.g. "cuda"); inputs follow. Returns the predictor."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def __repr__(self) -> str:
        config = self.bundle.config
        source = config.get("source") or {}
        encoder = config.get("encoder") or {}
        shared = config["embedding"].get("shared_dim")
        level = self.interval_level
        intervals = "no prediction intervals" if level is None else f"{100 * level:g} % intervals"
        return (
            f"Predictor({str(self.bundle.root)!r}: {source.get('stage', '?')} run "
            f"{source.get('run', '?')!r}, {encoder.get('name', '?')} ECG encoder of width "
            f"{self.embedding_dim}" + (f", shared space {shared}" if shared else "") + ", "
            f"{config.get('head', {}).get('kind', '?')} head -> {len(self.columns)} phenotypes "
            f"({intervals}), {len(self.endpoint_columns)} endpoint probabilities, "
            f"{self.fs:g} Hz crops of {self.crop} samples, device {self.device})"
        )


def _with_warnings(status: str, doubts: tuple[str, ...]) -> str:
    """A prediction's status with the input checks' warnings added: 'ok' becomes 'warning: …';
    an error stays an error."""
    if not doubts:
        return status
    if status == "ok":
        return "warning: " + "; ".join(doubts)
    return "; ".join([status, *doubts])


def _describe(error: Exception, path: str | Path) -> str:
    """The error's message, with the file named first as every reader's message is."""
    from ptacl.io import InputError

    if isinstance(error, InputError):  # its reason, under the row's name ("<array 3>")
        return f"{path}: {error.reason}"
    text = str(error) or type(error).__name__
    if not text.startswith(str(path)):
        text = f"{path}: {type(error).__name__}: {text}"
    return text


def load(bundle: str | Path, *, device: str = "cpu") -> Predictor:
    """Read, verify and load a bundle written by `ptacl export`."""
    return Predictor(bundle, device=device)
