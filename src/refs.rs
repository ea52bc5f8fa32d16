//! A repository's branches and tags, a page per call (contract 0.2.0, `list-branches` and
//! `list-tags`). Listings that can change without a new commit: the host lists them each pass,
//! and runs a commit pass ([`crate::commits`]) only when the default branch moved.

use crate::error::ConnectorError;
use crate::history_page;
use crate::host::Host;
use crate::model::{Branch, BranchPage, Connection, HistoryKind, RepoRef, Tag, TagPage};
use crate::wire_history::WireRefItem;

/// One page of `repo`'s branches.
pub fn list_branches<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    cursor: Option<&str>,
) -> Result<BranchPage, ConnectorError> {
    let (page, next) = history_page::list::<WireRefItem, _>(
        host,
        conn,
        repo,
        &["branches"],
        HistoryKind::Branch,
        cursor,
    )?;
    Ok(BranchPage {
        items: page
            .items
            .into_iter()
            .map(|w| Branch {
                repo: repo.clone(),
                name: w.display_id,
                ref_id: w.id,
                latest_commit: w.latest_commit,
                is_default: w.is_default.unwrap_or(false),
            })
            .collect(),
        next,
        unreadable: page.unreadable,
    })
}

/// One page of `repo`'s tags.
pub fn list_tags<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    cursor: Option<&str>,
) -> Result<TagPage, ConnectorError> {
    let (page, next) = history_page::list::<WireRefItem, _>(
        host,
        conn,
        repo,
        &["tags"],
        HistoryKind::Tag,
        cursor,
    )?;
    Ok(TagPage {
        items: page
            .items
            .into_iter()
            .map(|w| Tag {
                repo: repo.clone(),
                name: w.display_id,
                ref_id: w.id,
                target: w.latest_commit,
                object_hash: w.hash,
            })
            .collect(),
        next,
        unreadable: page.unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, conn, repo};
    use serde_json::json;

    const BASE: &str = "/bitbucket/rest/api/1.0/projects/PLAT/repos/api";

    #[test]
    fn branches_read_either_default_flag_and_an_unidentified_one_is_left_out() {
        // The first item is the 9.2 reference's shape (checked); the others are deliberately
        // not: an older server's `isDefault` and `latestChangeset`, an item without identity,
        // and fields in other shapes.
        crate::reference::assert_schema(
            "RestBranch",
            &json!({"id": "refs/heads/main", "displayId": "main", "type": "BRANCH", "latestCommit": "abc", "default": true}),
            "the well-formed branch",
        );
        let host = FakeHost::new();
        host.json(
            &format!("{BASE}/branches"),
            &[("start", "0")],
            200,
            json!({"size": 4, "limit": 4, "start": 0, "isLastPage": false, "nextPageStart": 4, "values": [
                {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH", "latestCommit": "abc", "default": true},
                {"id": "refs/heads/old", "latestChangeset": "def", "isDefault": false},
                {"type": "BRANCH"},
                {"displayId": "x", "latestCommit": {"id": "weird"}, "default": "yes"}
            ]}),
        );
        let page = list_branches(&host, &conn(4), &repo(), None).expect("a page");
        let names: Vec<(&str, &str, Option<&str>, bool)> = page
            .items
            .iter()
            .map(|b| {
                (
                    b.name.as_str(),
                    b.ref_id.as_str(),
                    b.latest_commit.as_deref(),
                    b.is_default,
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("main", "refs/heads/main", Some("abc"), true),
                ("old", "refs/heads/old", Some("def"), false),
                ("x", "x", None, false),
            ]
        );
        assert_eq!(page.unreadable.len(), 1);
        assert_eq!(page.unreadable[0].kind, HistoryKind::Branch);
        assert!(page.next.is_some());
        assert!(host.sent()[0].contains("/branches?"), "{:?}", host.sent());
    }

    #[test]
    fn tags_carry_their_target_and_annotated_object() {
        let host = FakeHost::new();
        let body = json!({"size": 2, "limit": 25, "start": 0, "isLastPage": true, "values": [
            {"id": "refs/tags/v1.0", "displayId": "v1.0", "type": "TAG", "latestCommit": "c1", "hash": "t1"},
            {"id": "refs/tags/v0.9", "displayId": "v0.9", "type": "TAG", "latestCommit": "c0"}
        ]});
        crate::reference::assert_response("/rest/api/1.0/projects/PLAT/repos/api/tags", &body);
        host.json(&format!("{BASE}/tags"), &[], 200, body);
        let page = list_tags(&host, &conn(25), &repo(), None).expect("a page");
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].target.as_deref(), Some("c1"));
        assert_eq!(page.items[0].object_hash.as_deref(), Some("t1"));
        assert_eq!(page.items[1].object_hash, None);
        assert!(page.next.is_none());
    }
}
