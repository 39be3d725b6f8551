"""Vector data sets: the bundled ones, users' files, seeded synthetic data, exact ground truth.

File formats read by :func:`load_vectors` (chosen by suffix):

* ``.fvecs`` / ``.ivecs`` / ``.bvecs``: TEXMEX records, each a little-endian int32
  dimension followed by that many float32 / int32 / uint8 values;
* ``.npy``: a 2-d NumPy array (loaded without pickle);
* ``.hdf5`` / ``.h5``: ann-benchmarks files with ``train``, ``test`` and ``neighbors``;
* ``.parquet``: VectorDBBench-style tables with an ``emb`` (or ``vector``) list column,
  or a ``neighbors_id`` column for ground truth.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tiering.errors import CorruptDataError, ValidationError
from tiering.records import Metric, normalize_rows
from tiering.scoring import top_k

BUNDLED = ("siftsmall", "minilm-debian-10k")


@dataclass(frozen=True)
class Dataset:
    """Base vectors, queries, exact ground truth (ids best first) and the metric."""

    name: str
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    ground_truth: npt.NDArray[np.int64]
    metric: Metric


def bundled_path(name: str) -> Path:
    """Return the folder of a bundled data set.

    Raises:
        ValidationError: the name is not one of :data:`BUNDLED`.
    """
    if name not in BUNDLED:
        raise ValidationError(f"Unknown bundled data set {name!r}. Use one of: {', '.join(BUNDLED)}.")
    return Path(__file__).resolve().parent / "data" / name


def load_bundled(name: str) -> Dataset:
    """Load a bundled data set with its shipped ground truth."""
    folder = bundled_path(name)
    if name == "siftsmall":
        return Dataset(
            name,
            load_vectors(folder / "siftsmall_base.fvecs"),
            load_vectors(folder / "siftsmall_query.fvecs"),
            load_ids(folder / "siftsmall_groundtruth.ivecs"),
            Metric.L2,
        )
    return Dataset(
        name,
        load_vectors(folder / "base.npy"),
        load_vectors(folder / "queries.npy"),
        load_ids(folder / "groundtruth.npy"),
        Metric.COSINE,
    )


def load_vectors(path: str | Path, *, split: str = "train") -> npt.NDArray[np.float32]:
    """Load a float32 matrix of shape (n, dim) from a file in one of the module's formats.

    ``split`` picks the HDF5 dataset (``train`` or ``test``).

    Raises:
        ValidationError: the file is missing or its format is unknown.
        CorruptDataError: the file is truncated or not in the format its suffix names.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"Vector file {path} not found. Check the path.")
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], npt.NDArray[np.generic]]] = {
        ".fvecs": lambda p: _read_vecs(p, np.float32),
        ".ivecs": lambda p: _read_vecs(p, np.int32),
        ".bvecs": lambda p: _read_vecs(p, np.uint8),
        ".npy": _read_npy,
        ".hdf5": lambda p: _read_hdf5(p, split),
        ".h5": lambda p: _read_hdf5(p, split),
        ".parquet": _read_parquet_vectors,
    }
    if suffix not in readers:
        raise ValidationError(
            f"Unknown vector file format {suffix!r} for {path}. Use one of: {', '.join(sorted(readers))}."
        )
    array = readers[suffix](path)
    if array.ndim != 2 or array.shape[0] == 0:
        raise CorruptDataError(f"{path} contains an array of shape {array.shape}; expected (n, dim).")
    return np.ascontiguousarray(array, dtype=np.float32)


