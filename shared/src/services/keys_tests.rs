//! The key directory's use cases on the in-memory drivers, with real Ed25519 keys.

use super::*;
use crate::domain::events::ConversationsRecord;
use crate::domain::keys::testing::{device, signed_key};
use crate::domain::model::{Conversation, ConversationKind, Member, Role};
use crate::ports::bus::{Consumer, MemoryBus};
use crate::ports::store::{ConversationStore, KeyStore, MemoryStore};
use ed25519_dalek::SigningKey;

const APP: &str = "app1";

async fn drivers() -> (MemoryStore, MemoryBus) {
    let bus = MemoryBus::new(1);
    bus.ensure_topics(&[topics::CONVERSATIONS]).await.unwrap();
    (MemoryStore::new(), bus)
}

fn caller(user_id: &str) -> Caller<'_> {
    Caller {
        app_id: APP,
        user_id,
        correlation_id: "corr-keys",
    }
}

async fn conversation(store: &MemoryStore, app_id: &str, members: &[&str]) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let conversation = Conversation {
        id: id.clone(),
        app_id: app_id.into(),
        kind: ConversationKind::Group,
        name: None,
        created_by: members[0].into(),
        member_ids: members.iter().map(|m| m.to_string()).collect(),
        epoch: "e".into(),
        created_at: 1,
        correlation_id: "c".into(),
    };
    let members: Vec<Member> = members
        .iter()
        .map(|user| Member {
            id: format!("{id}:{user}"),
            app_id: app_id.into(),
            conversation_id: id.clone(),
            user_id: user.to_string(),
            role: Role::Member,
            joined_at: 1,
            correlation_id: "c".into(),
        })
        .collect();
    store.create_conversation(&conversation, &members).await.unwrap();
}

/// A device's first upload: its identity and `keys` one-time keys (filled 1, 2, …).
fn first_upload(user: &str, device_id: &str, seed: u8, keys: u8) -> (SigningKey, Upload) {
    let (signing, identity) = device(user, device_id, seed);
    let one_time_keys = (1..=keys)
        .map(|n| {
            (
                format!("signed_curve25519:k{n:02}"),
                signed_key(&signing, user, device_id, n, false),
            )
        })
        .collect();
    let upload = Upload {
        device_keys: Some(identity),
        one_time_keys,
        fallback_keys: Map::new(),
    };
    (signing, upload)
}

