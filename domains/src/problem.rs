//! The one shape every validation failure takes: a parameter name (a field name, or a JSON
//! pointer into a document such as an NCCO) and the reason it was refused. The HTTP layer
//! turns a list of these into a problem body's `invalid_parameters`.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParameter {
    pub name: String,
    pub reason: String,
}

impl InvalidParameter {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { name: name.into(), reason: reason.into() }
    }
}

/// Collects every problem of a document instead of stopping at the first, so a client fixes
/// its request in one round trip.
#[derive(Debug, Default)]
pub struct Problems(Vec<InvalidParameter>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.0.push(InvalidParameter::new(name, reason));
    }

    /// Keeps `Ok` values and records an `Err` under `name`.
    pub fn check<T, E: std::fmt::Display>(&mut self, name: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(name, e.to_string());
                None
            }
        }
    }

    /// Keeps `Ok` values and records every problem of an `Err`.
    pub fn absorb<T>(&mut self, r: Result<T, Vec<InvalidParameter>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(list) => {
                self.0.extend(list);
                None
            }
        }
    }

    pub fn extend(&mut self, other: impl IntoIterator<Item = InvalidParameter>) {
        self.0.extend(other);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, otherwise every recorded problem.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<InvalidParameter>> {
        if self.0.is_empty() { Ok(value) } else { Err(self.0) }
    }

    pub fn into_vec(self) -> Vec<InvalidParameter> {
        self.0
    }
}
