//! Python client libraries as real clients of voxbridge: the official Vonage SDK and a client
//! generated from `openapi.yaml`, and Twilio's helper library building TwiML, run from a
//! virtualenv (`/var/tmp/voxbridge-py`, which CI fills with `pip install vonage
//! openapi-python-client twilio`; `VBTEST_PYTHON` names another interpreter). Scripts live
//! in `tests/python/` and print `STEP name json` lines.

use std::time::Duration;

use serde_json::Value;

/// The interpreter of the virtualenv.
pub fn python() -> String {
    interpreter("VBTEST_PYTHON", "/var/tmp/voxbridge-py", "vonage openapi-python-client twilio")
}

/// The interpreter of SignalWire's helper library, in a virtualenv of its own
/// (`/var/tmp/voxbridge-sw`, `pip install signalwire`): it pins an older `twilio` than the
/// one the other scripts use. `VBTEST_SIGNALWIRE_PYTHON` names another interpreter.
pub fn signalwire_python() -> String {
    interpreter("VBTEST_SIGNALWIRE_PYTHON", "/var/tmp/voxbridge-sw", "signalwire")
}

fn interpreter(var: &str, venv: &str, packages: &str) -> String {
    let python = std::env::var(var).unwrap_or_else(|_| format!("{venv}/bin/python3"));
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: python3 -m venv {venv} && {venv}/bin/pip install {packages}"
    );
    python
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> String {
    format!("{}/python/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args` with `env`; returns its `STEP` lines, failing with its output otherwise.
pub async fn steps(program: &str, args: &[String], env: &[(&str, String)]) -> Vec<(String, Value)> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output()).await.expect("it ends in time");
    let out = out.expect("it runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{program} {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("STEP "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, value)| (name.to_owned(), serde_json::from_str(value).unwrap_or(Value::Null)))
        .collect()
}

/// The value of step `name`.
pub fn step<'a>(steps: &'a [(String, Value)], name: &str) -> &'a Value {
    &steps.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no step {name} in {steps:?}")).1
}
