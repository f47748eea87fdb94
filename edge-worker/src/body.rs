//! Request bodies read with a bound: reading stops, with 413, as soon as more than the bound has
//! arrived, so a large body (chunked, with no Content-Length to refuse it by) is never buffered
//! whole.

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use worker::Request;

use crate::error::AppError;

/// The largest JSON body the API reads: its requests are a few fields.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// Reads a request's body, refusing it (413) once more than `max` bytes have arrived.
pub async fn read_at_most(req: &mut Request, max: usize) -> Result<Vec<u8>, AppError> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        return Err(AppError::PayloadTooLarge);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let unreadable = |_| AppError::BadRequest("the body could not be read");
    let mut chunks = req.stream().map_err(unreadable)?;
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > max {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The request's JSON body (at most [`MAX_JSON_BODY`] bytes) as `T`; `expected` is the 400's
/// message when it is not.
pub async fn json<T: DeserializeOwned>(
    req: &mut Request,
    expected: &'static str,
) -> Result<T, AppError> {
    let body = read_at_most(req, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body).map_err(|_| AppError::BadRequest(expected))
}
