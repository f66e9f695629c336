//! Storage in a local directory: each bucket is a folder of the root, each key a path below it.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectMeta, Result, Storage, StorageError};

/// A directory that behaves like S3 for the embedded default.
///
/// `put` writes a hidden temporary file beside the target and renames it into place, so a
/// reader never sees a partial object (rename is atomic on one file system). Temporary files
/// start with `.tmp-` and are never listed.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds an object. Keys with `..` or empty segments are refused, so a key can
    /// never leave its bucket's folder.
    pub fn path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
        if !safe(bucket) || bucket.contains('/') || !key.split('/').all(safe) {
            return Err(StorageError::failed(
                "resolve",
                bucket,
                key,
                "unsafe bucket or key",
                false,
            ));
        }
        Ok(self.root.join(bucket).join(key))
    }
}

fn io_error(operation: &'static str, bucket: &str, key: &str, err: std::io::Error) -> StorageError {
    if err.kind() == std::io::ErrorKind::NotFound {
        StorageError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    } else {
        StorageError::failed(operation, bucket, key, err, false)
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("file task does not panic")
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("object paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn list_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            list_files(&entry.path(), out)?;
        } else if file_type.is_file() && !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            out.push((entry.path(), entry.metadata()?.len()));
        }
    }
    Ok(())
}

/// Removes empty folders from `dir` up to (not including) `stop`, so deleted partitions leave
/// no empty Hive folders behind for a glob to trip over.
fn prune_empty_dirs(mut dir: &Path, stop: &Path) {
    while dir != stop && dir.starts_with(stop) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
}

#[async_trait]
impl Storage for LocalStorage {
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        let path = self.path(bucket, key)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        blocking(move || write_atomically(&path, &body).map_err(|e| io_error("put", &b, &k, e)))
            .await
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let path = self.path(bucket, key)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        blocking(move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| io_error("get", &b, &k, e))
        })
        .await
    }

    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(bucket, key)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        blocking(move || {
            let read = || -> std::io::Result<Bytes> {
                let mut file = std::fs::File::open(&path)?;
                let size = file.metadata()?.len();
                let end = range.end.min(size);
                let start = range.start.min(end);
                file.seek(SeekFrom::Start(start))?;
                let mut buf = vec![0; (end - start) as usize];
                file.read_exact(&mut buf)?;
                Ok(Bytes::from(buf))
            };
            read().map_err(|e| io_error("get_range", &b, &k, e))
        })
        .await
    }

    async fn size(&self, bucket: &str, key: &str) -> Result<u64> {
        let path = self.path(bucket, key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(meta.len()),
            Ok(_) => Err(StorageError::NotFound {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            Err(err) => Err(io_error("size", bucket, key, err)),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let bucket_dir = self.path(bucket, "x")?.with_file_name("");
        // Walk from the deepest folder the prefix names, then filter by the full prefix.
        let folder = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let start = if folder.is_empty() {
            bucket_dir.clone()
        } else {
            self.path(bucket, folder)?
        };
        let (b, p) = (bucket.to_owned(), prefix.to_owned());
        blocking(move || {
            let mut files = Vec::new();
            list_files(&start, &mut files).map_err(|e| io_error("list", &b, &p, e))?;
            let mut objects: Vec<ObjectMeta> = files
                .into_iter()
                .filter_map(|(path, size)| {
                    let key = path.strip_prefix(&bucket_dir).ok()?.to_str()?.to_owned();
                    key.starts_with(&p).then_some(ObjectMeta { key, size })
                })
                .collect();
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        })
        .await
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<()> {
        let bucket_dir = self.root.join(bucket);
        let paths = keys
            .iter()
            .map(|k| self.path(bucket, k).map(|p| (k.clone(), p)))
            .collect::<Result<Vec<_>>>()?;
        let b = bucket.to_owned();
        blocking(move || {
            for (key, path) in paths {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(io_error("delete", &b, &key, err)),
                }
                if let Some(parent) = path.parent() {
                    prune_empty_dirs(parent, &bucket_dir);
                }
            }
            Ok(())
        })
        .await
    }

    async fn copy(
        &self,
        bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<()> {
        let from = self.path(bucket, from_key)?;
        let to = self.path(to_bucket, to_key)?;
        let (b, k) = (bucket.to_owned(), from_key.to_owned());
        blocking(move || {
            let copy = || -> std::io::Result<()> {
                let dir = to.parent().expect("object paths have a parent");
                std::fs::create_dir_all(dir)?;
                let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
                // A hard link is the local "server-side copy": no bytes pass through us.
                if std::fs::hard_link(&from, &tmp).is_err() {
                    std::fs::copy(&from, &tmp)?;
                }
                std::fs::rename(&tmp, &to)
            };
            copy().map_err(|e| io_error("copy", &b, &k, e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_keys_that_leave_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        for key in ["../x", "a/../../x", "/abs", "a//b"] {
            let err = storage.put("b", key, Bytes::new()).await.unwrap_err();
            assert!(err.to_string().contains("unsafe"), "{key}: {err}");
        }
    }

    #[tokio::test]
    async fn delete_prunes_empty_folders_and_hides_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        storage
            .put("b", "t/p=1/run-1/f.parquet", Bytes::from_static(b"x"))
            .await
            .unwrap();
        std::fs::write(dir.path().join("b/t/p=1/.tmp-123"), b"partial").unwrap();
        assert_eq!(storage.list("b", "t/").await.unwrap().len(), 1);
        std::fs::remove_file(dir.path().join("b/t/p=1/.tmp-123")).unwrap();
        storage
            .delete("b", &["t/p=1/run-1/f.parquet".into()])
            .await
            .unwrap();
        assert!(!dir.path().join("b/t").exists());
        assert!(dir.path().join("b").exists());
    }
}
