"""SQL on the app's databases (`[databases.<name>]` in `flagon.toml`).

Needs `grants = { sql = ["main"] }`. Each call runs one statement; values are always bound as
parameters (`?1`, `?2`, ... for SQLite; `$1`, `$2`, ... for Postgres), never spliced into the
text.

    db = sql.database("main")
    db.execute("INSERT INTO notes (body) VALUES (?1)", [body])
    for row in db.query("SELECT id, body FROM notes ORDER BY id"):
        print(row["id"], row["body"])

    with db.transaction() as tx:          # committed at the end of the block,
        tx.execute("UPDATE ...", [...])   # rolled back if it raises
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Union, overload

from . import _host
from .errors import HTTPError

#: A Python value that binds as a parameter: None, bool, int (64-bit), float, str or bytes. A
#: WIT `value` variant (`wit_world.imports.sql_types.Value_*`) passes through unchanged.
Param = Union[None, bool, int, float, str, bytes, bytearray, memoryview]
#: A value read from a row: None, int, float, str, bytes or bool.
Value = Union[None, int, float, str, bytes, bool]


class ErrorKind(enum.StrEnum):
    """The case of the WIT `sql-error` variant."""

    CONSTRAINT_VIOLATION = "constraint-violation"
    NO_SUCH_TABLE = "no-such-table"
    NO_SUCH_COLUMN = "no-such-column"
    SYNTAX = "syntax"
    TIMEOUT = "timeout"
    TOO_MANY_ROWS = "too-many-rows"
    TOO_LARGE = "too-large"
    CONNECTION_LOST = "connection-lost"
    NOT_GRANTED = "not-granted"
    OTHER = "other"


class ConstraintKind(enum.StrEnum):
    """Which kind of constraint a write broke."""

    UNIQUE = "unique"
    PRIMARY_KEY = "primary-key"
    FOREIGN_KEY = "foreign-key"
    NOT_NULL = "not-null"
    CHECK = "check"
    OTHER = "other"


@dataclass(frozen=True)
class Constraint:
    """The constraint a write broke: its kind and its name (SQLite: the columns,
    `users.email`)."""

    kind: ConstraintKind
    name: str | None


class SqlError(HTTPError):
    """A statement that failed. `kind` says why (an `ErrorKind`, which compares equal to its
    WIT name: `e.kind == "no-such-table"`); `constraint` is set for a constraint violation,
    `limit` for `too-many-rows` and `too-large`.

    Not caught, it ends the request: `timeout` and `connection-lost` as a 503, anything else
    as a 500, with the message in the log.
    """

    kind: ErrorKind
    constraint: Constraint | None
    limit: int | None

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        constraint: Constraint | None = None,
        limit: int | None = None,
    ) -> None:
        status = 503 if kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION_LOST) else 500
        super().__init__(status, f"sql: {message}")
        self.kind = kind
        self.constraint = constraint
        self.limit = limit
        self.detail = message

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"SqlError({self.kind.value!r}, {self.detail!r})"


def _types() -> ModuleType:
    return _host.require(_host.sql_types, "sql_types")


def _sql() -> ModuleType:
    return _host.require(_host.sql, "sql")


_CONSTRAINT_KINDS = {
    "UNIQUE": ConstraintKind.UNIQUE,
    "PRIMARY_KEY": ConstraintKind.PRIMARY_KEY,
    "FOREIGN_KEY": ConstraintKind.FOREIGN_KEY,
    "NOT_NULL": ConstraintKind.NOT_NULL,
    "CHECK": ConstraintKind.CHECK,
    "OTHER": ConstraintKind.OTHER,
}


def _error(err: Any) -> SqlError:
    """The `SqlError` for a WIT `sql-error`."""
    t = _types()
    if isinstance(err, t.SqlError_ConstraintViolation):
        c = err.value
        constraint = Constraint(_CONSTRAINT_KINDS[c.kind.name], c.constraint)
        return SqlError(
            ErrorKind.CONSTRAINT_VIOLATION,
            f"constraint violation: {c.message}",
            constraint=constraint,
        )
    if isinstance(err, t.SqlError_NoSuchTable):
        return SqlError(ErrorKind.NO_SUCH_TABLE, f"no such table: {err.value}")
    if isinstance(err, t.SqlError_NoSuchColumn):
        return SqlError(ErrorKind.NO_SUCH_COLUMN, f"no such column: {err.value}")
    if isinstance(err, t.SqlError_Syntax):
        return SqlError(ErrorKind.SYNTAX, f"syntax error: {err.value}")
    if isinstance(err, t.SqlError_Timeout):
        return SqlError(ErrorKind.TIMEOUT, "the statement timed out")
    if isinstance(err, t.SqlError_TooManyRows):
        return SqlError(
            ErrorKind.TOO_MANY_ROWS, f"the result has more than {err.value} rows", limit=err.value
        )
    if isinstance(err, t.SqlError_TooLarge):
        return SqlError(
            ErrorKind.TOO_LARGE,
            f"the result or parameters exceed {err.value} bytes",
            limit=err.value,
        )
    if isinstance(err, t.SqlError_ConnectionLost):
        return SqlError(ErrorKind.CONNECTION_LOST, "the database connection was lost")
    if isinstance(err, t.SqlError_NotGranted):
        return SqlError(ErrorKind.NOT_GRANTED, str(err.value))
    return SqlError(ErrorKind.OTHER, str(getattr(err, "value", err)))


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def to_value(v: object) -> Any:
    """A Python value as a WIT `value`: None is `null`, bool `boolean`, int `integer` (64-bit),
    float `real`, str `text`, bytes `blob`. A `Value_*` variant passes through."""
    t = _types()
    if v is None:
        return t.Value_Null()
    if isinstance(v, bool):
        return t.Value_Boolean(v)
    if isinstance(v, int):
        if not _I64_MIN <= v <= _I64_MAX:
            raise SqlError(ErrorKind.OTHER, f"the integer {v} does not fit in 64 bits")
        return t.Value_Integer(v)
    if isinstance(v, float):
        return t.Value_Real(v)
    if isinstance(v, str):
        return t.Value_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return t.Value_Blob(bytes(v))
    if isinstance(
        v,
        (t.Value_Null, t.Value_Integer, t.Value_Real, t.Value_Text, t.Value_Blob, t.Value_Boolean),
    ):
        return v
    raise SqlError(
        ErrorKind.OTHER,
        f"a {type(v).__name__} cannot be a SQL parameter (use None, bool, int, float, str or "
        "bytes)",
    )


def from_value(v: Any) -> Value:
    """A WIT `value` as a Python value (`null` is None)."""
    if isinstance(v, _types().Value_Null):
        return None
    value: Value = v.value
    return value


def _params(params: Sequence[Param] | None) -> list[Any]:
    return [to_value(p) for p in params or ()]


class Row(Mapping[str, Value]):
    """One row: `row["title"]` by column name, `row[0]` by position; `dict(row)` and
    `row.as_tuple()` convert it."""

    __slots__ = ("_columns", "_values")

    def __init__(self, columns: list[str], values: list[Value]) -> None:
        self._columns = columns
        self._values = values

    @overload
    def __getitem__(self, key: str) -> Value: ...
    @overload
    def __getitem__(self, key: int) -> Value: ...
    def __getitem__(self, key: str | int) -> Value:
        if isinstance(key, int):
            return self._values[key]
        try:
            return self._values[self._columns.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def as_tuple(self) -> tuple[Value, ...]:
        return tuple(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


class Rows(Sequence[Row]):
    """The rows of a query: `columns`, and a sequence of `Row`."""

    __slots__ = ("columns", "_rows")

    def __init__(self, columns: list[str], rows: list[list[Value]]) -> None:
        self.columns = columns
        self._rows = rows

    @classmethod
    def _from_wit(cls, rows: Any) -> Rows:
        return cls(list(rows.columns), [[from_value(v) for v in r] for r in rows.rows])

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> list[Row]: ...
    def __getitem__(self, i: int | slice) -> Row | list[Row]:
        if isinstance(i, slice):
            return [Row(self.columns, r) for r in self._rows[i]]
        return Row(self.columns, self._rows[i])

    def __len__(self) -> int:
        return len(self._rows)

    def first(self) -> Row | None:
        """The first row, if any."""
        return Row(self.columns, self._rows[0]) if self._rows else None

    def scalar(self) -> Value:
        """The first column of the first row (None without rows): `SELECT count(*) ...`."""
        return self._rows[0][0] if self._rows and self._rows[0] else None

    def dicts(self) -> list[dict[str, Value]]:
        """Every row as a dict (for `Response.json`)."""
        return [dict(zip(self.columns, r)) for r in self._rows]

    def tuples(self) -> list[tuple[Value, ...]]:
        return [tuple(r) for r in self._rows]

    def __repr__(self) -> str:
        return f"Rows(columns={self.columns!r}, {len(self._rows)} rows)"


@dataclass(frozen=True)
class Outcome:
    """What a statement changed. `last_insert_id` is SQLite's rowid of an inserted row
    (Postgres: always None; use `RETURNING` with `query`)."""

    rows_affected: int
    last_insert_id: int | None


class Database:
    """The database `name`; every call is `not-granted` if it was not granted."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def query(self, statement: str, params: Sequence[Param] | None = None) -> Rows:
        """Run a statement that returns rows, on its own (autocommit)."""
        try:
            return Rows._from_wit(_sql().query(self.name, statement, _params(params)))
        except _host.Err as e:
            raise _error(e.value) from None

    def query_one(self, statement: str, params: Sequence[Param] | None = None) -> Row | None:
        """The first row of a query, if any."""
        return self.query(statement, params).first()

    def scalar(self, statement: str, params: Sequence[Param] | None = None) -> Value:
        """The first column of a query's first row."""
        return self.query(statement, params).scalar()

    def execute(self, statement: str, params: Sequence[Param] | None = None) -> Outcome:
        """Run a statement that changes data, on its own (autocommit)."""
        try:
            o = _sql().execute(self.name, statement, _params(params))
        except _host.Err as e:
            raise _error(e.value) from None
        return Outcome(int(o.rows_affected), o.last_insert_id)

    def transaction(self) -> Transaction:
        """Begin a transaction on one connection. Use it in a `with` block: committed at the
        end, rolled back if the block raises. Without `with`, call `commit()` or
        `rollback()`; one left open is rolled back when the request ends."""
        try:
            return Transaction(_sql().begin(self.name))
        except _host.Err as e:
            raise _error(e.value) from None

    def __repr__(self) -> str:
        return f"sql.Database({self.name!r})"


