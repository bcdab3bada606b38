//! The README's quickstart block, run verbatim with bash against a fresh server: if the README
//! drifts from the API, this fails.

use std::process::Command;

use vbtest::{API_KEY, API_SECRET, Server};

fn quickstart_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let section = readme.split("## Quickstart").nth(1).expect("Quickstart section");
    let block = section.split("```bash\n").nth(1).expect("bash block");
    block.split("```").next().expect("closed block").to_owned()
}

#[tokio::test]
async fn readme_quickstart_works() {
    let s = Server::start().await;
    let script = format!("set -euo pipefail\n{}", quickstart_block());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(s.data_dir.path())
        .env("BASE", &s.base)
        .env("VOXBRIDGE_API_KEY", API_KEY)
        .env("VOXBRIDGE_API_SECRET", API_SECRET)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "quickstart failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in
        ["acme-office", "sip:acme-office.sip-us.sip.voxbridge.local", "14155550100", "carrier-a", "\"quickstart\""]
    {
        assert!(stdout.contains(expected), "missing {expected} in:\n{stdout}");
    }
    let key = std::fs::read_to_string(s.data_dir.path().join("private.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_, list) = s.get("/v1/trunks").await;
    assert_eq!(list["count"], 1);
}
