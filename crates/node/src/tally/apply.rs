//! What one record changes in derived state: it offers its state to its slot, and where it
//! wins, the sums over slot winners (tallies, ratings, memberships) follow.

use std::collections::{BTreeSet, HashMap};

use chorus_protocol::{Admission, AuthorKey, Body, PetitionVariant, RecordId, SignedRecord};

use super::ctx::Ctx;
use super::event::Event;
use crate::error::{Error, Result};
use crate::store::keys::{ProductKey, SlotKey};
use crate::store::overlay::{Backing, HistoryEntry, Overlay};
use crate::store::{GroupTally, PetitionTally, Rating, ResponseInfo, Slot, Store};

/// How long after a petition's deadline an endorsement made before it may still arrive
/// without note: gossip takes seconds, and a node restarting takes about as long as the
/// clock skew allowed (10 minutes).
const LATE_GRACE_MS: u64 = 600_000;

/// Offers a state to a slot; returns the previous winner if the new state wins.
fn offer<B: Backing>(
    ov: &mut Overlay<'_, B>,
    k: SlotKey,
    new: &Slot,
) -> Result<Option<Option<Slot>>> {
    let old = ov.slot(&k)?;
    if let Some(o) = &old {
        if o.order() >= new.order() {
            return Ok(None);
        }
    }
    ov.put_slot(k, new);
    Ok(Some(old))
}

fn slot_on<B: Backing>(ov: &Overlay<'_, B>, k: &SlotKey) -> Result<bool> {
    Ok(ov.slot(k)?.is_some_and(|s| s.on))
}

/// Membership, derived: the founder always; others by their latest join, and in approval
/// groups also the founder's latest admit.
fn member<B: Backing>(ov: &Overlay<'_, B>, group: &RecordId, member: &AuthorKey) -> Result<bool> {
    let Some(g) = ov.group_tally(group)? else {
        return Ok(false);
    };
    if g.founder == *member {
        return Ok(true);
    }
    if !slot_on(ov, &SlotKey::join(group, member))? {
        return Ok(false);
    }
    if g.admission == Admission::Open.as_str() {
        return Ok(true);
    }
    slot_on(ov, &SlotKey::admit(group, member))
}

/// Is `who` a member of `group` (derived from joins, admits and the founder)?
pub fn is_member(store: &Store, group: &RecordId, who: &AuthorKey) -> Result<bool> {
    member(&Overlay::new(store), group, who)
}