class Transaction:
    """An open transaction (`Database.transaction()`)."""

    __slots__ = ("_tx",)

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def _open(self) -> Any:
        if self._tx is None:
            raise SqlError(ErrorKind.OTHER, "the transaction has ended")
        return self._tx

    def query(self, statement: str, params: Sequence[Param] | None = None) -> Rows:
        try:
            return Rows._from_wit(self._open().query(statement, _params(params)))
        except _host.Err as e:
            raise _error(e.value) from None

    def query_one(self, statement: str, params: Sequence[Param] | None = None) -> Row | None:
        return self.query(statement, params).first()

    def scalar(self, statement: str, params: Sequence[Param] | None = None) -> Value:
        return self.query(statement, params).scalar()

    def execute(self, statement: str, params: Sequence[Param] | None = None) -> Outcome:
        try:
            o = self._open().execute(statement, _params(params))
        except _host.Err as e:
            raise _error(e.value) from None
        return Outcome(int(o.rows_affected), o.last_insert_id)

    @property
    def active(self) -> bool:
        """Whether neither `commit` nor `rollback` has run."""
        return self._tx is not None

    def commit(self) -> None:
        """Commit; the transaction is gone either way (a failed commit rolled back)."""
        tx, self._tx = self._open(), None
        try:
            _sql().Transaction.commit(tx)
        except _host.Err as e:
            raise _error(e.value) from None

    def rollback(self) -> None:
        """Roll back (nothing happens if it has already ended)."""
        tx, self._tx = self._tx, None
        if tx is None:
            return
        try:
            _sql().Transaction.rollback(tx)
        except _host.Err as e:
            raise _error(e.value) from None

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if self._tx is not None:
                self.commit()
        else:
            try:
                self.rollback()
            except SqlError:
                pass  # the block's own exception is the one to report


def database(name: str) -> Database:
    """The database `name` (`[databases.<name>]`)."""
    return Database(name)
