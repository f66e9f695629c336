//! What a 200's count headers and body say: the count of a query, and the records of a page or
//! why there are none (the client decides whether that is acceptable for the page it asked for,
//! see [`super`]).

/// The headers of the first page that say how many records the query matches.
pub const RESULTS_HEADER: &str = "X-Number-Of-Results";
pub const PER_PAGE_HEADER: &str = "X-Results-Per-Page";

/// A count header's value as a number: ASCII digits, optionally grouped by comma thousands
/// separators as some Tascomi hosts send them (`1,021` is 1021; `1,02`, `1,,021`, `,1` and
/// `1.021` are not numbers). Surrounding blanks are ignored. `None` for anything else.
pub fn parse_count_header(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.contains(',') {
        let mut groups = value.split(',');
        let first = groups.next()?;
        if !(digits(first) && first.len() <= 3) {
            return None;
        }
        let mut number = first.to_owned();
        for group in groups {
            if !(digits(group) && group.len() == 3) {
                return None;
            }
            number.push_str(group);
        }
        number.parse().ok()
    } else if digits(value) {
        value.parse().ok()
    } else {
        None
    }
}

/// Both count headers of a count request as numbers, or why not (naming the header).
pub(super) fn count_headers(
    total: Option<&str>,
    per_page: Option<&str>,
) -> Result<(u64, u64), String> {
    let read = |name: &str, value: Option<&str>| match value {
        None => Err(format!("the count header {name} is missing")),
        Some(text) => parse_count_header(text).ok_or_else(|| {
            format!(
                "the count header {name} is not a number: {:?}",
                text.chars().take(40).collect::<String>()
            )
        }),
    };
    let total = read(RESULTS_HEADER, total)?;
    let per_page = read(PER_PAGE_HEADER, per_page)?;
    if per_page == 0 && total > 0 {
        return Err(format!(
            "the count header {PER_PAGE_HEADER} is 0 while {RESULTS_HEADER} announces {total} records"
        ));
    }
    Ok((total, per_page))
}

/// The records of a 200's body: `Ok(None)` for an empty, blank or `null` body (whether that is
/// acceptable depends on the page), an error saying why for anything but a list of objects.
pub(super) fn read_body(
    body: &[u8],
    html: bool,
) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if html || body.trim_ascii_start().first() == Some(&b'<') {
        return Err("an HTML page rather than JSON".into());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("malformed JSON: {err}"))?;
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                serde_json::Value::Object(record) => Ok(record),
                other => Err(format!(
                    "record {i} is a JSON {} rather than an object",
                    json_kind(&other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(format!(
            "the body is a JSON {} rather than a list of records",
            json_kind(&other)
        )),
    }
}

pub(super) fn empty_body_kind(body: &[u8]) -> &'static str {
    if body.iter().all(u8::is_ascii_whitespace) {
        "an empty body"
    } else {
        "a null body"
    }
}

/// The records of a body: a JSON list of objects; empty, blank or `null` means none (whether a
/// page may be empty is the client's decision, see the module docs). An HTML page is an error.
pub fn parse_records(
    body: &[u8],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    read_body(body, false).map(Option::unwrap_or_default)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "object",
    }
}
