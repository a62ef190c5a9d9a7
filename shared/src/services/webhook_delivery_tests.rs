//! The delivery rules on the in-memory store with a scripted transport (the real transport has its own
//! tests against real receivers).

use super::*;
use crate::domain::model::App;
use crate::domain::webhooks::sign;
use crate::ports::bus::MemoryBus;
use crate::ports::store::{AppStore, MemoryStore, WebhookDeliveryStore, WebhookStore};
use crate::ports::webhook_transport::ScriptedTransport;
use crate::services::webhooks::{NewEndpoint, WebhookAdmin};
use std::sync::atomic::{AtomicI64, Ordering};

struct Setup {
    store: MemoryStore,
    bus: MemoryBus,
    key: SealingKey,
    endpoint: WebhookEndpoint,
    secret: String,
}

async fn setup() -> Setup {
    let store = MemoryStore::new();
    store
        .insert_app(&App::new("app".into(), "App".into(), "hash".into(), 1, "c".into()))
        .await
        .unwrap();
    let key = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
    let (endpoint, secret) = register(&store, &key, "https://hooks.example.com/caas").await;
    let bus = MemoryBus::new(1);
    bus.ensure_topics(&crate::domain::events::topics::ALL).await.unwrap();
    Setup {
        store,
        bus,
        key,
        endpoint,
        secret,
    }
}

/// Registers an endpoint of `app` at `url` for `message.new`, as the operator does; it and its secret.
async fn register(store: &MemoryStore, key: &SealingKey, url: &str) -> (WebhookEndpoint, String) {
    let admin = WebhookAdmin {
        store,
        key,
        allow_loopback_http: false,
    };
    let new = NewEndpoint {
        url: url.into(),
        event_types: vec!["message.new".into()],
        description: String::new(),
        enabled: true,
    };
    admin.create("app", new, 0, "c").await.unwrap()
}

impl Setup {
    fn deliverer<'a>(&'a self, transport: &'a dyn WebhookTransport, schedule: &'a [Duration]) -> Deliverer<'a> {
        Deliverer {
            store: &self.store,
            bus: &self.bus,
            key: &self.key,
            transport,
            schedule,
        }
    }
}

