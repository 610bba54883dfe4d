//! Strings the database cannot store (see [`crate::domain::text`]) are refused at the edge, before
//! a handler sees them: in the path and the query by one middleware on every resource, in JSON
//! bodies by [`Json`] and [`parse_json`]. The answer is a 400 naming the parameter or JSON path.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::text;
use crate::error::ApiError;

/// The refusal of a parameter or JSON path (`""`: the body itself) holding a character the
/// database cannot store.
fn unstorable(target: &str) -> ApiError {
    let named = if target.is_empty() {
        "The request body".to_owned()
    } else {
        format!("'{}'", target.escape_debug())
    };
    ApiError::BadRequest {
        code: "InvalidParameter",
        message: format!(
            "{named} contains a NUL character (U+0000), which cannot be stored; remove it."
        ),
        target: (!target.is_empty()).then(|| target.to_owned()),
    }
}

/// Middleware: refuses a path parameter or query parameter (name or value) that cannot be stored.
/// The values are decoded as the `Path` and `Query` extractors decode them.
pub async fn refuse_unstorable_uri(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(target) = unstorable_in_uri(req.request()) {
        return Err(unstorable(&target).into());
    }
    next.call(req).await
}

fn unstorable_in_uri(req: &HttpRequest) -> Option<String> {
    // Path values are decoded here except for `%25`, `%2F` and `%2B`, which the `Path` extractor
    // decodes: a `%00` still encoded here would become a NUL there.
    let bad = req
        .match_info()
        .iter()
        .find(|(_, value)| !text::storable(value) || value.contains("%00"));
    if let Some((name, _)) = bad {
        return Some(name.to_owned());
    }
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, value)| !text::storable(name) || !text::storable(value))
        .map(|(name, _)| name.into_owned())
}

/// Refuses `value` when a string or key in it cannot be stored, naming its JSON path.
fn refuse_unstorable(value: &Value) -> Result<(), ApiError> {
    match text::unstorable_at(value) {
        Some(path) => Err(unstorable(&path)),
        None => Ok(()),
    }
}

/// Parses a JSON body as `T`, refusing a string that cannot be stored wherever it is in the body
/// (fields `T` ignores included); `invalid` words the refusal of a body that is not a `T`.
pub fn parse_json<T: DeserializeOwned>(
    body: &[u8],
    invalid: impl Fn(serde_json::Error) -> ApiError,
) -> Result<T, ApiError> {
    // A JSON string can hold a NUL only as the escape `\u0000`: bodies without one go straight
    // to `T` (a large PodList is not parsed twice).
    if !contains(body, br"\u0000") {
        return serde_json::from_slice(body).map_err(invalid);
    }
    let value: Value = serde_json::from_slice(body).map_err(&invalid)?;
    refuse_unstorable(&value)?;
    T::deserialize(value).map_err(invalid)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `web::Json<T>` (same limits, content type and error bodies from the app's `JsonConfig`), with
/// the body's strings checked first.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            refuse_unstorable(&value)?;
            T::deserialize(value).map(Json).map_err(|e| {
                ApiError::bad_request(
                    "InvalidRequestContent",
                    format!("The request body is not valid: {e}"),
                )
                .into()
            })
        })
    }
}
