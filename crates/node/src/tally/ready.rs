//! Can a record be applied now? What it points at must be here, and it must keep the kind
//! rules (`chorus_protocol::rules`) given the facts of that record.

use chorus_protocol::{rules, RecordId, RuleError, SignedRecord};

use super::ctx::Ctx;
use crate::error::Result;
use crate::store::overlay::{Backing, Overlay};

/// Whether a record can be applied (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every record it depends on is here and it obeys the kind rules.
    Ready,
    /// It points at a record not yet seen.
    Wait(RecordId),
    /// It breaks a kind rule.
    Reject(RuleError),
}

/// Can `rec` be applied now? Checks the kind rules that need the record it points at.
pub(crate) fn readiness<B: Backing>(
    ov: &Overlay<'_, B>,
    ctx: &mut Ctx,
    rec: &SignedRecord,
) -> Result<Readiness> {
    let r = rec.record();
    let Some(target) = rules::depends_on(&r.body) else {
        return Ok(Readiness::Ready);
    };
    Ok(match ctx.facts(ov, &target)? {
        None => Readiness::Wait(target),
        Some(facts) => match rules::check(r, &facts) {
            Ok(()) => Readiness::Ready,
            Err(e) => Readiness::Reject(e),
        },
    })
}