/// Applies what a stored record that is [`super::Readiness::Ready`] changes in derived state,
/// and queues the events of those changes in `ctx`.
pub(crate) fn apply<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    rec: &SignedRecord,
) -> Result<()> {
    let r = rec.record();
    let id = rec.id();
    match &r.body {
        Body::Profile(_) => {
            offer(ov, SlotKey::profile(&r.author), &Slot::new(rec, true))?;
        }
        Body::Review(rv) => {
            let pk = ProductKey::of_ref(&rv.product);
            let mut s = Slot::new(rec, true);
            s.rating = Some(rv.rating);
            review_slot(
                ov,
                ctx,
                &pk,
                &rv.product.producer,
                &rv.product.code,
                &r.author,
                s,
            )?;
        }
        Body::Group(g) => {
            let tally = GroupTally {
                founder: r.author,
                admission: g.admission.as_str().to_string(),
                members: 0,
            };
            ov.put_group_tally(&id, &tally);
            membership_changed(ov, ctx, &id, &r.author, false)?;
        }
        Body::Join(j) => membership_slot(
            ov,
            ctx,
            SlotKey::join(&j.group, &r.author),
            &j.group,
            &r.author,
            Slot::new(rec, true),
        )?,
        Body::Admit(a) => membership_slot(
            ov,
            ctx,
            SlotKey::admit(&a.group, &a.member),
            &a.group,
            &a.member,
            Slot::new(rec, true),
        )?,
        Body::Petition(p) => {
            let goal = match &p.variant {
                PetitionVariant::Campaign { goal } => Some((goal.value, goal.currency.clone())),
                _ => None,
            };
            let mut tally = PetitionTally::new(p.producer, p.threshold, p.deadline, p.group, goal);
            tally.settle();
            ctx.put_tally(id, tally);
            ctx.changed_petitions.insert(id);
            // Stored here before its deadline: endorsements that come well after it are worth
            // noting (see `endorse_slot`).
            if ctx.now > 0 && p.deadline.is_some_and(|d| ctx.now <= d) {
                ov.mark_held(&id, ctx.now);
            }
        }
        Body::Endorsement(e) => {
            let mut s = Slot::new(rec, true);
            s.pledge = e.pledge.as_ref().map(|a| (a.value, a.currency.clone()));
            endorse_slot(ov, ctx, &e.petition, &r.author, s)?;
        }
        Body::Retraction(x) => {
            let Some(t) = ctx.target(ov, &x.target)? else {
                return Err(Error::Corrupt(
                    "retraction applied before its target".into(),
                ));
            };
            let off = Slot::new(rec, false);
            match &t.record().body {
                Body::Endorsement(e) => endorse_slot(ov, ctx, &e.petition, &r.author, off)?,
                Body::Review(rv) => {
                    let pk = ProductKey::of_ref(&rv.product);
                    review_slot(
                        ov,
                        ctx,
                        &pk,
                        &rv.product.producer,
                        &rv.product.code,
                        &r.author,
                        off,
                    )?;
                }
                Body::Join(j) => membership_slot(
                    ov,
                    ctx,
                    SlotKey::join(&j.group, &r.author),
                    &j.group,
                    &r.author,
                    off,
                )?,
                Body::Admit(a) => membership_slot(
                    ov,
                    ctx,
                    SlotKey::admit(&a.group, &a.member),
                    &a.group,
                    &a.member,
                    off,
                )?,
                Body::Profile(_) => {
                    offer(ov, SlotKey::profile(&r.author), &off)?;
                }
                Body::Response(resp) => response_slot(ov, ctx, &resp.target, &r.author, off)?,
                Body::Petition(_) => {
                    // Withdrawal is final: every retraction is an "on" state of its slot.
                    let s = Slot::new(rec, true);
                    offer(ov, SlotKey::withdrawal(&x.target), &s)?;
                    withdraw(ov, ctx, &x.target, r.created_at)?;
                }
                Body::Group(_) | Body::Attestation(_) | Body::Retraction(_) => {}
            }
        }
        Body::Response(resp) => {
            let mut s = Slot::new(rec, true);
            s.status = Some(resp.status.as_str().to_string());
            response_slot(ov, ctx, &resp.target, &r.author, s)?;
            ctx.events.push(Event::Responded {
                target: resp.target,
                response: id,
                producer: r.author,
                status: resp.status.as_str().to_string(),
            });
        }
        Body::Attestation(_) => {}
    }
    Ok(())
}

/// Offers a state to a join or admit slot and follows the membership change.
fn membership_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    k: SlotKey,
    group: &RecordId,
    who: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let before = member(ov, group, who)?;
    offer(ov, k, &s)?;
    membership_changed(ov, ctx, group, who, before)
}

fn review_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    pk: &ProductKey,
    producer: &AuthorKey,
    code: &str,
    author: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let Some(old) = offer(ov, SlotKey::review(pk, author), &s)? else {
        return Ok(());
    };
    let mut rating: Rating = ov.rating(pk)?.unwrap_or_default();
    let mut changed = false;
    if let Some(Slot {
        on: true,
        rating: Some(v),
        ..
    }) = old
    {
        rating.count -= 1;
        rating.sum -= u64::from(v);
        rating.histogram[usize::from(v.clamp(1, 5) - 1)] -= 1;
        changed = true;
    }
    if let Slot {
        on: true,
        rating: Some(v),
        ..
    } = s
    {
        rating.count += 1;
        rating.sum += u64::from(v);
        rating.histogram[usize::from(v.clamp(1, 5) - 1)] += 1;
        changed = true;
    }
    if changed {
        ov.put_rating(pk, &rating);
        ctx.changed_products
            .insert(*pk, (*producer, code.to_string()));
    }
    Ok(())
}

fn response_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    target: &RecordId,
    producer: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let k = SlotKey::response(target, producer);
    if offer(ov, k.clone(), &s)?.is_none() {
        return Ok(());
    }
    if let Some(mut tally) = ctx.take_tally(ov, target)? {
        let winner = ov.slot(&k)?;
        tally.response = winner.filter(|w| w.on).map(|w| ResponseInfo {
            id: w.id,
            status: w.status.unwrap_or_default(),
            created_at: w.at,
        });
        ctx.put_tally(*target, tally);
        ctx.changed_petitions.insert(*target);
    }
    Ok(())
}

fn add_pledge(tally: &mut PetitionTally, p: &Option<(u64, String)>, add: bool) {
    let Some((v, cur)) = p else { return };
    let e = tally.pledged.entry(cur.clone()).or_insert(0);
    *e = if add {
        e.saturating_add(u128::from(*v))
    } else {
        e.saturating_sub(u128::from(*v))
    };
    if *e == 0 {
        tally.pledged.remove(cur);
    }
}

