//! Who is in a group, and who asked to join an approval group: a group's members and its
//! pending requests, from the join and admit slots (PROTOCOL.md §9, "Admissions"), with the
//! names their profiles give.

use std::collections::BTreeMap;

use chorus_protocol::{AuthorKey, Body, RecordId};

use crate::error::Result;
use crate::store::{Standing, Store};

/// A request to join an approval group that the founder has not granted (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Who asked.
    pub key: AuthorKey,
    /// Their join record.
    pub join: RecordId,
    /// When they asked (the join's created_at).
    pub at: u64,
}

/// A group's members and pending requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// The founder first, then the other members in key order.
    pub members: Vec<AuthorKey>,
    /// The pending requests, oldest first (by created_at, then join id).
    pub pending: Vec<Request>,
}

/// Where a key stands in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It founded the group.
    Founder,
    /// A member.
    Member,
    /// It asked to join an approval group; the founder has not admitted it.
    Pending,
    /// None of these.
    None,
}

impl Status {
    /// As the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Founder => "founder",
            Status::Member => "member",
            Status::Pending => "pending",
            Status::None => "none",
        }
    }
}

/// The roster of a group founded by `founder` (`approval`: an approval group), from its
/// keys' standings: a member has a join in force and, in an approval group, the founder's
/// admit in force; a pending request is a join in force without it. A function of the
/// standings, which are a function of the records.
pub fn roster(
    founder: &AuthorKey,
    approval: bool,
    standings: &BTreeMap<AuthorKey, Standing>,
) -> Roster {
    let mut r = Roster {
        members: vec![*founder],
        pending: Vec::new(),
    };
    for (k, s) in standings {
        if k == founder {
            continue;
        }
        let Some((join, at, true)) = s.join else {
            continue;
        };
        if !approval || s.admitted {
            r.members.push(*k);
        } else {
            r.pending.push(Request { key: *k, join, at });
        }
    }
    r.pending.sort_by_key(|p| (p.at, p.join));
    r
}

impl Roster {
    /// Where `who` stands.
    pub fn status(&self, who: &AuthorKey) -> Status {
        if self.members.first() == Some(who) {
            Status::Founder
        } else if self.members.contains(who) {
            Status::Member
        } else if self.pending.iter().any(|p| p.key == *who) {
            Status::Pending
        } else {
            Status::None
        }
    }
}

/// The roster of a stored group (`None` while its record is not stored).
pub fn of(store: &Store, group: &RecordId) -> Result<Option<Roster>> {
    let Some(rec) = store.record(group)? else {
        return Ok(None);
    };
    let Body::Group(g) = &rec.record().body else {
        return Ok(None);
    };
    let approval = g.admission == chorus_protocol::Admission::Approval;
    Ok(Some(roster(
        &rec.author(),
        approval,
        &store.group_standings(group)?,
    )))
}

/// The name a key's stored profile gives, if any.
pub fn name(store: &Store, key: &AuthorKey) -> Result<Option<String>> {
    Ok(store.profile(key)?.and_then(|p| match &p.record().body {
        Body::Profile(p) => Some(p.name.clone()),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::testing::author;

    fn joined(i: u8, at: u64, on: bool, admitted: bool) -> (AuthorKey, Standing) {
        (
            author(i),
            Standing {
                join: Some((RecordId([i; 32]), at, on)),
                admitted,
            },
        )
    }

    #[test]
    fn an_approval_group_holds_joins_as_requests_until_admitted() {
        let s = BTreeMap::from([
            joined(2, 20, true, false),
            joined(3, 10, true, true),
            joined(4, 5, false, true),
            joined(5, 1, true, false),
            (
                author(6),
                Standing {
                    join: None,
                    admitted: true,
                },
            ),
        ]);
        let r = roster(&author(1), true, &s);
        assert_eq!(r.members, vec![author(1), author(3)]);
        let pending: Vec<AuthorKey> = r.pending.iter().map(|p| p.key).collect();
        assert_eq!(pending, vec![author(5), author(2)], "oldest first");
        assert_eq!(r.status(&author(1)), Status::Founder);
        assert_eq!(r.status(&author(3)), Status::Member);
        assert_eq!(r.status(&author(2)), Status::Pending);
        // A retracted join is no request; an admit without a join makes no member.
        assert_eq!(r.status(&author(4)), Status::None);
        assert_eq!(r.status(&author(6)), Status::None);
    }

    #[test]
    fn an_open_group_has_no_requests() {
        let s = BTreeMap::from([joined(2, 20, true, false), joined(3, 1, false, false)]);
        let r = roster(&author(1), false, &s);
        assert_eq!(r.members, vec![author(1), author(2)]);
        assert!(r.pending.is_empty());
    }

    #[test]
    fn the_founders_own_join_changes_nothing() {
        let s = BTreeMap::from([joined(1, 20, true, false)]);
        let r = roster(&author(1), true, &s);
        assert_eq!(r.members, vec![author(1)]);
        assert!(r.pending.is_empty());
    }
}
