"""Readers for registry source files: CSV, Excel, SAS, Stata, SPSS, Parquet, REDCap.

Every reader returns a :class:`SourceTable`: the values *as read* (no type
conversion, no value labels applied), the row numbers a person sees when
opening the file, and the variable and value labels where the format has
them.  Checking and converting values is the validator's job
(:mod:`spinereg.data._validate`); the import mapping (:mod:`spinereg.data._mapping`)
only renames, translates codes and reshapes.

=============  ==============================  ==============  ====================
suffix         read with                       ``row_label``   row numbers
=============  ==============================  ==============  ====================
``.csv``       pyarrow (all columns text)      ``line``        header = line 1
``.tsv/.txt``  as CSV                          ``line``        header = line 1
``.zip``       the one CSV inside, in memory   ``line``        as CSV
``.xlsx``      openpyxl (cell values)          ``sheet row``   the sheet's row
``.sas7bdat``  pyreadstat                      ``row``         1-based record
``.xpt``       pyreadstat (SAS transport)      ``row``         1-based record
``.dta``       pyreadstat (Stata)              ``row``         1-based record
``.sav``       pyreadstat (SPSS)               ``row``         1-based record
``.parquet``   pyarrow                         ``row``         1-based record
=============  ==============================  ==============  ====================

CSV files are read with every column as text (pandas ``string`` dtype backed
by pyarrow): an empty cell is ``""`` and ``"007"`` stays ``"007"``, so the
validator sees exactly what was in the file.  The encoding is UTF-8 (a byte
order mark is skipped); a file that is not valid UTF-8 is read as Windows-1252
(the usual encoding of Danish Excel exports) unless ``encoding`` is given.  The
delimiter is the most frequent of ``,`` ``;`` tab and ``|`` in the header line
unless given.  Blank lines are skipped (their numbers are not reused) and a
quoted value may span lines: the ``line`` of a row is where it starts.

Files that cannot be read raise :class:`~spinereg._errors.SourceFileError` with
a one-line message naming the file; the message never quotes cell values
(anything that looks like a CPR number is replaced by ``[CPR number hidden]``).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from spinereg._errors import SourceFileError
from spinereg.data._cpr import CPR_PATTERN, HIDDEN

__all__ = [
    "FORMATS",
    "RedcapExport",
    "RedcapField",
    "SourceTable",
    "format_of",
    "read_redcap",
    "read_source",
]

#: File suffix -> reader format.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".zip": "zip",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".sas7bdat": "sas7bdat", ".xpt": "xpt", ".dta": "dta", ".sav": "sav", ".zsav": "sav",
    ".parquet": "parquet",
}
_READER_FORMATS = ("csv", "zip", "xlsx", "sas7bdat", "xpt", "dta", "sav", "parquet")
_STAT_NAMES = {"sas7bdat": "SAS (.sas7bdat)", "xpt": "SAS transport (.xpt)", "dta": "Stata (.dta)",
               "sav": "SPSS (.sav)"}
STRING = pd.StringDtype("pyarrow")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SourceTable:
    """One table read from a source file.

    Attributes
    ----------
    frame : pandas.DataFrame
        The values as read: CSV columns are text (pandas ``string``, empty
        cells ``""``); Excel cells keep their Python values (str, int, float,
        datetime, bool; empty = None); SAS/Stata/SPSS numbers are floats
        (missing = NaN) with their codes (value labels are *not* applied),
        dates are ``datetime64``.  The index is 0..n-1.
    file : str
        The file as the user named it (for a CSV inside a zip archive:
        ``archive.zip/member.csv``).
    row_label : str
        How :attr:`rows` count: ``"line"``, ``"sheet row"`` or ``"row"``.
    rows : ndarray of int64
        For each row of :attr:`frame`, its number as a person sees it: the CSV
        line (header = line 1, so the first data row is usually 2), the Excel
        sheet row, or the 1-based record number.
    labels : dict of str to str
        Column -> variable label (SAS, Stata, SPSS, REDCap field labels).
    value_labels : dict of str to dict of str to str
        Column -> {code: label} (Stata, SPSS, REDCap choices).  Codes are
        written as text the way a mapping's ``codes`` table spells them
        (``"1"``, not ``"1.0"``).
    """

    frame: pd.DataFrame
    file: str
    row_label: str
    rows: npt.NDArray[np.int64]
    labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)


def _scrub(text: str) -> str:
    """One line, no CPR number: safe to put in an error message."""
    line = " ".join(str(text).split())
    return CPR_PATTERN.sub(HIDDEN, line)[:300]


def _fail(file: str, what: str, exc: BaseException | None = None) -> SourceFileError:
    detail = f": {_scrub(str(exc)) or type(exc).__name__}" if exc is not None else ""
    return SourceFileError(f"{file}: {what}{detail}")


def format_of(path: str | Path) -> str:
    """The reader format of a file, from its suffix (``csv``, ``xlsx``, ...).

    Raises
    ------
    SourceFileError
        When the suffix is not one spinereg reads.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix == ".xls":
        raise SourceFileError(f"{p}: old Excel .xls files are not read; save the sheet as .xlsx or CSV")
    known = ", ".join(sorted(FORMATS))
    raise SourceFileError(f"{p}: unknown file type {suffix or '(no suffix)'!r}; spinereg reads {known}")


