//! The kind rules: what a record that points at another record needs of it, and who may make
//! it (PROTOCOL.md §9). They need the record pointed at, so they are not part of §5's
//! context-free validity: a node checks them once both records are at hand.
//!
//! Each rule is one function over the facts of the record pointed at ([`Pointed`]: its kind,
//! author, topic and, for a petition or review, the producer it is aimed at) and returns a
//! [`RuleError`] whose [`RuleError::code`] is stable: the node's ingest, its audit and its
//! API all call these functions, and the API answers with the same codes.

use crate::record::{Amount, AuthorKey, Body, Kind, PetitionVariant, Record, RecordId, Topic};

/// What the kind rules need to know of a record that another record points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointed {
    /// Its kind.
    pub kind: Kind,
    /// Its author (a group's founder, a record's owner).
    pub author: AuthorKey,
    /// Its topic.
    pub topic: Topic,
    /// The producer a petition or review is aimed at.
    pub producer: Option<AuthorKey>,
    /// A campaign's currency: the currency of its goal (three ASCII letters).
    pub currency: Option<[u8; 3]>,
}

impl Pointed {
    /// The facts of a record.
    pub fn of(r: &Record) -> Self {
        Pointed {
            kind: r.kind(),
            author: r.author,
            topic: r.topic,
            producer: match &r.body {
                Body::Petition(p) => Some(p.producer),
                Body::Review(rv) => Some(rv.product.producer),
                _ => None,
            },
            currency: match &r.body {
                Body::Petition(p) => match &p.variant {
                    PetitionVariant::Campaign { goal } => currency_code(&goal.currency),
                    _ => None,
                },
                _ => None,
            },
        }
    }
}

/// A currency's three letters as bytes (`None` if it is not three bytes, which a valid
/// record's amount never is).
pub fn currency_code(currency: &str) -> Option<[u8; 3]> {
    currency.as_bytes().try_into().ok()
}

/// A kind rule a record breaks. The message names the record's kind and the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A join points at something other than a group.
    #[error("join: target is not a group")]
    JoinTargetNotGroup,
    /// An admit points at something other than a group.
    #[error("admit: target is not a group")]
    AdmitTargetNotGroup,
    /// An admit by someone other than the group's founder.
    #[error("admit: only the group's founder admits")]
    AdmitNotFounder,
    /// An endorsement points at something other than a petition.
    #[error("endorsement: target is not a petition")]
    EndorsementTargetNotPetition,
    /// An endorsement on another topic than its petition's.
    #[error("endorsement: topic differs from the petition's")]
    EndorsementWrongTopic,
    /// An endorsement of a campaign pledging in another currency than the campaign's goal.
    #[error("endorsement: pledge currency differs from the campaign's")]
    EndorsementCurrencyMismatch,
    /// A retraction by someone other than its target's author.
    #[error("retraction: only the author retracts")]
    RetractionNotAuthor,
    /// A retraction of a retraction.
    #[error("retraction: a retraction cannot be retracted")]
    RetractionOfRetraction,
    /// A retraction on another topic than its target's.
    #[error("retraction: topic differs from the target's")]
    RetractionWrongTopic,
    /// A response to something other than a petition or review.
    #[error("response: target is not a petition or review")]
    ResponseTargetNotAnswerable,
    /// A response by someone other than the targeted producer.
    #[error("response: only the targeted producer answers")]
    ResponseNotProducer,
}

impl RuleError {
    /// Every rule error, for tables and tests.
    pub const ALL: [RuleError; 11] = [
        RuleError::JoinTargetNotGroup,
        RuleError::AdmitTargetNotGroup,
        RuleError::AdmitNotFounder,
        RuleError::EndorsementTargetNotPetition,
        RuleError::EndorsementWrongTopic,
        RuleError::EndorsementCurrencyMismatch,
        RuleError::RetractionNotAuthor,
        RuleError::RetractionOfRetraction,
        RuleError::RetractionWrongTopic,
        RuleError::ResponseTargetNotAnswerable,
        RuleError::ResponseNotProducer,
    ];

