//! `DATA_DIR/api.json`: where a running node's API listens.

use serde::{Deserialize, Serialize};

/// What a node writes to `api.json` when it starts (and removes when it stops), so local
/// clients find it: `{"addr": "127.0.0.1:7471", "pid": 12345}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiInfo {
    /// The address the API is bound to, `HOST:PORT` (the port actually bound when the
    /// config asked for port 0).
    pub addr: String,
    /// The node's process id.
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_info_round_trips() {
        let v = serde_json::json!({ "addr": "127.0.0.1:7471", "pid": 12345 });
        let info: ApiInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(info.addr, "127.0.0.1:7471");
        assert_eq!(serde_json::to_value(&info).unwrap(), v);
    }
}
