//! The random identifiers of voxbridge's requests (tags, branches, Call-IDs); the requests
//! themselves are built by `domains::sip::dialog`, which takes these as inputs.

pub fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(len).map(char::from).collect()
}

pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

pub use domains::sip::dialog::{Dialog, Local, ack_for_failure, cancel_for};
