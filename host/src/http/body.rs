//! Reading a request body, once the route is known, up to the route's limit and within the
//! body-read timeout.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Limited};

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit, declared or sent (413).
    TooLarge,
    /// The client broke the framing (400).
    Malformed,
    /// The client did not send it in time (408, and the connection is closed).
    TimedOut,
}

/// Read `body` whole, refusing it up front when `Content-Length` is past `limit`.
pub async fn read<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Malformed),
        Err(_elapsed) => Err(BodyError::TimedOut),
    }
}
