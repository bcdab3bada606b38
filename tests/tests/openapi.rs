//! `openapi.yaml` is what `voxbridge openapi` prints, the server serves the same document, and
//! it describes every route with its security.

use std::process::Command;

use vbtest::{Server, bin};

#[test]
fn openapi_yaml_is_fresh() {
    let out = Command::new(bin("voxbridge")).arg("openapi").output().expect("voxbridge openapi runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if generated != committed {
        if std::env::var_os("VOXBRIDGE_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write openapi.yaml");
        } else {
            panic!(
                "openapi.yaml is stale: run `cargo run -p voxbridge -- openapi > openapi.yaml` (or VOXBRIDGE_BLESS=1 cargo test)"
            );
        }
    }
}

#[tokio::test]
async fn served_document_covers_every_route() {
    let s = Server::start().await;
    let doc: serde_json::Value = s.client.get(s.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v2/applications",
        "/v2/applications/{id}",
        "/v1/psip",
        "/v1/psip/{name}",
        "/v1/psip/{name}/users",
        "/v1/psip/{name}/users/{key}",
        "/v1/numbers",
        "/v1/numbers/{number}",
        "/v1/trunks",
        "/v1/trunks/{id}",
        "/v1/calls",
        "/health",
        "/ready",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    assert_eq!(schemes["bearerAuth"]["bearerFormat"], "JWT");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let public = path == "/health" || path == "/ready";
            assert_eq!(op.get("security").is_some(), !public, "{method} {path} security");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} responses");
        }
    }
}
