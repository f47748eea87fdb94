//! The seeded data of sim/medplum as plain data (ids, fictional names, Ofcom drama phone numbers), plus the FHIR resources built from it.
//
// Everything here is fictional: names are obviously made up, UK numbers come only from Ofcom's
// ranges reserved for drama (mobile 07700 900000–900999, London 020 7946 0000–0999, premium rate
// 09098 790000–790999) and the one non-UK number is from the NANP fictional block 555-0100–0199.
// Tests import the ids and numbers from here; the server loads `buildSeedResources()` into its
// repository at start and on POST /__sim/reset.

export const PROJECT_ID = "clinician-calls-demo";
export const PROJECT_NAME = "Clinician calls demo";

/** The OAuth client id the dev sign-in puts in user tokens (no ClientApplication is seeded for it). */
export const DEV_LOGIN_CLIENT_ID = "medplum-sim-dev-login";

/** SNOMED CT codes used in Appointment.serviceType. */
export const SNOMED = "http://snomed.info/sct";
export const TELEPHONE_ENCOUNTER = { system: SNOMED, code: "185317003", display: "Telephone encounter" };
export const FOLLOW_UP_VISIT = { system: SNOMED, code: "185389009", display: "Follow-up visit" };

export const policies = {
  videocallOwnManage: {
    id: "videocall-own-manage",
    name: "videocall_own_manage",
    resource: [
      { resourceType: "Appointment", criteria: "Appointment?actor=%profile" },
      { resourceType: "Patient", readonly: true },
      { resourceType: "Practitioner" },
    ],
  },
  readOnly: {
    id: "read-only",
    name: "read_only",
    resource: [
      { resourceType: "Appointment", readonly: true },
      { resourceType: "Patient", readonly: true },
      { resourceType: "Practitioner", readonly: true },
    ],
  },
};

/**
 * Clinicians. `grant` says how the membership names its policy: `access` is the
 * `ProjectMembership.access[].policy` form, `accessPolicy` the single `ProjectMembership.accessPolicy` form.
 */
export const practitioners = {
  ada: {
    id: "clinician-ada",
    prefix: "Dr",
    given: "Ada",
    family: "Example",
    display: "Dr Ada Example",
    userId: "user-clinician-ada",
    email: "ada.example@example.org",
    membershipId: "membership-ada",
    grant: "access",
    policyId: policies.videocallOwnManage.id,
  },
  bob: {
    id: "clinician-bob",
    prefix: "Dr",
    given: "Bob",
    family: "Sample",
    display: "Dr Bob Sample",
    userId: "user-clinician-bob",
    email: "bob.sample@example.org",
    membershipId: "membership-bob",
    grant: "accessPolicy",
    policyId: policies.readOnly.id,
  },
  cy: {
    id: "clinician-cy",
    prefix: "Dr",
    given: "Cy",
    family: "Placeholder",
    display: "Dr Cy Placeholder",
    userId: "user-clinician-cy",
    email: "cy.placeholder@example.org",
    membershipId: "membership-cy",
    grant: "accessPolicy",
    policyId: policies.videocallOwnManage.id,
  },
};

/** The worker's ClientApplication membership (its id is the configured client id). */
export const WORKER_MEMBERSHIP_ID = "membership-worker";

/**
 * Patients, each with a phone appointment today. `telecom` is stored exactly as written here
 * (array order included: patient-two-numbers lists its rank-2 landline first on purpose).
 */
export const patients = {
  mobile: {
    id: "patient-mobile",
    name: "Test Patient Mobile",
    telecom: [{ system: "phone", value: "07700 900123", use: "mobile" }],
  },
  landline: {
    id: "patient-landline",
    name: "Test Patient Landline",
    telecom: [{ system: "phone", value: "020 7946 0123", use: "home" }],
  },
  formatted: {
    id: "patient-formatted",
    name: "Test Patient Formatted",
    telecom: [{ system: "phone", value: "+44 (0)7700 900456", use: "mobile" }],
  },
  intlPrefix: {
    id: "patient-intl-prefix",
    name: "Test Patient Intlprefix",
    telecom: [{ system: "phone", value: "0044 7700 900789", use: "mobile" }],
  },
  dashes: {
    id: "patient-dashes",
    name: "Test Patient Dashes",
    telecom: [{ system: "phone", value: "07700-900-321", use: "work" }],
  },
  international: {
    id: "patient-international",
    name: "Test Patient International",
    telecom: [{ system: "phone", value: "+1 202 555 0143", use: "mobile" }],
  },
  premium: {
    id: "patient-premium",
    name: "Test Patient Premium",
    telecom: [{ system: "phone", value: "09098 790000", use: "home" }],
  },
  noPhone: {
    id: "patient-no-phone",
    name: "Test Patient Nophone",
    telecom: [{ system: "email", value: "test.patient.nophone@example.org", use: "home" }],
  },
  twoNumbers: {
    id: "patient-two-numbers",
    name: "Test Patient Twonumbers",
    telecom: [
      { system: "phone", value: "020 7946 0456", use: "home", rank: 2 },
      { system: "phone", value: "07700 900654", use: "mobile", rank: 1 },
    ],
  },
};

