//! The Voice API benchmark (`bench/rest-calls`), not a test: `POST /v1/calls` at steps of
//! fixed rates against a release voxbridge on loopback, each call a SIP party (SIPp) that
//! answers, runs a one-second `wait` and is hung up. Per step it reports the requests answered
//! 201 and not, the API's latency (p50/p99/max, request sent to response read), the CPU per
//! call of voxbridge and its media process, and then, from `GET /v1/calls`, how many of the
//! created calls completed end to end.
//!
//! Requests are sent on a clock (one every 1/rate s, each on its own task), not one after the
//! other, so a slow answer does not lower the offered rate.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run bench/rest-calls)"))
}

fn cpu_ms(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command name (which may hold spaces), utime and stime are fields 14, 15.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
            let fields: Vec<f64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
            (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) * 10.0
        })
        .sum()
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn count(client: &reqwest::Client, base: &str, jwt: &str, status: &str) -> u64 {
    let url = format!("{base}/v1/calls?status={status}&page_size=1");
    let body: Value = match client.get(url).bearer_auth(jwt).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    body["count"].as_u64().unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let (base, sip, number) = (var("HTTP"), var("SIP_TARGET"), var("NUMBER"));
    let key = std::fs::read_to_string(var("KEY_FILE")).expect("the application's private key");
    let app = var("APP");
    let pids: Vec<u32> = var("PIDS").split_whitespace().filter_map(|p| p.parse().ok()).collect();
    let rates: Vec<u64> = var("RATES").split_whitespace().filter_map(|r| r.parse().ok()).collect();
    let step = Duration::from_secs(var("STEP_SECS").parse().unwrap_or(10));
    let now = chrono::Utc::now().timestamp();
    // One token for the run: voxbridge checks signature, iat/exp and application, as Vonage does.
    let claims = json!({"application_id": app, "iat": now, "exp": now + 3600, "jti": uuid::Uuid::new_v4().to_string()});
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).expect("an RSA key");
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &encoding)
        .expect("a JWT");
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().expect("a client");
    let body = json!({
        "to": [{"type": "sip", "uri": format!("sip:bench@{sip}")}],
        "from": {"type": "phone", "number": number},
        "ncco": [{"action": "wait", "timeout": 1}],
    });
    let mut created_total = 0u64;
    for rate in rates {
        let total = rate * step.as_secs();
        let cpu0 = cpu_ms(&pids);
        let mut clock = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = Vec::with_capacity(total as usize);
        let started = Instant::now();
        for _ in 0..total {
            clock.tick().await;
            let (client, url, jwt, body) = (client.clone(), format!("{base}/v1/calls"), jwt.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let status = match client.post(url).bearer_auth(jwt).json(&body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                (status, sent.elapsed())
            }));
        }
        let offered = started.elapsed();
        let mut latencies = Vec::with_capacity(tasks.len());
        let (mut created, mut refused) = (0u64, std::collections::BTreeMap::<u16, u64>::new());
        for t in tasks {
            let (status, took) = t.await.unwrap_or((0, Duration::ZERO));
            latencies.push(took);
            if status == 201 {
                created += 1;
            } else {
                *refused.entry(status).or_default() += 1;
            }
        }
        created_total += created;
        latencies.sort();
        let cpu = cpu_ms(&pids) - cpu0;
        println!(
            "rate {rate}/s: {total} requests in {:.1} s, {created} created, refused {refused:?}, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms, CPU {:.0} µs per call",
            offered.as_secs_f64(),
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            quantile(&latencies, 1.0),
            cpu * 1000.0 / created.max(1) as f64,
        );
        // The calls of this step end (1 s wait + BYE) before the next step starts.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let completed = count(&client, &base, &jwt, "completed").await;
    let failed = count(&client, &base, &jwt, "failed").await;
    println!("calls created {created_total}, completed end to end {completed}, failed {failed}");
}
