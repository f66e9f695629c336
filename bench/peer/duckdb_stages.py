"""The DuckDB peer of parse, recast and snapshot (issue 16), one stage per process.

`bench peer duckdb` (bench/src/peer.rs) runs this once per stage and night:

    python duckdb_stages.py parse --table T --out parsed.parquet --files RAW.parquet ...
    python duckdb_stages.py recast --in parsed.parquet --types '{"id": "integer", ...}' --out increment.parquet
    python duckdb_stages.py snapshot --increment increment.parquet --date YYYYMMDD [--base previous.parquet] --out snapshot.parquet
    python duckdb_stages.py compare --peer snapshot.parquet --ours OURS.parquet ...

Each prints one JSON line: rows, input_bytes, output_bytes, wall_secs (the stage's work: from
the connection to the file written, not the interpreter's start or `import duckdb`) and
peak_rss_bytes (VmHWM of this process, as our stages report theirs). The stages do what ours do
(docs/parse-recast.md, docs/snapshot.md), in DuckDB's own way:

- parse: the rows with status '200' and a record; the union of the records' field names (pass
  1); every field as text (JSON strings as they are, other values as JSON text), plus the
  bookkeeping columns; one row per id: the later last_updated, then the later page, then the
  later row (pass 2, the winners chosen on the keys alone, then the rows joined).
- recast: every column the dictionary types cast to its type (blank is null; a value that does
  not cast is null); the others, and the bookkeeping columns, unchanged.
- snapshot: the increment's rows, one per id (the later last_updated wins), replace the base's
  rows with the same id (as ours: an increment row replaces the base's); the import partition
  values as text columns.

Not done here, and done by ours: the data-quality gate (unique and present ids, completeness,
the row count against the base), cast-failure counts, Spark's cast edge cases (`12.7` as an
integer), the catalog, and the files' layout (ours writes id-ordered files of a target size).
Files are written as ours are: Parquet, zstd level 1.
"""

import argparse
import json
import os
import sys
import time

BOOKKEEPING = [
    ("page_number", "BIGINT"),
    ("import_api_url_requested", "VARCHAR"),
    ("import_api_status_code", "VARCHAR"),
    ("import_exception_thrown", "VARCHAR"),
    ("import_datetime", "TIMESTAMP"),
    ("import_timestamp", "VARCHAR"),
]
PARQUET = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def literal(text):
    return "'" + text.replace("'", "''") + "'"


def files_list(paths):
    return "[" + ", ".join(literal(p) for p in paths) + "]"


def parse(con, args):
    raw = (
        f"read_parquet({files_list(args.files)}, filename = true, file_row_number = true, "
        "union_by_name = true)"
    )
    bookkeeping = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in BOOKKEEPING)
    con.execute(
        f"""CREATE TEMP VIEW raw AS
        SELECT {quote(args.table)} AS rec, {bookkeeping}, filename, file_row_number
        FROM {raw}
        WHERE CAST(import_api_status_code AS VARCHAR) = '200' AND {quote(args.table)} IS NOT NULL"""
    )
    # Pass 1: the union of the field names, in byte order (Python's order of str is by code
    # point, which is UTF-8's byte order).
    names = sorted(r[0] for r in con.execute("SELECT DISTINCT unnest(json_keys(rec)) FROM raw").fetchall())
    if "id" not in names:
        raise SystemExit("parse: the records have no id")
    paths = "[" + ", ".join(literal('$."' + n + '"') for n in names) + "]"
    fields = ", ".join(f"v[{i + 1}] AS {quote(n)}" for i, n in enumerate(names))
    last_updated = "json_extract_string(rec, '$.last_updated')" if "last_updated" in names else "NULL"
    # Pass 2: the winner of each id chosen on its keys, then its row exploded.
    rows = con.execute(
        f"""COPY (
          WITH keys AS (
            SELECT json_extract_string(rec, '$.id') AS id, {last_updated} AS lu,
                   page_number, filename, file_row_number
            FROM raw
          ),
          winners AS (
            SELECT filename, file_row_number FROM keys
            QUALIFY row_number() OVER (
              PARTITION BY coalesce(CAST(TRY_CAST(id AS HUGEINT) AS VARCHAR), id)
              ORDER BY TRY_CAST(lu AS TIMESTAMP) DESC NULLS LAST, lu DESC NULLS LAST,
                       page_number DESC NULLS LAST, filename DESC, file_row_number DESC) = 1
          )
          SELECT {fields}, {", ".join(quote(c) for c, _ in BOOKKEEPING)}
          FROM (
            SELECT json_extract_string(rec, {paths}) AS v, raw.*
            FROM raw SEMI JOIN winners USING (filename, file_row_number)
          )
        ) TO {literal(args.out)} {PARQUET}"""
    ).fetchone()[0]
    return rows, sum(os.path.getsize(f) for f in args.files)


