//! What can go wrong talking to a node.

/// A failed call, by whose fault: no node there, no answer in time, the node refused (its
/// error body), or an answer that breaks the contract.
///
/// Causes are kept as `source`s, not repeated in the message, so `anyhow`'s `{:#}` prints
/// each once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answers at the address (no node runs there, or it stopped).
    #[error("cannot reach the node at {addr}")]
    Unreachable {
        /// The address called.
        addr: String,
        /// Why the connection failed.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The node took longer than the call's time limit.
    #[error("the node did not answer in time")]
    Timeout,
    /// The node answered with an API error.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable code (`bad_key`, `not_found`, ...).
        code: String,
        /// The node's message.
        message: String,
    },
    /// The answer is not what the contract says (not JSON, or not of the expected shape).
    #[error("the node's answer to {what} is not what the contract says")]
    BadAnswer {
        /// The call or event, like `GET /v1/status`.
        what: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// The answer (or the event stream) broke off while it was read.
    #[error("the node's answer broke off")]
    Broken(#[source] std::io::Error),
    /// The request could not be written as JSON.
    #[error("cannot encode the request")]
    Encode(#[source] serde_json::Error),
}
