//! The single writer connection, lent under a lock instead of through sqlx's pool.
//!
//! sqlx's pool (0.8) pings a connection when it lends it and again, in a task of its own, when
//! it comes back: for SQLite each ping is a round trip to the connection's thread. On the one
//! connection every write waits for, that made each statement three round trips instead of
//! one, and the connection was not free again until the second ping had come back. `Writer`
//! implements sqlx's `Executor`, so the shared SQL runs on it as it runs on a pool.

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::sqlite::{
    Sqlite, SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTransactionManager, SqliteTypeInfo,
};
use sqlx::{Connection, Describe, Either, Execute, Executor, TransactionManager};
use std::ops::{Deref, DerefMut};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// The writer connection; `None` once closed.
pub(crate) struct Writer {
    conn: Mutex<Option<SqliteConnection>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection) -> Writer {
        Writer { conn: Mutex::new(Some(conn)) }
    }

    /// The connection, held until the guard is dropped.
    pub(crate) async fn acquire(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, sqlx::Error> {
        MutexGuard::try_map(self.conn.lock().await, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)
    }

    /// Begins a transaction that holds the connection until it is committed or dropped
    /// (dropped, it is rolled back before the connection's next statement).
    pub(crate) async fn begin(&self) -> Result<WriterTx<'_>, sqlx::Error> {
        let mut conn = self.acquire().await?;
        SqliteTransactionManager::begin(&mut conn, None).await?;
        Ok(WriterTx { conn, open: true })
    }

    /// Closes the connection; later calls fail with `PoolClosed`.
    pub(crate) async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}

/// A transaction on the writer.
pub(crate) struct WriterTx<'a> {
    conn: MappedMutexGuard<'a, SqliteConnection>,
    open: bool,
}

impl WriterTx<'_> {
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::rollback(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriterTx<'_> {
    fn drop(&mut self) {
        if self.open {
            SqliteTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

impl Deref for WriterTx<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriterTx<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl<'w> Executor<'w> for &'w Writer {
    type Database = Sqlite;

    // The rows are collected while the connection is held: a stream borrowing the guard
    // would have to own it too. Writes return few rows (a RETURNING list at most).
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        futures::stream::once(async move {
            let mut conn = self.acquire().await?;
            conn.fetch_many(query).try_collect::<Vec<_>>().await
        })
        .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        Box::pin(async move { self.acquire().await?.fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'w: 'e,
    {
        Box::pin(async move { self.acquire().await?.prepare_with(sql, parameters).await })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'w: 'e,
    {
        Box::pin(async move { self.acquire().await?.describe(sql).await })
    }
}
