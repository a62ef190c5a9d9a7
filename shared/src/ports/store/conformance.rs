//! One test body for every driver of the store port. The in-memory driver runs it in unit tests; the
//! MongoDB driver runs it against the real server in `tests/`. Each run uses fresh random ids, so it can
//! share a database with other runs.

use super::{SeqRange, Store};
use crate::domain::model::{
    App, AppSettings, Attachment, AttachmentStatus, Conversation, ConversationKind, ConversationSummary, Member,
    Message, Reaction, Role, Session, User,
};
use crate::Error;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn user(app_id: &str, external_id: &str, display_name: Option<&str>) -> User {
    User {
        id: unique("user"),
        app_id: app_id.to_owned(),
        external_id: external_id.to_owned(),
        display_name: display_name.map(str::to_owned),
        created_at: 1,
        correlation_id: "conformance".into(),
    }
}

fn message(app_id: &str, conversation_id: &str, id: &str, seq: i64) -> Message {
    Message {
        id: id.to_owned(),
        app_id: app_id.to_owned(),
        conversation_id: conversation_id.to_owned(),
        seq,
        sender_id: "sender".into(),
        client_msg_id: format!("client-{seq}"),
        text: format!("text {seq}"),
        reply_to: None,
        created_at: 1,
        correlation_id: format!("corr-{seq}"),
        ..Default::default()
    }
}

/// Runs every check; panics on the first behaviour that differs from the contract.
pub async fn run(store: &dyn Store) {
    apps_are_unique(store).await;
    users_are_unique_per_app_and_external_id(store).await;
    conversations_are_created_once_and_scoped_to_their_app(store).await;
    message_inserts_are_idempotent(store).await;
    unread_counts_what_a_member_sees(store).await;
    message_pages_follow_the_range(store).await;
    revisions_converge_whatever_the_order(store).await;
    reactions_converge_and_count_per_emoji(store).await;
    replies_are_counted_and_listed_per_parent(store).await;
    memberships_change_and_reads_only_move_forward(store).await;
    summaries_keep_the_newest_message(store).await;
    attachments_complete_once_and_link_to_their_first_message(store).await;
    sessions_extend_until_revoked_and_stay_in_their_app(store).await;
    sessions_are_recorded_in_bulk(store).await;
    seq_reservations_only_rise_and_remember_uncertain_spans(store).await;
    super::conformance_keys::run(store).await;
    super::conformance_webhooks::run(store).await;
}

async fn seq_reservations_only_rise_and_remember_uncertain_spans(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let fresh = store.seq_reservation(&app, &conversation).await.unwrap();
    assert_eq!((fresh.reserved_through, fresh.uncertain.len()), (0, 0));
    assert_eq!(store.reserve_seqs(&app, &conversation, 1000).await.unwrap(), 1000);
    assert_eq!(
        store.reserve_seqs(&app, &conversation, 500).await.unwrap(),
        1000,
        "never lowered"
    );
    assert_eq!(store.reserve_seqs(&app, &conversation, 2000).await.unwrap(), 2000);
    let span = crate::domain::model::SeqSpan {
        after: 40,
        through: 2000,
    };
    store.mark_uncertain(&app, &conversation, span).await.unwrap();
    store.mark_uncertain(&app, &conversation, span).await.unwrap();
    let reservation = store.seq_reservation(&app, &conversation).await.unwrap();
    assert_eq!(reservation.reserved_through, 2000);
    assert_eq!(reservation.uncertain, [span], "marking is idempotent");
    assert!(reservation.may_be_void(41) && reservation.may_be_void(2000) && !reservation.may_be_void(40));
    let elsewhere = store.seq_reservation(&unique("app"), &conversation).await.unwrap();
    assert_eq!(elsewhere.reserved_through, 0, "scoped to the app");
}

