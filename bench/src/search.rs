//! The search benchmark: index a corpus through [`SearchIndex::apply`] in Kafka-sized batches (the
//! index-messages path: version checks, one commit per batch), then time queries of each kind as a
//! user who is a member of `scope` conversations. Every query is drawn from a message inside that
//! scope, so each must find at least one hit — the benchmark checks its own results.

use crate::corpus::{Corpus, Rng};
use crate::percentile;
use caas_shared::ports::search::{SearchIndex, SearchRequest};
use caas_shared::Result;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct Settings {
    pub messages: usize,
    pub batch: usize,
    pub queries_per_kind: usize,
    pub apps: usize,
    pub conversations_per_app: usize,
    /// How many conversations the searching user belongs to (the size of the membership filter).
    pub scope: usize,
}

#[derive(Debug, Serialize)]
pub struct QueryFigures {
    pub kind: &'static str,
    pub queries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_hits: f64,
    /// The fewest hits any query of this kind got (at least 1 when the index is right).
    pub min_hits: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub messages: usize,
    pub batch: usize,
    pub index_seconds: f64,
    pub messages_per_second: f64,
    pub index_bytes: u64,
    pub scope_conversations: usize,
    pub queries: Vec<QueryFigures>,
}

const KINDS: [&str; 5] = ["word", "two words", "phrase", "prefix", "cjk bigram"];
/// Results asked for per query, like a search box's first page.
const PAGE: usize = 20;

pub async fn run(settings: &Settings, dir: &Path) -> Result<Report> {
    let corpus = Corpus::new(20_000, settings.apps, settings.conversations_per_app);
    let index = SearchIndex::open(Some(dir))?;
    let scope: Vec<String> = (0..settings.scope.min(settings.conversations_per_app))
        .map(|c| Corpus::conversation_id(0, c))
        .collect();
    let mut rng = Rng::new(42);
    let (mut latin, mut han) = (Vec::new(), Vec::new());
    let mut indexing = std::time::Duration::ZERO;
    let mut n = 0;
    while n < settings.messages {
        let batch: Vec<_> = (n..(n + settings.batch).min(settings.messages))
            .map(|i| corpus.message(&mut rng, i))
            .collect();
        n += batch.len();
        for message in batch
            .iter()
            .filter(|m| m.app_id == Corpus::app_id(0) && scope.contains(&m.conversation_id))
        {
            let samples = if message.text.is_ascii() { &mut latin } else { &mut han };
            if samples.len() < 10_000 {
                samples.push(message.text.clone());
            }
        }
        let started = Instant::now();
        index.apply(batch).await?;
        indexing += started.elapsed();
    }
    let mut queries = Vec::new();
    for kind in KINDS {
        let samples = if kind == "cjk bigram" { &han } else { &latin };
        if samples.is_empty() {
            continue;
        }
        let (mut latencies, mut hits) = (Vec::new(), Vec::new());
        for _ in 0..settings.queries_per_kind {
            let text = query(kind, &samples[rng.below(samples.len())], &mut rng);
            let request = SearchRequest {
                app_id: Corpus::app_id(0),
                conversation_ids: scope.clone(),
                text,
                limit: PAGE,
                ..SearchRequest::default()
            };
            let started = Instant::now();
            let page = index.search(request).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1_000.0);
            hits.push(page.hits.len());
        }
        latencies.sort_by(f64::total_cmp);
        queries.push(QueryFigures {
            kind,
            queries: latencies.len(),
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            max_ms: latencies.last().copied().unwrap_or_default(),
            mean_hits: hits.iter().sum::<usize>() as f64 / hits.len().max(1) as f64,
            min_hits: hits.iter().copied().min().unwrap_or_default(),
        });
    }
    Ok(Report {
        messages: settings.messages,
        batch: settings.batch,
        index_seconds: indexing.as_secs_f64(),
        messages_per_second: settings.messages as f64 / indexing.as_secs_f64().max(1e-9),
        index_bytes: directory_bytes(dir),
        scope_conversations: scope.len(),
        queries,
    })
}

/// A query of `kind` taken from `text`, so the message it came from must match it.
fn query(kind: &str, text: &str, rng: &mut Rng) -> String {
    if kind == "cjk bigram" {
        let chars: Vec<char> = text.chars().collect();
        let at = rng.below(chars.len() - 1);
        return chars[at..at + 2].iter().collect();
    }
    let words: Vec<&str> = text.split(' ').collect();
    // Texts have at least three words, so a word with a successor always exists.
    let at = rng.below(words.len() - 1);
    match kind {
        "word" => words[at].to_owned(),
        "two words" => format!("{} {}", words[at], words[rng.below(words.len())]),
        "phrase" => format!("\"{} {}\"", words[at], words[at + 1]),
        _ => format!("{}*", &words[at][..words[at].len().min(3)]),
    }
}

fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or_default()
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Indexed {} messages in batches of {} (one commit each): {:.1} s, **{:.0} messages/s**; index {:.0} MiB.\n\n\
             Queries as a member of {} conversations, first page of {PAGE}:\n\n\
             | query | n | p50 ms | p99 ms | max ms | mean hits | min hits |\n|---|---|---|---|---|---|---|\n",
            self.messages,
            self.batch,
            self.index_seconds,
            self.messages_per_second,
            self.index_bytes as f64 / 1_048_576.0,
            self.scope_conversations,
        );
        for q in &self.queries {
            out.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |\n",
                q.kind, q.queries, q.p50_ms, q.p99_ms, q.max_ms, q.mean_hits, q.min_hits
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_finds_every_query_it_draws() {
        let dir = std::env::temp_dir().join(format!("caas-search-bench-{}", uuid::Uuid::new_v4()));
        let settings = Settings {
            messages: 3_000,
            batch: 500,
            queries_per_kind: 20,
            apps: 2,
            conversations_per_app: 20,
            scope: 10,
        };
        let report = run(&settings, &dir).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(report.queries.len(), KINDS.len(), "{report:?}");
        for figures in &report.queries {
            assert!(figures.min_hits >= 1, "{figures:?}");
        }
        assert!(report.index_bytes > 0 && report.markdown().contains("| phrase |"));
    }
}
