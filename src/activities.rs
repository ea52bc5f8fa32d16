//! A pull request's activities → its review events, lifecycle events and merge facts.
//!
//! APPROVED → approved, UNAPPROVED → unapproved, REVIEWED → needs work, COMMENTED (every comment
//! action, replies included) and REVIEW_COMMENTED → commented. MERGED gives merged-by, the merge
//! commit and the merge time. OPENED, RESCOPED, UPDATED, DECLINED, REOPENED and DELETED are
//! lifecycle events; any other action is kept as `other` with its name.

use crate::model::{PrEvent, PrEventKind, PullRequest, ReviewAction, ReviewEvent};
use crate::normalize;
use crate::wire::WireActivity;

/// Fills `pr`'s reviews, events, merge facts and first-review times from its activities (in any
/// order; the server sends newest first).
pub fn apply(pr: &mut PullRequest, activities: Vec<WireActivity>) {
    let mut activities = activities;
    activities.sort_by_key(|a| {
        (
            a.created_date.map(i64::from).unwrap_or_default(),
            a.id.unwrap_or_default(),
        )
    });
    let mut reviews = Vec::new();
    let mut events = Vec::new();
    for a in activities {
        let at = a.created_date.map(i64::from).unwrap_or_default();
        let user = a.user.clone().map(normalize::user);
        let review = match a.action.as_str() {
            "APPROVED" => Some(ReviewAction::Approved),
            "UNAPPROVED" => Some(ReviewAction::Unapproved),
            "REVIEWED" => Some(ReviewAction::NeedsWork),
            "COMMENTED" | "REVIEW_COMMENTED" => Some(ReviewAction::Commented),
            _ => None,
        };
        if let (Some(action), Some(user)) = (review, user.clone()) {
            reviews.push(ReviewEvent {
                user,
                action,
                at,
                activity_id: a.id,
            });
            continue;
        }
        let kind = match a.action.as_str() {
            "OPENED" => PrEventKind::Opened,
            "RESCOPED" => PrEventKind::Rescoped,
            "UPDATED" => PrEventKind::ReviewersUpdated,
            "MERGED" => PrEventKind::Merged,
            "DECLINED" => PrEventKind::Declined,
            "REOPENED" => PrEventKind::Reopened,
            "DELETED" => PrEventKind::Deleted,
            _ => PrEventKind::Other,
        };
        if kind == PrEventKind::Merged {
            pr.merged_at = Some(at);
            pr.merged_by = user.clone();
            pr.merge_commit = a.commit.as_ref().and_then(|c| c.id.clone());
        }
        events.push(PrEvent {
            kind,
            raw_action: a.action,
            user,
            at,
            activity_id: a.id,
        });
    }
    let author = pr.author.as_ref().map(|u| u.slug.clone());
    pr.first_review_at = reviews
        .iter()
        .filter(|r| r.action != ReviewAction::Unapproved && Some(&r.user.slug) != author.as_ref())
        .map(|r| r.at)
        .min();
    pr.first_approval_at = reviews
        .iter()
        .filter(|r| r.action == ReviewAction::Approved && Some(&r.user.slug) != author.as_ref())
        .map(|r| r.at)
        .min();
    pr.reviews = reviews;
    pr.events = events;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RepoRef;
    use crate::wire::WirePullRequest;
    use serde_json::json;

    fn pr() -> PullRequest {
        let w: WirePullRequest = serde_json::from_value(json!({
            "id": 1, "version": 2, "state": "MERGED", "createdDate": 100, "updatedDate": 900, "closedDate": 800,
            "author": {"user": {"name": "author", "slug": "author"}},
            "fromRef": {"id": "refs/heads/f"}, "toRef": {"id": "refs/heads/main"}
        }))
        .unwrap();
        normalize::pull_request(
            &w,
            &RepoRef {
                project_key: "P".into(),
                slug: "r".into(),
            },
        )
    }

    fn act(id: u64, at: i64, who: &str, action: &str, extra: serde_json::Value) -> WireActivity {
        let mut v = json!({"id": id, "createdDate": at, "user": {"name": who, "slug": who}, "action": action});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_action_maps() {
        let mut p = pr();
        // Newest first, as the server sends them.
        let acts = vec![
            act(
                12,
                800,
                "bob",
                "MERGED",
                json!({"commit": {"id": "abc123"}}),
            ),
            act(11, 700, "bot", "AUTO_MERGE_REQUESTED", json!({})),
            act(10, 650, "author", "DELETED", json!({})),
            act(9, 600, "author", "REOPENED", json!({})),
            act(8, 550, "bob", "DECLINED", json!({})),
            act(7, 500, "author", "RESCOPED", json!({})),
            act(6, 450, "author", "UPDATED", json!({})),
            act(5, 400, "ann", "UNAPPROVED", json!({})),
            act(4, 350, "ann", "APPROVED", json!({})),
            act(3, 300, "bob", "REVIEWED", json!({})),
            act(
                2,
                250,
                "ann",
                "COMMENTED",
                json!({"commentAction": "REPLIED"}),
            ),
            act(13, 240, "ann", "REVIEW_COMMENTED", json!({})),
            act(
                1,
                200,
                "author",
                "COMMENTED",
                json!({"commentAction": "ADDED"}),
            ),
            act(0, 100, "author", "OPENED", json!({})),
        ];
        apply(&mut p, acts);
        let reviews: Vec<_> = p
            .reviews
            .iter()
            .map(|r| (r.user.slug.as_str(), r.action, r.at))
            .collect();
        assert_eq!(
            reviews,
            vec![
                ("author", ReviewAction::Commented, 200),
                ("ann", ReviewAction::Commented, 240),
                ("ann", ReviewAction::Commented, 250),
                ("bob", ReviewAction::NeedsWork, 300),
                ("ann", ReviewAction::Approved, 350),
                ("ann", ReviewAction::Unapproved, 400),
            ]
        );
        let events: Vec<_> = p
            .events
            .iter()
            .map(|e| (e.kind, e.raw_action.as_str()))
            .collect();
        assert_eq!(
            events,
            vec![
                (PrEventKind::Opened, "OPENED"),
                (PrEventKind::ReviewersUpdated, "UPDATED"),
                (PrEventKind::Rescoped, "RESCOPED"),
                (PrEventKind::Declined, "DECLINED"),
                (PrEventKind::Reopened, "REOPENED"),
                (PrEventKind::Deleted, "DELETED"),
                (PrEventKind::Other, "AUTO_MERGE_REQUESTED"),
                (PrEventKind::Merged, "MERGED"),
            ]
        );
        assert_eq!(
            (
                p.merged_at,
                p.merged_by.as_ref().map(|u| u.slug.as_str()),
                p.merge_commit.as_deref()
            ),
            (Some(800), Some("bob"), Some("abc123"))
        );
        assert_eq!(
            p.first_review_at,
            Some(240),
            "the author's own comment is not a review"
        );
        assert_eq!(p.first_approval_at, Some(350));
    }

    #[test]
    fn no_reviews_means_no_first_review() {
        let mut p = pr();
        apply(&mut p, vec![act(0, 100, "author", "OPENED", json!({}))]);
        assert_eq!((p.first_review_at, p.first_approval_at), (None, None));
        assert_eq!(
            p.merged_at,
            Some(800),
            "merged time falls back to closedDate without a MERGED activity"
        );
    }
}