async fn sessions_are_recorded_in_bulk(store: &dyn Store) {
    let app_id = unique("app");
    let session = |id: &str, user_id: &str, created_at: i64| Session {
        id: id.to_owned(),
        app_id: app_id.clone(),
        user_id: user_id.to_owned(),
        created_at,
        expires_at: 100,
        revoked_at: None,
        correlation_id: "conformance".into(),
    };
    let (ann, bob) = (unique("ann"), unique("bob"));
    let (ann_phone, bob_phone, bob_tv) = (unique("phone"), unique("phone"), unique("tv"));
    store.insert_sessions(&[]).await.unwrap();
    store
        .insert_sessions(&[session(&ann_phone, &ann, 1), session(&bob_phone, &bob, 2)])
        .await
        .unwrap();
    assert!(
        matches!(
            store
                .insert_sessions(&[session(&bob_phone, &bob, 3), session(&bob_tv, &bob, 4)])
                .await,
            Err(Error::Conflict(_))
        ),
        "a batch holding a recorded session id is a conflict"
    );
    let mut stored = Vec::new();
    for id in [&ann_phone, &bob_phone, &bob_tv] {
        stored.push(store.find_session(&app_id, id).await.unwrap().unwrap());
    }
    assert_eq!(stored[0].user_id, ann);
    assert_eq!(stored[1].created_at, 2, "the recorded session is kept as it was");
    assert_eq!(stored[2].created_at, 4, "the rest of the batch is written");
}

