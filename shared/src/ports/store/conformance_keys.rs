//! The key directory's part of the store conformance suite, run by its `run`.

use super::{Registration, Store};
use crate::domain::model::{KeyDevice, StoredKey};
use crate::Error;
use futures_util::future::join_all;
use std::collections::HashSet;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn device(app_id: &str, user_id: &str, device_id: &str, identity: &str) -> KeyDevice {
    KeyDevice {
        app_id: app_id.to_owned(),
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        ed25519: SIGNER.into(),
        curve25519: format!("cu-{identity}"),
        identity_json: format!(r#"{{"identity":"{identity}"}}"#),
        created_at: 1,
        correlation_id: "conformance".into(),
    }
}

/// The Ed25519 key every test device is registered with (see [`device`]).
const SIGNER: &str = "ed-signer";

fn key(device: &KeyDevice, key_id: &str, content: &str) -> StoredKey {
    StoredKey {
        app_id: device.app_id.clone(),
        user_id: device.user_id.clone(),
        device_id: device.device_id.clone(),
        algorithm: "signed_curve25519".into(),
        key_id: key_id.to_owned(),
        object_json: format!(r#"{{"key":"{content}"}}"#),
        correlation_id: "conformance".into(),
    }
}

/// Runs the key directory's checks.
pub async fn run(store: &dyn Store) {
    devices_register_once_and_stay_in_their_app(store).await;
    one_time_keys_are_claimed_oldest_first_and_never_twice(store).await;
    claimed_keys_cannot_come_back_and_pools_are_capped(store).await;
    concurrent_claims_each_get_a_different_key(store).await;
    fallback_keys_are_replaced_and_erasure_removes_everything(store).await;
}

async fn devices_register_once_and_stay_in_their_app(store: &dyn Store) {
    let (app, user) = (unique("app"), unique("user"));
    let phone = device(&app, &user, "PHONE", "one");
    assert_eq!(
        store.register_key_device(&phone, 32).await.unwrap(),
        Registration::Registered
    );
    assert_eq!(
        store.register_key_device(&phone, 32).await.unwrap(),
        Registration::Unchanged
    );
    let other = device(&app, &user, "PHONE", "two");
    assert!(matches!(
        store.register_key_device(&other, 32).await,
        Err(Error::Conflict(_))
    ));
    let laptop = device(&app, &user, "LAPTOP", "three");
    store.register_key_device(&laptop, 32).await.unwrap();
    let stranger = device(&app, &unique("user"), "PHONE", "four");
    store.register_key_device(&stranger, 32).await.unwrap();
    assert_eq!(
        store.find_key_device(&app, &user, "PHONE").await.unwrap(),
        Some(phone.clone())
    );
    assert_eq!(
        store.find_key_device(&unique("app"), &user, "PHONE").await.unwrap(),
        None
    );
    let listed = store.key_devices(&app, std::slice::from_ref(&user)).await.unwrap();
    assert_eq!(
        listed,
        vec![laptop.clone(), phone.clone()],
        "ordered by device id, this user only"
    );
    assert!(store
        .key_devices(&unique("app"), std::slice::from_ref(&user))
        .await
        .unwrap()
        .is_empty());
    // The cap counts the user's devices: a third is refused at 2, a known one is still fine.
    let tablet = device(&app, &user, "TABLET", "six");
    assert!(matches!(
        store.register_key_device(&tablet, 2).await,
        Err(Error::LimitExceeded(_))
    ));
    assert_eq!(
        store.register_key_device(&phone, 2).await.unwrap(),
        Registration::Unchanged
    );
    assert!(store.delete_key_device(&app, &user, "LAPTOP").await.unwrap());
    assert!(!store.delete_key_device(&app, &user, "LAPTOP").await.unwrap());
    // Deleted, the device may come back with new identity keys.
    store
        .register_key_device(&device(&app, &user, "LAPTOP", "five"), 32)
        .await
        .unwrap();
}

async fn one_time_keys_are_claimed_oldest_first_and_never_twice(store: &dyn Store) {
    let (app, user) = (unique("app"), unique("user"));
    let phone = device(&app, &user, "PHONE", "one");
    let unregistered = [key(&phone, "AAA", "a")];
    assert!(matches!(
        store.add_one_time_keys(SIGNER, 1_000, &unregistered).await,
        Err(Error::NotFound(_))
    ));
    store.register_key_device(&phone, 32).await.unwrap();
    let first = [key(&phone, "k3", "c"), key(&phone, "k1", "a")];
    let outcome = store.add_one_time_keys(SIGNER, 1_000, &first).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (2, 0));
    let second = [key(&phone, "k1", "a"), key(&phone, "k2", "b")];
    let outcome = store.add_one_time_keys(SIGNER, 1_000, &second).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (1, 1),
        "the same key again is a duplicate"
    );
    let clash = [key(&phone, "k9", "z"), key(&phone, "k2", "other")];
    assert!(matches!(
        store.add_one_time_keys(SIGNER, 1_000, &clash).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(),
        3,
        "nothing of the clash added"
    );
    let mut claimed = Vec::new();
    while let Some(key) = store
        .claim_one_time_key(&app, &user, "PHONE", "signed_curve25519")
        .await
        .unwrap()
    {
        claimed.push(key.key_id);
    }
    assert_eq!(claimed, ["k3", "k1", "k2"], "in upload order");
    assert_eq!(store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(), 0);
    // Another app's claim finds nothing of this one.
    store
        .add_one_time_keys(SIGNER, 1_000, &[key(&phone, "k4", "d")])
        .await
        .unwrap();
    let elsewhere = store
        .claim_one_time_key(&unique("app"), &user, "PHONE", "signed_curve25519")
        .await
        .unwrap();
    assert_eq!(elsewhere, None);
    // Deleting the device takes its keys.
    assert!(store.delete_key_device(&app, &user, "PHONE").await.unwrap());
    assert_eq!(store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(), 0);
}

async fn claimed_keys_cannot_come_back_and_pools_are_capped(store: &dyn Store) {
    let (app, user) = (unique("app"), unique("user"));
    let phone = device(&app, &user, "PHONE", "one");
    store.register_key_device(&phone, 32).await.unwrap();
    let batch = [key(&phone, "k1", "a"), key(&phone, "k2", "b")];
    store.add_one_time_keys(SIGNER, 1_000, &batch).await.unwrap();
    let claimed = store
        .claim_one_time_key(&app, &user, "PHONE", "signed_curve25519")
        .await
        .unwrap();
    assert_eq!(claimed.unwrap().key_id, "k1");
    // The upload retried (its answer was lost): k1 was handed out and must not go back into the pool.
    let retried = store.add_one_time_keys(SIGNER, 1_000, &batch).await.unwrap();
    assert_eq!((retried.inserted, retried.duplicates), (0, 2));
    assert_eq!(store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(), 1);
    let clash = [key(&phone, "k1", "other")];
    assert!(matches!(
        store.add_one_time_keys(SIGNER, 1_000, &clash).await,
        Err(Error::Conflict(_))
    ));
    // Keys signed by another key than the device's are not stored, nor for a device that is gone.
    let foreign = [key(&phone, "k3", "c")];
    assert!(matches!(
        store.add_one_time_keys("ed-other", 1_000, &foreign).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.put_fallback_key("ed-other", &foreign[0]).await,
        Err(Error::NotFound(_))
    ));
    // The cap counts unclaimed keys only, and an identical retry is not refused by it.
    let more = [key(&phone, "k3", "c"), key(&phone, "k4", "d")];
    assert!(matches!(
        store.add_one_time_keys(SIGNER, 2, &more).await,
        Err(Error::LimitExceeded(_))
    ));
    store.add_one_time_keys(SIGNER, 3, &more).await.unwrap();
    let again = store.add_one_time_keys(SIGNER, 3, &more).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 2));
    assert_eq!(store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(), 3);
    // A deleted device takes its tombstones along: registered anew, it may reuse its key ids.
    assert!(store.delete_key_device(&app, &user, "PHONE").await.unwrap());
    store.register_key_device(&phone, 32).await.unwrap();
    let fresh = store
        .add_one_time_keys(SIGNER, 1_000, &[key(&phone, "k1", "new")])
        .await
        .unwrap();
    assert_eq!(fresh.inserted, 1);
    assert!(store.delete_key_device(&app, &user, "PHONE").await.unwrap());
    assert!(matches!(
        store.add_one_time_keys(SIGNER, 1_000, &batch).await,
        Err(Error::NotFound(_))
    ));
}

