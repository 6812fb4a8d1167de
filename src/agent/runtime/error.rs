//! Errors of the container runtime layer (containerd supervision, images, containers).

use std::path::PathBuf;

/// Everything that can go wrong talking to (or running) containerd.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The `containerd` (or `runc`) binary is not installed.
    #[error(
        "{binary} not found in PATH; install the Debian packages `containerd` and `runc` \
         (or pass --container-runtime-endpoint to use a running containerd)"
    )]
    BinaryMissing { binary: &'static str },
    /// Starting the containerd child process failed.
    #[error("cannot start containerd: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    /// containerd did not create its socket in time.
    #[error("containerd socket {path} did not appear within {secs}s (see {log})")]
    SocketTimeout {
        path: PathBuf,
        secs: u64,
        log: PathBuf,
    },
    /// Connecting the gRPC channel failed.
    #[error("cannot connect to containerd at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// A containerd call failed.
    #[error("containerd {op} failed: {} ({:?})", source.message(), source.code())]
    Grpc {
        op: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },
    /// A file of ours (config, log, image tarball, FIFO) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image tarball or manifest is malformed or unsupported.
    #[error("bad image {what}: {reason}")]
    BadImage { what: String, reason: String },
    /// Content did not hash to the digest it claims.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The image is not in the local store and may not (or cannot) be pulled.
    #[error("image {image} not present: {reason}")]
    ImageNotPresent { image: String, reason: String },
    /// A registry pull failed (the reason is the registry or containerd error).
    #[error("failed to pull and unpack image {image:?}: {reason}")]
    Pull { image: String, reason: String },
    /// No such container/task.
    #[error("container {0} not found")]
    NotFound(String),
    /// JSON (de)serialisation of a spec, manifest or config failed.
    #[error("json for {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A request carried a value containerd cannot take (e.g. non-ASCII metadata).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl RuntimeError {
    /// Wraps a gRPC status with the operation name.
    pub fn grpc(op: &'static str, source: tonic::Status) -> Self {
        RuntimeError::Grpc {
            op,
            source: Box::new(source),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when containerd reported `NotFound`.
    pub fn is_not_found(&self) -> bool {
        match self {
            RuntimeError::NotFound(_) => true,
            RuntimeError::Grpc { source, .. } => source.code() == tonic::Code::NotFound,
            _ => false,
        }
    }

    /// True when containerd reported `AlreadyExists`.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, RuntimeError::Grpc { source, .. } if source.code() == tonic::Code::AlreadyExists)
    }
}