/// An endorsement's pledge in the petition's campaign currency (0: none, or not a campaign).
fn campaign_pledge(tally: &PetitionTally, s: &Slot) -> u64 {
    match (&tally.goal, &s.pledge) {
        (Some((_, currency)), Some((v, c))) if c == currency => *v,
        _ => 0,
    }
}

/// An endorsement slot's winner changed from `old` to `new`: the count, the pledges and the
/// member count follow.
fn count_change<B: Backing>(
    ov: &Overlay<'_, B>,
    tally: &mut PetitionTally,
    author: &AuthorKey,
    old: Option<&Slot>,
    new: Option<&Slot>,
) -> Result<()> {
    let old_on = old.is_some_and(|o| o.on);
    let new_on = new.is_some_and(|n| n.on);
    if let Some(o) = old.filter(|o| o.on) {
        tally.endorsers -= 1;
        add_pledge(tally, &o.pledge, false);
    }
    if let Some(n) = new.filter(|n| n.on) {
        tally.endorsers += 1;
        add_pledge(tally, &n.pledge, true);
    }
    if old_on != new_on {
        if let Some(g) = &tally.group {
            if member(ov, g, author)? {
                if new_on {
                    tally.member_endorsers += 1;
                } else {
                    tally.member_endorsers -= 1;
                }
            }
        }
    }
    Ok(())
}

/// `first_reached_at` and `latest_at` from a petition's whole history (PROTOCOL.md §9): its
/// endorsements and retractions taken in (`created_at`, id) order, each author's latest
/// one standing; the first record after which the petition is reached.
fn walk(tally: &mut PetitionTally, history: &[HistoryEntry]) {
    let mut standing: HashMap<AuthorKey, u64> = HashMap::new();
    let mut pledged: u128 = 0;
    tally.first_reached_at = None;
    tally.latest_at = None;
    for e in history {
        if let Some(p) = standing.remove(&e.author) {
            pledged -= u128::from(p);
        }
        if e.on {
            standing.insert(e.author, e.pledge);
            pledged += u128::from(e.pledge);
        }
        tally.latest_at = Some(e.at);
        if tally.first_reached_at.is_none() && tally.meets(standing.len() as u64, pledged) {
            tally.first_reached_at = Some(e.at);
        }
    }
}

/// Queues the events of a petition whose reaching changed.
fn note_changes(
    ctx: &mut Ctx,
    petition: &RecordId,
    tally: &PetitionTally,
    was_reached: bool,
    first_before: Option<u64>,
) {
    if tally.reached && !was_reached {
        ctx.crossed.insert(*petition);
    }
    if tally.goal.is_some() && first_before.is_none() && tally.first_reached_at.is_some() {
        ctx.funded.insert(*petition);
    }
}

fn endorse_slot<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    petition: &RecordId,
    author: &AuthorKey,
    s: Slot,
) -> Result<()> {
    let Some(mut tally) = ctx.take_tally(ov, petition)? else {
        return Err(Error::Corrupt(
            "endorsement applied before its petition".into(),
        ));
    };
    // Made after the petition closed (its deadline, or its author withdrew it): neither an
    // endorsement nor a retraction counts; the state at the close is final (§9).
    if tally.closes_at().is_some_and(|c| s.at > c) {
        return Ok(());
    }
    let entry = HistoryEntry {
        at: s.at,
        id: s.id,
        author: *author,
        on: s.on,
        pledge: campaign_pledge(&tally, &s),
    };
    ov.put_history(petition, &entry);
    let was = tally.reached;
    let first = tally.first_reached_at;
    if let Some(old) = offer(ov, SlotKey::endorsement(petition, author), &s)? {
        // Counted, though it reached this node well after the deadline, while this node
        // held the petition since before it: a backdated endorsement looks like this (so
        // does one that was held up). Not for the count, which cannot know; for the
        // audit, which reports it (PROTOCOL.md §9.2).
        if s.on
            && ctx.now > 0
            && tally
                .deadline
                .is_some_and(|d| ctx.now > d.saturating_add(LATE_GRACE_MS))
            && ov.held_before_deadline(petition)?
        {
            ov.mark_late(petition, &s.id, ctx.now);
        }
        count_change(ov, &mut tally, author, old.as_ref(), Some(&s))?;
        tally.settle();
    }
    if tally.latest_at.is_none_or(|l| s.at > l) {
        // After every other record: the state after it is the current one.
        tally.latest_at = Some(s.at);
        if tally.first_reached_at.is_none() && tally.reached {
            tally.first_reached_at = Some(s.at);
        }
    } else if tally.first_reached_at.is_none_or(|f| s.at <= f) {
        // Before the record that first reached it (or it was never reached): walk again.
        // A record after that one cannot move it, whatever it changes.
        let history = ov.history(petition)?;
        walk(&mut tally, &history);
    }
    note_changes(ctx, petition, &tally, was, first);
    ctx.put_tally(*petition, tally);
    ctx.changed_petitions.insert(*petition);
    Ok(())
}

