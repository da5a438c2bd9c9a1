//! The database's write transactions: registering a batch of paths, invalidating paths.

use std::collections::BTreeMap;

use guixie_formats::{Encoding, StoreDir, StorePath};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{db_err, Db};
use crate::error::StoreError;
use crate::PathInfo;

impl Db {
    /// Registers `infos` in one write transaction; fails if a reference (other than the path
    /// itself) is not valid. For each path not yet valid, `place` is
    /// called (with the item's index) while the transaction holds SQLite's write lock, then
    /// `before_commit` runs once; nothing is committed if any step fails.
    pub fn register_batch(
        &mut self,
        sd: &StoreDir,
        infos: &[PathInfo],
        drv_outputs: &[&BTreeMap<String, StorePath>],
        mut place: impl FnMut(&PathInfo, usize) -> Result<(), StoreError>,
        before_commit: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let err = db_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut id_of = tx
                .prepare_cached("SELECT id FROM ValidPaths WHERE path = ?1")
                .map_err(err)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO ValidPaths (path, narHash, narSize, registrationTime, deriver, sigs, ca) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            let mut insert_ref = tx
                .prepare_cached("INSERT INTO Refs (referrer, reference) VALUES (?1, ?2)")
                .map_err(err)?;
            let mut insert_output = tx
                .prepare_cached("INSERT INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            // Ids of paths registered by this batch: most references of a batch point into
            // it (a graph's .drv files), and a map lookup is much cheaper than a query.
            let mut batch_ids: std::collections::HashMap<String, i64> =
                std::collections::HashMap::new();
            for (idx, info) in infos.iter().enumerate() {
                let abs = sd.display(&info.path);
                if id_of
                    .query_row([&abs], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(err)?
                    .is_some()
                {
                    continue;
                }
                let mut ref_ids = Vec::with_capacity(info.references.len());
                let mut self_reference = false;
                for r in &info.references {
                    if *r == info.path {
                        self_reference = true;
                        continue;
                    }
                    let r_abs = sd.display(r);
                    let rid = match batch_ids.get(&r_abs) {
                        Some(id) => Some(*id),
                        None => id_of
                            .query_row([&r_abs], |row| row.get::<_, i64>(0))
                            .optional()
                            .map_err(err)?,
                    };
                    ref_ids.push(rid.ok_or_else(|| StoreError::MissingReference {
                        path: abs.clone(),
                        reference: r_abs,
                    })?);
                }
                place(info, idx)?;
                let sigs: Vec<String> = info.signatures.iter().map(|s| s.to_string()).collect();
                insert
                    .execute(params![
                        abs,
                        info.nar_hash.to_typed_string(Encoding::Nix32),
                        info.nar_size as i64,
                        info.registration_time,
                        info.deriver.as_ref().map(|d| sd.display(d)),
                        sigs.join(" "),
                        info.ca
                    ])
                    .map_err(err)?;
                let id = tx.last_insert_rowid();
                batch_ids.insert(abs, id);
                if self_reference {
                    ref_ids.push(id);
                }
                for (output, out_path) in drv_outputs.get(idx).into_iter().flat_map(|o| o.iter()) {
                    insert_output
                        .execute(params![id, output, sd.display(out_path)])
                        .map_err(err)?;
                }
                for rid in ref_ids {
                    insert_ref.execute([id, rid]).map_err(err)?;
                }
            }
        }
        before_commit()?;
        tx.commit().map_err(err)
    }

    /// Invalidates `paths` in one transaction. Every referrer of a path in `paths` must be in
    /// `paths` too (GC guarantees it: dead paths are only referenced by dead paths).
    pub fn invalidate(&mut self, sd: &StoreDir, paths: &[StorePath]) -> Result<(), StoreError> {
        let err = db_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut id_of = tx
                .prepare("SELECT id FROM ValidPaths WHERE path = ?1")
                .map_err(err)?;
            let mut del_refs = tx
                .prepare("DELETE FROM Refs WHERE referrer = ?1")
                .map_err(err)?;
            let mut ids = Vec::new();
            for p in paths {
                if let Some(id) = id_of
                    .query_row([sd.display(p)], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(err)?
                {
                    del_refs.execute([id]).map_err(err)?;
                    ids.push(id);
                }
            }
            let mut del = tx
                .prepare("DELETE FROM ValidPaths WHERE id = ?1")
                .map_err(err)?;
            for id in ids {
                del.execute([id]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}
