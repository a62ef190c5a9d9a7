//! Benchmarks that print figures (never timed assertions: the machines are shared and noisy).
//! Their unit tests run them at a tiny size and check the results are right, so the tools never rot.

pub mod corpus;
pub mod error;
pub mod load;
pub mod search;

/// Percentile of already sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
