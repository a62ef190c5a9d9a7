//! The webhook endpoints' part of the store conformance suite, run by its `run`.

use super::{ClaimLimit, HealthChange, InFlight, Store};
use crate::domain::model::{AttemptRecord, DeliveryStatus, EventQuery, WebhookDelivery, WebhookEndpoint, WebhookEvent};
use crate::Error;
use std::collections::HashSet;
use std::sync::LazyLock;

static NOTHING_IN_FLIGHT: LazyLock<InFlight> = LazyLock::new(InFlight::default);
static NONE_FAILING: LazyLock<HashSet<String>> = LazyLock::new(HashSet::new);

/// A claim of up to `total` deliveries, any number per app and endpoint.
fn any(total: usize) -> ClaimLimit<'static> {
    ClaimLimit {
        total,
        per_app: usize::MAX,
        per_endpoint: usize::MAX,
        probing: &NONE_FAILING,
        in_flight: &NOTHING_IN_FLIGHT,
    }
}

/// Fails the endpoint at `at` and disables it if its streak began at or before `disable_if_since`.
fn failed(at: i64, disable_if_since: i64) -> HealthChange {
    HealthChange::Failed { at, disable_if_since }
}

/// A base time no other check in a shared database uses: random, far in the past.
fn random_base() -> i64 {
    -(i64::from(rand::random::<u32>()) * 1_000_000) - 1_000_000_000_000
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn endpoint(app_id: &str, created_at: i64) -> WebhookEndpoint {
    WebhookEndpoint::for_tests(app_id, &unique("wh"), &["message.new"], created_at)
}

/// Runs the webhook endpoints' checks.
pub async fn run(store: &dyn Store) {
    endpoints_are_listed_oldest_first_and_stay_in_their_app(store).await;
    endpoints_are_bounded_per_app(store).await;
    deliveries_are_queued_once_and_leased_when_due(store).await;
    attempts_are_recorded_and_listed_per_endpoint(store).await;
    claims_leave_room_for_every_endpoint(store).await;
    claims_leave_room_for_every_app_and_probe_failing_endpoints(store).await;
    finished_deliveries_are_retried_on_request_and_purged(store).await;
    event_logs_are_appended_once_in_order_per_app(store).await;
    event_logs_are_read_by_cursor_type_and_time(store).await;
}

async fn endpoints_are_listed_oldest_first_and_stay_in_their_app(store: &dyn Store) {
    let (app, other_app) = (unique("app"), unique("app"));
    let (second, first) = (endpoint(&app, 20), endpoint(&app, 10));
    store.insert_webhook(&second, 10).await.unwrap();
    store.insert_webhook(&first, 10).await.unwrap();
    assert!(matches!(
        store.insert_webhook(&first, 10).await,
        Err(Error::Conflict(_))
    ));
    let stranger = endpoint(&other_app, 5);
    store.insert_webhook(&stranger, 10).await.unwrap();
    assert_eq!(
        store.list_webhooks(&app).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert_eq!(store.find_webhook(&app, &first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.find_webhook(&other_app, &first.id).await.unwrap(),
        None,
        "another app's id finds nothing"
    );

    let mut changed = first.clone();
    changed.enabled = false;
    changed.disabled_reason = Some("gone".into());
    changed.previous_secret_sealed = Some("v1.old".into());
    changed.previous_secret_until = Some(99);
    changed.updated_at = 30;
    store.replace_webhook(&changed, true).await.unwrap();
    assert_eq!(
        store.find_webhook(&app, &first.id).await.unwrap(),
        Some(changed.clone())
    );
    let mut hijack = stranger.clone();
    hijack.app_id = app.clone();
    assert!(
        matches!(store.replace_webhook(&hijack, true).await, Err(Error::NotFound(_))),
        "an id of another app cannot be written through this app"
    );
    assert_eq!(
        store.find_webhook(&other_app, &stranger.id).await.unwrap(),
        Some(stranger.clone())
    );

    // An operator's change without enablement leaves the platform's health fields as they are.
    assert_eq!(
        store
            .change_webhook_health(&app, &changed.id, failed(50, 50))
            .await
            .unwrap(),
        None,
        "disabled already (by the operator's copy above): not disabled again"
    );
    let mut renamed = changed.clone();
    renamed.description = "renamed".into();
    renamed.enabled = true;
    renamed.failing_since = None;
    store.replace_webhook(&renamed, false).await.unwrap();
    let stored = store.find_webhook(&app, &changed.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.description.as_str(),
            stored.enabled,
            stored.failing_since,
            stored.disabled_reason.as_deref()
        ),
        ("renamed", false, Some(50), Some("gone"))
    );

    // Health is the platform's: it changes only the health fields, decided on the stored endpoint.
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, failed(40, 0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, failed(45, 0))
            .await
            .unwrap(),
        None,
        "a running streak keeps its start"
    );
    let failing = store.find_webhook(&app, &second.id).await.unwrap().unwrap();
    assert_eq!(
        (failing.failing_since, failing.enabled, &failing.url),
        (Some(40), true, &second.url)
    );
    let failing_ids = store.failing_webhook_ids().await.unwrap();
    assert!(
        failing_ids.contains(&second.id),
        "an enabled endpoint in a streak is listed failing"
    );
    assert!(!failing_ids.contains(&first.id), "disabled, though its streak runs");
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, failed(100, 39))
            .await
            .unwrap(),
        None,
        "a streak that began after the limit does not disable"
    );
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, failed(100, 40))
            .await
            .unwrap(),
        Some("failing")
    );
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, failed(101, 40))
            .await
            .unwrap(),
        None,
        "disabled once: a second worker's failure is not told it disabled it"
    );
    let disabled = store.find_webhook(&app, &second.id).await.unwrap().unwrap();
    assert!(!store.failing_webhook_ids().await.unwrap().contains(&second.id));
    assert_eq!(
        (
            disabled.enabled,
            disabled.disabled_reason.as_deref(),
            disabled.failing_since
        ),
        (false, Some("failing"), Some(40))
    );
    assert_eq!(
        store
            .change_webhook_health(&app, &second.id, HealthChange::Recovered)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_webhook(&app, &second.id)
            .await
            .unwrap()
            .unwrap()
            .failing_since,
        None,
        "a delivery ends the streak"
    );
    assert_eq!(
        store
            .change_webhook_health(&app, &stranger.id, HealthChange::Gone)
            .await
            .unwrap(),
        None,
        "another app's"
    );
    assert!(
        store
            .find_webhook(&other_app, &stranger.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert_eq!(
        store
            .change_webhook_health(&other_app, &stranger.id, HealthChange::Gone)
            .await
            .unwrap(),
        Some("gone")
    );
    assert_eq!(
        store
            .change_webhook_health(&other_app, &stranger.id, HealthChange::Gone)
            .await
            .unwrap(),
        None,
        "gone once"
    );
    let stranger = store.find_webhook(&other_app, &stranger.id).await.unwrap().unwrap();
    assert_eq!(
        (stranger.enabled, stranger.disabled_reason.as_deref()),
        (false, Some("gone"))
    );
    let second = store.find_webhook(&app, &second.id).await.unwrap().unwrap();
    assert!(!store.delete_webhook(&app, &stranger.id).await.unwrap(), "nor deleted");
    assert!(store.delete_webhook(&app, &first.id).await.unwrap());
    assert!(!store.delete_webhook(&app, &first.id).await.unwrap());
    assert_eq!(store.list_webhooks(&app).await.unwrap(), [second]);
    assert_eq!(store.list_webhooks(&other_app).await.unwrap(), [stranger]);
}

async fn endpoints_are_bounded_per_app(store: &dyn Store) {
    let app = unique("app");
    for at in 0..3 {
        store.insert_webhook(&endpoint(&app, at), 3).await.unwrap();
    }
    assert!(matches!(
        store.insert_webhook(&endpoint(&app, 3), 3).await,
        Err(Error::LimitExceeded(_))
    ));
    store.insert_webhook(&endpoint(&unique("app"), 0), 3).await.unwrap();
    assert_eq!(store.list_webhooks(&app).await.unwrap().len(), 3);
}

fn delivery(app_id: &str, endpoint_id: &str, event: &str, due_at: i64) -> WebhookDelivery {
    let mut endpoint = endpoint(app_id, due_at);
    endpoint.id = endpoint_id.to_owned();
    let payload = format!(r#"{{"type":"message.new","event":"{event}"}}"#);
    WebhookDelivery::queued(&endpoint, event, "message.new", payload, "conformance", due_at)
}

/// The queue is shared by every app and test, and a claim takes any app's due deliveries: the checks
/// here use times far in the past, at a random base, so nothing else is due at them.
async fn deliveries_are_queued_once_and_leased_when_due(store: &dyn Store) {
    let (app, endpoint) = (unique("app"), unique("wh"));
    let base = random_base();
    let late = delivery(&app, &endpoint, "late", base + 30);
    let early = delivery(&app, &endpoint, "early", base + 10);
    let future = delivery(&app, &endpoint, "future", base + 1_000);
    let outcome = store
        .enqueue_webhook_deliveries(&[late.clone(), early.clone(), future.clone()])
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (3, 0));
    let mut again = early.clone();
    again.payload = "changed".into();
    let outcome = store.enqueue_webhook_deliveries(&[again]).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (0, 1),
        "an event consumed twice is queued once"
    );
    assert_eq!(store.enqueue_webhook_deliveries(&[]).await.unwrap().inserted, 0);

    let claimed: Vec<WebhookDelivery> = store
        .claim_due_webhook_deliveries(base + 50, base + 500, any(100))
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.endpoint_id == endpoint)
        .collect();
    let ids: Vec<&str> = claimed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, ["early", "late"], "due ones, earliest first");
    assert!(claimed.iter().all(|d| d.due_at == base + 500), "leased");
    assert_eq!(claimed[0].payload, early.payload, "the first queued payload stays");
    assert!(
        !store
            .claim_due_webhook_deliveries(base + 50, base + 500, any(100))
            .await
            .unwrap()
            .iter()
            .any(|d| d.endpoint_id == endpoint),
        "a leased delivery is not taken again while its lease lasts"
    );
    let retaken = store
        .claim_due_webhook_deliveries(base + 600, base + 700, any(1))
        .await
        .unwrap();
    assert_eq!(
        retaken.len(),
        1,
        "a lease that ended (the worker died) is taken again, at most `limit`"
    );
}

