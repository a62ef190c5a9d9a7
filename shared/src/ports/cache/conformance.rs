//! One test body for every driver of the cache port (in-memory in unit tests, Redis in `tests/`).

use super::{
    Cache, Claim, ClaimResult, ClaimState, EntryAroundSeq, RecentSlice, SendClaim, SendKey, SendRequest, RECENT_BYTES,
    RECENT_MESSAGES,
};
use futures_util::future::join_all;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn send<'a>(app_id: &'a str, conversation_id: &'a str, sender_id: &'a str, client_msg_id: &'a str) -> SendKey<'a> {
    SendKey {
        app_id,
        conversation_id,
        sender_id,
        client_msg_id,
    }
}

fn claimed(result: ClaimResult) -> Claim {
    match result {
        ClaimResult::Claimed(claim) => claim,
        ClaimResult::CounterMissing => panic!("the counter should exist"),
    }
}

/// Runs the cache conformance checks on `cache`: sequences and claims, memberships, the recent window, presence
/// and the moderation gate. Panics at the first behaviour that differs.
pub async fn run(cache: &dyn Cache) {
    sequences_need_a_counter_and_start_after_the_floor(cache).await;
    claims_are_idempotent_and_remember_their_state(cache).await;
    concurrent_claims_get_distinct_gap_free_seqs(cache).await;
    claims_say_whether_the_mirrored_reservation_covers_them(cache).await;
    sends_check_membership_and_fill_the_window_in_their_claim(cache).await;
    memberships_are_cached(cache).await;
    recent_messages_keep_the_newest_by_seq(cache).await;
    presence_follows_live_connections(cache).await;
    gates_follow_mirrored_restrictions_and_rate_limits(cache).await;
    a_gated_send_claims_only_what_the_gate_allows(cache).await;
    resume_records_are_kept_per_app_until_they_expire(cache).await;
}

