//! `$top` / `$skipToken` paging with keyset tokens and absolute `nextLink`s.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::text;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::store::filter::{List, Listing};

pub const DEFAULT_TOP: i64 = 100;
pub const MAX_TOP: i64 = 1000;

/// Query parameters every list route takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The API version.
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
    /// Page size, 1–1000 (default 100). A Crowsnest extension.
    #[serde(rename = "$top")]
    #[param(rename = "$top", value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub top: Option<String>,
    /// Where the next page starts; copy it from `nextLink`. A Crowsnest extension.
    #[serde(rename = "$skipToken")]
    #[param(rename = "$skipToken")]
    pub skip_token: Option<String>,
}

/// A validated page request: how many, and after which key.
pub struct PageRequest {
    pub top: i64,
    pub after: Option<Vec<String>>,
}

impl ListQuery {
    /// `key_len` is how many strings the list's sort key has; a token of another shape is refused.
    pub fn page(&self, key_len: usize) -> Result<PageRequest, ApiError> {
        let top = match self.top.as_deref() {
            None => DEFAULT_TOP,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "$top",
                        format!(
                            "$top must be an integer from 1 to {MAX_TOP}; got {:?}.",
                            truncate(raw)
                        ),
                    ));
                }
            },
        };
        let after = match self.skip_token.as_deref() {
            None => None,
            Some(token) => Some(decode_token(token, key_len)?),
        };
        Ok(PageRequest { top, after })
    }
}

/// A page of results: `value` is always present, `nextLink` only when more may follow.
pub struct Page<T> {
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// One page of a keyset listing: the request's `$top` and `$skipToken` applied to `listing`,
/// `top + 1` rows read by `load` (one call into the store), and the page cut with its `nextLink`.
pub async fn keyset_page<L, F, R>(
    state: &super::AppState,
    req: &actix_web::HttpRequest,
    query: &ListQuery,
    mut listing: Listing<L>,
    load: F,
) -> Result<Page<L::Row>, ApiError>
where
    L: List,
    Listing<L>: Clone,
    F: FnOnce(Listing<L>, i64) -> R,
    R: Future<Output = Result<Vec<L::Row>, StoreError>>,
{
    let page = query.page(listing.token_len())?;
    if let Some(token) = &page.after {
        listing = listing.after(token)?;
    }
    let top = page.top;
    let rows = load(listing.clone(), top + 1).await?;
    Ok(paginate(
        rows,
        top,
        |row| listing.token(row),
        |token| next_link(&state.public_url, req.path(), req.query_string(), token),
        |row| row,
    ))
}

/// Turns up to `top + 1` loaded rows into a page; the extra row only says that another page exists.
pub fn paginate<R, T>(
    mut rows: Vec<R>,
    top: i64,
    key: impl Fn(&R) -> Vec<String>,
    link: impl FnOnce(&str) -> String,
    render: impl FnMut(R) -> T,
) -> Page<T> {
    let top = usize::try_from(top).unwrap_or(usize::MAX);
    let next_link = if rows.len() > top {
        rows.truncate(top);
        rows.last().map(|last| link(&encode_token(&key(last))))
    } else {
        None
    };
    Page {
        value: rows.into_iter().map(render).collect(),
        next_link,
    }
}

pub(super) fn encode_token(key: &[String]) -> String {
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The answer to a `$skipToken` this service did not issue for the list.
pub fn invalid_skip_token() -> ApiError {
    ApiError::BadRequest {
        code: "InvalidSkipToken",
        message:
            "The $skipToken is not one this service issued for this list; start again without it."
                .to_owned(),
        target: Some("$skipToken".to_owned()),
    }
}

fn decode_token(token: &str, key_len: usize) -> Result<Vec<String>, ApiError> {
    let invalid = invalid_skip_token;
    if token.len() > 2048 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let key: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    // Issued tokens hold stored values only; one with a NUL was made up.
    if key.len() == key_len && key.iter().all(|k| text::storable(k)) {
        Ok(key)
    } else {
        Err(invalid())
    }
}

/// The request's own URL on `public_url`, with `$skipToken` replaced.
pub fn next_link(public_url: &url::Url, path: &str, query: &str, token: &str) -> String {
    let mut out = public_url.as_str().trim_end_matches('/').to_owned();
    out.push_str(path);
    let mut separator = '?';
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "$skipToken" {
            continue;
        }
        out.push(separator);
        separator = '&';
        out.push_str(&encode_key(&key));
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
    }
    out.push(separator);
    out.push_str("$skipToken=");
    out.push_str(token);
    out
}

/// Keeps OData's `$` readable in keys; everything else is form-encoded.
fn encode_key(key: &str) -> String {
    match key.strip_prefix('$') {
        Some(rest) => format!(
            "${}",
            url::form_urlencoded::byte_serialize(rest.as_bytes()).collect::<String>()
        ),
        None => url::form_urlencoded::byte_serialize(key.as_bytes()).collect(),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let token = encode_token(&["a".to_owned(), "b/c".to_owned()]);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_token(&token, 2).unwrap(), vec!["a", "b/c"]);
        assert!(decode_token(&token, 1).is_err());
        assert!(decode_token("not base64!", 1).is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("{}"), 1).is_err());
    }

    #[test]
    fn next_link_keeps_the_query_and_replaces_the_token() {
        let base = url::Url::parse("https://cn.example.com/").unwrap();
        let link = next_link(
            &base,
            "/subscriptions/s/x",
            "api-version=2019-01-01-preview&%24top=5&$skipToken=old",
            "NEW",
        );
        assert_eq!(
            link,
            "https://cn.example.com/subscriptions/s/x?api-version=2019-01-01-preview&$top=5&$skipToken=NEW"
        );
    }
}