async fn sessions_extend_until_revoked_and_stay_in_their_app(store: &dyn Store) {
    let (app_id, user_id) = (unique("app"), unique("user"));
    let session = |id: &str, created_at: i64| Session {
        id: id.to_owned(),
        app_id: app_id.clone(),
        user_id: user_id.clone(),
        created_at,
        expires_at: 100,
        revoked_at: None,
        correlation_id: "conformance".into(),
    };
    let (phone, laptop, tablet) = (unique("phone"), unique("laptop"), unique("tablet"));
    for (i, id) in [&phone, &laptop, &tablet].into_iter().enumerate() {
        store.insert_session(&session(id, i as i64)).await.unwrap();
    }
    assert!(matches!(
        store.insert_session(&session(&phone, 9)).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.find_session("other-app", &phone).await.unwrap(), None);
    let asked = [phone.clone(), unique("never-recorded"), tablet.clone()];
    let mut found: Vec<String> = store
        .find_sessions(&app_id, &asked)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    found.sort();
    let mut expected = vec![phone.clone(), tablet.clone()];
    expected.sort();
    assert_eq!(found, expected, "the recorded ones, and only those");
    assert!(store.find_sessions("other-app", &asked).await.unwrap().is_empty());
    let extended = store.extend_session(&app_id, &phone, 200).await.unwrap().unwrap();
    assert_eq!(extended.expires_at, 200);

    let revoked = store.revoke_sessions(&app_id, &user_id, Some(&phone), 7).await.unwrap();
    assert_eq!(revoked, vec![extended]);
    assert_eq!(
        store.extend_session(&app_id, &phone, 300).await.unwrap(),
        None,
        "a revoked session stays revoked"
    );
    let stored = store.find_session(&app_id, &phone).await.unwrap().unwrap();
    assert_eq!((stored.revoked_at, stored.expires_at), (Some(7), 200));
    assert!(store
        .revoke_sessions("other-app", &user_id, None, 8)
        .await
        .unwrap()
        .is_empty());

    let rest = store.revoke_sessions(&app_id, &user_id, None, 8).await.unwrap();
    let rest_ids: Vec<&str> = rest.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(rest_ids, vec![laptop.as_str(), tablet.as_str()]);
    let listed = store.list_sessions(&app_id, &user_id).await.unwrap();
    let listed: Vec<(&str, Option<i64>)> = listed.iter().map(|s| (s.id.as_str(), s.revoked_at)).collect();
    assert_eq!(
        listed,
        vec![
            (phone.as_str(), Some(7)),
            (laptop.as_str(), Some(8)),
            (tablet.as_str(), Some(8))
        ]
    );

    // Ending every session of the app reaches every user's unrevoked sessions, and only this app's.
    let (other_user, other_app) = (unique("user"), unique("app"));
    let desk = Session {
        user_id: other_user.clone(),
        ..session(&unique("desk"), 5)
    };
    let elsewhere = Session {
        app_id: other_app.clone(),
        ..session(&unique("phone"), 5)
    };
    for fresh in [&desk, &elsewhere] {
        store.insert_session(fresh).await.unwrap();
    }
    assert_eq!(
        store.revoke_app_sessions(&app_id, 9).await.unwrap(),
        1,
        "only the unrevoked one"
    );
    let desk_now = store.find_session(&app_id, &desk.id).await.unwrap().unwrap();
    assert_eq!(desk_now.revoked_at, Some(9));
    let phone_now = store.find_session(&app_id, &phone).await.unwrap().unwrap();
    assert_eq!(phone_now.revoked_at, Some(7), "an earlier revocation is kept");
    let untouched = store.find_session(&other_app, &elsewhere.id).await.unwrap().unwrap();
    assert_eq!(untouched.revoked_at, None);
    assert_eq!(store.revoke_app_sessions(&app_id, 10).await.unwrap(), 0);
}

async fn apps_are_unique(store: &dyn Store) {
    let app = App::new(unique("app"), "conformance".into(), "hash".into(), 1, "c".into());
    store.insert_app(&app).await.unwrap();
    assert_eq!(store.find_app(&app.id).await.unwrap(), Some(app.clone()));
    assert!(matches!(store.insert_app(&app).await, Err(Error::Conflict(_))));
    assert_eq!(store.find_app(&unique("missing")).await.unwrap(), None);

    let mut settings = AppSettings::default();
    settings.media.max_upload_bytes = 7;
    settings.media.allowed_content_types = vec!["image/png".into()];
    let updated = store.update_app_settings(&app.id, &settings).await.unwrap();
    assert_eq!(updated.settings, settings);
    assert_eq!(store.find_app(&app.id).await.unwrap().unwrap().settings, settings);
    assert!(matches!(
        store.update_app_settings(&unique("missing"), &settings).await,
        Err(Error::NotFound(_))
    ));
}

async fn users_are_unique_per_app_and_external_id(store: &dyn Store) {
    let (app_a, app_b) = (unique("app"), unique("app"));
    let first = store.upsert_user(&user(&app_a, "alice", None)).await.unwrap();
    let again = store.upsert_user(&user(&app_a, "alice", Some("Alice"))).await.unwrap();
    assert_eq!(again.id, first.id, "same app and external id is the same user");
    assert_eq!(
        again.display_name.as_deref(),
        Some("Alice"),
        "a given display name is updated"
    );
    let unnamed = store.upsert_user(&user(&app_a, "alice", None)).await.unwrap();
    assert_eq!(
        unnamed.display_name.as_deref(),
        Some("Alice"),
        "no display name keeps the stored one"
    );
    let other_app = store.upsert_user(&user(&app_b, "alice", None)).await.unwrap();
    assert_ne!(other_app.id, first.id, "apps never share users");
    let found = store
        .find_users(&app_a, &[first.id.clone(), other_app.id.clone()])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        vec![first.id.as_str()]
    );
}

