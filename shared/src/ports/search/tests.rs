use super::*;

fn message(id: &str, conversation: &str, text: &str) -> Message {
    Message {
        id: id.into(),
        app_id: "app".into(),
        conversation_id: conversation.into(),
        seq: 1,
        sender_id: "alice".into(),
        text: text.into(),
        created_at: 1_000,
        ..Message::default()
    }
}

fn request(text: &str) -> SearchRequest {
    SearchRequest {
        app_id: "app".into(),
        conversation_ids: vec!["c1".into(), "c2".into()],
        text: text.into(),
        limit: 20,
        ..SearchRequest::default()
    }
}

async fn ids(index: &Arc<SearchIndex>, request: SearchRequest) -> Vec<String> {
    let mut ids: Vec<String> = index
        .search(request)
        .await
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.message_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn words_phrases_prefixes_and_cjk_are_found() {
    let index = SearchIndex::open(None).unwrap();
    index
        .apply(vec![
            message("m1", "c1", "Lunch tomorrow at the Italian place?"),
            message("m2", "c1", "我们明天在北京见面"),
            message("m3", "c2", "東京タワーに行きましょう"),
            message("m4", "c2", "the place for lunch is booked"),
        ])
        .await
        .unwrap();
    assert_eq!(ids(&index, request("lunch")).await, ["m1", "m4"]);
    assert_eq!(ids(&index, request("\"lunch tomorrow\"")).await, ["m1"]);
    assert_eq!(ids(&index, request("tomor*")).await, ["m1"]);
    assert_eq!(ids(&index, request("\"lunch tom\"*")).await, ["m1"]);
    assert_eq!(ids(&index, request("北京")).await, ["m2"]);
    assert_eq!(ids(&index, request("明天在")).await, ["m2"]);
    assert_eq!(ids(&index, request("タワー")).await, ["m3"]);
    assert_eq!(ids(&index, request("京")).await, ["m2", "m3"]);
    assert!(ids(&index, request("京都")).await.is_empty());
    let hit = &index.search(request("北京")).await.unwrap().hits[0];
    assert_eq!(hit.highlight, "我们明天在<mark>北京</mark>见面");
}

#[tokio::test]
async fn scope_filters_and_paging_are_applied() {
    let index = SearchIndex::open(None).unwrap();
    let mut other_app = message("x1", "c1", "hello from elsewhere");
    other_app.app_id = "other".into();
    let mut bob = message("m2", "c2", "hello from bob");
    bob.sender_id = "bob".into();
    bob.created_at = 5_000;
    index
        .apply(vec![
            message("m1", "c1", "hello <there>"),
            bob,
            message("m3", "c3", "hello c3"),
            other_app,
        ])
        .await
        .unwrap();
    assert_eq!(
        ids(&index, request("hello")).await,
        ["m1", "m2"],
        "c3 is outside the scope, x1 in another app"
    );
    let by_bob = SearchRequest {
        sender_id: Some("bob".into()),
        ..request("hello")
    };
    assert_eq!(ids(&index, by_bob).await, ["m2"]);
    let recent = SearchRequest {
        from: Some(2_000),
        ..request("hello")
    };
    assert_eq!(ids(&index, recent).await, ["m2"]);
    let old = SearchRequest {
        to: Some(2_000),
        ..request("hello")
    };
    assert_eq!(ids(&index, old).await, ["m1"]);
    let nothing = SearchRequest {
        conversation_ids: vec![],
        ..request("hello")
    };
    assert!(ids(&index, nothing).await.is_empty());

    let first = index
        .search(SearchRequest {
            limit: 1,
            sort: Sort::Recent,
            ..request("hello")
        })
        .await
        .unwrap();
    assert_eq!((first.hits[0].message_id.as_str(), first.next_offset), ("m2", Some(1)));
    assert_eq!(first.hits[0].score, None);
    let second = index
        .search(SearchRequest {
            limit: 1,
            offset: 1,
            sort: Sort::Recent,
            ..request("hello")
        })
        .await
        .unwrap();
    assert_eq!((second.hits[0].message_id.as_str(), second.next_offset), ("m1", None));
    assert_eq!(second.hits[0].highlight, "<mark>hello</mark> &lt;there&gt;");
}

#[tokio::test]
async fn edits_replace_deletes_remove_and_older_records_never_win() {
    let index = SearchIndex::open(None).unwrap();
    let original = message("m1", "c1", "see you at noon");
    let mut edited = original.clone();
    edited.text = "see you at midnight".into();
    edited.version = 10;
    edited.edited_at = Some(2_000);
    let report = index.apply(vec![edited.clone(), original.clone()]).await.unwrap();
    assert_eq!((report.indexed, report.superseded), (1, 1));
    assert!(ids(&index, request("noon")).await.is_empty());
    assert_eq!(ids(&index, request("midnight")).await, ["m1"]);

    let redelivered = index.apply(vec![original.clone()]).await.unwrap();
    assert_eq!((redelivered.indexed, redelivered.superseded), (0, 1));
    assert!(
        ids(&index, request("noon")).await.is_empty(),
        "a redelivered original must not come back"
    );

    let mut deleted = edited.clone();
    deleted.text.clear();
    deleted.deleted_at = Some(3_000);
    deleted.version = 20;
    assert_eq!(index.apply(vec![deleted]).await.unwrap().removed, 1);
    index.apply(vec![original, edited]).await.unwrap();
    assert!(ids(&index, request("midnight")).await.is_empty());
    assert!(ids(&index, request("noon")).await.is_empty());
}

#[tokio::test]
async fn an_index_directory_is_shared_between_a_writer_and_a_reader() {
    let dir = std::env::temp_dir().join(format!("caas-search-{}", uuid::Uuid::new_v4()));
    let writer = SearchIndex::open(Some(&dir)).unwrap();
    let reader = SearchIndex::open(Some(&dir)).unwrap();
    writer
        .apply(vec![message("m1", "c1", "persisted words")])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ids(&reader, request("persisted")).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never saw the writer's commit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn long_texts_are_cut_to_a_fragment_around_the_first_match() {
    let text = format!("{} needle {}", "hay ".repeat(100), "straw ".repeat(100));
    let html = highlight(&text, &query::parse("needle").unwrap());
    assert!(html.starts_with('…') && html.ends_with('…'), "{html}");
    assert!(html.contains("<mark>needle</mark>"));
    assert!(html.len() < 300);
}