async fn attempts_are_recorded_and_listed_per_endpoint(store: &dyn Store) {
    let (app, endpoint, other_endpoint) = (unique("app"), unique("wh"), unique("wh"));
    let base = random_base();
    let first = delivery(&app, &endpoint, "one", base);
    let second = delivery(&app, &endpoint, "two", base + 1);
    let elsewhere = delivery(&app, &other_endpoint, "three", base + 2);
    store
        .enqueue_webhook_deliveries(&[first.clone(), second.clone(), elsewhere.clone()])
        .await
        .unwrap();
    let lease = base + 100;
    let claimed = store
        .claim_due_webhook_deliveries(base + 2, lease, any(100))
        .await
        .unwrap();
    assert_eq!(claimed.iter().filter(|d| d.app_id == app).count(), 3);
    let retry = AttemptRecord {
        attempts: 1,
        status: DeliveryStatus::Pending,
        due_at: base + 5_000,
        last_status: Some(503),
        last_error: None,
        last_latency_ms: 12,
        finished_at: None,
    };
    assert!(store
        .record_webhook_attempt(&app, &first.id, lease, &retry)
        .await
        .unwrap());
    let delivered = AttemptRecord {
        attempts: 1,
        status: DeliveryStatus::Delivered,
        due_at: base + 3,
        last_status: Some(204),
        last_error: None,
        last_latency_ms: 7,
        finished_at: Some(base + 3),
    };
    assert!(
        !store
            .record_webhook_attempt(&unique("app"), &second.id, lease, &delivered)
            .await
            .unwrap(),
        "another app's delivery"
    );
    assert!(
        !store
            .record_webhook_attempt(&app, &second.id, lease + 1, &delivered)
            .await
            .unwrap(),
        "a lease the caller does not hold (it ran out and the delivery was claimed again)"
    );
    assert!(store
        .record_webhook_attempt(&app, &second.id, lease, &delivered)
        .await
        .unwrap());
    assert!(
        !store
            .record_webhook_attempt(&app, &second.id, lease, &retry)
            .await
            .unwrap(),
        "a finished delivery keeps its result"
    );

    let listed = store.list_webhook_deliveries(&app, &endpoint, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(ids, ["two", "one"], "newest first, this endpoint only");
    assert_eq!(
        (
            listed[1].attempts,
            listed[1].status,
            listed[1].due_at,
            listed[1].last_status,
            listed[1].last_latency_ms
        ),
        (1, DeliveryStatus::Pending, base + 5_000, Some(503), Some(12))
    );
    assert_eq!(
        (listed[0].status, listed[0].finished_at),
        (DeliveryStatus::Delivered, Some(base + 3))
    );
    assert_eq!(
        store.list_webhook_deliveries(&app, &endpoint, 1).await.unwrap().len(),
        1
    );
    assert!(store
        .list_webhook_deliveries(&unique("app"), &endpoint, 10)
        .await
        .unwrap()
        .is_empty());

    // Delivered is never due again; the retry is due at its time.
    let due = store
        .claim_due_webhook_deliveries(base + 4_000, base + 4_500, any(10))
        .await
        .unwrap();
    assert!(
        due.iter().all(|d| d.id != first.id && d.id != second.id),
        "not yet due, or finished"
    );
    let due = store
        .claim_due_webhook_deliveries(base + 5_000, base + 5_500, any(10))
        .await
        .unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.event_id.as_str()).collect();
    assert!(ids.contains(&"one") && !ids.contains(&"two"), "{ids:?}");
}

