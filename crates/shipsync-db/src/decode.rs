//! Reading a row's columns into typed values, failing closed: a flag that is
//! not 0/1, a state word that is not one of its enum's, or JSON that does
//! not decode is [`DbError::Corrupt`] naming `table.column`, never a
//! default that would read as "nothing there".

use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shipsync_core::states::UnknownState;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::DbError;

/// The columns of one row of `table`.
pub(crate) struct Cols<'r> {
    row: &'r AnyRow,
    table: &'static str,
}

impl<'r> Cols<'r> {
    pub(crate) fn of(row: &'r AnyRow, table: &'static str) -> Self {
        Self { row, table }
    }

    fn corrupt(&self, col: &str, why: impl std::fmt::Display) -> DbError {
        DbError::Corrupt(format!("{}.{col}: {why}", self.table))
    }

    /// A column as its SQL type.
    pub(crate) fn get<T>(&self, col: &str) -> Result<T, DbError>
    where
        T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        Ok(self.row.try_get(col)?)
    }

    /// A 0/1 flag.
    pub(crate) fn flag(&self, col: &str) -> Result<bool, DbError> {
        match self.get::<i64>(col)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.corrupt(col, format!("flag {other} is neither 0 nor 1"))),
        }
    }

    /// A state word (see [`shipsync_core::states`]).
    pub(crate) fn word<T: FromStr<Err = UnknownState>>(&self, col: &str) -> Result<T, DbError> {
        let text: String = self.get(col)?;
        text.parse().map_err(|e| self.corrupt(col, e))
    }

    /// A state word in a nullable column.
    pub(crate) fn word_opt<T: FromStr<Err = UnknownState>>(
        &self,
        col: &str,
    ) -> Result<Option<T>, DbError> {
        self.get::<Option<String>>(col)?
            .map(|text| text.parse().map_err(|e| self.corrupt(col, e)))
            .transpose()
    }

    /// State words separated by commas, in order (empty: none).
    pub(crate) fn words<T: FromStr<Err = UnknownState>>(
        &self,
        col: &str,
    ) -> Result<Vec<T>, DbError> {
        let text: String = self.get(col)?;
        text.split(',')
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().map_err(|e| self.corrupt(col, e)))
            .collect()
    }

    /// A JSON document in a nullable column (`NULL`: `T::default()`).
    pub(crate) fn json_or_default<T: DeserializeOwned + Default>(
        &self,
        col: &str,
    ) -> Result<T, DbError> {
        match self.get::<Option<String>>(col)? {
            None => Ok(T::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| self.corrupt(col, e)),
        }
    }

    /// A JSON document.
    pub(crate) fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, DbError> {
        let text: String = self.get(col)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(col, e))
    }
}

/// `v` as the JSON text stored in `table.column`.
pub(crate) fn to_json<T: Serialize + ?Sized>(col: &str, v: &T) -> Result<String, DbError> {
    serde_json::to_string(v).map_err(|e| DbError::Corrupt(format!("{col}: cannot encode: {e}")))
}

/// State words as stored comma-separated (see [`Cols::words`]).
pub(crate) fn join_words<T: Copy + Into<&'static str>>(words: &[T]) -> String {
    words
        .iter()
        .map(|&w| w.into())
        .collect::<Vec<&str>>()
        .join(",")
}

/// `(word, count)` rows of a `GROUP BY` on `table.column`, the words read.
pub(crate) fn counts<T: FromStr<Err = UnknownState>>(
    col: &str,
    rows: Vec<(String, i64)>,
) -> Result<Vec<(T, i64)>, DbError> {
    rows.into_iter()
        .map(|(w, n)| {
            w.parse()
                .map(|v| (v, n))
                .map_err(|e| DbError::Corrupt(format!("{col}: {e}")))
        })
        .collect()
}

/// Decodes every row with `T`'s `TryFrom<AnyRow>`.
pub(crate) fn all<T: TryFrom<AnyRow, Error = DbError>>(
    rows: Vec<AnyRow>,
) -> Result<Vec<T>, DbError> {
    rows.into_iter().map(T::try_from).collect()
}

/// Decodes the row, if any, with `T`'s `TryFrom<AnyRow>`.
pub(crate) fn opt<T: TryFrom<AnyRow, Error = DbError>>(
    row: Option<AnyRow>,
) -> Result<Option<T>, DbError> {
    row.map(T::try_from).transpose()
}