def cast(column, kind):
    value = f"NULLIF(trim({quote(column)}), '')"
    if kind == "integer":
        return f"TRY_CAST({value} AS INTEGER)"
    if kind == "long":
        return f"TRY_CAST({value} AS BIGINT)"
    if kind in ("float", "double"):
        return f"TRY_CAST({value} AS DOUBLE)"
    if kind == "boolean":
        # A list lookup, not CASE ... IN (...): with the 214 boolean columns of applications,
        # DuckDB took a minute to plan the CASE form whatever the rows (measured), this one
        # plans at once. A word not in the list is null.
        return (
            "[true, true, true, true, true, false, false, false, false, false]"
            "[list_position(['t', 'true', 'y', 'yes', '1', 'f', 'false', 'n', 'no', '0'], "
            f"lower(trim({quote(column)})))]"
        )
    if kind == "timestamp":
        return f"TRY_CAST({value} AS TIMESTAMP)"
    if kind == "date":
        return f"coalesce(TRY_CAST({value} AS DATE), CAST(try_strptime({value}, '%Y%m%d') AS DATE))"
    raise SystemExit(f"recast: unknown type {kind} of {column}")


def recast(con, args):
    types = json.loads(args.types)
    source = f"read_parquet({literal(args.input)})"
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    bookkeeping = {c for c, _ in BOOKKEEPING}
    select = ", ".join(
        quote(c) if c in bookkeeping or c not in types else f"{cast(c, types[c])} AS {quote(c)}"
        for c in columns
    )
    rows = con.execute(f"COPY (SELECT {select} FROM {source}) TO {literal(args.out)} {PARQUET}").fetchone()[0]
    return rows, os.path.getsize(args.input)


def snapshot(con, args):
    d = args.date
    imports = f"'{d[:4]}' AS import_year, '{d[4:6]}' AS import_month, '{d[6:]}' AS import_day, '{d}' AS import_date"
    con.execute(
        f"""CREATE TEMP VIEW increment AS
        SELECT * FROM read_parquet({literal(args.increment)}, file_row_number = true)"""
    )
    winners = f"""
        SELECT * EXCLUDE (file_row_number), {imports}
        FROM increment SEMI JOIN (
          SELECT file_row_number FROM increment
          QUALIFY row_number() OVER (PARTITION BY id ORDER BY last_updated DESC NULLS LAST, file_row_number DESC) = 1
        ) USING (file_row_number)"""
    if args.base:
        query = f"""
          SELECT * FROM read_parquet({literal(args.base)}) AS base
          ANTI JOIN (SELECT id FROM increment) AS changed USING (id)
          UNION ALL BY NAME
          {winners}"""
        inputs = os.path.getsize(args.base) + os.path.getsize(args.increment)
    else:
        query = winners
        inputs = os.path.getsize(args.increment)
    rows = con.execute(f"COPY ({query}) TO {literal(args.out)} {PARQUET}").fetchone()[0]
    return rows, inputs


def compare(con, args):
    ours = f"SELECT CAST(id AS VARCHAR) AS id, CAST(last_updated AS VARCHAR) AS lu FROM read_parquet({files_list(args.ours)})"
    peer = f"SELECT CAST(id AS VARCHAR) AS id, CAST(last_updated AS VARCHAR) AS lu FROM read_parquet({literal(args.peer)})"
    ours_rows = con.execute(f"SELECT count(*) FROM ({ours})").fetchone()[0]
    peer_rows = con.execute(f"SELECT count(*) FROM ({peer})").fetchone()[0]
    only_ours = con.execute(f"SELECT * FROM ({ours} EXCEPT ALL {peer}) ORDER BY id LIMIT 5").fetchall()
    only_peer = con.execute(f"SELECT * FROM ({peer} EXCEPT ALL {ours}) ORDER BY id LIMIT 5").fetchall()
    return {
        "equal": ours_rows == peer_rows and not only_ours and not only_peer,
        "ours_rows": ours_rows,
        "peer_rows": peer_rows,
        "only_ours": [list(r) for r in only_ours],
        "only_peer": [list(r) for r in only_peer],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["parse", "recast", "snapshot", "compare"])
    parser.add_argument("--table")
    parser.add_argument("--files", nargs="+")
    parser.add_argument("--in", dest="input")
    parser.add_argument("--types")
    parser.add_argument("--increment")
    parser.add_argument("--base")
    parser.add_argument("--date")
    parser.add_argument("--out")
    parser.add_argument("--peer")
    parser.add_argument("--ours", nargs="+")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    import duckdb  # start-up, not timed

    started = time.perf_counter()
    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {int(args.threads)}")
    if args.out:
        con.execute(f"SET temp_directory = {literal(os.path.join(os.path.dirname(args.out), 'duckdb-tmp'))}")
    if args.stage == "compare":
        print(json.dumps(compare(con, args)))
        return
    rows, input_bytes = {"parse": parse, "recast": recast, "snapshot": snapshot}[args.stage](con, args)
    con.close()
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": rows,
                "input_bytes": input_bytes,
                "output_bytes": os.path.getsize(args.out),
                "wall_secs": wall,
                "peak_rss_bytes": peak_rss_bytes(),
                "copied_files": None,
                "rewritten_files": None,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