def read_source(path: str | Path, *, format: str | None = None, sheet: str | int | None = None,
                delimiter: str | None = None, encoding: str | None = None) -> SourceTable:
    """Read one source file as it is.

    Parameters
    ----------
    path : str or Path
        The file.
    format : str, optional
        ``csv``, ``zip``, ``xlsx``, ``sas7bdat``, ``xpt``, ``dta``, ``sav`` or
        ``parquet``; by default from the suffix (see :data:`FORMATS`).
    sheet : str or int, optional
        Excel sheet name or 0-based index (default: the first sheet).
    delimiter : str, optional
        CSV delimiter (default: detected from the header line).
    encoding : str, optional
        Text encoding of a CSV file (default: UTF-8, else Windows-1252); for
        SAS/Stata/SPSS passed on to pyreadstat.

    Returns
    -------
    SourceTable

    Raises
    ------
    SourceFileError
        The file is missing, of an unknown type, or cannot be read (one
        line naming the file; no cell values).
    """
    p = Path(path)
    file = str(path)
    fmt = format.lower() if format else format_of(p)
    if fmt not in _READER_FORMATS:
        raise SourceFileError(f"{file}: unknown format {format!r}; formats: {', '.join(_READER_FORMATS)}")
    if not p.exists():
        raise SourceFileError(f"{file}: no such file")
    if p.is_dir():
        raise SourceFileError(f"{file}: is a directory, not a data file")
    if fmt == "csv":
        try:
            data = p.read_bytes()
        except OSError as e:
            raise _fail(file, "cannot read the file", e) from None
        return _read_csv_bytes(data, file, delimiter=delimiter, encoding=encoding,
                               tab=p.suffix.lower() == ".tsv")
    if fmt == "zip":
        return _read_zip(p, file, delimiter=delimiter, encoding=encoding)
    if fmt == "xlsx":
        return _read_xlsx(p, file, sheet)
    if fmt == "parquet":
        return _read_parquet(p, file)
    return _read_stat(p, file, fmt, encoding)


# --------------------------------------------------------------------------- CSV


def _decode(data: bytes, file: str, encoding: str | None) -> bytes:
    """UTF-8 bytes without BOM (re-encoded when the file is in another encoding)."""
    if encoding is None or encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
        if data.startswith(_BOM):
            data = data[len(_BOM):]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            if encoding is not None:
                raise SourceFileError(f"{file}: not valid UTF-8 text (set the source's encoding)") from None
            try:
                return data.decode("cp1252").encode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1").encode("utf-8")
        return data
    try:
        text = data.decode(encoding)
    except LookupError:
        raise SourceFileError(f"{file}: unknown encoding {encoding!r}") from None
    except UnicodeDecodeError:
        raise SourceFileError(f"{file}: not valid {encoding} text") from None
    return text.lstrip("\ufeff").encode("utf-8")


