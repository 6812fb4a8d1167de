//! The content store: streaming blob writes (Content.Write with size and digest verified
//! by containerd on commit, GC labels attached) and verified reads.
//!
//! Owns: the Content service protocol. May call: containerd (Content).

use super::containerd::Containerd;
use super::error::RuntimeError;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::debug;

const CHUNK: usize = 1 << 20;

/// `sha256:<hex>` of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where a blob's bytes come from.
pub(super) enum Source {
    Bytes(Vec<u8>),
    File {
        path: PathBuf,
        offset: u64,
    },
    /// A stream (a registry download), read in chunks and never held whole.
    Reader(Box<dyn tokio::io::AsyncRead + Send + Unpin>),
}

impl Containerd {
    /// Content.Write of one blob (skipped if present); containerd verifies size and digest
    /// on commit.
    pub(super) async fn write_blob(
        &self,
        digest: &str,
        size: i64,
        source: Source,
        labels: HashMap<String, String>,
        lease: &str,
    ) -> Result<(), RuntimeError> {
        let mut content = ContentClient::new(self.channel.clone());
        let exists = content
            .info(self.req(
                InfoRequest {
                    digest: digest.into(),
                },
                Some(lease),
            )?)
            .await;
        if exists.is_ok() {
            debug!(digest, "blob already present");
            return Ok(());
        }
        let reference = format!(
            "k3rs-{}-{}",
            digest.replace(':', "-"),
            uuid::Uuid::new_v4().simple()
        );
        let mut reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match source {
            Source::Bytes(b) => Box::new(std::io::Cursor::new(b)),
            Source::File { path, offset } => {
                let mut f = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| RuntimeError::io(&path, e))?;
                f.seek(SeekFrom::Start(offset))
                    .await
                    .map_err(|e| RuntimeError::io(&path, e))?;
                Box::new(f.take(size.max(0) as u64))
            }
            Source::Reader(r) => r,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let base = WriteContentRequest {
            r#ref: reference,
            total: size,
            expected: digest.into(),
            ..Default::default()
        };
        let producer = {
            let base = base.clone();
            async move {
                let mut offset = 0i64;
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    let msg = WriteContentRequest {
                        action: WriteAction::Write as i32,
                        offset,
                        data: buf[..n].to_vec(),
                        ..base.clone()
                    };
                    offset += n as i64;
                    if tx.send(msg).await.is_err() {
                        return Ok::<i64, std::io::Error>(offset);
                    }
                }
                let commit = WriteContentRequest {
                    action: WriteAction::Commit as i32,
                    offset,
                    labels,
                    ..base
                };
                let _ = tx.send(commit).await;
                Ok(offset)
            }
        };
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let consumer = async {
            let resp = content.write(self.req(stream, Some(lease))?).await;
            let mut responses = match resp {
                Ok(r) => r.into_inner(),
                Err(e) if e.code() == tonic::Code::AlreadyExists => return Ok(()),
                Err(e) => return Err(RuntimeError::grpc("content write", e)),
            };
            loop {
                match responses.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Ok(()),
                    Err(e) if e.code() == tonic::Code::AlreadyExists => return Ok(()),
                    Err(e)
                        if e.code() == tonic::Code::FailedPrecondition
                            && e.message().contains("digest") =>
                    {
                        return Err(RuntimeError::DigestMismatch {
                            what: "blob".into(),
                            expected: digest.into(),
                            actual: e.message().into(),
                        });
                    }
                    Err(e) => return Err(RuntimeError::grpc("content write", e)),
                }
            }
        };
        let (produced, consumed) = tokio::join!(producer, consumer);
        let written = produced.map_err(|e| RuntimeError::io(format!("blob {digest}"), e))?;
        consumed?;
        if written != size {
            return Err(super::images::bad(
                digest,
                format!("read {written} bytes, expected {size}"),
            ));
        }
        Ok(())
    }

    pub(super) async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let mut stream = ContentClient::new(self.channel.clone())
            .read(self.req(
                ReadContentRequest {
                    digest: digest.into(),
                    offset: 0,
                    size: 0,
                },
                None,
            )?)
            .await
            .map_err(|e| RuntimeError::grpc("content read", e))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|e| RuntimeError::grpc("content read", e))?
        {
            out.extend_from_slice(&chunk.data);
        }
        if sha256_hex(&out) != digest {
            return Err(RuntimeError::DigestMismatch {
                what: "content read".into(),
                expected: digest.into(),
                actual: sha256_hex(&out),
            });
        }
        Ok(out)
    }
}