fn queued(endpoint: &WebhookEndpoint, event: &str, due_at: i64) -> WebhookDelivery {
    let payload = format!(r#"{{"type":"message.new","id":"{event}"}}"#);
    WebhookDelivery::queued(endpoint, event, "message.new", payload, "corr-1", due_at)
}

fn answered(status: u16) -> Outcome {
    Outcome::Answered {
        status,
        retry_after: None,
    }
}

/// Runs the deliverer at successive clock readings, each time it is due.
struct Clock(AtomicI64);

impl Clock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, at: i64) {
        self.0.store(at, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_on_the_fourth_with_the_same_id() {
    let s = setup().await;
    let transport = ScriptedTransport::new(vec![answered(500), Outcome::TimedOut, answered(503), answered(204)]);
    let deliverer = s.deliverer(&transport, &retry::DEFAULT_SCHEDULE);
    s.store
        .enqueue_webhook_deliveries(&[queued(&s.endpoint, "evt_1", 1_000)])
        .await
        .unwrap();
    let clock = Clock(AtomicI64::new(0));
    let mut verdicts = Vec::new();
    for _ in 0..4 {
        let due_at = s.store.list_webhook_deliveries("app", &s.endpoint.id, 1).await.unwrap()[0].due_at;
        clock.set(due_at - 1);
        assert!(
            deliverer.deliver_due(10, || clock.now()).await.unwrap().is_empty(),
            "nothing is attempted before it is due"
        );
        clock.set(due_at);
        let attempted = deliverer.deliver_due(10, || clock.now()).await.unwrap();
        verdicts.push(attempted[0].verdict);
    }
    assert_eq!(
        verdicts,
        [
            Verdict::RetryAfter(Duration::from_secs(5)),
            Verdict::RetryAfter(Duration::from_secs(30)),
            Verdict::RetryAfter(Duration::from_secs(120)),
            Verdict::Delivered
        ]
    );
    let requests = transport.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("webhook-id"), "evt_1", "stable across retries");
        assert_eq!(header("x-correlation-id"), "corr-1");
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            header("webhook-signature"),
            sign(&s.secret, "evt_1", timestamp, &request.body).unwrap(),
            "signed with the endpoint's secret, as a Standard Webhooks library verifies it"
        );
    }
    let done = &s.store.list_webhook_deliveries("app", &s.endpoint.id, 1).await.unwrap()[0];
    assert_eq!(
        (done.status, done.attempts, done.last_status),
        (DeliveryStatus::Delivered, 4, Some(204))
    );
    let endpoint = s.store.find_webhook("app", &s.endpoint.id).await.unwrap().unwrap();
    assert_eq!(endpoint.failing_since, None, "a success ends the failure streak");
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_gone_disables_the_endpoint() {
    let s = setup().await;
    let transport = ScriptedTransport::new(vec![answered(400), answered(410)]);
    let deliverer = s.deliverer(&transport, &retry::DEFAULT_SCHEDULE);
    s.store
        .enqueue_webhook_deliveries(&[queued(&s.endpoint, "a", 1), queued(&s.endpoint, "b", 2)])
        .await
        .unwrap();
    let first = deliverer.deliver_due(1, || 10).await.unwrap();
    assert_eq!((first[0].verdict, first[0].disabled), (Verdict::Refused, None));
    let second = deliverer.deliver_due(1, || 20).await.unwrap();
    assert_eq!((second[0].verdict, second[0].disabled), (Verdict::Gone, Some("gone")));
    let listed = s
        .store
        .list_webhook_deliveries("app", &s.endpoint.id, 10)
        .await
        .unwrap();
    assert!(listed.iter().all(|d| d.status == DeliveryStatus::Dead), "{listed:?}");
    let endpoint = s.store.find_webhook("app", &s.endpoint.id).await.unwrap().unwrap();
    assert_eq!(
        (endpoint.enabled, endpoint.disabled_reason.as_deref()),
        (false, Some("gone"))
    );
    let mut audit = s
        .bus
        .group_consumer(crate::domain::events::topics::AUDIT, "t")
        .await
        .unwrap();
    let told = tokio::time::timeout(Duration::from_secs(5), audit.next())
        .await
        .unwrap()
        .unwrap();
    let told: AuditEvent = serde_json::from_slice(&told.payload).unwrap();
    assert_eq!(
        (
            told.action.as_str(),
            told.target.id.as_str(),
            told.details["reason"].as_str()
        ),
        ("webhook.disabled", s.endpoint.id.as_str(), Some("gone")),
        "the operator is told through the audit trail"
    );

    // Later events for a disabled endpoint are dead-lettered without a request.
    s.store
        .enqueue_webhook_deliveries(&[queued(&s.endpoint, "c", 30)])
        .await
        .unwrap();
    deliverer.deliver_due(10, || 40).await.unwrap();
    assert_eq!(transport.requests().len(), 2);
    let c = s
        .store
        .list_webhook_deliveries("app", &s.endpoint.id, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.event_id == "c")
        .unwrap();
    assert_eq!(
        (c.status, c.last_error.as_deref()),
        (DeliveryStatus::Dead, Some("endpoint disabled"))
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_a_day_is_disabled_and_an_exhausted_delivery_is_dead() {
    let s = setup().await;
    let transport = ScriptedTransport::new(vec![Outcome::Unreachable("connection refused".into())]);
    let schedule = [Duration::from_secs(3600); 30];
    let deliverer = s.deliverer(&transport, &schedule[..2]);
    s.store
        .enqueue_webhook_deliveries(&[queued(&s.endpoint, "short", 0)])
        .await
        .unwrap();
    let hour = 3_600_000;
    let mut seen = Vec::new();
    for step in 0..3 {
        let attempted = deliverer.deliver_due(10, || step * hour).await.unwrap();
        seen.push(attempted[0].verdict);
    }
    assert_eq!(
        seen,
        [
            Verdict::RetryAfter(Duration::from_secs(3600)),
            Verdict::RetryAfter(Duration::from_secs(3600)),
            Verdict::Exhausted
        ]
    );
    let dead = &s.store.list_webhook_deliveries("app", &s.endpoint.id, 1).await.unwrap()[0];
    assert_eq!(
        (dead.status, dead.attempts, dead.last_error.as_deref()),
        (DeliveryStatus::Dead, 3, Some("connection refused"))
    );
    let endpoint = s.store.find_webhook("app", &s.endpoint.id).await.unwrap().unwrap();
    assert_eq!(
        (endpoint.failing_since, endpoint.enabled),
        (Some(0), true),
        "failing for 2 h only"
    );

    // Another event, still failing a day after the streak began: the endpoint is disabled.
    let patient = Deliverer {
        schedule: &schedule,
        ..deliverer
    };
    s.store
        .enqueue_webhook_deliveries(&[queued(&s.endpoint, "long", 23 * hour)])
        .await
        .unwrap();
    let before = patient.deliver_due(10, || 23 * hour).await.unwrap();
    assert_eq!(before[0].disabled, None);
    let after = patient.deliver_due(10, || 24 * hour).await.unwrap();
    assert_eq!(after[0].disabled, Some("failing"));
    let endpoint = s.store.find_webhook("app", &s.endpoint.id).await.unwrap().unwrap();
    assert_eq!(
        (endpoint.enabled, endpoint.disabled_reason.as_deref()),
        (false, Some("failing"))
    );
}

/// Answers `dead` URLs with a timeout after a while and the others with 204 at once, and records, for
/// each request to a dead URL, whether another was in flight to it while one had already failed.
#[derive(Default)]
struct DeadAndFine {
    state: std::sync::Mutex<DeadAndFineState>,
}

#[derive(Default)]
struct DeadAndFineState {
    dead_in_flight: usize,
    dead_failed: usize,
    dead_started: usize,
    most_dead_in_flight: usize,
    /// Requests to the dead URL that started beside another after a failure had been seen.
    crowded_after_failure: usize,
    delivered: usize,
}

#[async_trait::async_trait]
impl WebhookTransport for DeadAndFine {
    async fn post(&self, request: &OutboundRequest) -> Outcome {
        if !request.url.contains("dead") {
            self.state.lock().unwrap().delivered += 1;
            return answered(204);
        }
        {
            let mut state = self.state.lock().unwrap();
            if state.dead_failed > 0 && state.dead_in_flight > 0 {
                state.crowded_after_failure += 1;
            }
            state.dead_in_flight += 1;
            state.dead_started += 1;
            state.most_dead_in_flight = state.most_dead_in_flight.max(state.dead_in_flight);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut state = self.state.lock().unwrap();
        state.dead_in_flight -= 1;
        state.dead_failed += 1;
        Outcome::TimedOut
    }
}

impl Setup {
    /// Runs a deliverer (retries an hour apart) on `transport` until the dead endpoint has failed
    /// `failures` times (or 10 s passed), and lets its attempts in flight finish.
    async fn run_until_dead_failed(&self, transport: &DeadAndFine, failures: usize) -> RunReport {
        let schedule = [Duration::from_secs(3600)];
        let deliverer = self.deliverer(transport, &schedule);
        let started = Instant::now();
        let enough = async {
            while transport.state.lock().unwrap().dead_failed < failures && started.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        deliverer.run(crate::now_ms, &tokio::sync::Notify::new(), enough).await
    }
}

#[tokio::test]
async fn a_failing_endpoint_is_probed_one_delivery_at_a_time_while_its_app_s_others_go_on() {
    let s = setup().await;
    let (dead, _) = register(&s.store, &s.key, "https://dead.example.com/caas").await;
    let backlog: Vec<WebhookDelivery> = (0..40)
        .map(|i| queued(&dead, &format!("evt_dead_{i}"), 0))
        .chain((0..40).map(|i| queued(&s.endpoint, &format!("evt_fine_{i}"), 1)))
        .collect();
    s.store.enqueue_webhook_deliveries(&backlog).await.unwrap();
    let transport = DeadAndFine::default();
    let report = s.run_until_dead_failed(&transport, 12).await;
    let state = transport.state.lock().unwrap();
    assert_eq!(state.delivered, 40, "the app's other endpoint got everything at once");
    assert_eq!(report.delivered, 40);
    assert!(
        state.dead_failed >= 12,
        "{} attempts at the dead endpoint",
        state.dead_failed
    );
    assert_eq!(
        state.crowded_after_failure, 0,
        "after its first failure the dead endpoint had one attempt at a time ({} started)",
        state.dead_started
    );
}

#[tokio::test]
async fn a_worker_starting_probes_the_endpoints_already_failing_from_its_first_claim() {
    let s = setup().await;
    let (dead, _) = register(&s.store, &s.key, "https://dead.example.com/caas").await;
    // A streak that began a moment ago: the endpoint stays enabled through the attempts below.
    let streak = HealthChange::Failed {
        at: crate::now_ms(),
        disable_if_since: 0,
    };
    s.store.change_webhook_health("app", &dead.id, streak).await.unwrap();
    let backlog: Vec<WebhookDelivery> = (0..10).map(|i| queued(&dead, &format!("evt_{i}"), 0)).collect();
    s.store.enqueue_webhook_deliveries(&backlog).await.unwrap();
    let transport = DeadAndFine::default();
    s.run_until_dead_failed(&transport, 3).await;
    let state = transport.state.lock().unwrap();
    assert!(state.dead_failed >= 3);
    assert_eq!(state.most_dead_in_flight, 1, "one attempt at a time from the start");
}
