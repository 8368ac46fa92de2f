//! The dashboard over HTTP, for the tests: a node in process with its API on 127.0.0.1,
//! requests with or without a session, and calls to the JSON API with the bearer token.
#![allow(dead_code)]

use std::time::Duration;

use chorus_node::DataDir;

use crate::common::{start_with, TestNode};

pub struct Dashboard {
    pub node: TestNode,
    pub base: String,
    pub host: String,
    pub token: String,
    pub agent: ureq::Agent,
}

/// An answer: status, headers we look at, body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Dashboard {
    pub async fn start() -> Dashboard {
        let node = start_with(&[], |c| c.api.listen = "127.0.0.1:0".into()).await;
        let host = node.node.api_addr().unwrap().to_string();
        let token = DataDir::new(node._dir.path()).api_token().unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Dashboard {
            node,
            base: format!("http://{host}"),
            host,
            token,
            agent,
        }
    }

    /// A request: `headers` are added as given; a form body for a POST.
    pub async fn ask(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        form: Option<String>,
    ) -> Answer {
        let agent = self.agent.clone();
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let method = method.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let resp = if method == "GET" {
                let mut r = agent.get(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                r.call()
            } else {
                let mut r = agent.post(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                r.header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.unwrap_or_default().as_bytes())
            }
            .unwrap();
            let h = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (status, location, set_cookie) =
                (resp.status().as_u16(), h("location"), h("set-cookie"));
            let body = resp.into_body().read_to_string().unwrap_or_default();
            Answer {
                status,
                location,
                set_cookie,
                body,
            }
        })
        .await
        .unwrap()
    }

    /// A call to the JSON API with the bearer token (a JSON body, or none).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let method = method.to_string();
        let text = tokio::task::spawn_blocking(move || {
            let resp = if method == "GET" {
                agent.get(&url).header("Authorization", &auth).call()
            } else {
                let r = agent.post(&url).header("Authorization", &auth);
                match body {
                    Some(b) => r
                        .header("Content-Type", "application/json")
                        .send(b.to_string().as_bytes()),
                    None => r.send_empty(),
                }
            };
            resp.unwrap().into_body().read_to_string().unwrap()
        })
        .await
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A login link from the API (what `chorus open` prints).
    pub async fn link(&self) -> String {
        let v = self.api("POST", "/v1/web/link", None).await;
        v["url"].as_str().unwrap().to_string()
    }

    /// Logs in with a fresh link; the session cookie (`name=value`).
    pub async fn log_in(&self) -> String {
        let link = self.link().await;
        let login = self.ask("GET", &link, &[], None).await;
        login
            .set_cookie
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }
}

/// The CSRF token a page carries.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    page[at..at + 64].to_string()
}

/// An answer whose body is kept as bytes (a file), with all its headers.
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// A header's value (the first, by name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One part of a `multipart/form-data` body: a field, or a file when `file_name` is given.
pub struct Part<'a> {
    pub name: &'a str,
    pub file_name: Option<&'a str>,
    pub bytes: Vec<u8>,
}

impl Dashboard {
    /// A request whose answer is read as bytes; `body` (with its content type) for a POST.
    pub async fn ask_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<(String, Vec<u8>)>,
    ) -> RawAnswer {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let method = method.to_string();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let resp = if method == "GET" {
                let mut r = agent.get(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                r.call()
            } else {
                let mut r = agent.post(&url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                let (mime, bytes) = body.unwrap_or_default();
                r.header("Content-Type", mime).send(&bytes[..])
            }
            .unwrap();
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = resp
                .into_body()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_vec()
                .unwrap_or_default();
            RawAnswer {
                status,
                headers,
                body,
            }
        })
        .await
        .unwrap()
    }

    /// A `multipart/form-data` POST of `parts`, as a browser sends a form with a file.
    pub async fn post_multipart(
        &self,
        path: &str,
        headers: &[(&str, String)],
        parts: &[Part<'_>],
    ) -> RawAnswer {
        let boundary = "----chorus-test-boundary-7f3a9c";
        let mut body = Vec::new();
        for p in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match p.file_name {
                Some(f) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n",
                        p.name
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                        p.name
                    )
                    .as_bytes(),
                ),
            }
            body.extend_from_slice(&p.bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.ask_raw(
            "POST",
            path,
            headers,
            Some((format!("multipart/form-data; boundary={boundary}"), body)),
        )
        .await
    }
}
