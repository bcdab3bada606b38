//! Start-up and operations: generated credentials shown once and kept, configuration from a
//! TOML file, HTTPS with a generated certificate, health/readiness/metrics, `migrate`.

use std::process::Command;

use serde_json::json;
use vbtest::{Options, Server, basic, bin, fresh_database, send, tempdir};

#[tokio::test]
async fn credentials_are_generated_once_and_kept() {
    let dir = tempdir::Dir::new();
    let db = fresh_database(dir.path()).await.unwrap();
    let mut first = Server::start_with(Options {
        no_credentials: true,
        data_dir: Some(dir),
        database_url: Some(db.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let field = |banner: &[String], name: &str| {
        banner.iter().find_map(|l| l.trim().strip_prefix(&format!("{name}=")).map(str::to_owned))
    };
    let key = field(&first.banner, "VOXBRIDGE_API_KEY").expect("key printed");
    let secret = field(&first.banner, "VOXBRIDGE_API_SECRET").expect("secret printed");
    assert!(field(&first.banner, "VOXBRIDGE_SIGNATURE_SECRET").is_some());
    let auth = basic(&key, &secret);
    let (status, _) = send(first.client.get(first.url("/v1/psip")).header("authorization", &auth)).await;
    assert_eq!(status, 200);

    let dir = std::mem::take(&mut first.data_dir);
    drop(first);
    let second = Server::start_with(Options {
        no_credentials: true,
        data_dir: Some(dir),
        database_url: Some(db),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(second.banner.is_empty(), "credentials are printed only once: {:?}", second.banner);
    let (status, _) = send(second.client.get(second.url("/v1/psip")).header("authorization", &auth)).await;
    assert_eq!(status, 200, "stored credentials still work after restart");
}

#[tokio::test]
async fn toml_file_https_and_operations() {
    let dir = tempdir::Dir::new();
    let config = dir.path().join("voxbridge.toml");
    std::fs::write(
        &config,
        "sip_base_domain = \"sip.example.net\"\nregions = [\"eu\", \"us\"]\nhttps_addr = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let s = Server::start_with(Options {
        args: vec!["--config".into(), config.display().to_string(), "--log-format".into(), "json".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let https = s.https_base.clone().expect("https listener");
    assert!(https.starts_with("https://127.0.0.1:"));
    assert!(s.data_dir.path().join("tls/self-signed-cert.pem").exists());

    // The same API over HTTPS (certificate generated, so the client accepts it explicitly).
    let (app_id, _) = s.create_application("http://127.0.0.1:9").await;
    let (status, domain) = send(
        s.client
            .post(format!("{https}/v1/psip"))
            .basic_auth(vbtest::API_KEY, Some(vbtest::API_SECRET))
            .json(&json!({"name": "tls-test", "application_id": app_id, "acl": ["127.0.0.1"]})),
    )
    .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["sip_uris"][0]["uri"], "sip:tls-test.sip-eu.sip.example.net");
    assert_eq!(domain["sip_uris"].as_array().map(Vec::len), Some(2));

    assert_eq!(send(s.client.get(s.url("/health"))).await.0, 200);
    let (status, ready) = send(s.client.get(s.url("/ready"))).await;
    assert_eq!((status, &ready["status"]), (200, &json!("ok")));
    let metrics = s.client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voxbridge_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/psip\""), "{metrics}");
}

#[tokio::test]
async fn migrate_subcommand_and_bad_config() {
    let dir = tempdir::Dir::new();
    let db = fresh_database(dir.path()).await.unwrap();
    let out = Command::new(bin("voxbridge")).arg("migrate").env("DATABASE_URL", &db).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "http_adr = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(bin("voxbridge")).args(["--config", &bad.display().to_string()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http_adr"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(bin("voxbridge")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("voxbridge "));
}
