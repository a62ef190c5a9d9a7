//! Conversations end to end on two socket nodes: groups with roles, adding and removing members,
//! leaving, renaming, lists with the last message and unread counts, read horizons with `read` events,
//! typing indications, presence across nodes, and a removed member who stops receiving the conversation
//! at once.

use caas_e2e::{ok, refused, Client, Platform};
use serde_json::json;
use std::time::Duration;

/// Asserts no `message.new` arrives within a short wait (used after a removal).
async fn receives_no_message(client: &mut Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(frame) = tokio::time::timeout_at(deadline, client.next_json()).await {
        assert_ne!(frame["type"], "message.new", "a removed member still got {frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_roles_lists_reads_typing_and_removal_work_across_nodes() {
    let platform = Platform::start("conversations", 2);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let mut tokens = Vec::new();
    for name in ["owner", "admin", "member", "newcomer"] {
        tokens.push(platform.token(&http, &app, name).await);
    }
    let id = |index: usize| tokens[index]["user"]["id"].as_str().unwrap().to_owned();
    let mut clients = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let url = &platform.socket_urls[index % 2];
        clients.push(Client::connect(url, token["token"].as_str().unwrap(), &format!("conv-{index}")).await);
    }
    let [owner, admin, member, newcomer] = &mut clients[..] else {
        unreachable!()
    };

    let group = ok(&owner
        .call(
            "conversation.create",
            json!({"kind": "group", "name": "crew", "member_ids": [id(2)]}),
        )
        .await);
    let group_id = group["id"].as_str().unwrap().to_owned();
    for client in [&mut *owner, &mut *member] {
        ok(&client
            .call("conversation.subscribe", json!({"conversation_id": group_id}))
            .await);
    }

    // Roles: only the owner adds an admin; a plain member adds nobody; the admin may add members.
    refused(
        &member
            .call(
                "conversation.members.add",
                json!({"conversation_id": group_id, "member_ids": [id(3)]}),
            )
            .await,
        "forbidden",
    );
    let with_admin = ok(&owner
        .call(
            "conversation.members.add",
            json!({"conversation_id": group_id, "member_ids": [id(1)], "role": "admin"}),
        )
        .await);
    assert_eq!(with_admin["member_ids"].as_array().unwrap().len(), 3);
    assert_eq!(admin.event("conversation.joined").await["id"], group_id.as_str());
    ok(&admin
        .call(
            "conversation.members.add",
            json!({"conversation_id": group_id, "member_ids": [id(3)]}),
        )
        .await);
    assert_eq!(newcomer.event("conversation.joined").await["id"], group_id.as_str());
    let members = ok(&newcomer
        .call("conversation.members", json!({"conversation_id": group_id}))
        .await);
    let roles: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(roles.contains(&(id(0), "owner".into())) && roles.contains(&(id(1), "admin".into())));
    assert!(roles.contains(&(id(3), "member".into())));

    // Rename by the admin reaches members on the other node.
    ok(&admin
        .call(
            "conversation.update",
            json!({"conversation_id": group_id, "name": "the crew"}),
        )
        .await);
    // Earlier member additions were announced the same way; the rename is the latest update.
    while member.event("conversation.updated").await["name"] != "the crew" {}
    refused(
        &member
            .call(
                "conversation.update",
                json!({"conversation_id": group_id, "name": "mine"}),
            )
            .await,
        "forbidden",
    );

    // Three messages; the member's list shows the last one and three unread until read.mark.
    for n in 1..=3 {
        ok(&owner
            .call(
                "message.send",
                json!({"conversation_id": group_id, "client_msg_id": format!("c{n}"), "text": format!("note {n}")}),
            )
            .await);
    }
    let listed = ok(&member.call("conversation.list", json!({})).await);
    let entry = listed["conversations"][0].clone();
    assert_eq!(entry["id"], group_id.as_str());
    assert_eq!(entry["last_message"]["text"], "note 3");
    assert_eq!(
        (entry["unread_count"].as_i64(), entry["last_seq"].as_i64()),
        (Some(3), Some(3))
    );
    let read = ok(&member
        .call("read.mark", json!({"conversation_id": group_id, "seq": 2}))
        .await);
    assert_eq!(read["seq"], 2);
    let seen = owner.event("read").await;
    assert_eq!(
        (seen["user_id"].as_str(), seen["seq"].as_i64()),
        (Some(id(2).as_str()), Some(2))
    );
    let listed = ok(&member.call("conversation.list", json!({"limit": 10})).await);
    assert_eq!(listed["conversations"][0]["unread_count"], 1);
    let beyond = ok(&member
        .call("read.mark", json!({"conversation_id": group_id, "seq": 99}))
        .await);
    assert_eq!(beyond["seq"], 3, "a read horizon never passes the last message");

    // Typing is relayed live with an expiry and never stored.
    ok(&member.call("typing.start", json!({"conversation_id": group_id})).await);
    let typing = owner.event("typing").await;
    assert_eq!(
        (typing["typing"].as_bool(), typing["expires_in_ms"].as_i64()),
        (Some(true), Some(5000))
    );

    // Removal: the admin removes the member, who stops receiving live messages at once and is refused.
    refused(
        &admin
            .call(
                "conversation.members.remove",
                json!({"conversation_id": group_id, "user_id": id(0)}),
            )
            .await,
        "forbidden",
    );
    ok(&admin
        .call(
            "conversation.members.remove",
            json!({"conversation_id": group_id, "user_id": id(2)}),
        )
        .await);
    assert_eq!(
        member.event("conversation.removed").await["conversation_id"],
        group_id.as_str()
    );
    ok(&owner
        .call(
            "message.send",
            json!({"conversation_id": group_id, "client_msg_id": "after", "text": "secret"}),
        )
        .await);
    receives_no_message(member).await;
    refused(
        &member
            .call("conversation.history", json!({"conversation_id": group_id}))
            .await,
        "forbidden",
    );
    refused(
        &member
            .call("conversation.subscribe", json!({"conversation_id": group_id}))
            .await,
        "forbidden",
    );

    // Leaving: the newcomer leaves; the owner cannot leave while others remain.
    ok(&newcomer
        .call("conversation.leave", json!({"conversation_id": group_id}))
        .await);
    refused(
        &owner
            .call("conversation.leave", json!({"conversation_id": group_id}))
            .await,
        "forbidden",
    );
    let remaining = ok(&owner
        .call("conversation.members", json!({"conversation_id": group_id}))
        .await);
    assert_eq!(remaining["members"].as_array().unwrap().len(), 2);
    let list = ok(&newcomer.call("conversation.list", json!({})).await);
    assert!(list["conversations"].as_array().unwrap().is_empty());

    // Presence across nodes: the owner (node 1) watches the admin (node 2), who then disconnects.
    let watched = ok(&owner
        .call("presence.subscribe", json!({"user_ids": [id(1), "nobody-here"]}))
        .await);
    assert_eq!(watched["presence"], json!([{"user_id": id(1), "online": true}]));
    assert_eq!(watched["not_visible"], json!(["nobody-here"]), "shares no conversation");
    admin.socket.close(None).await.unwrap();
    let gone = owner.event("presence").await;
    assert_eq!(
        (gone["user_id"].as_str(), gone["online"].as_bool()),
        (Some(id(1).as_str()), Some(false))
    );
}

/// A removal that left the removed member cached (its cache write or announcement failed, or a
/// concurrent change cached the member list read before it): retrying the removal answers `not_found`
/// and still drops the cached membership, so the removed member's sends are refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_removal_drops_a_stale_cached_membership() {
    let platform = Platform::start("stale_membership", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (alice, bob, carol) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
        platform.token(&http, &app, "carol").await,
    );
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "stale-a").await;
    let mut b = Client::connect(url, bob["token"].as_str().unwrap(), "stale-b").await;
    let group = a.create_group(&[&bob, &carol]).await;
    let send = |n: u32| json!({"conversation_id": group, "client_msg_id": format!("b{n}"), "text": "hi"});
    ok(&b.call("message.send", send(0)).await);
    let removal = json!({"conversation_id": group, "user_id": bob["user"]["id"]});
    ok(&a.call("conversation.members.remove", removal.clone()).await);
    refused(&b.call("message.send", send(1)).await, "forbidden");
    // The stale state: bob back in the cached member list.
    let redis = redis::Client::open(platform.stack.get("CAAS_CACHE_URL")).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let key = format!("caas:{{{}:{group}}}:members", app.0);
    let _: () = redis::cmd("SADD")
        .arg(&key)
        .arg(bob["user"]["id"].as_str().unwrap())
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        b.call("message.send", send(2)).await["ok"],
        true,
        "the stale cache lets bob send"
    );
    refused(&a.call("conversation.members.remove", removal).await, "not_found");
    refused(&b.call("message.send", send(3)).await, "forbidden");
}