def _sniff(header: str) -> str:
    counts = {d: 0 for d in (",", ";", "\t", "|")}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _header(data: bytes, file: str, delimiter: str | None) -> tuple[list[str], str]:
    head = data[: 1 << 20].decode("utf-8", errors="replace")
    first_line = head.split("\n", 1)[0]
    delim = delimiter or _sniff(first_line)
    if len(delim) != 1:
        raise SourceFileError(f"{file}: the CSV delimiter must be one character, not {delim!r}")
    try:
        row = next(csv.reader(io.StringIO(head, newline=""), delimiter=delim), None)
    except csv.Error as e:
        raise _fail(file, "cannot read the CSV header", e) from None
    if not row or all(not c.strip() for c in row):
        raise SourceFileError(f"{file}: empty file (no header line)")
    names = [c.strip() or f"column{i + 1}" for i, c in enumerate(row)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SourceFileError(f"{file}: the header names column {name!r} twice")
        seen.add(name)
    return names, delim


def _read_csv_bytes(data: bytes, file: str, *, delimiter: str | None = None, encoding: str | None = None,
                    tab: bool = False) -> SourceTable:
    """Parse CSV bytes: every column as text, line numbers as in the file."""
    data = _decode(data, file, encoding)
    names, delim = _header(data, file, "\t" if tab and delimiter is None else delimiter)
    frame = _parse_arrow(data, names, delim)
    if frame is None:
        frame = _parse_pandas(data, file, names, delim)
    n = len(frame)
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if physical == n + 1:
        rows = np.arange(2, n + 2, dtype=np.int64)
        label = "line"
    else:
        found = _line_numbers(data, delim)
        if found is not None and len(found) == n:
            rows, label = found, "line"
        else:  # pragma: no cover - parsers disagree on an odd file: count records
            rows, label = np.arange(1, n + 1, dtype=np.int64), "row"
    return SourceTable(frame, file, label, rows)


def _parse_arrow(data: bytes, names: list[str], delim: str) -> pd.DataFrame | None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.large_string() for c in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None  # ragged rows etc.: the pandas parser gives a clean message
    out: pd.DataFrame = table.to_pandas(types_mapper={pa.large_string(): STRING, pa.string(): STRING}.get)
    out.columns = pd.Index(names)
    return out


def _parse_pandas(data: bytes, file: str, names: list[str], delim: str) -> pd.DataFrame:
    try:
        out = pd.read_csv(io.BytesIO(data), sep=delim, header=0, names=names, dtype=str,
                          keep_default_na=False, na_filter=False, skip_blank_lines=True,
                          engine="c", encoding="utf-8")
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        raise _fail(file, "cannot read as CSV", e) from None
    return out.fillna("").astype(STRING)


def _line_numbers(data: bytes, delim: str) -> npt.NDArray[np.int64] | None:
    """Starting line of every non-blank record after the header (slow path)."""
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    starts: list[int] = []
    try:
        prev = 0
        first = True
        for rec in reader:
            start = prev + 1
            prev = reader.line_num
            if first:
                first = False
                continue
            if rec and not (len(rec) == 1 and rec[0] == ""):
                starts.append(start)
    except csv.Error:
        return None
    return np.asarray(starts, dtype=np.int64)


def _read_zip(p: Path, file: str, *, delimiter: str | None, encoding: str | None) -> SourceTable:
    try:
        with zipfile.ZipFile(p) as z:
            members = [m for m in z.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
                       and not Path(m.filename).name.startswith(".")]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise SourceFileError(f"{file}: a zip archive must hold exactly one data file (it holds {names})")
            member = members[0]
            suffix = Path(member.filename).suffix.lower()
            if FORMATS.get(suffix) != "csv":
                raise SourceFileError(f"{file}: the archive holds {member.filename!r}; only a CSV file is read "
                                    "inside a zip archive (unzip other formats first)")
            data = z.read(member)
    except SourceFileError:
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        raise _fail(file, "cannot read as a zip archive", e) from None
    inner = f"{file}/{member.filename}"
    return _read_csv_bytes(data, inner, delimiter=delimiter, encoding=encoding, tab=suffix == ".tsv")


# --------------------------------------------------------------------------- Excel


def _read_xlsx(p: Path, file: str, sheet: str | int | None) -> SourceTable:
    import openpyxl
    from openpyxl.utils import get_column_letter

    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds on a damaged file
        raise _fail(file, "cannot read as an Excel workbook (.xlsx)", e) from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(wb.worksheets):
                raise SourceFileError(f"{file}: no sheet number {sheet} (it has {len(wb.worksheets)}, counted from 0)")
            ws = wb.worksheets[sheet]
        else:
            if sheet not in wb.sheetnames:
                raise SourceFileError(f"{file}: no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
            ws = wb[sheet]
        try:
            cells = [tuple(r) for r in ws.iter_rows(min_row=1, values_only=True)]
        except Exception as e:  # damaged sheet XML
            raise _fail(file, "cannot read the sheet", e) from None
    finally:
        wb.close()

    def empty(v: Any) -> bool:
        return v is None or (isinstance(v, str) and not v.strip())

    start = next((i for i, r in enumerate(cells) if not all(empty(v) for v in r)), None)
    if start is None:
        return SourceTable(pd.DataFrame(), file, "sheet row", np.zeros(0, dtype=np.int64))
    header = cells[start]
    body = [(i + 1, r) for i, r in enumerate(cells[start + 1:], start=start + 1) if not all(empty(v) for v in r)]
    width = max([len(header)] + [len(r) for _, r in body])
    used = [j for j in range(width)
            if (j < len(header) and not empty(header[j])) or any(j < len(r) and not empty(r[j]) for _, r in body)]
    names: list[str] = []
    for j in used:
        h = header[j] if j < len(header) else None
        names.append(str(h).strip() if not empty(h) else get_column_letter(j + 1))
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise SourceFileError(f"{file}: the header row names column {dup!r} twice")
    data = {name: [r[j] if j < len(r) else None for _, r in body] for name, j in zip(names, used, strict=True)}
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()}, columns=names)
    rows = np.asarray([i for i, _ in body], dtype=np.int64)
    return SourceTable(frame.reset_index(drop=True), file, "sheet row", rows)