/** Every raw phone string used in the fixtures, exactly as stored in `telecom[].value`. */
export const DRAMA_NUMBERS = Object.values(patients).flatMap((p) =>
  p.telecom.filter((t) => t.system === "phone").map((t) => t.value),
);

/** Every patient's full name as written in `name[0].text`. */
export const PATIENT_NAMES = Object.values(patients).map((p) => p.name);

/** Clinicians' display names. */
export const PRACTITIONER_NAMES = Object.values(practitioners).map((p) => p.display);

/**
 * E.164 form of a fixture phone string (`+447700900123`), or undefined if it is not one we can place.
 * Only for building scan patterns; not a general phone parser.
 */
function toE164(raw) {
  const digits = raw.replace(/\D/g, "");
  if (raw.trim().startsWith("+")) return `+${digits.replace(/^440/, "44")}`;
  if (digits.startsWith("0044")) return `+${digits.slice(2)}`;
  if (digits.startsWith("0")) return `+44${digits.slice(1)}`;
  return undefined;
}

/**
 * Strings to scan logs and artifacts for: each raw fixture number, its digits only, its E.164
 * form and its E.164 digits. A leak of any fixture number in any common format matches one of these.
 */
export const PHONE_SCAN_PATTERNS = [
  ...new Set(
    DRAMA_NUMBERS.flatMap((raw) => {
      const e164 = toE164(raw);
      return [raw, raw.replace(/\D/g, ""), e164, e164?.slice(1)].filter(Boolean);
    }),
  ),
];

/**
 * Today's appointments: `time` is the UTC start on the day of seeding, 20 minutes long.
 * One phone appointment per patient with clinician-ada, one for clinician-bob, one in-person one.
 */
export const appointments = {
  mobile: { id: "appt-mobile", patient: "mobile", practitioner: "ada", time: "09:00", kind: "phone" },
  landline: { id: "appt-landline", patient: "landline", practitioner: "ada", time: "09:30", kind: "phone" },
  formatted: { id: "appt-formatted", patient: "formatted", practitioner: "ada", time: "10:00", kind: "phone" },
  intlPrefix: { id: "appt-intl-prefix", patient: "intlPrefix", practitioner: "ada", time: "10:30", kind: "phone" },
  dashes: { id: "appt-dashes", patient: "dashes", practitioner: "ada", time: "11:00", kind: "phone" },
  international: { id: "appt-international", patient: "international", practitioner: "ada", time: "11:30", kind: "phone" },
  premium: { id: "appt-premium", patient: "premium", practitioner: "ada", time: "12:00", kind: "phone" },
  noPhone: { id: "appt-no-phone", patient: "noPhone", practitioner: "ada", time: "12:30", kind: "phone" },
  twoNumbers: { id: "appt-two-numbers", patient: "twoNumbers", practitioner: "ada", time: "13:00", kind: "phone" },
  bob: { id: "appt-bob", patient: "landline", practitioner: "bob", time: "14:00", kind: "phone" },
  inPerson: { id: "appt-in-person", patient: "mobile", practitioner: "ada", time: "15:00", kind: "in-person" },
};

export const APPOINTMENT_MINUTES = 20;

/** The UTC date (YYYY-MM-DD) appointments are seeded on, for a given instant. */
export function seedDate(now = new Date()) {
  return now.toISOString().slice(0, 10);
}

/** Start and end instants of a fixture appointment on `date` (YYYY-MM-DD, UTC). */
export function appointmentPeriod(appointment, date) {
  const start = new Date(`${date}T${appointment.time}:00.000Z`);
  const end = new Date(start.getTime() + APPOINTMENT_MINUTES * 60_000);
  return { start: start.toISOString(), end: end.toISOString() };
}