def load_ids(path: str | Path) -> npt.NDArray[np.int64]:
    """Load ground-truth neighbour ids (n_queries, k) from ``.ivecs``, ``.npy``, HDF5 or Parquet."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        array = _read_hdf5(path, "neighbors")
    elif suffix == ".parquet":
        array = _read_parquet_ids(path)
    elif suffix in (".ivecs", ".npy"):
        array = load_vectors_raw(path)
    else:
        raise ValidationError(
            f"Unknown ground truth format {suffix!r} for {path}. Use .ivecs, .npy, .hdf5 or .parquet."
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def load_vectors_raw(path: Path) -> npt.NDArray[np.generic]:
    """Load an ``.ivecs`` or ``.npy`` file keeping its dtype."""
    if not path.is_file():
        raise ValidationError(f"File {path} not found. Check the path.")
    return _read_vecs(path, np.int32) if path.suffix.lower() == ".ivecs" else _read_npy(path)


def _read_vecs(path: Path, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
    raw = path.read_bytes()
    if len(raw) < 4:
        raise CorruptDataError(f"{path} is too short to hold a vector record ({len(raw)} bytes).")
    dim = int(np.frombuffer(raw[:4], dtype="<i4")[0])
    item = np.dtype(dtype).itemsize
    record_bytes = 4 + dim * item
    if dim <= 0 or len(raw) % record_bytes:
        raise CorruptDataError(
            f"{path} is truncated or not a {path.suffix} file: {len(raw)} bytes is not a "
            f"multiple of the {record_bytes}-byte record for dimension {dim}."
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record_bytes)
    dims = records[:, :4].copy().view("<i4").ravel()
    if not (dims == dim).all():
        raise CorruptDataError(f"{path} mixes vector dimensions; every record must have {dim}.")
    return records[:, 4:].copy().view(np.dtype(dtype).newbyteorder("<")).reshape(len(records), dim)


def _read_npy(path: Path) -> npt.NDArray[np.generic]:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, pickle.UnpicklingError) as exc:
        raise CorruptDataError(
            f"{path} is not a plain numeric .npy array; save it with numpy.save from a float32 "
            "or integer array (object arrays need pickle, which this library never loads)."
        ) from exc


def _read_hdf5(path: Path, name: str) -> npt.NDArray[np.generic]:
    import h5py

    with h5py.File(path, "r") as handle:
        if name not in handle:
            raise CorruptDataError(f"{path} has no dataset {name!r}; found {sorted(handle)}.")
        return np.asarray(handle[name])


def _read_parquet_vectors(path: Path) -> npt.NDArray[np.generic]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = next((c for c in ("emb", "vector", "embedding") if c in table.column_names), None)
    if column is None:
        raise CorruptDataError(
            f"{path} has no vector column; expected 'emb', 'vector' or 'embedding', "
            f"found {table.column_names}."
        )
    if "id" in table.column_names:
        table = table.sort_by("id")
    return np.asarray(table.column(column).to_pylist(), dtype=np.float32)


def _read_parquet_ids(path: Path) -> npt.NDArray[np.generic]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = next((c for c in ("neighbors_id", "neighbors") if c in table.column_names), None)
    if column is None:
        raise CorruptDataError(f"{path} has no 'neighbors_id' column; found {table.column_names}.")
    if "id" in table.column_names:
        table = table.sort_by("id")
    return np.asarray(table.column(column).to_pylist(), dtype=np.int64)


def exact_ground_truth(
    base: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    k: int,
    metric: Metric,
    *,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> npt.NDArray[np.int64]:
    """Return the exact top-``k`` base row ids per query, best first (ties: lower id).

    Works in query batches; ``progress`` is called with the number of queries done.
    """
    if metric is Metric.COSINE:
        base = normalize_rows(base)
        queries = normalize_rows(queries)
    results = []
    for start in range(0, len(queries), batch_size):
        rows, _scores = top_k(queries[start : start + batch_size], base, k, metric)
        results.append(rows)
        if progress is not None:
            progress(len(rows))
    return np.concatenate(results, axis=0)


def synthetic_clustered(
    n: int, dim: int, *, clusters: int = 64, n_queries: int = 100, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Return seeded Gaussian-mixture base vectors and queries drawn from the same mixture."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(clusters, dim)).astype(np.float32)
    spread = 0.35

    def draw(count: int) -> npt.NDArray[np.float32]:
        labels = rng.integers(0, clusters, size=count)
        noise = rng.normal(0.0, spread, size=(count, dim)).astype(np.float32)
        return (centers[labels] + noise).astype(np.float32)

    return draw(n), draw(n_queries)


def sha256_of(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hdf5_metric(path: str | Path) -> Metric:
    """Return the metric named by an ann-benchmarks HDF5 file's ``distance`` attribute.

    ``angular`` means cosine and ``euclidean`` means L2; a file without the attribute
    is taken as L2.

    Raises:
        ValidationError: the file is missing or names a metric this library lacks.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"File {path} not found. Check the path.")
    with h5py.File(path, "r") as handle:
        distance = handle.attrs.get("distance", "euclidean")
    if isinstance(distance, bytes):
        distance = distance.decode()
    return Metric.parse(str(distance))
