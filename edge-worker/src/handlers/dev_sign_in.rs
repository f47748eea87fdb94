//! `POST /api/v1/dev/sign-in` (local environment only): signs a seeded clinician in at the local
//! Medplum (sim/medplum's dev login) so the demo page can act as a clinician without leaving its
//! own origin. Deployed environments answer 404, as if the route did not exist.

use serde::Deserialize;
use shared::ids::PractitionerId;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::config::{Config, Environment, Setting};
use crate::error::AppError;
use crate::reply::Reply;

#[derive(Deserialize)]
struct SignInRequest {
    practitioner: String,
}

pub async fn sign_in(req: &mut Request, config: &Config) -> Result<Reply, AppError> {
    if config.environment != Setting::Present(Environment::Local) {
        return Err(AppError::NotFound);
    }
    let body: SignInRequest =
        crate::body::json(req, "expected {\"practitioner\": \"<id>\"}").await?;
    let practitioner = PractitionerId::parse(&body.practitioner)
        .map_err(|_| AppError::BadRequest("the practitioner id is malformed"))?;
    let base = config.medplum_base_url.require("MEDPLUM_BASE_URL")?;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|_| AppError::Internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            serde_json::json!({"practitioner": practitioner.as_str()})
                .to_string()
                .into(),
        ));
    let request = Request::new_with_init(&format!("{}/auth/dev-login", base.as_str()), &init)
        .map_err(|_| AppError::Internal)?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|_| AppError::MedplumUnavailable)?;
    let status = response.status_code();
    let text = response
        .text()
        .await
        .map_err(|_| AppError::MedplumUnavailable)?;
    match status {
        200 => Ok(Reply {
            status: 200,
            headers: vec![("content-type", "application/json; charset=utf-8".to_owned())],
            body: text,
        }),
        404 => Err(AppError::PractitionerNotFound),
        _ => Err(AppError::MedplumUnavailable),
    }
}
