"""Reading reference / current data sets for drift: Parquet, CSV or JSON Lines.

Columns are features, except the reserved ``prediction`` (model output), ``confidence``
(top-class probability), ``event_time`` (ISO 8601), ``model`` and ``version``. Errors
name the file and the line (CSV/JSONL) or column (Parquet). A JSON file holding a saved
reference profile (``{"format": 1, ...}``) is read as that profile.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from modelguard.contracts.limits import LIMITS
from modelguard.core.drift.reference import ReferenceProfile
from modelguard.errors import InvalidInputError

RESERVED = ("prediction", "confidence", "event_time", "model", "version")
#: Row limit of one file (keeps memory bounded; a reference needs thousands, not millions).
MAX_ROWS = 2_000_000


class DataFileError(InvalidInputError):
    """A data file that cannot be read; the message names the file and where."""


@dataclass
class Table:
    path: Path
    columns: dict[str, list[object]] = field(default_factory=dict)
    n_rows: int = 0

    def features(self) -> dict[str, list[object]]:
        return {k: v for k, v in self.columns.items() if k not in RESERVED}

    def column(self, name: str) -> list[object] | None:
        return self.columns.get(name)


def _scalar(path: Path, where: str, name: str, v: object) -> object:
    if v is None or isinstance(v, bool | int | str):
        if isinstance(v, str) and len(v) > LIMITS.max_string_length:
            raise DataFileError(
                f"{path}: {where}: column {name!r}: string longer than {LIMITS.max_string_length}"
            )
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, datetime):
        return v.isoformat()
    raise DataFileError(
        f"{path}: {where}: column {name!r}: unsupported value "
        f"{type(v).__name__} (numbers, strings or null only)"
    )


def _csv_value(text: str) -> object:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return text
    return f if math.isfinite(f) else None


def read_table(path: Path) -> Table:
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    raise DataFileError(f"{path}: unknown format {suffix!r} (use .parquet, .csv or .jsonl)")


def _read_parquet(path: Path) -> Table:
    import pyarrow.lib  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        table = pq.read_table(path)
    except (pyarrow.lib.ArrowException, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file: {exc}") from None
    if table.num_rows > MAX_ROWS:
        raise DataFileError(f"{path}: {table.num_rows} rows, limit is {MAX_ROWS}")
    out = Table(path, n_rows=table.num_rows)
    for name in table.column_names:
        values = table.column(name).to_pylist()
        out.columns[name] = [_scalar(path, "column", name, v) for v in values]
    return out


def _read_csv(path: Path) -> Table:
    out = Table(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise DataFileError(f"{path}: line 1: missing header row")
            if len(set(header)) != len(header):
                raise DataFileError(f"{path}: line 1: duplicate column names")
            cols: list[list[object]] = [[] for _ in header]
            for line_no, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise DataFileError(
                        f"{path}: line {line_no}: {len(row)} fields, header has {len(header)}"
                    )
                for c, text in zip(cols, row, strict=True):
                    c.append(_csv_value(text))
                out.n_rows += 1
                if out.n_rows > MAX_ROWS:
                    raise DataFileError(f"{path}: more than {MAX_ROWS} rows")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataFileError(f"{path}: malformed CSV: {exc}") from None
    out.columns = dict(zip(header, cols, strict=True))
    return out


def _read_jsonl(path: Path) -> Table:
    rows: list[dict[str, object]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line, parse_constant=_reject_constant)
                except (json.JSONDecodeError, ValueError) as exc:
                    raise DataFileError(f"{path}: line {line_no}: not valid JSON: {exc}") from None
                if not isinstance(obj, dict):
                    raise DataFileError(f"{path}: line {line_no}: expected a JSON object")
                if isinstance(obj.get("features"), dict):  # a PredictionLogged-like record
                    flat = dict(obj["features"])
                    for k in RESERVED:
                        if k in obj and not isinstance(obj[k], dict | list):
                            flat[k] = obj[k]
                    if isinstance(obj.get("probabilities"), dict) and obj["probabilities"]:
                        flat["confidence"] = max(obj["probabilities"].values())
                    obj = flat
                rows.append({k: _scalar(path, f"line {line_no}", k, v) for k, v in obj.items()})
                if len(rows) > MAX_ROWS:
                    raise DataFileError(f"{path}: more than {MAX_ROWS} rows")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text: {exc}") from None
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    out = Table(path, n_rows=len(rows))
    out.columns = {k: [r.get(k) for r in rows] for k in names}
    return out


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def read_profile(path: Path) -> ReferenceProfile | None:
    """The saved profile in ``path`` if it is one (``.json`` with ``format``), else None."""
    if path.suffix.lower() != ".json":
        return None
    try:
        return ReferenceProfile.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from None
    except ValueError as exc:
        raise DataFileError(f"{path}: {exc}") from None


def parse_time(path: Path, row: int, value: object, default: datetime) -> datetime:
    if value is None:
        return default
    if not isinstance(value, str):
        raise DataFileError(f"{path}: row {row}: event_time must be an ISO 8601 string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise DataFileError(f"{path}: row {row}: event_time {value!r} is not ISO 8601") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
