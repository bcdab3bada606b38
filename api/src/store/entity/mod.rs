//! sea-orm entities, one module per table created in `migrations`.

pub mod account;
pub mod application;
pub mod call;
pub mod number;
pub mod psip_domain;
pub mod psip_user;
pub mod registration;
pub mod trunk;