async fn notices(consumer: &mut Box<dyn Consumer>, count: usize) -> Vec<KeyNotice> {
    let mut out = Vec::new();
    for _ in 0..count {
        let record = tokio::time::timeout(std::time::Duration::from_secs(1), consumer.next())
            .await
            .expect("a notice")
            .unwrap();
        match serde_json::from_slice(&record.payload).unwrap() {
            ConversationsRecord::Keys(notice) => out.push(notice),
            other => panic!("not a key notice: {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn uploads_register_once_refuse_forgeries_and_count_keys() {
    let (store, bus) = drivers().await;
    let keys = Keys {
        store: &store,
        bus: &bus,
    };
    let (signing, upload) = first_upload("alice", "PHONE", 1, 3);
    let identity = upload.device_keys.clone().unwrap();
    let uploaded = keys.upload(caller("alice"), "PHONE", upload).await.unwrap();
    assert!(uploaded.registered);
    assert_eq!(uploaded.one_time_key_counts[SIGNED_CURVE25519], 3);
    assert!(!uploaded.fallback);
    // The same identity again is a no-op; other identity keys for the device are a conflict.
    let again = Upload {
        device_keys: Some(identity),
        ..Upload::default()
    };
    assert!(!keys.upload(caller("alice"), "PHONE", again).await.unwrap().registered);
    let (_, other) = first_upload("alice", "PHONE", 2, 0);
    assert!(matches!(
        keys.upload(caller("alice"), "PHONE", other).await,
        Err(Error::Conflict(_))
    ));
    // Someone else's identity, or keys for an unregistered device, are refused.
    let (_, bobs) = first_upload("bob", "PHONE", 3, 0);
    let refused = keys.upload(caller("alice"), "TABLET", bobs).await.unwrap_err();
    assert!(refused.public_message().contains("own user id"), "{refused}");
    let orphan = Upload {
        one_time_keys: Map::from_iter([(
            "signed_curve25519:x".into(),
            signed_key(&signing, "alice", "LAPTOP", 9, false),
        )]),
        ..Upload::default()
    };
    assert!(matches!(
        keys.upload(caller("alice"), "LAPTOP", orphan).await,
        Err(Error::NotFound(_))
    ));
    // One forged key refuses the whole upload: nothing of it is stored.
    let (forger, _) = device("alice", "PHONE", 42);
    let mixed = Upload {
        one_time_keys: Map::from_iter([
            (
                "signed_curve25519:k10".into(),
                signed_key(&signing, "alice", "PHONE", 10, false),
            ),
            (
                "signed_curve25519:k11".into(),
                signed_key(&forger, "alice", "PHONE", 11, false),
            ),
        ]),
        ..Upload::default()
    };
    let refused = keys.upload(caller("alice"), "PHONE", mixed).await.unwrap_err();
    assert!(refused.public_message().contains("does not verify"), "{refused}");
    assert_eq!(store.count_one_time_keys(APP, "alice", "PHONE").await.unwrap(), 3);
    // The same id with other content is a conflict; a fallback key is stored and reported.
    let clash = Upload {
        one_time_keys: Map::from_iter([(
            "signed_curve25519:k01".into(),
            signed_key(&signing, "alice", "PHONE", 77, false),
        )]),
        ..Upload::default()
    };
    assert!(matches!(
        keys.upload(caller("alice"), "PHONE", clash).await,
        Err(Error::Conflict(_))
    ));
    let fallback = Upload {
        fallback_keys: Map::from_iter([(
            "signed_curve25519:f1".into(),
            signed_key(&signing, "alice", "PHONE", 50, true),
        )]),
        ..Upload::default()
    };
    assert!(keys.upload(caller("alice"), "PHONE", fallback).await.unwrap().fallback);
    // Limits: devices per user (a registered device's retry is still fine), keys per upload.
    for n in 1..MAX_DEVICES_PER_USER {
        let (_, upload) = first_upload("alice", &format!("D{n}"), 100 + n as u8, 0);
        keys.upload(caller("alice"), &format!("D{n}"), upload).await.unwrap();
    }
    let (_, one_too_many) = first_upload("alice", "D99", 99, 0);
    let refused = keys.upload(caller("alice"), "D99", one_too_many).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.http_status()),
        ("limit_exceeded", 409),
        "{refused}"
    );
    let (_, mut big) = first_upload("alice", "PHONE", 1, 0);
    big.one_time_keys = (0..=MAX_KEYS_PER_UPLOAD)
        .map(|n| (format!("signed_curve25519:b{n}"), json!({})))
        .collect();
    let refused = keys.upload(caller("alice"), "PHONE", big).await.unwrap_err();
    assert!(refused.public_message().contains("at most 100"), "{refused}");
}

#[tokio::test]
async fn only_users_who_share_a_conversation_see_and_claim_each_others_keys() {
    let (store, bus) = drivers().await;
    let keys = Keys {
        store: &store,
        bus: &bus,
    };
    conversation(&store, APP, &["alice", "bob"]).await;
    conversation(&store, "app2", &["mallory", "alice"]).await;
    let (_, upload) = first_upload("alice", "PHONE", 1, 2);
    keys.upload(caller("alice"), "PHONE", upload).await.unwrap();
    let wanted = ["alice".to_owned(), "bob".to_owned(), "eve".to_owned()];
    let seen = keys.query(caller("bob"), &wanted).await.unwrap();
    assert!(
        seen["device_keys"]["alice"]["PHONE"]["signatures"]["alice"].is_object(),
        "{seen}"
    );
    assert_eq!(
        seen["device_keys"]["bob"],
        json!({}),
        "bob sees himself, without devices"
    );
    assert_eq!(seen["not_visible"], json!(["eve"]));
    // A stranger in the app, and a member of another app who shares a conversation there, see nothing.
    let stranger = keys.query(caller("eve"), &wanted[..1]).await.unwrap();
    assert_eq!(stranger["not_visible"], json!(["alice"]));
    let elsewhere = Caller {
        app_id: "app2",
        user_id: "mallory",
        correlation_id: "c",
    };
    let foreign = keys.query(elsewhere, &wanted[..1]).await.unwrap();
    assert_eq!(
        foreign["device_keys"]["alice"],
        json!({}),
        "no devices of alice in app2"
    );
    let claim = |user: &str| Claim {
        one_time_keys: BTreeMap::from([(
            user.to_owned(),
            BTreeMap::from([("*".to_owned(), SIGNED_CURVE25519.to_owned())]),
        )]),
    };
    let refused = keys.claim(caller("eve"), claim("alice")).await.unwrap();
    assert_eq!(refused["failures"][0]["code"], "not_visible");
    assert_eq!(
        store.count_one_time_keys(APP, "alice", "PHONE").await.unwrap(),
        2,
        "nothing claimed"
    );
    assert!(keys.query(caller("bob"), &[]).await.is_err());
}

#[tokio::test]
async fn claims_hand_out_the_oldest_key_then_the_fallback_and_say_when_keys_run_low() {
    let (store, bus) = drivers().await;
    let mut topic = bus.tail(topics::CONVERSATIONS).await.unwrap();
    let keys = Keys {
        store: &store,
        bus: &bus,
    };
    conversation(&store, APP, &["alice", "bob"]).await;
    let (signing, mut upload) = first_upload("alice", "PHONE", 1, 2);
    upload.fallback_keys = Map::from_iter([(
        "signed_curve25519:f1".into(),
        signed_key(&signing, "alice", "PHONE", 50, true),
    )]);
    keys.upload(caller("alice"), "PHONE", upload).await.unwrap();
    let changed = notices(&mut topic, 1).await;
    assert!(
        matches!(&changed[0], KeyNotice::DeviceListChanged { user_id, recipients, .. } if user_id == "alice" && recipients == &["alice", "bob"]),
        "{changed:?}"
    );
    let claim = |device: &str| Claim {
        one_time_keys: BTreeMap::from([(
            "alice".to_owned(),
            BTreeMap::from([(device.to_owned(), SIGNED_CURVE25519.to_owned())]),
        )]),
    };
    let mut handed = Vec::new();
    for _ in 0..3 {
        let answer = keys.claim(caller("bob"), claim("PHONE")).await.unwrap();
        let key = answer["one_time_keys"]["alice"]["PHONE"].as_object().unwrap();
        handed.push((key.keys().next().unwrap().clone(), answer["fallback_used"].clone()));
    }
    assert_eq!(handed[0], ("signed_curve25519:k01".into(), json!([])));
    assert_eq!(handed[1], ("signed_curve25519:k02".into(), json!([])));
    assert_eq!(
        handed[2],
        (
            "signed_curve25519:f1".into(),
            json!([{"user_id": "alice", "device_id": "PHONE"}])
        ),
        "the empty pool falls back, and says so"
    );
    // Told after each claim that leaves fewer than 10, the fallback's included.
    let low: Vec<u64> = notices(&mut topic, 3)
        .await
        .into_iter()
        .map(|notice| match notice {
            KeyNotice::KeysLow { device_id, count, .. } if device_id == "PHONE" => count,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(low, [1, 0, 0]);
    let unknown = keys.claim(caller("bob"), claim("TABLET")).await.unwrap();
    assert_eq!(unknown["failures"][0]["code"], "unknown_device");
    // Deleting the device tells the contacts too.
    keys.delete_device(caller("alice"), "PHONE").await.unwrap();
    assert!(matches!(
        &notices(&mut topic, 1).await[0],
        KeyNotice::DeviceListChanged { .. }
    ));
    // A repeated deletion is a 404, and announces again (the first one's announcement may have failed).
    assert!(matches!(
        keys.delete_device(caller("alice"), "PHONE").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        &notices(&mut topic, 1).await[0],
        KeyNotice::DeviceListChanged { .. }
    ));
}

#[test]
fn claims_are_budgeted_per_caller_and_per_claimed_user() {
    use crate::services::keys::ClaimBudget;
    const CLAIMS_PER_CALLER_PER_MINUTE: u32 = 100;
    const CLAIMS_ON_USER_PER_MINUTE: u32 = 60;
    let budget = ClaimBudget::new(CLAIMS_PER_CALLER_PER_MINUTE, CLAIMS_ON_USER_PER_MINUTE);
    let caller = |user_id| Caller {
        app_id: "app",
        user_id,
        correlation_id: "c",
    };
    let claim = |user: &str, devices: usize| Claim {
        one_time_keys: [(
            user.to_owned(),
            (0..devices)
                .map(|n| (format!("D{n}"), SIGNED_CURVE25519.to_owned()))
                .collect(),
        )]
        .into(),
    };
    for _ in 0..CLAIMS_ON_USER_PER_MINUTE / 10 {
        budget.take(caller("mallory"), &claim("bob", 10)).unwrap();
    }
    let drained = budget.take(caller("carol"), &claim("bob", 1)).unwrap_err();
    assert_eq!(
        drained.code(),
        "rate_limited",
        "bob's keys are claimed no faster, whoever asks"
    );
    budget.take(caller("carol"), &claim("dave", 1)).unwrap();
    let mut taken = CLAIMS_ON_USER_PER_MINUTE;
    let mut target = 0;
    while taken + 50 <= CLAIMS_PER_CALLER_PER_MINUTE {
        budget
            .take(caller("mallory"), &claim(&format!("u{target}"), 50))
            .unwrap();
        taken += 50;
        target += 1;
    }
    let spent = budget.take(caller("mallory"), &claim("someone-new", 50)).unwrap_err();
    assert_eq!(spent.code(), "rate_limited", "mallory's own budget is spent");
}
