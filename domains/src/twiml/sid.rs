//! Twilio's resource ids ("sids"): a two-letter kind and 32 hex digits (`CA…` a call, `RE…` a
//! recording). A voxbridge id is a UUID, so a sid is that UUID's digits behind the kind, and
//! a sid given back (`/Calls/{Sid}.json`) names the UUID again: no second id to store.

/// A call's sid.
pub const CALL: &str = "CA";
/// A recording's sid.
pub const RECORDING: &str = "RE";

/// The sid of `kind` for the UUID `uuid` (`CA` + its hex digits); anything that is not a
/// UUID is kept as it is.
pub fn of(kind: &str, uuid: &str) -> String {
    match uuid::Uuid::parse_str(uuid) {
        Ok(u) => format!("{kind}{}", u.simple()),
        Err(_) => uuid.to_owned(),
    }
}

/// The UUID a sid of `kind` names; a UUID given as it is is taken too.
pub fn uuid(kind: &str, sid: &str) -> Option<String> {
    let hex = sid.strip_prefix(kind).filter(|h| h.len() == 32).unwrap_or(sid);
    uuid::Uuid::parse_str(hex).ok().map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_names_its_uuid_again() {
        let id = "3f1e2d4c-5b6a-4789-8a0b-1c2d3e4f5a6b";
        let sid = of(CALL, id);
        assert_eq!(sid, "CA3f1e2d4c5b6a47898a0b1c2d3e4f5a6b");
        assert_eq!(uuid(CALL, &sid).as_deref(), Some(id));
        assert_eq!(uuid(CALL, id).as_deref(), Some(id), "the UUID itself");
        assert_eq!(uuid(CALL, "CAnothex"), None);
        assert_eq!(uuid(RECORDING, &sid), None, "a call's sid is no recording's");
        assert_eq!(of(CALL, "not-a-uuid"), "not-a-uuid");
    }
}
