//! [`Storage`] on Amazon S3 (or anything that speaks its API: moto, LocalStack).

use std::ops::Range;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{ObjectMeta, Result, Storage, StorageError};
use crate::aws::{CallFailure, classify};

/// Bodies up to this size go in one `PutObject`; larger ones in parts of this size.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// S3 refuses parts smaller than this, except the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3's limit on keys per `DeleteObjects` request.
const DELETE_BATCH: usize = 1000;

/// Parts of one upload in flight at once: enough to fill the link, few enough that a slow
/// network does not time out a queue of requests.
const PART_CONCURRENCY: usize = 4;

/// S3 storage. Cheap to clone; the client pools its connections.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    part_size: usize,
}

impl S3Storage {
    /// A client with path-style addressing, which emulators on `127.0.0.1` need (virtual-host
    /// names would not resolve) and which S3 accepts.
    pub fn new(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Sets the multipart threshold and part size in bytes; values below [`MIN_PART_SIZE`] are
    /// raised to it.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// The underlying client, for the few callers that need more than [`Storage`] (creating
    /// buckets in `ctl` and tests).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    async fn put_multipart(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        // CRC32 is named at creation so that S3 checks every part and the completed object the
        // same way, whatever the SDK's default checksum settings are.
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|err| failed("create multipart upload", bucket, key, &err))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(StorageError::Failed {
                operation: "create multipart upload",
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                message: "the response holds no upload id".to_owned(),
                transient: false,
            });
        };

        match self.upload_parts(bucket, key, upload_id, body).await {
            Ok(()) => Ok(()),
            Err(err) => {
                // An upload left open keeps its parts (and their cost) until a lifecycle rule
                // removes them; the object itself never appears, so readers are unaffected.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(
                        bucket,
                        key,
                        upload_id,
                        error = %classify(&abort).message,
                        "could not abort a failed multipart upload"
                    );
                }
                Err(err)
            }
        }
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        body: Bytes,
    ) -> Result<()> {
        let chunks: Vec<(i32, Bytes)> = (0..body.len())
            .step_by(self.part_size)
            .zip(1..)
            .map(|(start, number)| {
                let end = (start + self.part_size).min(body.len());
                (number, body.slice(start..end))
            })
            .collect();

        let parts: Vec<CompletedPart> = futures::stream::iter(chunks)
            .map(|(number, chunk)| async move {
                let uploaded = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|err| failed("upload part", bucket, key, &err))?;
                Ok::<_, StorageError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(uploaded.e_tag().map(str::to_owned))
                        .set_checksum_crc32(uploaded.checksum_crc32().map(str::to_owned))
                        .build(),
                )
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;

        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| failed("complete multipart upload", bucket, key, &err))?;
        Ok(())
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        if body.len() > self.part_size {
            return self.put_multipart(bucket, key, body).await;
        }
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| failed("put", bucket, key, &err))?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| not_found_or_failed("get", bucket, key, &err))?;
        read_body("get", bucket, key, output.body).await
    }

    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes> {
        // An HTTP range cannot be empty; S3 would answer an inverted one with the whole object.
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let sent = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            // 416: the range starts at or beyond the end of an object that exists; clamped to
            // the size, that is nothing.
            Err(err) if classify(&err).status == Some(416) => return Ok(Bytes::new()),
            Err(err) => return Err(not_found_or_failed("get range", bucket, key, &err)),
        };
        read_body("get range", bucket, key, output.body).await
    }

    async fn size(&self, bucket: &str, key: &str) -> Result<u64> {
        let output = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| not_found_or_failed("size", bucket, key, &err))?;
        output
            .content_length()
            .and_then(|len| u64::try_from(len).ok())
            .ok_or_else(|| StorageError::Failed {
                operation: "size",
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                message: "the response holds no content length".to_owned(),
                transient: false,
            })
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| failed("list", bucket, prefix, &err))?;
            objects.extend(page.contents().iter().filter_map(|object| {
                Some(ObjectMeta {
                    key: object.key()?.to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                })
            }));
        }
        // S3 lists in UTF-8 byte order already; sorting keeps the contract whatever the
        // emulator does.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let first = chunk.first().map(String::as_str).unwrap_or_default();
            let objects = chunk
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .and_then(|objects| {
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                })
                .map_err(|err| StorageError::Failed {
                    operation: "delete",
                    bucket: bucket.to_owned(),
                    key: first.to_owned(),
                    message: err.to_string(),
                    transient: false,
                })?;
            let output = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(objects)
                .send()
                .await
                .map_err(|err| failed("delete", bucket, first, &err))?;
            // DeleteObjects answers 200 and lists the keys it could not delete; a key that did
            // not exist is not among them.
            if let Some(error) = output.errors().first() {
                let code = error.code().unwrap_or("unknown");
                return Err(StorageError::Failed {
                    operation: "delete",
                    bucket: bucket.to_owned(),
                    key: error.key().unwrap_or(first).to_owned(),
                    message: format!(
                        "{code}: {} ({} of {} keys not deleted)",
                        error.message().unwrap_or_default(),
                        output.errors().len(),
                        chunk.len()
                    ),
                    transient: matches!(code, "SlowDown" | "InternalError" | "ServiceUnavailable"),
                });
            }
        }
        Ok(())
    }

    async fn copy(
        &self,
        bucket: &str,
        from_key: &str,
        to_bucket: &str,
        to_key: &str,
    ) -> Result<()> {
        // CopyObject copies up to 5 GiB in one call, far above any file a stage writes.
        let sent = self
            .client
            .copy_object()
            .copy_source(copy_source(bucket, from_key))
            .bucket(to_bucket)
            .key(to_key)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = classify(&err);
                if failure.code_is("NoSuchKey") {
                    return Err(StorageError::NotFound {
                        bucket: bucket.to_owned(),
                        key: from_key.to_owned(),
                    });
                }
                Err(StorageError::Failed {
                    operation: "copy",
                    bucket: to_bucket.to_owned(),
                    key: to_key.to_owned(),
                    message: format!("from s3://{bucket}/{from_key}: {}", failure.message),
                    transient: failure.transient,
                })
            }
        }
    }
}