# --------------------------------------------------------------------------- Parquet, SAS, Stata, SPSS


def _read_parquet(p: Path, file: str) -> SourceTable:
    try:
        frame = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise _fail(file, "cannot read as Parquet", e) from None
    frame = frame.reset_index(drop=True)
    return SourceTable(frame, file, "row", np.arange(1, len(frame) + 1, dtype=np.int64))


def _code_text(code: Any) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)


def _read_stat(p: Path, file: str, fmt: str, encoding: str | None) -> SourceTable:
    try:
        import pyreadstat
    except ImportError:  # pragma: no cover - installed with spinereg
        raise SourceFileError(f"{file}: reading {_STAT_NAMES[fmt]} files needs the pyreadstat package "
                            "(pip install pyreadstat)") from None
    readers: dict[str, Callable[..., Any]] = {
        "sas7bdat": pyreadstat.read_sas7bdat, "xpt": pyreadstat.read_xport,
        "dta": pyreadstat.read_dta, "sav": pyreadstat.read_sav,
    }
    kwargs: dict[str, Any] = {"dates_as_pandas_datetime": True}
    if fmt in ("dta", "sav"):
        kwargs["apply_value_formats"] = False
    if encoding is not None:
        kwargs["encoding"] = encoding
    try:
        frame, meta = readers[fmt](str(p), **kwargs)
    except Exception as e:  # pyreadstat.ReadstatError and friends
        raise _fail(file, f"cannot read as {_STAT_NAMES[fmt]}", e) from None
    frame = pd.DataFrame(frame).reset_index(drop=True)
    labels = {str(k): str(v) for k, v in (meta.column_names_to_labels or {}).items() if v}
    value_labels: dict[str, dict[str, str]] = {}
    for col, mapping in (getattr(meta, "variable_value_labels", None) or {}).items():
        value_labels[str(col)] = {_code_text(k): str(v) for k, v in mapping.items()}
    return SourceTable(frame, file, "row", np.arange(1, len(frame) + 1, dtype=np.int64), labels, value_labels)


# --------------------------------------------------------------------------- REDCap

_REDCAP_SPECIAL = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                   "redcap_data_access_group", "redcap_survey_identifier")
_DICT_COLUMNS = {
    "name": ("variable / field name", "field_name"),
    "form": ("form name", "form_name"),
    "type": ("field type", "field_type"),
    "label": ("field label", "field_label"),
    "choices": ("choices, calculations, or slider labels", "select_choices_or_calculations"),
    "validation": ("text validation type or show slider number", "text_validation_type_or_show_slider_number"),
}
_CHOICE_TYPES = ("dropdown", "radio", "checkbox")
_FIXED_CHOICES = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}


@dataclass(frozen=True)
class RedcapField:
    """One field of a REDCap data dictionary.

    Attributes
    ----------
    name, form, type, label : str
        Variable name, instrument (form) name, field type (``text``,
        ``dropdown``, ``radio``, ``checkbox``, ``yesno``, ``calc``...) and label.
    choices : dict of str to str
        Code -> label for dropdown, radio, checkbox, yesno and truefalse fields.
    validation : str
        Text validation type (``date_ymd``, ``integer``...), or "".
    columns : tuple of str
        The data columns of the field: the field itself, or for a checkbox
        ``field___code`` per choice.
    """

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str]
    validation: str
    columns: tuple[str, ...]