async fn conversations_are_created_once_and_scoped_to_their_app(store: &dyn Store) {
    let app = unique("app");
    let conversation = Conversation {
        id: unique("conv"),
        app_id: app.clone(),
        kind: ConversationKind::Direct,
        name: None,
        created_by: "a".into(),
        member_ids: vec!["a".into(), "b".into()],
        epoch: "e1".into(),
        created_at: 1,
        correlation_id: "c".into(),
    };
    let members: Vec<Member> = conversation
        .member_ids
        .iter()
        .map(|m| Member::new(&conversation, m, Role::Member))
        .collect();
    assert_eq!(
        store.create_conversation(&conversation, &members).await.unwrap(),
        conversation
    );
    let mut retry = conversation.clone();
    retry.epoch = "e2".into();
    let stored = store.create_conversation(&retry, &members).await.unwrap();
    assert_eq!(
        stored.epoch, "e1",
        "creating an existing conversation returns the stored one"
    );
    assert_eq!(
        store.find_conversation(&app, &conversation.id).await.unwrap(),
        Some(conversation.clone())
    );
    assert_eq!(
        store
            .find_conversation(&unique("other"), &conversation.id)
            .await
            .unwrap(),
        None
    );
    let member = store.find_member(&app, &conversation.id, "b").await.unwrap().unwrap();
    assert_eq!((member.user_id.as_str(), member.role), ("b", Role::Member));
    assert_eq!(store.find_member(&app, &conversation.id, "zed").await.unwrap(), None);
    assert_eq!(
        store
            .find_member(&unique("other"), &conversation.id, "b")
            .await
            .unwrap(),
        None
    );
    let mut hijack = conversation.clone();
    hijack.app_id = unique("other");
    assert!(matches!(
        store.create_conversation(&hijack, &[]).await,
        Err(Error::Conflict(_))
    ));
}

async fn message_inserts_are_idempotent(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    assert_eq!(store.max_seq(&app, &conversation).await.unwrap(), 0);
    let batch: Vec<Message> = (1..=5)
        .map(|seq| message(&app, &conversation, &unique("m"), seq))
        .collect();
    let first = store.insert_messages(&batch).await.unwrap();
    assert_eq!((first.inserted, first.duplicates), (5, 0));
    let again = store.insert_messages(&batch).await.unwrap();
    assert_eq!(
        (again.inserted, again.duplicates),
        (0, 5),
        "a redelivered batch inserts nothing"
    );
    // A different id on a taken seq is refused too: (app, conversation, seq) is unique.
    let clash = message(&app, &conversation, &unique("m"), 3);
    let fresh = message(&app, &conversation, &unique("m"), 6);
    // It is no duplicate but a conflict (a seq handed out twice): not stored, reported, kept once.
    let mixed = store.insert_messages(&[clash.clone(), fresh]).await.unwrap();
    assert_eq!((mixed.inserted, mixed.duplicates), (1, 0));
    assert_eq!(mixed.conflicts, std::slice::from_ref(&clash));
    let stored = store.list_messages(
        &app,
        &conversation,
        SeqRange {
            after_seq: Some(2),
            before_seq: Some(4),
            limit: 5,
        },
    );
    assert_ne!(
        stored.await.unwrap()[0].id,
        clash.id,
        "the stored message keeps its seq"
    );
    assert_eq!(store.keep_seq_conflicts(&mixed.conflicts).await.unwrap(), 1);
    assert_eq!(
        store.keep_seq_conflicts(&mixed.conflicts).await.unwrap(),
        0,
        "kept once"
    );
    assert_eq!(store.seq_conflicts(&app, 10).await.unwrap(), [clash]);
    assert!(store.seq_conflicts(&unique("other"), 10).await.unwrap().is_empty());
    assert_eq!(store.max_seq(&app, &conversation).await.unwrap(), 6);
    assert_eq!(store.max_seq(&unique("other"), &conversation).await.unwrap(), 0);
    assert_eq!(store.insert_messages(&[]).await.unwrap().inserted, 0);
}