fn failed<E>(operation: &'static str, bucket: &str, key: &str, err: &SdkError<E>) -> StorageError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    from_failure(operation, bucket, key, classify(err))
}

fn from_failure(
    operation: &'static str,
    bucket: &str,
    key: &str,
    failure: CallFailure,
) -> StorageError {
    StorageError::failed(operation, bucket, key, failure.message, failure.transient)
}

/// `NoSuchKey` (GET) and a bare 404 (HEAD has no body, hence no code) mean the object is absent;
/// a missing bucket is a failure, not an absent object.
fn not_found_or_failed<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    err: &SdkError<E>,
) -> StorageError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = classify(err);
    let absent = failure.code_is("NoSuchKey")
        || (failure.status == Some(404) && !failure.code_is("NoSuchBucket"));
    if absent {
        StorageError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    } else {
        from_failure(operation, bucket, key, failure)
    }
}

async fn read_body(
    operation: &'static str,
    bucket: &str,
    key: &str,
    body: ByteStream,
) -> Result<Bytes> {
    body.collect()
        .await
        .map(|data| data.into_bytes())
        .map_err(|err| StorageError::Failed {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: format!(
                "reading the body: {}",
                aws_sdk_s3::error::DisplayErrorContext(&err)
            ),
            // The response started and then broke off: the network, not the request.
            transient: true,
        })
}

/// `bucket/key` for `x-amz-copy-source`, percent-encoded except for `/` and unreserved bytes.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    out.push_str(bucket);
    out.push('/');
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_everything_but_slashes_and_unreserved_bytes() {
        assert_eq!(
            copy_source("b", "planning/import_year=2026/a b+c.parquet"),
            "b/planning/import_year%3D2026/a%20b%2Bc.parquet"
        );
        assert_eq!(copy_source("b", "café"), "b/caf%C3%A9");
    }

    #[test]
    fn part_size_is_never_below_the_s3_minimum() {
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        assert_eq!(
            S3Storage::new(&config).with_part_size(1).part_size,
            MIN_PART_SIZE
        );
        assert_eq!(S3Storage::new(&config).part_size, DEFAULT_PART_SIZE);
    }
}
