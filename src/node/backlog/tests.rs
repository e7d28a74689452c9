use super::*;

#[test]
fn lines_parse_into_items_with_their_variants() {
    let text = "# popular crates\n\
                itoa\n\
                serde@1.0.219 --features derive,rc --no-default-features  # two features\n\
                \n\
                libc --all-features\n\
                serde@1.0.219 --features=rc,derive --no-default-features\n\
                ryu@1.0.20\n";
    let items = parse_backlog(text).unwrap();
    let keys: Vec<String> = items.iter().map(BacklogItem::key).collect();
    assert_eq!(
        keys,
        [
            "itoa",
            "serde@1.0.219 --features derive,rc --no-default-features",
            "libc --all-features",
            "ryu@1.0.20",
        ],
        "the repeated line (features in another order) counts once"
    );
    assert_eq!(items[0].version, None);
    assert_eq!(items[1].variant.features, ["derive", "rc"]);
    assert!(items[1].variant.no_default_features);
    assert!(items[2].variant.all_features);
}

#[test]
fn a_bad_line_is_refused_with_its_number() {
    for (text, wanted) in [
        (
            "itoa\nnot/a-crate\n",
            "line 2: \"not/a-crate\" is not a crate name",
        ),
        ("itoa@1.0 --jobs 4\n", "line 1: unknown word \"--jobs\""),
        ("x@1.0.0\ny@1;rm\n", "line 2: \"1;rm\" is not a version"),
        ("x --features\n", "line 1: --features needs"),
        ("x --features a --all-features\n", "together"),
        ("x --features a$b\n", "\"a$b\" is not a feature name"),
    ] {
        let err = parse_backlog(text).unwrap_err();
        assert!(
            err.starts_with(wanted) || err.contains(wanted),
            "{text:?}: {err}"
        );
    }
    let long = format!("{}\n", "a".repeat(MAX_LINE + 1));
    assert!(
        parse_backlog(&long)
            .unwrap_err()
            .contains("line 1: longer than")
    );
    let many: String = (0..=MAX_BACKLOG).map(|i| format!("c{i}\n")).collect();
    assert!(parse_backlog(&many).unwrap_err().contains("more than"));
}

#[test]
fn a_member_keeps_half_its_committee_share_for_its_users() {
    assert_eq!(room(8, 0, 0), 4);
    assert_eq!(room(8, 3, 0), 1);
    assert_eq!(room(8, 2, 2), 0);
    assert_eq!(
        room(8, 9, 0),
        0,
        "users' requests fill the share: the backlog waits"
    );
    assert_eq!(room(1, 0, 0), 1, "a share of one still moves");
}

#[test]
fn each_item_counts_in_one_stage() {
    let items = parse_backlog("a\nb\nc\nd\ne\nf\n").unwrap();
    let mut st = BacklogState::default();
    let set = |st: &mut BacklogState, k: &str, s: ItemState| {
        st.items.insert(k.to_string(), s);
    };
    set(
        &mut st,
        "a",
        ItemState {
            request: Some("00".into()),
            ordered: true,
            verdict: Some(Verdict::Reproduced),
            ..Default::default()
        },
    );
    set(
        &mut st,
        "b",
        ItemState {
            request: Some("01".into()),
            ordered: true,
            verdict: Some(Verdict::Failed),
            ..Default::default()
        },
    );
    set(
        &mut st,
        "c",
        ItemState {
            request: Some("02".into()),
            ordered: true,
            ..Default::default()
        },
    );
    set(
        &mut st,
        "d",
        ItemState {
            request: Some("03".into()),
            ..Default::default()
        },
    );
    set(
        &mut st,
        "e",
        ItemState {
            tries: MAX_PIN_TRIES,
            error: Some("e is not in the index".into()),
            ..Default::default()
        },
    );
    let p = st.progress(&items);
    assert_eq!(
        (
            p.total,
            p.reproduced,
            p.failed,
            p.ordered,
            p.waiting,
            p.unbuildable
        ),
        (6, 1, 1, 1, 2, 1)
    );
    assert_eq!(p.decided(), 2);
    assert_eq!(
        st.submitted(&items),
        1,
        "d: submitted by us, not ordered yet"
    );
    assert_eq!(
        p.errors,
        [("e".to_string(), "e is not in the index".to_string())]
    );
}

#[test]
fn state_survives_a_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backlog.json");
    let mut st = BacklogState::default();
    st.items.insert(
        "itoa".into(),
        ItemState {
            version: Some("1.0.15".into()),
            request: Some("ab".into()),
            ordered: true,
            verdict: Some(Verdict::NotReproduced),
            ..Default::default()
        },
    );
    st.save(&path).unwrap();
    assert_eq!(BacklogState::load(&path), st);
    // A torn or foreign file is an empty state (items are looked up again), not a crash.
    std::fs::write(&path, b"{\"items\":").unwrap();
    assert_eq!(BacklogState::load(&path), BacklogState::default());
}

#[test]
fn a_variant_item_matches_only_its_own_features() {
    let target = "x86_64-unknown-linux-gnu";
    let item = parse_backlog("serde@1.0.219 --features derive\n").unwrap()[0].clone();
    let mut r = crate::testing::request("serde", "1.0.219", "l").request;
    r.target = target.into();
    assert!(
        !item.matches(&r, target),
        "the default variant is not this one"
    );
    r.features = vec!["derive".into()];
    assert!(item.matches(&r, target));
    r.no_default_features = true;
    assert!(!item.matches(&r, target));
    let all = parse_backlog("serde --all-features\n").unwrap()[0].clone();
    r.features = vec!["derive".into(), "rc".into(), "std".into()];
    r.no_default_features = false;
    assert!(
        !all.matches(&r, target),
        "known only once pinned: the declared features decide"
    );
}
