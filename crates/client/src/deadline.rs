//! A petition's deadline as people write it, read the one way the node and its clients share.

/// A deadline: milliseconds, RFC 3339 (`2026-12-31T18:00:00Z`) or a date (`2026-12-31`,
/// meaning the end of that day, UTC).
pub fn parse_deadline(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let text = if s.len() == 10 {
        format!("{s}T23:59:59.999Z")
    } else {
        s.to_string()
    };
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD or RFC 3339): {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis() as u64;
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse_as_dates_and_times() {
        let day = parse_deadline("2026-12-31").unwrap();
        let exact = parse_deadline("2026-12-31T23:59:59.999Z").unwrap();
        assert_eq!(day, exact);
        assert_eq!(parse_deadline("1767225599999").unwrap(), 1_767_225_599_999);
        assert!(parse_deadline("next tuesday").is_err());
        assert!(parse_deadline("2026-13-40").is_err());
    }
}