async fn claims_leave_room_for_every_endpoint(store: &dyn Store) {
    let (app, slow, other) = (unique("app"), unique("wh"), unique("wh"));
    let base = random_base();
    let queued: Vec<WebhookDelivery> = (0..4)
        .map(|i| delivery(&app, &slow, &format!("slow-{i}"), base + i))
        .chain([delivery(&app, &other, "other", base + 10)])
        .collect();
    store.enqueue_webhook_deliveries(&queued).await.unwrap();
    let mut in_flight = InFlight::default();
    in_flight.add(&app, &slow);
    let limit = ClaimLimit {
        total: 100,
        per_app: 100,
        per_endpoint: 2,
        probing: &NONE_FAILING,
        in_flight: &in_flight,
    };
    let claimed = claimed_of(store, &app, base + 20, limit).await;
    assert_eq!(
        claimed,
        ["slow-0", "other"],
        "one more of the endpoint with one in flight, then the other endpoint's, though later"
    );
}

/// The event ids of `app`'s deliveries a claim at `now` takes.
async fn claimed_of(store: &dyn Store, app: &str, now: i64, limit: ClaimLimit<'_>) -> Vec<String> {
    store
        .claim_due_webhook_deliveries(now, now + 500, limit)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.app_id == app)
        .map(|d| d.event_id)
        .collect()
}