    /// The stable code (PROTOCOL.md §9.1; the local API answers with it).
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::JoinTargetNotGroup | RuleError::AdmitTargetNotGroup => "not_a_group",
            RuleError::AdmitNotFounder => "not_founder",
            RuleError::EndorsementTargetNotPetition => "not_a_petition",
            RuleError::EndorsementWrongTopic | RuleError::RetractionWrongTopic => "wrong_topic",
            RuleError::EndorsementCurrencyMismatch => "currency_mismatch",
            RuleError::RetractionNotAuthor => "not_yours",
            RuleError::RetractionOfRetraction => "not_retractable",
            RuleError::ResponseTargetNotAnswerable => "not_answerable",
            RuleError::ResponseNotProducer => "not_producer",
        }
    }

    /// For a rule about who may make the record: the one key that may, given the record
    /// pointed at (`None` for the rules about what may be pointed at).
    pub fn entitled(&self, target: &Pointed) -> Option<AuthorKey> {
        match self {
            RuleError::AdmitNotFounder | RuleError::RetractionNotAuthor => Some(target.author),
            RuleError::ResponseNotProducer => target.producer,
            _ => None,
        }
    }
}

/// A join points at a group.
pub fn join(group: &Pointed) -> Result<(), RuleError> {
    if group.kind != Kind::Group {
        return Err(RuleError::JoinTargetNotGroup);
    }
    Ok(())
}

/// An admit points at a group, and only the group's founder admits.
pub fn admit(author: &AuthorKey, group: &Pointed) -> Result<(), RuleError> {
    if group.kind != Kind::Group {
        return Err(RuleError::AdmitTargetNotGroup);
    }
    if group.author != *author {
        return Err(RuleError::AdmitNotFounder);
    }
    Ok(())
}

/// An endorsement points at a petition and travels on the petition's topic; a pledge to a
/// campaign is in the campaign's currency (its goal's).
pub fn endorsement(
    topic: &Topic,
    pledge: Option<&Amount>,
    petition: &Pointed,
) -> Result<(), RuleError> {
    if petition.kind != Kind::Petition {
        return Err(RuleError::EndorsementTargetNotPetition);
    }
    if petition.topic != *topic {
        return Err(RuleError::EndorsementWrongTopic);
    }
    if let (Some(want), Some(p)) = (petition.currency, pledge) {
        if p.currency.as_bytes() != want {
            return Err(RuleError::EndorsementCurrencyMismatch);
        }
    }
    Ok(())
}

/// Only a record's author retracts it, a retraction is final, and it travels on its
/// target's topic.
pub fn retraction(author: &AuthorKey, topic: &Topic, target: &Pointed) -> Result<(), RuleError> {
    if target.author != *author {
        return Err(RuleError::RetractionNotAuthor);
    }
    if target.kind == Kind::Retraction {
        return Err(RuleError::RetractionOfRetraction);
    }
    if target.topic != *topic {
        return Err(RuleError::RetractionWrongTopic);
    }
    Ok(())
}

/// A response answers a petition or review, and only the producer it is aimed at answers.
pub fn response(author: &AuthorKey, target: &Pointed) -> Result<(), RuleError> {
    match target.producer {
        None => Err(RuleError::ResponseTargetNotAnswerable),
        Some(p) if p != *author => Err(RuleError::ResponseNotProducer),
        Some(_) => Ok(()),
    }
}

/// The record `body` cannot take effect without: the group joined or admitted to, the
/// petition endorsed, the record retracted or answered. A node holds such a record back until
/// that one is there. An attestation may be about any record, here or not: it needs none.
pub fn depends_on(body: &Body) -> Option<RecordId> {
    match body {
        Body::Join(j) => Some(j.group),
        Body::Admit(a) => Some(a.group),
        Body::Endorsement(e) => Some(e.petition),
        Body::Retraction(r) => Some(r.target),
        Body::Response(r) => Some(r.target),
        Body::Profile(_)
        | Body::Review(_)
        | Body::Group(_)
        | Body::Petition(_)
        | Body::Attestation(_) => None,
    }
}

