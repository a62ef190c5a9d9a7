//! `search-bench [--messages N] [--batch N] [--queries N] [--scope N] [--dir DIR]`: indexes a
//! reproducible corpus and times queries; prints a Markdown report and its JSON.
//! Run it optimised: `cargo run --release -p caas-bench --bin search-bench`.

use caas_bench::search::{run, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings {
        messages: 1_000_000,
        batch: 1_000,
        queries_per_kind: 1_000,
        apps: 10,
        conversations_per_app: 1_000,
        scope: 50,
    };
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => settings.messages = value()?.parse()?,
            "--batch" => settings.batch = value()?.parse()?,
            "--queries" => settings.queries_per_kind = value()?.parse()?,
            "--scope" => settings.scope = value()?.parse()?,
            "--dir" => dir = Some(std::path::PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("caas-search-bench-{}", std::process::id())));
    if dir.exists() {
        return Err(format!("{} exists; the benchmark needs an empty directory", dir.display()).into());
    }
    let report = run(&settings, &dir).await?;
    println!("{}", report.markdown());
    println!("{}", serde_json::to_string_pretty(&report)?);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
