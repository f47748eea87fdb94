//! Clinicians in Medplum: whether one may place calls (`videocall_own_manage`), and provisioning
//! of their Twilio identity identifier with optimistic locking.

use futures_util::future::{join, join_all};
use serde_json::Value;
use shared::clinician::{
    may_place_calls, membership_policy_references, provision_identity, IdentityProvisioning,
};
use shared::fhir::{find_resource, resources_of};
use shared::ids::PractitionerId;

use crate::error::AppError;
use crate::medplum::{Medplum, MedplumError, UpdateOutcome, Versioned};

impl From<MedplumError> for AppError {
    fn from(error: MedplumError) -> Self {
        crate::log::event("medplum_error", &[("kind", &format!("{error:?}"))]);
        match error {
            // The worker's own client refused, or not allowed to read what it must: fixed by an
            // operator, not by waiting.
            MedplumError::ClientRejected | MedplumError::Rejected(401 | 403) => {
                AppError::MedplumClientRefused
            }
            MedplumError::Unreachable | MedplumError::Malformed | MedplumError::Rejected(_) => {
                AppError::MedplumUnavailable
            }
        }
    }
}

/// A clinician allowed to place calls, with their Practitioner as last read.
pub struct CallingClinician {
    pub id: PractitionerId,
    pub practitioner: Versioned,
}

/// Looks the practitioner up and checks their memberships' access policies.
/// 404 for an unknown practitioner, 403 without `videocall_own_manage`.
///
/// One round trip to Medplum: the Practitioner is read while its memberships are searched with
/// their policies included (`_include=ProjectMembership:access-policy`). A policy a membership
/// names that the search did not include is read on its own, so the answer is the same as
/// reading each one; errors are taken in the order the requests would have been made one after
/// another.
pub async fn calling_clinician(
    medplum: &Medplum<'_>,
    id: &PractitionerId,
) -> Result<CallingClinician, AppError> {
    let reference = id.reference();
    let (practitioner, found) = join(
        medplum.read("Practitioner", id.as_str()),
        medplum.search(
            "ProjectMembership",
            &[
                ("profile", &reference),
                ("_include", "ProjectMembership:access-policy"),
            ],
        ),
    )
    .await;
    let practitioner = practitioner?.ok_or(AppError::PractitionerNotFound)?;
    let found = found?;
    let policy_ids: Vec<String> = resources_of(&found, "ProjectMembership")
        .flat_map(membership_policy_references)
        .filter_map(|reference| reference.strip_prefix("AccessPolicy/").map(str::to_owned))
        .collect();
    let included = |policy_id: &str| find_resource(&found, "AccessPolicy", policy_id);
    let missing = policy_ids
        .iter()
        .filter(|policy_id| included(policy_id).is_none())
        .map(|policy_id| medplum.read("AccessPolicy", policy_id));
    let mut read = join_all(missing).await.into_iter();
    let mut names: Vec<String> = Vec::new();
    for policy_id in &policy_ids {
        let policy = match included(policy_id) {
            Some(policy) => Some(policy.clone()),
            None => read
                .next()
                .transpose()?
                .flatten()
                .map(|found| found.resource),
        };
        if let Some(name) = policy
            .as_ref()
            .and_then(|policy| policy.get("name"))
            .and_then(Value::as_str)
        {
            names.push(name.to_owned());
        }
    }
    if may_place_calls(names.iter().map(String::as_str)) {
        Ok(CallingClinician {
            id: id.clone(),
            practitioner,
        })
    } else {
        Err(AppError::PermissionMissing)
    }
}

/// What provisioning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    AlreadyProvisioned,
}

/// Attempts before giving up on a Practitioner that keeps changing under us.
const MAX_UPDATE_ATTEMPTS: usize = 8;

/// Adds the Twilio identity identifier if it is missing. Concurrent callers race with
/// `If-Match`; the losers re-read and find it present, so exactly one identifier is written
/// and no other edit to the Practitioner is lost.
pub async fn ensure_identity(
    medplum: &Medplum<'_>,
    clinician: CallingClinician,
) -> Result<Provisioned, AppError> {
    let mut current = clinician.practitioner;
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        match provision_identity(&current.resource, &clinician.id) {
            IdentityProvisioning::AlreadyProvisioned => return Ok(Provisioned::AlreadyProvisioned),
            IdentityProvisioning::Conflicting(_) => return Err(AppError::IdentityConflict),
            IdentityProvisioning::Add(updated) => {
                match medplum
                    .update_if_match(&updated, &current.version_id)
                    .await?
                {
                    UpdateOutcome::Updated(_) => return Ok(Provisioned::Created),
                    UpdateOutcome::Stale => {
                        current = medplum
                            .read("Practitioner", clinician.id.as_str())
                            .await?
                            .ok_or(AppError::PractitionerNotFound)?;
                    }
                }
            }
        }
    }
    crate::log::event("identity_provisioning_gave_up", &[]);
    Err(AppError::MedplumUnavailable)
}
