//! `DATA_DIR/api.json`: where a running node's API listens.

use serde::{Deserialize, Serialize};

/// What a node writes to `api.json` when it starts (and removes when it stops), so local
/// clients find it: `{"addr": "127.0.0.1:7471", "pid": 12345, "started": 8125034}`.
///
/// A client checks that the process is still the node before it sends the token: a node that
/// was killed leaves the file behind, and another process may listen on its port since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiInfo {
    /// The address the API is bound to, `HOST:PORT` (the port actually bound when the
    /// config asked for port 0).
    pub addr: String,
    /// The node's process id.
    pub pid: u32,
    /// When that process started (Linux: clock ticks since boot, field 22 of
    /// `/proc/PID/stat`); with the pid it names the node's process for good. Absent where
    /// unknown, and from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_info_round_trips() {
        let v = serde_json::json!({ "addr": "127.0.0.1:7471", "pid": 12345 });
        let info: ApiInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(info.addr, "127.0.0.1:7471");
        assert_eq!(info.started, None);
        assert_eq!(serde_json::to_value(&info).unwrap(), v);
        let v = serde_json::json!({ "addr": "127.0.0.1:7471", "pid": 1, "started": 77 });
        let info: ApiInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(info.started, Some(77));
        assert_eq!(serde_json::to_value(&info).unwrap(), v);
    }
}
