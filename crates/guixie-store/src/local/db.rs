//! The SQLite database of valid paths. Paths are stored as absolute logical paths, as in Nix.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use guixie_formats::signing::Signature;
use guixie_formats::{Hash, StoreDir, StorePath};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::PathInfo;

mod write;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS Config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ValidPaths (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    path             TEXT UNIQUE NOT NULL,
    narHash          TEXT NOT NULL,
    narSize          INTEGER NOT NULL,
    registrationTime INTEGER NOT NULL,
    deriver          TEXT,
    sigs             TEXT NOT NULL DEFAULT '',
    ca               TEXT
);
CREATE TABLE IF NOT EXISTS Refs (
    referrer  INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE CASCADE,
    reference INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE RESTRICT,
    PRIMARY KEY (referrer, reference)
);
CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);
-- Binary caches address NARs by their hash.
CREATE INDEX IF NOT EXISTS IndexNarHash ON ValidPaths(narHash);
-- The outputs a valid .drv declares, so a no-op build need not read it (as Nix does).
CREATE TABLE IF NOT EXISTS DerivationOutputs (
    drv  INTEGER NOT NULL REFERENCES ValidPaths(id) ON DELETE CASCADE,
    id   TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (drv, id)
);
";

/// Paths looked up per query in batch lookups (`WHERE path IN (...)`): one statement step
/// per row instead of one statement per path.
const LOOKUP_CHUNK: usize = 500;

/// Turns SQLite errors into store errors naming the database file.
fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Db {
        path: path.to_owned(),
        source,
    }
}

pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens a connection to an existing database (WAL: readers do not wait for writers).
    pub fn connect(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(600)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        Ok(Db {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens the database, creating its schema, and checks it belongs to `store_dir`.
    pub fn open(path: &Path, store_dir: &StoreDir, root: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let mut db = Self::connect(path)?;
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(SCHEMA).map_err(err)?;
        let existing: Option<String> = tx
            .query_row("SELECT value FROM Config WHERE key = 'storeDir'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        match existing {
            Some(found) if found != store_dir.as_str() => {
                return Err(StoreError::StoreDirMismatch {
                    root: root.to_owned(),
                    found,
                    requested: store_dir.as_str().to_owned(),
                })
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO Config (key, value) VALUES ('storeDir', ?1)",
                    [store_dir.as_str()],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(db)
    }

    /// A valid path whose NAR hash is `nar_hash`.
    pub fn path_by_nar_hash(
        &self,
        sd: &StoreDir,
        nar_hash: &Hash,
    ) -> Result<Option<StorePath>, StoreError> {
        let key = nar_hash.to_typed_string(guixie_formats::Encoding::Nix32);
        let found: Option<String> = self
            .conn
            .prepare_cached("SELECT path FROM ValidPaths WHERE narHash = ?1 ORDER BY path LIMIT 1")
            .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
            .map_err(self.err())?;
        found
            .map(|p| {
                sd.parse_path(&p)
                    .map_err(|e| self.corrupt(format!("path {p:?}: {e}")))
            })
            .transpose()
    }

    /// The valid path whose base name starts with `hash_part` (32 characters, checked by the
    /// caller), found through the path index.
    pub fn path_by_hash_part(
        &self,
        sd: &StoreDir,
        hash_part: &str,
    ) -> Result<Option<StorePath>, StoreError> {
        let prefix = format!("{}/{hash_part}-", sd.as_str());
        let found: Option<String> = self
            .conn
            .prepare_cached("SELECT path FROM ValidPaths WHERE path >= ?1 ORDER BY path LIMIT 1")
            .and_then(|mut s| s.query_row([&prefix], |r| r.get(0)).optional())
            .map_err(self.err())?;
        match found {
            Some(p) if p.starts_with(&prefix) => Ok(Some(
                sd.parse_path(&p)
                    .map_err(|e| self.corrupt(format!("path {p:?}: {e}")))?,
            )),
            _ => Ok(None),
        }
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            message,
        }
    }

    /// Runs `select … WHERE path IN (…)` over `names`, LOOKUP_CHUNK at a time, in one read
    /// transaction, handing each row to `row` (one statement step per row instead of one
    /// statement per path).
    fn lookup_in_chunks<T>(
        &mut self,
        select: &str,
        names: &[String],
        read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        mut row: impl FnMut(T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let err = db_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(err)?;
        for chunk in names.chunks(LOOKUP_CHUNK) {
            let sql = format!("{select} IN ({})", vec!["?"; chunk.len()].join(","));
            let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(chunk), &read)
                .map_err(err)?;
            for r in rows {
                row(r.map_err(err)?)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The recorded outputs of valid `.drv` paths (`None` where nothing is recorded), in one
    /// read transaction.
    pub fn derivation_outputs(
        &mut self,
        sd: &StoreDir,
        drvs: &[StorePath],
    ) -> Result<Vec<Option<BTreeMap<String, StorePath>>>, StoreError> {
        let names: Vec<String> = drvs.iter().map(|d| sd.display(d)).collect();
        let mut found: HashMap<String, BTreeMap<String, StorePath>> = HashMap::new();
        let db = self.path.clone();
        self.lookup_in_chunks(
            "SELECT v.path, o.id, o.path FROM ValidPaths v JOIN DerivationOutputs o ON o.drv = v.id WHERE v.path",
            &names,
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
            |(drv, name, p)| {
                let parsed = sd.parse_path(&p).map_err(|e| StoreError::Corrupt {
                    path: db.clone(),
                    message: format!("{p}: {e}"),
                })?;
                found.entry(drv).or_default().insert(name, parsed);
                Ok(())
            },
        )?;
        Ok(names.iter().map(|n| found.remove(n)).collect())
    }

    /// Validity of many paths in one read transaction.
    pub fn are_valid(
        &mut self,
        sd: &StoreDir,
        paths: &[StorePath],
    ) -> Result<Vec<bool>, StoreError> {
        let names: Vec<String> = paths.iter().map(|p| sd.display(p)).collect();
        let mut valid: HashSet<String> = HashSet::new();
        self.lookup_in_chunks(
            "SELECT path FROM ValidPaths WHERE path",
            &names,
            |r| r.get::<_, String>(0),
            |p| {
                valid.insert(p);
                Ok(())
            },
        )?;
        Ok(names.iter().map(|n| valid.contains(n)).collect())
    }

    pub fn is_valid(&self, sd: &StoreDir, path: &StorePath) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM ValidPaths WHERE path = ?1")
            .map_err(self.err())?;
        stmt.exists([sd.display(path)]).map_err(self.err())
    }

    pub fn path_info(
        &self,
        sd: &StoreDir,
        path: &StorePath,
    ) -> Result<Option<PathInfo>, StoreError> {
        let abs = sd.display(path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, narHash, narSize, registrationTime, deriver, sigs, ca FROM ValidPaths WHERE path = ?1",
            )
            .map_err(self.err())?;
        let row = stmt
            .query_row([&abs], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .optional()
            .map_err(self.err())?;
        let Some((id, hash, size, time, deriver, sigs, ca)) = row else {
            return Ok(None);
        };
        let bad =
            |what: &str, e: &dyn std::fmt::Display| self.corrupt(format!("{abs}: {what}: {e}"));
        let nar_hash = Hash::parse(&hash, None).map_err(|e| bad("narHash", &e))?;
        let references = self
            .references_of(id)?
            .iter()
            .map(|r| sd.parse_path(r).map_err(|e| bad("reference", &e)))
            .collect::<Result<_, _>>()?;
        let deriver = deriver
            .map(|d| sd.parse_path(&d).map_err(|e| bad("deriver", &e)))
            .transpose()?;
        let signatures = sigs
            .split_whitespace()
            .map(|s| Signature::parse(s).map_err(|e| bad("signature", &e)))
            .collect::<Result<_, _>>()?;
        Ok(Some(PathInfo {
            path: path.clone(),
            nar_hash,
            nar_size: size as u64,
            references,
            deriver,
            signatures,
            registration_time: time,
            ca,
        }))
    }

    fn references_of(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1 ORDER BY v.path",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn valid_paths(&self, sd: &StoreDir) -> Result<Vec<StorePath>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path FROM ValidPaths ORDER BY path")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let p = row.map_err(self.err())?;
            out.push(
                sd.parse_path(&p)
                    .map_err(|e| self.corrupt(format!("{p}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The closure of `roots` under references (roots that are not valid are skipped).
    pub fn closure(
        &self,
        sd: &StoreDir,
        roots: &[StorePath],
    ) -> Result<BTreeSet<StorePath>, StoreError> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<StorePath> = roots.to_vec();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT v.path FROM ValidPaths p JOIN Refs r ON r.referrer = p.id JOIN ValidPaths v ON v.id = r.reference WHERE p.path = ?1",
            )
            .map_err(self.err())?;
        let mut exists = self
            .conn
            .prepare_cached("SELECT 1 FROM ValidPaths WHERE path = ?1")
            .map_err(self.err())?;
        while let Some(p) = todo.pop() {
            if seen.contains(&p) {
                continue;
            }
            let abs = sd.display(&p);
            if !exists.exists([&abs]).map_err(self.err())? {
                continue;
            }
            let refs = stmt
                .query_map([&abs], |r| r.get::<_, String>(0))
                .map_err(self.err())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.err())?;
            for r in refs {
                todo.push(
                    sd.parse_path(&r)
                        .map_err(|e| self.corrupt(format!("{r}: {e}")))?,
                );
            }
            seen.insert(p);
        }
        Ok(seen)
    }

    /// Each valid path with its recorded NAR hash and size.
    pub fn all_hashes(&self, sd: &StoreDir) -> Result<Vec<(StorePath, Hash, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, narHash, narSize FROM ValidPaths ORDER BY path")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(p, h, n)| {
                let path = sd
                    .parse_path(&p)
                    .map_err(|e| self.corrupt(format!("{p}: {e}")))?;
                let hash = Hash::parse(&h, None)
                    .map_err(|e| self.corrupt(format!("{p}: narHash: {e}")))?;
                Ok((path, hash, n as u64))
            })
            .collect()
    }
}
