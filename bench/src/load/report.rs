//! The load report: JSON for tools, Markdown for people, with ours / Socket.IO ratios and the targets.

use super::client::Flavor;
use super::fanout::FanOutResult;
use super::idle::IdleResult;
use super::persist::PersistResult;
use super::storm::StormResult;
use super::webhooks::WebhookResult;
use super::Plan;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub date: String,
    pub machine: String,
    pub plan: Plan,
    pub idle: Vec<IdleResult>,
    pub fan_out: Vec<FanOutResult>,
    pub storm: Vec<StormResult>,
    pub persist: Option<PersistResult>,
    pub webhooks: Option<WebhookResult>,
}

/// CPU model, core count and memory, from `/proc`.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!("{model}, {cores} cores, {:.0} GiB", memory_kib as f64 / 1024.0 / 1024.0)
}

/// Today's date (UTC) from the system clock, as YYYY-MM-DD.
fn today() -> String {
    civil_date(caas_shared::now_ms().div_euclid(86_400_000))
}

/// The date `days` after 1970-01-01.
fn civil_date(days: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one line of the report.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn ratio(ours: f64, theirs: f64) -> String {
    match ours / theirs {
        r if theirs <= 0.0 || !r.is_finite() => "n/a".into(),
        // Far apart: enough digits that the ratio does not print as 0.00×.
        r if r < 0.1 => format!("{r:.4}×"),
        r => format!("{r:.2}×"),
    }
}

fn backend_cpu(backends: &[(String, f64)]) -> String {
    if backends.is_empty() {
        return "–".into();
    }
    let parts: Vec<String> = backends
        .iter()
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect();
    parts.join(", ")
}

fn kib(bytes: f64) -> f64 {
    bytes / 1024.0
}

impl LoadReport {
    pub fn new(plan: Plan) -> Self {
        Self {
            date: today(),
            machine: machine(),
            plan,
            idle: Vec::new(),
            fan_out: Vec::new(),
            storm: Vec::new(),
            persist: None,
            webhooks: None,
        }
    }

    fn idle_of(&self, flavor: Flavor) -> Option<&IdleResult> {
        self.idle.iter().find(|r| r.flavor == flavor)
    }

    fn fan_out_of(&self, flavor: Flavor, scenario: &str) -> Option<&FanOutResult> {
        self.fan_out
            .iter()
            .find(|r| r.flavor == flavor && r.scenario == scenario)
    }

    /// The "ours / peer" table: each measure's ratio, with the direction that is better.
    fn ratios_against(&self, out: &mut String, ours_flavor: Flavor, peer: Flavor, heading: &str) {
        let mut rows = Vec::new();
        if let (Some(ours), Some(theirs)) = (self.idle_of(ours_flavor), self.idle_of(peer)) {
            rows.push((
                "memory per idle connection".to_owned(),
                ratio(ours.rss_per_connection_bytes, theirs.rss_per_connection_bytes),
                "lower",
            ));
            rows.push((
                "connects/s".to_owned(),
                ratio(ours.connects_per_sec, theirs.connects_per_sec),
                "higher",
            ));
        }
        for settings in &self.plan.fan_out {
            let name = &settings.name;
            if let (Some(ours), Some(theirs)) = (self.fan_out_of(ours_flavor, name), self.fan_out_of(peer, name)) {
                rows.push((
                    format!("deliveries/s, {name}"),
                    ratio(ours.deliveries_per_sec, theirs.deliveries_per_sec),
                    "higher",
                ));
                rows.push((
                    format!("p99 latency, {name}"),
                    ratio(ours.latency_ms.p99, theirs.latency_ms.p99),
                    "lower",
                ));
                rows.push((
                    format!("all-in CPU per message, {name}"),
                    ratio(ours.cpu_us_per_message, theirs.cpu_us_per_message),
                    "lower",
                ));
            }
        }
        let storm_of = |flavor| self.storm.iter().find(|r| r.flavor == flavor);
        if let (Some(ours), Some(theirs)) = (storm_of(ours_flavor), storm_of(peer)) {
            rows.push((
                format!("time until all resubscribed, {}", ours.scenario),
                ratio(ours.all_resubscribed_seconds, theirs.all_resubscribed_seconds),
                "lower",
            ));
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n## {heading}\n");
        let _ = writeln!(out, "| measure | ratio | better when |");
        let _ = writeln!(out, "|---|---:|---|");
        for (measure, value, better) in rows {
            let _ = writeln!(out, "| {measure} | {value} | {better} |");
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Load benchmark: socket node vs Socket.IO 4 (plain, and the replaced stack) and the floor\n"
        );
        let _ = writeln!(out, "Run on {} — {}.\n", self.date, self.machine);
        let _ = writeln!(
            out,
            "Written by `bash bench/load.sh`; the load generator, the servers, Redis and the Kafka-protocol broker share \
             the machine's cores. Profiles, the per-message floor and the targets: [send-path.md](send-path.md).\n"
        );
        let _ = writeln!(out, "## Idle connections\n");
        let _ = writeln!(
            out,
            "| server | processes | connections | failed | connects/s | RSS per connection |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for r in &self.idle {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {:.1} KiB |",
                r.flavor.label(),
                r.servers,
                r.connections,
                r.failed,
                r.connects_per_sec,
                kib(r.rss_per_connection_bytes)
            );
        }
        let _ = writeln!(out, "\n## Fan-out\n");
        let _ = writeln!(
            out,
            "| scenario | server | sent | deliveries (expected) | msgs/s | deliveries/s | p50 | p95 | p99 | max | server CPU | backend CPU | generator CPU | all-in CPU per msg | server RSS |"
        );
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.fan_out {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} ({}) | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} cores | {} | {:.2} cores | {:.0} µs | {:.0} MiB |",
                r.scenario,
                r.flavor.label(),
                r.sent,
                r.deliveries,
                r.expected_deliveries,
                r.messages_per_sec,
                r.deliveries_per_sec,
                r.latency_ms.p50,
                r.latency_ms.p95,
                r.latency_ms.p99,
                r.latency_ms.max,
                r.server_cpu_cores,
                backend_cpu(&r.backend_cpu_cores),
                r.generator_cpu_cores,
                r.cpu_us_per_message,
                r.server_rss_bytes as f64 / 1024.0 / 1024.0
            );
        }
        if !self.storm.is_empty() {
            let _ = writeln!(out, "\n## Reconnect storm\n");
            let _ = writeln!(
                out,
                "| scenario | server | clients | resubscribed | failed | all resubscribed after | resubscribes/s | per client p50 | p99 | max | server CPU |"
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in &self.storm {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {:.2} s | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} cores |",
                    r.scenario,
                    r.flavor.label(),
                    r.clients,
                    r.resubscribed,
                    r.failed,
                    r.all_resubscribed_seconds,
                    r.resubscribes_per_sec,
                    r.per_client_ms.p50,
                    r.per_client_ms.p99,
                    r.per_client_ms.max,
                    r.server_cpu_cores
                );
            }
        }
        // The floors first: how far the node is from what the machine allows, with and without backends.
        for peer in [
            Flavor::Floor,
            Flavor::FloorBackends,
            Flavor::SocketIo,
            Flavor::SocketIoStack,
        ] {
            self.ratios_against(&mut out, Flavor::Caas, peer, &format!("Ours / {}", peer.label()));
        }
        // What the compatibility layer costs: the same node, Socket.IO clients against native ones.
        self.ratios_against(
            &mut out,
            Flavor::CaasSocketIo,
            Flavor::Caas,
            "Socket.IO clients / native clients, same socket node (the codec's cost)",
        );
        if let Some(p) = &self.persist {
            let _ = writeln!(out, "\n## Persistence (Kafka → MongoDB)\n");
            let _ = writeln!(out, "| writer | messages | msgs/s |");
            let _ = writeln!(out, "|---|---:|---:|");
            let _ = writeln!(
                out,
                "| persist-messages (bulk, idempotent, acks) | {} | {:.0} |",
                p.messages, p.persist_messages_per_sec
            );
            let _ = writeln!(
                out,
                "| naive: one insert per message | {} | {:.0} |",
                p.naive_written, p.naive_per_sec
            );
            let _ = writeln!(
                out,
                "\npersist-messages / naive: {}; producing the records ran at {:.0} msgs/s.",
                ratio(p.persist_messages_per_sec, p.naive_per_sec),
                p.produce_per_sec
            );
        }
        if let Some(w) = &self.webhooks {
            let _ = writeln!(
                out,
                "\n## Webhooks (Kafka → event log → signed POSTs to a local receiver)\n"
            );
            let _ = writeln!(
                out,
                "| store | events | recorded and queued /s | delivered /s (end to end) |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|");
            for run in &w.runs {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} |",
                    run.store, w.events, run.recorded_per_sec, run.delivered_per_sec
                );
            }
            let _ = writeln!(
                out,
                "\nAdded cost on the send path: none — the socket node reads no webhook setting and publishes \
                 nothing more; deliver-webhooks is one more consumer group on `caas.messages`."
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ratios_keep_their_digits() {
        assert_eq!(super::ratio(1.0, 2.0), "0.50×");
        assert_eq!(super::ratio(28.13, 10364.93), "0.0027×");
        assert_eq!(super::ratio(1.0, 0.0), "n/a");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(super::civil_date(0), "1970-01-01");
        assert_eq!(super::civil_date(20_785), "2026-11-28");
        assert_eq!(super::civil_date(11_016), "2000-02-29");
    }
}
