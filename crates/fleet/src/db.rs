//! PostgreSQL: the connection pool, the migrations, and the month partitions.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::HashSet;
use std::sync::Mutex;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Errors connecting or migrating.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(tokio_postgres::Error),
    /// The pool could not be built.
    #[error("connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    /// No connection.
    #[error("cannot connect: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database: {0}")]
    Pg(#[from] tokio_postgres::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] refinery::Error),
}

/// A pool of connections to `url` (a `postgres://` URL or `host=... dbname=...` pairs; a `host`
/// that is a directory means a unix socket).
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
    // Fast recycling: a broken connection fails its next statement, the caller retries, and the
    // pool replaces it; checking every checkout would add a round trip to every request.
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Ok(Pool::builder(manager).max_size(max_size).build()?)
}

/// Brings the schema up to date. An advisory lock serializes several servers starting at once.
pub async fn migrate(pool: &Pool) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    conn.execute("SELECT pg_advisory_lock(7300)", &[]).await?;
    let result = embedded::migrations::runner().run_async(&mut **conn).await;
    conn.execute("SELECT pg_advisory_unlock(7300)", &[]).await?;
    result?;
    Ok(())
}

/// The months whose partitions are known to exist, so ingest asks PostgreSQL only once per
/// month per process.
#[derive(Debug, Default)]
pub struct Partitions {
    known: Mutex<HashSet<(i32, u8)>>,
}

impl Partitions {
    /// Makes sure the partitions of every month in `instants` exist. Runs outside the batch's
    /// transaction: DDL on the parent table must not be held for the length of an ingest.
    pub async fn ensure(&self, client: &tokio_postgres::Client, instants: impl IntoIterator<Item = time::OffsetDateTime>) -> Result<(), tokio_postgres::Error> {
        let mut wanted: Vec<((i32, u8), time::OffsetDateTime)> = Vec::new();
        {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for t in instants {
                let key = (t.year(), u8::from(t.month()));
                if !known.contains(&key) && !wanted.iter().any(|(k, _)| *k == key) {
                    wanted.push((key, t));
                }
            }
        }
        for (key, t) in wanted {
            client.execute("SELECT fleet_ensure_month($1)", &[&t]).await?;
            self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
        Ok(())
    }
}