const reference = (type, id, display) => ({ reference: `${type}/${id}`, ...(display ? { display } : {}) });
const projectRef = () => reference("Project", PROJECT_ID);

function policyResource(policy) {
  return { resourceType: "AccessPolicy", id: policy.id, name: policy.name, resource: structuredClone(policy.resource) };
}

function practitionerResources(p) {
  const membership = {
    resourceType: "ProjectMembership",
    id: p.membershipId,
    project: projectRef(),
    user: reference("User", p.userId),
    profile: reference("Practitioner", p.id, p.display),
  };
  if (p.grant === "access") membership.access = [{ policy: reference("AccessPolicy", p.policyId) }];
  else membership.accessPolicy = reference("AccessPolicy", p.policyId);
  return [
    {
      resourceType: "Practitioner",
      id: p.id,
      active: true,
      name: [{ use: "official", prefix: [p.prefix], given: [p.given], family: p.family, text: p.display }],
      telecom: [{ system: "email", value: p.email, use: "work" }],
    },
    {
      resourceType: "User",
      id: p.userId,
      firstName: p.given,
      lastName: p.family,
      email: p.email,
      project: projectRef(),
    },
    membership,
  ];
}

function patientResource(p) {
  const [given, ...rest] = p.name.split(" ");
  return {
    resourceType: "Patient",
    id: p.id,
    active: true,
    name: [{ use: "official", given: [given, rest[0]], family: rest.slice(1).join(" "), text: p.name }],
    telecom: structuredClone(p.telecom),
  };
}

function appointmentResource(a, date) {
  const patient = patients[a.patient];
  const practitioner = practitioners[a.practitioner];
  const { start, end } = appointmentPeriod(a, date);
  const coding = a.kind === "phone" ? TELEPHONE_ENCOUNTER : FOLLOW_UP_VISIT;
  return {
    resourceType: "Appointment",
    id: a.id,
    status: "booked",
    serviceType: [{ coding: [{ ...coding }] }],
    description: a.kind === "phone" ? "Telephone appointment" : "In-person follow-up",
    start,
    end,
    minutesDuration: APPOINTMENT_MINUTES,
    participant: [
      { actor: reference("Patient", patient.id, patient.name), required: "required", status: "accepted" },
      { actor: reference("Practitioner", practitioner.id, practitioner.display), required: "required", status: "accepted" },
    ],
  };
}

/**
 * All seeded resources, in creation order. `clientId`/`clientSecret` are the worker's credentials;
 * its ClientApplication gets that id. `now` decides which day the appointments are on (UTC).
 */
export function buildSeedResources({ clientId, clientSecret, now = new Date() }) {
  if (!clientId || !clientSecret) throw new Error("buildSeedResources needs clientId and clientSecret");
  const date = seedDate(now);
  return [
    // `features: ["bots"]`: Medplum runs and deploys bots only for projects with this feature.
    { resourceType: "Project", id: PROJECT_ID, name: PROJECT_NAME, strictMode: true, features: ["bots"] },
    ...Object.values(policies).map(policyResource),
    ...Object.values(practitioners).flatMap(practitionerResources),
    { resourceType: "ClientApplication", id: clientId, name: "Clinician calls worker (sim)", secret: clientSecret },
    {
      resourceType: "ProjectMembership",
      id: WORKER_MEMBERSHIP_ID,
      project: projectRef(),
      user: reference("ClientApplication", clientId),
      profile: reference("ClientApplication", clientId),
      admin: true,
    },
    ...Object.values(patients).map(patientResource),
    ...Object.values(appointments).map((a) => appointmentResource(a, date)),
  ];
}

function deepFreeze(value) {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The plain data above as one object (what startMedplumServer returns as `fixtures`); deeply frozen, so tests cannot change what reset seeds. */
export const FIXTURES = deepFreeze({
  projectId: PROJECT_ID,
  devLoginClientId: DEV_LOGIN_CLIENT_ID,
  workerMembershipId: WORKER_MEMBERSHIP_ID,
  policies,
  practitioners,
  patients,
  appointments,
  DRAMA_NUMBERS,
  PHONE_SCAN_PATTERNS,
  PATIENT_NAMES,
  PRACTITIONER_NAMES,
});