async fn claims_leave_room_for_every_app_and_probe_failing_endpoints(store: &dyn Store) {
    let (busy, quiet) = (unique("app"), unique("app"));
    let (dead, slow, fine) = (unique("wh"), unique("wh"), unique("wh"));
    let base = random_base();
    let queued: Vec<WebhookDelivery> = (0..3)
        .map(|i| delivery(&busy, &dead, &format!("dead-{i}"), base + i))
        .chain((0..3).map(|i| delivery(&busy, &slow, &format!("slow-{i}"), base + 10 + i)))
        .chain([delivery(&quiet, &fine, "fine", base + 20)])
        .collect();
    store.enqueue_webhook_deliveries(&queued).await.unwrap();
    let probing = HashSet::from([dead.clone()]);
    let mut in_flight = InFlight::default();
    in_flight.add(&busy, &slow);
    let limit = ClaimLimit {
        total: 100,
        per_app: 3,
        per_endpoint: 10,
        probing: &probing,
        in_flight: &in_flight,
    };
    let now = base + 30;
    let (busy_claimed, quiet_claimed) = {
        let all = store.claim_due_webhook_deliveries(now, now + 500, limit).await.unwrap();
        let of = |app: &str| -> Vec<String> {
            all.iter()
                .filter(|d| d.app_id == app)
                .map(|d| d.event_id.clone())
                .collect()
        };
        (of(&busy), of(&quiet))
    };
    assert_eq!(
        busy_claimed,
        ["dead-0", "slow-0"],
        "one probe of the failing endpoint, then the app's share (three, one in flight) is full"
    );
    assert_eq!(quiet_claimed, ["fine"], "another app's delivery, though later");
}

