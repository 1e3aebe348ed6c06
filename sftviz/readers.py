"""Reading a local data file (.jsonl .json .csv .parquet) into rows, ourselves, with a row limit.

Not `datasets.load_dataset("json", data_files=...)`: that writes an Arrow copy of every new file into
the shared datasets cache (a visitor's upload would outlive the visitor), and its errors say "An error
occurred while generating the dataset" for a binary file, a latin-1 file or a ragged CSV alike. Each
reader here stops after `limit` rows and says in one line what is wrong, and where.
"""

import csv
import itertools
import json
import os
import re
import sys

from . import clean_text

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # "\ud800" in JSON text: a lone surrogate, maybe


def clean(value):
    """A JSON value with every string's lone surrogates replaced by U+FFFD (see sftviz.clean_text)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


def _loads(text, name, where, notes=None):
    """json.loads, with the ways a valid-looking file can still break it said in one line, and strings made
    valid text (counted in notes["replaced"]: rows with a lone surrogate)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise FileError(f"{name}: {where} is nested too deeply (more than about a thousand levels)") from None
    except ValueError as e:
        if "Exceeds the limit" in str(e):  # Python's int digit limit (4,300 by default)
            limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()  # (Python 3.10.7+; 3.11 to vermin)
            raise FileError(f"{name}: {where} has a number with more than {limit:,} digits") from None
        raise
    if not _ESCAPED_SURROGATE.search(text):
        return value
    cleaned = clean(value)
    if notes is not None and cleaned != value:
        notes["replaced"] = notes.get("replaced", 0) + 1
    return cleaned

EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")


class FileError(ValueError):
    """The file cannot be read as data; the message says why, in one line."""


def iter_rows(path, notes=None):
    """path -> row dicts one by one: the one reader. JSON lines, CSV and Parquet are streamed (a .json array is
    read whole). Every way a file can be wrong is one line naming the file: an unsupported type, an empty file,
    no rows, and where a line breaks. `notes` (a dict) gets what the reader changed: "replaced", rows whose
    invalid text (a lone surrogate) became U+FFFD."""
    name = os.path.basename(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise FileError(f"{name}: unsupported file type {ext or '(none)'}; use {', '.join(EXTENSIONS)}")
    if os.path.getsize(path) == 0:
        raise FileError(f"{name}: the file is empty")
    notes = {} if notes is None else notes
    rows = {".jsonl": jsonl_rows, ".json": json_rows, ".csv": csv_rows, ".parquet": parquet_rows}[ext](path, name,
                                                                                                      notes)
    first = next(rows, None)
    if first is None:
        raise FileError(f"{name}: the file has no rows")
    yield first
    yield from rows


def read(path, limit=None):
    """path -> list of row dicts (at most `limit`): the first rows of iter_rows."""
    return list(itertools.islice(iter_rows(path), limit))


def count_rows(path):
    """About how many rows the file has, cheaply (for a progress bar): JSON lines and CSV lines, Parquet's
    own count; None for a .json array (it is read whole anyway)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".parquet":
            import pyarrow.parquet as pq
            return pq.ParquetFile(path).metadata.num_rows
        if ext in (".jsonl", ".csv"):
            with open(path, "rb") as f:
                lines = sum(1 for line in f if line.strip())
            return max(0, lines - (ext == ".csv"))  # a CSV's header
    except Exception:  # noqa: BLE001 - a count is a nicety; reading the rows says what is wrong
        return None
    return None


def _text_lines(path, name):
    """The file's lines as text; a file that is not UTF-8 is refused with where it fails."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if b"\0" in raw:
                raise FileError(f"{name}: line {number} has NUL bytes: this is a binary file, not text")
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise FileError(f"{name}: line {number} is not UTF-8 text (byte {e.start + 1}); save the file as "
                                f"UTF-8") from None


def _row(value, name, where):
    if not isinstance(value, dict):
        raise FileError(f"{name}: {where} is a JSON {type(value).__name__}, not an object with columns")
    return value


def jsonl_rows(path, name, notes=None):
    for number, line in _text_lines(path, name):
        if line.strip():
            try:
                yield _row(_loads(line, name, f"line {number}", notes), name, f"line {number}")
            except json.JSONDecodeError as e:
                raise FileError(f"{name}: line {number} is not valid JSON ({e.msg}, column {e.colno})") from None


def json_rows(path, name, notes=None):
    """A JSON array of objects, an object of equal-length column lists, or JSON lines in a .json file."""
    text = "".join(line for _, line in _text_lines(path, name))
    try:
        value = _loads(text, name, "the file", notes)
    except json.JSONDecodeError:
        yield from jsonl_rows(path, name, notes)
        return
    if isinstance(value, list):
        yield from (_row(v, name, f"item {i}") for i, v in enumerate(value))
    elif isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {len(v) for v in value.values()}
        if len(lengths) != 1:
            raise FileError(f"{name}: the column lists have different lengths {sorted(lengths)}")
        yield from ({k: v[i] for k, v in value.items()} for i in range(lengths.pop()))
    else:
        raise FileError(f"{name}: expected a JSON array of objects (or JSON lines), got a JSON "
                        f"{type(value).__name__}")


def csv_rows(path, name, notes=None):
    csv.field_size_limit(max(csv.field_size_limit(), os.path.getsize(path) + 1))  # a cell may be the whole file
    reader = csv.reader(line for _, line in _text_lines(path, name))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise FileError(f"{name}: the file has no header row")
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1}) if len(header) < 1000 else []
        raise FileError(f"{name}: the header repeats a column name" + (f": {', '.join(repeated[:5])}" if repeated
                                                                          else ""))
    for record in reader:
        if not record:
            continue
        if len(record) != len(header):
            raise FileError(f"{name}: CSV line {reader.line_num} has {len(record)} fields, the header has "
                            f"{len(header)} ({', '.join(header[:8])}{', ...' if len(header) > 8 else ''})")
        yield dict(zip(header, record))


def parquet_rows(path, name, notes=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise FileError(f"{name}: not a readable Parquet file ({str(e).splitlines()[0][:120]})") from None
