//! JSON logs on stdout, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the JSON log subscriber on stdout, filtered by `RUST_LOG` or else at `info`; calling it again is
/// harmless. Every entry point calls it first.
pub fn init() {
    init_with_default("info");
}

/// Like [`init`], with another filter when `RUST_LOG` is unset (the dev mode keeps its console quiet).
pub fn init_with_default(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // try_init: tests and the embedded mode may initialise more than once in one process.
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_target(true)
        .try_init();
}