async fn concurrent_claims_each_get_a_different_key(store: &dyn Store) {
    let (app, user) = (unique("app"), unique("user"));
    let phone = device(&app, &user, "PHONE", "one");
    store.register_key_device(&phone, 32).await.unwrap();
    let keys: Vec<StoredKey> = (0..200)
        .map(|n| key(&phone, &format!("k{n:03}"), &n.to_string()))
        .collect();
    for batch in keys.chunks(100) {
        store.add_one_time_keys(SIGNER, 1_000, batch).await.unwrap();
    }
    let claims = (0..220).map(|_| store.claim_one_time_key(&app, &user, "PHONE", "signed_curve25519"));
    let claimed: Vec<String> = join_all(claims)
        .await
        .into_iter()
        .filter_map(|claim| claim.unwrap().map(|key| key.key_id))
        .collect();
    let distinct: HashSet<&String> = claimed.iter().collect();
    assert_eq!(
        claimed.len(),
        200,
        "every key handed out, and 20 claims found the pool empty"
    );
    assert_eq!(distinct.len(), 200, "no key handed out twice");
}

async fn fallback_keys_are_replaced_and_erasure_removes_everything(store: &dyn Store) {
    let (app, user) = (unique("app"), unique("user"));
    let phone = device(&app, &user, "PHONE", "one");
    let tablet = device(&app, &user, "TABLET", "two");
    let kept = device(&app, &unique("user"), "PHONE", "three");
    for device in [&phone, &tablet, &kept] {
        store.register_key_device(device, 32).await.unwrap();
        store
            .add_one_time_keys(SIGNER, 1_000, &[key(device, "k1", "a")])
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .find_fallback_key(&app, &user, "PHONE", "signed_curve25519")
            .await
            .unwrap(),
        None
    );
    store.put_fallback_key(SIGNER, &key(&phone, "f1", "old")).await.unwrap();
    store.put_fallback_key(SIGNER, &key(&phone, "f2", "new")).await.unwrap();
    store.put_fallback_key(SIGNER, &key(&kept, "f1", "kept")).await.unwrap();
    let fallback = store
        .find_fallback_key(&app, &user, "PHONE", "signed_curve25519")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (fallback.key_id.as_str(), fallback.object_json.as_str()),
        ("f2", r#"{"key":"new"}"#)
    );
    // Two devices, two one-time keys and one fallback key.
    assert_eq!(store.delete_user_keys(&app, &user).await.unwrap(), 5);
    assert!(store
        .key_devices(&app, std::slice::from_ref(&user))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_one_time_keys(&app, &user, "PHONE").await.unwrap(), 0);
    let gone = store.find_fallback_key(&app, &user, "PHONE", "signed_curve25519").await;
    assert_eq!(gone.unwrap(), None);
    // The other user's keys stay.
    assert_eq!(
        store.count_one_time_keys(&app, &kept.user_id, "PHONE").await.unwrap(),
        1
    );
    let other = store
        .find_fallback_key(&app, &kept.user_id, "PHONE", "signed_curve25519")
        .await;
    assert!(other.unwrap().is_some());
}
