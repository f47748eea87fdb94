//! `POST /api/v1/clinicians/{practitionerId}/twilio-identity`: called by the clinician-signup
//! flow with the provisioning secret; idempotently records the clinician's Twilio identity.

use serde::Serialize;
use shared::clinician::TWILIO_IDENTITY_SYSTEM;
use shared::ids::PractitionerId;
use worker::Request;

use crate::auth::authenticate_service;
use crate::clinicians::{calling_clinician, ensure_identity, Provisioned};
use crate::config::Config;
use crate::error::AppError;
use crate::reply::Reply;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvisionReply<'a> {
    practitioner_id: &'a str,
    identity: &'a str,
    system: &'a str,
    /// `created` or `already-provisioned`.
    status: &'a str,
}

pub async fn provision(
    req: &Request,
    config: &Config,
    practitioner: &PractitionerId,
) -> Result<Reply, AppError> {
    authenticate_service(
        req,
        config.provisioning_secret.require("PROVISIONING_SECRET")?,
    )?;
    let medplum = crate::medplum_client(config)?;
    let clinician = calling_clinician(&medplum, practitioner).await?;
    let outcome = ensure_identity(&medplum, clinician).await?;
    let (status, label) = match outcome {
        Provisioned::Created => (201, "created"),
        Provisioned::AlreadyProvisioned => (200, "already-provisioned"),
    };
    crate::log::event(
        "identity_provisioned",
        &[("practitioner", practitioner.as_str()), ("status", label)],
    );
    Ok(Reply::json(
        status,
        &ProvisionReply {
            practitioner_id: practitioner.as_str(),
            identity: practitioner.as_str(),
            system: TWILIO_IDENTITY_SYSTEM,
            status: label,
        },
    ))
}