async fn finished_deliveries_are_retried_on_request_and_purged(store: &dyn Store) {
    let (app, endpoint) = (unique("app"), unique("wh"));
    let base = random_base();
    let dead = delivery(&app, &endpoint, "dead", base);
    let waiting = delivery(&app, &endpoint, "waiting", base + 1_000_000);
    store
        .enqueue_webhook_deliveries(&[dead.clone(), waiting.clone()])
        .await
        .unwrap();
    let lease = base + 100;
    let claimed = store.claim_due_webhook_deliveries(base, lease, any(100)).await.unwrap();
    assert!(claimed.iter().any(|d| d.id == dead.id));
    let record = AttemptRecord {
        attempts: 1,
        status: DeliveryStatus::Dead,
        due_at: base + 10,
        last_status: Some(400),
        last_error: None,
        last_latency_ms: 3,
        finished_at: Some(base + 10),
    };
    assert!(store
        .record_webhook_attempt(&app, &dead.id, lease, &record)
        .await
        .unwrap());

    assert!(
        matches!(
            store
                .retry_webhook_delivery(&app, &endpoint, &waiting.id, base + 20)
                .await,
            Err(Error::Conflict(_))
        ),
        "a pending delivery is not retried by hand"
    );
    assert_eq!(
        store
            .retry_webhook_delivery(&unique("app"), &endpoint, &dead.id, base + 20)
            .await
            .unwrap(),
        None,
        "another app's delivery"
    );
    assert_eq!(
        store
            .retry_webhook_delivery(&app, &unique("wh"), &dead.id, base + 20)
            .await
            .unwrap(),
        None,
        "another endpoint's delivery"
    );
    let retried = store
        .retry_webhook_delivery(&app, &endpoint, &dead.id, base + 20)
        .await
        .unwrap()
        .expect("the dead delivery");
    assert_eq!(
        (retried.status, retried.due_at, retried.finished_at, retried.attempts),
        (DeliveryStatus::Pending, base + 20, None, 1),
        "due again, its attempts kept"
    );
    let claimed = store
        .claim_due_webhook_deliveries(base + 20, lease + 1, any(100))
        .await
        .unwrap();
    assert!(claimed.iter().any(|d| d.id == dead.id), "claimed like any due delivery");
    let delivered = AttemptRecord {
        attempts: 2,
        status: DeliveryStatus::Delivered,
        finished_at: Some(base + 30),
        ..record
    };
    assert!(store
        .record_webhook_attempt(&app, &dead.id, lease + 1, &delivered)
        .await
        .unwrap());

    store.purge_finished_webhook_deliveries(base + 31).await.unwrap();
    let left: Vec<String> = store
        .list_webhook_deliveries(&app, &endpoint, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(left, ["waiting"], "finished before the cutoff: purged; pending: kept");
}

fn event(app_id: &str, id: &str, event_type: &str, created_at: i64) -> WebhookEvent {
    WebhookEvent {
        id: id.to_owned(),
        app_id: app_id.to_owned(),
        seq: 0,
        event_type: event_type.to_owned(),
        created_at,
        correlation_id: "conformance".into(),
        payload: format!(r#"{{"id":"{id}"}}"#),
    }
}

fn seqs(events: &[WebhookEvent]) -> Vec<(String, i64)> {
    events.iter().map(|e| (e.id.clone(), e.seq)).collect()
}

async fn event_logs_are_appended_once_in_order_per_app(store: &dyn Store) {
    let (app, other_app) = (unique("app"), unique("app"));
    let base = random_base();
    let first = event(&app, "a", "message.new", base);
    let second = event(&app, "b", "message.new", base + 1);
    let elsewhere = event(&other_app, &unique("x"), "message.new", base + 2);
    let stored = store
        .append_webhook_events(&[first.clone(), elsewhere.clone(), second.clone(), first.clone()])
        .await
        .unwrap();
    assert_eq!(
        seqs(&stored),
        [
            ("a".into(), 1),
            (elsewhere.id.clone(), 1),
            ("b".into(), 2),
            ("a".into(), 1)
        ],
        "each app's log counts from 1; an event twice in a batch is stored once"
    );
    assert_eq!(stored[1].app_id, other_app);

    let mut changed = second.clone();
    changed.payload = "changed".into();
    let third = event(&app, "c", "message.new", base + 3);
    let stored = store.append_webhook_events(&[changed, third]).await.unwrap();
    assert_eq!(seqs(&stored), [("b".into(), 2), ("c".into(), 3)]);
    assert_eq!(
        stored[0].payload, second.payload,
        "an event consumed again keeps what was stored"
    );

    assert!(store.purge_webhook_events(base + 3).await.unwrap() >= 3);
    let left = store
        .find_webhook_events(
            &app,
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(&left), [("c".into(), 3)], "recorded before the cutoff: purged");
    let stored = store
        .append_webhook_events(&[event(&app, "d", "message.new", base + 4)])
        .await
        .unwrap();
    assert_eq!(stored[0].seq, 4, "a purge never hands a seq out again");
}

async fn event_logs_are_read_by_cursor_type_and_time(store: &dyn Store) {
    let app = unique("app");
    let base = random_base();
    let events: Vec<WebhookEvent> = (0..6)
        .map(|i| {
            let kind = if i % 2 == 0 { "message.new" } else { "member.added" };
            event(&app, &format!("e{i}"), kind, base + i * 10)
        })
        .collect();
    store.append_webhook_events(&events).await.unwrap();
    let app = app.as_str();
    let read = |query: EventQuery| async move {
        let found = store.find_webhook_events(app, &query).await.unwrap();
        found.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let all = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    assert_eq!(read(all.clone()).await, ["e0", "e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(
        read(EventQuery {
            after_seq: 2,
            limit: 2,
            ..all.clone()
        })
        .await,
        ["e2", "e3"],
        "after the cursor, at most `limit`"
    );
    assert_eq!(
        read(EventQuery {
            types: vec!["member.added".into()],
            ..all.clone()
        })
        .await,
        ["e1", "e3", "e5"]
    );
    assert_eq!(
        read(EventQuery {
            from_ms: Some(base + 10),
            to_ms: Some(base + 30),
            ..all.clone()
        })
        .await,
        ["e1", "e2", "e3"],
        "a time range, both ends included"
    );
    assert!(store
        .find_webhook_events(&unique("app"), &all)
        .await
        .unwrap()
        .is_empty());
}
