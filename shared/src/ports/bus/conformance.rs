//! One test body for every driver of the bus port (in-memory in unit tests, Kafka in `tests/`).

use super::{Bus, Consumer, Record};
use crate::domain::events::EventHeaders;
use std::time::Duration;

/// Generous: a Kafka group join takes a rebalance round.
const WAIT: Duration = Duration::from_secs(60);

/// Runs every check on fresh topics named after `prefix`, so runs never see each other's records.
pub async fn run(bus: &dyn Bus, prefix: &str) {
    keyed_records_keep_their_order_and_headers(bus, &format!("{prefix}.order")).await;
    groups_resume_after_their_commit_and_redeliver_the_rest(bus, &format!("{prefix}.commit")).await;
    tail_readers_see_only_what_comes_next(bus, &format!("{prefix}.tail")).await;
}

fn headers(event_type: &str) -> EventHeaders {
    EventHeaders::new("app-1", event_type, "corr-1")
}

async fn next(consumer: &mut dyn Consumer) -> Record {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a record within the wait")
        .expect("consuming")
}

async fn publish_numbered(bus: &dyn Bus, topic: &str, key: &str, range: std::ops::Range<usize>) {
    for n in range {
        bus.publish(topic, key, &headers("test"), n.to_string().as_bytes())
            .await
            .unwrap();
    }
}

fn number(record: &Record) -> usize {
    std::str::from_utf8(&record.payload).unwrap().parse().unwrap()
}

async fn keyed_records_keep_their_order_and_headers(bus: &dyn Bus, topic: &str) {
    bus.ensure_topics(&[topic]).await.unwrap();
    bus.ensure_topics(&[topic])
        .await
        .expect("creating an existing topic is not an error");
    let keys = ["alpha", "beta", "gamma", "delta"];
    for round in 0..10 {
        for key in keys {
            bus.publish(topic, key, &headers("numbered"), format!("{key}:{round}").as_bytes())
                .await
                .unwrap();
        }
    }
    let mut consumer = bus.group_consumer(topic, &format!("{topic}.readers")).await.unwrap();
    let mut seen: std::collections::HashMap<String, (i32, Vec<usize>)> = Default::default();
    for _ in 0..keys.len() * 10 {
        let record = next(consumer.as_mut()).await;
        assert_eq!(record.topic, topic);
        assert_eq!(record.header("correlation_id"), Some("corr-1"));
        assert_eq!(record.header("event_type"), Some("numbered"));
        assert_eq!(
            record.header("schema_version"),
            Some(crate::domain::events::SCHEMA_VERSION)
        );
        let text = String::from_utf8(record.payload.clone()).unwrap();
        let (key, round) = text.split_once(':').unwrap();
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        let entry = seen.entry(key.to_owned()).or_insert((record.partition, Vec::new()));
        assert_eq!(entry.0, record.partition, "one key stays in one partition");
        entry.1.push(round.parse().unwrap());
    }
    for key in keys {
        assert_eq!(seen[key].1, (0..10).collect::<Vec<_>>(), "{key} in publish order");
    }
}

async fn groups_resume_after_their_commit_and_redeliver_the_rest(bus: &dyn Bus, topic: &str) {
    bus.ensure_topics(&[topic]).await.unwrap();
    publish_numbered(bus, topic, "one-key", 0..6).await;
    let group = format!("{topic}.workers");

    let mut first = bus.group_consumer(topic, &group).await.unwrap();
    let mut last = None;
    for expected in 0..3 {
        let record = next(first.as_mut()).await;
        assert_eq!(number(&record), expected);
        last = Some(record);
    }
    first.commit(&[last.unwrap().next_position()]).await.unwrap();
    // Read one more without committing: it must come back to the group.
    assert_eq!(number(&next(first.as_mut()).await), 3);
    drop(first);

    let mut second = bus.group_consumer(topic, &group).await.unwrap();
    assert_eq!(
        number(&next(second.as_mut()).await),
        3,
        "uncommitted record redelivered"
    );
    drop(second);

    let mut third = bus.group_consumer(topic, &group).await.unwrap();
    let numbers = [
        next(third.as_mut()).await,
        next(third.as_mut()).await,
        next(third.as_mut()).await,
    ];
    assert_eq!(numbers.iter().map(number).collect::<Vec<_>>(), [3, 4, 5]);
    drop(third);

    let mut other_group = bus.group_consumer(topic, &format!("{topic}.auditors")).await.unwrap();
    assert_eq!(
        number(&next(other_group.as_mut()).await),
        0,
        "each group reads the whole log"
    );
}

async fn tail_readers_see_only_what_comes_next(bus: &dyn Bus, topic: &str) {
    bus.ensure_topics(&[topic]).await.unwrap();
    publish_numbered(bus, topic, "k", 0..3).await;
    let mut tail = bus.tail(topic).await.unwrap();
    publish_numbered(bus, topic, "k", 3..4).await;
    let record = next(tail.as_mut()).await;
    assert_eq!(number(&record), 3);
    tail.commit(&[record.next_position()])
        .await
        .expect("a tail commit is a no-op");
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_bus_passes_the_bus_conformance_suite() {
        super::run(&super::super::MemoryBus::new(3), "memory").await;
    }

    #[tokio::test]
    async fn memory_groups_share_partitions_among_live_members() {
        use super::super::Bus;
        let bus = super::super::MemoryBus::new(4);
        bus.ensure_topics(&["shared"]).await.unwrap();
        for n in 0..40 {
            bus.publish("shared", &format!("key-{n}"), &super::headers("t"), b"x")
                .await
                .unwrap();
        }
        let mut a = bus.group_consumer("shared", "g").await.unwrap();
        let mut b = bus.group_consumer("shared", "g").await.unwrap();
        let mut partitions_a = std::collections::BTreeSet::new();
        let mut partitions_b = std::collections::BTreeSet::new();
        for _ in 0..5 {
            partitions_a.insert(super::next(a.as_mut()).await.partition);
            partitions_b.insert(super::next(b.as_mut()).await.partition);
        }
        assert!(
            partitions_a.is_disjoint(&partitions_b),
            "{partitions_a:?} vs {partitions_b:?}"
        );
    }
}