/// The rule of `record`'s kind, given the record it points at (see [`Body::target`]).
/// Records that point at nothing, and attestations (which may be about any record), break no
/// kind rule.
pub fn check(record: &Record, target: &Pointed) -> Result<(), RuleError> {
    match &record.body {
        Body::Join(_) => join(target),
        Body::Admit(_) => admit(&record.author, target),
        Body::Endorsement(e) => endorsement(&record.topic, e.pledge.as_ref(), target),
        Body::Retraction(_) => retraction(&record.author, &record.topic, target),
        Body::Response(_) => response(&record.author, target),
        Body::Profile(_)
        | Body::Review(_)
        | Body::Group(_)
        | Body::Petition(_)
        | Body::Attestation(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AuthorKey = AuthorKey([1; 32]);
    const B: AuthorKey = AuthorKey([2; 32]);
    const P: Topic = Topic::Producer(AuthorKey([3; 32]));

    fn pointed(kind: Kind, author: AuthorKey, producer: Option<AuthorKey>) -> Pointed {
        Pointed {
            kind,
            author,
            topic: P,
            producer,
            currency: None,
        }
    }

    #[test]
    fn joins_point_at_groups() {
        assert_eq!(join(&pointed(Kind::Group, B, None)), Ok(()));
        assert_eq!(
            join(&pointed(Kind::Petition, B, Some(B))),
            Err(RuleError::JoinTargetNotGroup)
        );
    }

    #[test]
    fn only_the_founder_admits() {
        assert_eq!(admit(&A, &pointed(Kind::Group, A, None)), Ok(()));
        assert_eq!(
            admit(&B, &pointed(Kind::Group, A, None)),
            Err(RuleError::AdmitNotFounder)
        );
        assert_eq!(
            admit(&A, &pointed(Kind::Review, A, Some(B))),
            Err(RuleError::AdmitTargetNotGroup)
        );
    }

    #[test]
    fn endorsements_point_at_petitions_on_their_topic() {
        let petition = pointed(Kind::Petition, B, Some(B));
        assert_eq!(endorsement(&P, None, &petition), Ok(()));
        assert_eq!(
            endorsement(&Topic::Meta, None, &petition),
            Err(RuleError::EndorsementWrongTopic)
        );
        assert_eq!(
            endorsement(&P, None, &pointed(Kind::Review, B, Some(B))),
            Err(RuleError::EndorsementTargetNotPetition)
        );
    }

    #[test]
    fn a_pledge_to_a_campaign_is_in_the_campaigns_currency() {
        let amount = |currency: &str| Amount {
            value: 100,
            currency: currency.into(),
        };
        let campaign = Pointed {
            currency: Some(*b"EUR"),
            ..pointed(Kind::Petition, B, Some(B))
        };
        assert_eq!(endorsement(&P, Some(&amount("EUR")), &campaign), Ok(()));
        assert_eq!(endorsement(&P, None, &campaign), Ok(()));
        assert_eq!(
            endorsement(&P, Some(&amount("USD")), &campaign),
            Err(RuleError::EndorsementCurrencyMismatch)
        );
        // Outside a campaign a pledge has no currency to keep.
        let demand = pointed(Kind::Petition, B, Some(B));
        assert_eq!(endorsement(&P, Some(&amount("USD")), &demand), Ok(()));
    }

    #[test]
    fn only_the_author_retracts_once_on_the_same_topic() {
        let mine = pointed(Kind::Endorsement, A, None);
        assert_eq!(retraction(&A, &P, &mine), Ok(()));
        assert_eq!(
            retraction(&B, &P, &mine),
            Err(RuleError::RetractionNotAuthor)
        );
        assert_eq!(
            retraction(&A, &P, &pointed(Kind::Retraction, A, None)),
            Err(RuleError::RetractionOfRetraction)
        );
        assert_eq!(
            retraction(&A, &Topic::Meta, &mine),
            Err(RuleError::RetractionWrongTopic)
        );
    }

    #[test]
    fn only_the_targeted_producer_answers_petitions_and_reviews() {
        for kind in [Kind::Petition, Kind::Review] {
            let t = pointed(kind, A, Some(B));
            assert_eq!(response(&B, &t), Ok(()));
            assert_eq!(response(&A, &t), Err(RuleError::ResponseNotProducer));
        }
        assert_eq!(
            response(&B, &pointed(Kind::Group, B, None)),
            Err(RuleError::ResponseTargetNotAnswerable)
        );
    }

    #[test]
    fn every_rule_has_its_code_and_who_may_names_the_entitled_key() {
        let codes: Vec<(&str, &str)> = RuleError::ALL
            .iter()
            .map(|e| (e.code(), e.to_string().leak() as &str))
            .collect();
        assert_eq!(
            codes.iter().map(|c| c.0).collect::<Vec<_>>(),
            [
                "not_a_group",
                "not_a_group",
                "not_founder",
                "not_a_petition",
                "wrong_topic",
                "currency_mismatch",
                "not_yours",
                "not_retractable",
                "wrong_topic",
                "not_answerable",
                "not_producer"
            ]
        );
        assert_eq!(
            codes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [
                "join: target is not a group",
                "admit: target is not a group",
                "admit: only the group's founder admits",
                "endorsement: target is not a petition",
                "endorsement: topic differs from the petition's",
                "endorsement: pledge currency differs from the campaign's",
                "retraction: only the author retracts",
                "retraction: a retraction cannot be retracted",
                "retraction: topic differs from the target's",
                "response: target is not a petition or review",
                "response: only the targeted producer answers"
            ]
        );
        for (code, message) in codes {
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(message.contains(": "), "{message}");
        }
        let t = pointed(Kind::Petition, A, Some(B));
        assert_eq!(RuleError::ResponseNotProducer.entitled(&t), Some(B));
        assert_eq!(RuleError::RetractionNotAuthor.entitled(&t), Some(A));
        assert_eq!(RuleError::AdmitNotFounder.entitled(&t), Some(A));
        assert_eq!(RuleError::EndorsementWrongTopic.entitled(&t), None);
    }

    #[test]
    fn the_specification_lists_every_rule_with_its_code_and_message() {
        let spec = include_str!("../../../docs/PROTOCOL.md");
        let table: Vec<&str> = spec
            .split("### 9.1")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("PROTOCOL.md has §9.1")
            .lines()
            .filter(|l| l.starts_with("| `"))
            .collect();
        assert_eq!(table.len(), RuleError::ALL.len(), "{table:#?}");
        for (row, e) in table.iter().zip(RuleError::ALL) {
            assert!(row.contains(&format!("`{}`", e.code())), "{row}");
            assert!(row.contains(&format!("`{e}`")), "{row}");
        }
    }

    #[test]
    fn check_applies_the_rule_of_the_records_kind() {
        use crate::record::{Admit, Endorsement, Join, Response, ResponseStatus, Retraction};
        let id = RecordId([7; 32]);
        let rec = |author, topic, body| Record {
            v: crate::PROTOCOL_VERSION,
            author,
            created_at: 1,
            topic,
            body,
        };
        let group = Pointed {
            topic: Topic::Meta,
            ..pointed(Kind::Group, A, None)
        };
        let petition = pointed(Kind::Petition, A, Some(B));
        let cases = [
            (
                rec(B, Topic::Group(id), Body::Join(Join { group: id })),
                petition,
                Err(RuleError::JoinTargetNotGroup),
            ),
            (
                rec(
                    B,
                    Topic::Group(id),
                    Body::Admit(Admit {
                        group: id,
                        member: B,
                    }),
                ),
                group,
                Err(RuleError::AdmitNotFounder),
            ),
            (
                rec(
                    B,
                    P,
                    Body::Endorsement(Endorsement {
                        petition: id,
                        comment: None,
                        pledge: None,
                    }),
                ),
                petition,
                Ok(()),
            ),
            (
                rec(B, P, Body::Retraction(Retraction { target: id })),
                petition,
                Err(RuleError::RetractionNotAuthor),
            ),
            (
                rec(
                    A,
                    P,
                    Body::Response(Response {
                        target: id,
                        status: ResponseStatus::Accepted,
                        text: "ok".into(),
                        root: None,
                    }),
                ),
                petition,
                Err(RuleError::ResponseNotProducer),
            ),
        ];
        for (r, target, want) in cases {
            assert_eq!(check(&r, &target), want, "{:?}", r.kind());
        }
    }
}