async fn unread_counts_what_a_member_sees(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let by = |sender: &str, seq: i64| Message {
        sender_id: sender.into(),
        ..message(&app, &conversation, &unique("m"), seq)
    };
    let batch = [
        by("alice", 1),
        by("bob", 2),
        by("alice", 3),
        by("bob", 4),
        by("bob", 1010),
    ];
    store.insert_messages(&batch).await.unwrap();
    let unread = |user: &'static str, after: i64, cap: usize| {
        let (app, conversation) = (app.clone(), conversation.clone());
        async move { store.count_unread(&app, &conversation, user, after, cap).await.unwrap() }
    };
    assert_eq!(
        unread("alice", 0, 100).await,
        3,
        "others' messages only, gaps not counted"
    );
    assert_eq!(unread("bob", 0, 100).await, 2);
    assert_eq!(unread("alice", 2, 100).await, 2, "past the read horizon only");
    assert_eq!(unread("alice", 0, 2).await, 2, "counted up to the cap");
    assert_eq!(unread("carol", 1010, 100).await, 0);
    let mut deleted = batch[3].clone().into_tombstone(5, "corr-delete");
    deleted.version = 1;
    store.apply_message_revisions(&[deleted]).await.unwrap();
    assert_eq!(unread("alice", 0, 100).await, 2, "a deleted message is not unread");
    assert_eq!(
        store
            .count_unread(&unique("other"), &conversation, "alice", 0, 100)
            .await
            .unwrap(),
        0
    );
}

async fn message_pages_follow_the_range(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    // Inserted out of order, as concurrent batches may land.
    let mut batch: Vec<Message> = (1..=10)
        .map(|seq| message(&app, &conversation, &unique("m"), seq))
        .collect();
    batch.reverse();
    store.insert_messages(&batch).await.unwrap();
    store
        .insert_messages(&[message(&unique("app"), &conversation, &unique("m"), 11)])
        .await
        .unwrap();
    let (app, conversation) = (app.as_str(), conversation.as_str());
    let page = |after_seq, before_seq, limit| async move {
        let range = SeqRange {
            after_seq,
            before_seq,
            limit,
        };
        let messages = store.list_messages(app, conversation, range).await.unwrap();
        messages.iter().map(|m| m.seq).collect::<Vec<_>>()
    };
    assert_eq!(page(None, None, 3).await, [8, 9, 10], "latest page by default");
    assert_eq!(
        page(None, Some(8), 3).await,
        [5, 6, 7],
        "the page right before before_seq"
    );
    assert_eq!(
        page(Some(2), None, 3).await,
        [3, 4, 5],
        "the page right after after_seq"
    );
    assert_eq!(page(Some(2), Some(5), 10).await, [3, 4]);
    assert_eq!(page(Some(10), None, 10).await, Vec::<i64>::new());
    assert_eq!(
        page(None, None, 100).await,
        (1..=10).collect::<Vec<_>>(),
        "other apps excluded"
    );
}

fn revision(original: &Message, text: &str, version: i64) -> Message {
    Message {
        text: text.to_owned(),
        version,
        edited_at: Some(version),
        ..original.clone()
    }
}

