//! SQL on the app's databases (`[databases.<name>]` in the manifest).
//!
//! Using this module makes the component import `flagon:app/sql`; grant databases with
//! `grants = { sql = ["main"] }`.
//!
//! Statements are `&'static str`: write them as literals and pass every value as a parameter
//! (`?1`, `?2`, ... for SQLite; `$1`, `$2`, ... for Postgres). There is no way here to build a
//! statement out of strings, so a value can never become SQL.
//!
//! ```ignore
//! use flagon_sdk::sql::{self, params};
//!
//! #[derive(serde::Deserialize)]
//! struct Todo { id: i64, title: String, done: bool }
//!
//! let db = sql::database("main");
//! db.execute("INSERT INTO todos (title) VALUES (?1)", params![title])?;
//! let todos: Vec<Todo> = db.query_as("SELECT id, title, done FROM todos WHERE owner = ?1", params![user])?;
//!
//! let tx = db.transaction()?;
//! tx.execute("UPDATE accounts SET balance = balance - ?1 WHERE id = ?2", params![10, from])?;
//! tx.execute("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", params![10, to])?;
//! tx.commit()?; // dropped without commit = rolled back
//! ```

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer};

use crate::bindings::flagon::app::sql as host;
pub use crate::bindings::flagon::app::sql_types::{
    ConstraintKind, ConstraintViolation, Outcome, SqlError, Value,
};

/// Parameters for a statement: `params![a, b, c]` turns each into a [`Value`].
#[macro_export]
macro_rules! params {
    () => { &[] as &[$crate::sql::Value] };
    ($($v:expr),+ $(,)?) => { &[$($crate::sql::Value::from($v)),+][..] };
}
pub use crate::params;

/// A handle on the database `name`; every call fails with `not-granted` if it was not granted.
#[derive(Debug, Clone, Copy)]
pub struct Database<'a> {
    name: &'a str,
}

/// The database `name`.
pub fn database(name: &str) -> Database<'_> {
    Database { name }
}

/// The rows of a query.
#[derive(Debug, Clone)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    fn from_wit(rows: crate::bindings::flagon::app::sql_types::Rows) -> Self {
        Self {
            columns: rows.columns,
            rows: rows.rows,
        }
    }

    /// Each row decoded into `T` by column name (serde): a struct's fields, or a map.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<Vec<T>, SqlError> {
        self.rows
            .iter()
            .map(|row| {
                T::deserialize(RowDe {
                    columns: &self.columns,
                    values: row,
                })
                .map_err(|e| SqlError::Other(format!("cannot decode a row: {e}")))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value of `column` in row `row`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(i)
    }
}

impl Database<'_> {
    /// Run a statement that returns rows.
    pub fn query(&self, statement: &'static str, params: &[Value]) -> Result<Rows, SqlError> {
        host::query(self.name, statement, params).map(Rows::from_wit)
    }

    /// Run a query and decode every row into `T`.
    pub fn query_as<T: DeserializeOwned>(
        &self,
        statement: &'static str,
        params: &[Value],
    ) -> Result<Vec<T>, SqlError> {
        self.query(statement, params)?.decode()
    }

    /// Run a query and decode its first row, if any.
    pub fn query_one<T: DeserializeOwned>(
        &self,
        statement: &'static str,
        params: &[Value],
    ) -> Result<Option<T>, SqlError> {
        Ok(self.query_as(statement, params)?.into_iter().next())
    }

    /// Run a statement that changes data.
    pub fn execute(&self, statement: &'static str, params: &[Value]) -> Result<Outcome, SqlError> {
        host::execute(self.name, statement, params)
    }

    /// Begin a transaction. It is rolled back unless [`Transaction::commit`] is called.
    pub fn transaction(&self) -> Result<Transaction, SqlError> {
        host::begin(self.name).map(|tx| Transaction { inner: Some(tx) })
    }
}

/// An open transaction; dropping it rolls it back.
#[derive(Debug)]
pub struct Transaction {
    inner: Option<host::Transaction>,
}

impl Transaction {
    fn tx(&self) -> Result<&host::Transaction, SqlError> {
        self.inner
            .as_ref()
            .ok_or_else(|| SqlError::Other("the transaction has ended".into()))
    }

    pub fn query(&self, statement: &'static str, params: &[Value]) -> Result<Rows, SqlError> {
        self.tx()?.query(statement, params).map(Rows::from_wit)
    }

    pub fn query_as<T: DeserializeOwned>(
        &self,
        statement: &'static str,
        params: &[Value],
    ) -> Result<Vec<T>, SqlError> {
        self.query(statement, params)?.decode()
    }

    pub fn query_one<T: DeserializeOwned>(
        &self,
        statement: &'static str,
        params: &[Value],
    ) -> Result<Option<T>, SqlError> {
        Ok(self.query_as(statement, params)?.into_iter().next())
    }

    pub fn execute(&self, statement: &'static str, params: &[Value]) -> Result<Outcome, SqlError> {
        self.tx()?.execute(statement, params)
    }

    /// Commit. On an error the transaction is rolled back.
    pub fn commit(mut self) -> Result<(), SqlError> {
        match self.inner.take() {
            Some(tx) => host::Transaction::commit(tx),
            None => Err(SqlError::Other("the transaction has ended".into())),
        }
    }