/// A withdrawal of `petition` created at `at`: the earliest withdrawal closes the petition,
/// and what was made after it stops counting, whenever it arrived.
fn withdraw<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    petition: &RecordId,
    at: u64,
) -> Result<()> {
    let Some(mut tally) = ctx.take_tally(ov, petition)? else {
        return Ok(());
    };
    if tally.withdrawn_at.is_some_and(|w| w <= at) {
        return Ok(());
    }
    let closed_before = tally.closes_at();
    tally.withdrawn = true;
    tally.withdrawn_at = Some(at);
    if closed_before.is_none_or(|c| at < c) {
        let was = tally.reached;
        let first = tally.first_reached_at;
        close_at(ov, ctx, petition, &mut tally, at)?;
        note_changes(ctx, petition, &tally, was, first);
    }
    ctx.put_tally(*petition, tally);
    ctx.changed_petitions.insert(*petition);
    Ok(())
}

/// Closes a petition at `at`: the records of its history made after it no longer count.
/// Each endorser whose standing record is one of them goes back to their latest record
/// made by then (or to not endorsing), and the reaching is walked again.
fn close_at<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    petition: &RecordId,
    tally: &mut PetitionTally,
    at: u64,
) -> Result<()> {
    let history = ov.history(petition)?;
    let cut = history.partition_point(|e| e.at <= at);
    if cut == history.len() {
        return Ok(());
    }
    let (kept, dropped) = history.split_at(cut);
    let mut standing: HashMap<AuthorKey, &HistoryEntry> = HashMap::new();
    for e in kept {
        standing.insert(e.author, e);
    }
    let mut authors = BTreeSet::new();
    for e in dropped {
        ov.remove_history(petition, e.at, &e.id);
        authors.insert(e.author);
    }
    for a in authors {
        let k = SlotKey::endorsement(petition, &a);
        let old = ov.slot(&k)?;
        let new = match standing.get(&a) {
            Some(e) => Some(slot_of(ov, ctx, e)?),
            None => None,
        };
        if old == new {
            continue;
        }
        match &new {
            Some(n) => ov.put_slot(k, n),
            None => ov.remove_slot(k),
        }
        count_change(ov, tally, &a, old.as_ref(), new.as_ref())?;
    }
    tally.settle();
    walk(tally, kept);
    Ok(())
}

/// The slot state of a record of a petition's history.
fn slot_of<B: Backing>(ov: &Overlay<'_, B>, ctx: &mut Ctx, e: &HistoryEntry) -> Result<Slot> {
    let Some(rec) = ctx.target(ov, &e.id)? else {
        return Err(Error::Corrupt(
            "petition history names a record not stored".into(),
        ));
    };
    let mut s = Slot::new(&rec, e.on);
    if let Body::Endorsement(en) = &rec.record().body {
        s.pledge = en.pledge.as_ref().map(|a| (a.value, a.currency.clone()));
    }
    Ok(s)
}

/// Membership of `who` in `group` may have changed from `before`: update the group's member
/// count and the member counts of the group's petitions.
fn membership_changed<B: Backing>(
    ov: &mut Overlay<'_, B>,
    ctx: &mut Ctx,
    group: &RecordId,
    who: &AuthorKey,
    before: bool,
) -> Result<()> {
    let after = member(ov, group, who)?;
    if before == after {
        return Ok(());
    }
    if let Some(mut g) = ov.group_tally(group)? {
        if after {
            g.members += 1;
        } else {
            g.members -= 1;
        }
        ov.put_group_tally(group, &g);
    }
    for p in ov.group_petitions(group)? {
        if !slot_on(ov, &SlotKey::endorsement(&p, who))? {
            continue;
        }
        if let Some(mut t) = ctx.take_tally(ov, &p)? {
            if after {
                t.member_endorsers += 1;
            } else {
                t.member_endorsers -= 1;
            }
            ctx.put_tally(p, t);
            ctx.changed_petitions.insert(p);
        }
    }
    Ok(())
}