async fn resume_records_are_kept_per_app_until_they_expire(cache: &dyn Cache) {
    let app = format!("app-{}", uuid::Uuid::new_v4().simple());
    let pid = uuid::Uuid::new_v4().simple().to_string();
    let long = std::time::Duration::from_secs(60);
    assert_eq!(cache.load_resume(&app, &pid).await.unwrap(), None);
    cache.save_resume(&app, &pid, r#"{"v":1}"#, long).await.unwrap();
    cache.save_resume(&app, &pid, r#"{"v":2}"#, long).await.unwrap();
    assert_eq!(
        cache.load_resume(&app, &pid).await.unwrap().as_deref(),
        Some(r#"{"v":2}"#),
        "a save replaces the record"
    );
    assert_eq!(
        cache.load_resume("another-app", &pid).await.unwrap(),
        None,
        "records are scoped to their app"
    );
    cache
        .save_resume(&app, &pid, r#"{"v":3}"#, std::time::Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(cache.load_resume(&app, &pid).await.unwrap(), None, "expired");
}

async fn sequences_need_a_counter_and_start_after_the_floor(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    assert_eq!(cache.current_seq(&app, &conversation).await.unwrap(), None);
    let missing = cache
        .claim_message(send(&app, &conversation, "u", "c1"), "m1")
        .await
        .unwrap();
    assert!(matches!(missing, ClaimResult::CounterMissing));
    cache.ensure_sequence(&app, &conversation, 41).await.unwrap();
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    assert_eq!(
        cache.current_seq(&app, &conversation).await.unwrap(),
        Some(41),
        "an existing counter is kept"
    );
    let claim = claimed(
        cache
            .claim_message(send(&app, &conversation, "u", "c1"), "m1")
            .await
            .unwrap(),
    );
    assert_eq!((claim.seq, claim.is_new, claim.state), (42, true, ClaimState::Pending));
}

async fn claims_say_whether_the_mirrored_reservation_covers_them(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    let claim = |id: &'static str| {
        let (app, conversation) = (app.clone(), conversation.clone());
        async move {
            claimed(
                cache
                    .claim_message(send(&app, &conversation, "u", id), id)
                    .await
                    .unwrap(),
            )
        }
    };
    let first = claim("c1").await;
    assert_eq!((first.seq, first.reserved), (1, false), "nothing reserved yet");
    cache.mirror_reservation(&app, &conversation, 2).await.unwrap();
    cache.mirror_reservation(&app, &conversation, 1).await.unwrap();
    assert!(claim("c1").await.reserved, "a retried claim sees the raised mirror");
    assert_eq!((claim("c2").await.seq, claim("c2").await.reserved), (2, true));
    let third = claim("c3").await;
    assert_eq!(
        (third.seq, third.reserved),
        (3, false),
        "the mirror is never lowered, nor passed"
    );
}

async fn claim_send(cache: &dyn Cache, request: SendRequest<'_>) -> SendClaim {
    cache.claim_send(request).await.unwrap()
}

async fn sends_check_membership_and_fill_the_window_in_their_claim(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let entry = EntryAroundSeq {
        head: r#"{"seq":"#,
        tail: r#","text":"hi | there"}"#,
    };
    let request = |sender: &'static str, client_msg_id: &'static str, check_member: bool| SendRequest {
        key: SendKey {
            app_id: &app,
            conversation_id: &conversation,
            sender_id: sender,
            client_msg_id,
        },
        message_id: client_msg_id,
        check_member,
        entry,
        gate: None,
    };
    assert!(matches!(
        claim_send(cache, request("u", "c1", true)).await,
        SendClaim::MembersNotCached
    ));
    assert!(
        matches!(
            claim_send(cache, request("u", "c1", false)).await,
            SendClaim::CounterMissing
        ),
        "unchecked, the missing counter is what stops it"
    );
    cache
        .cache_members(&app, &conversation, &["u".to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        claim_send(cache, request("v", "c1", true)).await,
        SendClaim::NotMember
    ));
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    let SendClaim::Claimed {
        claim: first,
        remembered,
    } = claim_send(cache, request("u", "c1", true)).await
    else {
        panic!("a member's send is claimed");
    };
    assert_eq!(
        (first.seq, first.is_new, first.reserved, remembered),
        (1, true, false, false)
    );
    assert_eq!(
        cache.recent_after(&app, &conversation, 0).await.unwrap(),
        [],
        "an unreserved seq is not remembered: the sender reserves it first"
    );
    cache.mirror_reservation(&app, &conversation, 10).await.unwrap();
    let SendClaim::Claimed {
        claim: retry,
        remembered,
    } = claim_send(cache, request("u", "c1", true)).await
    else {
        panic!("a retry is claimed");
    };
    assert_eq!(
        (retry.seq, retry.is_new, retry.reserved, remembered),
        (1, false, true, false)
    );
    let SendClaim::Claimed {
        claim: second,
        remembered,
    } = claim_send(cache, request("u", "c2", true)).await
    else {
        panic!("a second send is claimed");
    };
    assert_eq!((second.seq, second.is_new, remembered), (2, true, true));
    assert_eq!(
        cache.recent_after(&app, &conversation, 0).await.unwrap(),
        [(2, r#"{"seq":2,"text":"hi | there"}"#.to_owned())],
        "the new reserved claim wrote its window entry with its seq"
    );
    assert!(
        matches!(claim_send(cache, request("v", "c3", true)).await, SendClaim::NotMember),
        "a refused sender claims nothing"
    );
    assert_eq!(cache.current_seq(&app, &conversation).await.unwrap(), Some(2));
}

async fn claims_are_idempotent_and_remember_their_state(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    let first = claimed(
        cache
            .claim_message(send(&app, &conversation, "u", "c1"), "m1")
            .await
            .unwrap(),
    );
    let retry = claimed(
        cache
            .claim_message(send(&app, &conversation, "u", "c1"), "m-other")
            .await
            .unwrap(),
    );
    assert_eq!(
        (retry.message_id.as_str(), retry.seq, retry.is_new),
        ("m1", first.seq, false)
    );
    cache
        .set_claim_state(send(&app, &conversation, "u", "c1"), &first, ClaimState::Published)
        .await
        .unwrap();
    let after = claimed(
        cache
            .claim_message(send(&app, &conversation, "u", "c1"), "m-third")
            .await
            .unwrap(),
    );
    assert_eq!((after.state, after.seq), (ClaimState::Published, first.seq));
    // The same client_msg_id from another sender is another message.
    let other_sender = claimed(
        cache
            .claim_message(send(&app, &conversation, "v", "c1"), "m2")
            .await
            .unwrap(),
    );
    assert_eq!((other_sender.seq, other_sender.is_new), (first.seq + 1, true));
}

async fn concurrent_claims_get_distinct_gap_free_seqs(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    let (app, conversation) = (&app, &conversation);
    let claims = join_all((0..50).map(|i| async move {
        let client_msg_id = format!("c{}", i % 25); // every id is sent twice
        claimed(
            cache
                .claim_message(send(app, conversation, "u", &client_msg_id), &format!("m{i}"))
                .await
                .unwrap(),
        )
    }))
    .await;
    let mut seqs: Vec<i64> = claims.iter().filter(|c| c.is_new).map(|c| c.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=25).collect::<Vec<_>>());
    assert_eq!(cache.current_seq(app, conversation).await.unwrap(), Some(25));
}

async fn memberships_are_cached(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    assert_eq!(cache.cached_members(&app, &conversation).await.unwrap(), None);
    let members = vec!["a".to_owned(), "b".to_owned()];
    cache.cache_members(&app, &conversation, &members).await.unwrap();
    let mut cached = cache.cached_members(&app, &conversation).await.unwrap().unwrap();
    cached.sort();
    assert_eq!(cached, members);
    cache
        .cache_members(&app, &conversation, &["c".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        cache.cached_members(&app, &conversation).await.unwrap(),
        Some(vec!["c".to_owned()])
    );
    assert_eq!(
        cache.cached_members(&unique("other"), &conversation).await.unwrap(),
        None
    );
    assert_eq!(cache.is_member(&app, &conversation, "c").await.unwrap(), Some(true));
    assert_eq!(cache.is_member(&app, &conversation, "a").await.unwrap(), Some(false));
    assert_eq!(cache.is_member(&app, &unique("uncached"), "c").await.unwrap(), None);
    assert_eq!(cache.cached_conversation(&app, &conversation).await.unwrap(), None);
    cache
        .cache_conversation(&app, &conversation, r#"{"v":1}"#)
        .await
        .unwrap();
    cache
        .cache_conversation(&app, &conversation, r#"{"v":2}"#)
        .await
        .unwrap();
    assert_eq!(
        cache.cached_conversation(&app, &conversation).await.unwrap().as_deref(),
        Some(r#"{"v":2}"#),
        "a change replaces the cached conversation"
    );
    assert_eq!(
        cache
            .cached_conversation(&unique("other"), &conversation)
            .await
            .unwrap(),
        None
    );
    cache.cache_members(&app, &conversation, &[]).await.unwrap();
    assert_eq!(
        cache.cached_members(&app, &conversation).await.unwrap(),
        None,
        "an emptied conversation is no longer cached"
    );
    cache
        .cache_members(&app, &conversation, &["a".to_owned()])
        .await
        .unwrap();
    cache.forget_conversation(&app, &conversation).await.unwrap();
    assert_eq!(
        cache.cached_members(&app, &conversation).await.unwrap(),
        None,
        "forgotten"
    );
    assert_eq!(cache.cached_conversation(&app, &conversation).await.unwrap(), None);
    cache.forget_conversation(&app, &conversation).await.unwrap();
}

fn seqs_of(entries: &[(i64, String)]) -> Vec<i64> {
    entries.iter().map(|(seq, _)| *seq).collect()
}

async fn recent_messages_keep_the_newest_by_seq(cache: &dyn Cache) {
    let (app, conversation) = (unique("app"), unique("conv"));
    assert!(cache.recent_after(&app, &conversation, 0).await.unwrap().is_empty());
    for seq in [3, 1, 2] {
        cache
            .remember_recent(&app, &conversation, seq, &format!("first {seq}"))
            .await
            .unwrap();
    }
    // A republished message (same seq) replaces its earlier payload instead of appearing twice.
    cache.remember_recent(&app, &conversation, 2, "second 2").await.unwrap();
    assert_eq!(
        cache.recent_after(&app, &conversation, 1).await.unwrap(),
        [(2, "second 2".to_owned()), (3, "first 3".to_owned())]
    );
    assert!(cache
        .recent_after(&unique("other"), &conversation, 0)
        .await
        .unwrap()
        .is_empty());

    let total = RECENT_MESSAGES as i64 + 5;
    for seq in 4..=total {
        cache.remember_recent(&app, &conversation, seq, "x").await.unwrap();
    }
    let kept = cache.recent_after(&app, &conversation, 0).await.unwrap();
    assert_eq!(kept.len(), RECENT_MESSAGES, "only the newest are kept");
    assert_eq!(kept.first().unwrap().0, total - RECENT_MESSAGES as i64 + 1);
    assert_eq!(kept.last().unwrap().0, total);

    // The window is bounded by bytes as well: the oldest go first, the newest always stays.
    let big = unique("conv");
    let near_a_mebibyte = "m".repeat((1 << 20) - 100);
    for seq in 1..=6 {
        cache.remember_recent(&app, &big, seq, &near_a_mebibyte).await.unwrap();
    }
    let kept = cache.recent_after(&app, &big, 0).await.unwrap();
    assert_eq!(seqs_of(&kept), [3, 4, 5, 6], "{RECENT_BYTES} bytes hold four");
    cache
        .remember_recent(&app, &big, 7, &"h".repeat(RECENT_BYTES + 10))
        .await
        .unwrap();
    assert_eq!(seqs_of(&cache.recent_after(&app, &big, 0).await.unwrap()), [7]);
    for seq in 8..=9 {
        cache.remember_recent(&app, &big, seq, "small").await.unwrap();
    }
    assert_eq!(seqs_of(&cache.recent_after(&app, &big, 0).await.unwrap()), [8, 9]);

    // Slices read only what they ask for.
    let seqs = |entries: Vec<(i64, String)>| entries.into_iter().map(|(seq, _)| seq).collect::<Vec<_>>();
    let slice = |after_seq, before_seq, limit, newest| RecentSlice {
        after_seq,
        before_seq,
        limit,
        newest,
    };
    let read = |s: RecentSlice| cache.recent_in(&app, &conversation, s);
    assert_eq!(seqs(read(RecentSlice::at(500)).await.unwrap()), [500]);
    assert_eq!(seqs(read(slice(100, None, 3, false)).await.unwrap()), [101, 102, 103]);
    assert_eq!(
        seqs(read(slice(0, Some(104), 2, true)).await.unwrap()),
        [102, 103],
        "the newest below"
    );
    assert_eq!(
        seqs(read(slice(total - 2, None, 10, true)).await.unwrap()),
        [total - 1, total]
    );
    assert!(read(slice(5, Some(6), 10, false)).await.unwrap().is_empty());
}

async fn presence_follows_live_connections(cache: &dyn Cache) {
    let (app, ann, bob) = (unique("app"), unique("ann"), unique("bob"));
    let users = [ann.clone(), bob.clone()];
    assert_eq!(cache.online(&app, &users).await.unwrap(), [false, false]);
    cache.presence_touch(&app, &ann, "node1:1").await.unwrap();
    cache.presence_touch(&app, &ann, "node2:7").await.unwrap();
    assert_eq!(cache.online(&app, &users).await.unwrap(), [true, false]);
    assert_eq!(cache.online(&unique("app"), &users).await.unwrap(), [false, false]);
    assert!(
        cache.presence_drop(&app, &ann, "node1:1").await.unwrap(),
        "still on node 2"
    );
    assert!(!cache.presence_drop(&app, &ann, "node2:7").await.unwrap());
    assert_eq!(cache.online(&app, &users).await.unwrap(), [false, false]);
    let holder = |user: &str, holder: &str| super::PresenceHolder {
        app_id: app.clone(),
        user_id: user.to_owned(),
        holder: holder.to_owned(),
    };
    cache.presence_renew(&[]).await.unwrap();
    cache
        .presence_renew(&[
            holder(&ann, "node1:2"),
            holder(&bob, "node1:3"),
            holder(&bob, "node1:4"),
        ])
        .await
        .unwrap();
    assert_eq!(
        cache.online(&app, &users).await.unwrap(),
        [true, true],
        "renewed in one call"
    );
    assert!(
        cache.presence_drop(&app, &bob, "node1:3").await.unwrap(),
        "bob's other connection"
    );
    assert!(!cache.presence_drop(&app, &ann, "node1:2").await.unwrap());
}

/// The gate asked inside the claim (one script on a single Redis, two calls on a cluster): a send it
/// refuses, or cannot answer, claims nothing and counts nothing; one it allows is counted once.
async fn a_gated_send_claims_only_what_the_gate_allows(cache: &dyn Cache) {
    use crate::domain::model::{RateLimits, RestrictionKind};
    use crate::domain::moderation::{restriction_field, GateCheck, RateScope, SendGate};
    let (app, conversation) = (unique("app"), unique("conv"));
    let one_per_second = RateLimits {
        user_messages_per_second: 1,
        app_messages_per_second: 0,
    };
    let check = |user| GateCheck {
        now_ms: 7_000_100,
        ..GateCheck::send(&app, user, &conversation, &one_per_second)
    };
    let (ann, bob) = (check("ann"), check("bob"));
    cache.ensure_sequence(&app, &conversation, 0).await.unwrap();
    assert_eq!(
        claim_gated(cache, &ann, "a1").await,
        Err(SendGate::Unloaded),
        "no mirror: nothing claimed"
    );
    let mute = restriction_field(RestrictionKind::Mute, "bob", Some(&conversation));
    let version = cache.restrictions_version(&app).await.unwrap();
    assert!(cache.mirror_restrictions(&app, &[(mute, 0)], version).await.unwrap());
    assert!(matches!(
        claim_gated(cache, &bob, "b1").await,
        Err(SendGate::Restricted {
            kind: RestrictionKind::Mute,
            ..
        })
    ));
    assert_eq!(claim_gated(cache, &ann, "a1").await, Ok(1));
    assert_eq!(
        claim_gated(cache, &ann, "a2").await,
        Err(SendGate::RateLimited {
            scope: RateScope::User,
            retry_after_ms: 900
        }),
        "the first send was counted once"
    );
    assert_eq!(
        cache.current_seq(&app, &conversation).await.unwrap(),
        Some(1),
        "refused sends took no seq"
    );
}

/// The seq `gate`'s user got for a send into `gate`'s conversation, or the gate's verdict.
async fn claim_gated(
    cache: &dyn Cache,
    gate: &crate::domain::moderation::GateCheck<'_>,
    client_msg_id: &str,
) -> std::result::Result<i64, crate::domain::moderation::SendGate> {
    let conversation_id = gate
        .refused_by
        .iter()
        .find_map(|(_, c)| *c)
        .expect("a send's check names its conversation");
    let request = SendRequest {
        key: SendKey {
            app_id: gate.app_id,
            conversation_id,
            sender_id: gate.user_id,
            client_msg_id,
        },
        message_id: client_msg_id,
        check_member: false,
        entry: EntryAroundSeq { head: "", tail: "" },
        gate: Some(gate),
    };
    match claim_send(cache, request).await {
        SendClaim::Claimed { claim, .. } => Ok(claim.seq),
        SendClaim::Gated(verdict) => Err(verdict),
        other => panic!("neither claimed nor gated: {other:?}"),
    }
}

async fn gates_follow_mirrored_restrictions_and_rate_limits(cache: &dyn Cache) {
    use crate::domain::model::{RateLimits, RestrictionKind};
    use crate::domain::moderation::{restriction_field, GateCheck, RateScope, SendGate};
    let (app, ann, bob) = (unique("app"), unique("ann"), unique("bob"));
    let unlimited = RateLimits {
        user_messages_per_second: 0,
        app_messages_per_second: 0,
    };
    assert_eq!(
        cache.gate(&GateCheck::connect(&app, &ann)).await.unwrap(),
        SendGate::Unloaded
    );
    let past = crate::now_ms() - 1;
    let conversation_mute = restriction_field(RestrictionKind::Mute, &ann, Some("c1"));
    let expired_ban = restriction_field(RestrictionKind::Ban, &bob, None);
    // A reload that read the store before a change was counted is refused: its entries may lack it.
    let version = cache.restrictions_version(&app).await.unwrap();
    let late_mute = restriction_field(RestrictionKind::Mute, &ann, None);
    cache.mirror_restriction(&app, &late_mute, Some(0)).await.unwrap();
    assert!(!cache.mirror_restrictions(&app, &[], version).await.unwrap());
    assert_eq!(
        cache.gate(&GateCheck::connect(&app, &ann)).await.unwrap(),
        SendGate::Unloaded,
        "a refused reload leaves the mirror unloaded"
    );
    cache.mirror_restriction(&app, &late_mute, None).await.unwrap();
    let version = cache.restrictions_version(&app).await.unwrap();
    assert!(cache
        .mirror_restrictions(&app, &[(conversation_mute, 0), (expired_ban, past)], version)
        .await
        .unwrap());
    assert_eq!(
        cache.gate(&GateCheck::connect(&app, &ann)).await.unwrap(),
        SendGate::Allowed
    );
    assert_eq!(
        cache
            .gate(&GateCheck::send(&app, &ann, "c1", &unlimited))
            .await
            .unwrap(),
        SendGate::Restricted {
            kind: RestrictionKind::Mute,
            conversation_wide: true,
            expires_at: None
        }
    );
    assert_eq!(
        cache
            .gate(&GateCheck::send(&app, &ann, "c2", &unlimited))
            .await
            .unwrap(),
        SendGate::Allowed
    );
    assert_eq!(
        cache.gate(&GateCheck::connect(&app, &bob)).await.unwrap(),
        SendGate::Allowed,
        "an expired ban is not in force"
    );
    let ban = restriction_field(RestrictionKind::Ban, &bob, None);
    cache.mirror_restriction(&app, &ban, Some(0)).await.unwrap();
    assert!(matches!(
        cache.gate(&GateCheck::connect(&app, &bob)).await.unwrap(),
        SendGate::Restricted {
            kind: RestrictionKind::Ban,
            conversation_wide: false,
            ..
        }
    ));
    cache.mirror_restriction(&app, &ban, None).await.unwrap();
    assert_eq!(
        cache.gate(&GateCheck::connect(&app, &bob)).await.unwrap(),
        SendGate::Allowed
    );

    let two_per_second = RateLimits {
        user_messages_per_second: 2,
        app_messages_per_second: 0,
    };
    let mut check = GateCheck::send(&app, &bob, "c1", &two_per_second);
    check.now_ms = 5_000_100;
    for _ in 0..2 {
        assert_eq!(cache.gate(&check).await.unwrap(), SendGate::Allowed);
    }
    assert_eq!(
        cache.gate(&check).await.unwrap(),
        SendGate::RateLimited {
            scope: RateScope::User,
            retry_after_ms: 900
        }
    );
    check.now_ms = 5_001_000;
    assert_eq!(cache.gate(&check).await.unwrap(), SendGate::Allowed, "a new second");
}