    /// Roll back now (dropping the transaction does the same).
    pub fn rollback(mut self) -> Result<(), SqlError> {
        match self.inner.take() {
            Some(tx) => host::Transaction::rollback(tx),
            None => Ok(()),
        }
    }
}

/// With `?` in a handler: `timeout` and `connection-lost` become a 503, anything else a 500;
/// the message goes to the log.
impl From<SqlError> for crate::Error {
    fn from(e: SqlError) -> Self {
        let status = match e {
            SqlError::Timeout | SqlError::ConnectionLost => 503,
            _ => 500,
        };
        crate::Error::new(status, format!("sql: {}", e.describe()))
    }
}

impl SqlError {
    /// A one-line description, e.g. `no such table: todos`.
    pub fn describe(&self) -> String {
        match self {
            SqlError::ConstraintViolation(c) => format!("constraint violation: {}", c.message),
            SqlError::NoSuchTable(t) => format!("no such table: {t}"),
            SqlError::NoSuchColumn(c) => format!("no such column: {c}"),
            SqlError::Syntax(m) => format!("syntax error: {m}"),
            SqlError::Timeout => "the statement timed out".into(),
            SqlError::TooManyRows(n) => format!("the result has more than {n} rows"),
            SqlError::TooLarge(n) => format!("the result or parameters exceed {n} bytes"),
            SqlError::ConnectionLost => "the database connection was lost".into(),
            SqlError::NotGranted(m) | SqlError::Other(m) => m.clone(),
        }
    }

    /// The violated constraint, if this is a constraint violation (e.g. a duplicate email).
    pub fn constraint(&self) -> Option<&ConstraintViolation> {
        match self {
            SqlError::ConstraintViolation(c) => Some(c),
            _ => None,
        }
    }
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

value_from! {
    i64 => |v| Value::Integer(v),
    i32 => |v| Value::Integer(v.into()),
    u32 => |v| Value::Integer(v.into()),
    i16 => |v| Value::Integer(v.into()),
    u16 => |v| Value::Integer(v.into()),
    i8 => |v| Value::Integer(v.into()),
    u8 => |v| Value::Integer(v.into()),
    f64 => |v| Value::Real(v),
    f32 => |v| Value::Real(v.into()),
    bool => |v| Value::Boolean(v),
    String => |v| Value::Text(v),
    &str => |v| Value::Text(v.to_owned()),
    &String => |v| Value::Text(v.clone()),
    Vec<u8> => |v| Value::Blob(v),
    &[u8] => |v| Value::Blob(v.to_vec()),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

// ---------------------------------------------------------------------------------------------
// Rows into structs: a serde deserializer over one row (a map of column -> value).
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError(msg.to_string())
    }
}

/// Row deserializer methods that decode a one-column row as that column's value.
macro_rules! single_value {
    ($($method:ident)*) => {
        $(fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            de::Deserializer::$method(self.single()?, visitor)
        })*
    };
}

struct RowDe<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'de> de::Deserializer<'de> for RowDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let pairs = self
            .columns
            .iter()
            .map(|c| c.as_str())
            .zip(self.values.iter().map(ValueDe));
        visitor.visit_map(de::value::MapDeserializer::new(pairs))
    }

    /// A tuple (or a `Vec`) takes the row's values in column order: `(i64, String)`.
    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(
            self.values.iter().map(ValueDe),
        ))
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    /// A row of one column decodes into that column's type: `query_as::<i64>("SELECT count(*) ...")`.
    fn deserialize_i64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_i64(visitor)
    }

    fn deserialize_f64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_f64(visitor)
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_bool(visitor)
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_string(visitor)
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.single()?.deserialize_option(visitor)
    }

    single_value! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_u8 deserialize_u16
        deserialize_u32 deserialize_u64 deserialize_f32 deserialize_char deserialize_str
        deserialize_bytes deserialize_byte_buf
    }

    serde::forward_to_deserialize_any! {
        i128 u128 unit unit_struct newtype_struct map struct enum identifier ignored_any
    }
}

impl<'a> RowDe<'a> {
    fn single(&self) -> Result<ValueDe<'a>, DecodeError> {
        match self.values {
            [one] => Ok(ValueDe(one)),
            _ => Err(DecodeError(format!(
                "a row of {} columns cannot decode into one value",
                self.values.len()
            ))),
        }
    }
}

struct ValueDe<'a>(&'a Value);

impl<'de> IntoDeserializer<'de, DecodeError> for ValueDe<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Real(f) => visitor.visit_f64(*f),
            Value::Text(s) => visitor.visit_str(s),
            Value::Blob(b) => visitor.visit_bytes(b),
            Value::Boolean(b) => visitor.visit_bool(*b),
        }
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// SQLite has no boolean type: 0 and 1 stand for false and true.
    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_bool(*i != 0),
            _ => self.deserialize_any(visitor),
        }
    }

    /// A blob decodes into `Vec<u8>` (a sequence of bytes).
    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Blob(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied())),
            _ => self.deserialize_any(visitor),
        }
    }

    /// An integer column decodes into `f64` too.
    fn deserialize_f64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_f64(*i as f64),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 char str string
        bytes byte_buf unit unit_struct tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