def parse_choices(text: str) -> dict[str, str]:
    """REDCap choices ``"1, Male | 2, Female"`` -> ``{"1": "Male", "2": "Female"}``."""
    out: dict[str, str] = {}
    for part in str(text).split("|"):
        part = part.strip()
        if not part:
            continue
        code, sep, label = part.partition(",")
        out[code.strip()] = label.strip() if sep else code.strip()
    return out


def _checkbox_suffix(code: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


@dataclass(frozen=True)
class RedcapExport:
    """A REDCap raw-data CSV export with its data dictionary.

    Attributes
    ----------
    data : SourceTable
        The whole export as read (line numbers of the data file).
    fields : dict of str to RedcapField
        The data dictionary, in its order.
    record_id : str
        The record id field (the first field of the dictionary).
    forms : tuple of str
        Instrument (form) names in dictionary order.
    events : tuple of str
        Event names found in ``redcap_event_name`` (longitudinal projects).
    repeating : frozenset of str
        Forms found in ``redcap_repeat_instrument``.
    """

    data: SourceTable
    fields: dict[str, RedcapField]
    record_id: str
    forms: tuple[str, ...]
    events: tuple[str, ...]
    repeating: frozenset[str]

    def form(self, name: str, events: Sequence[str] | None = None) -> SourceTable:
        """The rows and columns of one form (instrument).

        Columns: the record id, the ``redcap_*`` bookkeeping columns present
        (event, repeat instrument and instance), the form's fields, and
        ``<form>_complete``.  A checkbox field keeps its ``field___code``
        columns and gains a column ``field`` holding the ticked codes joined
        by ``;`` (``""`` when none).  Rows: those where the form holds data
        (any field filled, a box ticked, or the form marked complete or
        unverified); a repeating form's rows are its repeat instances.

        Parameters
        ----------
        name : str
            The form name (as in the data dictionary's "Form Name").
        events : sequence of str, optional
            Keep only rows of these ``redcap_event_name`` values.
        """
        if name not in self.forms:
            raise SourceFileError(f"{self.data.file}: REDCap form {name!r} is not in the data dictionary; "
                                f"forms: {', '.join(self.forms)}")
        df = self.data.frame
        fields = [f for f in self.fields.values() if f.form == name and f.name != self.record_id]
        cols = [c for f in fields for c in f.columns if c in df.columns]
        complete = f"{name}_complete"
        if not cols and complete not in df.columns:
            raise SourceFileError(f"{self.data.file}: the export holds no field of REDCap form {name!r} "
                                "(export the form's fields too)")
        filled = np.zeros(len(df), dtype=bool)
        checkbox: dict[str, pd.Series] = {}
        for f in fields:
            present = [c for c in f.columns if c in df.columns]
            if not present:
                continue
            if f.type == "checkbox":
                ticked = []
                joined = pd.Series("", index=df.index, dtype=object)
                codes = {_checkbox_suffix(k): k for k in f.choices}
                for c in present:
                    on = df[c].astype(STRING).str.strip().eq("1").fillna(False).to_numpy(dtype=bool)
                    ticked.append(on)
                    code = codes.get(c[len(f.name) + 3:], c[len(f.name) + 3:])
                    joined = joined + np.where(on, code + ";", "")
                checkbox[f.name] = joined.str.rstrip(";").astype(STRING)
                filled |= np.logical_or.reduce(ticked)
            else:
                for c in present:
                    filled |= _nonblank(df[c])
        if complete in df.columns:
            filled |= df[complete].astype(STRING).str.strip().isin(["1", "2"]).fillna(False).to_numpy(dtype=bool)
        if "redcap_repeat_instrument" in df.columns:
            rep = df["redcap_repeat_instrument"].astype(STRING).str.strip().fillna("")
            own = rep.eq(name).to_numpy(dtype=bool)
            plain = rep.eq("").to_numpy(dtype=bool)
            keep = own | (plain & filled)
        else:
            keep = filled
        if events is not None:
            if "redcap_event_name" not in df.columns:
                raise SourceFileError(f"{self.data.file}: events are given but the export has no "
                                    "redcap_event_name column (not a longitudinal project)")
            unknown = [e for e in events if e not in self.events]
            if unknown:
                raise SourceFileError(f"{self.data.file}: REDCap event {unknown[0]!r} is not in the export; "
                                    f"events: {', '.join(self.events)}")
            keep &= df["redcap_event_name"].astype(STRING).isin(list(events)).fillna(False).to_numpy(dtype=bool)
        head = [self.record_id] + [c for c in _REDCAP_SPECIAL if c in df.columns]
        tail = [complete] if complete in df.columns else []
        out = df.loc[keep, [c for c in head if c in df.columns] + cols + tail].copy()
        for fname, joined in checkbox.items():
            out[fname] = joined[keep].to_numpy()
        labels = {c: f.label for f in fields for c in (*f.columns, f.name) if f.label}
        vlabels = {f.name: dict(f.choices) for f in fields if f.choices}
        return SourceTable(out.reset_index(drop=True), self.data.file, self.data.row_label,
                           self.data.rows[keep], labels, vlabels)


def _nonblank(s: pd.Series) -> npt.NDArray[np.bool_]:
    txt = s.astype(STRING).str.strip()
    return (txt.notna() & txt.ne("")).fillna(False).to_numpy(dtype=bool)


def read_redcap(data_csv: str | Path, dictionary_csv: str | Path) -> RedcapExport:
    """Read a REDCap raw-data CSV export and its data dictionary.

    Parameters
    ----------
    data_csv : str or Path
        The "CSV / Microsoft Excel (raw data)" export (codes, not labels).
    dictionary_csv : str or Path
        The project's data dictionary (CSV as downloaded from REDCap, or as
        returned by the API with ``field_name``, ``form_name``... columns).

    Returns
    -------
    RedcapExport
        Use :meth:`RedcapExport.form` for one form's table.
    """
    dictionary = read_source(dictionary_csv, format="csv")
    dfile = dictionary.file
    lower = {c.strip().lower(): c for c in dictionary.frame.columns}
    cols: dict[str, str] = {}
    for key, names in _DICT_COLUMNS.items():
        hit = next((lower[n] for n in names if n in lower), None)
        if hit is None and key in ("name", "form", "type"):
            raise SourceFileError(f"{dfile}: not a REDCap data dictionary (no column {names[0]!r})")
        if hit is not None:
            cols[key] = hit
    data = read_source(data_csv, format="csv")
    dcols = list(data.frame.columns)
    fields: dict[str, RedcapField] = {}
    dd = dictionary.frame
    for i in range(len(dd)):
        def get(key: str, i: int = i) -> str:
            return str(dd[cols[key]].iloc[i]).strip() if key in cols else ""

        name, form, ftype = get("name"), get("form"), get("type").lower()
        if not name or ftype == "descriptive":
            continue
        choices: dict[str, str] = {}
        if ftype in _CHOICE_TYPES:
            choices = parse_choices(get("choices"))
        elif ftype in _FIXED_CHOICES:
            choices = dict(_FIXED_CHOICES[ftype])
        if ftype == "checkbox":
            prefix = f"{name}___"
            columns = tuple(c for c in dcols if c.startswith(prefix))
            if not columns:
                columns = tuple(prefix + _checkbox_suffix(k) for k in choices)
        else:
            columns = (name,)
        fields[name] = RedcapField(name, form, ftype, get("label"), choices, get("validation"), columns)
    if not fields:
        raise SourceFileError(f"{dfile}: the REDCap data dictionary lists no fields")
    record_id = next(iter(fields))
    if record_id not in data.frame.columns:
        raise SourceFileError(f"{data.file}: no column {record_id!r} (the record id of the data dictionary "
                            f"{dfile}); is this the raw-data export of the same project?")
    forms = tuple(dict.fromkeys(f.form for f in fields.values()))
    events: tuple[str, ...] = ()
    if "redcap_event_name" in data.frame.columns:
        ev = data.frame["redcap_event_name"].astype(STRING).str.strip()
        events = tuple(str(e) for e in ev[ev.ne("").fillna(False)].unique())
    repeating: frozenset[str] = frozenset()
    if "redcap_repeat_instrument" in data.frame.columns:
        rep = data.frame["redcap_repeat_instrument"].astype(STRING).str.strip()
        repeating = frozenset(str(r) for r in rep[rep.ne("").fillna(False)].unique())
    return RedcapExport(data, fields, record_id, forms, events, repeating)
