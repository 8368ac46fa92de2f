//! Reading `GET /v1/events`, a server-sent event stream, one event at a time.

use std::io::BufRead;

use super::error::Error;
use crate::event::Event;

/// One server-sent event: its name, its id and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` line (`record`, `tally`, `ready`, ...); empty when there is none.
    pub event: String,
    /// This event's `id:` (the journal's sequence number), if it has one that is a number.
    pub id: Option<u64>,
    /// The `data:` lines, joined by newlines (the node sends one JSON object on one line).
    pub data: String,
}

impl SseEvent {
    /// The data as the typed event it carries.
    pub fn decode(&self) -> Result<Event, Error> {
        serde_json::from_str(&self.data).map_err(|source| Error::BadAnswer {
            what: format!("event {}", self.event),
            source,
        })
    }
}

/// Reads server-sent events from a byte stream: an iterator that yields each event once
/// its blank line arrives, and ends with the stream. Comments (the node's keep-alives,
/// `:` lines), `retry:` and events without data are skipped. Unlike a browser, it does not
/// carry an `id` over to the following events: each event has its own or none.
pub struct SseReader<R> {
    lines: std::io::Lines<R>,
}

impl<R: BufRead> SseReader<R> {
    /// Reads events from `reader`.
    pub fn new(reader: R) -> Self {
        SseReader {
            lines: reader.lines(),
        }
    }
}

impl<R: BufRead> Iterator for SseReader<R> {
    type Item = Result<SseEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut event = String::new();
        let mut id = None;
        let mut data: Option<String> = None;
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(Error::Broken(e))),
            };
            if line.is_empty() {
                match data.take() {
                    Some(data) if !data.is_empty() => {
                        return Some(Ok(SseEvent { event, id, data }))
                    }
                    _ => {
                        event.clear();
                        id = None;
                    }
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            match field {
                "event" => event = value.trim().to_string(),
                "id" => id = value.trim().parse().ok(),
                "data" => {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match &mut data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(value);
                        }
                        None => data = Some(value.to_string()),
                    }
                }
                // A comment (`: keep-alive`), `retry:` or a field nobody defined.
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(stream: &str) -> Vec<SseEvent> {
        SseReader::new(stream.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    #[test]
    fn reads_names_ids_and_data_and_skips_keep_alives() {
        let stream = ": keep-alive\n\n\
            event: record\nid: 7\ndata: {\"type\":\"record\",\"seq\":7,\"record\":{}}\n\n\
            :\n\n\
            event:tally\ndata:{\"type\":\"tally\",\n\
            data: \"tally\":{}}\n\n\
            retry: 1000\n\
            event: ready\r\nid: 9\r\ndata: {\"type\":\"ready\",\"seq\":9}\r\n\r\n\
            event: lost\nid: 10\n\n\
            event: broken\ndata: {\"type\"";
        let events = read(stream);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0].event, "record");
        assert_eq!(events[0].id, Some(7));
        assert_eq!(events[0].data, r#"{"type":"record","seq":7,"record":{}}"#);
        assert_eq!(events[1].event, "tally");
        assert_eq!(events[1].id, None, "an id belongs to its own event only");
        assert_eq!(events[1].data, "{\"type\":\"tally\",\n\"tally\":{}}");
        assert_eq!(events[2].event, "ready");
        assert_eq!(events[2].id, Some(9));
        assert!(matches!(
            events[2].decode(),
            Ok(Event::Ready(crate::ReadyEvent { seq: 9 }))
        ));
    }

    #[test]
    fn multi_line_data_decodes_and_bad_data_is_a_bad_answer() {
        let events = read("event: lagged\ndata: {\"type\":\n data: \"lagged\", \"missed\": 3}\n\n");
        // `data:` then a line starting with a space is not a data line: only the first counts.
        assert_eq!(events[0].data, "{\"type\":");
        let events = read("event: lagged\ndata: {\"type\":\ndata: \"lagged\", \"missed\": 3}\n\n");
        assert_eq!(
            events[0].decode().unwrap(),
            Event::Lagged(crate::LaggedEvent { missed: 3 })
        );
        let bad = read("event: record\ndata: {\"type\": \"record\"}\n\n");
        assert!(matches!(bad[0].decode(), Err(Error::BadAnswer { .. })));
    }

    #[test]
    fn a_broken_stream_is_an_error() {
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("reset"))
            }
        }
        let mut r = SseReader::new(std::io::BufReader::new(Broken));
        assert!(matches!(r.next(), Some(Err(Error::Broken(_)))));
    }
}
