//! The bench crate's one error type.

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Platform(#[from] caas_shared::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The system under test misbehaved or a part of the run could not be set up.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