async fn revisions_converge_whatever_the_order(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let original = message(&app, &conversation, &unique("m"), 1);
    let first_edit = revision(&original, "first edit", 10);
    let second_edit = revision(&original, "second edit", 20);
    let find = || store.find_message(&app, &conversation, &original.id);

    // The newest edit lands first, before the message itself; older states then change nothing.
    assert_eq!(
        store
            .apply_message_revisions(std::slice::from_ref(&second_edit))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_messages(std::slice::from_ref(&original))
            .await
            .unwrap()
            .duplicates,
        1
    );
    assert_eq!(
        store
            .apply_message_revisions(&[first_edit.clone(), second_edit.clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(find().await.unwrap(), Some(second_edit.clone()));

    let deleted = Message {
        text: String::new(),
        deleted_at: Some(30),
        version: 30,
        ..second_edit.clone()
    };
    assert_eq!(
        store
            .apply_message_revisions(std::slice::from_ref(&deleted))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .apply_message_revisions(&[first_edit, deleted.clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(find().await.unwrap(), Some(deleted));

    assert_eq!(
        store
            .find_message(&unique("app"), &conversation, &original.id)
            .await
            .unwrap(),
        None
    );
    let foreign = Message {
        app_id: unique("app"),
        ..revision(&original, "hijack", 99)
    };
    assert_eq!(
        store.apply_message_revisions(&[foreign]).await.unwrap_or(0),
        0,
        "another app cannot overwrite a message"
    );
    assert_eq!(find().await.unwrap().unwrap().version, 30);
}

async fn reactions_converge_and_count_per_emoji(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let (m1, m2) = (unique("m"), unique("m"));
    let reaction = |message_id: &str, user_id: &str, emoji: &str, active: bool, version: i64| Reaction {
        id: Reaction::id_for(message_id, user_id, emoji),
        app_id: app.clone(),
        conversation_id: conversation.clone(),
        message_id: message_id.to_owned(),
        user_id: user_id.to_owned(),
        emoji: emoji.to_owned(),
        active,
        version,
        correlation_id: "conformance".into(),
    };
    let added = reaction(&m1, "ann", "👍", true, 1);
    let removed = reaction(&m1, "ann", "👍", false, 2);
    // The removal lands first; the older add must not bring the reaction back.
    assert_eq!(store.apply_reactions(std::slice::from_ref(&removed)).await.unwrap(), 1);
    assert_eq!(store.apply_reactions(&[added, removed]).await.unwrap(), 0);
    let batch = [
        reaction(&m1, "bob", "👍", true, 3),
        reaction(&m1, "cid", "👍", true, 4),
        reaction(&m1, "cid", "🎉", true, 5),
        reaction(&m2, "ann", "🎉", true, 6),
    ];
    assert_eq!(store.apply_reactions(&batch).await.unwrap(), 4);
    assert_eq!(
        store.apply_reactions(&batch).await.unwrap(),
        0,
        "redelivery changes nothing"
    );
    let counts = store
        .reaction_counts(&app, &conversation, &[m1.clone(), m2.clone()], "cid")
        .await
        .unwrap();
    let summary = |id: &str| -> Vec<(String, usize, bool)> {
        counts[id].iter().map(|c| (c.emoji.clone(), c.count, c.mine)).collect()
    };
    assert_eq!(summary(&m1), [("👍".to_owned(), 2, true), ("🎉".to_owned(), 1, true)]);
    assert_eq!(summary(&m2), [("🎉".to_owned(), 1, false)]);
    let elsewhere = store
        .reaction_counts(&unique("app"), &conversation, &[m1], "cid")
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
}

async fn replies_are_counted_and_listed_per_parent(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let parent = message(&app, &conversation, &unique("m"), 1);
    let reply = |seq: i64, to: &str| Message {
        reply_to: Some(to.to_owned()),
        ..message(&app, &conversation, &unique("m"), seq)
    };
    let replies = [reply(2, &parent.id), reply(3, "other"), reply(4, &parent.id)];
    store.insert_messages(std::slice::from_ref(&parent)).await.unwrap();
    store.insert_messages(&replies).await.unwrap();
    let counts = store
        .reply_counts(&app, &conversation, &[parent.id.clone(), replies[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(counts.get(&parent.id), Some(&2));
    assert_eq!(counts.get(&replies[0].id), None);
    let listed = store
        .list_replies(&app, &conversation, &parent.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 4]);
    let next = store
        .list_replies(&app, &conversation, &parent.id, 2, 10)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [4],
        "paged on after seq 2"
    );
    assert!(store
        .list_replies(&unique("app"), &conversation, &parent.id, 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn memberships_change_and_reads_only_move_forward(store: &dyn Store) {
    let app = unique("app");
    let group = |id: String, created_at: i64| Conversation {
        id,
        app_id: app.clone(),
        kind: ConversationKind::Group,
        name: Some("team".into()),
        created_by: "owner".into(),
        member_ids: vec!["owner".into(), "ann".into()],
        epoch: "e".into(),
        created_at,
        correlation_id: "c".into(),
    };
    let (older, newer) = (group(unique("conv"), 1), group(unique("conv"), 2));
    for conversation in [&older, &newer] {
        let members = [
            Member::new(conversation, "owner", Role::Owner),
            Member::new(conversation, "ann", Role::Member),
        ];
        store.create_conversation(conversation, &members).await.unwrap();
    }
    let added = store
        .add_members(
            &app,
            &newer.id,
            &[
                Member::new(&newer, "bob", Role::Admin),
                Member::new(&newer, "ann", Role::Admin),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added.member_ids, ["owner", "ann", "bob"]);
    let roles: Vec<(String, Role)> = store
        .list_members(&app, &newer.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert!(
        roles.contains(&("ann".into(), Role::Member)),
        "an existing member keeps their role"
    );
    assert!(roles.contains(&("bob".into(), Role::Admin)));
    let removed = store.remove_member(&app, &newer.id, "ann").await.unwrap();
    assert_eq!(removed.member_ids, ["owner", "bob"]);
    assert_eq!(store.find_member(&app, &newer.id, "ann").await.unwrap(), None);
    assert_eq!(
        store
            .rename_conversation(&app, &newer.id, "renamed")
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("renamed")
    );
    assert!(matches!(
        store.rename_conversation(&unique("app"), &newer.id, "hijack").await,
        Err(Error::NotFound(_))
    ));

    let listed: Vec<String> = store
        .list_conversations(&app, "owner", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, [newer.id.clone(), older.id.clone()], "newest first");
    let anns: Vec<String> = store
        .list_conversations(&app, "ann", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(anns, std::slice::from_ref(&older.id));
    let ids = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let contacts = |app: String, user: &'static str, candidates: Vec<String>| async move {
        let mut found: Vec<String> = store
            .contacts(&app, user, &candidates)
            .await
            .unwrap()
            .into_iter()
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        contacts(app.clone(), "ann", ids(&["owner", "bob", "stranger", "ann"])).await,
        ["ann", "owner"],
        "bob shares no conversation with ann since she was removed from the newer one"
    );
    assert_eq!(contacts(app.clone(), "bob", ids(&["ann", "owner"])).await, ["owner"]);
    assert!(
        contacts(unique("app"), "ann", ids(&["owner"])).await.is_empty(),
        "scoped to the app"
    );
    assert!(contacts(app.clone(), "stranger", ids(&["owner"])).await.is_empty());

    assert_eq!(store.mark_read(&app, &older.id, "ann", 5).await.unwrap(), 5);
    assert_eq!(
        store.mark_read(&app, &older.id, "ann", 3).await.unwrap(),
        5,
        "never moves back"
    );
    assert_eq!(store.mark_read(&app, &older.id, "ann", 8).await.unwrap(), 8);
    let horizons = store
        .read_horizons(&app, "ann", &[older.id.clone(), newer.id.clone()])
        .await
        .unwrap();
    assert_eq!((horizons[&older.id], horizons[&newer.id]), (8, 0));
}

async fn summaries_keep_the_newest_message(store: &dyn Store) {
    let (app, conversation) = (unique("app"), unique("conv"));
    let summary = |message: &Message| ConversationSummary {
        id: conversation.clone(),
        app_id: app.clone(),
        last_seq: message.seq,
        last_message: message.clone(),
    };
    let (second, third) = (
        message(&app, &conversation, &unique("m"), 2),
        message(&app, &conversation, &unique("m"), 3),
    );
    let third_edited = revision(&third, "edited", 10);
    assert_eq!(store.apply_summaries(&[summary(&third)]).await.unwrap(), 1);
    assert_eq!(
        store
            .apply_summaries(&[summary(&second), summary(&third)])
            .await
            .unwrap(),
        0,
        "older or equal is stale"
    );
    assert_eq!(
        store.apply_summaries(&[summary(&third_edited)]).await.unwrap(),
        1,
        "an edit of the newest message"
    );
    assert_eq!(store.apply_summaries(&[summary(&third)]).await.unwrap(), 0);
    let stored = store
        .summaries(&app, std::slice::from_ref(&conversation))
        .await
        .unwrap();
    assert_eq!(stored[&conversation].last_message.text, "edited");
    assert!(store
        .summaries(&unique("app"), &[conversation])
        .await
        .unwrap()
        .is_empty());
}

async fn attachments_complete_once_and_link_to_their_first_message(store: &dyn Store) {
    let app_id = unique("app");
    let pending = Attachment {
        id: unique("att"),
        app_id: app_id.clone(),
        conversation_id: "conv".into(),
        uploader_id: "alice".into(),
        key: "k/original".into(),
        filename: "cat.png".into(),
        content_type: "image/png".into(),
        size: 42,
        status: AttachmentStatus::Pending,
        created_at: 1,
        completed_at: None,
        thumbnail_key: None,
        message_id: None,
        correlation_id: "c".into(),
    };
    store.insert_attachment(&pending).await.unwrap();
    assert!(matches!(
        store.insert_attachment(&pending).await,
        Err(Error::Conflict(_))
    ));
    let count = |since| store.count_pending_uploads(&app_id, "alice", since);
    assert_eq!(
        (count(1).await.unwrap(), count(2).await.unwrap()),
        (1, 0),
        "started at 1"
    );
    assert_eq!(store.count_pending_uploads("other-app", "alice", 0).await.unwrap(), 0);
    let ids = vec![pending.id.clone(), unique("missing")];
    assert_eq!(
        store.find_attachments(&app_id, &ids).await.unwrap(),
        vec![pending.clone()]
    );
    assert!(store.find_attachments("other-app", &ids).await.unwrap().is_empty());

    let complete = store
        .complete_attachment(&app_id, &pending.id, 5, Some("k/thumbnail.jpg"))
        .await
        .unwrap();
    assert_eq!(
        (
            complete.status,
            complete.completed_at,
            complete.thumbnail_key.as_deref()
        ),
        (AttachmentStatus::Complete, Some(5), Some("k/thumbnail.jpg"))
    );
    assert_eq!(count(0).await.unwrap(), 0, "a completed upload is no longer pending");
    let again = store.complete_attachment(&app_id, &pending.id, 9, None).await.unwrap();
    assert_eq!(again, complete, "completing twice changes nothing");
    assert!(matches!(
        store.complete_attachment("other-app", &pending.id, 9, None).await,
        Err(Error::NotFound(_))
    ));

    let mut carrier = message(&app_id, "conv", &unique("m"), 1);
    carrier.attachments = vec![complete.reference()];
    let mut forged = carrier.clone();
    forged.id = unique("m");
    forged.app_id = "other-app".into();
    assert_eq!(store.link_attachments(std::slice::from_ref(&forged)).await.unwrap(), 0);
    assert_eq!(store.link_attachments(std::slice::from_ref(&carrier)).await.unwrap(), 1);
    let mut second = carrier.clone();
    second.id = unique("m");
    assert_eq!(store.link_attachments(&[carrier.clone(), second]).await.unwrap(), 0);
    let linked = store.find_attachments(&app_id, &ids[..1]).await.unwrap();
    assert_eq!(linked[0].message_id.as_deref(), Some(carrier.id.as_str()));

    // The quota counts every upload of the user; expiry finds only those no message carries.
    let unsent = Attachment {
        id: unique("att"),
        size: 1000,
        created_at: 3,
        ..pending.clone()
    };
    store.insert_attachment(&unsent).await.unwrap();
    assert_eq!(store.uploaded_bytes(&app_id, "alice").await.unwrap(), 1042);
    assert_eq!(store.uploaded_bytes(&app_id, "bob").await.unwrap(), 0);
    assert_eq!(store.uploaded_bytes("other-app", "alice").await.unwrap(), 0);
    let expiring = |before| store.unsent_attachments_before(&app_id, before, 10);
    assert!(expiring(3).await.unwrap().is_empty(), "started at 3, not before");
    assert_eq!(
        expiring(4).await.unwrap(),
        vec![unsent.clone()],
        "the linked one is kept"
    );
    assert_eq!(
        store
            .delete_attachments(&app_id, std::slice::from_ref(&unsent.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.uploaded_bytes(&app_id, "alice").await.unwrap(), 42);
}
