//! The REST resources the deployment scripts configure: `IncomingPhoneNumbers` (each pool
//! number's Voice URL and status callback) and `Applications` (the TwiML App whose Voice URL
//! receives browser calls). JSON shapes and form parameters as Twilio's API uses them.

use std::collections::BTreeMap;

use serde::Serialize;

/// An account number.
#[derive(Debug, Clone, Serialize)]
pub struct IncomingPhoneNumber {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub voice_application_sid: Option<String>,
}

/// A TwiML App.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
}

/// The account's configurable resources.
#[derive(Debug, Default)]
pub struct Resources {
    pub numbers: BTreeMap<String, IncomingPhoneNumber>,
    pub applications: BTreeMap<String, Application>,
}

fn sid(prefix: &str, seed: &str) -> String {
    // Deterministic per seed, 32 hex characters, like Twilio's SIDs.
    let mut hash: u128 = 0xcbf2_9ce4_8422_2325_cbf2_9ce4_8422_2325;
    for byte in seed.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("{prefix}{hash:032x}")
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Resources {
    pub fn new(account_sid: &str, numbers: &[String]) -> Self {
        let numbers = numbers
            .iter()
            .map(|number| {
                let resource = IncomingPhoneNumber {
                    sid: sid("PN", number),
                    account_sid: account_sid.to_owned(),
                    phone_number: number.clone(),
                    friendly_name: number.clone(),
                    voice_url: None,
                    voice_method: "POST".into(),
                    status_callback: None,
                    status_callback_method: "POST".into(),
                    voice_application_sid: None,
                };
                (resource.sid.clone(), resource)
            })
            .collect();
        Self {
            numbers,
            applications: BTreeMap::new(),
        }
    }

    /// Applies an update's form parameters to a number; `None` if there is no such number.
    pub fn update_number(
        &mut self,
        sid: &str,
        params: &[(String, String)],
    ) -> Option<IncomingPhoneNumber> {
        let number = self.numbers.get_mut(sid)?;
        if let Some(v) = param(params, "VoiceUrl") {
            number.voice_url = Some(v.to_owned());
        }
        if let Some(v) = param(params, "VoiceMethod") {
            number.voice_method = v.to_owned();
        }
        if let Some(v) = param(params, "StatusCallback") {
            number.status_callback = Some(v.to_owned());
        }
        if let Some(v) = param(params, "StatusCallbackMethod") {
            number.status_callback_method = v.to_owned();
        }
        if let Some(v) = param(params, "VoiceApplicationSid") {
            number.voice_application_sid = Some(v.to_owned()).filter(|s| !s.is_empty());
        }
        if let Some(v) = param(params, "FriendlyName") {
            number.friendly_name = v.to_owned();
        }
        Some(number.clone())
    }

    /// Creates (no `sid`) or updates an application from form parameters.
    pub fn upsert_application(
        &mut self,
        account_sid: &str,
        sid_to_update: Option<&str>,
        params: &[(String, String)],
    ) -> Option<Application> {
        let application = match sid_to_update {
            Some(existing) => self.applications.get_mut(existing)?,
            None => {
                let name = param(params, "FriendlyName")
                    .unwrap_or("application")
                    .to_owned();
                let new_sid = sid("AP", &format!("{name}#{}", self.applications.len()));
                self.applications.insert(
                    new_sid.clone(),
                    Application {
                        sid: new_sid.clone(),
                        account_sid: account_sid.to_owned(),
                        friendly_name: name,
                        voice_url: None,
                        voice_method: "POST".into(),
                        status_callback: None,
                        status_callback_method: "POST".into(),
                    },
                );
                self.applications.get_mut(&new_sid)?
            }
        };
        if let Some(v) = param(params, "FriendlyName") {
            application.friendly_name = v.to_owned();
        }
        if let Some(v) = param(params, "VoiceUrl") {
            application.voice_url = Some(v.to_owned());
        }
        if let Some(v) = param(params, "VoiceMethod") {
            application.voice_method = v.to_owned();
        }
        if let Some(v) = param(params, "StatusCallback") {
            application.status_callback = Some(v.to_owned());
        }
        Some(application.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn numbers_and_applications_are_configurable() {
        let mut resources = Resources::new("AC1", &["+447700900001".to_owned()]);
        let sid = resources.numbers.keys().next().unwrap().clone();
        assert!(sid.starts_with("PN") && sid.len() == 34);
        let updated = resources
            .update_number(
                &sid,
                &p(&[
                    ("VoiceUrl", "https://w/inbound"),
                    ("StatusCallback", "https://w/status"),
                ]),
            )
            .unwrap();
        assert_eq!(updated.voice_url.as_deref(), Some("https://w/inbound"));
        assert!(resources.update_number("PNnope", &[]).is_none());
        let app = resources
            .upsert_application(
                "AC1",
                None,
                &p(&[("FriendlyName", "calls"), ("VoiceUrl", "https://w/voice")]),
            )
            .unwrap();
        assert!(app.sid.starts_with("AP") && app.sid.len() == 34);
        let changed = resources
            .upsert_application(
                "AC1",
                Some(&app.sid),
                &p(&[("VoiceUrl", "https://w/voice2")]),
            )
            .unwrap();
        assert_eq!(changed.voice_url.as_deref(), Some("https://w/voice2"));
        assert_eq!(changed.friendly_name, "calls");
    }
}
